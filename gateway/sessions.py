"""Server-side sessions: the cookie names a session, the store says whether it still stands and whose it is.

A session can thus be revoked — by signing out, changing the password, or an operator — and the
next request that shows its cookie, on any replica sharing the store, is anonymous.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import redis.asyncio as redis

from gateway.auth import Identity, Method, identity_from_claims
from gateway.errors import AuthenticationError

if TYPE_CHECKING:
    from gateway.stores import RedisGuard

SESSION_ID_BYTES = 32
SWEEP_EVERY = 1024  # the in-process store drops expired sessions after this many new ones
REDIS_PREFIX = "oberon:session:"
REDIS_USER_PREFIX = "oberon:user-sessions:"
# Atomically: every session in the user's index, and the index itself. Returns how many were live.
REVOKE_USER = """
local live = 0
for _, id in ipairs(redis.call('SMEMBERS', KEYS[1])) do
    live = live + redis.call('DEL', ARGV[1] .. id)
end
redis.call('DEL', KEYS[1])
return live
"""

Clock = Callable[[], float]


@dataclass(frozen=True)
class Session:
    """One signed-in browser: who, with which roles, since and until when (epoch seconds)."""

    id: str
    user: str
    roles: tuple[str, ...]
    created: float
    expires: float

    @property
    def identity(self) -> Identity:
        return Identity(user=self.user, roles=self.roles, method=Method.SESSION)


def new_session(identity: Identity, *, now: float, max_age: int) -> Session:
    """A session for a signed-in identity with a fresh random id."""
    assert identity.user is not None, "only a signed-in identity has a session"
    return Session(
        id=secrets.token_urlsafe(SESSION_ID_BYTES),
        user=identity.user,
        roles=identity.roles,
        created=now,
        expires=now + max_age,
    )


class SessionStore(Protocol):
    """Keeps sessions until they expire or are revoked; a Redis one raises StoreUnavailable when unreachable."""

    async def create(self, identity: Identity, *, max_age: int) -> Session: ...

    async def get(self, session_id: str) -> Session | None: ...

    async def revoke(self, session_id: str) -> None: ...

    async def revoke_user(self, user: str) -> int:
        """Revoke every session of `user`; how many were live."""
        ...


class MemorySessionStore:
    """Sessions in this process: for a single gateway (the embedded topology)."""

    def __init__(self, *, clock: Clock = time.time) -> None:
        self.clock = clock
        self._sessions: dict[str, Session] = {}
        self._by_user: dict[str, set[str]] = {}
        self._created = 0

    async def create(self, identity: Identity, *, max_age: int) -> Session:
        session = new_session(identity, now=self.clock(), max_age=max_age)
        self._sessions[session.id] = session
        self._by_user.setdefault(session.user, set()).add(session.id)
        self._created += 1
        if self._created % SWEEP_EVERY == 0:
            self._sweep()
        return session

    async def get(self, session_id: str) -> Session | None:
        session = self._sessions.get(session_id)
        if session is None or session.expires > self.clock():
            return session
        self._forget(session)
        return None

    async def revoke(self, session_id: str) -> None:
        session = self._sessions.get(session_id)
        if session is not None:
            self._forget(session)

    async def revoke_user(self, user: str) -> int:
        now = self.clock()
        ids = self._by_user.pop(user, set())
        revoked = [self._sessions.pop(session_id) for session_id in ids if session_id in self._sessions]
        return sum(1 for session in revoked if session.expires > now)

    def _forget(self, session: Session) -> None:
        self._sessions.pop(session.id, None)
        ids = self._by_user.get(session.user)
        if ids is not None:
            ids.discard(session.id)
            if not ids:
                del self._by_user[session.user]

    def _sweep(self) -> None:
        now = self.clock()
        for session in [session for session in self._sessions.values() if session.expires <= now]:
            self._forget(session)


class RedisSessionStore:
    """Sessions in Redis, shared by every gateway replica: each a key that expires with it, plus a per-user index."""

    def __init__(self, *, client: redis.Redis, guard: RedisGuard, clock: Clock = time.time) -> None:
        self.client = client
        self.guard = guard
        self.clock = clock
        self._revoke_user = client.register_script(REVOKE_USER)

    async def create(self, identity: Identity, *, max_age: int) -> Session:
        session = new_session(identity, now=self.clock(), max_age=max_age)
        record = json.dumps({"u": session.user, "r": list(session.roles), "c": session.created, "e": session.expires})
        index = REDIS_USER_PREFIX + session.user
        async with self.guard.call():
            async with self.client.pipeline(transaction=True) as pipe:
                pipe.set(REDIS_PREFIX + session.id, record, ex=max_age)
                pipe.sadd(index, session.id)
                pipe.expire(index, max_age, gt=True)  # the index lives as long as its newest session
                pipe.expire(index, max_age, nx=True)
                await pipe.execute()
        return session

    async def get(self, session_id: str) -> Session | None:
        async with self.guard.call():
            record = await self.client.get(REDIS_PREFIX + session_id)
        if record is None:
            return None
        try:
            data = json.loads(record)
            identity = identity_from_claims(data["u"], data["r"], Method.SESSION)
            created, expires = float(data["c"]), float(data["e"])
        except (ValueError, TypeError, KeyError, AuthenticationError):
            return None  # not a record this code wrote: no session
        assert identity.user is not None
        if expires <= self.clock():
            return None
        return Session(id=session_id, user=identity.user, roles=identity.roles, created=created, expires=expires)

    async def revoke(self, session_id: str) -> None:
        session = await self.get(session_id)
        async with self.guard.call():
            async with self.client.pipeline(transaction=True) as pipe:
                pipe.delete(REDIS_PREFIX + session_id)
                if session is not None:
                    pipe.srem(REDIS_USER_PREFIX + session.user, session_id)
                await pipe.execute()

    async def revoke_user(self, user: str) -> int:
        async with self.guard.call():
            live = await self._revoke_user(keys=[REDIS_USER_PREFIX + user], args=[REDIS_PREFIX])
        return int(live)
