"""The BFF toolkit: what every team BFF shares — budgeted backend calls, view-model responses, JSON errors.

Backend failures become responses in one place (the exception handlers of `create_bff`): a 404 from a
backend is a 404, any other `UpstreamError` a 502 that names the backend.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute

from oberon import InvalidResponse, UpstreamError, Upstreams, UpstreamStatusError

logger = logging.getLogger("bff")

BACKEND_TIMEOUT = 1.0
REQUEST_ID_HEADER = "X-Oberon-Request-Id"
# Caching of view models comes later; until then nothing between the BFF and the browser may keep them.
NO_STORE = {"Cache-Control": "no-store"}

T = TypeVar("T")


async def fetch(
    upstreams: Upstreams, name: str, path: str, request: Request, *, view: Callable[[dict[str, Any]], T]
) -> T:
    """GET a JSON object from backend `name` and reduce it with `view`; a body of the wrong shape is InvalidResponse."""
    request_id = request.headers.get(REQUEST_ID_HEADER)
    headers = {REQUEST_ID_HEADER: request_id} if request_id else {}
    body = await upstreams[name].get_json(path, timeout=BACKEND_TIMEOUT, headers=headers)
    if not isinstance(body, dict):
        raise InvalidResponse(name, f"GET {path} answered {type(body).__name__}, not a JSON object")
    try:
        return view(body)
    except (KeyError, IndexError, TypeError, ValueError) as exc:
        # Blame the backend that sent the body, not the BFF: the caller gets a 502 naming it.
        raise InvalidResponse(name, f"GET {path} answered an unexpected shape: {exc!r}") from None


def view_model(content: Any, status_code: int = 200) -> JSONResponse:
    """A JSON response that no cache keeps."""
    return JSONResponse(content, status_code=status_code, headers=NO_STORE)


def create_bff(routes: Sequence[BaseRoute]) -> Starlette:
    """A Starlette app over `routes` whose errors, including backend failures, answer as JSON."""
    return Starlette(
        routes=list(routes),
        exception_handlers={UpstreamError: _upstream_error, HTTPException: _http_error},
    )


async def _upstream_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, UpstreamError)
    request_id = request.headers.get(REQUEST_ID_HEADER, "-")
    if isinstance(exc, UpstreamStatusError) and exc.status_code == 404:
        return view_model({"error": f"not found at {exc.upstream}"}, 404)
    logger.warning("%s %s (request %s): %s", request.method, request.url.path, request_id, exc)
    return view_model({"error": f"upstream {exc.upstream} failed"}, 502)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    response = view_model({"error": exc.detail}, exc.status_code)
    response.headers.update(exc.headers or {})
    return response
