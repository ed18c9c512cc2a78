"""The hop to an upstream in this process (embedded topology), made by calling its ASGI app directly.

Through an HTTP-shaped transport (`gateway.proxy.HttpxProxyTransport` over
`oberon.client.transport.StreamingASGITransport`) each page cost an httpx request and response, their
header objects, a task for the app and a queue its body went through, and a streaming response in the
gateway to read it back out: about a third of the process's CPU per page on the peers' page-5. Here the
gateway's answer *is* the upstream's: `DirectAnswer` is the response the gateway returns, and sending it
runs the upstream app in the same task with the gateway's own `receive` and `send` in between — the
upstream's status and headers filtered as the gateway relays any upstream's, each body message passed on
as it comes (streamed pages still stream; nothing is copied or gathered).

The request the app sees is the one `HttpxProxyTransport` gave it, header for header (tests compare them).
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.errors import BodyTooLarge, UpstreamUnavailable
from gateway.proxy import LimitedBody, host_name
from gateway.security import SECURED

logger = logging.getLogger("oberon.gateway")

RawHeaders = list[tuple[bytes, bytes]]
# What `HttpxProxyTransport` sent an in-process app besides the gateway's headers (httpx's client defaults):
# kept so the upstream sees the same request on either path.
_CLIENT_DEFAULTS: tuple[tuple[bytes, bytes], ...] = (
    (b"accept", b"*/*"),
    (b"accept-encoding", b"gzip, deflate"),
    (b"connection", b"keep-alive"),
    (b"user-agent", f"python-httpx/{httpx.__version__}".encode("ascii")),
)
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
_CLIENT = ("127.0.0.1", 123)


async def _not_sent() -> None:
    """What `hop_send` hands back for a message it does not pass on (rare: a refused body's answer)."""


@functools.lru_cache(maxsize=64)
def _host(name: str) -> tuple[bytes, tuple[str, None]]:
    """The in-process upstream's `Host` header and scope `server`: worked out once per upstream."""
    host = host_name(name)
    return host.encode("ascii"), (host, None)


def hop_scope(
    name: str,
    method: str,
    path: str,
    *,
    raw_path: bytes,
    query: bytes,
    headers: RawHeaders,
    body: LimitedBody | bytes | None,
) -> Scope:
    """The scope of the request to the in-process upstream `name`, as its app would get it from httpx.

    `headers` are the gateway's, as bytes with lower-case names (as a scope has them and httpx sends them).
    """
    given = dict(headers)  # the names given (a dict made in C: cheaper than a set comprehension's frame)
    host, server = _host(name)
    raw: RawHeaders = [] if b"host" in given else [(b"host", host)]
    for default in _CLIENT_DEFAULTS:
        if default[0] not in given:
            raw.append(default)
    raw += headers
    if b"content-length" not in given and b"transfer-encoding" not in given:
        if isinstance(body, bytes):
            raw.append((b"content-length", str(len(body)).encode("ascii")))
        elif isinstance(body, LimitedBody):
            raw.append((b"transfer-encoding", b"chunked"))
        elif method in _BODY_METHODS:
            raw.append((b"content-length", b"0"))
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "headers": raw,
        "scheme": "http",
        "path": path,
        "raw_path": raw_path,
        "query_string": query,
        "server": server,
        "client": _CLIENT,
        "root_path": "",
    }


class DirectAnswer(Response):
    """The gateway's answer from an in-process upstream: sending it calls the upstream's app.

    `relay` turns the upstream's headers into the gateway's (as for any upstream, and with the security headers
    too: the answer's start says so, `SECURED`, to `SecureHeaders`), then `stamp` adds the gateway's own (its
    cookies: `Visitor.stamp`, `Passage.stamp`) to this response's `raw_headers`.
    `answered(status)` is told when the upstream's answer starts, or fails to (502, 504), once.

    Before the upstream starts its answer: no answer within `timeout` → UpstreamUnavailable (504), the app
    raising → UpstreamUnavailable (502), a request body past its limit → BodyTooLarge; the gateway's error
    pages answer these. After it started, the gateway's answer is the upstream's: an app that fails after
    finishing its answer is only logged, one that breaks off its body breaks off the gateway's too.
    """

    def __init__(
        self,
        *,
        upstream: str,
        app: ASGIApp,
        scope: Scope,
        body: LimitedBody | bytes | None,
        timeout: float,
        relay: Callable[[RawHeaders], RawHeaders],
        answered: Callable[[int], None],
        stamp: Callable[[Response], Response],
    ) -> None:
        self.upstream = upstream
        self.app = app
        self.scope = scope
        self.body_source = body
        self.timeout = timeout
        self.relay = relay
        self.answered = answered
        self.stamp = stamp
        self.status_code = 200  # the upstream's, once it answers
        self.raw_headers: RawHeaders = []
        self.background = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = self.body_source
        limited = body if isinstance(body, LimitedBody) else None
        started = complete = refused = False

        def hop_send(message: Message) -> Awaitable[None]:
            """The upstream's `send`: a plain function handing on the gateway's `send`'s awaitable (no coroutine of
            its own a message; issue 19)."""
            nonlocal started, complete, refused
            if refused:
                return _not_sent()
            if message["type"] == "http.response.start":
                if limited is not None and limited.exceeded:
                    refused = True  # the upstream's error about the body: the gateway's limit is the answer
                    return _not_sent()
                started = True
                timer.cancel()  # the budget is for the answer's start; the body streams on
                # `send` is called from within the upstream's app, in its context (its span, its request's
                # info): the gateway's observers and logs must see the gateway's.
                gateway.run(self._start, message)
                status, headers = self.status_code, self.raw_headers  # the relay's hold the security headers
                return send({"type": "http.response.start", "status": status, "headers": headers, SECURED: True})
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                complete = True
            return send(message)

        gateway = contextvars.copy_context()
        # The budget: one timer that cancels this task, as `asyncio.timeout` does, without its two loop lookups.
        task = asyncio.current_task()
        assert task is not None
        loop = task.get_loop()
        cancelling = task.cancelling()
        expired = False

        def expire() -> None:
            nonlocal expired
            expired = True
            task.cancel()

        timer = loop.call_later(self.timeout, expire)
        try:
            try:
                await self.app(self.scope, _hop_receive(body, receive), hop_send)
            finally:
                timer.cancel()
                # The budget's own cancellation taken back (as `asyncio.timeout` does); one from outside stands.
                timed_out = expired and task.uncancel() <= cancelling
        except asyncio.CancelledError:
            if not timed_out:
                raise
            self.answered(504)
            raise UpstreamUnavailable(self.upstream, f"no answer within {self.timeout:g}s", status_code=504) from None
        except BodyTooLarge:
            if started:
                raise
            refused = True
        except Exception as exc:
            if started:
                if complete:
                    logger.error("%s failed after it finished its answer", self.upstream, exc_info=exc)
                    return
                logger.warning("%s broke off its answer: %r", self.upstream, exc)
                raise
            if limited is not None and limited.exceeded:
                raise BodyTooLarge(limited.limit) from None
            self.answered(502)
            logger.error("%s failed before it answered", self.upstream, exc_info=exc)
            raise UpstreamUnavailable(self.upstream, f"{exc.__class__.__name__}: {exc}".rstrip(": ")) from None
        if refused:
            assert limited is not None
            raise BodyTooLarge(limited.limit)
        if not started:
            self.answered(502)
            raise UpstreamUnavailable(self.upstream, "the app ended without an answer")

    def _start(self, message: Message) -> None:
        """The upstream's answer starts: the gateway's status and headers from it, its observers told."""
        self.status_code = message["status"]
        self.answered(self.status_code)
        self.raw_headers = self.relay(message.get("headers", []))  # the relay makes a list of its own
        self.stamp(self)


def _hop_receive(body: LimitedBody | bytes | None, receive: Receive) -> Receive:
    """The upstream's `receive`: the request body as the gateway forwards it, then the caller's own messages
    (a disconnect reaches the upstream as it happens)."""
    chunks = aiter(body) if isinstance(body, LimitedBody) else None
    pending: bytes | None = body if isinstance(body, bytes) else b""

    async def hop_receive() -> Message:
        nonlocal pending, chunks
        if chunks is not None:
            try:
                return {"type": "http.request", "body": await anext(chunks), "more_body": True}
            except StopAsyncIteration:
                chunks = None
        if pending is not None:
            message: dict[str, Any] = {"type": "http.request", "body": pending, "more_body": False}
            pending = None
            return message
        return await receive()

    return hop_receive
