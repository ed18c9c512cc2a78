"""The gateway as a Starlette app: the only entrance to the site.

For each request: find its route (longest prefix), check the method, authenticate as the route
requires (session cookie or Bearer JWT), replace every `X-Oberon-*` header with the verified
context, and stream the request to its upstream and the answer back. Its own endpoints are the
sign-in, sign-out and password pages and a minimal `/_oberon/health` (ok or not, for load balancers);
`admin_routes()` are what it adds to its process's internal admin listener: the health that names
each upstream, and the revocation of a user's sessions. Errors become responses here, in one place.

Sessions live server-side (`gateway.sessions`): the cookie carries only a signed session id, so a
session is revoked at once — on every replica sharing the store — by sign-out, a password change
or an operator. When that store is unreachable, a request that shows a session cookie gets 503
(fail closed) while anonymous requests and Bearer callers are served as usual.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import functools
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import replace
from functools import partial
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode

import httpx
import jinja2
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.requests import Request, cookie_parser
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp

from gateway.auth import (
    ANONYMOUS,
    PASSWORD_PATH,
    SESSION_COOKIES,
    SIGN_IN_PATH,
    SIGN_OUT_PATH,
    BearerVerifier,
    Identity,
    SessionCodec,
    bearer_token,
    safe_next,
    session_cookie_name,
)
from gateway.context import (
    ProxyTrust,
    TrustedContext,
    connection_caller,
    device_class,
    is_untrusted,
    negotiate_locale,
    request_id,
)
from gateway.direct import DirectAnswer, hop_scope
from gateway.directory import Outcome, UserDirectory
from gateway.errors import AuthenticationError, BodyTooLarge, StoreUnavailable, TooManyAttempts, UpstreamUnavailable
from gateway.middleware import CatchAll, Entrance, Handler, Proxying, SecureHeaders
from gateway.pages import Pages, create_environment
from gateway.proxy import HOP_BY_HOP, LimitedBody, UpstreamPool, connection_tokens, quote_path
from gateway.security import REPLACED, SecurityHeaders, is_html, platform_style_hashes
from gateway.sessions import Session
from gateway.settings import GatewaySettings
from gateway.stores import Stores, open_stores
from gateway.table import METHODS, Auth, RouteTable
from gateway.table import Route as TableRoute
from gateway.throttle import Throttle, ThrottlePolicy, address_key, user_key
from gateway.visitor import VISITOR_COOKIE, Visitor, is_page_request
from gateway.waiting_room import GO_ON, WaitingRoom
from oberon.client.upstream import CallObserver, CallRecord
from oberon.headers import REQUEST_ID_HEADER, USER_ID, first_values, new_request_id
from oberon.ops.admin import admin_refusal
from oberon.ops.admin_listener import HEALTH_PATH, public_health
from oberon.ops.observability import RequestInfo
from oberon.pipeline.cache_policy import PRIVATE
from oberon.query_strings import strip_tracking
from oberon.site import RENDERER

logger = logging.getLogger("oberon.gateway")

USERS_UPSTREAM = "backend:users"
SESSIONS_PATH = "/_oberon/sessions/{user}"
PLATFORM_PREFIX = "/_oberon"  # the platform's own endpoints on every service
PROBE_TIMEOUT = 1.0
MAX_FORM_BYTES = 8 * 1024
MAX_FORM_FIELDS = 8  # the sign-in form has three, the password form two
MAX_FIELD_CHARS = 1024  # no user name or password is longer
NO_STORE = {"Cache-Control": "no-store"}
_PATH_SAFE = "/:@!$&'()*+,;=-._~"
# Never passed back from an upstream: the gateway's server sets its own, and only the gateway sets cookies.
_RESPONSE_DROP = frozenset({b"set-cookie", b"server", b"date"})
_PRIVATE = PRIVATE.encode("latin-1")
_REQUEST_ID = REQUEST_ID_HEADER.lower().encode("latin-1")
# Never forwarded from a request: hop-by-hop names, `Host`, `Expect` and `Content-Length` (the gateway sets its own).
_REQUEST_DROP = HOP_BY_HOP | {"host", "expect", "content-length"}
_SEEN_NAMES = 512  # distinct request header names worked out once each (browsers send a few dozen)
_HOP_BY_HOP = frozenset(name.encode("latin-1") for name in HOP_BY_HOP)
_ANSWER_DROP = _RESPONSE_DROP | _HOP_BY_HOP
_ANSWER_READ = _ANSWER_DROP | {b"cache-control", _REQUEST_ID}  # what the relay reads of an answer's headers
_SECURED_READ = _ANSWER_READ | REPLACED | {b"content-type"}  # and what `SecureHeaders` reads, when it does its work

Cleanup = Callable[[], Awaitable[None]]
RawHeaders = list[tuple[bytes, bytes]]


def request_cookies(raw: RawHeaders) -> dict[str, str]:
    """The request's cookies, as Starlette's `Request.cookies` reads them (every `Cookie` header, in order)."""
    cookies: dict[str, str] = {}
    for name, value in raw:
        if name == b"cookie":
            cookies.update(cookie_parser(value.decode("latin-1")))
    return cookies


class _Kind(enum.Enum):
    """What the hop does with a request header, by its name alone."""

    FORWARD = enum.auto()
    DROP = enum.auto()  # hop-by-hop, untrusted, or one the gateway sets itself
    CONNECTION = enum.auto()  # dropped, and the names it lists with it
    AUTHORIZATION = enum.auto()
    COOKIE = enum.auto()


# The kinds as module names: in Python 3.11 reading a member off the enum class is a descriptor call (~800
# instructions), and `_upstream_headers` compares up to four a header (issue 19).
_FORWARD, _DROP, _CONNECTION, _AUTHORIZATION, _COOKIE = (
    _Kind.FORWARD,
    _Kind.DROP,
    _Kind.CONNECTION,
    _Kind.AUTHORIZATION,
    _Kind.COOKIE,
)
# A route's needs, read on every request, likewise.
_AUTH_NONE, _AUTH_REQUIRED = Auth.NONE, Auth.REQUIRED


@functools.lru_cache(maxsize=_SEEN_NAMES)
def _request_header(name: bytes) -> tuple[str, _Kind]:
    """A request header's name, lowercase, and what the hop does with it: worked out once per name a caller sends.

    Never forwarded: `_REQUEST_DROP`, the untrusted ones (`is_untrusted`), and (see `_upstream_headers`) those a
    `Connection` header lists."""
    lowered = name.decode("latin-1").lower()
    if lowered == "connection":
        return lowered, _CONNECTION
    if lowered in _REQUEST_DROP or is_untrusted(lowered):
        return lowered, _DROP
    if lowered == "authorization":
        return lowered, _AUTHORIZATION
    if lowered == "cookie":
        return lowered, _COOKIE
    return lowered, _FORWARD


def keep_context(request: Request, context: TrustedContext) -> None:
    """`request.state.context = context`: the dict Starlette's `State` reads and writes (`scope["state"]`), written
    without making the `State` (`Request.state` looks for it with a `hasattr` that raises and catches, ~7 k
    instructions a request)."""
    request.scope.setdefault("state", {})["context"] = context


def wants_html(request: Request) -> bool:
    """A browser navigation (as opposed to an API call): it accepts HTML."""
    return "text/html" in request.headers.get("accept", "")


def without_cookies(header: str, names: Sequence[str]) -> str:
    """A `Cookie` header value without the cookies `names` (the session never reaches an upstream)."""
    kept = [part.strip() for part in header.split(";") if part.strip().partition("=")[0].strip() not in names]
    return "; ".join(part for part in kept if part)


def _reaches_platform_endpoints(upstream_path: str, path: str) -> bool:
    """Whether a public path would reach an upstream's own `/_oberon/…` endpoints under another name (a BFF's
    health, which shows its breakers and caches: `/bff/events/_oberon/health`). Those are the cluster's, not the
    internet's; only the renderer's `/_oberon/…`, under the same path, is public (assets, the minimal health)."""
    return (
        upstream_path == PLATFORM_PREFIX or upstream_path.startswith(PLATFORM_PREFIX + "/")
    ) and upstream_path != path


class Gateway:
    """Routing table, authentication, trusted context and proxying over a pool of upstreams."""

    def __init__(
        self,
        *,
        table: RouteTable,
        upstreams: UpstreamPool,
        settings: GatewaySettings,
        admin_token: str | None = None,
        environment: jinja2.Environment | None = None,
        on_shutdown: Sequence[Cleanup] = (),
        observers: Sequence[CallObserver] = (),
        stores: Stores | None = None,
        health_details: Callable[[], Mapping[str, Any]] | None = None,
    ) -> None:
        self.observers = tuple(observers)
        # More the detailed health reports for the process (`oberon up`: the registry its renderer follows).
        self.health_details = health_details
        self.table = table
        self.upstreams = upstreams
        self.settings = settings
        self.admin_token = admin_token
        self.on_shutdown = tuple(on_shutdown)
        self.codec = SessionCodec(secret=settings.session_secret, max_age=settings.session_max_age)
        self.stores = stores if stores is not None else open_stores(settings.session_store, clock=time.time)
        self.sessions = self.stores.sessions
        policy = ThrottlePolicy(
            max_failures=settings.sign_in_max_failures,
            window_seconds=settings.sign_in_window_seconds,
            backoff_seconds=settings.sign_in_backoff_seconds,
        )
        self.throttle = Throttle(counters=self.stores.counters, policy=policy)
        self.bearer = BearerVerifier(
            key=settings.jwt_key,
            algorithms=settings.jwt_algorithms,
            audience=settings.jwt_audience,
            issuer=settings.jwt_issuer,
        )
        self.proxies = ProxyTrust(settings.trusted_proxies)
        self.security = SecurityHeaders(asset_origin=settings.asset_origin, style_hashes=platform_style_hashes())
        self.pages = Pages(environment=environment or create_environment())
        self.waiting_room = WaitingRoom(
            queues=self.stores.queues, secret=settings.session_secret, environment=self.pages.environment
        )
        self.directory = UserDirectory(upstream=upstreams.get(USERS_UPSTREAM))

    def app(self) -> ASGIApp:
        """The ASGI app: security headers outermost, then limits, then the catch-all route to the proxy, taken by
        `Proxying` for any path but the gateway's own endpoints, which go on to Starlette's app and its router.

        The layers wrap the Starlette app, not the other way round: a page's way skips Starlette's app and its
        error middleware (`Proxying` answers an error no handler takes as the middleware would), and every answer,
        a server error's too, gets the security headers."""
        own: list[Route] = [
            public_health(self.ready),
            Route(SIGN_IN_PATH, self.sign_in, methods=["GET", "POST"]),
            Route(SIGN_OUT_PATH, self.sign_out, methods=["GET", "POST"]),
            Route(PASSWORD_PATH, self.password, methods=["GET", "POST"]),
        ]
        proxied = CatchAll(self.proxy, methods=sorted(METHODS))
        handlers: dict[type[Exception], Handler] = {
            UpstreamUnavailable: self._upstream_failure,
            BodyTooLarge: self._too_large,
            AuthenticationError: self._unauthorized,
            TooManyAttempts: self._too_many_attempts,
            StoreUnavailable: self._store_unavailable,
        }
        routed = Starlette(
            routes=[*own, proxied],
            exception_handlers={**handlers, Exception: self._server_error},
            lifespan=self._lifespan,
        )
        proxying = Proxying(
            routed,
            route=proxied,
            own_paths=[route.path for route in own],
            handlers=handlers,
            server_error=self._server_error,
        )
        limited = Entrance(proxying, max_header_bytes=self.settings.max_header_bytes)
        return SecureHeaders(
            limited, headers=self.security, proxies=self.proxies, always_https=self.settings.public_https
        )

    @contextlib.asynccontextmanager
    async def _lifespan(self, app: Starlette) -> AsyncIterator[None]:
        yield
        await self.upstreams.aclose()
        await self.stores.aclose()
        for cleanup in self.on_shutdown:
            await cleanup()

    def context(
        self, request: Request, identity: Identity = ANONYMOUS, *, headers: Mapping[bytes, bytes] | None = None
    ) -> TrustedContext:
        """The trusted context of a request; kept on `request.state` for the error handlers.

        `headers`: the request's `first_values`, when the caller has them already."""
        scope = request.scope
        first = first_values(scope["headers"]) if headers is None else headers
        client = scope.get("client")
        peer = client[0] if client else None
        trusted = self.proxies.trusts(peer)
        scheme = scope.get("scheme", "http")  # what `request.url.scheme` says, without building the URL
        host = first.get(b"host", b"").decode("latin-1")
        if trusted:
            caller = self.proxies.resolve(peer=peer, scheme=scheme, host=host, headers=list(request.headers.items()))
        else:  # only a trusted proxy's headers are read: anyone else is the connection's own account (as `resolve`)
            caller = connection_caller(peer, scheme, host)
        # A caller's own id would be repeated in the answer, which a CDN may share with others: only a
        # trusted proxy's id (the CDN's or load balancer's, for tracing across it) is adopted.
        incoming = first.get(b"x-request-id") if trusted else None
        # Its fields given by position (request id, identity, locale, device, caller): a frozen dataclass's
        # `__init__` matches keywords at a cost.
        context = TrustedContext(
            request_id(incoming.decode("latin-1")) if incoming is not None else new_request_id(),
            identity,
            negotiate_locale(first.get(b"accept-language", b"").decode("latin-1"), self.settings.locales),
            device_class(first.get(b"user-agent", b"").decode("latin-1")),
            caller,
        )
        keep_context(request, context)
        return context

    def https(self, context: TrustedContext) -> bool:
        """Whether the browser is on https — the one place the gateway decides it: the public URL says so (TLS
        may end before the gateway), or the connection (or a trusted proxy) does."""
        return self.settings.public_https or context.caller.scheme == "https"

    async def authenticate(
        self, request: Request, context: TrustedContext, *, cookies: Mapping[str, str] | None = None
    ) -> Identity:
        """A Bearer token when one is sent (and it must be valid), else a live session, else anonymous.

        StoreUnavailable when a session cookie is shown and the session store cannot say whether it stands.
        `cookies`: the request's, when the caller has them already.
        """
        raw = request.scope["headers"]
        authorizations = [value.decode("latin-1") for name, value in raw if name == b"authorization"]
        if len(authorizations) > 1:
            raise AuthenticationError("send one Authorization header")
        if authorizations:
            return self.bearer.verify(bearer_token(authorizations[0]))
        session = await self.session(request, context, cookies=cookies)
        return session.identity if session is not None else ANONYMOUS

    async def session(
        self, request: Request, context: TrustedContext, *, cookies: Mapping[str, str] | None = None
    ) -> Session | None:
        """The live session the request's cookie names; None without one, or for a forged, expired or revoked one."""
        cookie = (request.cookies if cookies is None else cookies).get(session_cookie_name(https=self.https(context)))
        if not cookie:
            return None
        try:
            session_id = self.codec.verify(cookie)
        except AuthenticationError as exc:
            # A stale or foreign cookie is not an attack on this route: the caller is anonymous.
            logger.info("ignoring a session cookie: %s (request %s)", exc.reason, context.request_id)
            return None
        session = await self.sessions.get(session_id)
        if session is None:
            logger.info("ignoring a revoked or expired session (request %s)", context.request_id)
        return session

    async def proxy(self, request: Request) -> Response:
        path: str = request.scope["path"]
        method: str = request.scope["method"]
        # Read once, without Starlette's `Headers` (which scans the list for each name asked).
        incoming = first_values(request.scope["headers"])
        cookies = request_cookies(request.scope["headers"])
        context = self.context(request, headers=incoming)
        route = self.table.match(path)
        upstream_path = route.upstream_path(path) if route is not None else path
        if route is None or _reaches_platform_endpoints(upstream_path, path):
            return self._error(request, 404, "Page not found", "There is no page at this address.")
        template = route.label
        RequestInfo.current().route = template
        if not route.allows(method):
            allowed = ", ".join(sorted(route.methods or ()))
            response = self._error(request, 405, "Method not allowed", f"Use {allowed}.")
            response.headers["Allow"] = allowed
            return response
        if route.admin:
            refused = admin_refusal(request, self.admin_token)
            if refused is not None:
                return refused
        # Without a cookie or an `Authorization` header, `authenticate` finds no one: anonymous, without its coroutine.
        if route.auth is not _AUTH_NONE and (cookies or b"authorization" in incoming):
            identity = await self.authenticate(request, context, cookies=cookies)
            if identity is not context.identity:  # an anonymous caller's context stands as it is
                context = replace(context, identity=identity)
                keep_context(request, context)
        if route.auth is _AUTH_REQUIRED and not context.identity.signed_in:
            return self._challenge(request)
        passage = GO_ON
        if route.waiting_room is not None:  # an on-sale: beyond its capacity a visitor waits in line
            passage = await self.waiting_room.enter(
                cookies,
                room=route.prefix,
                capacity=route.waiting_room,
                https=self.https(context),
                wants_html=wants_html(request),
            )
            if passage.queued is not None:
                return passage.queued

        upstream = self.upstreams[route.upstream]
        forwarded = self._upstream_headers(request.scope["headers"], route)
        declared = incoming.get(b"content-length")
        length = declared.decode("latin-1") if declared is not None else None
        visitor = self.visitor(request, route, path, cookies)
        started = time.perf_counter()
        # Tracking parameters mean nothing upstream and would split caches: never forwarded.
        query = strip_tracking(request.scope.get("query_string", b""))
        transfer_encoding = incoming.get(b"transfer-encoding")
        body: LimitedBody | bytes | None = None  # a request without a body (most pages): nothing to await
        if length is not None or transfer_encoding is not None:
            body = await self._body(request, length, transfer_encoding)

        def stamp(response: Response) -> Response:
            """The gateway's own cookies on the upstream's answer (over its Cache-Control)."""
            if visitor is not None:
                response = visitor.stamp(response, https=self.https(context))
            return passage.stamp(response)

        if upstream.app is not None:  # in this process: called directly when the answer is sent
            # The scope's own bytes, lower-case names, as `hop_scope` gives them to the app.
            raw = [(name.lower(), value) for name, value in forwarded]
            if length is not None and length.isdigit():
                raw.append((b"content-length", length.encode("latin-1")))
            raw += context.raw_headers()
            if visitor is not None:
                raw.append(visitor.raw_header())
            response = self._direct(
                upstream.name,
                upstream.app,
                method,
                upstream_path,
                query,
                raw,
                body,
                context,
                timeout=route.timeout,
                answered=partial(self._observe, upstream.name, method, template, started),
                stamp=stamp,
            )
        else:
            headers = [(name.decode("latin-1"), value.decode("latin-1")) for name, value in forwarded]
            if length is not None and length.isdigit():
                headers.append(("Content-Length", length))
            headers += context.headers()
            if visitor is not None:
                headers.append(visitor.header())
            try:
                answer = await upstream.send(
                    method, upstream_path, query=query, headers=headers, body=body, timeout=route.timeout
                )
            except UpstreamUnavailable as exc:
                self._observe(upstream.name, method, template, started, exc.status_code)
                raise
            self._observe(upstream.name, method, template, started, answer.status_code)
            response = stamp(self._relay(answer, context, upstream=upstream.name))
        return response

    def visitor(
        self, request: Request, route: TableRoute, path: str, cookies: Mapping[str, str] | None = None
    ) -> Visitor | None:
        """The visitor of a page request to the renderer (their canary bucket): their cookie's; else, when the site
        follows a registry (`visitor_cookie`), a new one. None for anything else (assets, BFFs, a site without one)."""
        cookie = (request.cookies if cookies is None else cookies).get(VISITOR_COOKIE)
        if cookie is None and not self.settings.visitor_cookie:  # none whatever the request (most sites)
            return None
        if route.upstream != RENDERER or not is_page_request(request.method, path):
            return None
        visitor = Visitor.read(cookie)
        if visitor is None and self.settings.visitor_cookie:
            visitor = Visitor.mint()
        return visitor

    def _observe(self, upstream: str, method: str, template: str, started: float, status: int) -> None:
        """The wait for the upstream's answer (its headers; the body streams on), as the gateway saw it."""
        if not self.observers:
            return
        outcome = "ok" if status < 400 else "client_error" if status < 500 else "timeout" if status == 504 else "error"
        # Made as the named tuple's `_make` makes one, without its `__new__` frame (as `oberon.client.upstream` does).
        record = tuple.__new__(CallRecord, (upstream, method, template, outcome, time.perf_counter() - started, status))
        for observe in self.observers:
            observe(record)

    def _challenge(self, request: Request) -> Response:
        """No session on a `required` route: a browser goes to sign in, an API caller gets 401."""
        if wants_html(request) and request.method in ("GET", "HEAD"):
            target = quote(request.scope["path"], safe=_PATH_SAFE)
            query = request.scope.get("query_string", b"").decode("latin-1")
            location = f"{SIGN_IN_PATH}?{urlencode({'next': safe_next(f'{target}?{query}' if query else target)})}"
            return RedirectResponse(location, status_code=303, headers=NO_STORE)
        return JSONResponse(
            {"error": "authentication required", "sign_in": SIGN_IN_PATH},
            status_code=401,
            headers={**NO_STORE, "WWW-Authenticate": 'Bearer realm="oberon"'},
        )

    async def _body(
        self, request: Request, declared: str | None, transfer_encoding: bytes | None
    ) -> LimitedBody | bytes | None:
        """A body of declared length is streamed (and cut off past the limit, should it lie about its length).

        A chunked body is read first, up to the limit: only then is its size known, and an upstream
        that answers before reading it must not decide whether it was too large. `declared` and
        `transfer_encoding`: the request's first `Content-Length` and `Transfer-Encoding`.
        """
        limit = self.settings.max_body_bytes
        if declared is not None:
            if declared.isdigit() and int(declared) > limit:
                raise BodyTooLarge(limit)
            return LimitedBody(request.stream(), limit=limit)
        if transfer_encoding is None or "chunked" not in transfer_encoding.decode("latin-1").lower():
            return None
        chunks = []
        async for chunk in LimitedBody(request.stream(), limit=limit):
            chunks.append(chunk)
        return b"".join(chunks)

    def _upstream_headers(self, raw: RawHeaders, route: TableRoute) -> RawHeaders:
        """The caller's headers (the scope's bytes) without hop-by-hop, untrusted and credential headers.

        The trusted context's (and `Content-Length`) go after them, in the form the upstream's hop takes."""
        headers = []
        named: set[str] = set()  # what `Connection` headers list (rare): taken out once all are read
        for name, value in raw:
            kind = _request_header(name)[1]
            if kind is _FORWARD:
                headers.append((name, value))
            elif kind is _CONNECTION:
                named |= connection_tokens(value.decode("latin-1"))
            elif kind is _AUTHORIZATION:
                if route.forward_authorization:  # else verified here, or not the upstream's business
                    headers.append((name, value))
            elif kind is _COOKIE and route.forward_cookies:  # else the context headers say who the caller is
                # Upstreams get the bucket, never the session.
                kept = without_cookies(value.decode("latin-1"), (*SESSION_COOKIES, VISITOR_COOKIE))
                if kept:
                    headers.append((name, kept.encode("latin-1")))
        if named:
            headers = [(name, value) for name, value in headers if _request_header(name)[0] not in named]
        return headers

    def _direct(
        self,
        upstream: str,
        app: ASGIApp,
        method: str,
        path: str,
        query: bytes,
        headers: RawHeaders,
        body: LimitedBody | bytes | None,
        context: TrustedContext,
        *,
        timeout: float,
        answered: Callable[[int], None],
        stamp: Callable[[Response], Response],
    ) -> Response:
        """The answer of an upstream in this process, which calls its app when it is sent (`gateway.direct`)."""
        scope = hop_scope(upstream, method, path, raw_path=quote_path(path), query=query, headers=headers, body=body)
        return DirectAnswer(
            upstream=upstream,
            app=app,
            scope=scope,
            body=body,
            timeout=timeout,
            relay=partial(self._relay_headers, context=context, upstream=upstream, secured=True),
            answered=answered,
            stamp=stamp,
        )

    def _relay_headers(
        self, raw: list[tuple[bytes, bytes]], *, context: TrustedContext, upstream: str, secured: bool = False
    ) -> list[tuple[bytes, bytes]]:
        """The upstream's answer headers as the gateway passes them on: without hop-by-hop headers and cookies,
        private when the caller is signed in, with the request id.

        `secured`: with the security headers too, as `SecureHeaders` adds them (the in-process hop's answer, whose
        start says so: `SECURED`), in this one pass over the upstream's headers."""
        # One pass, each name lower-cased once and any name it need not read passed on as is; the names a
        # `Connection` header lists (rare) are taken out after.
        headers: RawHeaders = []
        named: set[bytes] = set()
        identified = False  # the answer has a request id
        content_type: bytes | None = None  # the first one
        read = _SECURED_READ if secured else _ANSWER_READ
        for name, value in raw:
            lowered = name.lower()
            if lowered in read:
                if lowered == b"connection":
                    named.update(token.strip().lower() for token in value.split(b","))
                elif lowered == b"set-cookie":
                    logger.warning("dropped a Set-Cookie from %s (request %s)", upstream, context.request_id)
                if lowered in _ANSWER_DROP or lowered in REPLACED:  # REPLACED only read when `secured`
                    continue
                if lowered == _REQUEST_ID:
                    identified = True
                elif lowered == b"content-type":  # only read when `secured`
                    if content_type is None:
                        content_type = value
                elif context.identity.signed_in and b"private" not in value:  # Cache-Control
                    value = _PRIVATE  # an answer to a signed-in caller is never shared
            headers.append((name, value))
        if named:
            headers = [(name, value) for name, value in headers if name.lower() not in named]
            identified = any(name.lower() == _REQUEST_ID for name, _ in headers)
            content_type = next((value for name, value in headers if name.lower() == b"content-type"), None)
        if not identified:
            headers.append((REQUEST_ID_HEADER.encode("latin-1"), context.request_id.encode("latin-1")))
        if secured:
            headers += self.security.encoded(html=is_html(content_type or b""), https=self.https(context))
        return headers

    def _relay(self, upstream_response: httpx.Response, context: TrustedContext, *, upstream: str) -> Response:
        """Stream the upstream's answer back without its hop-by-hop headers and cookies."""
        headers = self._relay_headers(upstream_response.headers.raw, context=context, upstream=upstream)

        async def body() -> AsyncIterator[bytes]:
            try:
                async for chunk in upstream_response.aiter_raw():
                    yield chunk
            except Exception as exc:
                logger.warning("%s broke off its answer (request %s): %r", upstream, context.request_id, exc)
                raise
            finally:
                # Also when the caller goes away mid-answer: the pooled connection must go back.
                await upstream_response.aclose()

        response = StreamingResponse(
            body(), status_code=upstream_response.status_code, background=BackgroundTask(upstream_response.aclose)
        )
        response.raw_headers = headers
        return response

    def admin_routes(self) -> list[BaseRoute]:
        """For the admin listener: the health that names each upstream and whether it answers, and
        `DELETE /_oberon/sessions/{user}` (admin token) that revokes every session of a user."""
        return [
            Route(HEALTH_PATH, self.health, methods=["GET"]),
            Route(SESSIONS_PATH, self.revoke_sessions, methods=["DELETE"]),
        ]

    async def ready(self) -> bool:
        """Whether the gateway can serve pages: the upstream of `/` (the renderer) answers, when there is one."""
        route = self.table.match("/")
        if route is None or route.upstream not in self.upstreams:
            return True
        return bool((await self._probe(route.upstream))["reachable"])

    async def health(self, request: Request) -> Response:
        """The gateway is live; each upstream reachable or not (any answer counts as reachable)."""
        names = list(self.upstreams)
        probes = await asyncio.gather(*(self._probe(name) for name in names))
        upstreams = dict(zip(names, probes, strict=True))
        ready = all(probe["reachable"] for probe in probes)
        return JSONResponse(
            {
                "status": "ok" if ready else "degraded",
                "service": "gateway",
                "upstreams": upstreams,
                **(self.health_details() if self.health_details is not None else {}),
            },
            headers=NO_STORE,
        )

    async def _probe(self, name: str) -> dict[str, Any]:
        try:
            response = await self.upstreams[name].send(
                "GET", HEALTH_PATH, headers=[("Accept", "application/json")], timeout=PROBE_TIMEOUT
            )
        except UpstreamUnavailable as exc:
            return {"reachable": False, "error": exc.reason}
        await response.aclose()
        return {"reachable": True, "status_code": response.status_code}

    async def sign_in(self, request: Request) -> Response:
        """GET: the form. POST: check the user name and password with the users service, start a session.

        Throttled per client address and per user name (429 with `Retry-After` while blocked).
        """
        context = self.context(request)
        if request.method == "GET":
            next_path = safe_next(request.query_params.get("next"))
            return self._page(self.pages.sign_in(next=next_path), 200)
        refused = self._cross_site(request, context)
        if refused is not None:
            return refused
        form = await self._form(request)
        if form is None:
            return self._error(request, 400, "Bad request", "The sign-in form could not be read.")
        username, password = form.get("username", "").strip(), form.get("password", "")
        next_path = safe_next(form.get("next"))
        keys = [address_key(context.caller.ip), user_key(username)]
        await self.throttle.check(keys)
        identity = None
        if username and password:
            identity = await self.directory.authenticate(username, password, request_id=context.request_id)
        if identity is None:
            await self.throttle.failed(keys)
            logger.info("sign-in refused for %r (request %s)", username[:64], context.request_id)
            page = self.pages.sign_in(
                next=next_path, username=username, error="The user name or password is not right."
            )
            return self._page(page, 401)
        await self.throttle.succeeded(user_key(username))
        previous = await self.session(request, context)
        if previous is not None:
            await self.sessions.revoke(previous.id)  # a new sign-in never keeps an id that existed before it
        logger.info("signed in %s (request %s)", identity.user, context.request_id)
        response = RedirectResponse(next_path, status_code=303, headers=NO_STORE)
        await self._start_session(response, identity, context)
        return response

    async def sign_out(self, request: Request) -> Response:
        """GET: a button to confirm. POST: revoke the session (its cookie is refused from now on, anywhere)."""
        context = self.context(request)
        if request.method == "GET":
            session = await self.session(request, context)
            return self._page(self.pages.sign_out(user=session.user if session else None), 200)
        refused = self._cross_site(request, context)
        if refused is not None:
            return refused
        session = await self.session(request, context)
        if session is not None:
            await self.sessions.revoke(session.id)
            logger.info("signed out %s (request %s)", session.user, context.request_id)
        response = RedirectResponse("/", status_code=303, headers=NO_STORE)
        response.headers["Set-Cookie"] = self.codec.clear_cookie(https=self.https(context))
        return response

    async def password(self, request: Request) -> Response:
        """GET: the form. POST: change the password with the users service, revoke every session, start a new one."""
        context = self.context(request)
        if request.method == "POST":
            refused = self._cross_site(request, context)
            if refused is not None:
                return refused
        session = await self.session(request, context)
        if session is None:
            return self._challenge(request)
        request.state.context = context = replace(context, identity=session.identity)
        if request.method == "GET":
            return self._page(self.pages.password(user=session.user), 200)
        form = await self._form(request)
        if form is None or set(form) - {"current_password", "new_password"}:
            return self._error(request, 400, "Bad request", "The password form could not be read.")
        current, new = form.get("current_password", ""), form.get("new_password", "")
        if not current or not new:
            error = "Enter your current password and a new one."
            return self._page(self.pages.password(user=session.user, error=error), 400)
        keys = [address_key(context.caller.ip), user_key(session.user)]
        await self.throttle.check(keys)
        change = await self.directory.change_password(session.user, current, new, request_id=context.request_id)
        if change.outcome is Outcome.WRONG_PASSWORD:
            await self.throttle.failed(keys)
            error = "The current password is not right."
            return self._page(self.pages.password(user=session.user, error=error), 401)
        if change.outcome is Outcome.REFUSED:
            return self._page(self.pages.password(user=session.user, error=change.message), 400)
        revoked = await self.sessions.revoke_user(session.user)
        logger.info(
            "%s changed their password; %d sessions revoked (request %s)", session.user, revoked, context.request_id
        )
        response = self._page(self.pages.password_changed(user=session.user), 200)
        await self._start_session(response, session.identity, context)
        return response

    async def _start_session(self, response: Response, identity: Identity, context: TrustedContext) -> None:
        session = await self.sessions.create(identity, max_age=self.settings.session_max_age)
        response.headers["Set-Cookie"] = self.codec.set_cookie(session.id, https=self.https(context))

    async def revoke_sessions(self, request: Request) -> Response:
        """Revoke every session of a user (after disabling them in the users service, or changing their roles)."""
        context = self.context(request)
        refused = admin_refusal(request, self.admin_token)
        if refused is not None:
            return refused
        user = request.path_params["user"]
        if not USER_ID.match(user):
            return self._error(request, 400, "Bad request", "That is not a user id.")
        revoked = await self.sessions.revoke_user(user)
        logger.warning("an operator revoked %d sessions of %s (request %s)", revoked, user, context.request_id)
        return JSONResponse({"user": user, "revoked": revoked}, headers=NO_STORE)

    def _cross_site(self, request: Request, context: TrustedContext) -> Response | None:
        """Refuse a form posted from another site (login CSRF): its Origin or Sec-Fetch-Site gives it away.

        The site's own origins are the public URL's (TLS may end before the gateway) and the one this
        request reached (the scheme as the connection or a trusted proxy tells it, and its Host).
        """
        origin = request.headers.get("origin")
        own = {f"{context.caller.scheme}://{context.caller.host}".lower()}
        if self.settings.public_origin:
            own.add(self.settings.public_origin)
        if request.headers.get("sec-fetch-site", "same-origin") == "cross-site" or (
            origin is not None and origin.lower() not in own
        ):
            return self._error(request, 403, "Forbidden", "This form can only be sent from this site.")
        return None

    async def _form(self, request: Request) -> dict[str, str] | None:
        """The sign-in form's fields, or None for one that is not such a form (any such caller gets a 400)."""
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type != "application/x-www-form-urlencoded":
            return None
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_FORM_BYTES:
                raise BodyTooLarge(MAX_FORM_BYTES)
        try:
            fields = parse_qsl(body.decode("utf-8"), max_num_fields=MAX_FORM_FIELDS, strict_parsing=bool(body))
        except ValueError:  # too many fields, not UTF-8 (UnicodeDecodeError), or not `name=value&…`
            return None
        form = dict(fields)
        if len(form) != len(fields) or any(len(value) > MAX_FIELD_CHARS for value in form.values()):
            return None  # a field given twice, or longer than any user name or password
        return form

    def _page(self, html: str, status_code: int) -> Response:
        return HTMLResponse(html, status_code=status_code, headers=NO_STORE)

    def _error(self, request: Request, status_code: int, title: str, message: str, **extra: str) -> Response:
        """An error as a page for a browser, as JSON for an API caller."""
        context: TrustedContext | None = getattr(request.state, "context", None)
        request_id_value = context.request_id if context else request_id(None)
        headers = {**NO_STORE, REQUEST_ID_HEADER: request_id_value}
        if wants_html(request):
            html = self.pages.error(title=title, message=message, request_id=request_id_value)
            return HTMLResponse(html, status_code=status_code, headers=headers)
        payload = {"error": message, **extra, "request_id": request_id_value}
        return JSONResponse(payload, status_code=status_code, headers=headers)

    async def _upstream_failure(self, request: Request, exc: Exception) -> Response:
        assert isinstance(exc, UpstreamUnavailable)
        context: TrustedContext | None = getattr(request.state, "context", None)
        logger.warning("%s %s: %s (request %s)", request.method, request.url.path, exc, context and context.request_id)
        if exc.status_code == 504:
            title, message = "Gateway timeout", f"The {exc.upstream} service did not answer in time."
        else:
            title, message = "Service unavailable", f"The {exc.upstream} service is not answering right now."
        message += " Please try again in a moment."
        return self._error(request, exc.status_code, title, message, upstream=exc.upstream)

    async def _too_large(self, request: Request, exc: Exception) -> Response:
        assert isinstance(exc, BodyTooLarge)
        response = self._error(request, 413, "Request too large", f"The request body is larger than {exc.limit} bytes.")
        response.headers["Connection"] = "close"
        return response

    async def _too_many_attempts(self, request: Request, exc: Exception) -> Response:
        assert isinstance(exc, TooManyAttempts)
        wait = f"{exc.retry_after} seconds" if exc.retry_after < 120 else f"{-(-exc.retry_after // 60)} minutes"
        message = f"Too many failed attempts. Please wait {wait} and try again."
        response = self._error(request, 429, "Too many attempts", message)
        response.headers["Retry-After"] = str(exc.retry_after)
        return response

    async def _store_unavailable(self, request: Request, exc: Exception) -> Response:
        # The store logs the outage once (gateway.stores.RedisGuard): not a line per request.
        message = "Signing in and signed-in pages are unavailable right now. Please try again in a moment."
        return self._error(request, 503, "Service unavailable", message)

    async def _unauthorized(self, request: Request, exc: Exception) -> Response:
        assert isinstance(exc, AuthenticationError)
        response = self._error(request, 401, "Not signed in", exc.reason)
        response.headers["WWW-Authenticate"] = 'Bearer realm="oberon", error="invalid_token"'
        return response

    async def _server_error(self, request: Request, exc: Exception) -> Response:
        logger.error("unhandled error on %s", request.url.path, exc_info=exc)
        return self._error(request, 500, "Something went wrong", "Please try again in a moment.")
