from __future__ import annotations

import os
from pathlib import Path

import pytest

from oberon.client.upstream import CallRecord
from oberon.exceptions import ConfigError
from oberon.ops.degradation import CallSamples, DegradationController, DegradationSettings
from oberon.types import Mode

SETTINGS = DegradationSettings(
    window_seconds=30,
    min_calls=10,
    error_ratio=0.25,
    p95_seconds=0.5,
    open_breakers=1,
    hold_seconds=60,
    evaluation_seconds=0,  # every read re-evaluates, so each step of a test is seen
)


def controller(clock, **kwargs: object) -> DegradationController:
    return DegradationController(settings=SETTINGS, clock=clock, wall_clock=clock, **kwargs)  # type: ignore[arg-type]


def calls(ctl: DegradationController, n: int, *, ok: bool = True, seconds: float = 0.01) -> None:
    for _ in range(n):
        ctl.record(ok=ok, seconds=seconds)


def test_degradation_observes_a_call_as_recording_its_outcome(clock) -> None:
    """Issue 19: `observe` appends what `record(ok=not call.upstream_failed, ...)` would, and skips cached answers."""
    outcomes = ("ok", "cached", "stale", "client_error", "error", "timeout", "circuit_open", "bulkhead_full")
    observed, recorded = controller(clock), controller(clock)
    for n, outcome in enumerate(outcomes):
        clock.now += 1
        call = CallRecord("bff", "GET", "/x", outcome, n / 100)
        observed.observe(call)
        if outcome != "cached":
            recorded.record(ok=not call.upstream_failed, seconds=call.seconds)
    assert list(observed._calls) == list(recorded._calls) and len(observed._calls) == len(outcomes) - 1
    assert observed.signals() == recorded.signals()


def test_degradation_starts_normal(clock) -> None:
    assert controller(clock).mode is Mode.NORMAL


def test_degradation_manual_switch_overrides_the_signals(clock) -> None:
    ctl = controller(clock)
    ctl.set_manual(Mode.DEGRADED, "incident 42")
    assert ctl.mode is Mode.DEGRADED
    assert ctl.status()["reason"] == "incident 42"
    calls(ctl, 20, ok=False)
    ctl.set_manual(Mode.NORMAL)
    assert ctl.mode is Mode.NORMAL  # forced normal even with bad signals
    ctl.set_manual(None)
    assert ctl.mode is Mode.DEGRADED  # back to automatic, which sees the errors


def test_degradation_manual_mode_at_start(clock) -> None:
    ctl = controller(clock, manual=Mode.DEGRADED)
    assert ctl.mode is Mode.DEGRADED
    assert ctl.status()["manual"] == "degraded"


def test_degradation_enters_on_the_error_ratio(clock) -> None:
    ctl = controller(clock)
    calls(ctl, 8)
    calls(ctl, 2, ok=False)
    assert ctl.mode is Mode.NORMAL  # 20 % < 25 %
    calls(ctl, 1, ok=False)
    assert ctl.mode is Mode.DEGRADED
    assert "error ratio 27%" in ctl.status()["reason"]


def test_degradation_ignores_too_few_calls(clock) -> None:
    ctl = controller(clock)
    calls(ctl, 9, ok=False)
    assert ctl.mode is Mode.NORMAL


def test_degradation_enters_on_p95_latency(clock) -> None:
    ctl = controller(clock)
    calls(ctl, 18, seconds=0.02)
    calls(ctl, 2, seconds=0.9)
    assert ctl.mode is Mode.DEGRADED
    assert ctl.status()["signals"]["p95_ms"] == 900.0


def test_degradation_enters_on_open_breakers(clock) -> None:
    open_breakers = 0
    ctl = controller(clock, open_breakers=lambda: open_breakers)
    assert ctl.mode is Mode.NORMAL
    open_breakers = 1
    assert ctl.mode is Mode.DEGRADED


def test_degradation_forgets_calls_older_than_the_window(clock) -> None:
    ctl = controller(clock)
    calls(ctl, 20, ok=False)
    clock.now += 31
    assert ctl.signals().calls == 0


def test_degradation_leaves_only_after_the_hold_time(clock) -> None:
    ctl = controller(clock)
    calls(ctl, 20, ok=False)
    assert ctl.mode is Mode.DEGRADED
    clock.now += 31  # the errors left the window: healthy from now
    assert ctl.mode is Mode.DEGRADED
    clock.now += 59
    calls(ctl, 20)
    assert ctl.mode is Mode.DEGRADED  # still within the hold time
    clock.now += 1
    assert ctl.mode is Mode.NORMAL


def test_degradation_hold_restarts_when_signals_turn_bad_again(clock) -> None:
    ctl = controller(clock)
    calls(ctl, 20, ok=False)
    assert ctl.mode is Mode.DEGRADED
    clock.now += 31
    assert ctl.mode is Mode.DEGRADED
    clock.now += 30
    calls(ctl, 20, ok=False)  # a flap back
    assert ctl.mode is Mode.DEGRADED
    clock.now += 31
    assert ctl.mode is Mode.DEGRADED
    clock.now += 59
    assert ctl.mode is Mode.DEGRADED
    clock.now += 1
    assert ctl.mode is Mode.NORMAL


def test_degradation_status_reports_since_when(clock) -> None:
    ctl = controller(clock)
    assert ctl.status()["since"] == 1000.0
    clock.now = 1005.0
    ctl.set_manual(Mode.DEGRADED)
    status = ctl.status()
    assert (status["mode"], status["since"]) == ("degraded", 1005.0)


def test_degradation_follows_a_watched_switch_file(clock, tmp_path: Path) -> None:
    switch = tmp_path / "mode"
    ctl = controller(clock, switch_file=switch)
    assert ctl.mode is Mode.NORMAL  # no file: automatic
    switch.write_text("degraded\n")
    assert ctl.mode is Mode.DEGRADED
    assert "switch file" in ctl.status()["reason"]
    switch.write_text("normal")
    os.utime(switch, (2_000_000_000, 2_000_000_000))  # a new mtime even within the same clock tick
    ctl.set_manual(Mode.DEGRADED)
    assert ctl.mode is Mode.NORMAL  # the file wins: it is how a whole fleet is flipped
    switch.write_text("nonsense")
    os.utime(switch, (2_000_000_001, 2_000_000_001))
    assert ctl.mode is Mode.DEGRADED  # back to the process's own manual setting


def test_a_manual_switch_reaches_every_worker_through_the_shared_file(clock, tmp_path: Path) -> None:
    shared = tmp_path / "degradation.json"
    workers = [controller(clock, shared_file=shared) for _ in range(3)]
    assert [ctl.mode for ctl in workers] == [Mode.NORMAL] * 3
    workers[0].set_manual(Mode.DEGRADED, "incident 42")  # the admin endpoint of one worker (or the machine's)
    assert [ctl.mode for ctl in workers] == [Mode.DEGRADED] * 3
    assert workers[2].status()["reason"] == "incident 42"
    restarted = controller(clock, shared_file=shared, manual=Mode.NORMAL)  # a worker started again later
    assert restarted.mode is Mode.DEGRADED
    workers[1].set_manual(None)  # back to automatic, for all, whatever a worker was started with
    assert [ctl.mode for ctl in [*workers, restarted]] == [Mode.NORMAL] * 4
    calls(restarted, 20, ok=False)
    assert restarted.mode is Mode.DEGRADED  # automatic again: its own signals decide


def test_a_shared_file_that_is_no_switch_leaves_the_mode_to_the_process(clock, tmp_path: Path) -> None:
    shared = tmp_path / "degradation.json"
    ctl = controller(clock, shared_file=shared, manual=Mode.DEGRADED)
    for text in ("nonsense", '{"mode": "broken"}', "[1]", '{"mode": "normal", "reason": 3}'):
        shared.write_text(text)
        assert ctl.mode is Mode.DEGRADED, text


@pytest.mark.parametrize(
    "kwargs", [{"error_ratio": 0}, {"error_ratio": 2}, {"window_seconds": 0}, {"min_calls": 0}, {"hold_seconds": -1}]
)
def test_degradation_settings_refuse_nonsense(kwargs: dict[str, float]) -> None:
    with pytest.raises(ConfigError):
        DegradationSettings(**kwargs)  # type: ignore[arg-type]


def test_degradation_observes_the_clients_calls_but_not_cache_hits(clock) -> None:
    ctl = controller(clock)
    for outcome in ("ok", "cached", "client_error", "stale", "error", "timeout", "circuit_open"):
        ctl.observe(CallRecord("events", "GET", "/events/{id}", outcome, 0.01))
    signals = ctl.signals()
    assert (signals.calls, signals.error_ratio) == (6, 4 / 6)


def test_degradation_reevaluates_at_most_once_per_interval_but_obeys_an_operator_at_once(clock) -> None:
    ctl = DegradationController(settings=DegradationSettings(min_calls=10), clock=clock, wall_clock=clock)
    assert ctl.mode is Mode.NORMAL
    calls(ctl, 20, ok=False)
    assert ctl.mode is Mode.NORMAL  # within the interval: the last evaluation stands
    clock.now += 1
    assert ctl.mode is Mode.DEGRADED
    ctl.set_manual(Mode.NORMAL)
    assert ctl.mode is Mode.NORMAL


def test_call_samples_keep_the_latest_calls_in_order_through_the_ring() -> None:
    samples = CallSamples(capacity=4)
    for n in range(6):  # the ring wraps around: the first two are overwritten
        samples.add(float(n), n % 3 != 0, (5 - n) / 10)
    assert list(samples) == [(2.0, True, 0.3), (3.0, False, 0.2), (4.0, True, 0.1), (5.0, True, 0.0)]
    assert samples.outcomes() == (4, 3, [0.0, 0.1, 0.2, 0.3])
    samples.drop_before(4.0)
    assert list(samples) == [(4.0, True, 0.1), (5.0, True, 0.0)] and len(samples) == 2
    assert samples.outcomes() == (2, 2, [0.0, 0.1])
    samples.drop_before(9.0)
    assert samples.outcomes() == (0, 0, []) and list(samples) == []
    samples.add(9.0, False, 1.0)
    assert list(samples) == [(9.0, False, 1.0)]
