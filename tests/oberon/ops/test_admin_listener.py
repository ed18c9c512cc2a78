"""The admin listener's app, and the public entrance's 404 for every spelling of the internal paths."""

from __future__ import annotations

import posixpath
import random
from urllib.parse import quote, unquote

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import Message, Scope

from oberon.ops.admin_listener import HideInternal, admin_app, canonical_path, is_internal, public_health
from oberon.ops.metrics import Metrics
from oberon.ops.observability import Observability

pytestmark = pytest.mark.anyio

SPELLINGS = [
    "/metrics",
    "/metrics/",
    "//metrics",
    "/./metrics",
    "/x/../metrics",
    "/%6detrics",
    "/%6Detrics",
    "/%2Fmetrics",
    "/%252Fmetrics",
    "/METRICS",
    "/\\metrics",
    "/metrics/x",
    "/_oberon/registry",
    "/_oberon//registry",
    "/_oberon/./registry/",
    "/_oberon/health/../registry",
    "/_oberon/%64egradation",
    "/_oberon/degradation",
    "/_oberon/degradation/",
]
PUBLIC = ["/", "/e/1", "/_oberon/health", "/_oberon/assets/app.js", "/metricsfoo", "/a%2Fb", "/%25", "/bff/x/metrics"]


@pytest.mark.parametrize("path", SPELLINGS)
def test_every_spelling_of_an_internal_path_is_internal(path: str) -> None:
    assert is_internal(path)


@pytest.mark.parametrize("path", PUBLIC)
def test_public_paths_are_not_internal(path: str) -> None:
    assert not is_internal(path)


def test_a_path_hidden_under_layers_of_encoding_is_refused() -> None:
    path = "/metrics"
    for _ in range(6):
        path = quote(path, safe="")
    assert is_internal("/" + path)


async def everything(request: Request) -> Response:
    return PlainTextResponse(f"public {request.url.path}")


async def call(app: HideInternal, path: str, raw_path: bytes) -> tuple[int, bytes]:
    """One request with the path and raw path a server would give (no client normalises it on the way)."""
    scope: Scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": raw_path,
        "root_path": "",
        "query_string": b"x=1",
        "headers": [(b"host", b"site.test")],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
    }
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    await app(scope, receive, send)
    return sent[0]["status"], b"".join(message.get("body", b"") for message in sent[1:])


@pytest.mark.parametrize("raw", ["/metrics", "/%6detrics", "/%2Fmetrics", "/x/../metrics", "/_oberon/%72egistry"])
async def test_hide_internal_answers_404_whatever_the_raw_spelling(raw: str) -> None:
    app = HideInternal(Starlette(routes=[Route("/{path:path}", everything)]))
    status, body = await call(app, unquote(raw), raw.encode())
    assert status == 404 and b"public" not in body


async def test_hide_internal_passes_public_paths_through() -> None:
    app = HideInternal(Starlette(routes=[Route("/{path:path}", everything)]))
    assert await call(app, "/e/1", b"/e/1") == (200, b"public /e/1")


async def test_admin_app_serves_the_metrics_of_the_whole_process() -> None:
    metrics = Metrics()
    observed = Observability(metrics=metrics).instrument(Starlette(routes=[Route("/echo", everything)]), service="x")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=observed), base_url="http://site") as client:
        await client.get("/echo")
    admin = admin_app(service="x", metrics=metrics)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=admin), base_url="http://admin") as client:
        response = await client.get("/metrics")
        health = await client.get("/_oberon/health")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=")
    assert response.headers["cache-control"] == "no-store"
    assert 'oberon_http_request_duration_seconds_count{method="GET",route="/echo"' in response.text
    assert health.json() == {"status": "ok", "service": "x"}


async def test_admin_app_serves_the_services_routes_the_first_of_a_path_winning() -> None:
    async def gateway_health(request: Request) -> Response:
        return JSONResponse({"status": "ok", "service": "gateway", "upstreams": {}})

    async def renderer_health(request: Request) -> Response:
        return JSONResponse({"service": "renderer"})

    async def registry(request: Request) -> Response:
        return JSONResponse([])

    routes = [
        Route("/_oberon/health", gateway_health),
        Route("/_oberon/health", renderer_health),
        Route("/_oberon/registry", registry),
    ]
    admin = admin_app(service="gateway", metrics=Metrics(), routes=routes)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=admin), base_url="http://admin") as client:
        assert (await client.get("/_oberon/health")).json()["upstreams"] == {}
        assert (await client.get("/_oberon/registry")).json() == []


async def test_public_health_says_ok_or_unavailable_and_nothing_else() -> None:
    ready = True

    async def is_ready() -> bool:
        return ready

    app = Starlette(routes=[public_health(is_ready)])
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://site") as client:
        ok = await client.get("/_oberon/health")
        ready = False
        down = await client.get("/_oberon/health")
    assert (ok.status_code, ok.json()) == (200, {"status": "ok"})
    assert (down.status_code, down.json()) == (503, {"status": "unavailable"})
    assert down.headers["cache-control"] == "no-store"


def test_a_plain_path_is_read_as_the_full_reading_would() -> None:
    """The shortcut for paths with nothing to decode or resolve gives what decoding and `normpath` give."""
    rng = random.Random(19)
    alphabet = "aZ09_~-/"
    for _ in range(5000):
        path = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 12)))
        assert canonical_path(path) == posixpath.normpath("/" + path.lstrip("/")).lower(), path
    for path in ("/Metrics", "/metrics/", "metrics", "/_oberon/Registry/x", "/_Oberon/degradation/"):
        assert is_internal(path), path
