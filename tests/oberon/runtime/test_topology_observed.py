"""The demo site built in process (embedded topology), observed: one trace through every hop, one /metrics for all."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import httpx
import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from oberon.ops.observability import Observability, write_scrape_targets
from oberon.pipeline.assets import build_assets
from oberon.pipeline.registry import load_registry
from oberon.pipeline.rendering import create_environment
from oberon.runtime.settings import Settings
from oberon.runtime.topology import Embedded, build_embedded
from oberon.site import Site

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).resolve().parents[3]
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def embedded(tmp_path: Path, exporter: InMemorySpanExporter) -> Embedded:
    environment = create_environment()
    demo = Site.load(ROOT / "oberon.toml")
    registry = load_registry(demo.components, environment=environment)
    build_assets(registry, tmp_path / "assets")
    settings = replace(Settings(site_file=ROOT / "oberon.toml"), build_dir=tmp_path / "assets")
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    observability = Observability(provider=provider, access_log=False)
    return build_embedded(demo, settings, registry=registry, environment=environment, observability=observability)


@pytest.fixture
async def site(embedded: Embedded) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=embedded.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8000") as client:
        yield client


def by_service(spans: tuple[ReadableSpan, ...], service: str, kind: str) -> list[ReadableSpan]:
    return [
        span
        for span in spans
        if span.attributes and span.attributes.get("oberon.service") == service and span.kind.name == kind
    ]


async def test_one_trace_from_the_gateway_to_the_backend(
    site: httpx.AsyncClient, exporter: InMemorySpanExporter
) -> None:
    response = await site.get("/e/5", headers={"traceparent": f"00-{TRACE}-00f067aa0ba902b7-01"})
    assert response.status_code == 200
    spans = exporter.get_finished_spans()
    assert {f"{span.context.trace_id:032x}" for span in spans} == {TRACE}
    ids = {span.context.span_id: span for span in spans}
    (gateway,) = by_service(spans, "gateway", "SERVER")
    (renderer,) = by_service(spans, "renderer", "SERVER")
    assert renderer.parent is not None and renderer.parent.span_id == gateway.context.span_id
    (hero_call,) = [
        span for span in by_service(spans, "renderer", "CLIENT") if span.name == "GET events /events/{event_id}"
    ]
    (bff,) = [
        span
        for span in by_service(spans, "bff:events", "SERVER")
        if span.parent and span.parent.span_id == hero_call.context.span_id
    ]
    backend_calls = [
        span
        for span in by_service(spans, "bff:events", "CLIENT")
        if span.parent and span.parent.span_id == bff.context.span_id
    ]
    assert backend_calls and all(call.attributes["oberon.outcome"] == "ok" for call in backend_calls)  # type: ignore[index]
    backends = [
        span
        for span in by_service(spans, "backend:events", "SERVER")
        if span.parent and span.parent.span_id in {c.context.span_id for c in backend_calls}
    ]
    assert backends
    renders = [span for span in spans if span.name.startswith("render ")]
    assert {span.name for span in renders} >= {"render event-page", "render event-hero", "render related-events"}
    assert all(ids[span.parent.span_id] is renderer for span in renders if span.parent)  # type: ignore[union-attr]


async def test_one_metrics_endpoint_on_the_admin_listener_shows_every_service(
    site: httpx.AsyncClient, embedded: Embedded
) -> None:
    assert (await site.get("/e/6")).status_code == 200
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=embedded.admin), base_url="http://admin") as admin:
        exposition = (await admin.get("/metrics")).text
        health = (await admin.get("/_oberon/health")).json()
        registry = (await admin.get("/_oberon/registry")).json()
        mode = (await admin.get("/_oberon/degradation")).json()
    for service in ("gateway", "renderer", "bff:events", "bff:discovery", "bff:checkout", "backend:events"):
        assert f'service="{service}"' in exposition, service
    assert health["service"] == "gateway" and health["upstreams"]["renderer"]["reachable"] is True
    assert {"event-page", "event-hero"} <= {entry["name"] for entry in registry}
    assert mode["mode"] == "normal"


@pytest.mark.parametrize("path", ["/metrics", "/_oberon/registry", "/_oberon/degradation", "/_oberon/degradation/"])
async def test_the_public_entrance_serves_none_of_the_internals(site: httpx.AsyncClient, path: str) -> None:
    assert (await site.get(path)).status_code == 404
    assert (await site.put(path, json={"mode": "degraded"})).status_code == 404
    health = await site.get("/_oberon/health")
    assert health.json() == {"status": "ok"}


def test_split_topology_targets_are_written_for_file_discovery(tmp_path: Path) -> None:
    path = tmp_path / "build/prometheus/targets.json"
    write_scrape_targets(path, {"gateway": "127.0.0.1:8000", "renderer": "127.0.0.1:41234"})
    assert json.loads(path.read_text()) == [
        {"targets": ["127.0.0.1:8000"], "labels": {"oberon_service": "gateway"}},
        {"targets": ["127.0.0.1:41234"], "labels": {"oberon_service": "renderer"}},
    ]
