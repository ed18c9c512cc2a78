"""The entrance's answers on a real loopback socket, byte for byte as uvicorn's own protocol writes them."""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import logging
import re
import socket
import threading
from collections.abc import Iterable, Iterator
from typing import Any, cast

import pytest
import uvicorn
from starlette.types import Receive, Scope, Send
from uvicorn.protocols.http.flow_control import FlowControl
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle

from oberon.ops.admission import AdaptiveLimit, Admission, AdmissionSettings
from oberon.runtime.server import EntranceCycle, entrance_protocol

PAGE = b"<!doctype html><title>page</title>" * 20
PARTS = (b"<!doctype html>", b"<p>later</p>", b"<p>last</p>")


LENGTH = (b"content-length", str(len(PAGE)).encode())
HEADS = {
    "/bad-name": [(b"x-one", b"1"), (b"x two", b"2"), LENGTH],
    "/bad-value-crlf": [(b"x-one", b"1\r\nx-injected: yes"), LENGTH],
    "/bad-value-nul": [(b"x-one", b"1\x00"), LENGTH],
    "/tab-in-value": [(b"x-one", b"1\t2"), LENGTH],
    "/close": [(b"Connection", b"keep-alive, Close"), LENGTH],
}
LENGTHS = {"/longer": len(PAGE) - 1, "/shorter": len(PAGE) + 1}  # the body longer, shorter than its length


async def site(scope: Scope, receive: Receive, send: Send) -> None:
    """Answers of every shape a server writes: whole, streamed, empty, failing after they started, a request's body."""
    if scope["type"] != "http":
        return
    path = scope["path"]
    if path == "/page":
        headers = [(b"content-type", b"text/html; charset=utf-8"), (b"content-length", str(len(PAGE)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": PAGE})
    elif path == "/stream":  # no length: uvicorn chunks it
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/html")]})
        for part in PARTS:
            await send({"type": "http.response.body", "body": part, "more_body": True})
            await asyncio.sleep(0)
        await send({"type": "http.response.body", "body": b"", "more_body": False})
    elif path in ("/empty", "/unchanged"):
        status = 204 if path == "/empty" else 304
        await send({"type": "http.response.start", "status": status, "headers": [(b"etag", b'"v1"')]})
        await send({"type": "http.response.body", "body": b""})
    elif path == "/fail":
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"100")]})
        raise RuntimeError("the page broke after its answer started")
    elif path in HEADS:  # the answer's own header lines
        await send({"type": "http.response.start", "status": 200, "headers": HEADS[path]})
        await send({"type": "http.response.body", "body": PAGE})
    elif path in LENGTHS:  # a length the body does not have
        headers = [(b"content-length", str(LENGTHS[path]).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": PAGE})
    elif path == "/stream-length":  # streamed in parts, with its length
        headers = [(b"content-length", str(sum(map(len, PARTS))).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        for part in PARTS:
            await send({"type": "http.response.body", "body": part, "more_body": part is not PARTS[-1]})
            await asyncio.sleep(0)
    elif path == "/echo":
        body = b""
        while (message := await receive())["type"] == "http.request":
            body += message.get("body", b"")
            if not message.get("more_body", False):
                break
        headers = [(b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})


class Recorder:
    """A connection's transport that keeps each write the server makes (a `writelines` as one), by the client's port."""

    writes: dict[int, list[bytes]] = {}

    def __init__(self, transport: asyncio.Transport) -> None:
        self._transport = transport
        self._writes: list[bytes] = []
        self.writes[transport.get_extra_info("peername")[1]] = self._writes

    def write(self, data: bytes) -> None:
        self._writes.append(bytes(data))
        self._transport.write(data)

    def writelines(self, parts: Iterable[bytes]) -> None:
        parts = list(parts)
        self._writes.append(b"".join(parts))
        self._transport.writelines(parts)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


def recording(protocol: type[asyncio.Protocol]) -> type[asyncio.Protocol]:
    class Recording(protocol):  # type: ignore[valid-type, misc]
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            super().connection_made(cast(asyncio.Transport, Recorder(cast(asyncio.Transport, transport))))

    return Recording


class Server:
    """The site behind an admission limit, on uvloop in a thread of its own, on a free port: served by uvicorn's own
    protocol, or by the `entrance`'s (which takes the limit itself)."""

    def __init__(self, *, entrance: bool) -> None:
        limit = AdaptiveLimit(settings=AdmissionSettings(min_limit=64, initial_limit=64, max_limit=64))
        self.admission = Admission(site, entrance="test", limit=limit)
        protocol = entrance_protocol(header_timeout=5, max_header_bytes=8192, admission=self.admission)
        http = recording(protocol if entrance else HttpToolsProtocol)
        config = uvicorn.Config(
            self.admission, http=http, loop="uvloop", lifespan="off", log_config=None, server_header=False
        )
        self.server = uvicorn.Server(config)
        self.socket = socket.socket()
        self.socket.bind(("127.0.0.1", 0))
        self.address = self.socket.getsockname()
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.socket]}, daemon=True)

    def __enter__(self) -> Server:
        self.thread.start()
        while not self.server.started:
            self.thread.join(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(5)
        self.socket.close()

    def exchange(self, *requests: bytes) -> tuple[bytes, list[bytes]]:
        """What the server sends for `requests`, one connection, each sent once the answer before it began to come
        (the last one closes the connection); and the writes it made."""
        with socket.create_connection(self.address, timeout=5) as sock:
            received = b""
            for request in requests:
                sock.sendall(request)
                received += sock.recv(65536)
            while chunk := sock.recv(65536):
                received += chunk
            port = sock.getsockname()[1]
        return re.sub(rb"\r\ndate: [^\r]*\r\n", b"\r\ndate: -\r\n", received), Recorder.writes.pop(port)


@pytest.fixture(scope="module")
def servers() -> Iterator[tuple[Server, Server]]:
    """uvicorn's own protocol, and the entrance's."""
    with Server(entrance=False) as plain, Server(entrance=True) as entrance:
        yield plain, entrance


def get(path: str, *, method: str = "GET", close: bool = True, extra: bytes = b"", version: str = "1.1") -> bytes:
    connection = b"Connection: close\r\n" if close else b""
    return f"{method} {path} HTTP/{version}\r\nHost: t\r\n".encode() + connection + extra + b"\r\n"


CONTINUE = get("/echo", method="PUT", extra=b"Expect: 100-continue\r\nContent-Length: 5\r\n") + b"hello"
EXCHANGES = {
    "page": [get("/page")],
    "streamed": [get("/stream")],
    "streamed-with-length": [get("/stream-length", close=False), get("/page")],
    "tab-in-a-value": [get("/tab-in-value")],
    "connection-close-answered": [get("/close", close=False)],  # the server closes: the exchange ends
    "http-1.0": [get("/page", close=False, version="1.0")],
    "http-1.0-keep-alive": [get("/stream", close=False, version="1.0", extra=b"Connection: keep-alive\r\n")],
    "head": [get("/page", method="HEAD")],
    "204": [get("/empty")],
    "304": [get("/unchanged")],
    "error-after-start": [get("/fail", close=False)],
    "expect-100-continue": [CONTINUE],
    "keep-alive": [
        get("/page", close=False),
        get("/page", method="HEAD", close=False),
        get("/stream", close=False),
        get("/empty", close=False),
        get("/page"),
    ],
    "pipelined": [
        get("/page", close=False)
        + get("/stream", close=False)
        + get("/page", method="HEAD", close=False)
        + get("/unchanged", close=False)
        + get("/page")
    ],
}


@pytest.mark.parametrize("requests", EXCHANGES.values(), ids=EXCHANGES.keys())
def test_entrance_sends_the_bytes_uvicorn_sends(servers: tuple[Server, Server], requests: list[bytes]) -> None:
    plain, entrance = servers
    expected, uvicorns_writes = plain.exchange(*requests)
    answers = len(re.findall(rb"HTTP/1.1 [2-5]\d\d ", expected))  # each request answered (not `100 Continue`)
    assert answers == sum(len(re.findall(rb" HTTP/1.[01]\r\n", request)) for request in requests)
    sent, writes = entrance.exchange(*requests)
    assert sent == expected
    assert len(writes) == len(uvicorns_writes)  # in as many writes (a system call each)


# The app's `send` fails: uvicorn logs the error and closes the connection, with what it wrote before.
FAILING = {
    "invalid-header-name": [get("/bad-name", close=False)],
    "invalid-header-value-crlf": [get("/bad-value-crlf", close=False)],
    "invalid-header-value-nul": [get("/bad-value-nul", close=False)],
    "body-longer-than-its-length": [get("/longer", close=False)],
    "body-shorter-than-its-length": [get("/shorter", close=False)],
}


@pytest.mark.parametrize("requests", FAILING.values(), ids=FAILING.keys())
def test_entrance_fails_an_answer_as_uvicorn_does(
    servers: tuple[Server, Server], requests: list[bytes], caplog: pytest.LogCaptureFixture
) -> None:
    plain, entrance = servers
    expected, uvicorns_writes = plain.exchange(*requests)
    uvicorns_errors = errors(caplog)
    assert len(uvicorns_errors) == 1
    caplog.clear()
    sent, writes = entrance.exchange(*requests)
    assert sent == expected
    assert len(writes) == len(uvicorns_writes)
    assert errors(caplog) == uvicorns_errors


def errors(caplog: pytest.LogCaptureFixture) -> list[str]:
    """The errors uvicorn logged from an app, as type and message."""
    return [f"{type(r.exc_info[1]).__name__}: {r.exc_info[1]}" for r in caplog.records if r.exc_info and r.exc_info[1]]


class Written(asyncio.Transport):
    """A transport that keeps each write, and whether it was closed."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.writes.append(bytes(data))

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed


async def answered(cycle_class: type[RequestResponseCycle], headers: Any, *, method: str = "GET") -> tuple[object, ...]:
    """What a cycle writes for an answer with `headers` and a 5-byte body: its writes, whether it closes the
    connection, what it raised."""
    transport = Written()
    cycle = cycle_class(
        scope=cast(Any, {"type": "http", "method": method, "http_version": "1.1"}),
        transport=transport,
        flow=FlowControl(transport),
        logger=logging.getLogger("test"),
        access_logger=logging.getLogger("test.access"),
        access_log=False,
        default_headers=[(b"date", b"Mon, 07 Dec 2026 12:00:00 GMT")],
        message_event=asyncio.Event(),
        expect_100_continue=False,
        keep_alive=True,
        on_response=lambda: None,
    )
    try:
        await cycle.send({"type": "http.response.start", "status": 200, "headers": headers})
        await cycle.send({"type": "http.response.body", "body": b"hello"})
        error = None
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}"
    return transport.writes, transport.closed, cycle.keep_alive, error


def heads() -> Iterator[list[Any]]:
    """Every byte in a name and in a value, and lines wrong in more than one way, or not lines at all."""
    for byte in (bytes([n]) for n in range(256)):
        yield [(b"x-one", b"1"), (b"x-" + byte + b"two", b"2"), (b"content-length", b"5")]
        yield [(b"x-one", b"1"), (b"x-two", b"2" + byte + b"2"), (b"content-length", b"5")]
    yield [(b"x-one", b"1\n"), (b"x two", b"2")]  # a wrong value before a wrong name
    yield [(b"x one", b"1"), (b"x-two", b"2\r")]
    yield [(b"content-length", b"5\x00")]  # a length `int` would refuse, with a byte uvicorn refuses first
    yield [(b"content-length", b"five"), (b"x two", b"2")]  # a length `int` refuses, before a wrong name
    yield [(b"content-length", b"5\r\n")]  # one `int` would take
    yield [(b"Content-Length", b"5"), (b"Connection", b"Close"), (b"Transfer-Encoding", b"chunked")]
    yield [(b"x-one", b"1", b"extra"), (b"content-length", b"5")]  # not pairs
    yield [(b"x-one",), (b"content-length", b"5")]
    yield [(b"x-one", b"1", b"extra")]
    yield [("x-one", "1"), (b"content-length", b"5")]  # not bytes
    yield [(b"x-one", 1)]
    yield [[b"x-one", b"1"], [bytearray(b"content-length"), bytearray(b"5")]]
    yield []


@pytest.mark.anyio
async def test_entrance_cycle_judges_every_answers_head_as_uvicorns_does() -> None:
    for lines in heads():
        for method in ("GET", "HEAD"):
            expected = await answered(RequestResponseCycle, lines, method=method)
            assert await answered(EntranceCycle, lines, method=method) == expected, lines
            # Headers given as any iterable, read once.
            assert await answered(EntranceCycle, iter(lines), method=method) == expected, lines


def test_entrance_copies_are_of_uvicorns_code_as_it_is() -> None:
    """`EntranceCycle.send` and `EntranceProtocol.on_headers_complete` are copies of uvicorn 0.55.0's: when uvicorn's
    change, compare them, carry the change over and take the new digests."""
    digests = {
        function.__qualname__: hashlib.sha256(inspect.getsource(function).encode()).hexdigest()[:16]
        for function in (RequestResponseCycle.send, HttpToolsProtocol.on_headers_complete)
    }
    assert digests == {
        "RequestResponseCycle.send": "abdd8601b326a8da",
        "HttpToolsProtocol.on_headers_complete": "1ea8589acfad92d8",
    }
