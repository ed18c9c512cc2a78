"""A bulkhead: a bound on the calls in flight to one upstream, so one hanging service cannot hold them all.

A call beyond the bound is refused at once (`BulkheadFull`, an upstream failure: the caller falls back),
never queued: queueing is what lets a slow service hold every task and connection of its callers.
"""

from __future__ import annotations

from oberon.defaults import DEFAULT_BULKHEAD_MAX_IN_FLIGHT as DEFAULT_MAX_IN_FLIGHT
from oberon.exceptions import ConfigError


class Bulkhead:
    """Counts an upstream's calls in flight against `max_in_flight`; `try_acquire` before a call, `release` after."""

    def __init__(self, *, max_in_flight: int = DEFAULT_MAX_IN_FLIGHT) -> None:
        if max_in_flight < 1:
            raise ConfigError(f"bulkhead max_in_flight must be at least 1, got {max_in_flight}")
        self.max_in_flight = max_in_flight
        self.in_flight = 0
        self.rejected = 0  # calls refused since start

    @property
    def full(self) -> bool:
        return self.in_flight >= self.max_in_flight

    def try_acquire(self) -> bool:
        """Take a place for one call; False (and counted) when every place is taken."""
        if self.in_flight >= self.max_in_flight:  # `full`, without a property's call (issue 19: every call asks)
            self.rejected += 1
            return False
        self.in_flight += 1
        return True

    def release(self) -> None:
        self.in_flight -= 1
