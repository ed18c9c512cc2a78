"""Metrics: client waits and caches from call records, breaker and mode gauges, exposition, multiprocess mode."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
import respx
from markupsafe import Markup
from prometheus_client.parser import text_string_to_metric_families

from oberon.client.breaker import BreakerSettings, CircuitBreaker
from oberon.client.transport import HttpxTransport
from oberon.client.upstream import CallRecord, Upstream, Upstreams
from oberon.exceptions import ConfigError, UpstreamStatusError
from oberon.ops.metrics import MULTIPROC_ENV, Metrics, RenderRecord, status_class
from oberon.pipeline.page_types import PageRecord
from oberon.pipeline.rendering import Fragment
from oberon.pipeline.server_timing import Timing
from oberon.types import Mode, Outcome

BASE = "http://events.test"


def value(metrics: Metrics, name: str, **labels: str) -> float:
    found = metrics.registry.get_sample_value(name, labels)
    return 0.0 if found is None else found


def test_status_class_groups_codes() -> None:
    assert [status_class(code) for code in (200, 304, 404, 503, 42)] == ["2xx", "3xx", "4xx", "5xx", "other"]


def test_call_observer_records_the_wait_by_endpoint_template_and_outcome() -> None:
    metrics = Metrics()
    observe = metrics.call_observer("renderer")
    observe(CallRecord("events", "GET", "/events/{id}", "ok", 0.012))
    observe(CallRecord("events", "GET", "/events/{id}", "timeout", 0.5))
    labels = {"service": "renderer", "upstream": "events", "endpoint": "/events/{id}", "method": "GET"}
    assert value(metrics, "oberon_client_request_duration_seconds_count", **labels, outcome="ok") == 1
    assert value(metrics, "oberon_client_request_duration_seconds_sum", **labels, outcome="timeout") == 0.5


def test_call_observer_counts_cache_hits_misses_and_stale_copies_of_gets_only() -> None:
    metrics = Metrics()
    observe = metrics.call_observer("bff:events")
    for outcome in ("ok", "cached", "cached", "stale", "error"):
        observe(CallRecord("venues", "GET", "/venues/{id}", outcome, 0.001))
    observe(CallRecord("venues", "POST", "/venues", "ok", 0.001))
    cache = {"service": "bff:events", "cache": "upstream:venues"}
    assert value(metrics, "oberon_cache_requests_total", **cache, result="hit") == 2
    assert value(metrics, "oberon_cache_requests_total", **cache, result="miss") == 2
    assert value(metrics, "oberon_cache_requests_total", **cache, result="stale") == 1


@pytest.mark.anyio
async def test_a_real_upstream_reports_its_calls_with_ids_replaced() -> None:
    metrics = Metrics()
    upstream = Upstream.create(
        "events", httpx.AsyncClient(base_url=BASE), observers=[metrics.call_observer("renderer")]
    )
    try:
        with respx.mock(base_url=BASE) as mock:
            mock.get("/events/7").respond(json={"id": 7}, headers={"Cache-Control": "max-age=60"})
            mock.get("/events/8").respond(404)
            await upstream.get_json("/events/7")
            await upstream.get_json("/events/7")
            with pytest.raises(UpstreamStatusError):
                await upstream.get_json("/events/8")
    finally:
        await upstream.aclose()
    labels = {"service": "renderer", "upstream": "events", "endpoint": "/events/{id}", "method": "GET"}
    assert value(metrics, "oberon_client_request_duration_seconds_count", **labels, outcome="ok") == 1
    assert value(metrics, "oberon_client_request_duration_seconds_count", **labels, outcome="cached") == 1
    assert value(metrics, "oberon_client_request_duration_seconds_count", **labels, outcome="client_error") == 1
    exposition = metrics.exposition().decode()
    assert "/events/7" not in exposition and "/events/8" not in exposition


def test_page_and_component_renders_are_recorded_by_app_version_and_outcome() -> None:
    metrics = Metrics()
    renders = (
        RenderRecord("event-hero", "1.0.0", "ok", 0.0004),
        RenderRecord("related-events", "1.0.0", "fallback", 0.0002),
    )
    metrics.observe_page("renderer", "event-page", 0.018, renders)
    assert value(metrics, "oberon_page_render_duration_seconds_count", service="renderer", app="event-page") == 1
    component = {"service": "renderer", "component": "related-events", "version": "1.0.0", "outcome": "fallback"}
    assert value(metrics, "oberon_component_render_duration_seconds_count", **component) == 1


def test_a_canary_and_stable_version_of_one_component_are_told_apart() -> None:
    metrics = Metrics()
    metrics.observe_page("renderer", "event-page", 0.01, (RenderRecord("ticket-selector", "1.0.0", "ok", 0.0003),))
    metrics.observe_page("renderer", "event-page", 0.01, (RenderRecord("ticket-selector", "1.1.0", "error", 0.002),))
    renders = "oberon_component_render_duration_seconds_count"
    selector = {"service": "renderer", "component": "ticket-selector"}
    assert value(metrics, renders, **selector, version="1.0.0", outcome="ok") == 1
    assert value(metrics, renders, **selector, version="1.0.0", outcome="error") == 0
    assert value(metrics, renders, **selector, version="1.1.0", outcome="error") == 1
    families = text_string_to_metric_families(metrics.exposition().decode())
    (family,) = [family for family in families if family.name == "oberon_component_render_duration_seconds"]
    assert "Bounded" in family.documentation


async def _failing(request: httpx.Request) -> httpx.Response:
    return httpx.Response(503)


@pytest.mark.anyio
async def test_breaker_states_and_the_mode_are_read_at_scrape_time() -> None:
    metrics = Metrics()
    breaker = CircuitBreaker(settings=BreakerSettings(min_calls=1, failure_ratio=0.5))
    client = httpx.AsyncClient(base_url=BASE, transport=httpx.MockTransport(_failing))
    upstreams = Upstreams({"events": Upstream("events", transport=HttpxTransport("events", client), breaker=breaker)})
    mode = Mode.NORMAL
    metrics.watch_upstreams("renderer", upstreams)
    metrics.watch_mode("renderer", lambda: mode)
    metrics.exposition()
    state = {"service": "renderer", "upstream": "events"}
    assert value(metrics, "oberon_circuit_breaker_state", **state, state="closed") == 1
    assert value(metrics, "oberon_degradation_mode", service="renderer", mode="degraded") == 0

    breaker.record(ok=False)
    mode = Mode.DEGRADED
    metrics.exposition()
    assert value(metrics, "oberon_circuit_breaker_state", **state, state="open") == 1
    assert value(metrics, "oberon_circuit_breaker_state", **state, state="closed") == 0
    assert value(metrics, "oberon_degradation_mode", service="renderer", mode="degraded") == 1
    await upstreams.aclose()


def test_states_are_refreshed_while_serving_at_most_once_per_interval() -> None:
    now = [100.0]
    calls = []
    metrics = Metrics(refresh_seconds=1.0, clock=lambda: now[0])

    def mode() -> Mode:
        calls.append(now[0])
        return Mode.NORMAL

    metrics.watch_mode("renderer", mode)
    metrics.refresh_now_and_then()
    metrics.refresh_now_and_then()
    now[0] += 1.5
    metrics.refresh_now_and_then()
    assert calls == [100.0, 101.5]


def test_exposition_is_the_prometheus_text_format_with_every_family() -> None:
    metrics = Metrics()
    metrics.observe_request("renderer", "/e/{event_id:int}", "GET", 200, 0.01)
    families = {family.name for family in text_string_to_metric_families(metrics.exposition().decode())}
    assert {
        "oberon_http_request_duration_seconds",
        "oberon_page_render_duration_seconds",
        "oberon_pages_streamed",
        "oberon_component_render_duration_seconds",
        "oberon_client_request_duration_seconds",
        "oberon_cache_requests",
        "oberon_circuit_breaker_state",
        "oberon_degradation_mode",
    } <= families


def test_from_environ_refuses_a_multiprocess_dir_that_does_not_exist(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not a directory"):
        Metrics.from_environ({MULTIPROC_ENV: str(tmp_path / "missing")})


def test_multiprocess_mode_needs_the_variable_before_import(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="before prometheus_client is imported"):
        Metrics(multiprocess_dir=tmp_path)


WORKER = textwrap.dedent(
    """
    import os, sys
    from oberon.client.upstream import CallRecord
    from oberon.ops.metrics import Metrics
    metrics = Metrics.from_environ(os.environ)
    for _ in range(int(sys.argv[1])):
        metrics.observe_request("renderer", "/e/{event_id:int}", "GET", 200, 0.01)
    metrics.call_observer("renderer")(CallRecord("events", "GET", "/events/{id}", "cached", 0.001))
    metrics.refresh()
    if sys.argv[2:] == ["scrape"]:
        sys.stdout.write(metrics.exposition().decode())
    """
)


def test_multiprocess_mode_sums_the_workers_series(tmp_path: Path) -> None:
    environ = {**os.environ, MULTIPROC_ENV: str(tmp_path)}

    def worker(*args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-c", WORKER, *args], env=environ, capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    worker("3")
    worker("4")
    exposition = worker("0", "scrape")
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(exposition)
        for sample in family.samples
    }
    request = (("method", "GET"), ("route", "/e/{event_id:int}"), ("service", "renderer"), ("status_class", "2xx"))
    assert samples[("oberon_http_request_duration_seconds_count", request)] == 7
    hits = (("cache", "upstream:events"), ("result", "hit"), ("service", "renderer"))
    assert samples[("oberon_cache_requests_total", hits)] == 3


def test_registry_observer_shows_the_revision_served_failed_syncs_and_the_last_answer() -> None:
    metrics = Metrics()
    observe = metrics.registry_observer("renderer")
    observe(4, False)
    answered = value(metrics, "oberon_registry_last_sync_timestamp_seconds", service="renderer")
    assert answered > 0
    observe(4, True)
    observe(4, True)
    assert value(metrics, "oberon_registry_revision", service="renderer") == 4
    assert value(metrics, "oberon_registry_sync_failures_total", service="renderer") == 2
    assert value(metrics, "oberon_registry_last_sync_timestamp_seconds", service="renderer") == answered
    observe(5, False)
    assert value(metrics, "oberon_registry_revision", service="renderer") == 5


def test_the_page_observer_counts_each_component_by_version_and_outcome_and_the_page_cache_by_result() -> None:
    metrics = Metrics()
    observe = metrics.page_observer("renderer")

    def component(name: str, version: str) -> Any:
        manifest = SimpleNamespace(name=name, version_text=version, ident=f"{name}@{version}")
        return SimpleNamespace(name=name, manifest=manifest)

    app, stable, canary = component("event-page", "1.0.0"), component("hero", "1.0.0"), component("hero", "1.1.0")
    pages = [  # one observer, its series found again from the second page on
        [Fragment(stable, Markup(""), Outcome.OK, seconds=0.001)],
        [Fragment(stable, Markup(""), Outcome.FALLBACK, "timed out", seconds=0.002)],
        [Fragment(stable, Markup(""), Outcome.FALLBACK, "raised", raised=True, seconds=0.003)],
        [Fragment(stable, Markup(""), Outcome.OK, seconds=0.001), Fragment(canary, Markup(""), Outcome.OK)],
    ]
    for fragments in pages:
        observe(PageRecord(app, tuple(fragments), Timing(total=0.01), page_cache="miss"))
    observe(PageRecord(app, (), Timing(), page_cache="hit"))
    renders = "oberon_component_render_duration_seconds_count"
    hero = {"service": "renderer", "component": "hero"}
    assert value(metrics, renders, **hero, version="1.0.0", outcome="ok") == 2
    assert value(metrics, renders, **hero, version="1.0.0", outcome="fallback") == 1
    assert value(metrics, renders, **hero, version="1.0.0", outcome="error") == 1
    assert value(metrics, renders, **hero, version="1.1.0", outcome="ok") == 1
    assert value(metrics, "oberon_page_render_duration_seconds_count", service="renderer", app="event-page") == 4
    cache = {"service": "renderer", "cache": "page"}
    assert value(metrics, "oberon_cache_requests_total", **cache, result="miss") == 4
    assert value(metrics, "oberon_cache_requests_total", **cache, result="hit") == 1
