"""Fault injection for in-process backends: the `OBERON_FAULTS` format and an ASGI middleware.

`OBERON_FAULTS="recommendations=down,events=latency:300,venues=error:0.5"` gives each service its
starting fault; the middleware's admin endpoint (`GET`/`PUT /_faults`) reads and replaces it at run time.
"""

from __future__ import annotations

import asyncio
import json
import math
import random
from collections.abc import Collection
from dataclasses import dataclass, replace
from typing import TypedDict

from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

ADMIN_PATH = "/_faults"
MAX_LATENCY_MS = 600_000
FAULT_FIELDS: tuple[str, ...] = ("down", "latency_ms", "error_ratio")
_NO_STORE = {"Cache-Control": "no-store"}
_SPEC_HELP = "expected 'service=down', 'service=latency:MS' or 'service=error:RATIO'"


class FaultState(TypedDict):
    down: bool
    latency_ms: int
    error_ratio: float


@dataclass(frozen=True)
class Fault:
    """What a stand-in service does wrong: refuse every request, answer late, or fail a share of requests."""

    down: bool = False
    latency_ms: int = 0
    error_ratio: float = 0.0

    def __post_init__(self) -> None:
        if not isinstance(self.down, bool):
            raise ValueError(f"down must be true or false, got {self.down!r}")
        if isinstance(self.latency_ms, bool) or not isinstance(self.latency_ms, int):
            raise ValueError(f"latency_ms must be an integer number of milliseconds, got {self.latency_ms!r}")
        if not 0 <= self.latency_ms <= MAX_LATENCY_MS:
            raise ValueError(f"latency_ms must be between 0 and {MAX_LATENCY_MS}, got {self.latency_ms}")
        if isinstance(self.error_ratio, bool) or not isinstance(self.error_ratio, int | float):
            raise ValueError(f"error_ratio must be a number between 0 and 1, got {self.error_ratio!r}")
        if not (math.isfinite(self.error_ratio) and 0 <= self.error_ratio <= 1):
            raise ValueError(f"error_ratio must be between 0 and 1, got {self.error_ratio}")
        object.__setattr__(self, "error_ratio", float(self.error_ratio))

    def as_dict(self) -> FaultState:
        """The fault as the admin endpoint shows it."""
        return {"down": self.down, "latency_ms": self.latency_ms, "error_ratio": self.error_ratio}


def fault_from_json(data: object) -> Fault:
    """Build a Fault from a decoded JSON object; missing fields take their defaults."""
    if not isinstance(data, dict):
        raise ValueError(f"the body must be a JSON object with fields {', '.join(FAULT_FIELDS)}")
    unknown = sorted(str(key) for key in data if key not in FAULT_FIELDS)
    if unknown:
        raise ValueError(f"unknown field {unknown[0]!r}, expected only {', '.join(FAULT_FIELDS)}")
    defaults = Fault()
    down = data.get("down", defaults.down)
    latency_ms = data.get("latency_ms", defaults.latency_ms)
    error_ratio = data.get("error_ratio", defaults.error_ratio)
    return Fault(down=down, latency_ms=latency_ms, error_ratio=error_ratio)


def _apply(item: str, kind: str, value: str, current: Fault) -> Fault:
    if kind == "down":
        if value:
            raise ValueError(f"invalid fault {item!r}: 'down' takes no value, {_SPEC_HELP}")
        return replace(current, down=True)
    if kind == "latency":
        if not value.isdecimal():
            raise ValueError(f"invalid fault {item!r}: latency must be a non-negative integer of milliseconds")
        if len(value) > len(str(MAX_LATENCY_MS)) or int(value) > MAX_LATENCY_MS:
            raise ValueError(f"invalid fault {item!r}: latency must be at most {MAX_LATENCY_MS} ms")
        return replace(current, latency_ms=int(value))
    if kind == "error":
        try:
            ratio = float(value)
        except ValueError:
            ratio = math.nan
        if not 0 <= ratio <= 1:
            raise ValueError(f"invalid fault {item!r}: error ratio must be a number between 0 and 1")
        return replace(current, error_ratio=ratio)
    raise ValueError(f"invalid fault {item!r}: unknown fault kind {kind!r}, {_SPEC_HELP}")


def parse_faults(spec: str, *, known: Collection[str] | None = None) -> dict[str, Fault]:
    """Parse `OBERON_FAULTS` into a fault per service; several items for one service combine."""
    faults: dict[str, Fault] = {}
    seen: set[tuple[str, str]] = set()
    if not spec.strip():
        return faults
    for raw in spec.split(","):
        item = raw.strip()
        if not item:
            raise ValueError(f"invalid fault {item!r} in {spec!r}: empty item (a stray comma?), {_SPEC_HELP}")
        service, equals, rest = (part.strip() for part in item.partition("="))
        if not equals or not service or not rest:
            raise ValueError(f"invalid fault {item!r}: {_SPEC_HELP}")
        if known is not None and service not in known:
            raise ValueError(f"invalid fault {item!r}: unknown service {service!r}, expected one of {sorted(known)}")
        kind, _, value = (part.strip() for part in rest.partition(":"))
        if (service, kind) in seen:
            raise ValueError(f"invalid fault {item!r}: {service} already has a {kind!r} fault")
        seen.add((service, kind))
        faults[service] = _apply(item, kind, value, faults.get(service, Fault()))
    return faults


def _error(message: str, status_code: int, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status_code, headers={**_NO_STORE, **(headers or {})})


class FaultInjector:
    """ASGI middleware that applies its current `fault` to HTTP requests and serves `/_faults` to change it."""

    def __init__(self, app: ASGIApp, *, fault: Fault, seed: int = 0) -> None:
        self.app = app
        self.fault = fault
        self._random = random.Random(seed)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if _route_path(scope) == ADMIN_PATH:
            await self._admin(scope, receive, send)
            return
        fault = self.fault
        if fault.latency_ms > 0:
            await asyncio.sleep(fault.latency_ms / 1000)
        if fault.down:
            await _error("service down (fault injected)", 503)(scope, receive, send)
        elif fault.error_ratio > 0 and self._random.random() < fault.error_ratio:
            await _error("injected error", 500)(scope, receive, send)
        else:
            await self.app(scope, receive, send)

    async def _admin(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        if request.method not in ("GET", "PUT"):
            response = _error(f"method {request.method} not allowed, use GET or PUT", 405, {"Allow": "GET, PUT"})
        elif request.method == "PUT":
            try:
                response = await self._put(request)
            except ClientDisconnect:
                return
        else:
            response = JSONResponse(self.fault.as_dict(), headers=_NO_STORE)
        await response(scope, receive, send)

    async def _put(self, request: Request) -> JSONResponse:
        try:
            data = json.loads(await request.body())
        except ValueError:
            # Also catches UnicodeDecodeError, a ValueError.
            return _error("invalid JSON: the body must be a JSON object with fields " + ", ".join(FAULT_FIELDS), 400)
        try:
            self.fault = fault_from_json(data)
        except ValueError as exc:
            return _error(str(exc), 400)
        return JSONResponse(self.fault.as_dict(), headers=_NO_STORE)


def _route_path(scope: Scope) -> str:
    """The path below the app's mount point (Starlette keeps the full path and sets `root_path`)."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    return path[len(root) :] if root and path.startswith(root) else path
