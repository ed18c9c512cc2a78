"""A service that uvicorn runs with several workers (tests/e2e/test_metrics_workers.py); metrics: multiprocess."""

from __future__ import annotations

import os

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp

from oberon.ops.observability import Observability


async def hello(request: Request) -> Response:
    return PlainTextResponse(f"hello from {os.getpid()}")


def create() -> ASGIApp:
    """`uvicorn --factory workers_app:create`: every worker builds its own, all write to PROMETHEUS_MULTIPROC_DIR."""
    observability = Observability.from_environ(os.environ, name="renderer")
    return observability.instrument(
        Starlette(routes=[Route("/hello/{name}", hello)]), service="renderer", expose_metrics=True
    )
