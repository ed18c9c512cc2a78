"""Where the gateway keeps what every replica must agree on: sessions, sign-in failures, waiting-room queues.

`OBERON_SESSION_STORE` chooses: empty keeps them in this process (one gateway, the embedded
topology); `redis://host:port/db` (or `rediss://` for TLS) keeps them in Redis, shared by a
fleet of gateways. An unreachable Redis raises `StoreUnavailable`: the gateway then refuses
what needs the store (a signed-in request, a sign-in) rather than guess.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import redis.asyncio as redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff

from gateway.errors import StoreUnavailable
from gateway.sessions import MemorySessionStore, RedisSessionStore, SessionStore
from gateway.throttle import Counters, MemoryCounters, RedisCounters
from gateway.waiting_room import MemoryQueue, QueueStore, RedisQueue
from oberon.exceptions import ConfigError

logger = logging.getLogger("oberon.gateway")

REDIS_SCHEMES = ("redis", "rediss")
# A replica waits this long for Redis before it fails the request closed (503): not the upstream timeout.
REDIS_TIMEOUT = 1.0

Clock = Callable[[], float]


def check_store_url(url: str) -> None:
    """ConfigError unless `url` is empty (in-process) or a `redis://` / `rediss://` URL with a host."""
    if not url:
        return
    parts = urlsplit(url)
    if parts.scheme not in REDIS_SCHEMES or not parts.hostname:
        raise ConfigError(
            f"OBERON_SESSION_STORE must be empty (in-process) or redis://host:port/db, got {parts.scheme or url!r}"
        )
    try:
        parts.port  # noqa: B018 (a malformed port raises here, not on the first request)
    except ValueError:
        raise ConfigError(f"OBERON_SESSION_STORE: the port of {url!r} is not a number") from None


class RedisGuard:
    """Runs Redis calls, turning any Redis error into `StoreUnavailable`; logs an outage once, and its end."""

    def __init__(self) -> None:
        self.down = False

    @asynccontextmanager
    async def call(self) -> AsyncIterator[None]:
        try:
            yield
        except redis.RedisError as exc:
            if not self.down:
                self.down = True
                logger.warning("the session store (Redis) is unreachable; signed-in requests get 503: %r", exc)
            raise StoreUnavailable(type(exc).__name__) from None
        if self.down:
            self.down = False
            logger.warning("the session store (Redis) answers again")


@dataclass(frozen=True)
class Stores:
    """The session store, the sign-in failure counters and the waiting rooms' queues, on one backend; `aclose` at
    shutdown."""

    sessions: SessionStore
    counters: Counters
    aclose: Callable[[], Awaitable[None]]
    queues: QueueStore = field(default_factory=MemoryQueue)


def open_stores(url: str, *, clock: Clock) -> Stores:
    """The stores `url` names (see `check_store_url`); a Redis client connects on first use, not here."""
    check_store_url(url)
    if not url:
        return Stores(
            sessions=MemorySessionStore(clock=clock),
            counters=MemoryCounters(clock=clock),
            aclose=_nothing,
            queues=MemoryQueue(clock=clock),
        )
    client = redis.Redis.from_url(
        url,
        socket_timeout=REDIS_TIMEOUT,
        socket_connect_timeout=REDIS_TIMEOUT,
        retry=Retry(ExponentialBackoff(cap=0.1, base=0.01), retries=1),
        decode_responses=True,
    )
    guard = RedisGuard()
    return Stores(
        sessions=RedisSessionStore(client=client, guard=guard, clock=clock),
        counters=RedisCounters(client=client, guard=guard),
        aclose=client.aclose,
        queues=RedisQueue(client=client, guard=guard, clock=clock),
    )


async def _nothing() -> None:
    return None
