"""`PageDispatch` and `url_path`: a page's request answered as the renderer's Starlette app answers it."""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import pytest
import respx
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.types import ASGIApp, Message

from oberon.dev.tools import DevelopmentTools
from oberon.ops.observability import Observability
from oberon.pipeline.assets import Assets
from oberon.pipeline.page import PageRenderer
from oberon.web.asset_server import AssetServer
from oberon.web.renderer import PageDispatch, RendererApp, url_path

pytestmark = pytest.mark.anyio

BFF = "http://shop.test"
REQUEST_ID = "0" * 32  # the same on both sides, so the pages are byte for byte the same

# Paths as the server decodes them into the scope: pages, others' routes, and hostile ones (a line break, a tab,
# an escaped `?`, `#` or `\`, a leading `//`) that Starlette's URL and routes treat their own way.
PATHS = [
    "/items/1", "/items/1/", "/nowhere", "/", "/_nothing", "/_oberon/health", "/_components/greeting",
    "/robots.txt", "/robots.txt/", "/robots.txt\n", "/robots.txt\t", "/items/1\n", "/items/\n1", "/\n", "/a\nb",
    "/items/1\t", "/items/\t1", "/items/1\r", "/items/1?", "/items?/1", "/items/1#", "/items#/1", "/items\\1",
    "/items/1\\", "//items/1", "//x", "/\n/items/1", "/%2F", "/items/%31", "", "items/1", "/items/1\x00",
]  # fmt: skip


@pytest.fixture(autouse=True)
def bff() -> Iterator[respx.MockRouter]:
    with respx.mock(base_url=BFF, assert_all_called=False) as router:
        router.get("/items/1").respond(json={"name": "Lamp", "price": "€10"})
        router.get("/banner").respond(json={"text": "Sale"})
        yield router


@pytest.fixture
def renderer_app(renderer: PageRenderer, assets: Assets) -> RendererApp:
    return RendererApp(renderer=renderer, asset_server=AssetServer(folder=assets.manifest.folder))


def scope_of(method: str, path: str, **more: Any) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode("utf-8"),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"renderer"), (b"x-oberon-request-id", REQUEST_ID.encode())],
        "server": ("127.0.0.1", 8000),
        "client": ("127.0.0.1", 5000),
        **more,
    }


async def call(app: ASGIApp, scope: dict[str, Any]) -> tuple[list[Message], BaseException | None]:
    """What `app` sends for the request of `scope` (a GET's empty body), and what it raised."""
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    try:
        await app(scope, receive, send)
    except Exception as exc:
        return sent, exc
    return sent, None


def describe(found: Any) -> tuple[str | None, str | None]:
    """A route or endpoint by its path and name (two apps' health endpoints are two functions of one name)."""
    return getattr(found, "path", None), getattr(found, "__qualname__", getattr(found, "name", None))


def comparable(sent: list[Message]) -> list[Message]:
    """The messages less Server-Timing (durations)."""
    return [
        {**message, "headers": [(k, v) for k, v in message["headers"] if k != b"server-timing"]}
        if message["type"] == "http.response.start"
        else message
        for message in sent
    ]


@pytest.mark.parametrize("method", ["GET", "HEAD", "POST", "OPTIONS"])
@pytest.mark.parametrize("path", PATHS)
async def test_page_dispatch_answers_as_the_starlette_app(renderer_app: RendererApp, method: str, path: str) -> None:
    dispatching = renderer_app.app()
    assert isinstance(dispatching, PageDispatch)
    starlette = renderer_app.starlette()
    ours, theirs = scope_of(method, path), scope_of(method, path)
    (sent, raised), (expected, expected_raised) = await call(dispatching, ours), await call(starlette, theirs)
    assert comparable(sent) == comparable(expected)
    assert repr(raised) == repr(expected_raised)
    assert ours.get("path_params") == theirs.get("path_params")  # what the observability layer and routing read
    assert describe(ours.get("route")) == describe(theirs.get("route"))
    assert describe(ours.get("endpoint")) == describe(theirs.get("endpoint"))
    assert ours["app"] is dispatching.app and theirs["app"] is starlette
    assert ours["router"] is dispatching.app.router and theirs["router"] is starlette.router


async def test_page_dispatch_leaves_a_mounted_app_and_a_query_to_starlette(renderer_app: RendererApp) -> None:
    for path, more in (("/shop/items/1", {"root_path": "/shop"}), ("/items/1", {"query_string": b"x=%ZZ&y=\xff"})):
        ours, theirs = scope_of("GET", path, **more), scope_of("GET", path, **more)
        (sent, raised), (expected, expected_raised) = (
            await call(renderer_app.app(), ours),
            await call(renderer_app.starlette(), theirs),
        )
        assert comparable(sent) == comparable(expected)
        assert repr(raised) == repr(expected_raised)
        assert ours["route"] == theirs["route"] and ours["path_params"] == theirs["path_params"]


async def test_page_dispatch_answers_a_failure_with_the_500_page_and_raises_it_for_the_server(
    renderer_app: RendererApp, renderer: PageRenderer
) -> None:
    async def explode(*args: object, **kwargs: object) -> None:
        raise RuntimeError("secret internals")

    renderer.render = explode  # type: ignore[method-assign]
    (sent, raised), (expected, expected_raised) = (
        await call(renderer_app.app(), scope_of("GET", "/items/1")),
        await call(renderer_app.starlette(), scope_of("GET", "/items/1")),
    )
    assert sent == expected and sent[0]["status"] == 500 and b"secret" not in sent[1]["body"]
    assert isinstance(raised, RuntimeError) and repr(raised) == repr(expected_raised)


@pytest.mark.parametrize("status", [418, 304])
async def test_page_dispatch_answers_an_http_exception_as_starlette(
    renderer_app: RendererApp, renderer: PageRenderer, status: int
) -> None:
    async def refuse(*args: object, **kwargs: object) -> None:
        raise HTTPException(status, headers={"x-why": "because"})

    renderer.render = refuse  # type: ignore[method-assign]
    (sent, raised), (expected, expected_raised) = (
        await call(renderer_app.app(), scope_of("GET", "/items/1")),
        await call(renderer_app.starlette(), scope_of("GET", "/items/1")),
    )
    assert sent == expected and sent[0]["status"] == status and raised is expected_raised is None


async def test_page_dispatch_raises_a_failure_after_the_answer_started_without_a_second_answer(
    renderer_app: RendererApp,
) -> None:
    async def broken(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        raise RuntimeError("half way")

    async def page(request: Request) -> Any:
        return broken

    renderer_app.page = page  # type: ignore[method-assign]
    (sent, raised), (expected, expected_raised) = (
        await call(renderer_app.app(), scope_of("GET", "/items/1")),
        await call(renderer_app.starlette(), scope_of("GET", "/items/1")),
    )
    assert sent == expected == [{"type": "http.response.start", "status": 200, "headers": []}]
    assert repr(raised) == repr(expected_raised) == "RuntimeError('half way')"


async def test_page_dispatch_tells_the_observability_layer_the_apps_route(renderer_app: RendererApp) -> None:
    observability = Observability(access_log=False)
    for app in (renderer_app.app(), renderer_app.starlette()):
        observed = observability.instrument(app, service="renderer")
        for path in ("/items/1", "/nowhere"):
            await call(observed, scope_of("GET", path))
    count = observability.metrics.registry.get_sample_value
    for route, status in (("/items/{item_id:int}", "2xx"), ("/{path:path}", "4xx")):
        labels = {"service": "renderer", "route": route, "method": "GET", "status_class": status}
        assert count("oberon_http_request_duration_seconds_count", labels) == 2  # one from each app


async def test_page_dispatch_is_not_used_in_development_mode(renderer: PageRenderer) -> None:
    assert isinstance(RendererApp(renderer=renderer, dev=DevelopmentTools()).app(), Starlette)


HOSTS = [None, b"renderer", b"renderer:8000", b"a/b", b"a?b", b"a#b", b"[::1]:80", b"[::1", b"a\tb", b"", b"h:99999"]
SERVERS = [("127.0.0.1", 8000), ("renderer", None), None, ("::1", 8000), ("/run/x.sock", None), ("a/b", 80), ("[", 1)]
SCHEMES = ["http", "https", "ws"]
QUERIES = [b"", b"a=1", b"a=#?", b"a=\xff", b"a=\t\n"]
CHARACTERS = ["/", "/", "a", "1", "?", "#", "\\", "\t", "\r", "\n", "%", ":", "@", "[", "]", " ", "\x00", "\x0b", "é"]


def url_path_or_error(scope: dict[str, Any], read: Any) -> str:
    try:
        return str(read(Request(scope)))
    except Exception as exc:
        return repr(exc)


def test_url_path_is_starlettes_url_path_for_hostile_paths_hosts_and_servers() -> None:
    choose = random.Random(19)
    cases = [(path, None, ("127.0.0.1", 8000), "http", b"") for path in PATHS]
    for _ in range(20000):
        path = "".join(choose.choice(CHARACTERS) for _ in range(choose.randint(0, 8)))
        cases.append(
            (path, choose.choice(HOSTS), choose.choice(SERVERS), choose.choice(SCHEMES), choose.choice(QUERIES))
        )
    fast = 0
    for path, host, server, scheme, query in cases:
        headers = [] if host is None else [(b"host", host)]
        scope = {"type": "http", "path": path, "headers": headers, "server": server, "scheme": scheme}
        scope["query_string"] = query
        expected = url_path_or_error(dict(scope), lambda request: request.url.path)
        assert url_path_or_error(dict(scope), url_path) == expected, (path, host, server, scheme, query)
        fast += expected == path
    assert fast > 1000  # the plain paths among them, read from the scope


@pytest.mark.parametrize(
    ("raw", "path"),
    [("/items/1%0A", "/items/1\n"), ("/items/1%09", "/items/1\t"), ("/items%3F1", "/items?1"),
     ("/items%231", "/items#1"), ("/items%5C1", "/items\\1"), ("//x", "//x"), ("/items/1", "/items/1")],
)  # fmt: skip
def test_url_path_reads_a_hostile_path_as_request_url_path(raw: str, path: str) -> None:
    scope = {"type": "http", "path": path, "raw_path": raw.encode(), "headers": [(b"host", b"renderer")]}
    assert url_path(Request(scope)) == Request(scope).url.path
