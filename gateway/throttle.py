"""Throttled sign-in: after a few failures from one address or for one user name, each further one waits longer.

Failures are counted per key over a sliding window (each failure restarts it). From the
`max_failures`-th on, a failure blocks its key for `backoff_seconds`, doubling with each
further failure up to `max_backoff_seconds`; a blocked key is answered 429 with `Retry-After`
and its attempts are not checked (nor counted). A successful sign-in clears its user name's
count, never its address's: one good account must not reset an address that guesses others.
The counters live in the session store's backend, so replicas sharing Redis share them.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import redis.asyncio as redis

from gateway.errors import TooManyAttempts
from oberon.defaults import (
    DEFAULT_SIGN_IN_BACKOFF_SECONDS,
    DEFAULT_SIGN_IN_MAX_FAILURES,
    DEFAULT_SIGN_IN_WINDOW_SECONDS,
)

if TYPE_CHECKING:
    from gateway.stores import RedisGuard

REDIS_PREFIX = "oberon:throttle:"
SWEEP_EVERY = 1024

Clock = Callable[[], float]


@dataclass(frozen=True)
class ThrottlePolicy:
    """How many failures are free within the window, and how long the blocks after them last."""

    max_failures: int = DEFAULT_SIGN_IN_MAX_FAILURES
    window_seconds: int = DEFAULT_SIGN_IN_WINDOW_SECONDS
    backoff_seconds: int = DEFAULT_SIGN_IN_BACKOFF_SECONDS

    @property
    def max_backoff_seconds(self) -> int:
        """The longest block: the window (a longer one would outlast the count that caused it)."""
        return self.window_seconds

    def delay(self, failures: int) -> int:
        """Seconds a key is blocked after its `failures`-th failure in the window: 0 before `max_failures`."""
        if failures < self.max_failures:
            return 0
        doublings = min(failures - self.max_failures, 32)
        return min(self.backoff_seconds * (1 << doublings), self.max_backoff_seconds)


def address_key(ip: str) -> str:
    return f"address:{ip}"


def user_key(username: str) -> str:
    """A user name's key: hashed, so any text the form brings makes a short, safe key."""
    digest = hashlib.sha256(username.strip().lower().encode("utf-8")).hexdigest()[:32]
    return f"user:{digest}"


class Counters(Protocol):
    """Failure counts and blocks by key; a Redis one raises StoreUnavailable when unreachable."""

    async def fail(self, key: str, *, window: int) -> int:
        """Count one failure for `key` (the window restarts); the count within the window."""
        ...

    async def block(self, key: str, *, seconds: int) -> None: ...

    async def blocked_for(self, keys: Sequence[str]) -> float:
        """The longest remaining block among `keys`, in seconds; 0 when none is blocked."""
        ...

    async def clear(self, key: str) -> None: ...


class MemoryCounters:
    """Counters in this process: for a single gateway (and the users stand-in)."""

    def __init__(self, *, clock: Clock = time.monotonic) -> None:
        self.clock = clock
        self._failures: dict[str, tuple[int, float]] = {}  # key → (count, until)
        self._blocks: dict[str, float] = {}  # key → until
        self._operations = 0

    async def fail(self, key: str, *, window: int) -> int:
        now = self.clock()
        count, until = self._failures.get(key, (0, now))
        count = count + 1 if until > now else 1
        self._failures[key] = (count, now + window)
        self._operations += 1
        if self._operations % SWEEP_EVERY == 0:
            self._sweep(now)
        return count

    async def block(self, key: str, *, seconds: int) -> None:
        self._blocks[key] = self.clock() + seconds

    async def blocked_for(self, keys: Sequence[str]) -> float:
        now = self.clock()
        return max([self._blocks.get(key, now) - now for key in keys] + [0.0])

    async def clear(self, key: str) -> None:
        self._failures.pop(key, None)
        self._blocks.pop(key, None)

    def _sweep(self, now: float) -> None:
        self._failures = {key: value for key, value in self._failures.items() if value[1] > now}
        self._blocks = {key: until for key, until in self._blocks.items() if until > now}


class RedisCounters:
    """Counters in Redis, shared by every gateway replica; each key expires by itself."""

    def __init__(self, *, client: redis.Redis, guard: RedisGuard) -> None:
        self.client = client
        self.guard = guard

    async def fail(self, key: str, *, window: int) -> int:
        async with self.guard.call():
            async with self.client.pipeline(transaction=True) as pipe:
                pipe.incr(f"{REDIS_PREFIX}{key}:failures")
                pipe.expire(f"{REDIS_PREFIX}{key}:failures", window)
                count, _ = await pipe.execute()
        return int(count)

    async def block(self, key: str, *, seconds: int) -> None:
        async with self.guard.call():
            await self.client.set(f"{REDIS_PREFIX}{key}:blocked", "1", ex=seconds)

    async def blocked_for(self, keys: Sequence[str]) -> float:
        async with self.guard.call():
            async with self.client.pipeline(transaction=False) as pipe:
                for key in keys:
                    pipe.pttl(f"{REDIS_PREFIX}{key}:blocked")
                remaining = await pipe.execute()
        return max([int(ms) / 1000 for ms in remaining] + [0.0])  # -2: no such key, -1: no expiry (never set)

    async def clear(self, key: str) -> None:
        async with self.guard.call():
            await self.client.delete(f"{REDIS_PREFIX}{key}:failures", f"{REDIS_PREFIX}{key}:blocked")


class Throttle:
    """Refuses sign-in attempts for blocked keys (TooManyAttempts), and counts failures."""

    def __init__(self, *, counters: Counters, policy: ThrottlePolicy) -> None:
        self.counters = counters
        self.policy = policy

    async def check(self, keys: Sequence[str]) -> None:
        """TooManyAttempts (with the seconds to wait) when any of `keys` is blocked."""
        remaining = await self.counters.blocked_for(keys)
        if remaining > 0:
            raise TooManyAttempts(max(1, math.ceil(remaining)))

    async def failed(self, keys: Sequence[str]) -> None:
        for key in keys:
            delay = self.policy.delay(await self.counters.fail(key, window=self.policy.window_seconds))
            if delay:
                await self.counters.block(key, seconds=delay)

    async def succeeded(self, key: str) -> None:
        await self.counters.clear(key)
