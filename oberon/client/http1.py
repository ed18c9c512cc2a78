"""A lean HTTP/1.1 client for upstreams at `http://` URLs: pooled keep-alive connections, parsed by httptools.

A page makes one call per data source, so the client's own work is on every page. aiohttp spends 160–230
µs of CPU per call at 64 pages × 5 calls in flight; this client, on an `asyncio.Protocol` whose bytes httptools
(llhttp, the parser uvicorn already uses) parses, about 30 (`bench/client_micro.py`). It does only what an
upstream call needs: one request, its answer read whole up to a limit.

- A pool of up to `max_connections` keep-alive connections; a call beyond waits for a free one, first
  come first served, within its timeout.
- A connection is reused only after an answer read to its end that did not ask to close it; one that
  failed, timed out or was cut short is closed. A reused connection the server had closed before it saw the
  request (nothing of the answer came back) is replaced by a fresh one, once.
- The answer's head is bounded (`MAX_HEAD_BYTES`) and its body refused as soon as it passes `max_body`
  (at once when the declared Content-Length does); Content-Length, chunked and close-delimited bodies.
- No cookies, no redirects followed, no compression asked for (an answer compressed anyway is refused).

TLS (`https://`) stays with aiohttp (`oberon.client.transport.AiohttpTransport`).
"""

from __future__ import annotations

import asyncio
import functools
import re
from collections import deque
from typing import Final
from urllib.parse import quote, urlsplit

import httptools

from oberon.client.transport import Answer
from oberon.exceptions import InvalidResponse, UpstreamError, UpstreamTimeout
from oberon.headers import DEPENDENCY_FAILED_HEADER

MAX_HEAD_BYTES: Final = 64 * 1024  # an answer's status line and headers together
IDLE_SECONDS: Final = 15.0  # an idle connection older than this is closed rather than reused (aiohttp's default)
_DEPENDENCY_FAILED: Final = DEPENDENCY_FAILED_HEADER.lower().encode("ascii")
_KEPT_HEADERS: Final = frozenset(
    {b"content-type", b"cache-control", b"content-encoding", b"content-length", b"transfer-encoding"}
    | {_DEPENDENCY_FAILED}
)
_UNSAFE_IN_PATH: Final = re.compile(r"[^\x21-\x7e]")  # spaces, controls and non-ASCII: percent-encoded
_UNSAFE_IN_HEADER: Final = re.compile(r"[\r\n\0]")
_PATH_SAFE: Final = "/:@!$&'()*+,;=?%#[]~-._"  # what stays as it is when a path is percent-encoded
_BODY_METHODS: Final = frozenset({"POST", "PUT", "PATCH"})
_IDEMPOTENT: Final = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})


class _Failure(Exception):
    """Why an exchange failed, said of the call (`METHOD path …`); `retry`: nothing of the answer came back;
    `sent`: the request may have reached the server (so only an idempotent one may be sent again)."""

    def __init__(
        self, message: str, *, kind: type[UpstreamError] = UpstreamError, retry: bool = False, sent: bool = True
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.retry = retry
        self.sent = sent


class _Expired(Exception):
    """The call's deadline passed."""


def _expire(waiting: asyncio.Future[_Connection | None]) -> None:
    if not waiting.done():
        waiting.set_exception(_Expired())


@functools.lru_cache(maxsize=64)  # an upstream sends the same few Content-Types (issue 19)
def _media_type(content_type: bytes) -> str:
    return content_type.split(b";")[0].strip().lower().decode("latin-1")


# What one exchange read: status, the headers the client keeps (lower-case names), body and whether to reuse the
# connection. A plain tuple: one a call, where a class's `__init__` is a Python frame (issue 19).
_Response = tuple[int, dict[bytes, bytes], bytes, bool]


class _Connection(asyncio.Protocol):
    """One keep-alive connection to the upstream and the exchange it is serving, if any.

    httptools calls the `on_*` methods while `data_received` feeds it; an exchange ends by setting `_done`.

    One deadline timer a connection, not one an exchange (issue 19: a uvloop timer made and cancelled costs ~1.7 µs
    of CPU, a call's answer far less than its budget): it stays set when an exchange ends, and the next exchange
    keeps it when it fires no later than that exchange's deadline, then is set again for what is left (`_expire`).
    """

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.usable = True  # False once closed, broken, or sent bytes nobody asked for
        self.idle_since = 0.0
        self._loop = asyncio.get_running_loop()  # made by the loop's create_connection
        self._parser = httptools.HttpResponseParser(self)
        self._done: asyncio.Future[_Response] | None = None
        self._deadline = 0.0  # of the exchange being served, on the loop's clock
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0  # when `_timer` fires
        self._reset(0, head_only=False)

    def _reset(self, limit: int, *, head_only: bool) -> None:
        self._limit = limit
        self._head_only = head_only
        self._head_size = 0  # bytes received while the head was incomplete
        self._header_bytes = 0
        self._in_body = False
        self._until_close = False
        self._received = False
        self._status = 0
        self._headers: dict[bytes, bytes] = {}
        self._body: list[bytes] = []
        self._size = 0

    def exchange(self, request: bytes, *, limit: int, head_only: bool, deadline: float) -> asyncio.Future[_Response]:
        """Write `request`; the future is its answer, or fails with a `_Failure` (`_Expired` at `deadline`)."""
        assert self.transport is not None
        self._reset(limit, head_only=head_only)
        self._done = done = self._loop.create_future()
        if self.usable:
            self._deadline = deadline
            if self._timer is None or self._timer_at > deadline:
                self._set_timer(deadline)
            self.transport.write(request)
        else:  # closed by the server before the request could be sent
            done.set_exception(_Failure("failed: the connection closed before any answer", retry=True, sent=False))
        return done

    def close(self) -> None:
        self.usable = False
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self.transport is not None:
            self.transport.close()

    def _set_timer(self, when: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self._loop.call_at(when, self._expire)
        self._timer_at = when

    def _expire(self) -> None:
        """The timer fired: the exchange it was set for has expired; a later one's deadline is waited for anew."""
        self._timer = None
        done = self._done
        if done is None or done.done():
            return  # idle: no timer until the next exchange
        if self._deadline <= self._timer_at:
            done.set_exception(_Expired())
        else:
            self._set_timer(self._deadline)

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # a TCP connection's transport

    def data_received(self, data: bytes) -> None:
        if self._done is None or self._done.done():
            self.close()  # bytes between answers: the connection can no longer be trusted
            return
        self._received = True
        if not self._in_body:
            if self._head_size > MAX_HEAD_BYTES:  # earlier bytes that did not end the head: never hold more
                self._fail(_Failure(f"answered a head of more than {MAX_HEAD_BYTES} bytes"))
                return
            self._head_size += len(data)
        try:
            self._parser.feed_data(data)
        except _Failure as failure:
            self._fail(failure)
        except httptools.HttpParserCallbackError as exc:
            cause = exc.__context__
            self._fail(cause if isinstance(cause, _Failure) else _Failure(f"answered malformed HTTP: {exc}"))
        except httptools.HttpParserUpgrade:
            self._fail(_Failure("answered with a protocol switch"))
        except httptools.HttpParserError as exc:
            self._fail(_Failure(f"answered malformed HTTP: {exc}"))

    def eof_received(self) -> bool | None:
        return None  # close our side too: connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        self.usable = False
        done = self._done
        if done is None or done.done():
            return
        if self._until_close and self._in_body and exc is None:  # the body ran to the end of the connection
            done.set_result((self._status, self._headers, b"".join(self._body), False))
        elif not self._received:
            done.set_exception(_Failure("failed: the connection closed before any answer", retry=True))
        else:
            reason = f": {exc.__class__.__name__}: {exc}" if exc else ""
            done.set_exception(_Failure(f"failed: the connection closed in the middle of the answer{reason}"))

    # httptools' callbacks

    def on_message_begin(self) -> None:
        if self._done is None or self._done.done():
            raise _Failure("answered more than once")

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_bytes += len(name) + len(value) + 4
        if self._header_bytes > MAX_HEAD_BYTES:
            raise _Failure(f"answered a head of more than {MAX_HEAD_BYTES} bytes")
        name = name.lower()
        if name in _KEPT_HEADERS:
            self._headers[name] = value

    def on_headers_complete(self) -> None:
        status = self._parser.get_status_code()
        if status == 101:
            raise _Failure("answered with a protocol switch")
        if status < 200:
            return  # 100 Continue, 103 Early Hints: the answer follows
        self._status = status
        self._in_body = True
        headers = self._headers
        if self._head_only:
            assert self._done is not None
            self._done.set_result((status, headers, b"", False))  # the body a HEAD declared never comes
            return
        encoding = headers.get(b"content-encoding", b"").strip().lower()
        if encoding and encoding != b"identity":
            unasked = encoding.decode("latin-1")
            raise _Failure(f"answered Content-Encoding {unasked!r}, which it was not asked for", kind=InvalidResponse)
        declared = headers.get(b"content-length")
        if declared is not None and int(declared) > self._limit:  # llhttp checked it is a number
            raise _Failure(f"answered more than {self._limit} bytes", kind=InvalidResponse)
        chunked = b"chunked" in headers.get(b"transfer-encoding", b"").lower()
        if declared is None and not chunked and status not in (204, 304):
            self._until_close = True  # neither a length nor chunks: the body ends with the connection

    def on_body(self, body: bytes) -> None:
        self._size += len(body)
        if self._size > self._limit:
            raise _Failure(f"answered more than {self._limit} bytes", kind=InvalidResponse)
        self._body.append(body)

    def on_message_complete(self) -> None:
        if not self._in_body:
            self._headers = {}  # an interim answer's; the final one's follow
            self._head_size = self._header_bytes = 0
            return
        if self._head_only:
            return
        assert self._done is not None
        body = b"".join(self._body) if len(self._body) != 1 else self._body[0]
        self._done.set_result((self._status, self._headers, body, self._parser.should_keep_alive()))

    def _fail(self, failure: _Failure) -> None:
        self.close()
        if self._done is not None and not self._done.done():
            self._done.set_exception(failure)


class Http1Transport:
    """An upstream at an `http://` base URL, through a pool of keep-alive HTTP/1.1 connections."""

    def __init__(self, name: str, base_url: str, *, max_connections: int) -> None:
        url = urlsplit(base_url)
        if not self.serves(base_url):
            raise ValueError(f"{name}: {base_url!r} is not an http:// URL with a host (and no credentials)")
        self.name = name
        self.base_url = base_url.rstrip("/")
        self.max_connections = max_connections
        self._host = url.hostname or ""
        self._port = url.port or 80
        self._prefix = url.path.rstrip("/")
        authority = url.netloc
        self._head = f"Host: {authority}\r\nUser-Agent: oberon\r\nAccept: */*\r\n"
        self._loop: asyncio.AbstractEventLoop | None = None
        self._generation = 0  # one more on every aclose(): connections of an earlier one are not counted
        self._idle: list[_Connection] = []  # the most recently used last: it is taken first
        self._open = 0
        self._waiting: deque[asyncio.Future[_Connection | None]] = deque()
        self._connections: set[_Connection] = set()  # every connection of the pool, idle or serving a call
        self._reset_pool(None)

    @staticmethod
    def serves(base_url: str) -> bool:
        """Whether this transport can reach `base_url`: plain HTTP to a host, no user or password in it."""
        url = urlsplit(base_url)
        return url.scheme == "http" and bool(url.hostname) and url.username is None and url.password is None

    async def send(
        self, method: str, path: str, *, headers: dict[str, str], body: bytes | None, timeout: float, max_body: int
    ) -> Answer:
        request = self._request(method, path, headers, body)
        loop = asyncio.get_running_loop()
        try:
            # One deadline for the whole call, a timer on each wait (cheaper than a task-cancelling asyncio.timeout;
            # the exchange's is its connection's own, `_Connection._expire`).
            # The exchange in this coroutine, not one of its own: every level is resumed on each wake-up (issue 19).
            now = loop.time()
            deadline = now + timeout
            for attempt in (1, 2):
                connection = self._idle_connection(loop, now) if attempt == 1 else None
                reused = connection is not None
                if connection is None:
                    connection, reused = await self._acquire(loop, deadline, fresh=attempt == 2)
                try:
                    response = await connection.exchange(
                        request, limit=max_body, head_only=method == "HEAD", deadline=deadline
                    )
                except _Failure as failure:
                    self._release(connection, reuse=False)
                    if failure.retry and reused and attempt == 1 and (method in _IDEMPOTENT or not failure.sent):
                        # The server had closed it while it was idle: once more, on a new connection. A POST the
                        # server may have read before it closed is not sent twice.
                        continue
                    raise
                except BaseException:
                    self._release(connection, reuse=False)  # cut short (a timeout): its answer may still come
                    raise
                self._release(connection, reuse=response[3])
                break
            else:  # pragma: no cover
                raise AssertionError("unreachable: the second attempt returns or raises")
        except _Expired:
            raise UpstreamTimeout(self.name, f"{method} {path} took longer than {timeout:.3g}s") from None
        except _Failure as failure:
            raise failure.kind(self.name, f"{method} {path} {failure}") from None
        except OSError as exc:
            raise UpstreamError(self.name, f"{method} {path} failed: {exc.__class__.__name__}: {exc}") from None
        status, found, body, _ = response
        media_type = _media_type(found.get(b"content-type", b""))
        cache_control = found.get(b"cache-control")
        dependency_failed = found.get(_DEPENDENCY_FAILED)
        # Made as the named tuple's `_make` makes one, without its `__new__` (a Python frame; one a call: issue 19).
        return tuple.__new__(
            Answer,
            (
                status,
                media_type,
                None if cache_control is None else cache_control.decode("latin-1"),
                body,
                None if dependency_failed is None else dependency_failed.decode("latin-1"),
            ),
        )

    async def aclose(self) -> None:
        """Close every connection; calls waiting for one fail. The transport can be used again afterwards."""
        for connection in list(self._connections):
            connection.close()
        for waiter in self._waiting:
            if not waiter.done():
                waiter.set_exception(_Failure("failed: the client was closed"))
        self._reset_pool(None)

    def _request(self, method: str, path: str, headers: dict[str, str], body: bytes | None) -> bytes:
        if _UNSAFE_IN_PATH.search(path):
            path = quote(path, safe=_PATH_SAFE)
        fields = "".join([f"{name}: {value}\r\n" for name, value in headers.items()])
        # One scan of them all: a line break or NUL beyond each field's own CRLF is in a name or a value.
        if fields.count("\n") != len(headers) or fields.count("\r") != len(headers) or "\0" in fields:
            for name, value in headers.items():
                if _UNSAFE_IN_HEADER.search(name) or _UNSAFE_IN_HEADER.search(value):
                    raise UpstreamError(self.name, f"{method} {path}: the header {name!r} holds a line break")
        head = f"{method} {self._prefix}{path} HTTP/1.1\r\n{self._head}{fields}"
        if body is not None:
            return f"{head}Content-Length: {len(body)}\r\n\r\n".encode() + body
        if method in _BODY_METHODS:
            return f"{head}Content-Length: 0\r\n\r\n".encode()
        return f"{head}\r\n".encode()

    def _idle_connection(self, loop: asyncio.AbstractEventLoop, now: float) -> _Connection | None:
        """The most recently used idle connection still fit for a call at `now`, if any (none taken: `_acquire`)."""
        if loop is not self._loop:
            return None  # a new loop: `_acquire` starts the pool afresh
        while self._idle:
            connection = self._idle.pop()
            if connection.usable and now - connection.idle_since < IDLE_SECONDS:
                return connection
            self._forget(connection)  # closed by the server while idle, or idle too long
            self._open -= 1
        return None

    async def _acquire(
        self, loop: asyncio.AbstractEventLoop, deadline: float, *, fresh: bool = False
    ) -> tuple[_Connection, bool]:
        """A connection for one exchange by `deadline` (`fresh`: a new one), and whether it served one before."""
        if loop is not self._loop:
            self._reset_pool(loop)  # a pool belongs to its loop (a test's new loop starts afresh)
        now = loop.time()
        while self._idle:
            connection = self._idle.pop()
            if connection.usable and now - connection.idle_since < IDLE_SECONDS and not fresh:
                return connection, True
            self._forget(connection)  # closed by the server while idle, idle too long, or not wanted
            if fresh:
                break  # its place is this call's
            self._open -= 1
        else:  # no idle connection to take (nor one closed to make room for a fresh one)
            granted = await self._place(loop, deadline)
            if granted is not None:
                if granted.usable and not fresh:
                    return granted, True
                self._forget(granted)  # closed as it was handed over, or not wanted: its place is this call's
        generation = self._generation
        try:
            async with asyncio.timeout_at(deadline):
                _, connection = await loop.create_connection(_Connection, self._host, self._port)
        except TimeoutError:
            if generation == self._generation:
                self._give_back(None)
            raise _Expired from None
        except BaseException:
            if generation == self._generation:
                self._give_back(None)
            raise
        if generation == self._generation:
            self._connections.add(connection)  # else opened across aclose(): closed after this one exchange
        return connection, False

    async def _place(self, loop: asyncio.AbstractEventLoop, deadline: float) -> _Connection | None:
        """A place in the pool for a new connection (None: counted in `_open`), or a connection a call handed on."""
        if self._open < self.max_connections:
            self._open += 1
            return None
        waiter: asyncio.Future[_Connection | None] = loop.create_future()
        self._waiting.append(waiter)
        timer = loop.call_at(deadline, _expire, waiter)
        try:
            return await waiter
        except BaseException:
            if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                self._give_back(waiter.result())  # granted as this call was cancelled: pass it on
            elif waiter in self._waiting:
                self._waiting.remove(waiter)
            raise
        finally:
            timer.cancel()

    def _release(self, connection: _Connection, *, reuse: bool) -> None:
        if connection not in self._connections:  # opened before aclose(): not this pool's any more
            connection.close()
        elif reuse and connection.usable:
            assert self._loop is not None
            connection.idle_since = self._loop.time()
            if self._waiting:
                self._give_back(connection)
            else:  # what `_give_back` does when no call waits, without its frame (issue 19: one a call)
                self._idle.append(connection)
        else:
            self._forget(connection)
            self._give_back(None)

    def _give_back(self, connection: _Connection | None) -> None:
        """Hand a connection (None: its free place in the pool) to the first call waiting, else keep it."""
        while self._waiting:
            waiter = self._waiting.popleft()
            if not waiter.done():
                waiter.set_result(connection)
                return
        if connection is None:
            self._open -= 1
        else:
            self._idle.append(connection)

    def _forget(self, connection: _Connection) -> None:
        connection.close()
        self._connections.discard(connection)

    def _reset_pool(self, loop: asyncio.AbstractEventLoop | None) -> None:
        self._loop = loop
        self._generation += 1
        self._idle = []
        self._open = 0  # connections open or being opened, and free places promised to waiting calls
        self._waiting = deque()
        self._connections = set()
