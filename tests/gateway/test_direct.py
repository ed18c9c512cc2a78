"""The hop to an in-process upstream by calling its app directly (`gateway.direct`), against the httpx transport it
replaced: the same request reaches the app, the answer still streams, failures become the gateway's pages."""

from __future__ import annotations

import asyncio
import contextvars
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route
from starlette.types import Message, Receive, Scope, Send

from gateway.app import Gateway
from gateway.direct import DirectAnswer
from gateway.errors import UpstreamUnavailable
from gateway.proxy import HttpxProxyTransport, Target, Upstream, UpstreamPool
from gateway.settings import GatewaySettings
from oberon.client.transport import StreamingASGITransport
from oberon.ops.admission import AdaptiveLimit, Admission
from tests.gateway.conftest import fake_upstream, table

pytestmark = pytest.mark.anyio

SETTINGS = GatewaySettings(session_secret="s" * 40, jwt_key="k" * 64, max_body_bytes=1000)
RANDOM_PER_REQUEST = {b"x-oberon-request-id", b"x-request-id"}


def gateway(renderer: Target, *, direct: bool = True) -> Gateway:
    """A gateway whose renderer is `renderer`; `direct=False`: reached through the httpx transport, as before."""
    upstreams = UpstreamPool.create({name: fake_upstream() for name in ("bff:shop", "bff:dead", "backend:users")})
    if direct:
        hop = Upstream.create("renderer", renderer)
    else:
        client = httpx.AsyncClient(base_url="http://renderer", transport=StreamingASGITransport(renderer))
        hop = Upstream("renderer", transport=HttpxProxyTransport(client))
    return Gateway(table=table(), upstreams=UpstreamPool({**upstreams, "renderer": hop}), settings=SETTINGS)


def browser(app: Gateway) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app.app()), base_url="http://site.test")


class Recorder:
    """An ASGI app that keeps each request's scope and body, and answers 200."""

    def __init__(self) -> None:
        self.seen: list[dict[str, Any]] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body", False):
                break
        kept = {key: value for key, value in scope.items() if key not in ("headers", "state", "extensions")}
        headers = [(name, b"-" if name in RANDOM_PER_REQUEST else value) for name, value in scope["headers"]]
        self.seen.append({**kept, "headers": headers, "body": body})
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"ok"})


async def chunked(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


REQUESTS: list[tuple[str, str, dict[str, Any]]] = [
    ("GET", "/page?q=1&utm_source=news&x=%20y", {"headers": {"Accept": "text/html", "User-Agent": "Firefox"}}),
    ("GET", "/caf%C3%A9/a%2Fb;c", {"headers": {"Cookie": "a=1; oberon_visitor=v1.x", "Accept-Language": "de"}}),
    ("GET", "/a%20b/~x_y.z-1:@!$&'()*+,=", {}),  # a path `quote` leaves as it is but for its space
    ("GET", "/bare", {"headers": {"Accept-Encoding": "br", "Connection": "keep-alive, X-Hop", "X-Hop": "1"}}),
    ("HEAD", "/page", {}),
    ("POST", "/form", {"content": b"a=1&b=2", "headers": {"Content-Type": "application/x-www-form-urlencoded"}}),
    ("POST", "/empty", {}),
    ("PUT", "/chunked", {"chunks": [b"one,", b"two"]}),  # no length: the gateway reads it first
]


@pytest.mark.parametrize(("method", "url", "options"), REQUESTS)
async def test_the_app_sees_the_request_the_httpx_transport_gave_it(method: str, url: str, options: Any) -> None:
    seen = []
    for direct in (False, True):
        recorder = Recorder()
        async with browser(gateway(recorder, direct=direct)) as client:
            given = {key: value for key, value in options.items() if key != "chunks"}
            if "chunks" in options:
                given["content"] = chunked(*options["chunks"])
            response = await client.request(method, url, **given)
        assert response.status_code == 200, response.text
        seen.append(recorder.seen[0])
    before, after = seen
    assert after == before


async def test_the_answer_reaches_the_caller_with_the_gateway_s_headers() -> None:
    async with browser(gateway(fake_upstream())) as client:
        response = await client.get("/page", headers={"X-Request-Id": "mine"})
    assert response.status_code == 200 and response.text.startswith("<!doctype html>")
    assert response.headers["x-upstream"] == "renderer"
    assert "x-secret-hop" not in response.headers and "set-cookie" not in response.headers
    assert response.headers["x-oberon-request-id"] != "mine"


ANSWERS: list[tuple[str, list[tuple[bytes, bytes]]]] = [
    ("an HTML page", [(b"content-type", b"text/html; charset=utf-8"), (b"cache-control", b"public, max-age=60")]),
    (  # an upstream's own security headers give way to the gateway's; a Connection-named one goes
        "its own security headers",
        [
            (b"Content-Type", b"TEXT/HTML"),
            (b"Content-Security-Policy", b"default-src *"),
            (b"x-frame-options", b"SAMEORIGIN"),
            (b"Strict-Transport-Security", b"max-age=1"),
            (b"connection", b"x-gone"),
            (b"x-gone", b"1"),
            (b"x-kept", b"1"),
        ],
    ),
    ("not HTML", [(b"content-type", b"application/json"), (b"x-oberon-request-id", b"its-own")]),
    ("no type", [(b"x-kept", b"2")]),
]


@pytest.mark.parametrize("https", [False, True])
@pytest.mark.parametrize(("kind", "headers"), ANSWERS)
async def test_the_hop_adds_the_security_headers_as_the_outer_layer_adds_them_to_any_upstream(
    kind: str, headers: list[tuple[bytes, bytes]], https: bool
) -> None:
    """The in-process hop's answer gets its security headers in the relay's one pass (its start says `SECURED`): the
    same headers, once each, as `SecureHeaders` gives an upstream's answer through the httpx transport."""

    async def answer(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"<p>hi</p>"})

    answered = {}
    for direct in (True, False):
        transport = httpx.ASGITransport(app=gateway(answer, direct=direct).app())
        async with httpx.AsyncClient(transport=transport, base_url=f"http{'s' * https}://site.test") as client:
            response = await client.get("/page")
        answered[direct] = sorted(
            (name.lower(), value) for name, value in response.headers.multi_items() if name != "x-oberon-request-id"
        )
    assert answered[True] == answered[False]
    names = [name for name, _ in answered[True]]
    html = kind in ("an HTML page", "its own security headers")
    assert names.count("x-content-type-options") == 1 and "x-gone" not in names
    assert names.count("content-security-policy") == names.count("x-frame-options") == int(html)
    assert ("x-frame-options", "SAMEORIGIN") not in answered[True]
    assert names.count("strict-transport-security") == int(https) + (kind == "its own security headers")


async def call(app: Any, path: str, *, receive: Receive | None = None) -> tuple[list[Message], asyncio.Task[None]]:
    """The gateway's app called as a server calls it; the messages it sends so far, and its task."""
    sent: list[Message] = []
    asked = False

    async def ask() -> Message:
        nonlocal asked
        if asked:  # the caller stays
            await asyncio.Event().wait()
        asked = True
        return {"type": "http.request", "body": b"", "more_body": False}

    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "headers": [(b"host", b"site.test"), (b"accept", b"text/html")],
        "client": ("127.0.0.1", 5000),
        "server": ("site.test", 80),
        "root_path": "",
    }

    async def send(message: Message) -> None:
        sent.append(message)

    return sent, asyncio.create_task(app(scope, receive or ask, send))


async def until(condition: Callable[[], bool]) -> None:
    async with asyncio.timeout(2):
        while not condition():
            await asyncio.sleep(0.01)


async def test_a_streamed_page_streams_through_the_gateway() -> None:
    more = asyncio.Event()

    async def page(request: Request) -> Response:
        async def chunks() -> AsyncIterator[bytes]:
            yield b"first\n"
            await more.wait()
            yield b"second\n"

        return StreamingResponse(chunks(), media_type="text/html")

    app = gateway(Starlette(routes=[Route("/page", page)])).app()
    sent, task = await call(app, "/page")
    bodies = lambda: [m.get("body") for m in sent if m["type"] == "http.response.body" and m.get("body")]  # noqa: E731
    await until(lambda: bodies() == [b"first\n"])  # the gateway passed it on while the page goes on
    assert sent[0]["status"] == 200 and not task.done()
    more.set()
    await asyncio.wait_for(task, 2)
    assert bodies() == [b"first\n", b"second\n"]


WHO: contextvars.ContextVar[str] = contextvars.ContextVar("who", default="gateway")


async def test_the_gateway_s_observers_see_the_gateway_s_context_not_the_app_s() -> None:
    """The answer starts inside the app's `send`, where the app's context (its span, which names the caller in
    metrics) is current; the gateway's observers must still count the call as the gateway's."""
    seen: list[str] = []

    async def renderer(scope: Scope, receive: Receive, send: Send) -> None:
        WHO.set("renderer")
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    app = gateway(renderer)
    app.observers = (lambda record: seen.append(f"{WHO.get()}:{record.upstream}"),)
    async with browser(app) as client:
        assert (await client.get("/page")).status_code == 200
    assert seen == ["gateway:renderer"]


async def test_an_app_that_raises_before_answering_gets_the_gateway_s_502_page() -> None:
    async def broken(scope: Scope, receive: Receive, send: Send) -> None:
        raise RuntimeError("boom")

    async with browser(gateway(broken)) as client:
        response = await client.get("/page", headers={"Accept": "text/html"})
    assert response.status_code == 502
    assert "The renderer service is not answering right now." in response.text and "Traceback" not in response.text


async def test_an_app_too_slow_to_answer_gets_the_gateway_s_504_page() -> None:
    async def stuck(scope: Scope, receive: Receive, send: Send) -> None:
        await asyncio.sleep(10)

    routes = table()
    slow = Gateway(
        table=routes,
        upstreams=UpstreamPool.create({"renderer": fake_upstream(), "bff:shop": stuck, "bff:dead": fake_upstream()}),
        settings=SETTINGS,
    )
    async with browser(slow) as client:
        response = await client.get("/bff/shop/anything")  # the route's timeout: 0.5 s
    assert response.status_code == 504 and json.loads(response.text)["upstream"] == "bff:shop"


def direct_answer(app: Any, *, timeout: float, statuses: list[int]) -> DirectAnswer:
    return DirectAnswer(
        upstream="renderer",
        app=app,
        scope={"type": "http"},
        body=None,
        timeout=timeout,
        relay=lambda raw: raw,
        answered=statuses.append,
        stamp=lambda response: response,
    )


async def ignore(message: Message) -> None:
    pass


async def disconnected() -> Message:
    return {"type": "http.disconnect"}


async def stuck(scope: Scope, receive: Receive, send: Send) -> None:
    await asyncio.sleep(10)


async def test_a_hop_past_its_budget_is_a_504_and_leaves_its_task_uncancelled() -> None:
    statuses: list[int] = []
    with pytest.raises(UpstreamUnavailable) as raised:
        await direct_answer(stuck, timeout=0.05, statuses=statuses)({}, disconnected, ignore)
    assert raised.value.status_code == 504 and statuses == [504]
    task = asyncio.current_task()
    assert task is not None and task.cancelling() == 0
    await asyncio.sleep(0)  # the budget's cancellation is spent: the request's task goes on


async def test_a_cancellation_from_outside_a_hop_is_not_taken_for_its_budget() -> None:
    statuses: list[int] = []

    async def hop(timeout: float) -> None:
        await direct_answer(stuck, timeout=timeout, statuses=statuses)({}, disconnected, ignore)

    within = asyncio.create_task(hop(10))
    await asyncio.sleep(0.01)
    within.cancel()
    with pytest.raises(asyncio.CancelledError):
        await within
    assert statuses == []


async def test_an_answer_started_within_its_budget_streams_on_past_it() -> None:
    async def slow_body(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await asyncio.sleep(0.1)
        await send({"type": "http.response.body", "body": b"late"})

    sent: list[Message] = []

    async def keep(message: Message) -> None:
        sent.append(message)

    statuses: list[int] = []
    await direct_answer(slow_body, timeout=0.05, statuses=statuses)({}, disconnected, keep)
    assert statuses == [200] and [m.get("body") for m in sent] == [None, b"late"]


async def test_an_app_that_breaks_off_its_answer_breaks_off_the_gateway_s() -> None:
    async def breaks(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"half", "more_body": True})
        raise RuntimeError("gone")

    async with browser(gateway(breaks)) as client:
        with pytest.raises(RuntimeError, match="gone"):
            await client.get("/page")


async def test_a_request_body_past_the_limit_gets_413_whatever_the_app_answered() -> None:
    async with browser(gateway(fake_upstream())) as client:
        response = await client.post("/anything", content=chunked(b"x" * 600, b"x" * 600))
        declared = await client.post("/anything", content=b"x" * 1001)
    assert (response.status_code, declared.status_code) == (413, 413)


async def test_a_caller_gone_mid_page_stops_the_page_and_leaves_no_task() -> None:
    stopped = asyncio.Event()
    gone = asyncio.Event()

    async def endless(request: Request) -> Response:
        async def chunks() -> AsyncIterator[bytes]:
            try:
                while True:
                    yield b"more\n"
                    await asyncio.sleep(0.01)
            finally:
                stopped.set()

        return StreamingResponse(chunks(), media_type="text/html")

    requested = False

    async def receive() -> Message:
        nonlocal requested
        if not requested:
            requested = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await gone.wait()
        return {"type": "http.disconnect"}

    app = gateway(Starlette(routes=[Route("/page", endless)])).app()
    tasks_before = len(asyncio.all_tasks())
    sent, task = await call(app, "/page", receive=receive)
    await until(lambda: len(sent) >= 3)
    gone.set()
    await asyncio.wait_for(task, 2)
    assert stopped.is_set()
    await asyncio.sleep(0)
    assert len(asyncio.all_tasks()) == tasks_before


async def test_the_app_runs_in_the_caller_s_task_with_no_task_of_its_own() -> None:
    tasks: list[asyncio.Task[Any] | None] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        tasks.append(asyncio.current_task())
        await Response("ok")(scope, receive, send)

    _, task = await call(gateway(app).app(), "/page")
    await asyncio.wait_for(task, 2)
    assert tasks == [task]


async def test_an_admitted_page_gives_its_entrance_place_back_with_its_last_part_while_the_app_goes_on() -> None:
    """The embedded entrance (`Admission` around the gateway) is the process's only count of a page: the renderer's
    app, called directly, takes no place of its own, and the page's place is free as its last part goes out, though
    the app's task still has work after it (a client asking again at once must find it free: issue 19)."""
    tail = asyncio.Event()
    places: list[int] = []

    async def renderer(scope: Scope, receive: Receive, send: Send) -> None:
        places.append(entrance.limit.in_flight)
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/html")]})
        await send({"type": "http.response.body", "body": b"page"})
        await tail.wait()  # e.g. its access log, a background task

    entrance = Admission(gateway(renderer).app(), entrance="gateway", limit=AdaptiveLimit())
    sent, task = await call(entrance, "/page")
    await until(lambda: any(m["type"] == "http.response.body" for m in sent))
    assert places == [1] and not task.done()
    assert entrance.limit.in_flight == 0
    tail.set()
    await asyncio.wait_for(task, 2)
    assert entrance.limit.in_flight == 0
