from __future__ import annotations

from collections.abc import Callable

import pytest

from oberon.client.breaker import BreakerSettings, BreakerState, CircuitBreaker
from oberon.exceptions import ConfigError

SETTINGS = BreakerSettings(failure_ratio=0.5, window_seconds=10, min_calls=4, open_seconds=5, half_open_calls=1)


def breaker(clock: Callable[[], float]) -> CircuitBreaker:
    return CircuitBreaker(settings=SETTINGS, clock=clock)


def test_breaker_stays_closed_below_the_minimum_number_of_calls(clock) -> None:
    cb = breaker(clock)
    for _ in range(3):
        cb.record(ok=False)
    assert cb.state is BreakerState.CLOSED
    assert cb.allow()


def test_breaker_opens_at_the_failure_ratio_over_the_window(clock) -> None:
    cb = breaker(clock)
    for ok in (True, False, True, False):
        cb.record(ok=ok)
    assert cb.state is BreakerState.OPEN
    assert not cb.allow()


def test_breaker_forgets_outcomes_older_than_the_window(clock) -> None:
    cb = breaker(clock)
    for _ in range(3):
        cb.record(ok=False)
    clock.now += 11
    cb.record(ok=False)
    assert cb.state is BreakerState.CLOSED


def test_breaker_half_opens_after_open_seconds_and_lets_one_probe_through(clock) -> None:
    cb = breaker(clock)
    for _ in range(4):
        cb.record(ok=False)
    clock.now += 4.9
    assert cb.state is BreakerState.OPEN
    assert cb.retry_after == pytest.approx(0.1)
    clock.now += 0.1
    assert cb.state is BreakerState.HALF_OPEN
    assert cb.allow()
    assert not cb.allow()  # one probe at a time


def test_breaker_closes_when_the_probe_succeeds(clock) -> None:
    cb = breaker(clock)
    for _ in range(4):
        cb.record(ok=False)
    clock.now += 5
    assert cb.allow()
    cb.record(ok=True)
    assert cb.state is BreakerState.CLOSED
    cb.record(ok=False)  # the old failures are forgotten
    assert cb.state is BreakerState.CLOSED


def test_breaker_reopens_when_the_probe_fails(clock) -> None:
    cb = breaker(clock)
    for _ in range(4):
        cb.record(ok=False)
    clock.now += 5
    assert cb.allow()
    cb.record(ok=False)
    assert cb.state is BreakerState.OPEN
    assert cb.retry_after == pytest.approx(5)


@pytest.mark.parametrize(
    "kwargs",
    [{"failure_ratio": 0}, {"failure_ratio": 1.5}, {"min_calls": 0}, {"open_seconds": 0}, {"window_seconds": -1}],
)
def test_breaker_settings_refuse_nonsense(kwargs: dict[str, float]) -> None:
    with pytest.raises(ConfigError):
        BreakerSettings(**kwargs)  # type: ignore[arg-type]
