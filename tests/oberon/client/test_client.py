"""The resilient client: budget, retries, breaker, cache with stale-if-error, coalescing, bad upstream input."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator, Awaitable, Callable

import httpx
import pytest
import respx

from oberon.client import upstream as upstream_module
from oberon.client.breaker import BreakerSettings, BreakerState
from oberon.client.response_cache import ResponseCache
from oberon.client.transport import Answer, HttpxTransport
from oberon.client.upstream import BUDGET_HEADER, CallRecord, ClientSettings, Upstream
from oberon.exceptions import (
    BudgetExhausted,
    CircuitOpen,
    InvalidResponse,
    UpstreamError,
    UpstreamStatusError,
    UpstreamTimeout,
)

pytestmark = pytest.mark.anyio

BASE = "http://events.test"


@pytest.fixture
async def upstream(clock) -> AsyncIterator[Upstream]:
    breaker = BreakerSettings(min_calls=4, failure_ratio=0.5, open_seconds=5)
    settings = ClientSettings(timeout=1.0, retries=1, backoff=0.01, max_body_bytes=1000, breaker=breaker)
    client = httpx.AsyncClient(base_url=BASE)
    upstream = Upstream(
        "events",
        transport=HttpxTransport("events", client),
        settings=settings,
        cache=ResponseCache(clock=clock),
        clock=clock,
    )
    yield upstream
    await upstream.aclose()


@pytest.fixture
def mock() -> respx.MockRouter:
    with respx.mock(base_url=BASE, assert_all_called=False) as router:
        yield router


async def test_client_returns_json_and_passes_its_budget_down(upstream: Upstream, mock: respx.MockRouter) -> None:
    route = mock.get("/events/1").respond(json={"id": 1})
    assert await upstream.get_json("/events/1", timeout=0.5) == {"id": 1}
    assert 400 < int(route.calls.last.request.headers[BUDGET_HEADER]) <= 500


async def test_client_retries_an_idempotent_call_after_a_503(upstream: Upstream, mock: respx.MockRouter) -> None:
    route = mock.get("/events/1").mock(side_effect=[httpx.Response(503), httpx.Response(200, json={"id": 1})])
    assert await upstream.get_json("/events/1") == {"id": 1}
    assert route.call_count == 2


async def test_client_retries_a_refused_connection(upstream: Upstream, mock: respx.MockRouter) -> None:
    route = mock.get("/events/1").mock(side_effect=[httpx.ConnectError("refused"), httpx.Response(200, json=1)])
    assert await upstream.get_json("/events/1") == 1
    assert route.call_count == 2


async def test_client_retries_are_bounded(upstream: Upstream, mock: respx.MockRouter) -> None:
    route = mock.get("/events/1").respond(503)
    with pytest.raises(UpstreamStatusError):
        await upstream.get_json("/events/1")
    assert route.call_count == 2  # one try and one retry


async def test_client_never_retries_a_post(upstream: Upstream, mock: respx.MockRouter) -> None:
    route = mock.post("/cart").respond(503)
    with pytest.raises(UpstreamStatusError):
        await upstream.request_json("POST", "/cart", json_body={"quantity": 1})
    assert route.call_count == 1
    assert route.calls.last.request.content == b'{"quantity":1}'


async def test_client_retries_a_put(upstream: Upstream, mock: respx.MockRouter) -> None:
    route = mock.put("/cart/1").mock(side_effect=[httpx.Response(502), httpx.Response(200, json={"ok": True})])
    assert await upstream.request_json("PUT", "/cart/1", json_body={}) == {"ok": True}
    assert route.call_count == 2


@pytest.mark.parametrize("status", [400, 404, 409])
async def test_client_never_retries_a_4xx(upstream: Upstream, mock: respx.MockRouter, status: int) -> None:
    route = mock.get("/events/1").respond(status)
    with pytest.raises(UpstreamStatusError) as info:
        await upstream.get_json("/events/1")
    assert info.value.status_code == status
    assert route.call_count == 1


async def test_client_does_not_retry_past_its_budget(upstream: Upstream, mock: respx.MockRouter) -> None:
    async def slow_then_fail(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(0.08)
        return httpx.Response(503)

    route = mock.get("/events/1").mock(side_effect=slow_then_fail)
    with pytest.raises(UpstreamError):
        await upstream.get_json("/events/1", timeout=0.1)
    assert route.call_count == 1  # 20 ms left is too little for another attempt


async def test_client_times_out_within_its_budget(upstream: Upstream, mock: respx.MockRouter) -> None:
    async def slow(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(5)
        return httpx.Response(200, json=1)

    mock.get("/events/1").mock(side_effect=slow)
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(UpstreamTimeout):
        await upstream.get_json("/events/1", timeout=0.2)
    assert loop.time() - started < 1.0


async def test_client_with_no_budget_left_fails_without_calling(upstream: Upstream, mock: respx.MockRouter) -> None:
    route = mock.get("/events/1").respond(json=1)
    with pytest.raises(UpstreamTimeout):
        await upstream.get_json("/events/1", timeout=0)
    assert route.call_count == 0
    assert issubclass(BudgetExhausted, UpstreamTimeout)


async def test_client_breaker_opens_and_fails_fast(upstream: Upstream, mock: respx.MockRouter, clock) -> None:
    route = mock.get("/events/1").respond(500)
    for _ in range(4):  # a 500 is not retried: four calls, four failures
        with pytest.raises(UpstreamStatusError):
            await upstream.get_json("/events/1")
    assert upstream.endpoint_breakers["/events/{id}"].state is BreakerState.OPEN
    with pytest.raises(CircuitOpen):
        await upstream.get_json("/events/1")
    assert route.call_count == 4


async def test_client_breaker_closes_after_the_upstream_heals(
    upstream: Upstream, mock: respx.MockRouter, clock
) -> None:
    route = mock.get("/events/1").respond(500)
    for _ in range(4):
        with pytest.raises(UpstreamStatusError):
            await upstream.get_json("/events/1")
    route.respond(json={"id": 1})
    clock.now += 5
    assert await upstream.get_json("/events/1") == {"id": 1}
    assert upstream.endpoint_breakers["/events/{id}"].state is BreakerState.CLOSED


async def test_client_4xx_answers_do_not_open_the_breaker(upstream: Upstream, mock: respx.MockRouter) -> None:
    mock.get("/events/404").respond(404)
    for _ in range(6):
        with pytest.raises(UpstreamStatusError):
            await upstream.get_json("/events/404")
    assert upstream.endpoint_breakers["/events/{id}"].state is BreakerState.CLOSED


async def test_client_caches_what_cache_control_allows(upstream: Upstream, mock: respx.MockRouter, clock) -> None:
    route = mock.get("/events/1").respond(json={"id": 1}, headers={"Cache-Control": "max-age=30"})
    await upstream.get_json("/events/1")
    await upstream.get_json("/events/1")
    assert route.call_count == 1
    clock.now += 31
    await upstream.get_json("/events/1")
    assert route.call_count == 2


@pytest.mark.parametrize("header", ["no-store", "private, max-age=30", "max-age=0"])
async def test_client_does_not_cache_what_may_not_be_kept(
    upstream: Upstream, mock: respx.MockRouter, header: str
) -> None:
    route = mock.get("/events/1").respond(json={"id": 1}, headers={"Cache-Control": header})
    await upstream.get_json("/events/1")
    await upstream.get_json("/events/1")
    assert route.call_count == 2


async def test_client_calls_each_time_but_shares_what_identical_answers_decode_to(
    upstream: Upstream, mock: respx.MockRouter
) -> None:
    bodies = iter([b'{"id": 1}', b'{"id": 1}', b'{"id": 1}', b'{"id": 2}'])
    route = mock.get("/events/1").mock(
        side_effect=lambda request: httpx.Response(
            200, content=next(bodies), headers={"Content-Type": "application/json", "Cache-Control": "no-store"}
        )
    )
    first = await upstream.get_json("/events/1")
    second = await upstream.get_json("/events/1")
    third = await upstream.get_json("/events/1")
    changed = await upstream.get_json("/events/1")
    assert route.call_count == 4  # no-store: asked every time
    # The same bytes: from their second sight the same objects, so renders of them are shared.
    assert third is second and second is not first
    assert changed == {"id": 2} and first == second == {"id": 1}


async def test_client_cache_keys_on_the_user_so_nobody_sees_anothers_answer(
    upstream: Upstream, mock: respx.MockRouter
) -> None:
    route = mock.get("/cart").respond(json={}, headers={"Cache-Control": "max-age=30"})
    await upstream.get_json("/cart", headers={"X-Oberon-User": "ada"})
    await upstream.get_json("/cart", headers={"X-Oberon-User": "bob"})
    await upstream.get_json("/cart", headers={"X-Oberon-User": "ada", "X-Oberon-Request-Id": "other"})
    assert route.call_count == 2


@pytest.mark.parametrize(
    "failure", [httpx.Response(500), httpx.ConnectError("refused"), httpx.ReadTimeout("slow")], ids=str
)
async def test_client_serves_a_stale_copy_when_the_upstream_fails(
    upstream: Upstream, mock: respx.MockRouter, clock, failure: httpx.Response | Exception
) -> None:
    route = mock.get("/events/1").respond(json={"id": 1}, headers={"Cache-Control": "max-age=30, stale-if-error=60"})
    await upstream.get_json("/events/1")
    clock.now += 40
    route.mock(side_effect=failure) if isinstance(failure, Exception) else route.mock(return_value=failure)
    assert await upstream.get_json("/events/1") == {"id": 1}
    assert upstream.cache.stats.stale_served == 1
    clock.now += 60  # past the stale-if-error window
    with pytest.raises(UpstreamError):
        await upstream.get_json("/events/1")


async def test_client_serves_a_stale_copy_while_the_breaker_is_open(
    upstream: Upstream, mock: respx.MockRouter, clock
) -> None:
    mock.get("/events/1").respond(json={"id": 1}, headers={"Cache-Control": "max-age=1, stale-if-error=600"})
    await upstream.get_json("/events/1")
    mock.get("/events/2").mock(side_effect=httpx.ConnectError("refused"))
    for _ in range(2):  # each call tried twice: four refused connections
        with pytest.raises(UpstreamError):
            await upstream.get_json("/events/2")
    clock.now += 2
    assert upstream.breaker.state is BreakerState.OPEN
    assert await upstream.get_json("/events/1") == {"id": 1}


async def test_client_does_not_serve_stale_for_a_404(upstream: Upstream, mock: respx.MockRouter, clock) -> None:
    route = mock.get("/events/1").respond(json={"id": 1}, headers={"Cache-Control": "max-age=1, stale-if-error=600"})
    await upstream.get_json("/events/1")
    clock.now += 2
    route.respond(404)
    with pytest.raises(UpstreamStatusError):
        await upstream.get_json("/events/1")


async def test_client_coalesces_concurrent_identical_gets(upstream: Upstream, mock: respx.MockRouter) -> None:
    async def slow(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(0.05)
        return httpx.Response(200, json={"id": 1}, headers={"Cache-Control": "no-store"})

    route = mock.get("/events/1").mock(side_effect=slow)
    results = await asyncio.gather(*(upstream.get_json("/events/1") for _ in range(100)))
    assert results == [{"id": 1}] * 100
    assert route.call_count == 1


async def test_client_coalesced_callers_survive_the_first_callers_cancellation(
    upstream: Upstream, mock: respx.MockRouter
) -> None:
    async def slow(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(0.05)
        return httpx.Response(200, json={"id": 1})

    mock.get("/events/1").mock(side_effect=slow)
    first = asyncio.create_task(upstream.get_json("/events/1"))
    await asyncio.sleep(0)
    second = asyncio.create_task(upstream.get_json("/events/1"))
    await asyncio.sleep(0.01)
    first.cancel()
    assert await second == {"id": 1}


async def test_client_makes_a_get_nobody_else_asks_for_in_its_callers_own_task(
    upstream: Upstream, mock: respx.MockRouter
) -> None:
    # Issue 19: a task per call (and a timer to wait for it) cost ~20 µs of a page's CPU each.
    called_in: list[asyncio.Task[object] | None] = []

    def answer(request: httpx.Request) -> httpx.Response:
        called_in.append(asyncio.current_task())
        return httpx.Response(200, json={"id": 1})

    mock.get("/events/1").mock(side_effect=answer)
    caller = asyncio.create_task(upstream.get_json("/events/1"))
    assert await caller == {"id": 1}
    assert called_in == [caller]


async def test_client_abandons_a_call_its_only_caller_gave_up(upstream: Upstream, mock: respx.MockRouter) -> None:
    abandoned: list[bool] = []

    async def slow(request: httpx.Request) -> httpx.Response:
        try:
            await asyncio.sleep(0.05)
        except asyncio.CancelledError:
            abandoned.append(True)
            raise
        return httpx.Response(200, json={"id": 1}, headers={"Cache-Control": "no-store"})

    mock.get("/events/1").mock(side_effect=slow)
    first = asyncio.create_task(upstream.get_json("/events/1"))
    await asyncio.sleep(0.01)
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    assert abandoned == [True]
    assert await upstream.get_json("/events/1") == {"id": 1}  # a call of its own, not the abandoned one


async def test_client_a_joiner_times_out_on_its_own_budget_without_failing_the_leader(
    upstream: Upstream, mock: respx.MockRouter
) -> None:
    async def slow(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(0.1)
        return httpx.Response(200, json={"id": 1})

    route = mock.get("/events/1").mock(side_effect=slow)
    first = asyncio.create_task(upstream.get_json("/events/1", timeout=1.0))
    await asyncio.sleep(0)
    with pytest.raises(UpstreamTimeout):
        await upstream.get_json("/events/1", timeout=0.02)
    assert await first == {"id": 1}
    assert route.call_count == 1


async def test_client_a_cancelled_joiner_leaves_the_call_to_the_leader_and_the_other_joiners(
    upstream: Upstream, mock: respx.MockRouter
) -> None:
    async def slow(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(0.05)
        return httpx.Response(200, json={"id": 1})

    route = mock.get("/events/1").mock(side_effect=slow)
    leader = asyncio.create_task(upstream.get_json("/events/1"))
    await asyncio.sleep(0)
    joiners = [asyncio.create_task(upstream.get_json("/events/1")) for _ in range(3)]
    await asyncio.sleep(0.01)
    joiners[0].cancel()
    assert await asyncio.gather(leader, *joiners[1:]) == [{"id": 1}] * 3
    assert joiners[0].cancelled() and route.call_count == 1


class _Direct:
    """A transport that answers at once and notes how many coroutines of the client's await it."""

    def __init__(self) -> None:
        self.levels: list[list[str]] = []

    async def send(
        self, method: str, path: str, *, headers: dict[str, str], body: bytes | None, timeout: float, max_body: int
    ) -> Answer:
        names, frame = [], sys._getframe(1)
        while frame is not None and frame.f_code.co_name != "get_fresh_json":
            names.append(frame.f_code.co_name)
            frame = frame.f_back
        self.levels.append(["get_fresh_json", *reversed(names)])
        await asyncio.sleep(0)
        return Answer(200, "application/json", None, b'{"id": 1}')

    async def aclose(self) -> None:
        pass


async def test_client_a_get_is_two_coroutines_above_the_transport() -> None:
    # Issue 19: every coroutine level between the caller and the socket is resumed on each wake-up of a call
    # (there were five: get_fresh_json, _get_json, _lead, _call, _attempt).
    transport = _Direct()
    upstream = Upstream("events", transport=transport)
    assert await upstream.get_json("/events/1") == {"id": 1}
    assert transport.levels == [["get_fresh_json", "_call"]]


@pytest.mark.parametrize(
    ("response", "message"),
    [
        (httpx.Response(200, text="{nope", headers={"Content-Type": "application/json"}), "malformed JSON"),
        (httpx.Response(200, content=b"", headers={"Content-Type": "application/json"}), "malformed JSON"),
        (httpx.Response(200, text="<html>", headers={"Content-Type": "text/html"}), "text/html, not JSON"),
        (httpx.Response(200, content=b"{}"), "no content type"),
        (httpx.Response(200, json={"x": "y" * 2000}), "more than 1000 bytes"),
    ],
    ids=["malformed", "empty", "html", "no-type", "too-large"],
)
async def test_client_refuses_bad_bodies_with_a_typed_error(
    upstream: Upstream, mock: respx.MockRouter, response: httpx.Response, message: str
) -> None:
    route = mock.get("/events/1").respond(
        status_code=response.status_code, content=response.content, headers=response.headers
    )
    with pytest.raises(InvalidResponse, match=message):
        await upstream.get_json("/events/1")
    assert route.call_count == 1  # a bad body is not retried


Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@pytest.fixture
async def raw_server() -> AsyncIterator[Callable[[Handler], Awaitable[str]]]:
    """A real TCP server on loopback that misbehaves as each test tells it to."""
    servers: list[asyncio.Server] = []
    handlers: list[asyncio.Task[None]] = []

    async def start(handler: Handler) -> str:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            handlers.append(asyncio.current_task())  # type: ignore[arg-type]
            try:
                await handler(reader, writer)
            except ConnectionError:
                pass  # the client hung up, as it may
            finally:
                writer.close()

        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        servers.append(server)
        port = server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    yield start
    for task in handlers:
        task.cancel()
    await asyncio.gather(*handlers, return_exceptions=True)
    for server in servers:
        server.close()
        await server.wait_closed()


async def _headers(reader: asyncio.StreamReader) -> None:
    while (await reader.readline()) not in (b"\r\n", b""):
        pass


async def test_client_survives_a_connection_reset_mid_body(raw_server) -> None:
    async def reset(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _headers(reader)
        writer.write(b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"id":')
        await writer.drain()
        writer.transport.abort()

    upstream = Upstream.create("events", await raw_server(reset), settings=ClientSettings(retries=0))
    try:
        with pytest.raises(UpstreamError, match="failed"):
            await upstream.get_json("/events/1", timeout=2)
    finally:
        await upstream.aclose()


async def test_client_gives_up_on_a_slow_drip_within_its_budget(raw_server) -> None:
    async def drip(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _headers(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n")
        for _ in range(100):  # a byte every 50 ms: each read is quick, the whole never comes
            writer.write(b" ")
            await writer.drain()
            await asyncio.sleep(0.05)

    upstream = Upstream.create("events", await raw_server(drip), settings=ClientSettings(retries=0))
    loop = asyncio.get_running_loop()
    started = loop.time()
    try:
        with pytest.raises(UpstreamTimeout):
            await upstream.get_json("/events/1", timeout=0.3)
    finally:
        await upstream.aclose()
    assert loop.time() - started < 1.5


async def test_client_stops_reading_a_chunked_body_past_the_limit(raw_server) -> None:
    async def endless(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _headers(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n")
        for _ in range(10_000):
            writer.write(b"400\r\n" + b" " * 1024 + b"\r\n")
            await writer.drain()

    upstream = Upstream.create("events", await raw_server(endless), settings=ClientSettings(max_body_bytes=64_000))
    try:
        with pytest.raises(InvalidResponse, match="more than 64000 bytes"):
            await upstream.get_json("/events/1", timeout=5)
    finally:
        await upstream.aclose()


async def test_client_tells_its_observers_every_call_as_the_caller_saw_it(
    upstream: Upstream, mock: respx.MockRouter, clock
) -> None:
    records: list[CallRecord] = []
    upstream.observers.append(records.append)
    mock.get("/events/1").respond(json={"id": 1}, headers={"Cache-Control": "max-age=1, stale-if-error=60"})
    mock.get("/events/2").respond(404)
    await upstream.get_json("/events/1?lang=en")
    await upstream.get_json("/events/1?lang=en")
    with pytest.raises(UpstreamStatusError):
        await upstream.get_json("/events/2", endpoint="/events/{event_id}")
    clock.now += 2
    mock.get("/events/1").respond(500)
    await upstream.get_json("/events/1?lang=en")
    assert [(r.endpoint, r.outcome, r.status_code) for r in records] == [
        ("/events/{id}", "ok", None),
        ("/events/{id}", "cached", None),
        ("/events/{event_id}", "client_error", 404),
        ("/events/{id}", "stale", None),
    ]
    assert [r.upstream_failed for r in records] == [False, False, False, True]
    assert all(r.seconds >= 0 and r.upstream == "events" and r.method == "GET" for r in records)


async def _answer(writer: asyncio.StreamWriter, body: bytes, *, extra: bytes = b"") -> None:
    head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: %d\r\n" % len(body)
    writer.write(head + extra + b"\r\n" + body)
    await writer.drain()


async def test_a_network_upstream_keeps_its_connection_and_never_replays_a_cookie(raw_server) -> None:
    requests: list[bytes] = []
    connections = 0

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        with contextlib.suppress(asyncio.IncompleteReadError):  # until the client hangs up
            while head := await reader.readuntil(b"\r\n\r\n"):
                requests.append(head)
                fields = dict(line.partition(b": ")[::2] for line in head.lower().split(b"\r\n"))
                body = await reader.readexactly(int(fields.get(b"content-length", b"0")))
                await _answer(writer, b'{"echo":%s}' % (body or b"null"), extra=b"Set-Cookie: session=visitor-a\r\n")

    upstream = Upstream.create("events", await raw_server(serve))
    try:
        assert await upstream.get_json("/events/1", headers={"X-Oberon-User": "alice"}) == {"echo": None}
        assert await upstream.request_json("POST", "/cart", json_body={"quantity": 1}) == {"echo": {"quantity": 1}}
    finally:
        await upstream.aclose()
    assert connections == 1  # kept alive between calls
    first, second = (head.lower() for head in requests)
    assert b"x-oberon-user: alice" in first and BUDGET_HEADER.lower().encode() in first
    assert b"cookie" not in second.replace(b"set-cookie", b"")  # one visitor's cookie is never sent for another
    assert b"content-type: application/json" in second


async def test_a_network_upstream_refuses_a_declared_oversized_body_before_reading_it(raw_server) -> None:
    async def huge(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _headers(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 5000000\r\n\r\n[")
        await writer.drain()
        await asyncio.sleep(5)

    upstream = Upstream.create("events", await raw_server(huge), settings=ClientSettings(retries=0))
    try:
        with pytest.raises(InvalidResponse, match="more than"):
            await upstream.get_json("/events/1", timeout=2)
    finally:
        await upstream.aclose()


async def _joined_steps(upstream: Upstream, joiners: int) -> list[tuple[int, str]]:
    """One leader and `joiners` callers joining its call, each taking one more step after its answer:
    every caller's steps, in the order they were taken."""
    steps: list[tuple[int, str]] = []

    async def caller(n: int) -> None:
        with contextlib.suppress(UpstreamError):
            await upstream.get_json("/events/1")
        steps.append((n, "answered"))
        await asyncio.sleep(0)  # its next step
        steps.append((n, "next"))

    callers = []
    for n in range(joiners + 1):
        callers.append(asyncio.create_task(caller(n)))
        await asyncio.sleep(0)  # each joins in turn: 0 leads, the rest join
    await asyncio.gather(*callers)
    return [step for step in steps if step[0] > 0]


def _slow(status: int = 200) -> Callable[[httpx.Request], Awaitable[httpx.Response]]:
    """An answer that takes longer than a slow call (`SLOW_CALL`)."""
    delay = upstream_module.SLOW_CALL + 0.01

    async def answer(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(delay)
        return httpx.Response(status, json={"id": 1}, headers={"Cache-Control": "no-store"})

    return answer


async def test_client_wakes_a_slow_calls_joiners_a_few_a_loop_turn_in_the_order_they_joined(
    upstream: Upstream, mock: respx.MockRouter
) -> None:
    # Woken all at once after a slow call, no joined page answered before all had (issue 19: page-5 at 20 ms).
    step = upstream_module.WOKEN_A_TURN
    route = mock.get("/events/1").mock(side_effect=_slow())
    joined = await _joined_steps(upstream, 2 * step + 1)
    assert route.call_count == 1
    answered = [n for n, what in joined if what == "answered"]
    assert answered == list(range(1, 2 * step + 2))
    # The first few take their next step before the next few are woken; the last one is woken on its own.
    assert joined.index((1, "next")) < joined.index((step + 1, "answered"))
    assert joined.index((step + 1, "next")) < joined.index((2 * step + 1, "answered"))
    assert joined.index((step, "answered")) < joined.index((1, "next"))


async def test_client_wakes_a_slow_calls_joiners_in_turn_with_its_error_too(
    upstream: Upstream, mock: respx.MockRouter
) -> None:
    step = upstream_module.WOKEN_A_TURN
    mock.get("/events/1").mock(side_effect=_slow(503))
    results = await asyncio.gather(
        *(upstream.get_json("/events/1") for _ in range(2 * step + 2)), return_exceptions=True
    )
    assert all(isinstance(result, UpstreamError) for result in results)


async def test_client_wakes_a_quick_calls_joiners_all_in_one_loop_turn(
    upstream: Upstream, mock: respx.MockRouter, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A quick call leaves no wait to fill: one turn serves every joiner (issue 19: page-5 at 0 ms).
    route = mock.get("/events/1").mock(side_effect=_slow())
    monkeypatch.setattr(upstream_module, "SLOW_CALL", 60.0)  # whatever the machine's speed, this call is quick
    step = upstream_module.WOKEN_A_TURN
    joined = await _joined_steps(upstream, 2 * step + 1)
    assert route.call_count == 1
    first_next = min(joined.index((n, "next")) for n in range(1, 2 * step + 2))
    assert all(what == "answered" for _, what in joined[:first_next])
    assert first_next == 2 * step + 1
