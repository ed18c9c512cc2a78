"""The canary guard, on the metric text real `Metrics` objects expose (served to it over an httpx transport)."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from oberon.ops.metrics import Metrics, RenderRecord
from oberon.ops.observability import write_scrape_targets
from oberon.registry.guard import (
    HELD,
    INCONCLUSIVE,
    WAITING,
    WORSE,
    Guard,
    GuardError,
    GuardSettings,
    Verdict,
    metrics_url,
    quantile,
    renderer_metrics_urls,
    run_guard,
)
from oberon.runtime.supervisor import free_port

NAME = "ticket-selector"
STABLE, CANARY = "1.0.0", "1.1.0"
FAST, SLOW = 0.0003, 0.02  # seconds: a usual render, and one far slower


class Renderer:
    """One renderer's metrics, as the real `Metrics` class exposes them at `/metrics`."""

    def __init__(self) -> None:
        self.metrics = Metrics()
        self.status = 200

    def render(self, version: str, times: int, *, outcome: str = "ok", seconds: float = FAST) -> None:
        for _ in range(times):
            record = RenderRecord(NAME, version, outcome, seconds)
            self.metrics.observe_page(
                "renderer", "event-page", 0.01, (record, RenderRecord("site-header", "2.0.0", "ok", FAST))
            )

    def restart(self) -> None:
        self.metrics = Metrics()


def client_for(renderers: dict[str, Renderer]) -> httpx.Client:
    """`http://<host>/metrics` answers the exposition of `renderers[host]`."""

    def answer(request: httpx.Request) -> httpx.Response:
        renderer = renderers.get(request.url.host)
        if renderer is None:
            raise httpx.ConnectError("connection refused", request=request)
        if request.url.path != "/metrics":
            return httpx.Response(404)
        if renderer.status != 200:
            return httpx.Response(renderer.status, text="down")
        return httpx.Response(200, content=renderer.metrics.exposition())

    return httpx.Client(transport=httpx.MockTransport(answer))


def guard_for(
    renderers: dict[str, Renderer],
    *,
    settings: GuardSettings | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> Guard:
    return Guard(
        component=NAME,
        canary=CANARY,
        stable=STABLE,
        metrics_urls=[f"http://{host}/metrics" for host in renderers],
        settings=settings or GuardSettings(min_renders=20, window_seconds=60, interval_seconds=5),
        client=client_for(renderers),
        clock=clock,
        sleep=sleep,
    )


def test_quantile_interpolates_within_its_bucket_as_prometheus_does() -> None:
    # The same numbers promtool's histogram_quantile gives (tests/monitoring/test_dashboard.py).
    assert quantile(0.95, {0.001: 8, 0.005: 8, math.inf: 8}) == pytest.approx(0.00095)
    assert quantile(0.95, {0.001: 0, 0.005: 2, math.inf: 2}) == pytest.approx(0.0048)
    assert quantile(0.95, {0.001: 1, 0.005: 1, math.inf: 10}) == 0.005  # beyond the last bound
    assert quantile(0.95, {0.001: 0, math.inf: 0}) is None
    assert quantile(0.95, {0.001: 3}) is None  # no +Inf bucket: not a histogram


def test_a_canary_falling_back_beyond_the_margin_is_worse_with_a_reason() -> None:
    renderer = Renderer()
    guard = guard_for({"r1": renderer})
    guard.start()
    renderer.render(STABLE, 100)
    renderer.render(CANARY, 12)
    renderer.render(CANARY, 8, outcome="fallback")
    verdict = guard.judge()
    assert verdict.outcome == WORSE
    assert verdict.reason == (
        "canary ticket-selector@1.1.0: fallback rate 40.0 % against stable 0.0 % (margin 5 points) over 20 renders"
    )
    assert (verdict.canary.renders, verdict.canary.failed, verdict.stable.renders) == (20, 8, 100)


def test_a_template_error_counts_as_a_fallback() -> None:
    renderer = Renderer()
    guard = guard_for({"r1": renderer})
    guard.start()
    renderer.render(STABLE, 40)
    renderer.render(CANARY, 20, outcome="error")
    assert guard.judge().reason.startswith("canary ticket-selector@1.1.0: fallback rate 100.0 % against stable 0.0 %")


def test_a_canary_within_the_margin_of_stable_holds() -> None:
    renderer = Renderer()
    guard = guard_for({"r1": renderer})
    guard.start()
    renderer.render(STABLE, 90)
    renderer.render(STABLE, 10, outcome="fallback")  # stable falls back on 10 %: the backend, not the canary
    renderer.render(CANARY, 17)
    renderer.render(CANARY, 3, outcome="fallback")  # 15 %: 5 points above, not beyond the margin
    verdict = guard.judge()
    assert verdict.outcome == HELD
    assert verdict.reason.startswith(
        "canary ticket-selector@1.1.0 held: fallback rate 15.0 % against stable 10.0 % (margin 5 points), "
        "p95 render time "
    )


def test_a_canary_slower_than_the_p95_margin_is_worse() -> None:
    renderer = Renderer()
    guard = guard_for({"r1": renderer})
    guard.start()
    renderer.render(STABLE, 40)
    renderer.render(CANARY, 20, seconds=SLOW)
    verdict = guard.judge()
    assert verdict.outcome == WORSE
    assert verdict.reason == (
        "canary ticket-selector@1.1.0: p95 render time 24.25 ms against stable 0.49 ms (margin 1.5× and 1 ms) "
        "over 20 renders"
    )


def test_a_canary_slower_by_the_ratio_but_by_less_than_the_increase_holds() -> None:
    """0.3 ms against 0.9 ms is three times slower, and nothing a visitor sees; the buckets are that coarse too."""
    renderer = Renderer()
    guard = guard_for({"r1": renderer})
    guard.start()
    renderer.render(STABLE, 40, seconds=0.0003)
    renderer.render(CANARY, 20, seconds=0.0009)
    verdict = guard.judge()
    assert verdict.outcome == HELD
    assert "p95 render time 0.97 ms against stable 0.49 ms (margin 1.5× and 1 ms)" in verdict.reason


def test_p95_is_compared_only_once_stable_has_enough_renders() -> None:
    renderer = Renderer()
    guard = guard_for({"r1": renderer})
    guard.start()
    renderer.render(STABLE, 5)
    renderer.render(CANARY, 20, seconds=SLOW)
    verdict = guard.judge()
    assert verdict.outcome == HELD
    assert "p95 render time not compared (5 stable renders)" in verdict.reason


def test_nothing_is_judged_before_the_canary_has_its_minimum_renders() -> None:
    renderer = Renderer()
    guard = guard_for({"r1": renderer})
    guard.start()
    renderer.render(STABLE, 100)
    renderer.render(CANARY, 19, outcome="fallback")
    verdict = guard.judge()
    assert verdict.outcome == WAITING
    assert verdict.reason == "canary ticket-selector@1.1.0: 19 renders so far, 20 needed to judge"


def test_renders_before_the_start_do_not_count() -> None:
    renderer = Renderer()
    renderer.render(CANARY, 50, outcome="fallback")  # an earlier canary of the same version, say
    guard = guard_for({"r1": renderer})
    guard.start()
    renderer.render(STABLE, 30)
    renderer.render(CANARY, 20)
    verdict = guard.judge()
    assert verdict.outcome == HELD and (verdict.canary.renders, verdict.canary.failed) == (20, 0)


def test_renders_are_summed_across_renderers() -> None:
    first, second = Renderer(), Renderer()
    guard = guard_for({"r1": first, "r2": second})
    guard.start()
    first.render(STABLE, 30)
    second.render(STABLE, 30)
    first.render(CANARY, 10, outcome="fallback")  # neither renderer alone reaches the 20 renders to judge
    second.render(CANARY, 10)
    verdict = guard.judge()
    assert verdict.outcome == WORSE
    assert (verdict.canary.renders, verdict.canary.failed, verdict.stable.renders) == (20, 10, 60)


def test_a_renderer_that_restarted_counts_its_renders_from_zero() -> None:
    renderer = Renderer()
    renderer.render(STABLE, 500)
    guard = guard_for({"r1": renderer})
    guard.start()
    renderer.restart()
    renderer.render(STABLE, 30)
    renderer.render(CANARY, 20, outcome="fallback")
    verdict = guard.judge()
    assert (verdict.stable.renders, verdict.canary.renders, verdict.outcome) == (30, 20, WORSE)


class FakeTime:
    """A clock that `sleep` moves on, running `each_interval` (the traffic of that interval) every time."""

    def __init__(self, each_interval: Callable[[], None]) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []
        self.each_interval = each_interval

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        self.each_interval()


def test_watch_rolls_back_with_the_reason_as_soon_as_the_canary_is_worse() -> None:
    renderer = Renderer()

    def traffic() -> None:
        renderer.render(STABLE, 36)
        renderer.render(CANARY, 4, outcome="error")

    fake = FakeTime(traffic)
    guard = guard_for({"r1": renderer}, clock=fake.clock, sleep=fake.sleep)
    reasons: list[str] = []
    seen: list[Verdict] = []
    verdict = guard.watch(reasons.append, progress=seen.append)
    assert verdict.outcome == WORSE and reasons == [verdict.reason]
    assert [found.outcome for found in seen] == [WAITING] * 4 + [WORSE]  # 4 canary renders an interval, 20 needed
    assert fake.sleeps == [5.0] * 5  # well before the 60 s window's end


def test_watch_ends_held_after_the_window_when_the_canary_is_as_good() -> None:
    renderer = Renderer()

    def traffic() -> None:
        renderer.render(STABLE, 18)
        renderer.render(CANARY, 2)

    fake = FakeTime(traffic)
    guard = guard_for({"r1": renderer}, clock=fake.clock, sleep=fake.sleep)
    reasons: list[str] = []
    verdict = guard.watch(reasons.append)
    assert verdict.outcome == HELD and reasons == []
    assert sum(fake.sleeps) == 60
    assert verdict.reason.endswith("over 24 renders in 60 s")


def test_watch_ends_inconclusive_without_enough_canary_renders_and_rolls_nothing_back() -> None:
    renderer = Renderer()
    fake = FakeTime(lambda: renderer.render(CANARY, 1, outcome="fallback"))
    guard = guard_for({"r1": renderer}, clock=fake.clock, sleep=fake.sleep)
    reasons: list[str] = []
    verdict = guard.watch(reasons.append)
    assert verdict.outcome == INCONCLUSIVE and reasons == []
    assert verdict.reason == (
        "canary ticket-selector@1.1.0: only 12 renders in 60 s, 20 needed to judge; the canary is left as it is"
    )


def test_a_renderer_unreadable_through_the_window_leaves_the_verdict_inconclusive() -> None:
    good, bad = Renderer(), Renderer()

    def traffic() -> None:
        good.render(STABLE, 20)
        good.render(CANARY, 5)
        bad.status = 503

    fake = FakeTime(traffic)
    guard = guard_for({"r1": good, "r2": bad}, clock=fake.clock, sleep=fake.sleep)
    verdict = guard.watch(lambda reason: None)
    assert verdict.outcome == INCONCLUSIVE
    assert "a renderer could not be read during the window (http://r2/metrics answered 503)" in verdict.reason


def test_a_renderer_failing_now_and_then_is_judged_on_its_last_good_reading() -> None:
    renderer = Renderer()
    guard = guard_for({"r1": renderer})
    guard.start()
    renderer.render(STABLE, 30)
    renderer.render(CANARY, 20, outcome="fallback")
    renderer.status = 500
    assert guard.judge().outcome == WAITING  # the start's reading stands in
    renderer.status = 200
    assert guard.judge().outcome == WORSE


def test_the_guard_refuses_to_start_when_a_renderer_cannot_be_read() -> None:
    guard = Guard(
        component=NAME,
        canary=CANARY,
        stable=STABLE,
        metrics_urls=[f"http://127.0.0.1:{free_port()}/metrics"],
        settings=GuardSettings(scrape_timeout_seconds=2),
    )
    with pytest.raises(
        GuardError, match=r"cannot read every renderer's metrics: http://127\.0\.0\.1:\d+/metrics: Conn"
    ):
        guard.start()


def test_text_that_is_not_the_prometheus_format_is_an_unreadable_renderer() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, text="oberon_component_render_duration_seconds_count{component=} what\n")

    guard = Guard(
        component=NAME,
        canary=CANARY,
        stable=STABLE,
        metrics_urls=["http://r1:8001"],
        client=httpx.Client(transport=httpx.MockTransport(answer)),
    )
    with pytest.raises(GuardError, match=r"http://r1:8001/metrics did not answer Prometheus' text format"):
        guard.start()


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ({"metrics_urls": []}, "needs at least one renderer's metrics URL"),
        ({"canary": STABLE}, "is the stable version: there is no canary to guard"),
        ({"stable": ""}, "needs both the canary and the stable version"),
        ({"metrics_urls": ["127.0.0.1:8001"]}, "must be http"),
    ],
)
def test_a_guard_without_what_it_needs_is_refused(given: dict[str, object], message: str) -> None:
    arguments: dict[str, object] = {
        "component": NAME,
        "canary": CANARY,
        "stable": STABLE,
        "metrics_urls": ["http://r1"],
    }
    with pytest.raises(GuardError, match=message):
        Guard(**{**arguments, **given})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ({"window_seconds": 0}, "window_seconds must be a number of seconds above 0"),
        ({"interval_seconds": math.nan}, "interval_seconds must be"),
        ({"interval_seconds": 10, "window_seconds": 5}, "must not exceed window_seconds"),
        ({"min_renders": 0}, "min_renders must be a whole number of at least 1"),
        ({"fallback_margin_points": -1}, "fallback_margin_points must be between 0 and 100"),
        ({"p95_ratio": 0.5}, "p95_ratio must be a number of at least 1"),
        ({"p95_min_increase_seconds": -0.001}, "p95_min_increase_seconds must be a number of seconds of at least 0"),
    ],
)
def test_settings_out_of_range_are_refused(given: dict[str, float], message: str) -> None:
    with pytest.raises(GuardError, match=message):
        GuardSettings(**given)  # type: ignore[arg-type]


def test_an_admin_listeners_address_reads_its_metrics_path() -> None:
    assert metrics_url("http://127.0.0.1:8001") == "http://127.0.0.1:8001/metrics"
    assert metrics_url("http://127.0.0.1:8001/") == "http://127.0.0.1:8001/metrics"
    assert metrics_url("http://10.0.0.7:8081/metrics") == "http://10.0.0.7:8081/metrics"


def test_the_renderers_are_found_in_the_scrape_targets_oberon_up_writes(tmp_path: Path) -> None:
    targets = tmp_path / "build" / "prometheus" / "targets.json"
    write_scrape_targets(targets, {"embedded": "127.0.0.1:8001"})
    assert renderer_metrics_urls(targets) == ["http://127.0.0.1:8001/metrics"]
    split = {"gateway": "127.0.0.1:9001", "renderer": "127.0.0.1:9002", "bff:events": "127.0.0.1:9003"}
    write_scrape_targets(targets, split)
    assert renderer_metrics_urls(targets) == ["http://127.0.0.1:9002/metrics"]


def test_scrape_targets_without_a_renderer_are_refused(tmp_path: Path) -> None:
    targets = tmp_path / "targets.json"
    with pytest.raises(GuardError, match="cannot read the renderers' scrape targets in .*targets.json"):
        renderer_metrics_urls(targets)
    targets.write_text(json.dumps([{"targets": ["127.0.0.1:9001"], "labels": {"oberon_service": "gateway"}}]))
    with pytest.raises(GuardError, match="names no renderer"):
        renderer_metrics_urls(targets)


def test_run_guard_ramps_only_once_it_has_read_every_renderer() -> None:
    renderer = Renderer()
    ramped: list[str] = []
    with pytest.raises(GuardError, match="http://gone/metrics"):
        run_guard(
            component=NAME,
            canary=CANARY,
            stable=STABLE,
            metrics_urls=["http://r1", "http://gone"],
            rollback=lambda reason: None,
            ramp=lambda: ramped.append("ramp"),
            client=client_for({"r1": renderer}),
        )
    assert ramped == []


def test_run_guard_ramps_then_rolls_back_a_worse_canary() -> None:
    renderer = Renderer()
    events: list[str] = []

    def ramp() -> None:
        events.append("ramp")
        renderer.render(STABLE, 40)
        renderer.render(CANARY, 20, outcome="fallback")

    verdict = run_guard(
        component=NAME,
        canary=CANARY,
        stable=STABLE,
        metrics_urls=["http://r1"],
        rollback=events.append,
        ramp=ramp,
        settings=GuardSettings(min_renders=20, window_seconds=0.5, interval_seconds=0.01),
        client=client_for({"r1": renderer}),
    )
    assert verdict.worse and events == ["ramp", verdict.reason]


def test_a_failing_rollback_is_an_error_that_keeps_the_reason() -> None:
    renderer = Renderer()
    guard = guard_for(
        {"r1": renderer}, settings=GuardSettings(min_renders=1, window_seconds=0.5, interval_seconds=0.01)
    )
    guard.start()
    renderer.render(CANARY, 5, outcome="error")

    def rollback(reason: str) -> None:
        raise RuntimeError("registry unreachable")

    with pytest.raises(
        GuardError, match=r"fallback rate 100\.0 % .*; rolling the canary back failed: registry unreachable"
    ):
        guard.watch(rollback)
