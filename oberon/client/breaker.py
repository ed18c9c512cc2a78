"""A circuit breaker per upstream: stop calling a failing service, probe it, and close again when it heals.

closed ──(failure ratio ≥ threshold over the window, with enough calls)──► open
open ──(after open_seconds)──► half-open ──(probe succeeds)──► closed
                                         └─(probe fails)────► open
"""

from __future__ import annotations

import enum
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from oberon.defaults import DEFAULT_BREAKER_FAILURE_RATIO as DEFAULT_FAILURE_RATIO
from oberon.defaults import DEFAULT_BREAKER_MIN_CALLS as DEFAULT_MIN_CALLS
from oberon.defaults import DEFAULT_BREAKER_OPEN_SECONDS as DEFAULT_OPEN_SECONDS
from oberon.defaults import DEFAULT_BREAKER_WINDOW_SECONDS as DEFAULT_WINDOW_SECONDS
from oberon.exceptions import ConfigError

DEFAULT_HALF_OPEN_CALLS = 1


class BreakerState(enum.StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half-open"


@dataclass(frozen=True)
class BreakerSettings:
    """Thresholds of a circuit breaker."""

    failure_ratio: float = DEFAULT_FAILURE_RATIO
    window_seconds: float = DEFAULT_WINDOW_SECONDS
    min_calls: int = DEFAULT_MIN_CALLS
    open_seconds: float = DEFAULT_OPEN_SECONDS
    half_open_calls: int = DEFAULT_HALF_OPEN_CALLS

    def __post_init__(self) -> None:
        if not 0 < self.failure_ratio <= 1:
            raise ConfigError(f"breaker failure_ratio must be in (0, 1], got {self.failure_ratio}")
        if self.window_seconds <= 0 or self.open_seconds <= 0:
            raise ConfigError("breaker window_seconds and open_seconds must be positive")
        if self.min_calls < 1 or self.half_open_calls < 1:
            raise ConfigError("breaker min_calls and half_open_calls must be at least 1")


class CircuitBreaker:
    """Counts outcomes over a sliding time window and decides whether a call may go out."""

    def __init__(self, *, settings: BreakerSettings | None = None, clock: Callable[[], float] = time.monotonic):
        self.settings = settings or BreakerSettings()
        self._clock = clock
        self._outcomes: deque[tuple[float, bool]] = deque()
        self._failures = 0  # kept with the window, so recording a call costs the same under any load
        self._state = BreakerState.CLOSED
        self._opened_at = 0.0
        self._probes = 0

    @property
    def state(self) -> BreakerState:
        if self._state is BreakerState.OPEN and self._clock() - self._opened_at >= self.settings.open_seconds:
            self._state = BreakerState.HALF_OPEN
            self._probes = 0
        return self._state

    def allow(self) -> bool:
        """Whether a call may go out now; in half-open, only a few probes at a time."""
        state = self.state
        if state is BreakerState.CLOSED:
            return True
        if state is BreakerState.HALF_OPEN and self._probes < self.settings.half_open_calls:
            self._probes += 1
            return True
        return False

    def record(self, *, ok: bool) -> None:
        """Count one call's outcome (only failures of the upstream itself count as failures)."""
        state = self.state
        if state is BreakerState.HALF_OPEN:
            self._probes = max(0, self._probes - 1)
            if ok:
                self._close()
            else:
                self._open()
            return
        if state is BreakerState.OPEN:
            return
        now = self._clock()
        self._outcomes.append((now, ok))
        self._failures += not ok
        while self._outcomes and self._outcomes[0][0] <= now - self.settings.window_seconds:
            _, succeeded = self._outcomes.popleft()
            self._failures -= not succeeded
        calls = len(self._outcomes)
        if calls >= self.settings.min_calls and self._failures / calls >= self.settings.failure_ratio:
            self._open()

    @property
    def retry_after(self) -> float:
        """Seconds until an open breaker lets a probe through."""
        if self.state is not BreakerState.OPEN:
            return 0.0
        return max(0.0, self.settings.open_seconds - (self._clock() - self._opened_at))

    def _open(self) -> None:
        self._state = BreakerState.OPEN
        self._opened_at = self._clock()
        self._outcomes.clear()
        self._failures = 0

    def _close(self) -> None:
        self._state = BreakerState.CLOSED
        self._outcomes.clear()
        self._failures = 0
