"""A service that uvicorn runs with several workers (tests/e2e/test_metrics_workers.py); metrics: multiprocess.

`create` is the public app every worker builds; `create_admin` the admin listener's app, run by a process
of its own on the same `PROMETHEUS_MULTIPROC_DIR`: it shows every worker's series, merged.
"""

from __future__ import annotations

import os

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp

from oberon.ops.admin_listener import HideInternal, admin_app
from oberon.ops.observability import Observability


async def hello(request: Request) -> Response:
    return PlainTextResponse(f"hello from {os.getpid()}")


def create() -> ASGIApp:
    """`uvicorn --factory workers_app:create`: every worker builds its own, all write to PROMETHEUS_MULTIPROC_DIR."""
    observability = Observability.from_environ(os.environ, name="renderer")
    return HideInternal(observability.instrument(Starlette(routes=[Route("/hello/{name}", hello)]), service="renderer"))


def create_admin() -> ASGIApp:
    """`uvicorn --factory workers_app:create_admin`: `/metrics` of every worker, on a port of its own."""
    observability = Observability.from_environ(os.environ, name="renderer")
    return admin_app(service="renderer", metrics=observability.metrics)
