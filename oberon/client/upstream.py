"""The resilient downstream client: every call from the renderer to a BFF, and from a BFF to a backend.

One pooled transport per named upstream (`oberon.client.transport`): aiohttp over the network (a base
URL), httpx for an ASGI app in the same process or a test's mocked client; the same code path
either way. On top of it, per call: a timeout budget (passed down in `X-Oberon-Budget-Ms`), bounded
jittered retries of idempotent calls, circuit breakers, a bulkhead, a TTL cache that honours
Cache-Control and serves stale copies when the upstream fails, and coalescing of concurrent identical GETs.

The guards, each at its grain:

- an **endpoint breaker** per endpoint template (`/events/{event_id}` apart from `/events/{event_id}/venue`)
  counts every failure of a call to that endpoint: a 5xx, a bad body, a timeout, a refused connection;
- the **upstream breaker** counts connection-level failures only: refused or reset connections, and
  timeouts once more than one endpoint times out (one slow endpoint is its own breaker's business);
- an answer marked `X-Oberon-Dependency-Failed` (`DependencyFailed`: the upstream's own dependency
  failed) counts against neither: the caller still falls back, but the upstream itself answered;
- the **bulkhead** bounds the calls in flight; a call beyond it fails fast (`BulkheadFull`).
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import random
import re
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import httpx
from starlette.types import ASGIApp

from oberon.client.breaker import BreakerSettings, BreakerState, CircuitBreaker, EndpointBreakers
from oberon.client.bulkhead import Bulkhead
from oberon.client.http1 import Http1Transport
from oberon.client.json_bodies import JsonBodies
from oberon.client.response_cache import DEFAULT_MAX_BYTES, DEFAULT_MAX_ENTRIES, Freshness, ResponseCache
from oberon.client.transport import AiohttpTransport, Answer, HttpxTransport, StreamingASGITransport, Transport
from oberon.exceptions import (
    BudgetExhausted,
    BulkheadFull,
    CircuitOpen,
    DependencyFailed,
    InvalidResponse,
    UpstreamError,
    UpstreamStatusError,
    UpstreamTimeout,
)
from oberon.tracing import TRACEPARENT

logger = logging.getLogger("oberon.client")  # the name operators' log filters know

BUDGET_HEADER = "X-Oberon-Budget-Ms"
DEFAULT_TIMEOUT = 2.0
DEFAULT_MAX_BODY_BYTES = 2 * 1024 * 1024
DEFAULT_RETRIES = 1
DEFAULT_BACKOFF = 0.05
MIN_ATTEMPT_SECONDS = 0.05
RETRYABLE_STATUS = frozenset({502, 503, 504})
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
# Headers that never change a response: excluded from cache and coalescing keys.
_NOT_IN_KEY = frozenset({"x-oberon-request-id", BUDGET_HEADER.lower(), "traceparent"})

Target = str | ASGIApp  # a base URL, or an ASGI app served in this process
_ID_SEGMENT = re.compile(r"/[0-9]+(?=/|$)")
# A call's outcomes that are failures of the upstream (`CallRecord.upstream_failed`).
FAILED_OUTCOMES = frozenset({"stale", "error", "timeout", "circuit_open", "bulkhead_full"})


class CallRecord(NamedTuple):
    """One downstream call as its caller saw it: for metrics and the degradation controller.

    `outcome` is `ok`, `cached` (a fresh copy, no call), `stale` (the upstream failed; a stale copy
    served), `client_error` (a 4xx answer), `error` (also an answer marked dependency-failed), `timeout`,
    `circuit_open` or `bulkhead_full` (refused by the bulkhead, not called).

    Built on every call: a named tuple, a third to a half of a frozen dataclass's cost to make (issue 19).
    """

    upstream: str
    method: str
    endpoint: str
    outcome: str
    seconds: float
    status_code: int | None = None

    @property
    def upstream_failed(self) -> bool:
        return self.outcome in FAILED_OUTCOMES


CallObserver = Callable[[CallRecord], None]


class Reply(NamedTuple):
    """A GET's JSON and the seconds it stays fresh (0: it may change on the next call)."""

    value: Any
    fresh_for: float = 0.0


# A call's decoded JSON, what its Cache-Control allows, and its size on the wire (for the cache's bound). A plain
# tuple: made on every call, where a named tuple's `__new__` is a Python frame (issue 19).
Fetched = tuple[Any, Freshness, int]


_CallKey = tuple[str, tuple[tuple[str, str], ...]]  # a GET's path and the headers that may change its answer


def _key_headers(headers: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    """The headers' part of a GET's cache and coalescing key: those that may change its answer, named in lower case."""
    kept: list[tuple[str, str]] = []
    for name, value in headers.items():  # a loop, not a comprehension: no frame of its own (issue 19)
        name = name.lower()
        if name not in _NOT_IN_KEY:
            kept.append((name, value))
    return tuple(sorted(kept)) if kept else ()


class CallHeaders(NamedTuple):
    """Headers sent on several GETs (a page's calls), with their part of the key worked out once (`of`).

    Issue 19: a page's five calls each copied the page's headers twice and lower-cased and sorted them for the key.
    """

    fields: Mapping[str, str]
    key: tuple[tuple[str, str], ...]

    @classmethod
    def of(cls, headers: Mapping[str, str]) -> CallHeaders:
        return cls(dict(headers), _key_headers(headers))


# A GET in flight that identical GETs join: each joiner's future of its outcome (a plain list: one made per call).
_Waiters = list[asyncio.Future[Fetched]]

# A shared call that took at least `SLOW_CALL` seconds wakes its joiners `WOKEN_A_TURN` at a time, one loop turn
# apart (see `_wake`); a quicker one wakes them all at once.
SLOW_CALL = 0.010
WOKEN_A_TURN = 8


def _waiting(waiters: _Waiters) -> bool:
    """Whether a joiner still waits for the outcome."""
    return any(not waiter.done() for waiter in waiters)


def _wake(shared: _Waiters, outcome: Fetched | BaseException | None, start: int, step: int) -> None:
    """Give the joiners `shared[start:start + step]` the call's outcome (None: it was cancelled); the next `step`
    of them get it a loop turn later.

    Woken all at once, every joiner's page takes its next steps in the same loop turns as all the others': the
    next requests of the pages that answered first wait behind the rest of the burst before their calls start,
    and the core then sits idle for the next call's length (issue 19: the peers' page-5 at 20 ms moved as one wave
    of 64 pages, the core 78 % busy). Woken a few a turn, the first pages answer while the rest wait their turn,
    and their next requests start the next call while the burst is still being served. After a quick call there
    is no wait to overlap: one turn serves them all and keeps the next callers together on one call (woken a few
    a turn at 0 ms: twice the calls a page, ~8 % fewer pages)."""
    end = start + step
    for waiter in shared[start:end]:
        if waiter.done():
            continue  # its caller gave up
        if outcome is None:
            waiter.cancel()
        elif isinstance(outcome, BaseException):
            waiter.set_exception(outcome)
            waiter.exception()  # retrieved here, so an error whose joiner was cancelled is not logged as lost
        else:
            waiter.set_result(outcome)
    if end < len(shared):
        shared[end].get_loop().call_soon(_wake, shared, outcome, end, step)


def _expire(waiter: asyncio.Future[Fetched], name: str, path: str, budget: float) -> None:
    """A joiner's budget ran out before the call it joined ended (the call goes on for the others)."""
    if not waiter.done():
        waiter.set_exception(UpstreamTimeout(name, f"GET {path} took longer than {budget:.3g}s"))


@functools.lru_cache(maxsize=4096)
def endpoint_template(path: str) -> str:
    """A path with its query dropped and numeric segments replaced, so metric labels stay few."""
    return _ID_SEGMENT.sub("/{id}", path.split("?", 1)[0])


@dataclass(frozen=True)
class ClientSettings:
    """Limits of every upstream's client."""

    timeout: float = DEFAULT_TIMEOUT
    # Pooled connections to one upstream; None: as many as its bulkhead lets calls out. A smaller pool queues the
    # calls the bulkhead admitted in aiohttp's connector, which costs more CPU than the calls (issue 19: at 64
    # pages in flight, 320 calls waiting on 32 connections took a page from 2.4 to 4.0 ms of CPU).
    max_connections: int | None = None
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    retries: int = DEFAULT_RETRIES
    backoff: float = DEFAULT_BACKOFF
    cache_entries: int = DEFAULT_MAX_ENTRIES
    cache_bytes: int = DEFAULT_MAX_BYTES
    breaker: BreakerSettings = field(default_factory=BreakerSettings)


class Upstream:
    """A named downstream service: its pooled transport, breakers, bulkhead, cache and in-flight calls.

    `breaker` is the upstream-wide one (connection-level failures); `endpoint_breakers` holds one per template.
    """

    def __init__(
        self,
        name: str,
        *,
        transport: Transport,
        settings: ClientSettings | None = None,
        breaker: CircuitBreaker | None = None,
        cache: ResponseCache | None = None,
        observers: Sequence[CallObserver] = (),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self.observers = list(observers)
        self.transport = transport
        self.settings = settings or ClientSettings()
        self.breaker = breaker if breaker is not None else CircuitBreaker(settings=self.settings.breaker, clock=clock)
        self.endpoint_breakers = EndpointBreakers(settings=self.settings.breaker, clock=clock)
        self.bulkhead = Bulkhead(max_in_flight=self.settings.breaker.max_in_flight)
        self._clock = clock
        self._timed_out: dict[str, float] = {}  # endpoint breaker key → when a call to it last timed out
        self.cache = (
            cache
            if cache is not None
            else ResponseCache(max_entries=self.settings.cache_entries, max_bytes=self.settings.cache_bytes)
        )
        self._inflight: dict[_CallKey, _Waiters] = {}
        self._random = random.Random()
        self._bodies = JsonBodies()

    @classmethod
    def create(
        cls,
        name: str,
        target: Target | httpx.AsyncClient,
        *,
        settings: ClientSettings | None = None,
        observers: Sequence[CallObserver] = (),
    ) -> Upstream:
        """An upstream at a base URL, an ASGI app served in this process, or behind a given httpx client."""
        settings = settings or ClientSettings()
        transport: Transport
        if isinstance(target, str):
            pooled = settings.max_connections or settings.breaker.max_in_flight
            if Http1Transport.serves(target):  # plain HTTP: the lean client (a seventh of aiohttp's CPU a call)
                transport = Http1Transport(name, target, max_connections=pooled)
            else:  # TLS, or credentials in the URL
                transport = AiohttpTransport(name, target, max_connections=pooled)
        elif isinstance(target, httpx.AsyncClient):
            transport = HttpxTransport(name, target)
        else:
            client = httpx.AsyncClient(base_url=f"http://{name}", transport=StreamingASGITransport(target))
            transport = HttpxTransport(name, client)
        return cls(name, transport=transport, settings=settings, observers=observers)

    async def get_json(
        self,
        path: str,
        *,
        timeout: float | None = None,
        headers: Mapping[str, str] | None = None,
        endpoint: str | None = None,
    ) -> Any:
        """GET `path` within `timeout` seconds and return its JSON; raises an UpstreamError subclass.

        A fresh cached copy is returned without a call; a stale one when the upstream fails.
        `endpoint` names the path's template for metrics (derived from the path when absent).
        """
        return (await self.get_fresh_json(path, timeout=timeout, headers=headers, endpoint=endpoint)).value

    async def get_fresh_json(
        self,
        path: str,
        *,
        timeout: float | None = None,
        headers: Mapping[str, str] | CallHeaders | None = None,
        endpoint: str | None = None,
        traceparent: str | None = None,
    ) -> Reply:
        """`get_json`, with how long the value stays fresh (0 unless the upstream allowed it to be cached).

        `headers` made once for several calls (`CallHeaders.of`) are copied once a call, not read again;
        `traceparent`, the call's own trace context, is sent after them (in their `traceparent`'s place if they
        hold one), and like it is no part of the key.

        Two coroutine levels down to the transport (issue 19: each level is resumed on every wake-up of the
        call; there were five): the cache, coalescing and the stale copy here, the call itself in `_call`.
        """
        started = time.perf_counter()
        budget = self.settings.timeout if timeout is None else timeout
        template = endpoint or endpoint_template(path)
        sent: dict[str, str]
        if isinstance(headers, CallHeaders):
            sent = {**headers.fields}
            key: _CallKey = (path, headers.key)
        else:
            sent = dict(headers) if headers else {}  # the call's own: `_call` adds the budget to it
            key = (path, _key_headers(sent) if sent else ())
        if traceparent is not None:
            sent[TRACEPARENT] = traceparent
        cached = self.cache.lookup(key)
        if cached.fresh:
            self._observe("GET", template, "cached", started, None)
            return Reply(cached.value, cached.fresh_for)
        shared = self._inflight.get(key)
        try:
            if shared is not None:
                fetched = await self._join(shared, path, budget)
            else:  # lead the call in this caller's own task, for it and whoever joins while it runs (`_Waiters`)
                shared = self._inflight[key] = []
                try:
                    fetched = await self._call("GET", path, template, sent, None, budget)
                except UpstreamError as exc:
                    self._settle(key, shared, exc, started)
                    raise
                except BaseException:
                    self._go_on(key, shared, path, template, sent, budget, started)
                    raise
                if shared:
                    self._settle(key, shared, fetched, started)
                elif self._inflight.get(key) is shared:  # nobody joined: `_settle` without its frame (issue 19)
                    del self._inflight[key]
        except UpstreamError as exc:
            if cached.stale and _is_outage(exc):
                self.cache.served_stale()
                logger.info("%s: serving a stale copy of %s: %s", self.name, path, exc)
                self._observe("GET", template, "stale", started, None)
                return Reply(cached.value, 0.0)
            self._observe("GET", template, _outcome(exc), started, exc.status_code)
            raise
        value, freshness, size = fetched
        fresh_for = self.cache.store(key, value, size=size, freshness=freshness)
        self._observe("GET", template, "ok", started, None)
        return tuple.__new__(Reply, (value, fresh_for))  # `Reply(...)` without its `__new__` frame (issue 19)

    def _observe(self, method: str, endpoint: str, outcome: str, started: float, status: int | None) -> None:
        if not self.observers:
            return
        # Made as the named tuple's `_make` makes one, without its `__new__` (a Python frame; one a call: issue 19).
        seconds = time.perf_counter() - started
        record = tuple.__new__(CallRecord, (self.name, method, endpoint, outcome, seconds, status))
        for observer in self.observers:
            observer(record)

    def _go_on(
        self,
        key: _CallKey,
        shared: _Waiters,
        path: str,
        endpoint: str,
        headers: dict[str, str],
        budget: float,
        started: float,
    ) -> None:
        """The leader of a shared call (begun at `started`) was cancelled: should others wait for it, the call
        goes on in a task of its own for them, within what is left of the leader's `budget` (a caller going away
        never fails the callers that joined it). The leader itself has no task and no timer of its own: the call
        keeps to its budget (each attempt's transport timeout is what is left of it; issue 19: a task and
        `asyncio.wait` per call cost ~20 µs)."""
        if _waiting(shared):
            left = budget - (time.perf_counter() - started)
            task = asyncio.create_task(self._call("GET", path, endpoint, headers, None, left))
            task.add_done_callback(functools.partial(self._hand_over, key, shared, started))
        else:
            self._settle(key, shared, None, started)

    async def _join(self, shared: _Waiters, path: str, budget: float) -> Fetched:
        """Wait for a call another caller leads, within this caller's own budget: never cancels the shared call.

        A future of its own and a timer on it (issue 19: `asyncio.wait` cost a joiner ~7 % of page-5's CPU)."""
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[Fetched] = loop.create_future()
        shared.append(waiter)
        timer = loop.call_later(budget, _expire, waiter, self.name, path, budget)
        try:
            return await waiter
        finally:
            timer.cancel()

    def _settle(self, key: _CallKey, shared: _Waiters, outcome: Fetched | BaseException | None, started: float) -> None:
        """The shared call begun at `started` is over (`outcome` None: cancelled): whoever joined gets its outcome,
        all at once after a quick call, a few a loop turn after a slow one (`_wake`); the next identical call starts
        a new one."""
        if self._inflight.get(key) is shared:
            del self._inflight[key]
        slow = time.perf_counter() - started >= SLOW_CALL
        _wake(shared, outcome, 0, WOKEN_A_TURN if slow else len(shared))

    def _hand_over(self, key: _CallKey, shared: _Waiters, started: float, task: asyncio.Task[Fetched]) -> None:
        """The outcome of a call that went on in a task of its own, once its leader was cancelled."""
        self._settle(key, shared, None if task.cancelled() else task.exception() or task.result(), started)

    async def request_json(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        timeout: float | None = None,
        headers: Mapping[str, str] | None = None,
        endpoint: str | None = None,
    ) -> Any:
        """Any method, uncached and not coalesced; retried only when the method is idempotent."""
        budget = self.settings.timeout if timeout is None else timeout
        started = time.perf_counter()
        template = endpoint or endpoint_template(path)
        try:
            fetched = await self._call(method.upper(), path, template, dict(headers or {}), json_body, budget)
        except UpstreamError as exc:
            self._observe(method.upper(), template, _outcome(exc), started, exc.status_code)
            raise
        self._observe(method.upper(), template, "ok", started, None)
        return fetched[0]

    async def _call(
        self, method: str, path: str, endpoint: str, headers: dict[str, str], json_body: Any, budget: float
    ) -> Fetched:
        """Call with retries inside the budget (idempotent methods only), through the breakers and the bulkhead.

        Each attempt's checks before and after the transport are plain calls (`_admit`, `_fetched`) or written out
        (the budget's header): one coroutine level fewer per call than an `_attempt` of its own (issue 19)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + budget
        key, endpoint_breaker = self.endpoint_breakers.lookup(endpoint)
        body = None if json_body is None else _encode(json_body)
        attempt = 0
        bulkhead, breaker = self.bulkhead, self.breaker
        while True:
            if endpoint_breaker.closed and breaker.closed and bulkhead.in_flight < bulkhead.max_in_flight:
                bulkhead.in_flight += 1  # `_admit` where nothing refuses, without its four frames (issue 19)
            else:
                self._admit(method, path, key, endpoint_breaker)
            remaining = deadline - loop.time()
            try:
                if remaining <= 0:
                    raise BudgetExhausted(self.name, f"{method} {path}: no time left in the budget")
                headers[BUDGET_HEADER] = str(int(remaining * 1000))  # what is left of the budget
                if body is not None:
                    headers["Content-Type"] = "application/json"
                answer = await self.transport.send(
                    method, path, headers=headers, body=body, timeout=remaining, max_body=self.settings.max_body_bytes
                )
                result = self._fetched(method, path, answer)
            except UpstreamError as exc:
                self._judge(key, endpoint_breaker, exc)
                backoff = self._random.uniform(0, self.settings.backoff * 2**attempt)
                retryable = method in IDEMPOTENT_METHODS and _is_retryable(exc) and attempt < self.settings.retries
                if not retryable or deadline - loop.time() - backoff < MIN_ATTEMPT_SECONDS:
                    raise
                attempt += 1
                await asyncio.sleep(backoff)
                continue
            except BaseException:  # cancelled: the call's outcome is unknown, so give back any probe it held
                endpoint_breaker.release()
                breaker.release()
                raise
            finally:
                bulkhead.in_flight -= 1  # `bulkhead.release()`, without its frame
            endpoint_breaker.succeeded()
            breaker.succeeded()
            return result

    def _admit(self, method: str, path: str, key: str, endpoint_breaker: CircuitBreaker) -> None:
        """Let one attempt go out, or fail it fast: an open breaker (endpoint, then upstream), a full bulkhead."""
        bulkhead = self.bulkhead
        if not bulkhead.try_acquire():  # counts the refusal
            raise BulkheadFull(self.name, f"{method} {path}: {bulkhead.max_in_flight} calls already in flight")
        # A place taken first, given back when a breaker refuses: no await in between, so nobody sees it held.
        if not endpoint_breaker.allow():
            bulkhead.release()
            raise CircuitOpen(
                self.name, f"{method} {path}: circuit of {key} open, retry in {endpoint_breaker.retry_after:.1f}s"
            )
        if not self.breaker.allow():
            endpoint_breaker.release()
            bulkhead.release()
            raise CircuitOpen(self.name, f"{method} {path}: circuit open, retry in {self.breaker.retry_after:.1f}s")

    def _judge(self, key: str, endpoint_breaker: CircuitBreaker, error: UpstreamError) -> None:
        """Count a failed attempt against the breakers of the grain it belongs to."""
        if isinstance(error, DependencyFailed):
            # The upstream answered, at once, that *its* dependency failed: the upstream itself is well.
            endpoint_breaker.record(ok=True)
            self.breaker.record(ok=True)
            return
        if isinstance(error, BudgetExhausted):  # never sent: the caller's budget was spent
            endpoint_breaker.release()
            self.breaker.release()
            return
        endpoint_breaker.record(ok=not _is_outage(error))
        if isinstance(error, UpstreamStatusError | InvalidResponse):
            self.breaker.record(ok=True)  # it answered: the connection works
        elif isinstance(error, UpstreamTimeout):
            now = self._clock()
            window = self.settings.breaker.window_seconds
            across = any(other != key and now - when < window for other, when in self._timed_out.items())
            self._timed_out[key] = now  # bounded: keys are endpoint breaker keys
            if across:
                self.breaker.record(ok=False)
            else:
                self.breaker.release()  # one slow endpoint: its own breaker's business
        else:
            self.breaker.record(ok=False)  # refused, reset: the upstream itself

    def _fetched(self, method: str, path: str, answer: Answer) -> Fetched:
        """An answer's JSON, or the error it is."""
        status = answer.status_code
        if status >= 400:
            what = f"{method} {path}"
            if status >= 500 and answer.dependency_failed:
                raise DependencyFailed(
                    self.name,
                    f"{what} answered {status}: its dependency {answer.dependency_failed} failed",
                    status_code=status,
                    dependency=answer.dependency_failed,
                )
            raise UpstreamStatusError(self.name, f"{what} answered {status}", status_code=status)
        content_type = answer.content_type
        if content_type != "application/json" and not content_type.endswith("+json"):
            raise InvalidResponse(self.name, f"{method} {path} answered {content_type or 'no content type'}, not JSON")
        try:
            value = self._bodies.decode(answer.body)
        except ValueError:
            raise InvalidResponse(self.name, f"{method} {path} answered malformed JSON") from None
        return value, Freshness.parse(answer.cache_control), len(answer.body)

    async def aclose(self) -> None:
        for shared in list(self._inflight.values()):
            for waiter in shared:
                waiter.cancel()
        await self.transport.aclose()


def _is_outage(error: UpstreamError) -> bool:
    """A failure of the upstream itself (not a 4xx answer about the request)."""
    return not (isinstance(error, UpstreamStatusError) and error.status_code is not None and error.status_code < 500)


def _outcome(error: UpstreamError) -> str:
    if isinstance(error, CircuitOpen):
        return "circuit_open"
    if isinstance(error, BulkheadFull):
        return "bulkhead_full"
    if isinstance(error, UpstreamTimeout):
        return "timeout"
    return "error" if _is_outage(error) else "client_error"


def _is_retryable(error: UpstreamError) -> bool:
    # A dependency's failure was retried where it happened (the BFF's own client): retrying it here too
    # would multiply the calls to a dependency that is already failing.
    if isinstance(error, CircuitOpen | BulkheadFull | BudgetExhausted | InvalidResponse | DependencyFailed):
        return False
    if isinstance(error, UpstreamStatusError):
        return error.status_code in RETRYABLE_STATUS
    return True


def _encode(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode("utf-8")


class Upstreams(Mapping[str, Upstream]):
    """The upstreams a service calls, by name."""

    def __init__(self, upstreams: Mapping[str, Upstream] | None = None) -> None:
        self._upstreams = dict(upstreams or {})

    @classmethod
    def create(
        cls,
        targets: Mapping[str, Target | httpx.AsyncClient],
        *,
        settings: ClientSettings | None = None,
        observers: Sequence[CallObserver] = (),
    ) -> Upstreams:
        return cls(
            {
                name: Upstream.create(name, target, settings=settings, observers=observers)
                for name, target in targets.items()
            }
        )

    def open_breakers(self) -> int:
        """How many of these upstreams' circuit breakers are open now, upstream-wide and per endpoint."""
        return sum(
            (upstream.breaker.state is BreakerState.OPEN) + upstream.endpoint_breakers.open_count()
            for upstream in self._upstreams.values()
        )

    def __getitem__(self, name: str) -> Upstream:
        try:
            return self._upstreams[name]
        except KeyError:
            raise UpstreamError(name, "no such upstream is configured") from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._upstreams)

    def __len__(self) -> int:
        return len(self._upstreams)

    async def aclose(self) -> None:
        for upstream in self._upstreams.values():
            await upstream.aclose()
