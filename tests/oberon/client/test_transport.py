"""The in-process transport: an ASGI app's response relayed as the app sends it, not once it has finished."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from oberon.client.transport import StreamingASGITransport

pytestmark = pytest.mark.anyio


class Slow:
    """An app streaming `first`, then `second` only once the test lets it, and noting when it was stopped."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.stopped = False

    async def page(self, request: Request) -> Response:
        async def body() -> AsyncIterator[bytes]:
            try:
                yield b"first "
                await self.release.wait()
                yield b"second"
            except asyncio.CancelledError:
                self.stopped = True
                raise

        return StreamingResponse(body(), media_type="text/html")

    async def broken(self, request: Request) -> Response:
        async def body() -> AsyncIterator[bytes]:
            yield b"half"
            raise RuntimeError("boom")

        return StreamingResponse(body())

    async def echo(self, request: Request) -> Response:
        return PlainTextResponse((await request.body()).decode() + " " + request.url.query)

    async def fails(self, request: Request) -> Response:
        raise RuntimeError("before any byte")

    def app(self) -> Starlette:
        routes = [
            Route("/page", self.page),
            Route("/broken", self.broken),
            Route("/echo", self.echo, methods=["GET", "POST", "HEAD"]),
            Route("/fails", self.fails),
        ]
        return Starlette(routes=routes)


@pytest.fixture
def slow() -> Slow:
    return Slow()


@pytest.fixture
async def client(slow: Slow) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=StreamingASGITransport(slow.app()), base_url="http://app") as client:
        yield client


async def test_the_first_chunk_arrives_while_the_app_is_still_working(client: httpx.AsyncClient, slow: Slow) -> None:
    async with client.stream("GET", "/page") as response:
        assert response.status_code == 200
        chunks = response.aiter_bytes()
        assert await asyncio.wait_for(chunks.__anext__(), 1) == b"first "
        assert not slow.release.is_set()  # the app has not written its second chunk yet
        slow.release.set()
        assert b"".join([chunk async for chunk in chunks]) == b"second"


async def test_closing_the_response_early_stops_the_app(client: httpx.AsyncClient, slow: Slow) -> None:
    async with client.stream("GET", "/page") as response:
        await response.aiter_bytes().__anext__()
    assert slow.stopped


async def test_an_app_failing_mid_body_is_a_read_error(client: httpx.AsyncClient) -> None:
    async with client.stream("GET", "/broken") as response:
        with pytest.raises(httpx.ReadError):
            await response.aread()


async def test_an_app_failing_before_its_response_gives_its_500_or_raises(client: httpx.AsyncClient) -> None:
    assert (await client.get("/fails")).status_code == 500  # Starlette answers for it, then re-raises: not lost

    async def bare(scope: object, receive: object, send: object) -> None:
        raise RuntimeError("no response at all")

    async with httpx.AsyncClient(transport=StreamingASGITransport(bare), base_url="http://app") as raw:
        with pytest.raises(RuntimeError, match="no response at all"):
            await raw.get("/")


async def test_the_request_body_and_query_reach_the_app_and_head_has_no_body(client: httpx.AsyncClient) -> None:
    assert (await client.post("/echo?x=1", content=b"hello")).text == "hello x=1"
    head = await client.head("/echo")
    assert head.status_code == 200 and head.content == b""
