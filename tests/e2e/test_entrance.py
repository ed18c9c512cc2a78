"""Limits at the entrance, over raw sockets: a header deadline (slowloris), a header size, a connection limit."""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from urllib.parse import urlsplit

import httpx
import pytest

Server = Callable[..., AbstractContextManager[str]]
HEADER_TIMEOUT = 1.5
MAX_HEADER_BYTES = 2048
MAX_CONNECTIONS = 4


@pytest.fixture(scope="module")
def entrance(server: Server) -> Iterator[tuple[str, int]]:
    env = {"OBERON_HEADER_TIMEOUT": str(HEADER_TIMEOUT), "OBERON_MAX_HEADER_BYTES": str(MAX_HEADER_BYTES)}
    with server(env=env) as base:
        parts = urlsplit(base)
        yield parts.hostname or "127.0.0.1", parts.port or 80


def connect(address: tuple[str, int]) -> socket.socket:
    sock = socket.create_connection(address, timeout=10)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def answer(sock: socket.socket) -> bytes:
    """What the server sends until it closes the connection."""
    received = b""
    with contextlib.suppress(ConnectionResetError):
        while chunk := sock.recv(65536):
            received += chunk
    return received


def test_entrance_cuts_off_a_client_that_sends_its_headers_slowly(entrance: tuple[str, int]) -> None:
    with connect(entrance) as sock:
        started = time.monotonic()
        sock.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        sock.settimeout(0.3)
        closed = b""
        while time.monotonic() - started < HEADER_TIMEOUT + 5:
            try:
                sock.sendall(b"X-Slow: a\r\n")  # one header line at a time, never the blank line that ends them
                closed = sock.recv(65536)
                if closed == b"" or closed.startswith(b"HTTP/1.1 408"):
                    break
            except TimeoutError:
                continue
            except (BrokenPipeError, ConnectionResetError):
                break
        elapsed = time.monotonic() - started
    assert HEADER_TIMEOUT - 0.1 <= elapsed < HEADER_TIMEOUT + 3, elapsed
    assert closed == b"" or closed.startswith(b"HTTP/1.1 408")


def test_entrance_closes_a_connection_that_sends_nothing(entrance: tuple[str, int]) -> None:
    with connect(entrance) as sock:
        started = time.monotonic()
        received = answer(sock)
        assert time.monotonic() - started < HEADER_TIMEOUT + 3
    assert received == b"" or received.startswith(b"HTTP/1.1 408")


def test_entrance_refuses_a_header_block_over_the_limit_without_waiting_for_its_end(
    entrance: tuple[str, int],
) -> None:
    with connect(entrance) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        sock.sendall(b"X-Big: " + b"a" * (3 * MAX_HEADER_BYTES) + b"\r\n")  # and no end of the headers
        sock.settimeout(HEADER_TIMEOUT / 2)  # well before the header deadline
        received = sock.recv(65536)
    assert received.startswith(b"HTTP/1.1 431"), received[:80]


def test_entrance_keeps_answering_ordinary_requests(entrance: tuple[str, int]) -> None:
    host, port = entrance
    with httpx.Client(base_url=f"http://{host}:{port}") as client:
        for _ in range(3):
            assert client.get("/_oberon/health").status_code == 200
            time.sleep(0.2)


def test_entrance_answers_503_past_its_connection_limit(server: Server) -> None:
    with server(env={"OBERON_MAX_CONNECTIONS": str(MAX_CONNECTIONS)}) as base:
        parts = urlsplit(base)
        address = (parts.hostname or "127.0.0.1", parts.port or 80)
        held = [connect(address) for _ in range(MAX_CONNECTIONS)]
        try:
            time.sleep(0.3)  # the server has accepted them
            with connect(address) as sock:
                sock.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
                assert answer(sock).startswith(b"HTTP/1.1 503")
        finally:
            for sock in held:
                sock.close()
        time.sleep(0.3)
        assert httpx.get(f"{base}/").status_code == 200
