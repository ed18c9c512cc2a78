"""Recording on the hot path: exact counts and sums, bucket edges, the library's own exposition, multiprocess mode."""

from __future__ import annotations

import math
import os
import re
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from oberon.client.upstream import CallRecord
from oberon.ops.metrics import (
    LATENCY_BUCKETS,
    MULTIPROC_ENV,
    RENDER_BUCKETS,
    Metrics,
    RenderRecord,
    _RecordedCounter,
    _RecordedHistogram,
)

REQUEST = {"service": "renderer", "route": "/e/{event_id:int}", "method": "GET", "status_class": "2xx"}
REQUESTS = "oberon_http_request_duration_seconds"


def value(metrics: Metrics, name: str, **labels: str) -> float:
    found = metrics.registry.get_sample_value(name, labels)
    return 0.0 if found is None else found


def bucket(metrics: Metrics, le: str) -> float:
    return value(metrics, f"{REQUESTS}_bucket", **REQUEST, le=le)


def test_counts_and_sums_are_exact_after_many_observations() -> None:
    metrics = Metrics()
    amounts = [(k % 37) * 0.0007 for k in range(5000)]
    reference = Histogram("reference", "", buckets=LATENCY_BUCKETS, registry=None)
    for amount in amounts:
        metrics.observe_request("renderer", "/e/{event_id:int}", "GET", 200, amount)
        reference.observe(amount)
    assert value(metrics, f"{REQUESTS}_count", **REQUEST) == 5000
    # Added in the same order as prometheus_client adds them: the very same float.
    total = 0.0
    for amount in amounts:
        total += amount
    assert value(metrics, f"{REQUESTS}_sum", **REQUEST) == total
    expected = {sample.labels["le"]: sample.value for sample in reference.collect()[0].samples if "le" in sample.labels}
    assert {le: bucket(metrics, le) for le in expected} == expected


def test_a_value_equal_to_a_bound_counts_in_that_bounds_bucket() -> None:
    metrics = Metrics()
    for amount in (0.025, math.nextafter(0.025, 1.0), 0.001, 0.0):
        metrics.observe_request("renderer", "/e/{event_id:int}", "GET", 200, amount)
    assert bucket(metrics, "0.001") == 2  # 0.0 and 0.001: `le` is inclusive
    assert bucket(metrics, "0.02") == 2
    assert bucket(metrics, "0.025") == 3
    assert bucket(metrics, "0.03") == 4


def test_values_beyond_the_last_bound_count_in_inf_only() -> None:
    metrics = Metrics()
    for amount in (10.0, 10.5, math.inf):
        metrics.observe_request("renderer", "/e/{event_id:int}", "GET", 200, amount)
    assert bucket(metrics, "10.0") == 1
    assert bucket(metrics, "+Inf") == 3
    assert value(metrics, f"{REQUESTS}_count", **REQUEST) == 3
    assert value(metrics, f"{REQUESTS}_sum", **REQUEST) == math.inf


def test_a_scrape_right_after_an_observation_sees_it() -> None:
    metrics = Metrics(refresh_seconds=3600.0)
    metrics.refresh_now_and_then()
    observe = metrics.call_observer("renderer")
    for seen in (1, 2):
        metrics.observe_request("renderer", "/e/{event_id:int}", "GET", 200, 0.004)
        observe(CallRecord("events", "GET", "/events/{id}", "cached", 0.001))
        exposition = metrics.exposition().decode()
        samples = {
            (sample.name, sample.labels.get("result")): sample.value
            for family in text_string_to_metric_families(exposition)
            for sample in family.samples
        }
        assert samples[(f"{REQUESTS}_count", None)] == seen
        assert samples[("oberon_cache_requests_total", "hit")] == seen


def _same_but_created(registry: CollectorRegistry) -> str:
    return re.sub(r"(_created\{[^}]*\}) \S+", r"\1 <time>", generate_latest(registry).decode())


def test_the_exposition_is_prometheus_clients_own_for_the_same_observations() -> None:
    # Fails loudly if prometheus_client changes how its own histograms and counters are shown.
    library, recorded = CollectorRegistry(), CollectorRegistry()
    histogram = Histogram("render_seconds", "Renders.", ["component", "outcome"], buckets=RENDER_BUCKETS)
    counter = Counter("lookups", "Lookups.", ["result"])
    library.register(histogram)
    library.register(counter)
    recorded_histogram = _RecordedHistogram(
        "render_seconds", "Renders.", ["component", "outcome"], buckets=RENDER_BUCKETS, created=True
    )
    recorded_counter = _RecordedCounter("lookups", "Lookups.", ["result"], created=True)
    recorded.register(recorded_histogram)
    recorded.register(recorded_counter)
    for k, amount in enumerate((0.0, 0.0001, 0.00011, 0.003, 0.25, 0.3, 7.0, math.inf, 0.0004, 0.02)):
        labels = ("hero", "ok" if k % 3 else "fallback")
        histogram.labels(*labels).observe(amount)
        recorded_histogram(*labels).observe(amount)
        counter.labels("hit" if k % 2 else "miss").inc()
        recorded_counter("hit" if k % 2 else "miss").inc()
    assert _same_but_created(recorded) == _same_but_created(library)
    assert "render_seconds_created{" in _same_but_created(recorded)


def test_created_is_when_the_series_was_first_recorded() -> None:
    before = time.time()
    metrics = Metrics()
    metrics.observe_page("renderer", "event-page", 0.01, (RenderRecord("hero", "1.0.0", "ok", 0.0003),))
    created = value(metrics, "oberon_page_render_duration_seconds_created", service="renderer", app="event-page")
    assert before <= created <= time.time()


def test_the_created_series_follow_prometheus_clients_switch() -> None:
    script = textwrap.dedent(
        """
        from oberon.ops.metrics import Metrics
        metrics = Metrics()
        metrics.observe_request("renderer", "/", "GET", 200, 0.01)
        metrics.observe_cache("renderer", "page", "hit")
        print(metrics.exposition().decode())
        """
    )
    environ = {**os.environ, "PROMETHEUS_DISABLE_CREATED_SERIES": "True"}
    done = subprocess.run([sys.executable, "-c", script], env=environ, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert f"{REQUESTS}_count{{" in done.stdout
    assert "_created" not in done.stdout


WORKER = textwrap.dedent(
    """
    import os, sys
    from oberon.client.upstream import CallRecord
    from oberon.ops.metrics import Metrics, RenderRecord
    metrics = Metrics.from_environ(os.environ)
    renders = (RenderRecord("hero", "1.0.0", "ok", 0.0005), RenderRecord("hero", "1.0.0", "ok", 0.0006))
    for _ in range(int(sys.argv[1])):
        metrics.observe_page("renderer", "event-page", 0.025, renders)
        metrics.call_observer("renderer")(CallRecord("events", "GET", "/events/{id}", "ok", 0.5))
    if sys.argv[2:] == ["scrape"]:
        sys.stdout.write(metrics.exposition().decode())
    """
)


def test_multiprocess_mode_merges_pages_components_and_calls_of_two_workers(tmp_path: Path) -> None:
    environ = {**os.environ, MULTIPROC_ENV: str(tmp_path)}

    def worker(*args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-c", WORKER, *args], env=environ, capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    worker("3")
    exposition = worker("4", "scrape")
    samples = {
        (sample.name, sample.labels.get("le")): sample.value
        for family in text_string_to_metric_families(exposition)
        for sample in family.samples
        if sample.labels.get("service") == "renderer"
    }
    pages = "oberon_page_render_duration_seconds"
    assert samples[(f"{pages}_count", None)] == 7
    assert samples[(f"{pages}_bucket", "0.02")] == 0
    assert samples[(f"{pages}_bucket", "0.025")] == 7
    assert samples[(f"{pages}_sum", None)] == pytest.approx(7 * 0.025)
    components = "oberon_component_render_duration_seconds"
    assert samples[(f"{components}_bucket", "0.0005")] == 7
    assert samples[(f"{components}_bucket", "0.001")] == 14
    calls = "oberon_client_request_duration_seconds"
    assert samples[(f"{calls}_bucket", "0.5")] == 7
    assert samples[(f"{calls}_sum", None)] == 3.5
    assert samples[("oberon_cache_requests_total", None)] == 7
