"""The waiting room of an on-sale route: visitors admitted first in, first out, at most `capacity` a minute.

A route declares `waiting_room = 300` in `gateway/routes.toml` (visitors admitted per minute). A
visitor without an admission draws an arrival number (an atomic counter in the store) and carries
it in a signed ticket cookie; the room's *frontier* — every arrival number up to it is admitted —
moves forward at `capacity / 60` a second (a token bucket holding at most ten seconds' worth, so
an idle room does not save up a stampede). A visitor whose number the frontier has passed gets a
signed admission cookie and is not queued again on the route's pages for `ADMISSION_SECONDS`.

Both cookies are signed with the session secret (itsdangerous, a salt each) and hold the room and
the number only: a forged, tampered, expired or foreign ticket is ignored, so its bearer is a new
arrival at the back of the line. The counters live in the session store's backend
(`gateway.stores`): in this process for one gateway, in Redis for a fleet, where one Lua script
moves the frontier atomically, so every gateway admits from the one queue. When the store cannot
be reached the room fails closed: 503 with `Retry-After`, nobody new is admitted (an admission
already granted still stands: it needs only its signature).

A browser waiting gets a 200 page that refreshes itself (`<meta http-equiv="refresh">`, no script)
with its position: the visitor is being served, and a 5xx would set off the error handling of a
CDN, a load balancer's outlier detection and the error-rate alerts in the middle of a healthy
on-sale. An API caller gets 503 with `Retry-After` and `{"position", "retry_after"}`.

Known limit: a number whose visitor gave up is still passed by the frontier (its share of the
capacity is lost); a client that keeps no cookies draws a new number on every request.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import itsdangerous
import jinja2
import redis.asyncio as redis
from starlette.responses import HTMLResponse, JSONResponse, Response

from gateway.errors import StoreUnavailable

if TYPE_CHECKING:
    from gateway.stores import RedisGuard

Clock = Callable[[], float]

ADMISSION_SECONDS = 15 * 60  # an admitted visitor's next pages are not queued for this long
TICKET_SECONDS = 30 * 60  # a ticket is signed afresh on every refresh; one not shown for this long is void
BURST_SECONDS = 10  # the frontier may jump at most this many seconds' worth of capacity at once
MIN_REFRESH = 5  # seconds between a waiting browser's refreshes: at least …
MAX_REFRESH = 30  # … and at most
STORE_DOWN_RETRY = 10
REDIS_PREFIX = "oberon:queue:"
REDIS_KEEP_SECONDS = 24 * 3600  # a room's counters outlive any on-sale, then go by themselves
TICKET_SALT = "oberon.waiting-room.ticket"
ADMISSION_SALT = "oberon.waiting-room.admission"
NO_STORE = {"Cache-Control": "no-store"}


def burst(capacity: int) -> int:
    """How many visitors the frontier may admit at once after a quiet spell: ten seconds' worth, at least one."""
    return max(1, math.ceil(capacity * BURST_SECONDS / 60))


class QueueStore(Protocol):
    """Arrival numbers and the admitted frontier of each room; a Redis one raises StoreUnavailable."""

    async def arrive(self, room: str) -> int:
        """A new arrival's number: 1, 2, 3 … for each room, never given twice."""
        ...

    async def advance(self, room: str, *, capacity: int) -> int:
        """Move the room's frontier as time and `capacity` (a minute) allow; the frontier (never past the arrivals)."""
        ...


@dataclass
class _Room:
    stamp: float
    tokens: float | None = None  # None: full, the first time the frontier moves
    arrivals: int = 0
    frontier: int = 0


class MemoryQueue:
    """The rooms in this process: for a single gateway."""

    def __init__(self, *, clock: Clock = time.time) -> None:
        self.clock = clock
        self._rooms: dict[str, _Room] = {}

    def _room(self, room: str) -> _Room:
        if room not in self._rooms:
            self._rooms[room] = _Room(stamp=self.clock())
        return self._rooms[room]

    async def arrive(self, room: str) -> int:
        state = self._room(room)
        state.arrivals += 1
        return state.arrivals

    async def advance(self, room: str, *, capacity: int) -> int:
        state = self._room(room)
        now = self.clock()
        size = burst(capacity)
        tokens = size if state.tokens is None else state.tokens
        state.tokens = min(size, tokens + max(0.0, now - state.stamp) * capacity / 60)
        state.stamp = max(state.stamp, now)
        admit = max(0, min(math.floor(state.tokens), state.arrivals - state.frontier))
        state.frontier += admit
        state.tokens -= admit
        return state.frontier


# One step of a room, atomically: refill the bucket for the time gone by (a clock that lags behind the last
# one seen refills nothing), admit as many waiting arrivals as it holds, and return the frontier.
_ADVANCE = """
local arrivals = tonumber(redis.call('GET', KEYS[1]) or '0')
local state = redis.call('HMGET', KEYS[2], 'frontier', 'tokens', 'stamp')
local now, rate, size = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local frontier = tonumber(state[1] or '0')
local tokens = tonumber(state[2] or ARGV[3])
local stamp = tonumber(state[3] or ARGV[1])
local elapsed = now - stamp
if elapsed < 0 then elapsed = 0 end
if now > stamp then stamp = now end
tokens = math.min(size, tokens + elapsed * rate)
local admit = math.min(math.floor(tokens), arrivals - frontier)
if admit < 0 then admit = 0 end
frontier = frontier + admit
tokens = tokens - admit
redis.call('HSET', KEYS[2], 'frontier', frontier, 'tokens', tostring(tokens), 'stamp', tostring(stamp))
redis.call('EXPIRE', KEYS[2], ARGV[4])
return frontier
"""


class RedisQueue:
    """The rooms in Redis, shared by every gateway replica: INCR numbers arrivals, a Lua script moves the frontier."""

    def __init__(self, *, client: redis.Redis, guard: RedisGuard, clock: Clock = time.time) -> None:
        self.client = client
        self.guard = guard
        self.clock = clock
        self._advance = client.register_script(_ADVANCE)

    @staticmethod
    def _keys(room: str) -> tuple[str, str]:
        tag = "{" + room + "}"  # one hash slot for a room's keys, should the Redis be a cluster
        return f"{REDIS_PREFIX}{tag}:arrivals", f"{REDIS_PREFIX}{tag}:frontier"

    async def arrive(self, room: str) -> int:
        arrivals, _ = self._keys(room)
        async with self.guard.call():
            async with self.client.pipeline(transaction=True) as pipe:
                pipe.incr(arrivals)
                pipe.expire(arrivals, REDIS_KEEP_SECONDS)
                number, _ = await pipe.execute()
        return int(number)

    async def advance(self, room: str, *, capacity: int) -> int:
        async with self.guard.call():
            frontier = await self._advance(
                keys=list(self._keys(room)),
                args=[repr(self.clock()), repr(capacity / 60), burst(capacity), REDIS_KEEP_SECONDS],
            )
        return int(frontier)


def _serializer(secret: str, salt: str, clock: Clock) -> itsdangerous.URLSafeTimedSerializer:
    """A timed serializer whose timestamps come from `clock` (the tests' clock moves; itsdangerous's reads time)."""

    class Signer(itsdangerous.TimestampSigner):
        def get_timestamp(self) -> int:
            return int(clock())

    return itsdangerous.URLSafeTimedSerializer(secret, salt=salt, signer=Signer)


def cookie_names(room: str, *, https: bool) -> tuple[str, str]:
    """The ticket's and the admission's cookie names for a room; `__Host-` over https, as the session's."""
    digest = hashlib.sha256(room.encode("utf-8")).hexdigest()[:8]
    prefix = "__Host-" if https else ""
    return f"{prefix}oberon_queue_{digest}", f"{prefix}oberon_admit_{digest}"


def _cookie(name: str, value: str, *, max_age: int, https: bool) -> str:
    attributes = [f"{name}={value}", "Path=/", f"Max-Age={max_age}", "HttpOnly", "SameSite=Lax"]
    if https:
        attributes.append("Secure")
    return "; ".join(attributes)


@dataclass(frozen=True)
class Passage:
    """What the room decided: `queued` is the answer for a visitor who waits (None: go on), `cookies` to set."""

    queued: Response | None = None
    cookies: tuple[str, ...] = field(default=())

    def stamp(self, response: Response) -> Response:
        """Give an admitted visitor's answer its admission cookie; an answer that sets one is never stored."""
        if self.cookies:
            kept = [(name, value) for name, value in response.raw_headers if name.lower() != b"cache-control"]
            response.raw_headers = kept
            response.raw_headers.append((b"cache-control", b"no-store"))
            for cookie in self.cookies:
                response.raw_headers.append((b"set-cookie", cookie.encode("latin-1")))
        return response


GO_ON = Passage()


class WaitingRoom:
    """Decides, for a request to a route with a waiting room, whether it goes on or waits (and answers it)."""

    def __init__(
        self, *, queues: QueueStore, secret: str, environment: jinja2.Environment, clock: Clock = time.time
    ) -> None:
        self.queues = queues
        self.environment = environment
        self._tickets = _serializer(secret, TICKET_SALT, clock)
        self._admissions = _serializer(secret, ADMISSION_SALT, clock)

    def issue_ticket(self, room: str, number: int) -> str:
        return self._tickets.dumps({"room": room, "number": number})

    def issue_admission(self, room: str, number: int) -> str:
        return self._admissions.dumps({"room": room, "number": number})

    def ticket(self, value: str | None, room: str) -> int | None:
        """The arrival number a ticket holds in `room`; None for none, or a forged, tampered, expired or foreign one."""
        return _number(self._tickets, value, room, TICKET_SECONDS)

    def admission(self, value: str | None, room: str) -> int | None:
        """The number an admission to `room` was granted to; None unless it is genuine and within its window."""
        return _number(self._admissions, value, room, ADMISSION_SECONDS)

    async def enter(
        self, cookies: Mapping[str, str], *, room: str, capacity: int, https: bool, wants_html: bool
    ) -> Passage:
        """Let the visitor on (with an admission cookie when just admitted), or answer with their place in line."""
        ticket_name, admission_name = cookie_names(room, https=https)
        if self.admission(cookies.get(admission_name), room) is not None:
            return GO_ON
        try:
            number = self.ticket(cookies.get(ticket_name), room)
            if number is None:
                number = await self.queues.arrive(room)
            frontier = await self.queues.advance(room, capacity=capacity)
        except StoreUnavailable:
            # Fail closed: without the store nobody can be admitted in order, so nobody new is.
            return Passage(queued=self._answer(None, STORE_DOWN_RETRY, wants_html=wants_html, cookies=()))
        if number <= frontier:
            admission = self.issue_admission(room, number)
            admitted = _cookie(admission_name, admission, max_age=ADMISSION_SECONDS, https=https)
            return Passage(cookies=(admitted, _cookie(ticket_name, "", max_age=0, https=https)))
        position = number - frontier
        retry_after = min(MAX_REFRESH, max(MIN_REFRESH, math.ceil(position * 60 / capacity)))
        ticket = _cookie(ticket_name, self.issue_ticket(room, number), max_age=TICKET_SECONDS, https=https)
        return Passage(queued=self._answer(position, retry_after, wants_html=wants_html, cookies=(ticket,)))

    def _answer(
        self, position: int | None, retry_after: int, *, wants_html: bool, cookies: tuple[str, ...]
    ) -> Response:
        """The queue page (200) for a browser; 503 for an API caller, and for everyone while the store is down."""
        headers = {**NO_STORE, "Retry-After": str(retry_after)}
        response: Response
        if wants_html:
            html = self.environment.get_template("waiting_room.html").render(position=position, refresh=retry_after)
            response = HTMLResponse(html, status_code=200 if position is not None else 503, headers=headers)
        else:
            payload: dict[str, Any] = {"position": position, "retry_after": retry_after}
            if position is None:
                payload["error"] = "the waiting room cannot admit anyone right now"
            response = JSONResponse(payload, status_code=503, headers=headers)
        for cookie in cookies:
            response.raw_headers.append((b"set-cookie", cookie.encode("latin-1")))
        return response


def _number(serializer: itsdangerous.URLSafeTimedSerializer, value: str | None, room: str, max_age: int) -> int | None:
    if not value:
        return None
    try:
        data = serializer.loads(value, max_age=max_age)
    except itsdangerous.BadData:
        return None
    if not isinstance(data, dict) or data.get("room") != room:
        return None
    number = data.get("number")
    if isinstance(number, bool) or not isinstance(number, int) or number < 1:
        return None
    return number
