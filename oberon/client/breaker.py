"""Circuit breakers: stop calling a failing service (or one endpoint of it), probe it, close again when it heals.

The client (`oberon.client.upstream`) keeps one per endpoint template of an upstream (`EndpointBreakers`),
and one for the upstream as a whole, which counts connection-level failures only.

closed ──(failure ratio ≥ threshold over the window, with enough calls)──► open
open ──(after open_seconds)──► half-open ──(probe succeeds)──► closed
                                         └─(probe fails)────► open
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable
from dataclasses import dataclass

from oberon.defaults import DEFAULT_BREAKER_FAILURE_RATIO as DEFAULT_FAILURE_RATIO
from oberon.defaults import DEFAULT_BREAKER_MIN_CALLS as DEFAULT_MIN_CALLS
from oberon.defaults import DEFAULT_BREAKER_OPEN_SECONDS as DEFAULT_OPEN_SECONDS
from oberon.defaults import DEFAULT_BREAKER_WINDOW_SECONDS as DEFAULT_WINDOW_SECONDS
from oberon.defaults import DEFAULT_BULKHEAD_MAX_IN_FLIGHT as DEFAULT_MAX_IN_FLIGHT
from oberon.exceptions import ConfigError

DEFAULT_HALF_OPEN_CALLS = 1
# The window is counted in this many buckets of `window_seconds / BUCKETS` each, as resilience4j's time-based
# window is: a call adds to two counters, where a list of every outcome made and dropped a tuple and a float per
# call, 150,000 of them alive at 7,500 calls a second, memory every request then missed in the caches (issue 19).
# An outcome leaves the window when its bucket does: up to a tenth of the window early.
BUCKETS = 10
# Endpoint templates are a finite set (data sources, BFF code); this only bounds a caller that names raw paths.
DEFAULT_MAX_ENDPOINTS = 64
OTHER_ENDPOINTS = "*"  # the breaker shared by the templates beyond the bound


class BreakerState(enum.StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half-open"


# The states as plain names: reading a member off the enum class is a descriptor call in Python 3.11 (~0.2 µs), and
# every call checks and feeds two breakers (issue 19).
_CLOSED, _OPEN, _HALF_OPEN = BreakerState.CLOSED, BreakerState.OPEN, BreakerState.HALF_OPEN


@dataclass(frozen=True)
class BreakerSettings:
    """Thresholds of an upstream's circuit breakers, and the bound of its bulkhead (calls in flight at once).

    One settings object for both guards, as the client takes them together (`ClientSettings.breaker`).
    """

    failure_ratio: float = DEFAULT_FAILURE_RATIO
    window_seconds: float = DEFAULT_WINDOW_SECONDS
    min_calls: int = DEFAULT_MIN_CALLS
    open_seconds: float = DEFAULT_OPEN_SECONDS
    half_open_calls: int = DEFAULT_HALF_OPEN_CALLS
    max_in_flight: int = DEFAULT_MAX_IN_FLIGHT

    def __post_init__(self) -> None:
        if not 0 < self.failure_ratio <= 1:
            raise ConfigError(f"breaker failure_ratio must be in (0, 1], got {self.failure_ratio}")
        if self.window_seconds <= 0 or self.open_seconds <= 0:
            raise ConfigError("breaker window_seconds and open_seconds must be positive")
        if self.min_calls < 1 or self.half_open_calls < 1:
            raise ConfigError("breaker min_calls and half_open_calls must be at least 1")
        if self.max_in_flight < 1:
            raise ConfigError(f"bulkhead max_in_flight must be at least 1, got {self.max_in_flight}")


class CircuitBreaker:
    """Counts outcomes over a sliding time window and decides whether a call may go out."""

    def __init__(self, *, settings: BreakerSettings | None = None, clock: Callable[[], float] = time.monotonic):
        self.settings = settings or BreakerSettings()
        self._clock = clock
        self._width = self.settings.window_seconds / BUCKETS
        self._bucket = 0  # the number (time // width) of the newest bucket counted
        self._forget()
        self._state = _CLOSED
        # `state is CLOSED` as a plain attribute, kept with `_state`: the client reads it on every call without a
        # property's or a method's frame (issue 19).
        self.closed = True
        self._opened_at = 0.0
        self._probes = 0

    @property
    def state(self) -> BreakerState:
        if self._state is _OPEN and self._clock() - self._opened_at >= self.settings.open_seconds:
            self._state = _HALF_OPEN
            self._probes = 0  # `closed` is already False: only an open breaker turns half-open
        return self._state

    def allow(self) -> bool:
        """Whether a call may go out now; in half-open, only a few probes at a time."""
        if self._state is _CLOSED:  # every call asks: no clock read while closed
            return True
        state = self.state
        if state is _CLOSED:
            return True
        if state is _HALF_OPEN and self._probes < self.settings.half_open_calls:
            self._probes += 1
            return True
        return False

    def record(self, *, ok: bool) -> None:
        """Count one call's outcome (only failures of the upstream itself count as failures)."""
        state = self._state if self._state is _CLOSED else self.state
        if state is _HALF_OPEN:
            self._probes = max(0, self._probes - 1)
            if ok:
                self._close()
            else:
                self._open()
            return
        if state is _OPEN:
            return
        self._add(ok)
        if self._failures:  # no failure in the window: nothing to weigh
            calls = self._calls
            if calls >= self.settings.min_calls and self._failures / calls >= self.settings.failure_ratio:
                self._open()

    def succeeded(self) -> None:
        """`record(ok=True)`: what every call that went well records, without weighing a window that holds no
        failure (issue 19: two breakers a call)."""
        if self._state is not _CLOSED or self._failures:
            self.record(ok=True)
            return
        # `_add(True)` written out: two breakers a call, no frame of `_add`'s each (issue 19, session 18).
        bucket = int(self._clock() // self._width)
        if bucket != self._bucket:
            self._move_to(bucket)
        self._calls_in[bucket % BUCKETS] += 1
        self._calls += 1

    def _add(self, ok: bool) -> None:
        """One outcome into the window's newest bucket, the buckets older than the window emptied first."""
        bucket = int(self._clock() // self._width)
        if bucket != self._bucket:
            self._move_to(bucket)
        slot = bucket % BUCKETS
        self._calls_in[slot] += 1
        self._calls += 1
        if not ok:
            self._failures_in[slot] += 1
            self._failures += 1

    def _move_to(self, bucket: int) -> None:
        """Empty the buckets between the newest counted and `bucket`: they now stand for times after the window."""
        for number in range(self._bucket + 1, min(bucket, self._bucket + BUCKETS) + 1):
            slot = number % BUCKETS
            self._calls -= self._calls_in[slot]
            self._failures -= self._failures_in[slot]
            self._calls_in[slot] = self._failures_in[slot] = 0
        self._bucket = bucket

    def _forget(self) -> None:
        """An empty window."""
        self._calls_in = [0] * BUCKETS  # by bucket number % BUCKETS
        self._failures_in = [0] * BUCKETS
        # Over the window, kept with the buckets: recording a call costs the same under any load.
        self._calls = self._failures = 0

    def release(self) -> None:
        """Give back a probe whose call says nothing about this service (it never went out, or was cancelled)."""
        if self._state is _HALF_OPEN:
            self._probes = max(0, self._probes - 1)

    @property
    def retry_after(self) -> float:
        """Seconds until an open breaker lets a probe through."""
        if self.state is not _OPEN:
            return 0.0
        return max(0.0, self.settings.open_seconds - (self._clock() - self._opened_at))

    def _open(self) -> None:
        self._state = _OPEN
        self.closed = False
        self._opened_at = self._clock()
        self._forget()

    def _close(self) -> None:
        self._state = _CLOSED
        self.closed = True
        self._forget()


class EndpointBreakers:
    """One breaker per endpoint template of an upstream, made on first use; at most `max_endpoints` of them.

    Templates beyond the bound share one breaker (`OTHER_ENDPOINTS`), so the state stays bounded
    even for a caller that passes raw paths.
    """

    def __init__(
        self,
        *,
        settings: BreakerSettings | None = None,
        max_endpoints: int = DEFAULT_MAX_ENDPOINTS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings or BreakerSettings()
        self.max_endpoints = max_endpoints
        self._clock = clock
        self._breakers: dict[str, CircuitBreaker] = {}

    def key(self, template: str) -> str:
        """The breaker `template` is counted by: itself, or `OTHER_ENDPOINTS` once the bound is reached."""
        if template in self._breakers or len(self._breakers) < self.max_endpoints:
            return template
        return OTHER_ENDPOINTS

    def lookup(self, template: str) -> tuple[str, CircuitBreaker]:
        """The key `template` is counted by, and its breaker (made on first use)."""
        breaker = self._breakers.get(template)
        if breaker is not None:
            return template, breaker
        key = self.key(template)
        return key, self[key]

    def __getitem__(self, template: str) -> CircuitBreaker:
        key = self.key(template)
        breaker = self._breakers.get(key)
        if breaker is None:
            breaker = self._breakers[key] = CircuitBreaker(settings=self.settings, clock=self._clock)
        return breaker

    def states(self) -> dict[str, BreakerState]:
        """Each endpoint's breaker state, by template."""
        return {template: breaker.state for template, breaker in self._breakers.items()}

    def open_count(self) -> int:
        return sum(1 for breaker in self._breakers.values() if breaker.state is BreakerState.OPEN)
