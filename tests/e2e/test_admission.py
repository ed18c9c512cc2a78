"""Admission control over a real `oberon up` (and `--split`): beyond the entrance's limit, a stale copy or a fast 503.

The limit is pinned at 2 (`OBERON_ADMISSION_*_LIMIT`) and the events backend made slow through its fault
endpoint, so two event pages hold both places for most of a second. Meanwhile the home page (anonymous
and public) comes back as the copy the entrance answered before, a page never seen gets 503 with
`Retry-After`, and `/_oberon/health` answers at once: it is never counted against the limit nor shed.

The HTTP server sheds before any application work (`oberon/runtime/server.py`): over raw sockets, with
the limit at 1 and its place held by a request whose announced body never comes (the gateway's proxy
waits for it), shed answers come on a kept-alive connection that goes on serving — after a HEAD, after a
POST whose body follows the answer, pipelined, and a page once the place is free — and
`oberon_admission_shed_total` counts them `at="server"`.

At as many clients as places (the default limit, 64), each asking again as soon as it has its answer, every
page is admitted: a place is given back with the answer's last part, not when the gateway's task ends after it
(closing the proxied answer); four times as many clients are still shed.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import BinaryIO
from urllib.parse import urlsplit

import httpx
import pytest

from oberon.defaults import DEFAULT_ADMISSION_MIN_LIMIT
from tests.e2e.conftest import ADMIN, ADMIN_TOKEN, gauge, start_server

LIMIT = 2
SLOW_MS = 800  # within the event page's budgets: the held pages end well
ENV = {f"OBERON_ADMISSION_{bound}_LIMIT": str(LIMIT) for bound in ("MIN", "INITIAL", "MAX")}


@pytest.mark.parametrize("topology", [(), ("--split",)], ids=["embedded", "split"])
def test_entrance_beyond_its_limit_serves_a_stale_copy_or_a_fast_503_while_health_answers(
    topology: tuple[str, ...],
) -> None:
    with start_server(*topology, env=ENV) as running, httpx.Client(base_url=running.base_url, timeout=10) as site:
        site.get("/")  # a page is kept from the second time it is asked for lately
        seen = site.get("/")
        assert seen.status_code == 200 and seen.headers["Cache-Control"].startswith("public")
        assert site.put("/_backends/events/_faults", json={"latency_ms": SLOW_MS}, headers=ADMIN).status_code == 200
        try:
            with ThreadPoolExecutor(LIMIT) as pool:
                held = [pool.submit(site.get, f"/e/{event_id}") for event_id in (301, 302)]
                wait_for_in_flight(running.admin_url, LIMIT)
                stale = site.get("/")
                rejected = site.get("/e/303", headers={"Accept": "text/html"})
                started = time.monotonic()
                health = site.get("/_oberon/health")
                health_seconds = time.monotonic() - started
                in_flight_during = gauge(running.admin_url, "oberon_admission_in_flight", service="gateway")
                assert [future.result().status_code for future in held] == [200, 200]
        finally:
            assert site.put("/_backends/events/_faults", json={}, headers=ADMIN).status_code == 200
        shed = shed_counts(running.admin_url)
    assert in_flight_during == [LIMIT]  # the probes were answered while both places were taken
    assert stale.status_code == 200
    assert stale.headers["X-Oberon-Stale"] == "admission"
    assert "s-maxage=300" in stale.headers["Cache-Control"]  # as degraded mode would keep it
    assert stale.text == seen.text
    assert rejected.status_code == 503
    assert rejected.headers["Retry-After"] == "1"
    assert "We are very busy right now" in rejected.text
    assert health.status_code == 200
    assert health_seconds < SLOW_MS / 1000  # not queued behind the held pages (they take longer)
    # Both on idle connections: shed by the HTTP server itself, before the app.
    assert shed == {("stale", "server"): 1, ("rejected", "server"): 1, ("stale", "app"): 0, ("rejected", "app"): 0}


def test_as_many_clients_as_places_each_asking_again_at_once_are_all_admitted_and_four_times_as_many_are_shed() -> None:
    clients = DEFAULT_ADMISSION_MIN_LIMIT
    with start_server() as running:
        assert httpx.get(running.base_url + "/e/1").status_code == 200
        closed_loop = asyncio.run(statuses(running.base_url, clients=clients, pages=8))
        # Pages that take a while (none cached yet), all asked at once: more than the places.
        assert httpx.put(running.base_url + "/_backends/events/_faults", json={"latency_ms": 200}, headers=ADMIN)
        at_once = asyncio.run(statuses(running.base_url, clients=4 * clients, pages=1, first=51))
    answered = {status: count for status, count in closed_loop.items() if isinstance(status, int)}
    assert answered == {200: sum(answered.values())}  # every answer a page: none shed
    # A kept-alive connection closed unanswered now and then is another matter (seen before this change too).
    assert sum(answered.values()) >= clients * 8 - 3, closed_loop
    assert at_once.get(503, 0) > 0 and {status for status in at_once if isinstance(status, int)} <= {200, 503}


async def statuses(base: str, *, clients: int, pages: int, first: int = 1) -> dict[int | str, int]:
    """How many of the `pages` each of `clients` asks for in turn (kept-alive, each at once after the last) got
    each status; the event pages from `first` on, 50 of them (the demo has 600)."""
    counted: dict[int | str, int] = {}
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=30) as site:

        async def client(number: int) -> None:
            for page in range(pages):
                status: int | str
                try:
                    status = (await site.get(f"/e/{first + (number * pages + page) % 50}")).status_code
                except httpx.HTTPError as exc:
                    status = repr(exc)
                counted[status] = counted.get(status, 0) + 1

        await asyncio.gather(*(client(number) for number in range(clients)))
    return counted


def shed_counts(admin_url: str) -> dict[tuple[str, str], float]:
    """The gateway's shed requests by outcome and where they were shed, as its admin listener counts them."""
    return {
        (outcome, at): sum(
            gauge(admin_url, "oberon_admission_shed_total", service="gateway", outcome=outcome, at=at)
        )
        for outcome in ("stale", "rejected")
        for at in ("server", "app")
    }


def wait_for_in_flight(admin_url: str, count: int) -> None:
    """Until the entrance has `count` requests in flight, as its admin listener shows."""
    deadline = time.monotonic() + 5
    while gauge(admin_url, "oberon_admission_in_flight", service="gateway") != [count]:
        assert time.monotonic() < deadline, "the held pages never reached the entrance"
        time.sleep(0.01)


ONE = {f"OBERON_ADMISSION_{bound}_LIMIT": "1" for bound in ("MIN", "INITIAL", "MAX")}


def test_server_sheds_on_a_kept_alive_connection_that_goes_on_serving() -> None:
    with start_server(env=ONE) as running, connect(running.base_url) as sock, sock.makefile("rb") as answers:
        with held_place(running.base_url, running.admin_url):
            started = time.monotonic()
            sock.sendall(b"GET /e/2 HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/html\r\n\r\n")
            page = read_answer(answers)
            seconds = time.monotonic() - started
            sock.sendall(b"HEAD /e/2 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            head = read_answer(answers, head=True)
            body = b"x" * 5000
            sock.sendall(b"POST /e/2 HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 5000\r\n\r\n" + body[:1000])
            posted = read_answer(answers)  # answered before its body is all sent
            sock.sendall(body[1000:])
            sock.sendall(
                b"GET /e/3 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\nGET /_oberon/health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
            )
            pipelined, health = read_answer(answers), read_answer(answers)
            shed = shed_counts(running.admin_url)
            with connect(running.base_url) as other, other.makefile("rb") as other_answers:
                other.sendall(b"GET /e/4 HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
                closing = read_answer(other_answers)
                closed = other_answers.read() == b""
        wait_for_in_flight(running.admin_url, 0)  # the held request gave up: the place is free
        sock.sendall(b"GET /e/5 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        admitted = read_answer(answers)
    assert page.status == 503 and page.headers["retry-after"] == "1"
    assert page.headers["cache-control"] == "no-store" and page.headers["content-type"].startswith("text/html")
    assert b"We are very busy right now" in page.body
    assert seconds < 1.0  # the place is held for seconds: this was not queued behind it
    assert "connection" not in page.headers  # kept alive
    assert head.status == 503 and int(head.headers["content-length"]) > 0 and head.body == b""
    assert posted.status == 503 and posted.headers["content-type"] == "application/json"
    assert pipelined.status == 503
    assert health.status == 200 and health.body == b'{"status":"ok"}'  # the discarded body was not read as a request
    assert shed == {("stale", "server"): 0, ("rejected", "server"): 4, ("stale", "app"): 0, ("rejected", "app"): 0}
    assert closing.status == 503 and closing.headers["connection"] == "close" and closed
    assert admitted.status == 200 and b"</html>" in admitted.body  # the same connection, once a place is free


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]  # names lower-cased
    body: bytes


def connect(base: str) -> socket.socket:
    url = urlsplit(base)
    sock = socket.create_connection((url.hostname or "127.0.0.1", url.port or 80), timeout=10)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def read_answer(reader: BinaryIO, *, head: bool = False) -> Answer:
    """One answer off a kept-alive connection, its body read to its end (by length, or chunk by chunk)."""
    status_line = reader.readline()
    assert status_line.startswith(b"HTTP/1.1 "), status_line
    headers: dict[str, str] = {}
    while (line := reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    body = b""
    if head:
        pass
    elif headers.get("transfer-encoding") == "chunked":  # a page streamed because it was slow
        while size := int(reader.readline().split(b";")[0], 16):
            body += reader.read(size)
            reader.readline()
        reader.readline()
    else:
        body = reader.read(int(headers.get("content-length", "0")))
    return Answer(int(status_line.split()[1]), headers, body)


@contextlib.contextmanager
def held_place(base: str, admin_url: str) -> Iterator[None]:
    """The entrance's one place taken for the block by a request whose announced body never comes."""
    with connect(base) as sock:
        sock.sendall(
            b"PUT /_backends/events/_faults HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"Authorization: Bearer " + ADMIN_TOKEN.encode() + b"\r\nContent-Length: 100\r\n\r\n"
        )
        wait_for_in_flight(admin_url, 1)
        yield
