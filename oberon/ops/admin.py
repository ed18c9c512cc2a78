"""Admin endpoints of a renderer: `GET/PUT /_oberon/degradation` (PUT needs `OBERON_ADMIN_TOKEN`)."""

from __future__ import annotations

import hmac
import json

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from oberon.ops.degradation import DegradationController
from oberon.types import Mode

DEGRADATION_PATH = "/_oberon/degradation"
MAX_BODY_BYTES = 4096
_NO_STORE = {"Cache-Control": "no-store"}


def authorized(request: Request, token: str | None) -> bool:
    """Whether the request carries `Authorization: Bearer <token>` (compared in constant time)."""
    if not token:
        return False
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())


def admin_refusal(request: Request, token: str | None) -> JSONResponse | None:
    """Why an admin request is refused, failing closed: 403 with no token configured, 401 without the right one."""
    if not token:
        return _error(403, "no admin token is configured (set OBERON_ADMIN_TOKEN)")
    if not authorized(request, token):
        return _error(401, "a valid 'Authorization: Bearer <admin token>' is required")
    return None


def degradation_routes(controller: DegradationController, *, admin_token: str | None) -> list[Route]:
    """Read the mode and its signals; an operator with the admin token sets it or returns it to automatic."""

    async def read(request: Request) -> Response:
        return JSONResponse(controller.status(), headers=_NO_STORE)

    async def write(request: Request) -> Response:
        refused = admin_refusal(request, admin_token)
        if refused is not None:
            return refused
        body = await request.body()
        if len(body) > MAX_BODY_BYTES:
            return _error(413, "body too large")
        try:
            data = json.loads(body)
        except ValueError:
            return _error(400, 'body must be JSON like {"mode": "degraded", "reason": "incident 42"}')
        if not isinstance(data, dict) or set(data) - {"mode", "reason"}:
            return _error(400, "expected an object with 'mode' and optional 'reason'")
        mode, reason = data.get("mode"), data.get("reason", "")
        if mode not in {"degraded", "normal", "auto"} or not isinstance(reason, str) or len(reason) > 200:
            return _error(400, "mode must be 'degraded', 'normal' or 'auto'; reason a string of at most 200")
        controller.set_manual(None if mode == "auto" else Mode(mode), reason)
        return JSONResponse(controller.status(), headers=_NO_STORE)

    return [Route(DEGRADATION_PATH, read, methods=["GET"]), Route(DEGRADATION_PATH, write, methods=["PUT"])]


def _error(status_code: int, message: str) -> JSONResponse:
    headers = dict(_NO_STORE)
    if status_code == 401:
        headers["WWW-Authenticate"] = "Bearer"
    return JSONResponse({"error": message}, status_code=status_code, headers=headers)
