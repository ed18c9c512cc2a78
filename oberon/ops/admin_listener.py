"""The internal admin listener of a service process, and the public entrance's refusal of its paths.

Every service process listens twice: on its public port (pages, BFF calls, assets) and on an
internal admin port (`--admin-port`, loopback by default) that serves `/metrics` for the whole
process, the detailed `/_oberon/health`, and whatever admin routes its services contribute (the
renderer's `/_oberon/registry` and `/_oberon/degradation`, the gateway's probes of its upstreams).
`admin_app` builds that listener's app from the services' route lists.

`HideInternal` wraps a public app: any spelling of an internal path (`/metrics/`, `//metrics`,
`/x/../metrics`, `/%6detrics`, `/%2Fmetrics`, …) answers 404 before anything routes or forwards
it, so no proxy on the way can normalise it into the real one. What stays public is a minimal
`/_oberon/health` for load balancers: `{"status": "ok"}`, or 503 `{"status": "unavailable"}`.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Awaitable, Callable, Sequence
from urllib.parse import unquote

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from oberon.ops.admin import DEGRADATION_PATH
from oberon.ops.metrics import CONTENT_TYPE, Metrics

METRICS_PATH = "/metrics"
HEALTH_PATH = "/_oberon/health"
REGISTRY_PATH = "/_oberon/registry"
# Served on the admin listener only; the public entrance answers 404 for them and anything under them.
INTERNAL_PATHS = (METRICS_PATH, REGISTRY_PATH, DEGRADATION_PATH)
NO_STORE = {"Cache-Control": "no-store"}
_MAX_DECODES = 4  # `%25` nested deeper than this is refused as internal rather than decoded forever
_INTERNAL_PREFIXES = tuple(internal + "/" for internal in INTERNAL_PATHS)
# A path with nothing to decode, resolve or collapse (no `%`, `\\`, `.`, `//`): only its trailing slash goes.
_PLAIN = re.compile(r"[A-Za-z0-9_~-]*(?:/[A-Za-z0-9_~-]+)*/?")

Ready = Callable[[], Awaitable[bool]]


def canonical_path(path: str) -> str | None:
    """`path` as the most lenient server would read it: decoded, `\\` as `/`, single slashes, dot segments
    resolved, no trailing slash, lower case; None when it is still encoded after a few decodes."""
    if _PLAIN.fullmatch(path):  # most paths: what `normpath` would make of them, without it
        return ("/" + path.strip("/")).lower()
    for _ in range(_MAX_DECODES):
        decoded = unquote(path)
        if decoded == path:
            break
        path = decoded
    else:
        return None
    path = path.replace("\\", "/")
    normal = posixpath.normpath("/" + path.lstrip("/"))  # also collapses `//` (normpath keeps a leading pair)
    return normal.lower()


def is_internal(path: str) -> bool:
    """Whether `path`, however spelled, names an internal path or one under it (or hides its name in layers
    of encoding: nothing public is spelled so)."""
    canonical = canonical_path(path)
    if canonical is None:
        return True
    return canonical in INTERNAL_PATHS or canonical.startswith(_INTERNAL_PREFIXES)


class HideInternal:
    """A public app that answers 404 for every spelling of the internal paths (they live on the admin listener)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path: str = scope["path"]
            raw = (scope.get("raw_path") or b"").decode("latin-1").partition("?")[0]
            if is_internal(path) or (raw != path and is_internal(raw)):
                response = JSONResponse({"error": "not found"}, status_code=404, headers=NO_STORE)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def public_health(ready: Ready | None = None) -> Route:
    """`GET /_oberon/health` for load balancers: ok or not, naming nothing behind the service."""

    async def health(request: Request) -> Response:
        if ready is None or await ready():
            return JSONResponse({"status": "ok"}, headers=NO_STORE)
        return JSONResponse({"status": "unavailable"}, status_code=503, headers=NO_STORE)

    return Route(HEALTH_PATH, health, methods=["GET"])


def admin_app(*, service: str, metrics: Metrics, routes: Sequence[BaseRoute] = ()) -> Starlette:
    """The admin listener's app: the services' admin `routes` (the first of a path wins: in one process the
    entrance's health speaks for it), a plain health when none has one, and `/metrics` for the whole process."""

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok", "service": service}, headers=NO_STORE)

    async def exposition(request: Request) -> Response:
        # A plain route: a mounted prometheus app would redirect /metrics to /metrics/.
        return Response(metrics.exposition(), media_type=CONTENT_TYPE, headers=NO_STORE)

    return Starlette(
        routes=[
            *routes,
            Route(HEALTH_PATH, health, methods=["GET"]),
            Route(METRICS_PATH, exposition, methods=["GET", "HEAD"]),
        ]
    )
