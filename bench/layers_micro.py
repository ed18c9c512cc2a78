"""What each ASGI layer around the renderer's Starlette app costs per request, in process (issue 19).

The renderer's public app is, outermost first: `HideInternal`, the follower (none here), `Admission`, the
observability layer (`Instrumented`), `Closing`, Starlette (its error and exception middleware, the router and
the renderer's other routes, the endpoint) and the page's `StreamingResponse`; "dispatched", Starlette's part
as `PageDispatch` takes a page past it. This drives that stack in one event loop with an endpoint
that answers at once (three chunks, as a streamed page), so what is measured is the layers alone: CPU µs per
request for the whole stack, and for it with each layer taken away.

    python -m bench.layers_micro [--requests 20000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from collections.abc import AsyncIterator, Callable

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Scope

from oberon import logs
from oberon.ops.admin_listener import HideInternal
from oberon.ops.admission import AdaptiveLimit, Admission, StaleCopies
from oberon.ops.observability import Observability, RequestInfo
from oberon.runtime.topology import Closing

try:
    from oberon.web.page_response import PageResponse
except ImportError:  # a checkout from before it (run as a script with that checkout on PYTHONPATH)
    PageResponse = StreamingResponse  # type: ignore[misc,assignment]
try:
    from oberon.web.renderer import PageDispatch
except ImportError:  # before it
    PageDispatch = None  # type: ignore[assignment,misc]

HEADERS = [
    (b"host", b"127.0.0.1:8000"),
    (b"user-agent", b"wrk"),
    (b"accept", b"*/*"),
]


async def _chunks() -> AsyncIterator[bytes]:
    for chunk in (b"<html>" + b"x" * 4000, b"y" * 6000, b"</html>"):
        yield chunk


async def page(request: Request) -> Response:
    RequestInfo.current().route = "/page-5"
    headers = {"Cache-Control": "public, max-age=60", "X-Request-Id": "abc"}
    return PageResponse(_chunks(), headers=headers, media_type="text/html; charset=utf-8")


# The renderer's other public routes, which Starlette walks before a page's catch-all.
ROUTES = ["/_oberon/assets/{file:path}", "/_oberon/health", "/robots.txt", "/sitemap.xml",
          "/_components/{name}", "/_islands/{name}", "/_oberon/cohort/{bucket}"]  # fmt: skip


async def server_error(request: Request, exc: Exception) -> Response:
    return Response("error", status_code=500)


def starlette(*, dispatch: bool = False) -> ASGIApp:
    """The renderer's routes (any other path a page's), as Starlette routes them or (`dispatch`) `PageDispatch`."""
    routes = [Route(path, page, methods=["GET", "HEAD"]) for path in ROUTES]
    app = Starlette(routes=[*routes, Route("/{path:path}", page, methods=["GET", "HEAD"])],
                    exception_handlers={Exception: server_error})  # fmt: skip
    if dispatch and PageDispatch is not None:
        return PageDispatch(app, page=page, server_error=server_error)
    return app


def stack(
    *, hide: bool = True, admission: bool = True, observed: bool = True, closing: bool = True, dispatch: bool = False
) -> ASGIApp:
    """The renderer's layers as `Services.serve("renderer")` stacks them, some left out."""
    observability = Observability(access_log=True)
    app: ASGIApp = starlette(dispatch=dispatch)
    if closing:
        app = Closing(app, cleanups=[])
    if observed:
        app = observability.instrument(app, service="renderer")
    if admission:
        app = Admission(app, entrance="renderer", limit=AdaptiveLimit(), stale=StaleCopies())
    if hide:
        app = HideInternal(app)
    return app


def scope(spec_version: str) -> Scope:
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": spec_version},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/page-5",
        "raw_path": b"/page-5",
        "root_path": "",
        "query_string": b"",
        "headers": HEADERS,
        "server": ("127.0.0.1", 8000),
        "client": ("127.0.0.1", 50000),
        "state": {},
    }


async def drive(app: ASGIApp, requests: int, spec_version: str) -> float:
    """CPU µs per request of `app` answering `requests` requests one after another."""
    never = asyncio.Event()

    async def receive() -> Message:
        await never.wait()  # no body; the client never leaves
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        pass

    for _ in range(200):  # warm up
        await app(scope(spec_version), receive, send)
    started = time.process_time()
    for _ in range(requests):
        await app(scope(spec_version), receive, send)
    return (time.process_time() - started) / requests * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--spec-version", default="2.3", help="the ASGI spec version the server says (uvicorn: 2.3)")
    parser.add_argument("--whole", action="store_true", help="the whole stack only")
    args = parser.parse_args()
    with open(os.devnull, "w") as devnull:  # the access log as the server writes it (JSON lines), to nowhere
        logs.configure("json", stream=devnull)
        measure(args.requests, args.spec_version, whole_only=args.whole)


def measure(requests: int, spec_version: str, *, whole_only: bool) -> None:
    variants: dict[str, Callable[[], ASGIApp]] = {
        "whole stack": stack,
        "pages dispatched": lambda: stack(dispatch=True),
        "without HideInternal": lambda: stack(hide=False),
        "without Admission": lambda: stack(admission=False),
        "without Instrumented": lambda: stack(observed=False),
        "without Closing": lambda: stack(closing=False),
        "Starlette alone": lambda: stack(hide=False, admission=False, observed=False, closing=False),
        "Starlette alone, dispatched": lambda: stack(
            hide=False, admission=False, observed=False, closing=False, dispatch=True
        ),
    }
    whole = 0.0
    for name, build in variants.items():
        cost = asyncio.run(drive(build(), requests, spec_version))
        whole = whole or cost
        print(f"{name:28} {cost:6.1f} µs/request   (layer: {whole - cost:5.1f})", flush=True)
        if whole_only:
            return


if __name__ == "__main__":
    main()
