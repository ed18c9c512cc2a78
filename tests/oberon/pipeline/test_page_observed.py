"""The renderer observed: Server-Timing, page and component metrics, spans per component and BFF call, log fields."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import jinja2
import pytest
import respx
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from oberon.client.upstream import Upstreams
from oberon.logs import ACCESS_LOGGER
from oberon.ops.metrics import Metrics
from oberon.ops.observability import Observability
from oberon.pipeline import server_timing
from oberon.pipeline.assets import Assets
from oberon.pipeline.cache_policy import CachePolicy
from oberon.pipeline.page import PageRenderer
from oberon.pipeline.page_types import PageRecord
from oberon.pipeline.registry import Registry, load_registry
from oberon.tracing import TraceContext
from oberon.web.renderer import RendererApp

pytestmark = pytest.mark.anyio

BFF = "http://shop.test"
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


@pytest.fixture
def metrics() -> Metrics:
    return Metrics()


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def records() -> list[PageRecord]:
    return []


@pytest.fixture
async def upstreams(metrics: Metrics) -> AsyncIterator[Upstreams]:
    upstreams = Upstreams.create(
        {"shop": httpx.AsyncClient(base_url=BFF)}, observers=[metrics.call_observer("renderer")]
    )
    yield upstreams
    await upstreams.aclose()


def renderer_for(
    registry: Registry, upstreams: Upstreams, environment: jinja2.Environment, assets: Assets, **kwargs: object
) -> PageRenderer:
    return PageRenderer(
        registry=registry,
        upstreams=upstreams,
        environment=environment,
        policy=CachePolicy(),
        assets=assets,
        **kwargs,  # type: ignore[arg-type]
    )


async def client_for(
    renderer: PageRenderer, metrics: Metrics, exporter: InMemorySpanExporter, *, name_loads: bool = False
) -> httpx.AsyncClient:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    observability = Observability(metrics=metrics, provider=provider)
    renderer_app = RendererApp(renderer=renderer, name_loads=name_loads)
    app = observability.instrument(renderer_app.starlette(), service="renderer")
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app, raise_app_exceptions=False), base_url="http://r")


@pytest.fixture
async def client(
    registry: Registry,
    upstreams: Upstreams,
    environment: jinja2.Environment,
    assets: Assets,
    metrics: Metrics,
    exporter: InMemorySpanExporter,
    records: list[PageRecord],
) -> AsyncIterator[httpx.AsyncClient]:
    renderer = renderer_for(
        registry, upstreams, environment, assets, observers=[metrics.page_observer("renderer"), records.append]
    )
    async with await client_for(renderer, metrics, exporter) as client:
        yield client


@pytest.fixture(autouse=True)
def bff() -> respx.MockRouter:
    with respx.mock(base_url=BFF, assert_all_called=False) as router:
        router.route(host="r").pass_through()
        router.get("/items/1", name="item").respond(json={"name": "Lamp", "price": "€10"})
        router.get("/banner", name="banner").respond(json={"text": "Sale"})
        yield router


def value(metrics: Metrics, name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(name, labels) or 0.0


async def test_a_page_has_server_timing_within_the_measured_duration(client: httpx.AsyncClient) -> None:
    started = time.perf_counter()
    response = await client.get("/items/1")
    measured = (time.perf_counter() - started) * 1000
    timing = server_timing.parse(response.headers["server-timing"])
    assert {"total", "data", "render", "load.1", "load.2"} <= timing.keys()
    assert 0 < timing["total"] <= measured
    assert timing["data"] <= timing["total"] and timing["render"] <= timing["total"]


async def test_public_server_timing_names_no_bff_path_or_key(client: httpx.AsyncClient) -> None:
    value = (await client.get("/items/1")).headers["server-timing"]
    assert "desc" not in value
    assert not any(word in value for word in ("shop", "/items", "item_id", "banner", "load.item"))


async def test_development_server_timing_names_each_loads_bff_and_path(
    registry: Registry,
    upstreams: Upstreams,
    environment: jinja2.Environment,
    assets: Assets,
    metrics: Metrics,
    exporter: InMemorySpanExporter,
) -> None:
    renderer = renderer_for(registry, upstreams, environment, assets)
    async with await client_for(renderer, metrics, exporter, name_loads=True) as client:
        value = (await client.get("/items/1")).headers["server-timing"]
    assert {"load.item", "load.banner"} <= server_timing.parse(value).keys()
    assert 'desc="shop /items/{item_id}"' in value


async def test_pages_and_components_are_counted_by_app_and_outcome(
    client: httpx.AsyncClient, metrics: Metrics, bff: respx.MockRouter
) -> None:
    await client.get("/items/1")
    bff["banner"].respond(503)
    await client.get("/items/1")
    assert value(metrics, "oberon_page_render_duration_seconds_count", service="renderer", app="shop-page") == 2
    banner = {"service": "renderer", "component": "hero-banner", "version": "1.0.0"}
    assert value(metrics, "oberon_component_render_duration_seconds_count", **banner, outcome="ok") == 1
    assert value(metrics, "oberon_component_render_duration_seconds_count", **banner, outcome="fallback") == 1
    request = {"service": "renderer", "route": "/items/{item_id:int}", "method": "GET", "status_class": "2xx"}
    assert value(metrics, "oberon_http_request_duration_seconds_count", **request) == 2
    # The data source's declared template, as its breaker knows it.
    call = {"service": "renderer", "upstream": "shop", "endpoint": "/items/{item_id}", "method": "GET", "outcome": "ok"}
    assert value(metrics, "oberon_client_request_duration_seconds_count", **call) == 2


async def test_a_template_that_raises_counts_as_an_error_not_a_fallback(
    site: Path,
    upstreams: Upstreams,
    environment: jinja2.Environment,
    assets: Assets,
    metrics: Metrics,
    exporter: InMemorySpanExporter,
) -> None:
    (site / "components/greeting/template.html").write_text("{{ state.nothing.at.all }}")
    registry = load_registry([site / "components"], environment=environment)
    renderer = renderer_for(registry, upstreams, environment, assets, observers=[metrics.page_observer("renderer")])
    async with await client_for(renderer, metrics, exporter) as client:
        assert (await client.get("/items/1")).status_code == 200
    greeting = {"service": "renderer", "component": "greeting", "version": "1.0.0"}
    assert value(metrics, "oberon_component_render_duration_seconds_count", **greeting, outcome="error") == 1


async def test_observers_see_a_page_a_critical_component_failed(
    site: Path,
    upstreams: Upstreams,
    environment: jinja2.Environment,
    assets: Assets,
    metrics: Metrics,
    exporter: InMemorySpanExporter,
    records: list[PageRecord],
    bff: respx.MockRouter,
) -> None:
    card = site / "components/item-card/component.toml"
    card.write_text(card.read_text().replace("timeout_ms = 300", "timeout_ms = 300\ncritical = true"))
    registry = load_registry([site / "components"], environment=environment)
    renderer = renderer_for(registry, upstreams, environment, assets, observers=[records.append])
    bff["item"].respond(503)
    async with await client_for(renderer, metrics, exporter) as client:
        assert (await client.get("/items/1")).status_code == 503
    (record,) = records
    assert record.failed and record.root.name == "shop-page"
    assert {fragment.component.name: fragment.result for fragment in record.fragments}["item-card"] == "fallback"


async def test_spans_for_the_request_each_component_and_each_bff_call(
    client: httpx.AsyncClient, exporter: InMemorySpanExporter, bff: respx.MockRouter
) -> None:
    bff["banner"].respond(503)
    await client.get("/items/1", headers={"traceparent": f"00-{TRACE}-00f067aa0ba902b7-01"})
    spans = {span.name: span for span in exporter.get_finished_spans()}
    server = spans["GET renderer"]
    assert f"{server.context.trace_id:032x}" == TRACE
    for name in ("render item-card", "render hero-banner", "render shop-page", "GET shop /items/{item_id}"):
        assert spans[name].context.trace_id == server.context.trace_id, name
    assert spans["render hero-banner"].attributes["oberon.outcome"] == "fallback"  # type: ignore[index]
    assert spans["GET shop /banner"].attributes["oberon.outcome"] == "error"  # type: ignore[index]
    assert spans["GET shop /items/{item_id}"].parent.span_id == server.context.span_id  # type: ignore[union-attr]
    # The BFF saw the call's own span as its parent.
    sent = TraceContext.parse(bff["item"].calls.last.request.headers["traceparent"])
    assert sent is not None and sent.span_id == f"{spans['GET shop /items/{item_id}'].context.span_id:016x}"


async def test_the_access_line_names_the_app_route_and_the_fallbacks(
    client: httpx.AsyncClient, bff: respx.MockRouter, caplog: pytest.LogCaptureFixture
) -> None:
    bff["banner"].respond(503)
    with caplog.at_level(logging.INFO, logger=ACCESS_LOGGER):
        await client.get("/items/1", headers={"X-Oberon-Request-Id": "req-7"})
    (line,) = [record for record in caplog.records if record.name == ACCESS_LOGGER]
    assert line.route == "/items/{item_id:int}"  # type: ignore[attr-defined]
    assert line.fallbacks == ["hero-banner"]  # type: ignore[attr-defined]
    assert line.request_id == "req-7" and line.status == 200  # type: ignore[attr-defined]
