"""Admission control at a process's entrance: an adaptive concurrency limit, and what a request beyond it gets.

A process that takes every request queues them all once it is saturated: each waits behind the
others, pages and health probes alike, and a spike becomes an outage (issue 16: 600 connections on
one core, p50 1.16 s, health up to 0.8 s). `AdaptiveLimit` bounds the requests in flight instead, and
moves the bound with the latency it measures, AIMD in the manner of Netflix's concurrency-limits
(`AIMDLimit`) with a Vegas-like baseline:

- the *baseline* is the lowest latency seen over a sliding window (two buckets of `window_seconds`):
  what a request costs when nothing queues; the *target* is `tolerance` × the baseline, never below
  `floor_seconds` (pages that take 2 ms would otherwise cut the limit at a few milliseconds of jitter);
- a request answered within the target while the limit was at least half used adds one (additive
  increase: an idle process learns nothing about its capacity); one slower than the target multiplies
  the limit by `backoff` (multiplicative decrease), at most once per `backoff_interval` so that one
  burst of slow answers counts as one signal;
- the limit stays within `min_limit` and `max_limit`.

`Admission` is the ASGI middleware that applies it. A request beyond the limit is never queued: it
gets the last good copy of an anonymous public page this entrance served (`StaleCopies`: marked
`X-Oberon-Stale: admission`, `Cache-Control` from the degradation policy, answered from memory), else
at once a `503` with `Retry-After` and a small static page (HTML for browsers, JSON otherwise).
`/_oberon/health` is neither counted nor shed (the admin listener is another server altogether).
Shed requests are counted (`ShedObserver`, the metrics) and logged at most once a second with a count.

Shedding must cost far less than answering: a client that asks again at once (a closed loop, a retry
storm) sends thousands of requests a second beyond the limit, and their CPU is taken from the pages
admitted. So `Admission.admit` — take a place, or decide the whole shed answer (`ShedAnswer`, with its
header lines prebuilt) — is called by the HTTP server itself as soon as a request's headers are in
(`oberon.runtime.server.EntranceProtocol`: the answer is written before any ASGI scope, task or
middleware exists; the request is marked `HELD` and its place given back with its answer's last part), and
by this middleware for whatever reaches it unmarked (another server, a pipelined request, tests).
"""

from __future__ import annotations

import functools
import json
import logging
import math
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import NamedTuple

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from oberon.client.doorkeeper import Doorkeeper
from oberon.defaults import DEFAULT_ADMISSION_INITIAL_LIMIT as DEFAULT_INITIAL_LIMIT
from oberon.defaults import DEFAULT_ADMISSION_MAX_LIMIT as DEFAULT_MAX_LIMIT
from oberon.defaults import DEFAULT_ADMISSION_MIN_LIMIT as DEFAULT_MIN_LIMIT
from oberon.exceptions import ConfigError
from oberon.headers import BUCKET_HEADER
from oberon.query_strings import cache_key_query

HEALTH_PATH = "/_oberon/health"
STALE_HEADER = "X-Oberon-Stale"
STALE, REJECTED = "stale", "rejected"  # what a shed request got: the `outcome` label
SERVER, APP = "server", "app"  # where it was shed, the `at` label: by the HTTP server, or by the ASGI middleware
# The ASGI scope key by which the HTTP server says it took this request's place itself (and gives it back).
HELD = "oberon.admission.held"
RETRY_AFTER_SECONDS = 1
DEFAULT_TOLERANCE = 2.0
DEFAULT_FLOOR_SECONDS = 0.025  # the page latency objective: below it, latency says nothing of overload
DEFAULT_BACKOFF = 0.9
DEFAULT_BACKOFF_INTERVAL = 0.1
DEFAULT_WINDOW_SECONDS = 10.0
DEFAULT_STALE_MAX_BYTES = 16 * 1024 * 1024
STALE_MAX_PAGE_BYTES = 1024 * 1024
STALE_DOORKEEPER_SLOTS = 1 << 20  # 1 MB: "lately" is the last 32,768 to 65,536 pages first asked for
LOG_INTERVAL_SECONDS = 1.0

logger = logging.getLogger("oberon.admission")
ShedObserver = Callable[[str, str], None]  # called with the outcome of each shed request and where it was shed
Headers = Iterable[tuple[bytes, bytes]]


@dataclass(frozen=True)
class AdmissionSettings:
    """The bounds of an entrance's adaptive limit (`OBERON_ADMISSION_*`); `enabled=False` admits everything."""

    enabled: bool = True
    min_limit: int = DEFAULT_MIN_LIMIT
    max_limit: int = DEFAULT_MAX_LIMIT
    initial_limit: int = DEFAULT_INITIAL_LIMIT
    tolerance: float = DEFAULT_TOLERANCE
    floor_seconds: float = DEFAULT_FLOOR_SECONDS
    backoff: float = DEFAULT_BACKOFF
    backoff_interval: float = DEFAULT_BACKOFF_INTERVAL
    window_seconds: float = DEFAULT_WINDOW_SECONDS

    def __post_init__(self) -> None:
        if not 1 <= self.min_limit <= self.initial_limit <= self.max_limit:
            raise ConfigError(
                "OBERON_ADMISSION_MIN_LIMIT ≤ OBERON_ADMISSION_INITIAL_LIMIT ≤ OBERON_ADMISSION_MAX_LIMIT, "
                f"all at least 1; got {self.min_limit}, {self.initial_limit}, {self.max_limit}"
            )
        if self.tolerance < 1 or not 0 < self.backoff < 1 or self.window_seconds <= 0 or self.floor_seconds < 0:
            raise ConfigError("admission tolerance must be ≥ 1, backoff in (0, 1), the window positive")


class AdaptiveLimit:
    """How many requests may be in flight now; `try_acquire` before a request, `release(seconds)` after it."""

    def __init__(self, *, settings: AdmissionSettings | None = None, clock: Callable[[], float] = time.monotonic):
        self.settings = settings or AdmissionSettings()
        self._clock = clock
        self._limit = float(self.settings.initial_limit)
        self.in_flight = 0
        self._min_now = math.inf  # the lowest latency of the current bucket
        self._min_before = math.inf  # … and of the one before it
        self._bucket_started = clock()
        self._backed_off_at = -math.inf

    @property
    def limit(self) -> int:
        return int(self._limit)

    @property
    def baseline(self) -> float:
        """The lowest latency seen over the last one to two windows (inf before the first answer)."""
        self._roll()
        return min(self._min_now, self._min_before)

    @property
    def target(self) -> float:
        """Latency above which the limit comes down."""
        baseline = self.baseline
        if math.isinf(baseline):
            return math.inf
        return max(baseline * self.settings.tolerance, self.settings.floor_seconds)

    def try_acquire(self) -> bool:
        """Take a place if one is free; False: the request must be shed."""
        if self.in_flight >= int(self._limit):
            return False
        self.in_flight += 1
        return True

    def release(self, seconds: float) -> None:
        """Give back a place, with the latency of the request that held it."""
        in_flight = self.in_flight  # the load this request was answered under, itself included
        self.in_flight = in_flight - 1
        now = self._clock()
        settings = self.settings
        if now - self._bucket_started >= settings.window_seconds:
            self._roll()
        if seconds < self._min_now:
            self._min_now = seconds
        # `target`, written out: the baseline is known now (this answer's latency is in it).
        target = min(self._min_now, self._min_before) * settings.tolerance
        if seconds > target and seconds > settings.floor_seconds:
            if now - self._backed_off_at >= settings.backoff_interval:
                self._backed_off_at = now
                self._limit = max(float(settings.min_limit), self._limit * settings.backoff)
        elif in_flight * 2 >= self._limit:
            self._limit = min(float(settings.max_limit), self._limit + 1)

    def _roll(self) -> None:
        now = self._clock()
        if now - self._bucket_started >= self.settings.window_seconds:
            # Two buckets: the baseline forgets a minimum after one to two windows (the site may have changed).
            idle = now - self._bucket_started >= 2 * self.settings.window_seconds
            self._min_before = math.inf if idle else self._min_now
            self._min_now = math.inf
            self._bucket_started = now


class StaleCopy(NamedTuple):
    """A page as it was last answered: its body and content type."""

    body: bytes
    content_type: bytes


class StaleCopies:
    """The last good copy of each anonymous public page an entrance answered, by path and query; bounded in bytes.
    A page is kept from the second time it is asked for lately (`wants`), and renewed on every answer after.

    Kept: a whole `200` HTML answer to a GET without cookie or authorization whose `Cache-Control` is
    public and that sets no cookie — the pages the renderer's page cache and a CDN may share. Unlike the
    page cache these outlive their freshness: they are only served to requests that would otherwise get 503.
    """

    def __init__(self, *, max_bytes: int = DEFAULT_STALE_MAX_BYTES) -> None:
        self.max_bytes = max_bytes
        self._max_page_bytes = min(max_bytes, STALE_MAX_PAGE_BYTES)
        self._bytes = 0
        self._copies: OrderedDict[str, StaleCopy] = OrderedDict()
        self._doorkeeper = Doorkeeper(STALE_DOORKEEPER_SLOTS)

    def wants(self, key: str) -> bool:
        """Whether the answer to `key` is to be kept: its copy is held already (and is renewed), or the page was
        asked for lately (`Doorkeeper`). A page asked for once is not: every page whose URL is its own would
        evict, one for one, the copies of pages that are asked for again."""
        return key in self._copies or self._doorkeeper.seen_before(key)

    def get(self, key: str) -> StaleCopy | None:
        return self._copies.get(key)

    def put(self, key: str, copy: StaleCopy) -> None:
        old = self._copies.pop(key, None)
        if old is not None:
            self._bytes -= len(old.body)
        size = len(copy.body)
        if size > self._max_page_bytes:
            return
        self._copies[key] = copy
        self._bytes += size
        while self._bytes > self.max_bytes:
            _, dropped = self._copies.popitem(last=False)
            self._bytes -= len(dropped.body)

    def __len__(self) -> int:
        return len(self._copies)


class ShedLog:
    """Logs shed requests at most once per `interval` seconds, with how many since the last line."""

    def __init__(self, *, entrance: str, interval: float = LOG_INTERVAL_SECONDS, clock: Callable[[], float]) -> None:
        self.entrance = entrance
        self.interval = interval
        self._clock = clock
        self._logged_at = -math.inf
        self._count = 0

    def shed(self, limit: int) -> None:
        self._count += 1
        now = self._clock()
        if now - self._logged_at >= self.interval:
            logger.warning(
                "admission: %s shed %d request(s) beyond its concurrency limit of %d",
                self.entrance,
                self._count,
                limit,
                extra={"entrance": self.entrance, "shed": self._count, "limit": limit},
            )
            self._logged_at = now
            self._count = 0


@dataclass(frozen=True)
class ShedAnswer:
    """The whole answer to a request beyond the limit, for ASGI (`headers`) or the wire (`head`, the same lines)."""

    outcome: str  # STALE or REJECTED
    status: int
    headers: tuple[tuple[bytes, bytes], ...]
    head: bytes  # `headers` as HTTP/1.1 header lines, each ending in CRLF
    body: bytes  # empty for a HEAD (`content-length` still says the GET's)

    @classmethod
    def build(
        cls, outcome: str, status: int, headers: list[tuple[bytes, bytes]], body: bytes, *, head_only: bool
    ) -> ShedAnswer:
        headers = [*headers, (b"content-length", str(len(body)).encode())]
        head = b"".join(name + b": " + value + b"\r\n" for name, value in headers)
        return cls(outcome, status, tuple(headers), head, b"" if head_only else body)


class Admission:
    """ASGI middleware: `app` behind an adaptive concurrency limit; beyond it a stale copy, else a fast 503.

    `counts` and `admit` are the decision itself, for an HTTP server that sheds before the app is called."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        entrance: str,
        limit: AdaptiveLimit,
        stale: StaleCopies | None = None,
        stale_cache_control: str = "no-store",
        observers: tuple[ShedObserver, ...] = (),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.app = app
        self.entrance = entrance
        self.limit = limit
        self.stale = stale
        self.stale_cache_control = stale_cache_control
        self.observers = observers
        self._clock = clock
        self._log = ShedLog(entrance=entrance, clock=clock)
        # The 503s do not depend on the request beyond its method and `Accept`: built once, by (html, head_only).
        self._rejections = {
            (html, head_only): ShedAnswer.build(
                REJECTED,
                503,
                [
                    (b"cache-control", b"no-store"),
                    (b"retry-after", str(RETRY_AFTER_SECONDS).encode()),
                    (b"content-type", b"text/html; charset=utf-8" if html else b"application/json"),
                ],
                _PAGE if html else _JSON,
                head_only=head_only,
            )
            for html in (True, False)
            for head_only in (True, False)
        }

    def counts(self, path: str) -> bool:
        """Whether a request for `path` is held to the limit: all are but health's (and none when disabled)."""
        return path != HEALTH_PATH and self.limit.settings.enabled

    def admit(self, method: str, path: str, query: bytes, headers: Headers, *, at: str) -> ShedAnswer | None:
        """Take a place for this request (None: give it back with `limit.release` once answered), or the answer
        it gets instead, counted and logged as shed `at` (SERVER or APP)."""
        if self.limit.try_acquire():
            return None
        answer = self._shed_answer(method, path, query, headers)
        for observe in self.observers:
            observe(answer.outcome, at)
        self._log.shed(self.limit.limit)
        return answer

    def holding(self, app: ASGIApp) -> ASGIApp:
        """`app` run in the place `admit` took for it: given back, with its latency, as the answer's last part is
        sent (else when `app` returns); the answer kept as the request's stale copy if it is a whole, public,
        cookieless 200 page (one wrapper of `send` does both: the middleware lets a request so held through as is).

        Not when `app` returns: a client on a kept-alive connection asks again as soon as it has its answer, and a
        task that still awaits after it (a proxied answer's upstream being closed, a streaming response's task group
        ending) would still hold the place its own client's next request needs — at as many clients as places,
        most of those requests were shed (`oberon up`, issue 19)."""
        clock = self._clock
        limit = self.limit
        stale = self.stale

        async def held(scope: Scope, receive: Receive, send: Send) -> None:
            started = clock()
            holds = True
            # Taken before the app runs: the copy's key is the request as the shed path will read it. None: nothing
            # to keep (a HEAD's answer has no body; a page seen for the first time lately is not kept).
            key = None
            if stale is not None and scope.get("method") == "GET":
                key = _stale_key("GET", scope["path"], scope.get("query_string", b""), scope.get("headers", ()))
                if key is not None and not stale.wants(key):
                    key = None
            content_type: bytes | None = None  # the answer's while it is being kept
            parts: list[bytes] = []
            size = 0

            # A plain function returning `send`'s awaitable: no coroutine of its own for each message.
            def sending(message: Message) -> Awaitable[None]:
                nonlocal holds, content_type, size
                if message["type"] == "http.response.body":
                    last = not message.get("more_body", False)
                    if content_type is not None:
                        body: bytes = message.get("body", b"")
                        size += len(body)
                        if size > STALE_MAX_PAGE_BYTES:
                            content_type = None
                            parts.clear()
                        elif not last:
                            parts.append(body)
                        elif stale is not None and key is not None:
                            stale.put(key, StaleCopy(b"".join((*parts, body)) if parts else body, content_type))
                    # Before the send: a server may await the write, and its client's next request may come meanwhile.
                    if holds and last:
                        holds = False
                        limit.release(clock() - started)
                elif key is not None and message["type"] == "http.response.start" and message["status"] == 200:
                    content_type = _kept_content_type(message.get("headers", ()))
                return send(message)

            try:
                await app(scope, receive, sending)
            finally:
                if holds:
                    holds = False
                    limit.release(clock() - started)

        return held

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # HELD: the server took the place, and its `holding` gives it back and keeps the copy.
        if scope["type"] != "http" or scope.get(HELD) or not self.counts(scope["path"]):
            await self.app(scope, receive, send)
            return
        headers: Headers = scope.get("headers", ())
        answer = self.admit(scope["method"], scope["path"], scope.get("query_string", b""), headers, at=APP)
        if answer is not None:
            await send({"type": "http.response.start", "status": answer.status, "headers": list(answer.headers)})
            await send({"type": "http.response.body", "body": answer.body})
            return
        await self.holding(self.app)(scope, receive, send)

    def _shed_answer(self, method: str, path: str, query: bytes, headers: Headers) -> ShedAnswer:
        """The last good copy of the page when there is one for this request, else the 503 for its `Accept`."""
        head_only = method == "HEAD"
        if self.stale:
            key = _stale_key(method, path, query, headers)
            copy = self.stale.get(key) if key is not None else None
            if copy is not None:
                return ShedAnswer.build(
                    STALE,
                    200,
                    [
                        (b"cache-control", self.stale_cache_control.encode()),
                        (STALE_HEADER.lower().encode(), b"admission"),
                        (b"content-type", copy.content_type),
                    ],
                    copy.body,
                    head_only=head_only,
                )
        return self._rejections[_accepts_html(headers), head_only]


# The request headers a kept page may vary by (the gateway negotiates the locale; pages are not compressed):
# they are part of the key. A page that varies by anything else is not kept.
_KEYED_BY = frozenset({b"accept-language"})


def _kept_content_type(headers: Headers) -> bytes | None:
    """The content type of a `200` answer with `headers` if it is kept as a stale copy (public HTML that sets no
    cookie, is not compressed, varies by nothing the key leaves out, and is not a copy another entrance shed with),
    else None."""
    by_name = {name.lower(): value for name, value in headers}
    content_type = by_name.get(b"content-type", b"")
    vary = by_name.get(b"vary")
    if (
        (vary is None or _keyed_by(vary))
        and content_type.startswith(b"text/html")
        and by_name.get(b"cache-control", b"").startswith(b"public")
        and b"set-cookie" not in by_name
        and b"content-encoding" not in by_name
        and _STALE_KEY not in by_name  # a copy another entrance shed with
    ):
        return content_type
    return None


_STALE_KEY = STALE_HEADER.lower().encode()


@functools.lru_cache(maxsize=64)  # an app answers with a few `Vary` values, the same on every page
def _keyed_by(vary: bytes) -> bool:
    """Whether an answer that varies by `vary` may be kept: by nothing the copy's key leaves out."""
    return {name.strip().lower() for name in vary.split(b",") if name.strip()} <= _KEYED_BY


_BUCKET = BUCKET_HEADER.lower().encode()


def _stale_key(method: str, path: str, query: bytes, headers: Headers) -> str | None:
    """The stale copy's key for an anonymous GET/HEAD (its path, query, `Accept-Language` and canary bucket), else
    None. The bucket the gateway tells a renderer: a page of one canary cohort is never another's stale copy."""
    if method not in ("GET", "HEAD"):
        return None
    language = bucket = b""
    for name, value in headers:
        lowered = name.lower()
        if lowered in (b"cookie", b"authorization"):
            return None
        if lowered == b"accept-language":
            language = value
        elif lowered == _BUCKET:
            bucket = value
    # Keyed as the page cache and the CDN key it: `?utm_source=x&q=jazz` is `?q=jazz`.
    key = f"{path}?{cache_key_query(query).decode('latin-1')} {language.decode('latin-1')}"
    return f"{key} {bucket.decode('latin-1')}" if bucket else key


_PAGE = (
    b'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Busy - try again</title>'
    b'<meta name="viewport" content="width=device-width, initial-scale=1"></head><body>'
    b"<main><h1>We are very busy right now</h1><p>Please try again in a moment.</p></main></body></html>"
)
_JSON = json.dumps({"error": "overloaded", "retry_after": RETRY_AFTER_SECONDS}).encode()


def _accepts_html(headers: Headers) -> bool:
    """Whether the 503 is the small page (a browser: it accepts HTML) rather than JSON."""
    for name, value in headers:  # a plain loop: this runs for every request shed
        if name.lower() == b"accept" and b"text/html" in value:
            return True
    return False
