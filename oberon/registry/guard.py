"""The canary guard: watches a canary against its stable version on the renderers' metrics, and ends it when worse.

The guard reads each renderer's `/metrics` (its admin listener) at an interval. Over the window since
its first reading it takes the growth of `oberon_component_render_duration_seconds` for the canary's
and the stable version's series, summed across renderers, their workers and services, and compares:

- the **fallback rate**: renders whose outcome was `fallback` (data failed) or `error` (template
  raised) — a visitor sees the fallback either way — against stable's, by a margin in percentage points;
- the **p95 render time**, from the histogram's bucket growth interpolated as Prometheus'
  `histogram_quantile` does, against stable's, by a ratio and an absolute increase (compared once stable
  has enough renders too). The increase matters: a template renders in a fraction of a millisecond, where
  the histogram's buckets are 2–2.5× apart, so two healthy versions can differ by a ratio alone.

It judges nothing until the canary has `min_renders` renders. The first reading that shows the canary
worse ends the watch: `rollback(reason)` is called with a sentence a person reads in the history.
Otherwise the watch ends with the window: `held`, or `inconclusive` when the canary got too few
renders or a renderer could not be read (nothing is rolled back then, and nothing is claimed).
A renderer that restarts starts its counters again; its new renders count from zero.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import httpx
from prometheus_client.parser import text_string_to_metric_families

from oberon.exceptions import OberonError

logger = logging.getLogger(__name__)

RENDERS = "oberon_component_render_duration_seconds"  # the renderer's histogram, by component, version, outcome
METRICS_PATH = "/metrics"
RENDERER_SERVICES = frozenset({"renderer", "embedded"})  # the scrape targets' `oberon_service` that render pages
QUANTILE = 0.95

DEFAULT_WINDOW_SECONDS = 300.0
DEFAULT_INTERVAL_SECONDS = 5.0
DEFAULT_MIN_RENDERS = 100
DEFAULT_FALLBACK_MARGIN_POINTS = 5.0
DEFAULT_P95_RATIO = 1.5
DEFAULT_P95_MIN_INCREASE_SECONDS = 0.001
DEFAULT_SCRAPE_TIMEOUT_SECONDS = 5.0

Outcome = Literal["worse", "waiting", "held", "inconclusive"]
WORSE: Outcome = "worse"  # the canary is worse than stable by a margin: roll it back
WAITING: Outcome = "waiting"  # too few canary renders to judge yet
HELD: Outcome = "held"  # not worse (so far; at the window's end: the canary held)
INCONCLUSIVE: Outcome = "inconclusive"  # the window ended without the evidence to judge


class GuardError(OberonError):
    """The guard cannot watch: bad settings, or a renderer's metrics cannot be read when it starts."""


@dataclass(frozen=True)
class GuardSettings:
    """How long and how strictly a canary is watched."""

    window_seconds: float = DEFAULT_WINDOW_SECONDS
    interval_seconds: float = DEFAULT_INTERVAL_SECONDS
    min_renders: int = DEFAULT_MIN_RENDERS
    fallback_margin_points: float = DEFAULT_FALLBACK_MARGIN_POINTS  # canary rate − stable rate, in points of %
    p95_ratio: float = DEFAULT_P95_RATIO  # canary p95 / stable p95
    p95_min_increase_seconds: float = DEFAULT_P95_MIN_INCREASE_SECONDS  # and canary p95 − stable p95
    scrape_timeout_seconds: float = DEFAULT_SCRAPE_TIMEOUT_SECONDS

    def __post_init__(self) -> None:
        for name in ("window_seconds", "interval_seconds", "scrape_timeout_seconds"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise GuardError(f"{name} must be a number of seconds above 0, got {value!r}")
        if self.interval_seconds > self.window_seconds:
            raise GuardError(
                f"interval_seconds ({self.interval_seconds:g}) must not exceed window_seconds ({self.window_seconds:g})"
            )
        if isinstance(self.min_renders, bool) or not isinstance(self.min_renders, int) or self.min_renders < 1:
            raise GuardError(f"min_renders must be a whole number of at least 1, got {self.min_renders!r}")
        if not (math.isfinite(self.fallback_margin_points) and 0 <= self.fallback_margin_points < 100):
            raise GuardError(f"fallback_margin_points must be between 0 and 100, got {self.fallback_margin_points!r}")
        if not (math.isfinite(self.p95_ratio) and self.p95_ratio >= 1):
            raise GuardError(f"p95_ratio must be a number of at least 1, got {self.p95_ratio!r}")
        increase = self.p95_min_increase_seconds
        if not (math.isfinite(increase) and increase >= 0):
            raise GuardError(f"p95_min_increase_seconds must be a number of seconds of at least 0, got {increase!r}")


@dataclass(frozen=True)
class VersionStats:
    """One version's renders over the window, summed across renderers."""

    version: str
    renders: int = 0
    failed: int = 0  # outcome fallback or error
    p95_seconds: float | None = None  # None without renders

    @property
    def fallback_rate(self) -> float:
        return self.failed / self.renders if self.renders else 0.0


@dataclass(frozen=True)
class Verdict:
    """What the guard concluded, with the reason a person reads (and the history records on a rollback)."""

    outcome: Outcome
    reason: str
    canary: VersionStats
    stable: VersionStats

    @property
    def worse(self) -> bool:
        return self.outcome == WORSE


def quantile(q: float, buckets: Mapping[float, float]) -> float | None:
    """The `q` quantile of cumulative bucket counts by upper bound (`inf` included), interpolated linearly within
    its bucket as Prometheus' `histogram_quantile` does; None when there is no observation."""
    bounds = sorted(buckets)
    if not bounds or bounds[-1] != math.inf:
        return None
    counts: list[float] = []
    for bound in bounds:  # cumulative counts never fall; summed deltas might by a hair
        counts.append(max(buckets[bound], counts[-1] if counts else 0.0))
    total = counts[-1]
    if total <= 0:
        return None
    rank = q * total
    index = next(index for index, count in enumerate(counts) if count >= rank)
    if bounds[index] == math.inf:
        return bounds[-2] if len(bounds) > 1 else None  # beyond the last finite bound: all it can say
    lower, below = (bounds[index - 1], counts[index - 1]) if index > 0 else (0.0, 0.0)
    upper, count = bounds[index], counts[index]
    if count == below:
        return upper
    return lower + (upper - lower) * (rank - below) / (count - below)


_SeriesKey = tuple[str, tuple[tuple[str, str], ...]]  # sample name, sorted labels
Reading = dict[_SeriesKey, float]


def read_exposition(text: str, component: str, versions: Iterable[str]) -> Reading:
    """The render series of `component` at `versions` in one `/metrics` text; ValueError when it does not parse."""
    wanted = set(versions)
    reading: Reading = {}
    for family in text_string_to_metric_families(text):
        if family.name != RENDERS:
            continue
        for sample in family.samples:
            if not sample.name.endswith(("_bucket", "_count")):
                continue
            if sample.labels.get("component") != component or sample.labels.get("version") not in wanted:
                continue
            reading[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return reading


def growth(start: Reading, now: Reading) -> Reading:
    """How much each series grew since `start`; a series that fell (its process restarted) grew by its value."""
    grown: Reading = {}
    for key, value in now.items():
        before = start.get(key, 0.0)
        grown[key] = value - before if value >= before else value
    return grown


def version_stats(version: str, grown: Iterable[Reading]) -> VersionStats:
    """One version's renders, failures and p95 from the growth of every renderer's series."""
    renders = failed = 0.0
    buckets: dict[float, float] = {}
    for reading in grown:
        for (name, labels), value in reading.items():
            label = dict(labels)
            if label.get("version") != version:
                continue
            if name.endswith("_count"):
                renders += value
                if label.get("outcome") != "ok":
                    failed += value
            else:
                bound = float(label["le"])
                buckets[bound] = buckets.get(bound, 0.0) + value
    return VersionStats(version, round(renders), round(failed), quantile(QUANTILE, buckets))


def metrics_url(url: str) -> str:
    """A renderer's metrics URL; an admin listener's bare address gets `/metrics`."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise GuardError(f"metrics URL {url!r} must be http(s)://HOST:PORT[/metrics] (a renderer's admin listener)")
    return url.rstrip("/") + METRICS_PATH if parts.path in ("", "/") else url


def renderer_metrics_urls(targets_file: Path) -> list[str]:
    """The renderers' metrics URLs in a Prometheus file-based discovery file, as `oberon up` writes one
    (`build/prometheus/targets.json` beside the site file); GuardError when it is missing or names none."""
    try:
        groups: Any = json.loads(targets_file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise GuardError(f"cannot read the renderers' scrape targets in {targets_file}: {exc}") from exc
    urls = []
    for group in groups if isinstance(groups, list) else []:
        if not isinstance(group, dict) or not isinstance(group.get("targets"), list):
            continue
        labels = group.get("labels")
        if isinstance(labels, dict) and labels.get("oberon_service") not in RENDERER_SERVICES:
            continue
        urls += [f"http://{target}{METRICS_PATH}" for target in group["targets"] if isinstance(target, str)]
    if not urls:
        raise GuardError(f"{targets_file} names no renderer (oberon_service renderer or embedded) to read")
    return urls


@dataclass
class _Renderer:
    url: str
    start: Reading = field(default_factory=dict)
    last: Reading = field(default_factory=dict)
    read_since_start: bool = False
    error: str = ""  # why its last reading failed; empty when it succeeded (the last good reading stands in)


class Guard:
    """Watches one canary version of a component against its stable version on the renderers' metrics."""

    def __init__(
        self,
        *,
        component: str,
        canary: str,
        stable: str,
        metrics_urls: Sequence[str],
        settings: GuardSettings | None = None,
        client: httpx.Client | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not component:
            raise GuardError("the guard needs the component's name")
        if not canary or not stable:
            raise GuardError(f"the guard of {component} needs both the canary and the stable version")
        if canary == stable:
            raise GuardError(f"{component}@{canary} is the stable version: there is no canary to guard")
        if not metrics_urls:
            raise GuardError(
                f"the guard of {component}@{canary} needs at least one renderer's metrics URL (its admin listener's "
                "/metrics): without them it cannot see the canary"
            )
        self.component = component
        self.canary = canary
        self.stable = stable
        self.settings = settings or GuardSettings()
        self._renderers = [_Renderer(metrics_url(url)) for url in dict.fromkeys(metrics_urls)]
        self._client = client
        self._clock = clock
        self._sleep = sleep
        self._started_at: float | None = None

    @property
    def ident(self) -> str:
        return f"{self.component}@{self.canary}"

    def start(self) -> None:
        """Read every renderer once: the window counts from here. GuardError naming any renderer not readable,
        since a guard that cannot see a renderer cannot vouch for the canary there."""
        failures = []
        for renderer in self._renderers:
            try:
                renderer.start = renderer.last = self._read(renderer.url)
            except GuardError as exc:
                failures.append(str(exc))
        if failures:
            raise GuardError(f"the guard of {self.ident} cannot read every renderer's metrics: " + "; ".join(failures))
        self._started_at = self._clock()

    def judge(self) -> Verdict:
        """Read the renderers now and judge the window so far: worse, waiting (too few canary renders) or held."""
        if self._started_at is None:
            raise GuardError("start() the guard before judging")
        for renderer in self._renderers:
            try:
                renderer.last = self._read(renderer.url)
                renderer.read_since_start, renderer.error = True, ""
            except GuardError as exc:  # the last good reading stands in; the final verdict says so
                renderer.error = str(exc)
                logger.warning("guard of %s: %s", self.ident, exc)
        grown = [growth(renderer.start, renderer.last) for renderer in self._renderers]
        return self._verdict(version_stats(self.canary, grown), version_stats(self.stable, grown))

    def watch(self, rollback: Callable[[str], None], *, progress: Callable[[Verdict], None] | None = None) -> Verdict:
        """Judge at each interval until the window ends; when the canary is worse, `rollback(reason)` and stop.

        Returns the verdict: `worse` (rolled back), `held`, or `inconclusive`. A failing `rollback` is a
        GuardError that carries the reason too."""
        if self._started_at is None:
            self.start()
        assert self._started_at is not None
        deadline = self._started_at + self.settings.window_seconds
        while True:
            self._sleep(max(0.0, min(self.settings.interval_seconds, deadline - self._clock())))
            verdict = self.judge()
            if progress is not None:
                progress(verdict)
            if verdict.worse:
                try:
                    rollback(verdict.reason)
                except Exception as exc:
                    raise GuardError(f"{verdict.reason}; rolling the canary back failed: {exc}") from exc
                return verdict
            if self._clock() >= deadline:
                return self._final(verdict)

    def _read(self, url: str) -> Reading:
        timeout = self.settings.scrape_timeout_seconds
        try:
            if self._client is None:
                response = httpx.get(url, timeout=timeout)
            else:
                response = self._client.get(url, timeout=timeout)
        except httpx.HTTPError as exc:
            raise GuardError(f"{url}: {exc.__class__.__name__}: {exc}") from exc
        if response.status_code != 200:
            raise GuardError(f"{url} answered {response.status_code}")
        try:
            return read_exposition(response.text, self.component, (self.canary, self.stable))
        except ValueError as exc:
            raise GuardError(f"{url} did not answer Prometheus' text format: {exc}") from exc

    def _verdict(self, canary: VersionStats, stable: VersionStats) -> Verdict:
        settings = self.settings
        if canary.renders < settings.min_renders:
            reason = f"canary {self.ident}: {canary.renders} renders so far, {settings.min_renders} needed to judge"
            return Verdict(WAITING, reason, canary, stable)
        points = (canary.fallback_rate - stable.fallback_rate) * 100
        findings = [  # (worse?, what a person reads)
            (
                points > settings.fallback_margin_points,
                f"fallback rate {_percent(canary.fallback_rate)} against stable {_percent(stable.fallback_rate)} "
                f"(margin {settings.fallback_margin_points:g} points)",
            )
        ]
        if stable.renders < settings.min_renders or canary.p95_seconds is None or stable.p95_seconds is None:
            findings.append((False, f"p95 render time not compared ({stable.renders} stable renders)"))
        else:
            slower = canary.p95_seconds > stable.p95_seconds * settings.p95_ratio and (
                canary.p95_seconds - stable.p95_seconds > settings.p95_min_increase_seconds
            )
            findings.append(
                (
                    slower,
                    f"p95 render time {_ms(canary.p95_seconds)} against stable {_ms(stable.p95_seconds)} "
                    f"(margin {settings.p95_ratio:g}× and {settings.p95_min_increase_seconds * 1000:g} ms)",
                )
            )
        if any(worse for worse, _ in findings):
            what = ", ".join(text for worse, text in findings if worse)
            return Verdict(WORSE, f"canary {self.ident}: {what} over {canary.renders} renders", canary, stable)
        what = ", ".join(text for _, text in findings)
        return Verdict(HELD, f"canary {self.ident} held: {what} over {canary.renders} renders", canary, stable)

    def _final(self, verdict: Verdict) -> Verdict:
        """The verdict at the window's end: held only with the evidence for it."""
        window = f"{self.settings.window_seconds:g} s"
        unread = [renderer for renderer in self._renderers if not renderer.read_since_start]
        if verdict.outcome == WAITING:
            reason = (
                f"canary {self.ident}: only {verdict.canary.renders} renders in {window}, "
                f"{self.settings.min_renders} needed to judge; the canary is left as it is"
            )
        elif unread:
            errors = "; ".join(renderer.error or renderer.url for renderer in unread)
            reason = f"canary {self.ident}: a renderer could not be read during the window ({errors}); "
            reason += "the canary is left as it is"
        else:
            return Verdict(HELD, f"{verdict.reason} in {window}", verdict.canary, verdict.stable)
        return Verdict(INCONCLUSIVE, reason, verdict.canary, verdict.stable)


def _percent(rate: float) -> str:
    return f"{rate * 100:.1f} %"


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f} ms"


def run_guard(
    *,
    component: str,
    canary: str,
    stable: str,
    metrics_urls: Sequence[str],
    rollback: Callable[[str], None],
    ramp: Callable[[], None] | None = None,
    settings: GuardSettings | None = None,
    progress: Callable[[Verdict], None] | None = None,
    client: httpx.Client | None = None,
) -> Verdict:
    """Guard a canary: read the renderers (GuardError if one cannot be read), then `ramp()` if given — so a
    canary nobody can watch is never ramped —, then watch it and `rollback(reason)` if it is worse.

    `rollback` must end the canary and leave stable as it is; the reason it gets is the history's reason.
    """
    guard = Guard(
        component=component,
        canary=canary,
        stable=stable,
        metrics_urls=metrics_urls,
        settings=settings,
        client=client,
    )
    guard.start()
    if ramp is not None:
        ramp()
    return guard.watch(rollback, progress=progress)
