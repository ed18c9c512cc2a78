"""Observability of a real `oberon up`: /metrics (on the admin listener) after a scripted sequence, Server-Timing,
traces and access logs."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from oberon.pipeline import server_timing
from tests.e2e.conftest import ADMIN, Running, start_server

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@pytest.fixture(scope="module")
def running() -> Iterator[Running]:
    with start_server() as running:
        yield running


@pytest.fixture(scope="module")
def scripted(running: Running) -> Iterator[tuple[httpx.Client, Samples]]:
    """Home, three event pages, then recommendations down and a fourth: the metrics scraped after that."""
    with httpx.Client(base_url=running.base_url, timeout=10) as site:
        assert site.get("/").status_code == 200
        for event_id in (1, 2, 3):
            assert site.get(f"/e/{event_id}").status_code == 200
        assert site.put("/_backends/recommendations/_faults", json={"down": True}, headers=ADMIN).status_code == 200
        broken = site.get("/e/4")
        assert broken.status_code == 200
        assert 'data-oberon-component="related-events" data-oberon-version="1.0.0" data-oberon-outcome="fallback"' in (
            broken.text
        )
        assert site.put("/_backends/recommendations/_faults", json={}, headers=ADMIN).status_code == 200
        # A service counts a request once its answer is sent: the last one may land just after the client has it.
        deadline = time.monotonic() + 5
        while True:
            response = httpx.get(f"{running.admin_url}/metrics", timeout=10)
            assert response.status_code == 200
            assert response.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
            samples = parse(response.text)
            healed = {"service": "gateway", "route": "/_backends/recommendations/*", "method": "PUT"}
            if value(samples, "oberon_http_request_duration_seconds_count", **healed) == 2:
                break
            assert time.monotonic() < deadline, "the gateway never counted its last request"
            time.sleep(0.05)
        yield site, samples


def parse(exposition: str) -> Samples:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(exposition)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    """The sum of the samples of `name` whose labels include `labels`."""
    wanted = set(labels.items())
    return sum(found for (sample, labelset), found in samples.items() if sample == name and wanted <= labelset)


def test_requests_are_counted_per_service_by_route_template(scripted: tuple[httpx.Client, Samples]) -> None:
    _, samples = scripted
    requests = "oberon_http_request_duration_seconds_count"
    page = {"service": "renderer", "route": "/e/{event_id:int}", "method": "GET", "status_class": "2xx"}
    assert value(samples, requests, **page) == 4
    assert value(samples, requests, service="renderer", route="/", status_class="2xx") == 1
    assert value(samples, requests, service="gateway", route="/*", method="GET", status_class="2xx") == 5
    fault = {"service": "gateway", "route": "/_backends/recommendations/*", "method": "PUT", "status_class": "2xx"}
    assert value(samples, requests, **fault) == 2  # broken, then healed
    assert value(samples, requests, service="bff:events", route="/events/{event_id:int}", status_class="2xx") >= 4
    assert value(samples, requests, service="backend:recommendations", status_class="5xx") >= 1


def test_pages_and_components_are_counted_with_their_outcomes(scripted: tuple[httpx.Client, Samples]) -> None:
    _, samples = scripted
    assert value(samples, "oberon_page_render_duration_seconds_count", service="renderer", app="event-page") == 4
    assert value(samples, "oberon_page_render_duration_seconds_count", service="renderer", app="home-page") == 1
    renders = "oberon_component_render_duration_seconds_count"
    assert value(samples, renders, component="related-events", version="1.0.0", outcome="ok") == 3
    assert value(samples, renders, component="related-events", version="1.0.0", outcome="fallback") == 1
    assert value(samples, renders, component="event-hero", outcome="ok") == 4
    assert value(samples, renders, outcome="error") == 0


def test_client_side_waits_are_counted_by_caller_upstream_and_outcome(scripted: tuple[httpx.Client, Samples]) -> None:
    _, samples = scripted
    calls = "oberon_client_request_duration_seconds_count"
    hero = "/events/{event_id}"  # the data source's declared template
    assert value(samples, calls, service="renderer", upstream="events", endpoint=hero, outcome="ok") == 4
    assert value(samples, calls, service="renderer", upstream="discovery", outcome="error") >= 1
    assert value(samples, calls, service="bff:discovery", upstream="recommendations", outcome="error") >= 1
    assert value(samples, calls, service="bff:events", upstream="events", endpoint="/events/{id}") >= 4
    assert value(samples, calls, service="gateway", upstream="renderer", endpoint="/*", outcome="ok") == 5
    cache = "oberon_cache_requests_total"
    assert value(samples, cache, service="renderer", cache="upstream:events", result="miss") >= 4
    assert value(samples, cache, service="bff:events") >= 4


def test_breakers_and_the_mode_are_shown(scripted: tuple[httpx.Client, Samples]) -> None:
    _, samples = scripted
    breaker = {"service": "renderer", "upstream": "events"}
    assert value(samples, "oberon_circuit_breaker_state", **breaker, state="closed") == 1
    assert value(samples, "oberon_circuit_breaker_state", **breaker, state="open") == 0
    assert value(samples, "oberon_degradation_mode", service="renderer", mode="normal") == 1


def test_label_values_are_templates_never_ids(scripted: tuple[httpx.Client, Samples]) -> None:
    _, samples = scripted
    for name, labels in samples:
        for label, text in labels:
            assert not re.search(r"/\d+(/|$)", text), f"{name}{{{label}={text!r}}} carries an id"


def test_a_page_has_server_timing_within_the_measured_duration(running: Running) -> None:
    with httpx.Client(base_url=running.base_url, timeout=10) as site:
        started = time.perf_counter()
        response = site.get("/e/7")
        measured = (time.perf_counter() - started) * 1000
    timing = server_timing.parse(response.headers["server-timing"])
    assert {"total", "data", "render", "load.1"} <= timing.keys()
    assert 0 < timing["total"] <= measured
    assert timing["data"] <= timing["total"]
    # In public it names no BFF, upstream or path: durations only.
    value = response.headers["server-timing"]
    assert "desc" not in value and not re.search(r"events|discovery|checkout|/e/|\{", value), value


def access_lines(running: Running) -> list[dict[str, Any]]:
    lines = []
    for line in running.output().splitlines():
        if line.startswith("{"):
            entry = json.loads(line)
            if entry.get("logger") == "oberon.access":
                lines.append(entry)
    return lines


def test_one_trace_and_one_request_id_through_every_hop(running: Running) -> None:
    with httpx.Client(base_url=running.base_url, timeout=10) as site:
        response = site.get("/e/9", headers={"traceparent": f"00-{TRACE}-00f067aa0ba902b7-01"})
    request_id = response.headers["x-oberon-request-id"]
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        lines = [line for line in access_lines(running) if line.get("request_id") == request_id]
        if {"gateway", "renderer", "bff:events", "backend:events"} <= {line["service"] for line in lines}:
            break
        time.sleep(0.1)
    assert {"gateway", "renderer", "bff:events", "backend:events"} <= {line["service"] for line in lines}
    assert {line["trace_id"] for line in lines} == {TRACE}
    (page,) = [line for line in lines if line["service"] == "renderer"]
    assert page["route"] == "/e/{event_id:int}" and page["status"] == 200 and page["fallbacks"] == []
    assert page["path"] == "/e/9" and page["duration_ms"] > 0 and page["level"] == "info"


def test_split_services_each_answer_metrics_for_themselves_on_their_admin_listener() -> None:
    with start_server("--split") as split, httpx.Client(base_url=split.base_url, timeout=10) as site:
        assert site.get("/e/11").status_code == 200
        services = split.services()
        admins = split.admin_urls()
        assert set(admins) == set(services) and admins["gateway"] == split.admin_url
        found = re.search(r"^oberon: prometheus targets in (\S+)", split.output(), re.M)
        assert found is not None
        targets = json.loads(Path(found.group(1)).read_text())
        assert {group["labels"]["oberon_service"] for group in targets} == set(services)
        # Prometheus scrapes the admin listeners, never the public ports.
        assert {group["targets"][0] for group in targets} == {url.removeprefix("http://") for url in admins.values()}
        for name, (url, _) in services.items():
            assert httpx.get(f"{url}/metrics", timeout=10).status_code == 404, name
            exposition = httpx.get(f"{admins[name]}/metrics", timeout=10).text
            labelled = set(re.findall(r'service="([^"]+)"', exposition))
            assert labelled == {name}, (name, labelled)
        renderer = parse(httpx.get(f"{admins['renderer']}/metrics", timeout=10).text)
        assert value(renderer, "oberon_page_render_duration_seconds_count", app="event-page") == 1
        assert value(renderer, "oberon_client_request_duration_seconds_count", upstream="events", outcome="ok") >= 1
