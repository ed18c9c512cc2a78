"""Metrics of the client's guards: each endpoint breaker's state, and each bulkhead's bound and calls in flight."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from oberon.client.breaker import BreakerSettings
from oberon.client.transport import HttpxTransport
from oberon.client.upstream import ClientSettings, Upstream, Upstreams
from oberon.exceptions import UpstreamError
from oberon.ops.metrics import Metrics

pytestmark = pytest.mark.anyio

BASE = "http://events.test"
VENUE = "/events/{event_id}/venue"


def value(metrics: Metrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


async def test_endpoint_breakers_and_the_bulkhead_show_at_scrape_time() -> None:
    release = asyncio.Event()

    async def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/venue"):
            return httpx.Response(500)
        await release.wait()
        return httpx.Response(200, json={})

    client = httpx.AsyncClient(base_url=BASE, transport=httpx.MockTransport(answer))
    settings = ClientSettings(retries=0, breaker=BreakerSettings(min_calls=2, max_in_flight=7))
    upstreams = Upstreams({"events": Upstream("events", transport=HttpxTransport("events", client), settings=settings)})
    metrics = Metrics()
    metrics.watch_upstreams("renderer", upstreams)
    for _ in range(2):
        with pytest.raises(UpstreamError):
            await upstreams["events"].get_json("/events/1/venue", endpoint=VENUE)
    hero = asyncio.create_task(upstreams["events"].get_json("/events/1", endpoint="/events/{event_id}"))
    await asyncio.sleep(0.01)
    metrics.exposition()

    venue = {"service": "renderer", "upstream": "events", "endpoint": VENUE}
    assert value(metrics, "oberon_endpoint_circuit_breaker_state", **venue, state="open") == 1
    assert value(metrics, "oberon_endpoint_circuit_breaker_state", **venue, state="closed") == 0
    hero_labels = {**venue, "endpoint": "/events/{event_id}", "state": "closed"}
    assert value(metrics, "oberon_endpoint_circuit_breaker_state", **hero_labels) == 1
    assert value(metrics, "oberon_circuit_breaker_state", service="renderer", upstream="events", state="closed") == 1
    assert value(metrics, "oberon_bulkhead_max_in_flight", service="renderer", upstream="events") == 7
    assert value(metrics, "oberon_bulkhead_in_flight", service="renderer", upstream="events") == 1

    release.set()
    await hero
    metrics.exposition()
    assert value(metrics, "oberon_bulkhead_in_flight", service="renderer", upstream="events") == 0
    await upstreams.aclose()
