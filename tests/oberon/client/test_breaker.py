from __future__ import annotations

import random
from collections.abc import Callable

import pytest

from oberon.client.breaker import BreakerSettings, BreakerState, CircuitBreaker, EndpointBreakers
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


def test_breaker_release_gives_a_half_open_probe_back(clock) -> None:
    cb = breaker(clock)
    for _ in range(4):
        cb.record(ok=False)
    clock.now += 5
    assert cb.allow()
    assert not cb.allow()  # one probe at a time
    cb.release()  # the probe never went out
    assert cb.allow()


def test_endpoint_breakers_are_one_per_template_and_bounded(clock) -> None:
    breakers = EndpointBreakers(settings=SETTINGS, max_endpoints=3, clock=clock)
    assert breakers["/events/{event_id}"] is breakers["/events/{event_id}"]
    assert breakers["/events/{event_id}"] is not breakers["/events/{event_id}/venue"]
    for n in range(100):  # a caller naming raw paths cannot grow the state past the bound
        breakers[f"/artists/name-{n}"].record(ok=True)
    assert len(breakers.states()) == 4
    assert set(breakers.states()) == {"/events/{event_id}", "/events/{event_id}/venue", "/artists/name-0", "*"}
    assert breakers["/events/{event_id}"] is not breakers["*"]


def test_endpoint_breakers_lookup_names_the_key_a_template_is_counted_by(clock) -> None:
    breakers = EndpointBreakers(settings=SETTINGS, max_endpoints=2, clock=clock)
    assert breakers.lookup("/events/{id}") == ("/events/{id}", breakers["/events/{id}"])
    assert breakers.lookup("/venues/{id}") == ("/venues/{id}", breakers["/venues/{id}"])
    assert breakers.lookup("/artists/{id}") == ("*", breakers["*"])  # beyond the bound: the shared one
    assert breakers.lookup("/events/{id}")[1] is breakers["/events/{id}"]


def test_bulkhead_settings_refuse_a_bound_below_one() -> None:
    with pytest.raises(ConfigError, match="max_in_flight"):
        BreakerSettings(max_in_flight=0)


def test_a_success_recorded_by_succeeded_is_one_recorded_by_record(clock) -> None:
    """Issue 19: `succeeded` skips weighing a window without failures; every state and answer stays the same."""
    rng = random.Random(19)
    fast, plain = breaker(clock), breaker(clock)
    seen: set[BreakerState] = set()
    for n in range(5000):
        failing = 0.6 if n // 250 % 2 else 0.1  # spells of failures, to open, half-open and close again
        step = rng.random()
        if step < 0.15:
            clock.now += rng.choice((0.5, 3.0, 6.0, 11.0))
        elif step < 0.25:
            assert fast.allow() == plain.allow()
        elif step < 0.25 + 0.75 * failing:
            fast.record(ok=False)
            plain.record(ok=False)
        else:
            fast.succeeded()
            plain.record(ok=True)
        assert fast.state is plain.state
        assert fast.retry_after == plain.retry_after
        assert (fast._calls, fast._failures) == (plain._calls, plain._failures)  # the same window
        for either in (fast, plain):  # the attribute the client reads on every call (issue 19) keeps to the state
            assert either.closed is (either.state is BreakerState.CLOSED)
        seen.add(plain.state)
    assert seen == set(BreakerState)


def test_breaker_counts_the_window_in_buckets_an_outcome_leaving_with_its_bucket(clock) -> None:
    """A tenth of the window a bucket: an outcome counts until its bucket is ten buckets old, so it leaves the
    window at most a tenth of it early, and never late."""
    clock.now = 1000.0  # a bucket begins: 1000 // (10 / 10)
    cb = breaker(clock)
    for _ in range(3):
        cb.record(ok=False)
    clock.now = 1009.9  # the same bucket's window: the three failures still count
    cb.record(ok=True)
    assert cb.state is BreakerState.OPEN  # 3 of 4 calls failed
    clock.now = 2000.0
    cb = breaker(clock)
    clock.now = 2000.5
    for _ in range(3):
        cb.record(ok=False)
    clock.now = 2010.0  # 9.5 s on, but their bucket has left the window
    cb.record(ok=False)
    assert cb.state is BreakerState.CLOSED  # one failure in the window: fewer calls than `min_calls`
    assert (cb._calls, cb._failures) == (1, 1)


def test_breaker_window_is_ten_buckets_of_counters_however_many_calls(clock) -> None:
    """The window keeps two counters a bucket, not an entry a call: 100,000 calls leave ten buckets that add up."""
    cb = breaker(clock)
    for n in range(100_000):
        clock.now += 0.001
        cb.record(ok=n % 3 != 2)  # a third fail: under the ratio, so it stays closed
    assert len(cb._calls_in) == len(cb._failures_in) == 10
    assert cb._calls == sum(cb._calls_in) and cb._failures == sum(cb._failures_in)
    assert 9_000 <= cb._calls <= 10_000  # the last 9 to 10 s of calls, a millisecond apart
