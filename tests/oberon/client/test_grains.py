"""Failures stay at their grain: an endpoint's breaker, the upstream's (connection-level), the dependency-failed
marker, and the bulkhead that bounds the calls in flight."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest
import respx

from oberon.client.breaker import BreakerSettings, BreakerState
from oberon.client.response_cache import ResponseCache
from oberon.client.transport import HttpxTransport
from oberon.client.upstream import CallRecord, ClientSettings, Upstream, Upstreams
from oberon.exceptions import CircuitOpen, UpstreamError, UpstreamStatusError, UpstreamTimeout

DEPENDENCY_FAILED_HEADER = "X-Oberon-Dependency-Failed"  # the documented marker, spelled out

pytestmark = pytest.mark.anyio

BASE = "http://events.test"
HERO = "/events/{event_id}"
VENUE = "/events/{event_id}/venue"


def guarded(*, retries: int = 0, records: list[CallRecord] | None = None, **bulkhead: int) -> Upstream:
    """A client of `events` whose breakers open at half of 4 calls (none of these tests waits out their 5 s)."""
    breaker = BreakerSettings(min_calls=4, failure_ratio=0.5, open_seconds=5, **bulkhead)
    return Upstream(
        "events",
        transport=HttpxTransport("events", httpx.AsyncClient(base_url=BASE)),
        settings=ClientSettings(timeout=1.0, retries=retries, backoff=0.001, breaker=breaker),
        cache=ResponseCache(),
        observers=[records.append] if records is not None else [],
    )


@pytest.fixture
async def upstream() -> AsyncIterator[Upstream]:
    upstream = guarded()
    yield upstream
    await upstream.aclose()


@pytest.fixture
def mock() -> respx.MockRouter:
    with respx.mock(base_url=BASE, assert_all_called=False) as router:
        yield router


async def test_an_endpoint_breaker_opens_while_the_other_endpoints_of_the_upstream_keep_answering(
    upstream: Upstream, mock: respx.MockRouter
) -> None:
    venue = mock.get("/events/1/venue").respond(500)
    hero = mock.get("/events/1").respond(json={"id": 1})
    for _ in range(6):
        with pytest.raises(UpstreamError):
            await upstream.get_json("/events/1/venue", endpoint=VENUE)
        assert await upstream.get_json("/events/1", endpoint=HERO) == {"id": 1}
    assert venue.call_count == 4  # then its breaker opened: failed fast, not called
    assert hero.call_count == 6
    assert upstream.endpoint_breakers[VENUE].state is BreakerState.OPEN
    assert upstream.endpoint_breakers[HERO].state is BreakerState.CLOSED
    assert upstream.breaker.state is BreakerState.CLOSED  # the upstream answered every time
    with pytest.raises(CircuitOpen):
        await upstream.get_json("/events/2/venue", endpoint=VENUE)  # another id, the same endpoint


async def test_a_dependency_failed_answer_does_not_trip_the_upstreams_breakers(
    upstream: Upstream, mock: respx.MockRouter
) -> None:
    marked = httpx.Response(502, json={"error": "upstream venues failed"}, headers={DEPENDENCY_FAILED_HEADER: "venues"})
    venue = mock.get("/events/1/venue").mock(return_value=marked)
    for _ in range(12):
        with pytest.raises(UpstreamStatusError) as failed:
            await upstream.get_json("/events/1/venue", endpoint=VENUE)
        assert failed.value.status_code == 502  # the caller still falls back
    assert venue.call_count == 12  # never refused by a breaker
    assert upstream.endpoint_breakers[VENUE].state is BreakerState.CLOSED
    assert upstream.breaker.state is BreakerState.CLOSED


async def test_a_dependency_failed_answer_is_not_retried(mock: respx.MockRouter) -> None:
    upstream = guarded(retries=1)
    marked = httpx.Response(503, headers={DEPENDENCY_FAILED_HEADER: "venues"})
    venue = mock.get("/events/1/venue").mock(return_value=marked)
    with pytest.raises(UpstreamStatusError):
        await upstream.get_json("/events/1/venue")
    assert venue.call_count == 1  # the BFF's own client already retried its dependency
    await upstream.aclose()


async def test_an_unmarked_502_still_counts_against_the_endpoint(upstream: Upstream, mock: respx.MockRouter) -> None:
    mock.get("/events/1/venue").respond(502)
    for _ in range(4):
        with pytest.raises(UpstreamStatusError):
            await upstream.get_json("/events/1/venue", endpoint=VENUE)
    assert upstream.endpoint_breakers[VENUE].state is BreakerState.OPEN


async def test_refused_connections_open_the_upstream_breaker_for_every_endpoint(
    upstream: Upstream, mock: respx.MockRouter
) -> None:
    mock.get("/events/1/venue").mock(side_effect=httpx.ConnectError("refused"))
    mock.get("/events/1").mock(side_effect=httpx.ConnectError("refused"))
    for _ in range(2):
        for path, endpoint in (("/events/1/venue", VENUE), ("/events/1", HERO)):
            with pytest.raises(UpstreamError):
                await upstream.get_json(path, endpoint=endpoint)
    assert upstream.breaker.state is BreakerState.OPEN
    sitemap = mock.get("/sitemap").respond(json={})
    with pytest.raises(CircuitOpen):
        await upstream.get_json("/sitemap")  # an endpoint that never failed: the upstream is down
    assert not sitemap.called


async def test_one_slow_endpoint_does_not_open_the_upstream_breaker(
    upstream: Upstream, mock: respx.MockRouter
) -> None:
    mock.get("/events/1/venue").mock(side_effect=httpx.ReadTimeout("slow"))
    mock.get("/events/1").respond(json={"id": 1})
    for _ in range(4):
        with pytest.raises(UpstreamTimeout):
            await upstream.get_json("/events/1/venue", endpoint=VENUE)
    assert upstream.endpoint_breakers[VENUE].state is BreakerState.OPEN
    assert upstream.breaker.state is BreakerState.CLOSED
    assert await upstream.get_json("/events/1", endpoint=HERO) == {"id": 1}


async def test_timeouts_across_endpoints_open_the_upstream_breaker(
    upstream: Upstream, mock: respx.MockRouter
) -> None:
    mock.get("/events/1/venue").mock(side_effect=httpx.ReadTimeout("slow"))
    mock.get("/events/1").mock(side_effect=httpx.ReadTimeout("slow"))
    for _ in range(3):
        for path, endpoint in (("/events/1/venue", VENUE), ("/events/1", HERO)):
            with pytest.raises(UpstreamError):
                await upstream.get_json(path, endpoint=endpoint)
    assert upstream.breaker.state is BreakerState.OPEN
    with pytest.raises(CircuitOpen):
        await upstream.get_json("/sitemap")


async def test_the_bulkhead_fails_a_call_beyond_its_bound_fast_instead_of_queueing(mock: respx.MockRouter) -> None:
    records: list[CallRecord] = []
    upstream = guarded(max_in_flight=2, records=records)
    release = asyncio.Event()

    async def hang(request: httpx.Request) -> httpx.Response:
        await release.wait()
        return httpx.Response(200, json={"id": 1})

    mock.get(path__regex=r"/events/\d+").mock(side_effect=hang)
    held = [asyncio.create_task(upstream.get_json(f"/events/{n}")) for n in (1, 2)]
    await asyncio.sleep(0.01)
    assert upstream.bulkhead.in_flight == 2
    started = asyncio.get_running_loop().time()
    with pytest.raises(UpstreamError) as refused:
        await upstream.get_json("/events/3")
    assert asyncio.get_running_loop().time() - started < 0.05  # at once, not after the others
    assert type(refused.value).__name__ == "BulkheadFull"
    assert records[-1].outcome == "bulkhead_full" and records[-1].upstream_failed
    assert upstream.bulkhead.rejected == 1
    release.set()
    assert await asyncio.gather(*held) == [{"id": 1}, {"id": 1}]
    assert upstream.bulkhead.in_flight == 0
    assert await upstream.get_json("/events/3") == {"id": 1}
    # The bulkhead's refusals are the caller's own choice: they count against no breaker.
    assert upstream.endpoint_breakers["/events/{id}"].state is BreakerState.CLOSED
    await upstream.aclose()


async def test_a_cancelled_call_gives_its_place_in_the_bulkhead_back(mock: respx.MockRouter) -> None:
    upstream = guarded(max_in_flight=1)

    async def hang(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(10)
        return httpx.Response(200, json={})

    mock.post("/cart").mock(side_effect=hang)
    task = asyncio.create_task(upstream.request_json("POST", "/cart", json_body={}))
    await asyncio.sleep(0.01)
    assert upstream.bulkhead.in_flight == 1
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert upstream.bulkhead.in_flight == 0
    await upstream.aclose()


async def test_open_breakers_count_every_grain(upstream: Upstream, mock: respx.MockRouter) -> None:
    mock.get("/events/1/venue").respond(500)
    for _ in range(4):
        with pytest.raises(UpstreamError):
            await upstream.get_json("/events/1/venue", endpoint=VENUE)
    assert Upstreams({"events": upstream}).open_breakers() == 1


async def test_a_call_refused_by_a_breaker_or_the_bulkhead_holds_no_place_in_the_other(mock: respx.MockRouter) -> None:
    """An attempt takes its place in the bulkhead before the breakers are asked (`Upstream._admit`): a breaker's
    refusal gives it back, and a full bulkhead's refusal takes no half-open breaker's probe."""
    now = [0.0]
    breaker = BreakerSettings(min_calls=4, failure_ratio=0.5, open_seconds=5, max_in_flight=1)
    upstream = Upstream(
        "events",
        transport=HttpxTransport("events", httpx.AsyncClient(base_url=BASE)),
        settings=ClientSettings(timeout=1.0, retries=0, breaker=breaker),
        clock=lambda: now[0],
    )
    venue = mock.get("/events/1/venue").respond(500)
    for _ in range(4):
        with pytest.raises(UpstreamError):
            await upstream.get_json("/events/1/venue", endpoint=VENUE)
    with pytest.raises(CircuitOpen):
        await upstream.get_json("/events/1/venue", endpoint=VENUE)
    assert (upstream.bulkhead.in_flight, upstream.bulkhead.rejected) == (0, 0)

    now[0] += 5  # half-open: one probe may go out
    release = asyncio.Event()

    async def hang(request: httpx.Request) -> httpx.Response:
        await release.wait()
        return httpx.Response(200, json={"id": 1})

    mock.get("/events/1").mock(side_effect=hang)
    held = asyncio.create_task(upstream.get_json("/events/1", endpoint=HERO))
    await asyncio.sleep(0.01)
    with pytest.raises(UpstreamError) as refused:
        await upstream.get_json("/events/1/venue", endpoint=VENUE)
    assert type(refused.value).__name__ == "BulkheadFull"
    assert upstream.bulkhead.rejected == 1
    release.set()
    assert await held == {"id": 1}
    venue.respond(json={"venue": 1})
    assert await upstream.get_json("/events/1/venue", endpoint=VENUE) == {"venue": 1}  # the probe was still there
    assert upstream.endpoint_breakers[VENUE].state is BreakerState.CLOSED

    now[0] += 3600  # the successes above out of the upstream breaker's window
    mock.get("/events/2").mock(side_effect=httpx.ConnectError("refused"))
    for _ in range(4):
        with pytest.raises(UpstreamError):
            await upstream.get_json("/events/2", endpoint="/events/2")
    assert upstream.breaker.state is BreakerState.OPEN
    with pytest.raises(CircuitOpen):
        await upstream.get_json("/events/3", endpoint="/events/3")  # the upstream-wide breaker refuses
    assert (upstream.bulkhead.in_flight, upstream.bulkhead.rejected) == (0, 1)
    await upstream.aclose()
