"""The rendering service as a Starlette app: HTTP in, `PageRenderer` in the middle, HTTP out.

This module is the only one of the render path that knows Starlette; errors become
responses here, in one place. `starlette()` is the public app (pages, previews, islands, a
minimal health); `admin_routes()` are what the service adds to its process's internal admin
listener: the detailed health, `/_oberon/registry` and `/_oberon/degradation`.
"""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any, Protocol

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from oberon.exceptions import ComponentNotFound, RenderError
from oberon.headers import (
    BUCKET,
    BUCKET_HEADER,
    COHORT_HEADER,
    COHORT_PATH,
    DEFAULT_DEVICE,
    DEVICE_HEADER,
    DEVICES,
    LOCALE,
    LOCALE_HEADER,
    REQUEST_ID,
    REQUEST_ID_HEADER,
    ROLES_HEADER,
    USER_HEADER,
    USER_ID,
    first_values,
    new_request_id,
    parse_bucket,
    parse_roles,
)
from oberon.ops.admin import degradation_routes
from oberon.ops.admin_listener import HEALTH_PATH, REGISTRY_PATH, public_health
from oberon.ops.degradation import DegradationController
from oberon.ops.observability import RequestInfo
from oberon.pipeline import server_timing
from oberon.pipeline.assets import ASSET_PATH
from oberon.pipeline.islands import ISLAND_PREFIX
from oberon.pipeline.page import PageRenderer, Served
from oberon.pipeline.page_types import Page, RequestContext
from oberon.pipeline.query import InvalidQuery, QueryTooLong, read_query
from oberon.pipeline.registry import Component, Registry
from oberon.pipeline.seo import robots_txt, sitemap_paths, sitemap_xml
from oberon.pipeline.streaming import PageStream
from oberon.web.asset_server import AssetServer
from oberon.web.page_response import PageResponse

logger = logging.getLogger("oberon.app")  # the name operators' log filters know

MODE_HEADER = "X-Oberon-Mode"
PAGE_CACHE_HEADER = "X-Oberon-Page-Cache"  # `hit`: the page came from the renderer's page cache
SURROGATE_KEY_HEADER = "Surrogate-Key"
SITEMAP_CACHE = "public, max-age=3600"
COHORT_CACHE = "public, max-age=1"  # the CDN asks again each second: a ramp reaches it that soon
HTML = "text/html; charset=utf-8"
PAGE_ROUTE = "/{path:path}"  # every path no other route takes is a page's: `page` matches it to an app's route
_PAGE_METHODS = frozenset({"GET", "HEAD"})
_HTML = HTML.encode("latin-1")
_MODE, _COHORT, _SURROGATE_KEY, _PAGE_CACHE, _SERVER_TIMING = (
    name.lower().encode("latin-1")
    for name in (MODE_HEADER, COHORT_HEADER, SURROGATE_KEY_HEADER, PAGE_CACHE_HEADER, server_timing.HEADER)
)
_VARY_BY_DEVICE = f"Accept-Language, {DEVICE_HEADER}".encode("latin-1")


# The request headers a page's context is read from, as ASGI names them (lower case).
_ID, _LOCALE, _USER, _DEVICE, _ROLES = (
    name.lower().encode("latin-1")
    for name in (REQUEST_ID_HEADER, LOCALE_HEADER, USER_HEADER, DEVICE_HEADER, ROLES_HEADER)
)
_BUCKET = BUCKET_HEADER.lower().encode("latin-1")


def request_context(request: Request, headers: Mapping[bytes, bytes] | None = None) -> RequestContext:
    """The request id, locale and user set by the gateway, or safe defaults (anonymous) when absent or malformed.

    `headers`: the request's `first_values`, when the caller has them already."""
    found = first_values(request.scope["headers"]) if headers is None else headers  # the first of repeated ones
    request_id = found.get(_ID, b"").decode("latin-1")
    if not REQUEST_ID.match(request_id):
        request_id = new_request_id()
    locale = found.get(_LOCALE, b"").decode("latin-1") or "en"
    user = found.get(_USER, b"").decode("latin-1")
    signed_in = USER_ID.match(user) is not None
    device = found.get(_DEVICE, b"").decode("latin-1")
    return RequestContext(
        request_id=request_id,
        locale=locale if LOCALE.match(locale) else "en",
        device=device if device in DEVICES else DEFAULT_DEVICE,
        user=user if signed_in else None,
        roles=parse_roles(found.get(_ROLES, b"").decode("latin-1")) if signed_in else (),
    )


class DevTools(Protocol):
    """What development mode adds (`oberon.dev.tools.DevelopmentTools`); the runtime passes it in."""

    def routes(self, renderer: PageRenderer) -> list[BaseRoute]: ...

    def wants_debug(self, query: Mapping[str, str]) -> bool: ...

    def annotate(self, page: Page, registry: Registry) -> str: ...


class RendererApp:
    """HTTP endpoints of the rendering service around one `PageRenderer`."""

    def __init__(
        self,
        *,
        renderer: PageRenderer,
        asset_server: AssetServer | None = None,
        degradation: DegradationController | None = None,
        admin_token: str | None = None,
        dev: DevTools | None = None,
        name_loads: bool = False,
        health_details: Callable[[], Mapping[str, Any]] | None = None,
    ) -> None:
        self.renderer = renderer
        self.asset_server = asset_server
        self.degradation = degradation
        self.admin_token = admin_token
        self.dev = dev  # development mode: the gallery and `?oberon-debug=1`, never in production
        # Server-Timing names each load's BFF and path only when asked (`--dev`): in public it would map the backend.
        self.name_loads = name_loads
        # More for the detailed health (the registry service this renderer follows: revision, last sync).
        self.health_details = health_details

    @property
    def registry(self) -> Registry:
        return self.renderer.registry

    def app(self) -> ASGIApp:
        """The public app (`starlette()`) with a page's request sent straight to `page` (`PageDispatch`)."""
        if self.dev is not None:  # its routes may claim any path
            return self.starlette()
        return PageDispatch(self.starlette(), page=self.page, server_error=self.server_error)

    def starlette(self) -> Starlette:
        """The public app: pages and what browsers and the CDN ask for, nothing about the internals."""
        routes: list[BaseRoute] = [
            public_health(),
            Route("/robots.txt", self.robots, methods=["GET", "HEAD"]),
            Route("/sitemap.xml", self.sitemap, methods=["GET", "HEAD"]),
            Route("/_components/{name}", self.preview, methods=["GET", "HEAD"]),
            Route(ISLAND_PREFIX + "/{name}", self.island, methods=["GET", "HEAD"]),
            Route(COHORT_PATH + "{bucket}", self.cohort, methods=["GET", "HEAD"]),
            Route(PAGE_ROUTE, self.page, methods=["GET", "HEAD"]),
        ]
        if self.dev is not None:
            routes[:0] = self.dev.routes(self.renderer)
        if self.asset_server is not None:
            # Same-origin assets, for a site without an asset origin (the page references /_oberon/assets/…).
            routes.insert(0, Route(ASSET_PATH + "{file:path}", self.asset_server))
        return Starlette(
            routes=routes,
            exception_handlers={Exception: self.server_error},
        )

    def admin_routes(self) -> list[BaseRoute]:
        """For the admin listener: the detailed health, the registry, and the degradation switch."""
        routes: list[BaseRoute] = [
            Route(HEALTH_PATH, self.health, methods=["GET"]),
            Route(REGISTRY_PATH, self.registry_json, methods=["GET"]),
        ]
        if self.degradation is not None:
            routes += degradation_routes(self.degradation, admin_token=self.admin_token)
        return routes

    def _served(self, request: Request, headers: Mapping[bytes, bytes] | None = None) -> Served:
        """What renders this request, captured once: the cohort of the bucket the gateway says (`X-Oberon-Bucket`,
        trusted: the gateway strips every incoming `X-Oberon-*`), the stable one without.

        `headers`: the request's `first_values`, when the caller has them already."""
        # Read off the scope's headers as `request.headers.get` would (the first one), without making Starlette's
        # `Headers` for this one look (issue 19).
        found = first_values(request.scope["headers"]) if headers is None else headers
        bucket = found.get(_BUCKET)
        return self.renderer.served_for(parse_bucket(bucket.decode("latin-1") if bucket is not None else None))

    async def page(self, request: Request) -> Response:
        headers = first_values(request.scope["headers"])  # read once, for the context and the cohort
        context = request_context(request, headers)
        served = self._served(request, headers)  # the route, the app and the whole page from one registry
        match = served.registry.router.match(url_path(request))
        if match is None:
            page = self.renderer.error_page(404, "Page not found", "There is no page at this address.", context)
            return self._response(page, context, cohort=served.cohort)
        app = served.app(match.route.app)
        RequestInfo.current().route = match.route.template  # the app's route, not the catch-all one
        try:
            query = read_query(app.manifest.query, request.scope.get("query_string", b""))
        except QueryTooLong as exc:
            page = self.renderer.error_page(414, "Address too long", f"{str(exc).capitalize()}.", context)
            return self._response(page, context, cohort=served.cohort)
        except InvalidQuery as exc:
            page = self.renderer.error_page(400, "Bad request", f"{str(exc).capitalize()}.", context)
            return self._response(page, context, cohort=served.cohort)
        params = {**match.params, **query}
        return await self._render(app, context, served=served, params=params, debug=self._debug(request))

    async def preview(self, request: Request) -> Response:
        """One component rendered alone: `?version=~=1.0`, props by name, other query values as route params."""
        context = request_context(request)
        found = self._component_request(request, context, self._served(request))
        if isinstance(found, Response):
            return found
        component, props, params, served = found
        debug = self._debug(request)
        return await self._render(component, context, served=served, params=params, props=props, debug=debug)

    async def island(self, request: Request) -> Response:
        """A private component for the CDN's `<esi:include>` or the browser's fetch: a fragment for this visitor,
        never shared, never indexed (a `<noscript>` link may lead to it).

        Its URL pins a version: the visitor's cohort's when it is that one, else any version this renderer may still
        render an island of (another cohort's, or one that left every channel less than 7 days ago)."""
        context = request_context(request)
        found = self._component_request(request, context, self._served(request), island=True)
        if isinstance(found, Response):
            return found
        component, props, params, served = found
        page = await self.renderer.render_island(component, params=params, props=props, context=context, served=served)
        response = self._response(page, context, cohort=served.cohort)
        response.headers["X-Robots-Tag"] = "noindex"
        return response

    async def cohort(self, request: Request) -> Response:
        """`GET /_oberon/cohort/NN`: the canaries bucket NN sees (`X-Oberon-Cohort`), which the CDN keys pages by.

        Only a renderer following the registry service has cohorts; without one this is any unknown path's 404."""
        cohorts = self.renderer.cohorts
        if cohorts is None:
            return await self.page(request)
        bucket = request.path_params["bucket"]
        if not BUCKET.match(bucket):
            context = request_context(request)
            message = "A bucket is two digits, 00 to 99."
            return self._response(self.renderer.error_page(400, "Bad request", message, context), context)
        headers = {COHORT_HEADER: cohorts.of(int(bucket)), "Cache-Control": COHORT_CACHE}
        return Response(status_code=204, headers=headers)

    def _component_request(
        self, request: Request, context: RequestContext, served: Served, *, island: bool = False
    ) -> tuple[Component, dict[str, Any], dict[str, Any], Served] | Response:
        """The component, its props and route params named by a query string, and what renders it; or the error page
        saying why not."""
        query = dict(request.query_params)
        cohort = served.cohort
        try:
            specifier = SpecifierSet(query.pop("version", ""))
            wanted = request.path_params["name"]
            if island:
                component, served = served.island(wanted, specifier)
            else:
                component = served.registry.get(wanted, specifier)
        except InvalidSpecifier:
            page = self.renderer.error_page(400, "Bad request", "Invalid version.", context)
            return self._response(page, context, cohort=cohort)
        except ComponentNotFound as exc:
            page = self.renderer.error_page(404, "Component not found", str(exc), context)
            return self._response(page, context, cohort=cohort)
        props: dict[str, Any] = {}
        for name, spec in component.manifest.props.items():
            if name in query:
                try:
                    props[name] = spec.coerce(query.pop(name))
                except ValueError as exc:
                    message = f"Prop {name!r}: {exc}"
                    page = self.renderer.error_page(400, "Bad request", message, context)
                    return self._response(page, context, cohort=cohort)
        missing = [name for name, spec in component.manifest.props.items() if spec.required and name not in props]
        if missing:
            message = f"Missing required prop(s): {', '.join(missing)}."
            page = self.renderer.error_page(400, "Bad request", message, context)
            return self._response(page, context, cohort=cohort)
        declared = component.manifest.query
        if declared:  # an app's preview reads its declared query parameters as its pages do
            try:
                values = read_query(declared, request.scope.get("query_string", b""))
            except (InvalidQuery, QueryTooLong) as exc:
                page = self.renderer.error_page(400, "Bad request", f"{str(exc).capitalize()}.", context)
                return self._response(page, context, cohort=cohort)
            return component, props, {**{k: v for k, v in query.items() if k not in declared}, **values}, served
        return component, props, query, served

    async def health(self, request: Request) -> Response:
        return JSONResponse(
            {
                "status": "ok",
                "service": "renderer",
                "components": len(self.registry),
                "upstreams": sorted(self.renderer.upstreams),
                **(self.health_details() if self.health_details is not None else {}),
            },
            headers={"Cache-Control": "no-store"},
        )

    async def registry_json(self, request: Request) -> Response:
        return JSONResponse([describe(component) for component in self.registry], headers={"Cache-Control": "no-store"})

    async def robots(self, request: Request) -> Response:
        return PlainTextResponse(robots_txt(self.renderer.site), headers={"Cache-Control": SITEMAP_CACHE})

    async def sitemap(self, request: Request) -> Response:
        """Every public page: the apps' routes, those with params listed by their app's sitemap BFF."""
        paths = await sitemap_paths(self.registry, self.renderer.upstreams)
        return Response(
            sitemap_xml(self.renderer.site, paths),
            media_type="application/xml",
            headers={"Cache-Control": SITEMAP_CACHE},
        )

    async def server_error(self, request: Request, exc: Exception) -> Response:
        context = request_context(request)
        logger.exception("unhandled error on %s (request %s)", request.url.path, context.request_id, exc_info=exc)
        page = self.renderer.error_page(500, "Something went wrong", "Please try again in a moment.", context)
        return self._response(page, context)

    async def _render(
        self,
        root: Component,
        context: RequestContext,
        *,
        served: Served,
        params: Mapping[str, Any],
        props: dict[str, Any] | None = None,
        debug: bool = False,
    ) -> Response:
        try:
            page = await self.renderer.render(
                root, params=params, context=context, props=props, stream=not debug, served=served
            )
        except RenderError as exc:
            logger.warning("request %s: %s", context.request_id, exc)
            if exc.status_code == 404:
                page = self.renderer.error_page(404, "Page not found", "There is no page at this address.", context)
            else:
                message = "This page is temporarily unavailable. Please try again in a moment."
                page = self.renderer.error_page(exc.status_code, "Temporarily unavailable", message, context)
        return self._response(page, context, debug=debug, registry=served.registry, cohort=served.cohort)

    def _debug(self, request: Request) -> bool:
        return self.dev is not None and self.dev.wants_debug(request.query_params)

    def _response(
        self,
        page: Page,
        context: RequestContext,
        *,
        debug: bool = False,
        registry: Registry | None = None,
        cohort: str | None = None,
    ) -> Response:
        """`page` as a response; `cohort`: the canary cohort it was rendered for, said for the CDN to check it by."""
        # The headers as the server writes them (names lower-cased, bytes), made here in one step rather than a dict
        # Starlette's `Response` then lower-cases and encodes again: a page's answer has eight or so.
        headers = [
            (b"cache-control", page.cache_control.encode("latin-1")),
            (_ID, context.request_id.encode("latin-1")),
            (_MODE, page.mode.encode("latin-1")),  # a `StrEnum`, its value's text: no `.value` descriptor call
        ]
        if cohort is not None:
            headers.append((_COHORT, cohort.encode("latin-1")))
        if page.preload:
            headers.append((b"link", page.preload.encode("latin-1")))
        if page.surrogate_keys:
            headers.append((_SURROGATE_KEY, " ".join(page.surrogate_keys).encode("latin-1")))
            # The page's language follows the gateway's reading of Accept-Language (the CDN normalises it); its
            # device class, the gateway's (and the CDN's) reading of User-Agent, when a data source read it.
            headers.append((b"vary", _VARY_BY_DEVICE if page.by_device else b"Accept-Language"))
        if page.esi:
            headers.append((b"surrogate-control", b'content="ESI/1.0"'))
        if page.from_cache:
            headers.append((_PAGE_CACHE, b"hit"))
        elif page.timing.total:
            value = server_timing.header(page.timing, named=self.name_loads)
            headers.append((_SERVER_TIMING, value.encode("latin-1")))
        RequestInfo.current().fallbacks = tuple(page.fallbacks)
        if debug and page.fragments and self.dev is not None:
            debug_headers = {name.decode("latin-1"): value.decode("latin-1") for name, value in headers}
            debug_headers["cache-control"] = "no-store"
            annotated = self.dev.annotate(page, registry or self.registry)
            return HTMLResponse(annotated, status_code=page.status_code, headers=debug_headers)
        if page.rest is not None:
            chunks = _chunks(page.html, page.rest)
            streamed = PageResponse(chunks, status_code=page.status_code, media_type=HTML)
            streamed.raw_headers[:0] = headers  # before its content-type, as `headers=` would put them
            return streamed
        return _PageAnswer(page.html.encode("utf-8"), page.status_code, headers)


class _PageAnswer(HTMLResponse):
    """An `HTMLResponse` of an encoded page and its encoded headers, to which it adds its length and type."""

    def __init__(self, body: bytes, status_code: int, headers: list[tuple[bytes, bytes]]) -> None:
        self.status_code = status_code
        self.background = None
        self.body = body
        # As `init_headers`: a 1xx, 204 or 304 has no length (an error page never is one, but the rule is kept).
        if status_code >= 200 and status_code not in (204, 304):
            headers.append((b"content-length", b"%d" % len(body)))
        headers.append((b"content-type", _HTML))
        self.raw_headers = headers


class PageDispatch:
    """The renderer's public app, a page's request (a GET or HEAD of a path no other route takes) sent to `page`
    without Starlette's exception middlewares and its walk of every route before the catch-all.

    A page gets what Starlette would give it: the scope names the catch-all route (`route`, `endpoint`,
    `path_params`, read by the observability layer), an `HTTPException` is answered as Starlette's
    `ExceptionMiddleware` answers one, and any other exception as its `ServerErrorMiddleware` does: `server_error`
    told, its page sent unless the answer had started, the exception raised again for the server. Every other
    request (another method, path or route, a mounted app, a lifespan) goes to the Starlette app. Issue 19.
    """

    def __init__(
        self,
        app: Starlette,
        *,
        page: Callable[[Request], Awaitable[Response]],
        server_error: Callable[[Request, Exception], Awaitable[Response]],
    ) -> None:
        self.app = app
        self.page = page
        self.server_error = server_error
        *others, self.route = app.router.routes
        assert isinstance(self.route, Route) and self.route.path == PAGE_ROUTE, "the catch-all route comes last"
        assert self.route.endpoint == page and self.route.methods == {"GET", "HEAD"}, "the page's, GET and HEAD"
        self.endpoint = self.route.endpoint  # the very object Starlette's router puts in the scope
        assert not app.debug and not app.user_middleware, "nothing between Starlette's two exception middlewares"
        assert set(app.exception_handlers) <= {Exception, 500}, "HTTPException answered by Starlette's default"
        # The paths another route takes outside `/_` (robots.txt, sitemap.xml); an exact path's regex also takes it
        # with one line break after it, a path Starlette is left to route (as every one with a line break).
        owned: set[str] = set()
        for route in others:
            assert isinstance(route, Route), "every route is a Route"
            if not route.path.startswith("/_"):
                assert not route.param_convertors, "a route outside /_ takes no parameters"
                owned.add(route.path)
        self.owned = frozenset(owned)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in _PAGE_METHODS or scope.get("root_path"):
            await self.app(scope, receive, send)  # a mounted app's routes read the path within the mount
            return
        path: str = scope["path"]
        # The catch-all's regex `^/(.*)$` takes no line break (`.`) but one at the end: Starlette routes those.
        if path[:1] != "/" or path[:2] == "/_" or "\n" in path or path in self.owned:
            await self.app(scope, receive, send)
            return
        scope["app"] = self.app
        if "router" not in scope:
            scope["router"] = self.app.router
        scope["route"] = self.route
        scope["endpoint"] = self.endpoint
        given = scope.get("path_params")
        scope["path_params"] = {**given, "path": path[1:]} if given else {"path": path[1:]}
        started = False

        def sent(message: Message) -> Awaitable[None]:
            """`send`, noting the answer's start: a plain function handing on `send`'s awaitable (issue 19)."""
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            return send(message)

        try:
            try:
                response = await self.page(Request(scope, receive, send))
            except HTTPException as exc:  # nothing of a page raises one; answered as Starlette would all the same
                response = _http_exception(exc)
            await response(scope, receive, sent)
        except Exception as exc:
            answer = await self.server_error(Request(scope), exc)
            if not started:
                await answer(scope, receive, send)
            raise


def _http_exception(exc: HTTPException) -> Response:
    """As Starlette's `ExceptionMiddleware.http_exception` answers an `HTTPException`."""
    if exc.status_code in {204, 304}:
        return Response(status_code=exc.status_code, headers=exc.headers)
    return PlainTextResponse(exc.detail, status_code=exc.status_code, headers=exc.headers)


# What makes Starlette's `request.url.path` differ from the scope's path: its URL escapes `?`, `#` and `\` in the
# path, and `urlsplit` drops tabs and line breaks from it and reads a leading `//` as a host when no host precedes.
_NOT_PLAIN = re.compile(r"[?#\\\t\r\n]")
_PLAIN_HOST = re.compile(r"[A-Za-z0-9._-]+")  # a server address that puts nothing but a host before the path
_SCHEMES = frozenset({"http", "https"})


def url_path(request: Request) -> str:
    """`request.url.path`, without building and splitting the URL when the scope's path is bound to equal it.

    That is when the path starts with one `/` and holds none of `?`, `#`, `\\`, tab, CR or LF; the query is ASCII
    (Starlette decodes it as UTF-8, which could fail); the scheme is http(s); and the server's address is a plain
    host or absent. Then whatever the Host header says (Starlette takes it only when it is a valid host, which
    holds no `/`, `?`, `#` or control character) the URL's path is the scope's. Anything else asks `request.url`.
    """
    scope = request.scope
    path: str = scope["path"]
    query = scope.get("query_string", b"")
    server = scope.get("server")
    if (
        path[:1] == "/"
        and path[:2] != "//"
        and _NOT_PLAIN.search(path) is None
        and isinstance(query, bytes)
        and query.isascii()
        and scope.get("scheme", "http") in _SCHEMES
        and (server is None or _plain_server(server))
    ):
        return path
    return request.url.path


def _plain_server(server: Any) -> bool:
    """A `(host, port)` of a name or IPv4 address (an IPv6 one Starlette brackets and `urlsplit` checks) and a port
    number or none."""
    return (
        isinstance(server, (tuple, list))
        and len(server) == 2
        and isinstance(server[0], str)
        and _PLAIN_HOST.fullmatch(server[0]) is not None
        and (server[1] is None or isinstance(server[1], int))
    )


async def _chunks(first: str, rest: PageStream) -> AsyncIterator[bytes]:
    try:
        yield first.encode("utf-8")
        async for chunk in rest:
            yield chunk.encode("utf-8")
    finally:
        await rest.aclose()  # also when the visitor left before the end


def describe(component: Component) -> dict[str, Any]:
    """A component's manifest as JSON for `/_oberon/registry`."""
    manifest = component.manifest
    return {
        "name": manifest.name,
        "version": str(manifest.version),
        "owner": manifest.owner,
        "kind": manifest.kind.value,
        "description": manifest.description,
        "cache": manifest.cache.value,
        "critical": manifest.critical,
        "timeout_ms": manifest.timeout_ms,
        "props": {
            name: {"type": spec.type, "default": spec.default, "required": spec.required}
            for name, spec in manifest.props.items()
        },
        "data": {
            key: {"bff": source.bff, "path": source.path, "context": list(source.context)}
            for key, source in manifest.data.items()
        },
        "query": {
            name: {"type": spec.type, "default": spec.default, "invalid": spec.invalid}
            for name, spec in manifest.query.items()
        },
        "subscribes": list(manifest.keys),
        "publishes": {action: dict(payload) for action, payload in manifest.publishes.items()},
        "consumes": {action: list(fields) for action, fields in manifest.consumes.items()},
        "routes": list(manifest.routes),
        "slots": {
            slot: [{"component": entry.component, "version": str(entry.specifier)} for entry in entries]
            for slot, entries in manifest.slots.items()
        },
        "fixtures": {name: fixture.description for name, fixture in manifest.fixtures.items()},
    }
