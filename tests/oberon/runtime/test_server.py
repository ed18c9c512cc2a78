"""The entrance protocol over an in-memory transport: shedding before any ASGI work, and its deadlines."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from starlette.types import Receive, Scope, Send
from uvicorn.config import Config
from uvicorn.server import ServerState

from oberon.ops.admission import HELD, AdaptiveLimit, Admission, AdmissionSettings, StaleCopies
from oberon.ops.metrics import Metrics
from oberon.runtime.server import EntranceProtocol, entrance_protocol

DATE = (b"date", b"Sun, 06 Dec 2026 08:00:00 GMT")
KEEP_ALIVE = 0.2
HEADER_TIMEOUT = 0.3


class Transport(asyncio.Transport):
    """What the protocol writes, and whether it closed the connection."""

    def __init__(self) -> None:
        super().__init__()
        self.written = bytearray()
        self.closed = False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"sockname": ("127.0.0.1", 8000), "peername": ("127.0.0.1", 50000)}.get(name, default)

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written += data

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def taken(self) -> bytes:
        """What was written since the last call."""
        data = bytes(self.written)
        self.written.clear()
        return data


class Site:
    """An app whose `/hold` answers when the test lets go, and that answers everything else at once."""

    def __init__(self) -> None:
        self.calls: list[Scope] = []
        self.release = asyncio.Event()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        self.calls.append(scope)
        if scope["path"] == "/hold":
            await self.release.wait()
        body = b"hello"
        headers = [(b"content-type", b"text/plain"), (b"content-length", b"5")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})


class Entrance:
    """An entrance with an admission limit of `limit`, what its app saw, and connections to it."""

    def __init__(self, *, limit: int = 1) -> None:
        self.site = Site()
        self.metrics = Metrics()
        settings = AdmissionSettings(min_limit=limit, initial_limit=limit, max_limit=limit)
        self.admission = Admission(
            self.site,
            entrance="gateway",
            limit=AdaptiveLimit(settings=settings),
            stale=StaleCopies(),
            observers=(self.metrics.shed_observer("gateway"),),
        )
        self.config = Config(app=self.admission, proxy_headers=False, log_config=None, timeout_keep_alive=KEEP_ALIVE)
        self.state = ServerState()
        self.state.default_headers = [DATE]
        self.protocol = entrance_protocol(
            header_timeout=HEADER_TIMEOUT, max_header_bytes=8192, admission=self.admission
        )

    def connect(self) -> Connection:
        protocol: EntranceProtocol = self.protocol(  # type: ignore[call-arg]
            config=self.config, server_state=self.state, app_state={}, _loop=asyncio.get_running_loop()
        )
        return Connection(protocol)

    def shed(self, at: str) -> float:
        labels = {"service": "gateway", "outcome": "rejected", "at": at}
        return self.metrics.registry.get_sample_value("oberon_admission_shed_total", labels) or 0.0

    async def held(self) -> Connection:
        """The one place taken by a `/hold` request on a connection of its own, answered once the test lets go."""
        holder = self.connect()
        holder.send(HOLD)
        await holder.answered()
        assert self.admission.limit.in_flight == 1
        return holder


class Connection:
    def __init__(self, protocol: EntranceProtocol) -> None:
        self.protocol = protocol
        self.transport = Transport()
        protocol.connection_made(self.transport)

    def send(self, data: bytes) -> None:
        self.protocol.data_received(data)

    async def answered(self) -> bytes:
        """What was written once the tasks started so far have run."""
        for _ in range(20):
            await asyncio.sleep(0)
        return self.transport.taken()


GET = b"GET /page HTTP/1.1\r\nHost: t\r\nAccept: text/html\r\n\r\n"
HOLD = b"GET /hold HTTP/1.1\r\nHost: t\r\n\r\n"


@pytest.mark.anyio
async def test_entrance_writes_the_shed_answer_itself_and_starts_no_task() -> None:
    entrance = Entrance()
    await entrance.held()
    tasks = len(entrance.state.tasks)
    browser = entrance.connect()
    browser.send(GET)
    written = browser.transport.taken()  # at once: nothing was scheduled
    answer = entrance.admission.admit("GET", "/page", b"", [(b"accept", b"text/html")], at="server")
    assert answer is not None
    status = b"HTTP/1.1 503 Service Unavailable\r\n"
    assert written == status + b"date: " + DATE[1] + b"\r\n" + answer.head + b"\r\n" + answer.body
    assert len(entrance.state.tasks) == tasks  # no ASGI task
    assert [scope["path"] for scope in entrance.site.calls] == ["/hold"]  # nor did the app see it
    assert entrance.shed("server") == 2 and entrance.shed("app") == 0  # with the one `admit` above
    assert not browser.transport.closed


@pytest.mark.anyio
async def test_entrance_answers_a_head_without_its_body_and_reads_the_next_request() -> None:
    entrance = Entrance()
    await entrance.held()
    browser = entrance.connect()
    browser.send(b"HEAD /page HTTP/1.1\r\nHost: t\r\n\r\nGET /page HTTP/1.1\r\nHost: t\r\n\r\n")
    written = browser.transport.taken()
    assert written.count(b"HTTP/1.1 503") == 2
    head, get = written.split(b"HTTP/1.1 503")[1:]
    assert head.endswith(b"\r\n\r\n") and b"content-length: 41\r\n" in head
    assert get.endswith(b'{"error": "overloaded", "retry_after": 1}')


@pytest.mark.anyio
async def test_entrance_drops_the_body_of_a_shed_request_and_keeps_the_connection() -> None:
    entrance = Entrance()
    await entrance.held()
    browser = entrance.connect()
    browser.send(b"POST /form HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\n12345")
    assert browser.transport.taken().startswith(b"HTTP/1.1 503")  # before the body is all in
    entrance.site.release.set()
    await browser.answered()  # the held request ends: its place is free
    assert entrance.admission.limit.in_flight == 0
    browser.send(b"67890" + GET)
    assert (await browser.answered()).startswith(b"HTTP/1.1 200")
    assert [scope["path"] for scope in entrance.site.calls] == ["/hold", "/page"]  # not the body, nor the POST


@pytest.mark.anyio
async def test_entrance_admits_a_request_in_a_place_it_holds_for_it_until_its_task_ends() -> None:
    entrance = Entrance()
    browser = entrance.connect()
    browser.send(HOLD)
    assert entrance.admission.limit.in_flight == 1  # taken as its headers came, before its task ran
    await browser.answered()
    assert entrance.site.calls[0].get(HELD) is True  # the middleware does not count it again
    entrance.site.release.set()
    assert (await browser.answered()).startswith(b"HTTP/1.1 200")
    assert entrance.admission.limit.in_flight == 0


@pytest.mark.anyio
async def test_entrance_leaves_a_request_pipelined_behind_an_answer_in_progress_to_the_middleware() -> None:
    entrance = Entrance()
    holder = await entrance.held()
    holder.send(GET)  # waits for the held request's answer
    assert holder.transport.taken() == b""
    assert entrance.shed("server") == 0
    entrance.site.release.set()
    written = await holder.answered()
    assert written.count(b"HTTP/1.1 200") == 2  # in turn, the place free again: admitted by the middleware
    assert entrance.shed("server") == 0 and entrance.shed("app") == 0


@pytest.mark.anyio
async def test_entrance_never_sheds_health() -> None:
    entrance = Entrance()
    await entrance.held()
    browser = entrance.connect()
    browser.send(b"GET /_oberon/health HTTP/1.1\r\nHost: t\r\n\r\n")
    assert (await browser.answered()).startswith(b"HTTP/1.1 200")
    assert entrance.admission.limit.in_flight == 1


@pytest.mark.parametrize(
    "request_",
    [
        b"GET /page HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
        b"GET /page HTTP/1.0\r\n\r\n",
        # The client waits for `100 Continue` before its body, which may then never come.
        b"PUT /page HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n",
    ],
    ids=["connection-close", "http-1.0", "expect-100-continue"],
)
@pytest.mark.anyio
async def test_entrance_closes_the_connection_after_a_shed_answer_when_it_cannot_be_kept(request_: bytes) -> None:
    entrance = Entrance()
    await entrance.held()
    browser = entrance.connect()
    browser.send(request_)
    written = browser.transport.taken()
    assert written.startswith(b"HTTP/1.1 503") and b"\r\nconnection: close\r\n" in written
    assert written.count(b"HTTP/1.1") == 1  # and nothing after it
    assert browser.transport.closed


@pytest.mark.anyio
async def test_entrance_ignores_what_follows_a_shed_request_that_closed_the_connection() -> None:
    entrance = Entrance()
    await entrance.held()
    browser = entrance.connect()
    # The parser itself drops what follows `Connection: close`; not what follows a request it thinks kept alive.
    browser.send(b"PUT /page HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n12345" + GET)
    assert (await browser.answered()).count(b"HTTP/1.1") == 1
    assert browser.transport.closed
    assert entrance.shed("server") == 1  # the second was neither answered nor counted
    entrance.site.release.set()
    await browser.answered()
    assert entrance.admission.limit.in_flight == 0


@pytest.mark.anyio
async def test_entrance_closes_a_connection_left_idle_after_a_shed_answer() -> None:
    entrance = Entrance()
    await entrance.held()
    browser = entrance.connect()
    browser.send(GET)
    await asyncio.sleep(KEEP_ALIVE / 2)
    assert not browser.transport.closed
    await asyncio.sleep(KEEP_ALIVE)
    assert browser.transport.closed
    assert browser.transport.taken().startswith(b"HTTP/1.1 503")  # closed without another word


@pytest.mark.anyio
async def test_entrance_holds_each_kept_alive_request_to_its_own_header_deadline() -> None:
    entrance = Entrance(limit=4)
    browser = entrance.connect()
    for _ in range(3):  # requests within the deadline, one after another, keep the connection
        await asyncio.sleep(HEADER_TIMEOUT / 2)
        browser.send(GET)
        assert (await browser.answered()).startswith(b"HTTP/1.1 200")
    browser.send(b"GET /page HTTP/1.1\r\nHost: t\r\n")  # and headers that never end
    await asyncio.sleep(HEADER_TIMEOUT / 2)
    assert not browser.transport.closed
    await asyncio.sleep(HEADER_TIMEOUT)
    assert browser.transport.closed
    assert browser.transport.taken().startswith(b"HTTP/1.1 408")
