"""The lean HTTP/1.1 transport against real servers on loopback: uvicorn for well-behaved answers, a raw
asyncio server for what a broken or hostile upstream sends."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import struct
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from oberon.client.http1 import MAX_HEAD_BYTES, Http1Transport
from oberon.client.transport import AiohttpTransport, Answer
from oberon.client.upstream import ClientSettings, Upstream
from oberon.exceptions import InvalidResponse, UpstreamError, UpstreamTimeout

pytestmark = pytest.mark.anyio

LIMIT = 100_000


async def send(
    transport: Http1Transport,
    path: str = "/x",
    *,
    method: str = "GET",
    headers: dict[str, str] | None = None,
    body: bytes | None = None,
    timeout: float = 2.0,
    max_body: int = LIMIT,
) -> Answer:
    return await transport.send(method, path, headers=headers or {}, body=body, timeout=timeout, max_body=max_body)


# A well-behaved upstream: uvicorn.


async def echo(request: Request) -> Response:
    return JSONResponse(
        {
            "method": request.method,
            "path": request.url.path,
            "query": request.url.query,
            "host": request.headers.get("host"),
            "type": request.headers.get("content-type"),
            "cookie": request.headers.get("cookie"),
            "budget": request.headers.get("x-oberon-budget-ms"),
            "body": (await request.body()).decode(),
            "client_port": request.client.port if request.client else None,
        },
        headers={"Cache-Control": "max-age=5", "Set-Cookie": "session=visitor-a"},
    )


async def chunked(request: Request) -> Response:
    async def parts() -> AsyncIterator[bytes]:
        for n in range(50):
            yield b"%04d," % n
            await asyncio.sleep(0)

    return StreamingResponse(parts(), media_type="Application/JSON; charset=utf-8")


async def slow(request: Request) -> Response:
    await asyncio.sleep(float(request.query_params.get("s", "0.3")))
    return JSONResponse({"port": request.client.port if request.client else None})


@pytest.fixture
async def uvicorn_url() -> AsyncIterator[str]:
    methods = ["GET", "POST", "PUT", "DELETE", "HEAD"]
    app = Starlette(
        routes=[Route("/echo/{rest:path}", echo, methods=methods), Route("/chunked", chunked), Route("/slow", slow)]
    )
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        await asyncio.sleep(0.01)
    yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    server.should_exit = True
    await task
    sock.close()


@pytest.fixture
async def client(uvicorn_url: str) -> AsyncIterator[Http1Transport]:
    transport = Http1Transport("events", uvicorn_url, max_connections=8)
    yield transport
    await transport.aclose()


async def test_a_get_answers_status_headers_and_body(client: Http1Transport, uvicorn_url: str) -> None:
    answer = await send(client, "/echo/a?x=1", headers={"X-Oberon-Budget-Ms": "900"})
    assert answer.status_code == 200
    assert answer.content_type == "application/json" and answer.cache_control == "max-age=5"
    echoed = json.loads(answer.body)
    assert echoed["method"] == "GET" and echoed["path"] == "/echo/a" and echoed["query"] == "x=1"
    assert echoed["host"] == uvicorn_url.removeprefix("http://") and echoed["budget"] == "900"


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE"])
async def test_a_request_body_arrives_with_its_content_type(client: Http1Transport, method: str) -> None:
    answer = await send(
        client, "/echo/cart", method=method, headers={"Content-Type": "application/json"}, body=b'{"q":1}'
    )
    echoed = json.loads(answer.body)
    assert (echoed["method"], echoed["body"], echoed["type"]) == (method, '{"q":1}', "application/json")


async def test_a_post_without_a_body_says_so(client: Http1Transport) -> None:
    echoed = json.loads((await send(client, "/echo/empty", method="POST")).body)
    assert echoed["method"] == "POST" and echoed["body"] == ""


async def test_a_head_answers_without_a_body_and_the_next_call_still_works(client: Http1Transport) -> None:
    answer = await send(client, "/echo/head", method="HEAD")
    assert answer.status_code == 200 and answer.body == b""
    assert (await send(client, "/echo/after")).status_code == 200


async def test_a_chunked_body_is_read_whole_and_the_media_type_lower_cased(client: Http1Transport) -> None:
    answer = await send(client, "/chunked")
    assert answer.body == b"".join(b"%04d," % n for n in range(50))
    assert answer.content_type == "application/json"


async def test_connections_are_kept_alive_and_no_cookie_is_replayed(client: Http1Transport) -> None:
    answers = [json.loads((await send(client, f"/echo/{n}")).body) for n in range(5)]
    assert len({a["client_port"] for a in answers}) == 1  # one connection served every call
    assert all(a["cookie"] is None for a in answers)  # the first answer's Set-Cookie was never sent back


async def test_a_path_with_spaces_or_non_ascii_is_percent_encoded(client: Http1Transport) -> None:
    echoed = json.loads((await send(client, "/echo/a b/é?q=x y")).body)
    assert echoed["path"] == "/echo/a b/é" and echoed["query"] == "q=x%20y"


async def test_the_pool_never_opens_more_than_its_limit_and_serves_waiting_calls(uvicorn_url: str) -> None:
    transport = Http1Transport("events", uvicorn_url, max_connections=2)
    try:
        answers = await asyncio.gather(*(send(transport, "/slow?s=0.1") for _ in range(6)))
    finally:
        await transport.aclose()
    assert len({json.loads(a.body)["port"] for a in answers}) == 2


async def test_a_call_waiting_for_a_connection_times_out_within_its_budget_and_frees_nothing_twice(
    uvicorn_url: str,
) -> None:
    transport = Http1Transport("events", uvicorn_url, max_connections=1)
    loop = asyncio.get_running_loop()
    try:
        holder = asyncio.create_task(send(transport, "/slow?s=0.4"))
        await asyncio.sleep(0.05)
        started = loop.time()
        with pytest.raises(UpstreamTimeout, match=r"events: GET /echo/w took longer than 0\.1s"):
            await send(transport, "/echo/w", timeout=0.1)
        assert loop.time() - started < 0.3
        assert (await holder).status_code == 200
        answers = await asyncio.gather(*(send(transport, "/slow?s=0.05") for _ in range(3)))
        assert len({json.loads(a.body)["port"] for a in answers}) == 1  # still one connection
    finally:
        await transport.aclose()


async def test_waiting_calls_are_served_first_come_first_served(uvicorn_url: str) -> None:
    transport = Http1Transport("events", uvicorn_url, max_connections=1)
    order: list[int] = []

    async def call(n: int) -> None:
        await send(transport, f"/echo/{n}")
        order.append(n)

    try:
        holder = asyncio.create_task(send(transport, "/slow?s=0.1"))
        await asyncio.sleep(0.02)
        calls = []
        for n in range(5):
            calls.append(asyncio.create_task(call(n)))
            await asyncio.sleep(0.005)  # each queues in turn
        await asyncio.gather(holder, *calls)
    finally:
        await transport.aclose()
    assert order == [0, 1, 2, 3, 4]


async def test_an_unreachable_upstream_is_an_upstream_error_naming_the_call() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, never listening: refused
        transport = Http1Transport("events", f"http://127.0.0.1:{port}", max_connections=2)
        with pytest.raises(UpstreamError, match=r"events: GET /x failed: ConnectionRefusedError"):
            await send(transport)
        await transport.aclose()
        transport = Http1Transport("events", f"http://127.0.0.1:{port}", max_connections=1)
        failed = await asyncio.gather(*(send(transport, timeout=1) for _ in range(3)), return_exceptions=True)
        await transport.aclose()
    # Each failed connect freed its place in the pool: no call waited for one until its timeout.
    assert all("ConnectionRefusedError" in str(error) for error in failed), failed


async def test_aclose_closes_every_connection_and_the_transport_opens_new_ones_after(uvicorn_url: str) -> None:
    transport = Http1Transport("events", uvicorn_url, max_connections=4)
    first = await asyncio.gather(*(send(transport, "/slow?s=0.05") for _ in range(3)))
    await transport.aclose()
    second = await send(transport, "/slow?s=0")
    await transport.aclose()
    ports = {json.loads(a.body)["port"] for a in first}
    assert len(ports) == 3 and json.loads(second.body)["port"] not in ports


def test_only_plain_http_urls_with_a_host_and_no_credentials_are_served() -> None:
    assert Http1Transport.serves("http://bff:8000/api")
    assert not Http1Transport.serves("https://bff")
    assert not Http1Transport.serves("http://user:pw@bff")
    with pytest.raises(ValueError, match="not an http:// URL"):
        Http1Transport("events", "https://bff", max_connections=1)


async def test_upstreams_at_http_urls_use_it_and_https_ones_aiohttp() -> None:
    plain = Upstream.create("a", "http://127.0.0.1:1/api", settings=ClientSettings(max_connections=3))
    tls = Upstream.create("b", "https://127.0.0.1:1")
    assert isinstance(plain.transport, Http1Transport) and plain.transport.max_connections == 3
    assert isinstance(tls.transport, AiohttpTransport)
    await plain.aclose()
    await tls.aclose()


async def test_a_base_url_path_prefixes_every_call(uvicorn_url: str) -> None:
    transport = Http1Transport("events", uvicorn_url + "/echo/", max_connections=1)
    try:
        assert json.loads((await send(transport, "/deep")).body)["path"] == "/echo/deep"
    finally:
        await transport.aclose()


async def test_a_header_with_a_line_break_is_refused_before_anything_is_sent(client: Http1Transport) -> None:
    with pytest.raises(UpstreamError, match="holds a line break"):
        await send(client, headers={"X-Evil": "a\r\nX-Injected: 1"})


@pytest.mark.parametrize(
    "headers",
    [{"X-Evil": "a\nX-Injected: 1"}, {"X-Evil": "a\rb"}, {"X-Evil": "a\0b"}, {"X-Evil\r\nX-Injected": "1"}],
    ids=["lf", "cr", "nul", "in-the-name"],
)
async def test_every_line_break_or_nul_in_a_header_is_refused(client: Http1Transport, headers: dict[str, str]) -> None:
    with pytest.raises(UpstreamError, match="holds a line break"):
        await send(client, headers={"X-Fine": "1", **headers})


# A raw server that answers as each test tells it.

Answerer = Callable[["RawRequest", asyncio.StreamWriter], Awaitable[bool]]  # False: close the connection


@dataclass
class RawRequest:
    connection: int  # which connection, from 0
    index: int  # which request on that connection, from 0
    head: bytes
    body: bytes


@dataclass
class RawServer:
    answer: Answerer
    requests: list[RawRequest] = field(default_factory=list)
    connections: int = 0
    open: int = 0
    closed_by_client: int = 0
    server: asyncio.Server | None = None
    tasks: set[asyncio.Task[None]] = field(default_factory=set)

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.tasks.add(task)
        number = self.connections
        self.connections += 1
        self.open += 1
        try:
            for index in range(1_000):
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    self.closed_by_client += 1
                    return
                fields = dict(line.partition(b": ")[::2] for line in head.lower().split(b"\r\n")[1:])
                body = await reader.readexactly(int(fields.get(b"content-length", b"0")))
                request = RawRequest(number, index, head, body)
                self.requests.append(request)
                with contextlib.suppress(ConnectionError):
                    if not await self.answer(request, writer):
                        return
        except asyncio.CancelledError:
            pass  # the test is over (a cancelled handler would be logged as an error by asyncio's streams)
        finally:
            self.open -= 1
            writer.close()

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"


@pytest.fixture
async def raw() -> AsyncIterator[Callable[[Answerer], Awaitable[RawServer]]]:
    servers: list[RawServer] = []

    async def start(answer: Answerer) -> RawServer:
        server = RawServer(answer)
        server.server = await asyncio.start_server(server.serve, "127.0.0.1", 0)
        servers.append(server)
        return server

    yield start
    for server in servers:
        for task in server.tasks:
            task.cancel()
        await asyncio.gather(*server.tasks, return_exceptions=True)
        assert server.server is not None
        server.server.close()
        await server.server.wait_closed()


def ok(body: bytes = b'{"ok":true}', *, extra: bytes = b"") -> bytes:
    return b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n%s\r\n%s" % (
        len(body),
        extra,
        body,
    )


async def answer_ok(request: RawRequest, writer: asyncio.StreamWriter) -> bool:
    writer.write(ok(b'{"n":%d}' % request.index))
    await writer.drain()
    return True


@pytest.fixture
async def transports() -> AsyncIterator[Callable[[str], Http1Transport]]:
    made: list[Http1Transport] = []

    def make(url: str, max_connections: int = 4) -> Http1Transport:
        made.append(Http1Transport("events", url, max_connections=max_connections))
        return made[-1]

    yield make
    for transport in made:
        await transport.aclose()


async def test_headers_are_read_in_any_case(raw, transports) -> None:
    async def shouting(request: RawRequest, writer: asyncio.StreamWriter) -> bool:
        writer.write(
            b"HTTP/1.1 503 Busy\r\nCONTENT-TYPE: Application/Problem+JSON\r\ncache-CONTROL: no-store\r\n"
            b"x-OBERON-dependency-FAILED: prices\r\ncontent-length: 2\r\n\r\n{}"
        )
        return True

    answer = await send(transports((await raw(shouting)).url))
    assert (answer.status_code, answer.content_type, answer.cache_control, answer.dependency_failed) == (
        503,
        "application/problem+json",
        "no-store",
        "prices",
    )


async def test_an_answer_asking_to_close_is_not_reused(raw, transports) -> None:
    async def closing(request: RawRequest, writer: asyncio.StreamWriter) -> bool:
        writer.write(ok(extra=b"Connection: close\r\n"))
        await writer.drain()
        return True  # but keeps the socket open: the client must not send on it again

    server = await raw(closing)
    transport = transports(server.url)
    for _ in range(3):
        assert (await send(transport)).body == b'{"ok":true}'
    assert server.connections == 3 and all(r.index == 0 for r in server.requests)


async def test_a_close_delimited_body_is_read_to_the_end_of_the_connection(raw, transports) -> None:
    async def until_close(request: RawRequest, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n[1,")
        await writer.drain()
        await asyncio.sleep(0.05)
        writer.write(b"2]")
        await writer.drain()
        return False

    server = await raw(until_close)
    transport = transports(server.url)
    assert (await send(transport)).body == b"[1,2]"
    assert (await send(transport)).body == b"[1,2]"
    assert server.connections == 2


async def test_a_close_delimited_body_cut_by_a_reset_is_an_error_not_a_short_body(raw, transports) -> None:
    async def reset(request: RawRequest, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n[1,")
        await writer.drain()
        await asyncio.sleep(0.05)
        # A reset, not an end: closing with a zero linger sends RST (a plain close would be a clean FIN).
        writer.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.transport.abort()
        return False

    with pytest.raises(UpstreamError, match="closed in the middle of the answer"):
        await send(transports((await raw(reset)).url))


async def test_a_close_delimited_body_past_the_limit_is_refused(raw, transports) -> None:
    async def endless(request: RawRequest, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n")
        for _ in range(1000):
            writer.write(b" " * 1024)
            await writer.drain()
        return False

    with pytest.raises(InvalidResponse, match="events: GET /x answered more than 10000 bytes"):
        await send(transports((await raw(endless)).url), max_body=10_000, timeout=5)


async def test_a_declared_length_past_the_limit_is_refused_at_once(raw, transports) -> None:
    async def huge(request: RawRequest, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 5000000\r\n\r\n[")
        await writer.drain()
        await asyncio.sleep(5)
        return False

    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(InvalidResponse, match="answered more than 1000 bytes"):
        await send(transports((await raw(huge)).url), max_body=1000, timeout=3)
    assert loop.time() - started < 1


async def test_a_chunked_body_is_counted_as_it_arrives(raw, transports) -> None:
    sent = 0

    async def endless(request: RawRequest, writer: asyncio.StreamWriter) -> bool:
        nonlocal sent
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n")
        for _ in range(10_000):
            writer.write(b"400\r\n" + b" " * 1024 + b"\r\n")
            sent += 1024
            await writer.drain()
        return False

    with pytest.raises(InvalidResponse, match="more than 64000 bytes"):
        await send(transports((await raw(endless)).url), max_body=64_000, timeout=5)
    assert sent < 5_000_000  # refused long before the end


async def test_an_answer_past_the_limit_or_cut_short_leaves_no_connection_behind(raw, transports) -> None:
    async def big_then_small(request: RawRequest, writer: asyncio.StreamWriter) -> bool:
        if request.connection == 0:
            writer.write(ok(b"[" + b"1," * 600 + b"1]"))  # past the limit: the rest of it stays unread
        else:
            writer.write(ok())
        await writer.drain()
        return True

    server = await raw(big_then_small)
    transport = transports(server.url, 1)
    with pytest.raises(InvalidResponse):
        await send(transport, max_body=1000)
    assert (await send(transport, max_body=1000)).body == b'{"ok":true}'  # not the tail of the first answer
    assert server.connections == 2


async def test_a_timed_out_call_does_not_leave_its_answer_for_the_next(raw, transports) -> None:
    async def slow_first(request: RawRequest, writer: asyncio.StreamWriter) -> bool:
        if request.connection == 0:
            await asyncio.sleep(0.3)
            writer.write(ok(b'{"late":true}'))
        else:
            writer.write(ok())
        await writer.drain()
        return True

    transport = transports((await raw(slow_first)).url, 1)
    with pytest.raises(UpstreamTimeout):
        await send(transport, timeout=0.1)
    await asyncio.sleep(0.3)
    assert (await send(transport)).body == b'{"ok":true}'


async def test_a_stale_keep_alive_connection_is_retried_once_on_a_fresh_one(raw, transports) -> None:
    async def one_per_connection(request: RawRequest, writer: asyncio.StreamWriter) -> bool:
        if request.index > 0:
            return False  # read the request, then hung up without a word: as a server whose idle timer fired
        writer.write(ok(b'{"c":%d}' % request.connection))
        await writer.drain()
        return True

    server = await raw(one_per_connection)
    transport = transports(server.url, 1)
    assert (await send(transport)).body == b'{"c":0}'
    assert (await send(transport, method="PUT", body=b"{}")).body == b'{"c":1}'
    assert [(r.connection, r.index) for r in server.requests] == [(0, 0), (0, 1), (1, 0)]


async def test_a_post_the_server_read_before_it_hung_up_is_not_sent_twice(raw, transports) -> None:
    async def one_per_connection(request: RawRequest, writer: asyncio.StreamWriter) -> bool:
        if request.index > 0:
            return False  # read the POST, then hung up: it may have acted on it
        writer.write(ok())
        await writer.drain()
        return True

    server = await raw(one_per_connection)
    transport = transports(server.url, 1)
    await send(transport)
    with pytest.raises(UpstreamError, match="closed before any answer"):
        await send(transport, method="POST", body=b"{}")
    assert len(server.requests) == 2


async def test_the_retry_after_a_stale_connection_is_on_a_new_one_not_another_idle_one(raw, transports) -> None:
    async def one_per_connection(request: RawRequest, writer: asyncio.StreamWriter) -> bool:
        if request.index > 0:
            return False  # every idle connection has gone stale
        await asyncio.sleep(0.05)
        writer.write(ok(b'{"c":%d}' % request.connection))
        await writer.drain()
        return True

    server = await raw(one_per_connection)
    transport = transports(server.url, 2)
    await asyncio.gather(send(transport), send(transport))  # two idle connections
    assert (await send(transport)).body == b'{"c":2}'
    assert server.connections == 3 and len(server.requests) == 4  # one stale try, then a new connection


async def test_a_fresh_connection_closed_without_an_answer_is_not_retried(raw, transports) -> None:
    async def mute(request: RawRequest, writer: asyncio.StreamWriter) -> bool:
        return False

    server = await raw(mute)
    with pytest.raises(UpstreamError, match="events: GET /x failed: the connection closed before any answer"):
        await send(transports(server.url))
    assert len(server.requests) == 1


async def test_a_connection_closed_after_part_of_the_answer_is_not_retried(raw, transports) -> None:
    async def partial_second(request: RawRequest, writer: asyncio.StreamWriter) -> bool:
        writer.write(ok() if request.index == 0 else b"HTTP/1.1 200 OK\r\nContent-")
        await writer.drain()
        return request.index == 0

    server = await raw(partial_second)
    transport = transports(server.url, 1)
    await send(transport)
    with pytest.raises(UpstreamError, match="closed in the middle of the answer"):
        await send(transport)
    assert len(server.requests) == 2


async def test_an_interim_100_continue_is_skipped(raw, transports) -> None:
    async def interim(request: RawRequest, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"HTTP/1.1 100 Continue\r\nX-Interim: 1\r\n\r\n" + ok(b"[1]"))
        await writer.drain()
        return True

    transport = transports((await raw(interim)).url)
    assert [(await send(transport)).body for _ in range(2)] == [b"[1]", b"[1]"]


async def test_a_head_answer_declaring_a_large_body_is_fine(raw, transports) -> None:
    async def head(request: RawRequest, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Encoding: identity\r\n")
        writer.write(b"Content-Length: 50000000\r\n\r\n")
        await writer.drain()
        return True

    answer = await send(transports((await raw(head)).url), method="HEAD", max_body=10)
    assert (answer.status_code, answer.content_type, answer.body) == (200, "text/html", b"")


async def test_an_answer_compressed_unasked_is_refused(raw, transports) -> None:
    async def gzipped(request: RawRequest, writer: asyncio.StreamWriter) -> bool:
        writer.write(ok(b"\x1f\x8b", extra=b"Content-Encoding: gzip\r\n"))
        await writer.drain()
        return True

    with pytest.raises(InvalidResponse, match="Content-Encoding 'gzip'"):
        await send(transports((await raw(gzipped)).url))


async def test_bytes_sent_to_an_idle_connection_close_it(raw, transports) -> None:
    async def late_junk(request: RawRequest, writer: asyncio.StreamWriter) -> bool:
        writer.write(ok())
        await writer.drain()
        await asyncio.sleep(0.05)
        writer.write(b"junk")
        await writer.drain()
        return True

    server = await raw(late_junk)
    transport = transports(server.url, 1)
    assert (await send(transport)).body == b'{"ok":true}'
    await asyncio.sleep(0.15)
    assert (await send(transport)).body == b'{"ok":true}'
    assert server.connections == 2


async def test_bytes_nobody_asked_for_close_the_connection(raw, transports) -> None:
    async def extra(request: RawRequest, writer: asyncio.StreamWriter) -> bool:
        writer.write(ok() + b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nsmugg")
        await writer.drain()
        return True

    server = await raw(extra)
    transport = transports(server.url, 1)
    assert (await send(transport)).body == b'{"ok":true}'
    assert (await send(transport)).body == b'{"ok":true}'  # not "smugg"
    assert server.connections == 2


HOSTILE = {
    "garbage status line": (b"HELLO WORLD\r\n\r\n", "answered malformed HTTP"),
    "bad content length": (b"HTTP/1.1 200 OK\r\nContent-Length: 1x\r\n\r\n", "answered malformed HTTP"),
    "length and chunks": (
        b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
        "answered malformed HTTP",
    ),
    "header flood": (
        b"HTTP/1.1 200 OK\r\n" + b"X-A: b\r\n" * 20_000 + b"Content-Length: 0\r\n\r\n",
        f"answered a head of more than {MAX_HEAD_BYTES} bytes",
    ),
    "huge header": (
        b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * 200_000 + b"\r\nContent-Length: 0\r\n\r\n",
        f"answered a head of more than {MAX_HEAD_BYTES} bytes",
    ),
    "protocol switch": (
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n",
        "answered with a protocol switch",
    ),
    "http/0.9 body": (b"just some bytes\n", "answered malformed HTTP"),
}


@pytest.mark.parametrize("sent, message", HOSTILE.values(), ids=HOSTILE.keys())
async def test_hostile_answers_are_clear_upstream_errors(raw, transports, sent: bytes, message: str) -> None:
    async def hostile(request: RawRequest, writer: asyncio.StreamWriter) -> bool:
        writer.write(sent)
        await writer.drain()
        await asyncio.sleep(5)  # and hold the connection open
        return False

    server = await raw(hostile)
    transport = transports(server.url)
    with pytest.raises(UpstreamError, match=f"events: GET /x {message}") as raised:
        await send(transport, timeout=3)
    assert not isinstance(raised.value, UpstreamTimeout)


async def test_a_head_past_the_limit_in_one_read_is_refused(raw, transports, monkeypatch) -> None:
    monkeypatch.setattr("oberon.client.http1.MAX_HEAD_BYTES", 1000)

    async def big_head(request: RawRequest, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\n" + b"X-A: bbbbbbbbbb\r\n" * 100 + b"Content-Length: 2\r\n\r\n{}")
        await writer.drain()
        return True

    with pytest.raises(UpstreamError, match="head of more than 1000 bytes"):
        await send(transports((await raw(big_head)).url))


async def test_a_head_that_never_ends_is_refused_once_past_the_limit(raw, transports) -> None:
    async def endless_header(request: RawRequest, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\nX-Drip: ")
        for _ in range(1000):  # no line end, ever
            writer.write(b"a" * 1024)
            await writer.drain()
        return False

    with pytest.raises(UpstreamError, match="head of more than"):
        await send(transports((await raw(endless_header)).url), timeout=5)


async def test_a_reset_in_the_middle_of_the_body_is_an_upstream_error(raw, transports) -> None:
    async def reset(request: RawRequest, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{")
        await writer.drain()
        await asyncio.sleep(0.05)
        writer.transport.abort()
        return False

    with pytest.raises(UpstreamError, match="closed in the middle of the answer"):
        await send(transports((await raw(reset)).url))


async def test_a_slow_drip_times_out_within_the_whole_calls_budget(raw, transports) -> None:
    async def drip(request: RawRequest, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n")
        for _ in range(100):  # a byte every 50 ms: each read is quick, the whole never comes
            writer.write(b" ")
            await writer.drain()
            await asyncio.sleep(0.05)
        return False

    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(UpstreamTimeout, match=r"events: GET /x took longer than 0\.3s"):
        await send(transports((await raw(drip)).url), timeout=0.3)
    assert loop.time() - started < 0.6


async def test_a_cancelled_call_frees_its_connection(raw, transports) -> None:
    async def slow_once(request: RawRequest, writer: asyncio.StreamWriter) -> bool:
        if request.connection == 0:
            await asyncio.sleep(1)
        writer.write(ok())
        await writer.drain()
        return True

    transport = transports((await raw(slow_once)).url, 1)
    call = asyncio.create_task(send(transport))
    await asyncio.sleep(0.05)
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    assert (await send(transport, timeout=0.5)).body == b'{"ok":true}'  # a new connection in its place


async def test_a_call_cancelled_just_as_it_was_handed_a_connection_passes_it_on(raw, transports) -> None:
    async def slowish(request: RawRequest, writer: asyncio.StreamWriter) -> bool:
        await asyncio.sleep(0.05)
        writer.write(ok())
        await writer.drain()
        return True

    transport = transports((await raw(slowish)).url, 1)
    waiting: asyncio.Task[Answer] | None = None

    async def holder() -> None:
        await send(transport)
        assert waiting is not None
        waiting.cancel()  # the connection was just handed to it; it has not run since

    first = asyncio.create_task(holder())
    await asyncio.sleep(0.01)
    waiting = asyncio.create_task(send(transport))
    await first
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert (await send(transport, timeout=0.5)).body == b'{"ok":true}'  # the connection was not lost with it


async def test_aclose_closes_the_connections_of_the_pool(raw) -> None:
    async def slowish(request: RawRequest, writer: asyncio.StreamWriter) -> bool:
        await asyncio.sleep(0.05)
        writer.write(ok())
        await writer.drain()
        return True

    server = await raw(slowish)
    transport = Http1Transport("events", server.url, max_connections=4)
    await asyncio.gather(*(send(transport) for _ in range(3)))
    assert server.open == 3
    await transport.aclose()
    await asyncio.sleep(0.1)
    assert server.open == 0 and server.closed_by_client == 3


async def test_each_call_on_a_reused_connection_times_out_at_its_own_deadline(raw, transports) -> None:
    """A connection keeps one deadline timer across its calls (`_Connection._expire`): a call after one with a shorter
    budget is not failed by the timer that call left, and one after a longer budget does not wait for that timer."""

    async def by_path(request: RawRequest, writer: asyncio.StreamWriter) -> bool:
        if b" /late " in request.head:
            await asyncio.sleep(0.25)
        elif b" /hang " in request.head:
            await asyncio.sleep(5)
        writer.write(ok())
        await writer.drain()
        return True

    server = await raw(by_path)
    transport = transports(server.url, 1)
    loop = asyncio.get_running_loop()
    assert (await send(transport, "/x", timeout=0.1)).body == b'{"ok":true}'
    assert (await send(transport, "/late", timeout=0.6)).body == b'{"ok":true}'  # past the first call's deadline
    started = loop.time()
    with pytest.raises(UpstreamTimeout, match=r"GET /hang took longer than 0\.3s"):
        await send(transport, "/hang", timeout=0.3)
    assert 0.29 <= loop.time() - started < 0.5
    assert server.connections == 1  # all three on one connection; the timed-out call closed it

    assert (await send(transport, "/x", timeout=30)).body == b'{"ok":true}'
    started = loop.time()
    with pytest.raises(UpstreamTimeout, match=r"GET /hang took longer than 0\.1s"):
        await send(transport, "/hang", timeout=0.1)  # long before the timer the previous call left
    assert 0.09 <= loop.time() - started < 0.3
    assert server.connections == 2
