"""Prometheus metrics of a process: requests by route, renders, client-side waits, caches, breakers, bulkheads, mode,
admission (requests shed at an entrance, its limit, its requests in flight), the registry a renderer follows.

One `Metrics` per process, with its own registry. Every series carries a `service` label: in the
embedded topology one process runs every service and one `/metrics` shows them all; in the split
topology each process shows its own. Label values are always bounded: route and endpoint
templates, component and app names, the versions a renderer serves, upstream names, outcomes, never raw
paths or ids.

When several workers serve one port (uvicorn `--workers`, gunicorn), set `PROMETHEUS_MULTIPROC_DIR`
to an empty directory before they start: each worker writes its values there, a scrape merges
them, counters and histograms sum across workers and the state gauges take the live maximum.
"""

from __future__ import annotations

import time
from abc import abstractmethod
from bisect import bisect_left
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Generic, Protocol, TypeVar

import prometheus_client
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector
from prometheus_client.metrics_core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString
from prometheus_client.values import MutexValue

from oberon import tracing
from oberon.client.breaker import BreakerState
from oberon.client.upstream import CallObserver, CallRecord, Upstream
from oberon.exceptions import ConfigError
from oberon.ops.admission import APP, REJECTED, SERVER, AdaptiveLimit, ShedObserver
from oberon.ops.admission import STALE as SHED_STALE
from oberon.types import Mode, Outcome

if TYPE_CHECKING:
    from oberon.pipeline.page_types import PageObserver, PageRecord

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
# The classic text format, which every Prometheus reads (Oberon's names need none of the newer format's quoting).
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# 25 ms is a bucket edge: the page latency objective (and its alert) is "p95 below 25 ms".
LATENCY_BUCKETS = (
    0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.025, 0.03, 0.04, 0.05, 0.075,
    0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip
RENDER_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25)
DEFAULT_REFRESH_SECONDS = 1.0

# Result of a cache lookup: a fresh copy, a call to the upstream, or a stale copy served because the upstream failed.
HIT, MISS, STALE = "hit", "miss", "stale"
_CACHE_RESULT = {"cached": HIT, "stale": STALE}
PAGE_CACHE = "page"  # the `cache` label of the renderer's page cache


def status_class(status_code: int) -> str:
    """`200` → `2xx`: the status label of request metrics."""
    return f"{status_code // 100}xx" if 100 <= status_code <= 599 else "other"


def upstream_cache(upstream: str) -> str:
    """The `cache` label of the response cache in front of an upstream."""
    return f"upstream:{upstream}"


class Observes(Protocol):
    """A series that records an amount: a histogram's (`_HistogramSeries`, or prometheus_client's child)."""

    def observe(self, amount: float) -> None: ...


class _Counts(Protocol):
    def inc(self) -> None: ...


_Series = TypeVar("_Series", covariant=True)


class _Family(Protocol[_Series]):
    def __call__(self, *values: str) -> _Series: ...


_Metric = TypeVar("_Metric", Counter, Histogram)


class _Children(Generic[_Metric]):
    """`metric.labels(*values)`, looked up once per distinct values: prometheus_client's own `labels`
    takes a lock and checks the values on every call, and a page records about twenty series."""

    def __init__(self, metric: _Metric) -> None:
        self.metric: _Metric = metric
        self._children: dict[tuple[str, ...], _Metric] = {}

    def __call__(self, *values: str) -> _Metric:
        child = self._children.get(values)
        if child is None:
            child = self._children[values] = self.metric.labels(*values)
        return child


class _HistogramSeries:
    """One series of a recorded histogram: observations per bucket (the last is +Inf) and their sum."""

    __slots__ = ("_bounds", "buckets", "sum", "created")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self._bounds = bounds
        self.buckets = [0] * len(bounds)
        self.sum = 0.0
        self.created = time.time()

    def observe(self, amount: float) -> None:
        # The first bound not below `amount`: a value equal to a bound counts in its bucket (`le` is inclusive).
        self.buckets[bisect_left(self._bounds, amount)] += 1
        self.sum += amount


class _CounterSeries:
    """One series of a recorded counter."""

    __slots__ = ("value", "created")

    def __init__(self) -> None:
        self.value = 0
        self.created = time.time()

    def inc(self) -> None:
        self.value += 1


_S = TypeVar("_S")


class _Recorded(Collector, Generic[_S]):
    """A family of series kept in plain Python numbers and shown at each scrape (single-process mode).

    prometheus_client's `observe` checks its labels, takes a lock for the sum, walks the bounds in a loop and takes
    another lock for the bucket (about 2 µs); a page records a dozen. Here an observation is a `bisect` and two
    additions, with no lock: the series are recorded on the event loop's thread (pages, calls, requests) and a
    scrape copies them. The exposition is the one prometheus_client's own `Histogram` and `Counter` give.
    """

    def __init__(self, name: str, documentation: str, labelnames: Sequence[str], *, created: bool) -> None:
        self.name = name
        self.documentation = documentation
        self.labelnames = tuple(labelnames)
        self._created = created
        self._series: dict[tuple[str, ...], _S] = {}

    def __call__(self, *values: str) -> _S:
        """The series of these label values (made at its first use)."""
        series = self._series.get(values)
        if series is None:
            if len(values) != len(self.labelnames):
                raise ValueError(f"{self.name}: {len(self.labelnames)} label values expected, got {values}")
            series = self._series[values] = self._new_series()
        return series

    def describe(self) -> Iterator[Metric]:
        yield self._family()

    @abstractmethod
    def _new_series(self) -> _S:
        """A series with nothing recorded yet."""

    @abstractmethod
    def _family(self) -> Metric:
        """The family with no series: what `describe` and `collect` start from."""


class _RecordedHistogram(_Recorded[_HistogramSeries]):
    """A histogram's series, by label values: `family(*values).observe(amount)`."""

    def __init__(
        self, name: str, documentation: str, labelnames: Sequence[str], *, buckets: Sequence[float], created: bool
    ) -> None:
        super().__init__(name, documentation, labelnames, created=created)
        bounds = [float(bound) for bound in buckets]
        if bounds[-1] != float("inf"):
            bounds.append(float("inf"))
        self._bounds = tuple(bounds)
        self._le = tuple(floatToGoString(bound) for bound in bounds)  # type: ignore[no-untyped-call]

    def _new_series(self) -> _HistogramSeries:
        return _HistogramSeries(self._bounds)

    def _family(self) -> HistogramMetricFamily:
        return HistogramMetricFamily(self.name, self.documentation, labels=self.labelnames)

    def collect(self) -> Iterator[Metric]:
        family = self._family()
        for values, series in list(self._series.items()):
            counts, total = tuple(series.buckets), series.sum
            cumulative = 0.0
            buckets = []
            for le, count in zip(self._le, counts, strict=True):
                cumulative += count
                buckets.append((le, cumulative))
            family.add_metric(values, buckets, total)
            if self._created:
                family.add_sample(
                    f"{self.name}_created", dict(zip(self.labelnames, values, strict=True)), series.created
                )
        yield family


class _RecordedCounter(_Recorded[_CounterSeries]):
    """A counter's series, by label values: `family(*values).inc()`."""

    def _new_series(self) -> _CounterSeries:
        return _CounterSeries()

    def _family(self) -> CounterMetricFamily:
        return CounterMetricFamily(self.name, self.documentation, labels=self.labelnames)

    def collect(self) -> Iterator[Metric]:
        family = self._family()
        for values, series in list(self._series.items()):
            family.add_metric(values, float(series.value), series.created if self._created else None)
        yield family


def _shows_created() -> bool:
    """Whether prometheus_client shows `_created` series (`PROMETHEUS_DISABLE_CREATED_SERIES` turns them off)."""
    probe = Counter("oberon_probe", "", registry=None)
    return any(sample.name.endswith("_created") for family in probe.collect() for sample in family.samples)


@dataclass(frozen=True)
class RenderRecord:
    """One component's render, as the page saw it: for metrics."""

    component: str
    version: str  # the manifest's version: a canary is compared with stable by this label
    outcome: str  # ok | fallback (its data failed or timed out) | error (its own template raised)
    seconds: float


class Metrics:
    """The metric objects of one process and what they are read from."""

    def __init__(
        self,
        *,
        multiprocess_dir: Path | None = None,
        refresh_seconds: float = DEFAULT_REFRESH_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if multiprocess_dir is not None and prometheus_client.values.ValueClass is MutexValue:
            raise ConfigError(f"{MULTIPROC_ENV} must be set before prometheus_client is imported")
        self.multiprocess_dir = multiprocess_dir
        self.refresh_seconds = refresh_seconds
        self._clock = clock
        self._refreshed = float("-inf")
        self._upstreams: list[tuple[str, Mapping[str, Upstream]]] = []
        self._modes: list[tuple[str, Callable[[], Mode]]] = []
        self._limits: list[tuple[str, AdaptiveLimit]] = []
        self.registry = CollectorRegistry()
        # In multiprocess mode the values live in files; a scrape reads them through a fresh collector.
        registry = None if multiprocess_dir is not None else self.registry
        if registry is not None:
            ProcessCollector(registry=registry)
        self._created = registry is not None and _shows_created()

        self.requests = self._histogram(
            "oberon_http_request_duration_seconds",
            "Time to answer an HTTP request, by service, route template, method and status class.",
            ["service", "route", "method", "status_class"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.pages = self._histogram(
            "oberon_page_render_duration_seconds",
            "Time to render a page (data and templates), by app; a page whose critical component failed counts too.",
            ["service", "app"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.streamed = self._counter(
            "oberon_pages_streamed",
            "Pages sent as a stream, by app: their first bytes left while a non-critical child was still pending "
            "(a public one is kept by the CDN for the fallback lifetime only).",
            ["service", "app"],
            registry=registry,
        )
        self.components = self._histogram(
            "oberon_component_render_duration_seconds",
            "Time to render one component's template, by component, version and outcome (ok, fallback, error). "
            "Bounded: a version appears only once the renderer serves it (the folder's, or a registry channel's).",
            ["service", "component", "version", "outcome"],
            buckets=RENDER_BUCKETS,
            registry=registry,
        )
        self.calls = self._histogram(
            "oberon_client_request_duration_seconds",
            "Downstream calls as the caller saw them (pool wait, retries and backoff included), by caller service, "
            "upstream, endpoint template, method and outcome.",
            ["service", "upstream", "endpoint", "method", "outcome"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.cache = self._counter(
            "oberon_cache_requests",
            "Cache lookups by cache and result: hit (fresh copy), miss (the upstream was called), stale "
            "(the upstream failed and a stale copy was served).",
            ["service", "cache", "result"],
            registry=registry,
        )
        self.breakers = Gauge(
            "oberon_circuit_breaker_state",
            "1 for the state each upstream's circuit breaker is in (closed, open, half-open), 0 for the others.",
            ["service", "upstream", "state"],
            registry=registry,
            multiprocess_mode="livemax",
        )
        self.endpoint_breakers = Gauge(
            "oberon_endpoint_circuit_breaker_state",
            "1 for the state each endpoint breaker of an upstream is in (closed, open, half-open), 0 for the others; "
            "by endpoint template (`*`: the templates beyond the bound, together).",
            ["service", "upstream", "endpoint", "state"],
            registry=registry,
            multiprocess_mode="livemax",
        )
        self.in_flight = Gauge(
            "oberon_bulkhead_in_flight",
            "Calls in flight to each upstream now (pool waits included), which its bulkhead bounds.",
            ["service", "upstream"],
            registry=registry,
            multiprocess_mode="livesum",
        )
        self.max_in_flight = Gauge(
            "oberon_bulkhead_max_in_flight",
            "The bound of each upstream's bulkhead, per process: a call beyond it fails fast (outcome bulkhead_full).",
            ["service", "upstream"],
            registry=registry,
            multiprocess_mode="livemax",
        )
        self.mode = Gauge(
            "oberon_degradation_mode",
            "1 for the degradation mode the service is in (normal, degraded), 0 for the other.",
            ["service", "mode"],
            registry=registry,
            multiprocess_mode="livemax",
        )
        self.shed = Counter(
            "oberon_admission_shed",
            "Requests an entrance did not admit (beyond its concurrency limit), by outcome: stale (the last good "
            "copy of the page was served) or rejected (503 with Retry-After); and where: at the HTTP server, before "
            "any application work (server), or in the application's middleware (app).",
            ["service", "outcome", "at"],
            registry=registry,
        )
        self.admission_limit = Gauge(
            "oberon_admission_limit",
            "Each entrance's adaptive concurrency limit now, per process.",
            ["service"],
            registry=registry,
            multiprocess_mode="livemax",
        )
        self.admission_in_flight = Gauge(
            "oberon_admission_in_flight",
            "Requests in flight at each entrance now, which its concurrency limit bounds (health probes not counted).",
            ["service"],
            registry=registry,
            multiprocess_mode="livesum",
        )
        self.registry_revision = Gauge(
            "oberon_registry_revision",
            "The registry service's revision a renderer serves (it follows the registry); the lowest of the workers.",
            ["service"],
            registry=registry,
            multiprocess_mode="livemin",
        )
        self.registry_last_sync = Gauge(
            "oberon_registry_last_sync_timestamp_seconds",
            "When the registry service last answered a following renderer (a new revision or a 304); the oldest of "
            "the workers. Far behind: the renderer serves its last good snapshot while the registry is away.",
            ["service"],
            registry=registry,
            multiprocess_mode="livemin",
        )
        self.registry_sync_failures = Counter(
            "oberon_registry_sync_failures",
            "Syncs with the registry service that changed nothing: unreachable, an error status, an invalid "
            "snapshot, a bundle whose digest does not match, a registry that fails the checks (the last good serves).",
            ["service"],
            registry=registry,
        )

        self._requests: dict[tuple[str, str, str, int], Observes] = {}

    def _histogram(
        self,
        name: str,
        documentation: str,
        labelnames: Sequence[str],
        *,
        buckets: Sequence[float],
        registry: CollectorRegistry | None,
    ) -> _Family[Observes]:
        """A histogram recorded on the hot path: by prometheus_client into the value files in multiprocess mode
        (another worker's scrape reads them), else in plain numbers shown at each scrape."""
        if registry is None:
            return _Children(Histogram(name, documentation, labelnames, buckets=buckets, registry=None))
        recorded = _RecordedHistogram(name, documentation, labelnames, buckets=buckets, created=self._created)
        registry.register(recorded)
        return recorded

    def _counter(
        self, name: str, documentation: str, labelnames: Sequence[str], *, registry: CollectorRegistry | None
    ) -> _Family[_Counts]:
        """A counter recorded on the hot path, as `_histogram`."""
        if registry is None:
            return _Children(Counter(name, documentation, labelnames, registry=None))
        recorded = _RecordedCounter(name, documentation, labelnames, created=self._created)
        registry.register(recorded)
        return recorded

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> Metrics:
        """Multiprocess mode when `PROMETHEUS_MULTIPROC_DIR` names a directory."""
        directory = environ.get(MULTIPROC_ENV)
        if not directory:
            return cls()
        path = Path(directory)
        if not path.is_dir():
            raise ConfigError(f"{MULTIPROC_ENV}={directory} is not a directory")
        return cls(multiprocess_dir=path)

    def observe_request(self, service: str, route: str, method: str, status_code: int, seconds: float) -> None:
        self.request_series(service, route, method, status_code).observe(seconds)

    def request_series(self, service: str, route: str, method: str, status_code: int) -> Observes:
        """The series `observe_request` records into (a caller may keep it, as `Instrumented` does)."""
        key = (service, route, method, status_code)
        series = self._requests.get(key)
        if series is None:  # the status's class worked out once per series, not on every request
            series = self._requests[key] = self.requests(service, route, method, status_class(status_code))
        return series

    def observe_page(self, service: str, app: str, seconds: float, renders: tuple[RenderRecord, ...] = ()) -> None:
        self.pages(service, app).observe(seconds)
        for render in renders:
            self.components(service, render.component, render.version, render.outcome).observe(render.seconds)

    def page_observer(self, service: str) -> PageObserver:
        """A `PageObserver` for the renderer of `service`: page render time, and each component's time, version and
        outcome."""

        # A page's series by app, a fragment's by (component, version, outcome), the page cache's by its result:
        # looked up in this observer's own dicts, one frame fewer than the family's lookup for each of a page's seven
        # or so (issue 19). A fragment's is found by its component's ident and its outcome as the fragment holds
        # them; its labels are worked out (`Fragment.result`, a property's frame) only for a series' first use.
        pages: dict[str, Observes] = {}
        components: dict[tuple[str, Outcome, bool], Observes] = {}
        page_cache: dict[str, _Counts] = {}

        def observe(record: PageRecord) -> None:
            result = record.page_cache
            if result is not None:
                counts = page_cache.get(result)
                if counts is None:
                    counts = page_cache[result] = self.cache(service, PAGE_CACHE, HIT if result == "hit" else MISS)
                counts.inc()
                if result == "hit":
                    return  # nothing was rendered
            # As `observe_page`, without a record made for each fragment on the way.
            app = record.root.manifest.name
            series = pages.get(app)
            if series is None:
                series = pages[app] = self.pages(service, app)
            series.observe(record.timing.total)
            for f in record.fragments:
                manifest = f.component.manifest
                key = (manifest.ident, f.outcome, f.raised)
                series = components.get(key)
                if series is None:
                    series = components[key] = self.components(service, manifest.name, manifest.version_text, f.result)
                series.observe(f.seconds)
            if record.streamed:
                self.streamed(service, app).inc()

        return observe

    def observe_cache(self, service: str, cache: str, result: str) -> None:
        self.cache(service, cache, result).inc()

    def call_observer(self, service: str, *, cache: bool = True) -> CallObserver:
        """A `CallObserver` for a resilient client: client-side waits and, with `cache`, its response caches.

        The caller is the service whose request is being served when the call is made (clients shared
        by several services tell them apart this way), else `service`.
        """

        # The series a call records (its wait, and its response cache's result), looked up once per labels.
        series: dict[tuple[str, str, str, str, str], tuple[Observes, _Counts | None]] = {}

        def observe(call: CallRecord) -> None:
            span = tracing.current()
            caller = span.tracer.service if span is not None and span.tracer is not None else service
            labels = (caller, call.upstream, call.endpoint, call.method, call.outcome)
            found = series.get(labels)
            if found is None:
                waits = self.calls(*labels)
                cached = None
                if cache and call.method == "GET":  # only GETs go through the response cache
                    result = _CACHE_RESULT.get(call.outcome, MISS)
                    cached = self.cache(caller, upstream_cache(call.upstream), result)
                found = series[labels] = (waits, cached)
            found[0].observe(call.seconds)
            if found[1] is not None:
                found[1].inc()

        return observe

    def watch_upstreams(self, service: str, upstreams: Mapping[str, Upstream]) -> None:
        """Show the state of these upstreams' circuit breakers and bulkheads."""
        self._upstreams.append((service, upstreams))

    def watch_admission(self, service: str, limit: AdaptiveLimit) -> None:
        """Show the limit of the entrance `service` and its requests in flight."""
        self._limits.append((service, limit))

    def shed_observer(self, service: str) -> ShedObserver:
        """A `ShedObserver` for the entrance `service`: counts each request it shed, by outcome and where."""
        children = {
            (outcome, at): self.shed.labels(service, outcome, at)
            for outcome in (SHED_STALE, REJECTED)
            for at in (SERVER, APP)
        }

        def observe(outcome: str, at: str) -> None:
            children[outcome, at].inc()

        return observe

    def registry_observer(self, service: str) -> Callable[[int, bool], None]:
        """For a renderer following the registry service: `observe(revision served, failed)` after each sync."""
        revision = self.registry_revision.labels(service)
        last_sync = self.registry_last_sync.labels(service)
        failures = self.registry_sync_failures.labels(service)

        def observe(served: int, failed: bool) -> None:
            revision.set(served)
            if failed:
                failures.inc()
            else:
                last_sync.set(time.time())

        return observe

    def watch_mode(self, service: str, mode: Callable[[], Mode]) -> None:
        """Show the degradation mode `mode()` returns."""
        self._modes.append((service, mode))

    def refresh(self) -> None:
        """Read the watched states into their gauges (at each scrape, and now and then while serving)."""
        self._refreshed = self._clock()
        for service, upstreams in self._upstreams:
            for name, upstream in upstreams.items():
                current = upstream.breaker.state
                for state in BreakerState:
                    self.breakers.labels(service, name, state.value).set(1 if state is current else 0)
                for endpoint, endpoint_state in upstream.endpoint_breakers.states().items():
                    for state in BreakerState:
                        gauge = self.endpoint_breakers.labels(service, name, endpoint, state.value)
                        gauge.set(1 if state is endpoint_state else 0)
                self.in_flight.labels(service, name).set(upstream.bulkhead.in_flight)
                self.max_in_flight.labels(service, name).set(upstream.bulkhead.max_in_flight)
        for service, limit in self._limits:
            self.admission_limit.labels(service).set(limit.limit)
            self.admission_in_flight.labels(service).set(limit.in_flight)
        for service, mode in self._modes:
            current_mode = mode()
            for value in Mode:
                self.mode.labels(service, value.value).set(1 if value is current_mode else 0)

    def refresh_now_and_then(self) -> None:
        """`refresh` at most once per `refresh_seconds`: keeps another worker's scrape from seeing stale states."""
        if self._clock() - self._refreshed >= self.refresh_seconds:
            self.refresh()

    def exposition(self) -> bytes:
        """The Prometheus text format of every series (merged across workers in multiprocess mode)."""
        self.refresh()
        if self.multiprocess_dir is None:
            return prometheus_client.generate_latest(self.registry)
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=str(self.multiprocess_dir))  # type: ignore[no-untyped-call]
        return prometheus_client.generate_latest(registry)


def mark_process_dead(pid: int, multiprocess_dir: Path) -> None:
    """Forget a dead worker's live gauges (gunicorn's `child_exit` hook calls this)."""
    prometheus_client.multiprocess.mark_process_dead(pid, str(multiprocess_dir))  # type: ignore[no-untyped-call]
