"""The entrance's answers on a real loopback socket, byte for byte as uvicorn's own protocol writes them."""

from __future__ import annotations

import asyncio
import re
import socket
import threading
from collections.abc import Iterable, Iterator
from typing import Any, cast

import pytest
import uvicorn
from starlette.types import Receive, Scope, Send
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from oberon.ops.admission import AdaptiveLimit, Admission, AdmissionSettings
from oberon.runtime.server import entrance_protocol

PAGE = b"<!doctype html><title>page</title>" * 20
PARTS = (b"<!doctype html>", b"<p>later</p>", b"<p>last</p>")


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


def get(path: str, *, method: str = "GET", close: bool = True, extra: bytes = b"") -> bytes:
    connection = b"Connection: close\r\n" if close else b""
    return f"{method} {path} HTTP/1.1\r\nHost: t\r\n".encode() + connection + extra + b"\r\n"


CONTINUE = get("/echo", method="PUT", extra=b"Expect: 100-continue\r\nContent-Length: 5\r\n") + b"hello"
EXCHANGES = {
    "page": [get("/page")],
    "streamed": [get("/stream")],
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
    assert answers == sum(request.count(b" HTTP/1.1\r\n") for request in requests)
    sent, writes = entrance.exchange(*requests)
    assert sent == expected
    assert len(writes) == len(uvicorns_writes)  # in as many writes (a system call each)
