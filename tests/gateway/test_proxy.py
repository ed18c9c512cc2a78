"""The proxy over the network (aiohttp) against real servers on loopback; in-process and given clients stay on httpx."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import respx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from gateway.app import Gateway
from gateway.errors import BodyTooLarge, UpstreamUnavailable
from gateway.proxy import AiohttpProxyTransport, HttpxProxyTransport, LimitedBody, Target, Upstream, UpstreamPool
from gateway.settings import GatewaySettings
from tests.gateway.conftest import fake_upstream, table

pytestmark = pytest.mark.anyio

Handler = Callable[["Exchange"], Awaitable[None]]


@dataclass
class Exchange:
    """One request as a scripted server saw it, and the stream to answer on."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    request_line: str = ""
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""

    def header(self, name: str) -> list[str]:
        return [value for key, value in self.headers if key.lower() == name.lower()]

    async def answer(self, head: bytes, body: bytes = b"") -> None:
        self.writer.write(head + body)
        await self.writer.drain()


@dataclass
class Server:
    url: str
    exchanges: list[Exchange]
    open_connections: int = 0
    most_connections: int = 0
    closed: asyncio.Event = field(default_factory=asyncio.Event)


async def read_request(exchange: Exchange) -> bool:
    """Read one request's head and body (of declared length, or chunked); False at the end of the connection."""
    try:
        head = await exchange.reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError:
        return False
    lines = head.decode("latin-1").split("\r\n")[:-2]
    exchange.request_line = lines[0]
    exchange.headers = [(name, value.strip()) for name, _, value in (line.partition(":") for line in lines[1:])]
    length = exchange.header("content-length")
    if length:
        exchange.body = await exchange.reader.readexactly(int(length[0]))
    elif "chunked" in ",".join(exchange.header("transfer-encoding")):
        while size := int((await exchange.reader.readline()).strip(), 16):
            exchange.body += await exchange.reader.readexactly(size)
            await exchange.reader.readline()
        await exchange.reader.readline()
    return True


@pytest.fixture
async def serve() -> AsyncIterator[Callable[[Handler], Awaitable[Server]]]:
    """`await serve(handler)`: a real HTTP/1.1 server on loopback; `handler` answers each request (keep-alive)."""
    servers: list[asyncio.Server] = []
    tasks: list[asyncio.Task[Any]] = []

    async def start(handler: Handler) -> Server:
        state = Server(url="", exchanges=[])

        async def connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            task = asyncio.current_task()
            assert task is not None
            tasks.append(task)
            state.open_connections += 1
            state.most_connections = max(state.most_connections, state.open_connections)
            try:
                while True:
                    exchange = Exchange(reader, writer)
                    if not await read_request(exchange):
                        break
                    state.exchanges.append(exchange)
                    await handler(exchange)
            except (ConnectionError, asyncio.IncompleteReadError, ValueError):
                pass  # the proxy hung up, even mid-request, as it may
            finally:
                state.open_connections -= 1
                state.closed.set()
                writer.close()

        server = await asyncio.start_server(connection, "127.0.0.1", 0)
        servers.append(server)
        state.url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
        return state

    yield start
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    for server in servers:
        server.close()
        await server.wait_closed()


def refused_url() -> str:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


OK = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok"


async def ok(exchange: Exchange) -> None:
    await exchange.answer(OK)


@pytest.fixture
async def gateway_over() -> AsyncIterator[Callable[..., httpx.AsyncClient]]:
    """`gateway_over(renderer=URL, **others)`: an httpx client for a gateway whose upstreams are at those targets."""
    made: list[tuple[Gateway, httpx.AsyncClient]] = []

    def make(**targets: Target) -> httpx.AsyncClient:
        names = {"renderer": "renderer", "bff_shop": "bff:shop", "bff_dead": "bff:dead", "users": "backend:users"}
        chosen: dict[str, Target] = {name: fake_upstream() for name in names.values()}
        chosen.update({names[key]: target for key, target in targets.items()})
        gateway = Gateway(
            table=table(),
            upstreams=UpstreamPool.create(chosen),
            settings=GatewaySettings(session_secret="s" * 40, jwt_key="k" * 64, max_body_bytes=1000),
        )
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=gateway.app()), base_url="http://site.test")
        made.append((gateway, client))
        return client

    yield make
    for gateway, client in made:
        await client.aclose()
        await gateway.upstreams.aclose()


def test_proxy_sends_urls_over_aiohttp_and_apps_and_clients_over_httpx() -> None:
    assert isinstance(Upstream.create("renderer", "http://127.0.0.1:9").transport, AiohttpProxyTransport)
    assert isinstance(Upstream.create("renderer", fake_upstream()).transport, HttpxProxyTransport)
    client = httpx.AsyncClient(base_url="http://renderer.test")
    upstream = Upstream.create("renderer", client)
    assert isinstance(upstream.transport, HttpxProxyTransport) and upstream.transport.client is client


async def test_proxy_keeps_a_respx_mocked_client_on_httpx() -> None:
    async with respx.mock(base_url="http://renderer.test") as mock:
        mock.get("/page", params={"q": "1"}).respond(200, text="mocked", headers={"X-From": "respx"})
        upstream = Upstream.create("renderer", httpx.AsyncClient(base_url="http://renderer.test"))
        response = await upstream.send("GET", "/page", query=b"q=1", headers=[], timeout=1)
        assert (response.status_code, await response.aread()) == (200, b"mocked")
        assert response.headers["x-from"] == "respx"
        await upstream.aclose()


async def test_proxy_sends_the_path_and_query_exactly(serve) -> None:
    server = await serve(ok)
    upstream = Upstream.create("renderer", server.url)
    try:
        response = await upstream.send(
            "GET", "/a b/é/c;x=1/../d", query=b"q=%20a+b&x=%2F&&y=%zz", headers=[], timeout=2
        )
        await response.aclose()
    finally:
        await upstream.aclose()
    assert server.exchanges[0].request_line == "GET /a%20b/%C3%A9/c;x=1/../d?q=%20a+b&x=%2F&&y=%zz HTTP/1.1"


async def test_proxy_relays_headers_and_body_without_hop_by_hop_ones(serve, gateway_over) -> None:
    async def answer(exchange: Exchange) -> None:
        await exchange.answer(
            b"HTTP/1.1 201 Created\r\n"
            b"Content-Type: text/plain\r\n"
            b"X-Upstream: renderer\r\n"
            b"X-Repeated: 1\r\n"
            b"X-Repeated: 2\r\n"
            b"Connection: X-Hop-Back\r\n"
            b"X-Hop-Back: must not pass\r\n"
            b"Keep-Alive: timeout=5\r\n"
            b"Transfer-Encoding: chunked\r\n"
            b"\r\n"
            b"5\r\nhello\r\n0\r\n\r\n"
        )

    server = await serve(answer)
    client = gateway_over(renderer=server.url)
    response = await client.post(
        "/some/page?x=1&x=2",
        content=b"y" * 600,
        headers=[
            ("Connection", "keep-alive, X-Hop-Out"),
            ("X-Hop-Out", "secret"),
            ("TE", "trailers"),
            ("Keep-Alive", "300"),
            ("Upgrade", "h2c"),
            ("Proxy-Authorization", "Basic eA=="),
            ("X-Multi", "a"),
            ("X-Multi", "b"),
            ("Accept-Encoding", "identity"),
        ],
    )
    assert response.status_code == 201
    assert response.text == "hello"
    assert response.headers["x-upstream"] == "renderer"
    assert response.headers.get_list("x-repeated") == ["1", "2"]
    assert not {"x-hop-back", "keep-alive", "connection"} & set(response.headers.keys())
    seen = server.exchanges[0]
    assert seen.request_line == "POST /some/page?x=1&x=2 HTTP/1.1"
    assert seen.body == b"y" * 600 and seen.header("content-length") == ["600"]
    assert seen.header("x-multi") == ["a", "b"]
    assert seen.header("accept-encoding") == ["identity"]
    assert seen.header("x-oberon-auth") == ["anonymous"]  # the verified context
    names = {name.lower() for name, _ in seen.headers}
    assert not names & {"x-hop-out", "te", "keep-alive", "upgrade", "proxy-authorization", "content-type"}


async def test_proxy_streams_the_answer_as_it_arrives(serve) -> None:
    """The first piece reaches the browser while the upstream is still working on the rest."""
    loop = asyncio.get_running_loop()
    second_written_at: list[float] = []

    async def slowly(exchange: Exchange) -> None:
        await exchange.answer(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nTransfer-Encoding: chunked\r\n\r\n6\r\nfirst\n\r\n"
        )
        await asyncio.sleep(0.3)
        second_written_at.append(loop.time())
        await exchange.answer(b"7\r\nsecond\n\r\n0\r\n\r\n")

    server = await serve(slowly)
    gateway = Gateway(
        table=table(),
        upstreams=UpstreamPool.create({"renderer": server.url}),
        settings=GatewaySettings(session_secret="s" * 40, jwt_key="k" * 64),
    )
    pieces: list[tuple[float, bytes]] = []
    status: list[int] = []
    done = asyncio.Event()

    async def receive() -> dict[str, Any]:
        if not pieces and not status:
            return {"type": "http.request", "body": b"", "more_body": False}
        await done.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            status.append(message["status"])
        elif message["type"] == "http.response.body" and message.get("body"):
            pieces.append((loop.time(), message["body"]))

    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/e/1",
        "raw_path": b"/e/1",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"site.test"), (b"accept", b"text/html")],
        "client": ("127.0.0.1", 50000),
        "server": ("site.test", 80),
    }
    try:
        await gateway.app()(scope, receive, send)  # type: ignore[arg-type]
    finally:
        done.set()
        await gateway.upstreams.aclose()
    assert status == [200]
    assert b"".join(body for _, body in pieces) == b"first\nsecond\n"
    first_at, first = pieces[0]
    assert first == b"first\n"
    assert first_at < second_written_at[0]


async def test_proxy_stream_breaks_off_when_the_upstream_stalls_mid_answer(serve) -> None:
    async def stall(exchange: Exchange) -> None:
        await exchange.answer(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nfirst\r\n")
        await asyncio.sleep(10)

    server = await serve(stall)
    upstream = Upstream.create("renderer", server.url)
    loop = asyncio.get_running_loop()
    started = loop.time()
    try:
        response = await upstream.send("GET", "/", headers=[], timeout=0.3)
        chunks = []
        with pytest.raises(httpx.ReadTimeout):
            async for chunk in response.aiter_raw():
                chunks.append(chunk)
        await response.aclose()
    finally:
        await upstream.aclose()
    assert chunks == [b"first"]
    assert loop.time() - started < 2


async def test_proxy_never_sends_a_cookie_it_was_given(serve, gateway_over) -> None:
    async def set_cookie(exchange: Exchange) -> None:
        await exchange.answer(
            b"HTTP/1.1 200 OK\r\nSet-Cookie: visitor=alice; Path=/\r\nSet-Cookie: other=1\r\n"
            b"Content-Length: 2\r\n\r\nok"
        )

    server = await serve(set_cookie)
    client = gateway_over(renderer=server.url)
    first = await client.get("/one")
    assert first.status_code == 200 and "set-cookie" not in first.headers
    client.cookies.clear()
    assert (await client.get("/two")).status_code == 200
    assert [exchange.header("cookie") for exchange in server.exchanges] == [[], []]


async def test_proxy_does_not_follow_redirects(serve, gateway_over) -> None:
    async def redirect(exchange: Exchange) -> None:
        await exchange.answer(b"HTTP/1.1 302 Found\r\nLocation: /elsewhere\r\nContent-Length: 0\r\n\r\n")

    server = await serve(redirect)
    response = await gateway_over(renderer=server.url).get("/old")
    assert response.status_code == 302 and response.headers["location"] == "/elsewhere"
    assert [exchange.request_line for exchange in server.exchanges] == ["GET /old HTTP/1.1"]


async def test_proxy_answers_502_when_the_connection_is_refused(gateway_over) -> None:
    client = gateway_over(renderer=refused_url())
    response = await client.get("/page")
    assert response.status_code == 502
    assert response.json()["upstream"] == "renderer"
    page = await client.get("/page", headers={"Accept": "text/html"})
    assert page.status_code == 502 and "The renderer service is not answering right now." in page.text
    assert "ClientConnectorError" not in page.text
    health = await client.get("/_oberon/health")  # for load balancers: not ready, and nothing more
    assert health.status_code == 503 and health.json() == {"status": "unavailable"}


async def test_proxy_answers_504_when_the_upstream_is_too_slow(serve, gateway_over) -> None:
    async def never(exchange: Exchange) -> None:
        await asyncio.sleep(10)

    server = await serve(never)
    client = gateway_over(bff_shop=server.url)  # the route's timeout is 0.5 s
    loop = asyncio.get_running_loop()
    started = loop.time()
    response = await client.get("/bff/shop/slow")
    assert response.status_code == 504
    assert response.json()["upstream"] == "bff:shop"
    assert loop.time() - started < 2


async def test_proxy_stops_a_request_body_past_the_limit(serve) -> None:
    server = await serve(ok)

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(5):
            yield b"x" * 300

    upstream = Upstream.create("renderer", server.url)
    try:
        with pytest.raises(BodyTooLarge):
            await upstream.send("POST", "/", headers=[], body=LimitedBody(chunks(), limit=1000), timeout=2)
        response = await upstream.send("POST", "/", headers=[], body=b"small", timeout=2)  # the pool still works
        assert await response.aread() == b"ok"
    finally:
        await upstream.aclose()


async def test_proxy_keeps_to_its_connection_limit(serve) -> None:
    async def held(exchange: Exchange) -> None:
        await asyncio.sleep(0.1)
        await exchange.answer(OK)

    server = await serve(held)
    pool = UpstreamPool.create({"renderer": server.url}, max_connections=2)

    async def one() -> bytes:
        response = await pool["renderer"].send("GET", "/", headers=[], timeout=3)
        return await response.aread()

    try:
        assert await asyncio.gather(*(one() for _ in range(6))) == [b"ok"] * 6
    finally:
        await pool.aclose()
    assert server.most_connections == 2


async def test_proxy_closes_its_connections_on_aclose(serve) -> None:
    server = await serve(ok)
    upstream = Upstream.create("renderer", server.url)
    response = await upstream.send("GET", "/", headers=[], timeout=2)
    assert await response.aread() == b"ok"
    assert not server.closed.is_set()  # kept alive in the pool
    await upstream.aclose()
    await asyncio.wait_for(server.closed.wait(), 2)


async def test_proxy_raises_unavailable_naming_the_upstream() -> None:
    upstream = Upstream.create("bff:events", refused_url())
    try:
        with pytest.raises(UpstreamUnavailable) as raised:
            await upstream.send("GET", "/", headers=[], timeout=1)
    finally:
        await upstream.aclose()
    assert raised.value.upstream == "bff:events" and raised.value.status_code == 502


async def test_proxy_streams_an_in_process_app_as_it_answers() -> None:
    more = asyncio.Event()

    async def page(request: Request) -> Response:
        async def chunks() -> AsyncIterator[bytes]:
            yield b"first\n"
            await more.wait()
            yield b"second\n"

        return StreamingResponse(chunks(), media_type="text/html")

    upstream = Upstream.create("renderer", Starlette(routes=[Route("/page", page)]))
    try:
        response = await upstream.send("GET", "/page", headers=[], timeout=2)
        pieces = response.aiter_raw()
        assert await asyncio.wait_for(anext(pieces), 2) == b"first\n"  # the app has not finished
        more.set()
        assert [chunk async for chunk in pieces] == [b"second\n"]
    finally:
        await upstream.aclose()


async def test_proxy_relays_an_in_process_app_s_own_500(gateway_over) -> None:
    async def broken(request: Request) -> Response:
        raise RuntimeError("boom")

    response = await gateway_over(renderer=Starlette(routes=[Route("/broken", broken)])).get("/broken")
    assert response.status_code == 500


async def test_gateway_strips_tracking_parameters_before_proxying(serve, gateway_over) -> None:
    server = await serve(ok)
    client = gateway_over(renderer=server.url)
    response = await client.get("/search?utm_source=mail&q=jazz&UTM_Campaign=x&gclid=1&fbclid=2&msclkid=3&page=2")
    await client.get("/search?mc_cid=1&mc_eid=2")
    assert response.status_code == 200
    assert server.exchanges[0].request_line == "GET /search?q=jazz&page=2 HTTP/1.1"
    assert server.exchanges[1].request_line == "GET /search HTTP/1.1"
