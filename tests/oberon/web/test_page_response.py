"""A streamed page's response: streamed in the request's own task, cancelled when the visitor leaves."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from starlette.types import Message, Scope

from oberon.web.page_response import PageResponse

pytestmark = pytest.mark.anyio


def http_scope(spec_version: str = "2.3") -> Scope:
    return {"type": "http", "asgi": {"version": "3.0", "spec_version": spec_version}, "method": "GET", "headers": []}


class Visitor:
    """The server's side of one request: `receive` says the body is in, then `http.disconnect` once the whole
    answer is sent (as uvicorn does) or once `leave()` is called."""

    def __init__(self) -> None:
        self.sent: list[Message] = []
        self.gone = asyncio.Event()
        self._body_given = False

    async def receive(self) -> Message:
        if not self._body_given:
            self._body_given = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await self.gone.wait()
        return {"type": "http.disconnect"}

    async def send(self, message: Message) -> None:
        self.sent.append(message)
        if message["type"] == "http.response.body" and not message.get("more_body", False):
            self.gone.set()

    def leave(self) -> None:
        self.gone.set()

    @property
    def body(self) -> bytes:
        return b"".join(m.get("body", b"") for m in self.sent if m["type"] == "http.response.body")


async def test_a_page_is_streamed_whole_in_the_requests_own_task() -> None:
    """No task group around it: Starlette's, under ASGI 2.3, streamed in another task (and cost ~100 µs a page)."""
    request_task = asyncio.current_task()
    tasks = []

    async def chunks() -> AsyncIterator[bytes]:
        for chunk in (b"<head>", b"<body>", b"</html>"):
            tasks.append(asyncio.current_task())
            yield chunk

    visitor = Visitor()
    await PageResponse(chunks(), media_type="text/html")(http_scope(), visitor.receive, visitor.send)
    assert visitor.body == b"<head><body></html>"
    assert visitor.sent[0]["status"] == 200
    assert tasks == [request_task] * 3
    await asyncio.sleep(0)  # the watch, told `http.disconnect` after the end, cancels nothing
    assert not request_task.cancelling()


async def test_a_server_that_yields_after_the_last_message_is_not_taken_for_a_visitor_leaving() -> None:
    """httpx's in-process transport, say: `http.disconnect` comes as soon as the answer is whole, before `send`
    returns."""
    visitor = Visitor()
    finished: list[bool] = []

    async def send(message: Message) -> None:
        await visitor.send(message)
        if not message.get("more_body", True):
            await asyncio.sleep(0)
            await asyncio.sleep(0)
            finished.append(True)

    async def chunks() -> AsyncIterator[bytes]:
        yield b"<head>"
        yield b"</html>"

    answering = asyncio.create_task(PageResponse(chunks())(http_scope(), visitor.receive, send))
    await answering
    assert finished == [True]
    assert visitor.body == b"<head></html>"


async def test_the_rest_of_a_page_is_cancelled_when_the_visitor_leaves() -> None:
    visitor = Visitor()
    closed = asyncio.Event()
    waiting = asyncio.Event()

    async def chunks() -> AsyncIterator[bytes]:
        try:
            yield b"<head>"
            waiting.set()
            await asyncio.sleep(30)  # the rest of the page, still loading
            yield b"never"
        finally:
            closed.set()

    answering = asyncio.create_task(PageResponse(chunks())(http_scope(), visitor.receive, visitor.send))
    await waiting.wait()
    visitor.leave()
    await asyncio.wait_for(answering, timeout=5)  # returns, without an error: nobody is left to answer
    assert closed.is_set()
    assert visitor.body == b"<head>"
    assert not answering.cancelled()


async def test_a_cancel_from_elsewhere_still_cancels_the_request() -> None:
    visitor = Visitor()
    waiting = asyncio.Event()

    async def chunks() -> AsyncIterator[bytes]:
        yield b"<head>"
        waiting.set()
        await asyncio.sleep(30)
        yield b"never"

    answering = asyncio.create_task(PageResponse(chunks())(http_scope(), visitor.receive, visitor.send))
    await waiting.wait()
    answering.cancel()  # the server shutting down, say
    with pytest.raises(asyncio.CancelledError):
        await answering


async def test_from_asgi_2_4_starlettes_own_path_streams_it() -> None:
    visitor = Visitor()

    async def chunks() -> AsyncIterator[bytes]:
        yield b"one"
        yield b"two"

    await PageResponse(chunks())(http_scope("2.4"), visitor.receive, visitor.send)
    assert visitor.body == b"onetwo"
