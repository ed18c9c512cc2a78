"""The layer that observes each request: latency by route template, trace propagation, one log line."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import httpx
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Mount, Route

from oberon.logs import ACCESS_LOGGER
from oberon.ops.metrics import Metrics
from oberon.ops.observability import Observability, RequestInfo
from oberon.tracing import TraceContext

pytestmark = pytest.mark.anyio

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
HEADER = f"00-{TRACE}-00f067aa0ba902b7-01"


async def echo(request: Request) -> Response:
    return JSONResponse({"traceparent": request.headers.get("traceparent")})


async def page(request: Request) -> Response:
    info = RequestInfo.current()
    info.route = "/e/{event_id:int}"
    info.fallbacks = ("related-events",)
    return PlainTextResponse("page")


async def broken(request: Request) -> Response:
    raise RuntimeError("boom")


def service() -> Starlette:
    inner = Starlette(routes=[Route("/events/{event_id:int}", echo)])
    return Starlette(
        routes=[
            Route("/echo", echo),
            Route("/broken", broken),
            Mount("/bff/events", app=inner),
            Route("/{path:path}", page),
        ]
    )


@pytest.fixture
def metrics() -> Metrics:
    return Metrics()


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
async def client(metrics: Metrics, exporter: InMemorySpanExporter) -> AsyncIterator[httpx.AsyncClient]:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    observability = Observability(metrics=metrics, provider=provider)
    app = observability.instrument(service(), service="renderer")
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://renderer") as client:
        yield client


def count(metrics: Metrics, route: str, status_class: str = "2xx", method: str = "GET") -> float:
    labels = {"service": "renderer", "route": route, "method": method, "status_class": status_class}
    return metrics.registry.get_sample_value("oberon_http_request_duration_seconds_count", labels) or 0.0


async def test_requests_are_counted_by_route_template_never_by_path(
    client: httpx.AsyncClient, metrics: Metrics
) -> None:
    for event_id in (1, 2, 3):
        assert (await client.get(f"/bff/events/events/{event_id}")).status_code == 200
    await client.get("/echo")
    assert count(metrics, "/bff/events/events/{event_id:int}") == 3
    assert count(metrics, "/echo") == 1
    exposition = metrics.exposition().decode()
    assert "/events/1" not in exposition and "/events/2" not in exposition


async def test_an_endpoint_can_name_its_route_more_precisely(client: httpx.AsyncClient, metrics: Metrics) -> None:
    await client.get("/e/42")
    assert count(metrics, "/e/{event_id:int}") == 1


async def test_an_unhandled_error_counts_as_a_5xx(client: httpx.AsyncClient, metrics: Metrics) -> None:
    assert (await client.get("/broken")).status_code == 500
    assert count(metrics, "/broken", "5xx") == 1


async def test_unmatched_requests_share_one_label() -> None:
    metrics = Metrics()
    app = Observability(metrics=metrics).instrument(Starlette(routes=[Route("/echo", echo)]), service="renderer")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://x") as client:
        for path in ("/nope/1", "/nope/2"):
            assert (await client.get(path)).status_code == 404
    assert count(metrics, "unmatched", "4xx") == 2




async def test_the_request_carries_this_service_span_as_traceparent(
    client: httpx.AsyncClient, exporter: InMemorySpanExporter
) -> None:
    forwarded = TraceContext.parse((await client.get("/echo", headers={"traceparent": HEADER})).json()["traceparent"])
    (span,) = exporter.get_finished_spans()
    assert forwarded is not None and forwarded.trace_id == TRACE
    assert forwarded.span_id == f"{span.context.span_id:016x}"
    assert span.attributes["http.route"] == "/echo"  # type: ignore[index]
    assert span.attributes["oberon.outcome"] == "ok"  # type: ignore[index]


async def test_a_malformed_traceparent_starts_a_new_trace(client: httpx.AsyncClient) -> None:
    forwarded = (await client.get("/echo", headers={"traceparent": "00-nonsense"})).json()["traceparent"]
    context = TraceContext.parse(forwarded)
    assert context is not None and context.trace_id != TRACE


async def test_one_access_log_line_per_request_with_id_status_and_fallbacks(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger=ACCESS_LOGGER):
        await client.get("/e/42", headers={"X-Oberon-Request-Id": "req-42"})
    (record,) = [record for record in caplog.records if record.name == ACCESS_LOGGER]
    assert record.request_id == "req-42"  # type: ignore[attr-defined]
    assert record.status == 200  # type: ignore[attr-defined]
    assert record.route == "/e/{event_id:int}"  # type: ignore[attr-defined]
    assert record.fallbacks == ["related-events"]  # type: ignore[attr-defined]
    assert record.duration_ms > 0  # type: ignore[attr-defined]


async def test_a_malformed_request_id_is_not_logged(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger=ACCESS_LOGGER):
        await client.get("/echo", headers={"X-Oberon-Request-Id": "bad id\nforged"})
    (record,) = [record for record in caplog.records if record.name == ACCESS_LOGGER]
    assert record.request_id is None  # type: ignore[attr-defined]
