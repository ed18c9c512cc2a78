"""The gateway's outer ASGI layers: limits and path normalisation on the way in, security headers on the way out."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Collection, Mapping
from itertools import chain
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Match, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.context import ProxyTrust
from gateway.proxy import quote_path
from gateway.security import REPLACED, SECURED, SecurityHeaders, is_html
from gateway.table import normalize_path

_READ = REPLACED | {b"content-type"}  # any other header is passed on unread
CATCH_ALL = "/{path:path}"  # the gateway's route to the proxy: every path
# Module names: in Python 3.11 reading a member off the enum class is a descriptor call.
_FULL, _PARTIAL = Match.FULL, Match.PARTIAL


async def _refuse(send: Send, status: int, message: str) -> None:
    body = json.dumps({"error": message}).encode("utf-8")
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode("ascii")),
        (b"cache-control", b"no-store"),
        (b"connection", b"close"),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class Entrance:
    """Refuses oversized headers (431) and URLs (414); hands on the path with `.`, `..` and `//` resolved.

    Everything after this layer — the gateway's own endpoints, the routing table, the upstream —
    sees the same path, so a path cannot match one route and reach another.
    """

    def __init__(self, app: ASGIApp, *, max_header_bytes: int) -> None:
        self.app = app
        self.max_header_bytes = max_header_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        # As on the wire: "name: value\r\n" for each field (the names' and values' lengths summed in C).
        headers = scope["headers"]
        size = sum(map(len, chain.from_iterable(headers))) + 4 * len(headers)
        if size > self.max_header_bytes:
            await _refuse(send, 431, f"the request's headers are larger than {self.max_header_bytes} bytes")
            return
        if len(scope.get("raw_path") or b"") + len(scope.get("query_string", b"")) > self.max_header_bytes:
            await _refuse(send, 414, f"the URL is longer than {self.max_header_bytes} bytes")
            return
        path = normalize_path(scope["path"])
        if path != scope["path"]:
            scope = {**scope, "path": path, "raw_path": quote_path(path)}
        await self.app(scope, receive, send)


Handler = Callable[[Request, Exception], Awaitable[Response]]


class CatchAll(Route):
    """The gateway's route to the proxy, `/{path:path}`: every path at the root, its match written out.

    `Route.matches` runs the regex, reads its groups and converts the param on every request (issue 19). The regex
    `^/(?P<path>.*)$` takes any path at the root but one with a line break (`.`) before its end; such a path, a
    mount's and any scope but HTTP are matched by `Route.matches` itself. The same match and child scope either way.
    """

    def __init__(self, endpoint: Callable[..., Any], *, methods: Collection[str]) -> None:
        super().__init__(CATCH_ALL, endpoint, methods=list(methods))

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if scope["type"] != "http" or scope.get("root_path"):
            return super().matches(scope)
        path: str = scope["path"]
        if path[:1] != "/" or "\n" in path:
            return super().matches(scope)
        given = scope.get("path_params")
        child = {"endpoint": self.endpoint, "path_params": {**given, "path": path[1:]} if given else {"path": path[1:]}}
        return (_PARTIAL if self.methods and scope["method"] not in self.methods else _FULL), child


class Proxying:
    """The gateway's catch-all route taken without Starlette's app, router and exception middlewares (issue 19).

    Every page goes through the catch-all `route` (to the proxy); only the gateway's own endpoints (`own_paths`)
    need the router. A request for any other path that the route matches is handled here as Starlette would
    (the same scope keys, the endpoint's answer or, before it starts, `handlers`' answer to the error it raised)
    in one layer instead of six (the app, its error middleware, exception middleware, router, route, its
    exception wrapper); everything else goes on to `app`, the Starlette app. An error no handler takes is
    `server_error`'s, as Starlette's `ServerErrorMiddleware` does it: its answer unless one has started, and
    the error raised on for the server to log (without `server_error`, only raised on).
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        route: Route,
        own_paths: Collection[str],
        handlers: Mapping[type[Exception], Handler],
        server_error: Handler | None = None,
    ) -> None:
        self.app = app
        self.route = route
        self.own_paths = frozenset(own_paths)
        self.handlers = dict(handlers)
        self.server_error = server_error

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self.own_paths:
            await self.app(scope, receive, send)
            return
        match, child_scope = self.route.matches(scope)
        if match is not _FULL:  # a method the route does not take, a path it cannot: the router's answer
            await self.app(scope, receive, send)
            return
        scope.update(child_scope)
        scope["app"] = self.app  # what Starlette's app records
        scope["route"] = self.route  # what the router records (the observability layer labels by it)
        request = Request(scope, receive, send)
        started = False

        def send_tracked(message: Message) -> Awaitable[None]:
            """`send`, noting the answer's start: a plain function handing on `send`'s awaitable (no coroutine of
            its own a message)."""
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            return send(message)

        try:
            try:
                response = await self.route.endpoint(request)
                await response(scope, receive, send_tracked)
            except Exception as exc:
                handler = next((self.handlers[kind] for kind in type(exc).__mro__ if kind in self.handlers), None)
                if handler is None:
                    raise
                if started:
                    raise RuntimeError("Caught handled exception, but response already started.") from exc
                response = await handler(request, exc)
                await response(scope, receive, send_tracked)
                exc.__traceback__ = None  # a reused exception instance would pile up tracebacks
        except Exception as exc:
            if self.server_error is None:
                raise
            answer = await self.server_error(request, exc)
            if not started:
                await answer(scope, receive, send)
            raise


class SecureHeaders:
    """Adds the security headers to every response: CSP and framing rules on HTML, `nosniff` on all.

    HSTS goes on every response once the caller is on https: `always_https` (the public URL is
    https) or the connection's scheme, or a trusted proxy's `X-Forwarded-Proto`, says so. An answer whose start
    message says `SECURED` has them already and is passed on as it is.
    """

    def __init__(
        self, app: ASGIApp, *, headers: SecurityHeaders, proxies: ProxyTrust, always_https: bool = False
    ) -> None:
        self.app = app
        self.headers = headers
        self.proxies = proxies
        self.always_https = always_https

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        def send_secured(message: Message) -> Awaitable[None]:
            """`send` with the security headers on the answer's start: a plain function handing on `send`'s
            awaitable (no coroutine of its own a message)."""
            if message["type"] == "http.response.start" and SECURED not in message:
                raw = []
                content_type: bytes | None = None  # the first one, as before
                for header in message.get("headers", []):
                    lowered = header[0].lower()
                    if lowered in _READ:
                        if lowered in REPLACED:
                            continue
                        if content_type is None:
                            content_type = header[1]
                    raw.append(header)
                added = self.headers.encoded(html=is_html(content_type or b""), https=self._https(scope))
                message = {**message, "headers": raw + added}
            return send(message)

        await self.app(scope, receive, send_secured)

    def _https(self, scope: Scope) -> bool:
        if self.always_https:
            return True
        client = scope.get("client")
        peer = client[0] if client else None
        scheme = scope.get("scheme", "http")
        if not self.proxies.trusts(peer):  # only a trusted proxy's headers can say otherwise: not read at all
            return bool(scheme == "https")
        headers = [(name.decode("latin-1"), value.decode("latin-1")) for name, value in scope["headers"]]
        caller = self.proxies.resolve(peer=peer, scheme=scheme, host="", headers=headers)
        return caller.scheme == "https"
