from __future__ import annotations

import time

import httpx
import pytest
from starlette.types import Receive, Scope, Send

from oberon.dev.faults import Fault, FaultInjector, parse_faults


async def ok_app(scope: Scope, receive: Receive, send: Send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"ok"})


def client_for(injector: FaultInjector) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=injector), base_url="http://events")


def test_parse_faults_reads_the_documented_example() -> None:
    assert parse_faults("recommendations=down,events=latency:300,venues=error:0.5") == {
        "recommendations": Fault(down=True),
        "events": Fault(latency_ms=300),
        "venues": Fault(error_ratio=0.5),
    }


@pytest.mark.parametrize("spec", ["", "   ", "\n"])
def test_parse_faults_returns_nothing_for_a_blank_spec(spec: str) -> None:
    assert parse_faults(spec) == {}


def test_parse_faults_combines_faults_of_one_service() -> None:
    faults = parse_faults(" events=latency:300 , events=error:0.2,events=down ")
    assert faults == {"events": Fault(down=True, latency_ms=300, error_ratio=0.2)}


def test_parse_faults_accepts_known_services() -> None:
    assert parse_faults("events=down", known={"events", "venues"}) == {"events": Fault(down=True)}


@pytest.mark.parametrize(
    ("spec", "bad_item", "expected"),
    [
        ("events", "events", "expected 'service=down'"),
        ("=down", "=down", "expected 'service=down'"),
        ("events=", "events=", "expected 'service=down'"),
        ("events=down,,venues=down", "", "empty item"),
        ("events=sleepy", "events=sleepy", "unknown fault kind 'sleepy'"),
        ("events=down:1", "events=down:1", "'down' takes no value"),
        ("events=latency", "events=latency", "non-negative integer"),
        ("events=latency:abc", "events=latency:abc", "non-negative integer"),
        ("events=latency:-5", "events=latency:-5", "non-negative integer"),
        ("events=latency:1.5", "events=latency:1.5", "non-negative integer"),
        ("events=latency:99999999", "events=latency:99999999", "at most"),
        ("events=latency:" + "9" * 5000, "events=latency:" + "9" * 5000, "at most"),
        ("events=error:1.5", "events=error:1.5", "between 0 and 1"),
        ("events=error:-0.1", "events=error:-0.1", "between 0 and 1"),
        ("events=error:nan", "events=error:nan", "between 0 and 1"),
        ("events=error:half", "events=error:half", "between 0 and 1"),
        ("events=down,events=down", "events=down", "already has"),
    ],
)
def test_parse_faults_rejects_malformed_items(spec: str, bad_item: str, expected: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_faults(spec)
    assert repr(bad_item) in str(info.value)
    assert expected in str(info.value)


def test_parse_faults_rejects_unknown_services_when_known_is_given() -> None:
    with pytest.raises(ValueError, match=r"'tickets=down'.*unknown service 'tickets'.*'events'"):
        parse_faults("tickets=down", known=("events", "venues"))


@pytest.mark.parametrize(
    "kwargs",
    [{"latency_ms": -1}, {"error_ratio": 1.5}, {"down": 1}, {"latency_ms": True}, {"error_ratio": float("inf")}],
)
def test_fault_rejects_invalid_values(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        Fault(**kwargs)  # type: ignore[arg-type]


@pytest.mark.anyio
async def test_injector_passes_requests_through_without_a_fault() -> None:
    async with client_for(FaultInjector(ok_app, fault=Fault())) as client:
        response = await client.get("/anything")
    assert response.status_code == 200
    assert response.text == "ok"


@pytest.mark.anyio
async def test_injector_adds_latency() -> None:
    async with client_for(FaultInjector(ok_app, fault=Fault(latency_ms=50))) as client:
        started = time.perf_counter()
        response = await client.get("/")
        elapsed = time.perf_counter() - started
    assert response.status_code == 200
    assert elapsed >= 0.050


@pytest.mark.anyio
async def test_injector_answers_503_when_down() -> None:
    async with client_for(FaultInjector(ok_app, fault=Fault(down=True))) as client:
        response = await client.get("/")
    assert response.status_code == 503
    assert response.json() == {"error": "service down (fault injected)"}
    assert response.headers["cache-control"] == "no-store"


@pytest.mark.anyio
async def test_injector_fails_every_request_at_error_ratio_one() -> None:
    async with client_for(FaultInjector(ok_app, fault=Fault(error_ratio=1.0))) as client:
        responses = [await client.get("/") for _ in range(20)]
    assert {r.status_code for r in responses} == {500}
    assert responses[0].json() == {"error": "injected error"}


@pytest.mark.anyio
async def test_injector_fails_no_request_at_error_ratio_zero() -> None:
    async with client_for(FaultInjector(ok_app, fault=Fault(error_ratio=0.0))) as client:
        responses = [await client.get("/") for _ in range(20)]
    assert {r.status_code for r in responses} == {200}


@pytest.mark.anyio
async def test_injector_fails_roughly_the_error_ratio_of_requests() -> None:
    async with client_for(FaultInjector(ok_app, fault=Fault(error_ratio=0.3), seed=42)) as client:
        statuses = [(await client.get("/")).status_code for _ in range(200)]
    assert set(statuses) == {200, 500}
    assert 30 <= statuses.count(500) <= 90


@pytest.mark.anyio
async def test_injector_is_reproducible_with_the_same_seed() -> None:
    runs = []
    for _ in range(2):
        async with client_for(FaultInjector(ok_app, fault=Fault(error_ratio=0.5), seed=7)) as client:
            runs.append([(await client.get("/")).status_code for _ in range(30)])
    assert runs[0] == runs[1]


@pytest.mark.anyio
async def test_injector_passes_lifespan_through_when_down() -> None:
    seen: list[str] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(scope["type"])
        await receive()
        await send({"type": "lifespan.startup.complete"})

    sent: list[object] = []

    async def receive() -> dict[str, object]:
        return {"type": "lifespan.startup"}

    async def send(message: object) -> None:
        sent.append(message)

    await FaultInjector(app, fault=Fault(down=True, latency_ms=10_000), seed=0)({"type": "lifespan"}, receive, send)
    assert seen == ["lifespan"]
    assert sent == [{"type": "lifespan.startup.complete"}]


@pytest.mark.anyio
async def test_admin_get_shows_the_current_fault() -> None:
    async with client_for(FaultInjector(ok_app, fault=Fault(latency_ms=5, error_ratio=0.25))) as client:
        response = await client.get("/_faults")
    assert response.status_code == 200
    assert response.json() == {"down": False, "latency_ms": 5, "error_ratio": 0.25}
    assert response.headers["cache-control"] == "no-store"


@pytest.mark.anyio
async def test_admin_put_replaces_the_whole_fault() -> None:
    injector = FaultInjector(ok_app, fault=Fault(down=True, latency_ms=5))
    async with client_for(injector) as client:
        response = await client.put("/_faults", json={"error_ratio": 1})
        assert response.status_code == 200
        assert response.json() == {"down": False, "latency_ms": 0, "error_ratio": 1.0}
        assert (await client.get("/_faults")).json() == response.json()
        assert (await client.get("/")).status_code == 500
    assert injector.fault == Fault(error_ratio=1.0)


@pytest.mark.anyio
async def test_admin_put_of_an_empty_object_clears_faults() -> None:
    injector = FaultInjector(ok_app, fault=Fault(down=True, latency_ms=5, error_ratio=0.5))
    async with client_for(injector) as client:
        response = await client.put("/_faults", json={})
    assert response.json() == {"down": False, "latency_ms": 0, "error_ratio": 0.0}
    assert injector.fault == Fault()


@pytest.mark.anyio
async def test_admin_revives_a_down_service() -> None:
    async with client_for(FaultInjector(ok_app, fault=Fault(down=True, latency_ms=10_000))) as client:
        assert (await client.put("/_faults", json={"down": False})).status_code == 200
        response = await client.get("/")
    assert response.status_code == 200


@pytest.mark.anyio
async def test_admin_is_not_subject_to_faults() -> None:
    async with client_for(FaultInjector(ok_app, fault=Fault(down=True, latency_ms=10_000, error_ratio=1.0))) as client:
        started = time.perf_counter()
        response = await client.get("/_faults")
    assert response.status_code == 200
    assert time.perf_counter() - started < 10


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b"{not json", "invalid JSON"),
        (b"\xff\xfe", "invalid JSON"),
        (b"", "invalid JSON"),
        (b"[]", "JSON object"),
        (b'{"down": "yes"}', "down"),
        (b'{"latency_ms": -1}', "latency_ms"),
        (b'{"latency_ms": 1.5}', "latency_ms"),
        (b'{"latency_ms": true}', "latency_ms"),
        (b'{"error_ratio": 2}', "error_ratio"),
        (b'{"error_ratio": "0.5"}', "error_ratio"),
        (b'{"error_ratio": NaN}', "error_ratio"),
        (b'{"latency": 300}', "'latency'"),
    ],
)
async def test_admin_put_rejects_invalid_bodies(body: bytes, expected: str) -> None:
    injector = FaultInjector(ok_app, fault=Fault(latency_ms=5))
    async with client_for(injector) as client:
        response = await client.put("/_faults", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 400
    assert expected in response.json()["error"]
    assert injector.fault == Fault(latency_ms=5)


@pytest.mark.anyio
@pytest.mark.parametrize("method", ["POST", "DELETE", "PATCH"])
async def test_admin_rejects_other_methods(method: str) -> None:
    async with client_for(FaultInjector(ok_app, fault=Fault())) as client:
        response = await client.request(method, "/_faults")
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, PUT"
    assert method in response.json()["error"]
