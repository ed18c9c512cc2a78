"""The BFF toolkit: what every team BFF shares — budgeted backend calls, view-model responses, JSON errors.

A BFF author writes per-UI endpoints that aggregate backends and return exactly the view model a
component renders. `create_bff` gives the app its declared upstreams (checked at start), a health
endpoint with each upstream's breakers, bulkhead and cache, and one place where backend failures become
JSON responses: a 404 from a backend is a 404, any other `UpstreamError` a 502 that names the backend.

That 502 carries the dependency-failed marker, `X-Oberon-Dependency-Failed: <backend>` (`dependency_failed`):
the BFF itself is well, one of *its* dependencies failed. The renderer still falls back, but does not count
such an answer against the BFF's circuit breakers, so a failing backend behind one endpoint of a BFF never
cuts off the BFF's other endpoints. An endpoint that answers an error of its own for the same reason
should answer with `dependency_failed(...)` too.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from oberon import tracing
from oberon.client.breaker import BreakerState
from oberon.client.upstream import BUDGET_HEADER, Upstreams, endpoint_template
from oberon.exceptions import ConfigError, InvalidResponse, UpstreamError, UpstreamStatusError

# The marker of an answer that failed because a dependency of the BFF's failed.
from oberon.headers import DEPENDENCY_FAILED_HEADER as DEPENDENCY_FAILED_HEADER

# The trusted context the gateway sets, re-exported for BFFs that read the signed-in user.
from oberon.headers import USER_HEADER as USER_HEADER
from oberon.headers import USER_ID as USER_ID

logger = logging.getLogger("oberon.bff")

BACKEND_TIMEOUT = 1.0
# Time the BFF keeps for its own work when its caller passed down a budget.
BUDGET_MARGIN = 0.05
REQUEST_ID_HEADER = "X-Oberon-Request-Id"
NO_STORE = "no-store"
PRIVATE = "private, no-store"

T = TypeVar("T")


async def fetch(
    upstreams: Upstreams, name: str, path: str, request: Request, *, view: Callable[[dict[str, Any]], T]
) -> T:
    """GET a JSON object from backend `name` and reduce it with `view`; a body of the wrong shape is InvalidResponse."""
    request_id = request.headers.get(REQUEST_ID_HEADER)
    headers = {REQUEST_ID_HEADER: request_id} if request_id else {}
    with tracing.child(f"GET {name} {endpoint_template(path)}", kind=tracing.CLIENT) as span:
        headers[tracing.TRACEPARENT] = span.traceparent  # the backend's span is a child of this call's
        body = await upstreams[name].get_json(path, timeout=budget(request), headers=headers)
        span.set_outcome("ok")
    if not isinstance(body, dict):
        raise InvalidResponse(name, f"GET {path} answered {type(body).__name__}, not a JSON object")
    try:
        return view(body)
    except (KeyError, IndexError, TypeError, ValueError) as exc:
        # Blame the backend that sent the body, not the BFF: the caller gets a 502 naming it.
        raise InvalidResponse(name, f"GET {path} answered an unexpected shape: {exc!r}") from None


def budget(request: Request) -> float:
    """Seconds a backend call may take: the BFF's own limit, or less if its caller will not wait that long."""
    passed = request.headers.get(BUDGET_HEADER, "")
    if not passed.isdigit():
        return BACKEND_TIMEOUT
    return max(0.0, min(BACKEND_TIMEOUT, int(passed) / 1000 - BUDGET_MARGIN))


def view_model(content: Any, status_code: int = 200, *, cache_control: str = NO_STORE) -> JSONResponse:
    """A JSON view model stating its own cacheability (no cache keeps it unless `cache_control` says so)."""
    if status_code >= 400:
        cache_control = NO_STORE
    return JSONResponse(content, status_code=status_code, headers={"Cache-Control": cache_control})


def dependency_failed(dependency: str, status_code: int = 502, *, error: str | None = None) -> JSONResponse:
    """An error answer saying that `dependency` (a backend of this BFF's) failed, not the BFF: 502, 503 or 504."""
    if status_code not in (502, 503, 504):
        raise ValueError(f"a dependency's failure is answered 502, 503 or 504, not {status_code}")
    response = view_model({"error": error or f"upstream {dependency} failed"}, status_code)
    response.headers[DEPENDENCY_FAILED_HEADER] = dependency
    return response


def create_bff(routes: Sequence[BaseRoute], *, upstreams: Upstreams, requires: Iterable[str] = ()) -> Starlette:
    """A BFF app over `routes`: checks its declared upstreams, adds `/_oberon/health`, answers errors as JSON."""
    missing = sorted(set(requires) - set(upstreams))
    if missing:
        configured = ", ".join(sorted(upstreams)) or "none"
        raise ConfigError(f"this BFF needs upstream(s) {', '.join(missing)}; configured: {configured}")

    async def health(request: Request) -> Response:
        states = {
            name: {
                "breaker": upstream.breaker.state.value,
                "endpoints": {template: state.value for template, state in upstream.endpoint_breakers.states().items()},
                "bulkhead": {"in_flight": upstream.bulkhead.in_flight, "max": upstream.bulkhead.max_in_flight},
                "cache": {"entries": len(upstream.cache), **vars(upstream.cache.stats)},
            }
            for name, upstream in upstreams.items()
        }
        healthy = all(
            upstream.breaker.state is BreakerState.CLOSED
            and all(state is BreakerState.CLOSED for state in upstream.endpoint_breakers.states().values())
            for upstream in upstreams.values()
        )
        return view_model({"status": "ok" if healthy else "degraded", "upstreams": states})

    return Starlette(
        routes=[*routes, Route("/_oberon/health", health, methods=["GET"])],
        exception_handlers={UpstreamError: _upstream_error, HTTPException: _http_error},
    )


async def _upstream_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, UpstreamError)
    request_id = request.headers.get(REQUEST_ID_HEADER, "-")
    if isinstance(exc, UpstreamStatusError) and exc.status_code == 404:
        return view_model({"error": f"not found at {exc.upstream}"}, 404)
    logger.warning("%s %s (request %s): %s", request.method, request.url.path, request_id, exc)
    return dependency_failed(exc.upstream)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    response = view_model({"error": exc.detail}, exc.status_code)
    response.headers.update(exc.headers or {})
    return response
