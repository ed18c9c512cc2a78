"""How an upstream's bytes travel: the `Transport` protocol, aiohttp for TLS, httpx for in-process apps and tests.

The resilient client (`oberon.client.upstream`) owns the policy of a call (budget, retries, breaker, cache,
coalescing); a transport only sends one request and returns its `Answer`, or raises an
`UpstreamError`. Three are provided:

- `oberon.client.http1.Http1Transport`, for an upstream at an `http://` URL: Oberon's own lean client.
- `AiohttpTransport`, for an upstream at an `https://` URL. On this hot path (a page makes one call per data
  source) httpx's client layer and connection pool cost 0.4–2.5 ms of CPU per call under load, aiohttp
  0.16–0.23 ms, the lean client about 0.03 ms (measured in bench/README.md).
- `HttpxTransport`, around an `httpx.AsyncClient`: an ASGI app served in this process (through
  `StreamingASGITransport`, below), or any client a test gives, so upstreams mocked with respx keep working.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Mapping
from typing import Any, NamedTuple, Protocol

import aiohttp
import httpx
from starlette.types import ASGIApp, Message

from oberon.exceptions import InvalidResponse, UpstreamError, UpstreamTimeout
from oberon.headers import DEPENDENCY_FAILED_HEADER

logger = logging.getLogger("oberon.transport")  # the name operators' log filters know


class Answer(NamedTuple):
    """An upstream's response, read whole: status, the headers the client needs, and the body (a named tuple:
    made on every call, a third of a frozen dataclass's cost to make; issue 19)."""

    status_code: int
    content_type: str  # media type only, lower-cased: `application/json`
    cache_control: str | None
    body: bytes
    dependency_failed: str | None = None  # `X-Oberon-Dependency-Failed`: the upstream's own dependency that failed


class Transport(Protocol):
    """Sends one request (its headers complete) to an upstream, the answer's body read up to `max_body` bytes."""

    async def send(
        self, method: str, path: str, *, headers: dict[str, str], body: bytes | None, timeout: float, max_body: int
    ) -> Answer:
        """The answer, or UpstreamTimeout / InvalidResponse (too big) / UpstreamError (connection failed)."""
        ...

    async def aclose(self) -> None: ...


class PooledSession:
    """One upstream's aiohttp session, opened on first use in the running loop (a session belongs to its loop).

    Pooled up to `max_connections`; it never keeps a cookie (one visitor's answer must not set it for
    another's call) nor reads proxy settings from the environment. `options` go to `aiohttp.ClientSession`.
    """

    def __init__(self, *, max_connections: int, **options: Any) -> None:
        self.max_connections = max_connections
        self.options = options
        self._session: aiohttp.ClientSession | None = None

    def get(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self.max_connections, limit_per_host=self.max_connections),
                cookie_jar=aiohttp.DummyCookieJar(),
                trust_env=False,
                **self.options,
            )
        return self._session

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()


class AiohttpTransport:
    """An upstream at `base_url`, through its pooled aiohttp session."""

    def __init__(self, name: str, base_url: str, *, max_connections: int) -> None:
        self.name = name
        self.base_url = base_url.rstrip("/")
        self.session = PooledSession(max_connections=max_connections)

    async def send(
        self, method: str, path: str, *, headers: dict[str, str], body: bytes | None, timeout: float, max_body: int
    ) -> Answer:
        what = f"{method} {path}"
        try:
            async with asyncio.timeout(timeout):
                async with self.session.get().request(
                    method, self.base_url + path, headers=headers, data=body, allow_redirects=False
                ) as response:
                    content = await _read_aiohttp(response, max_body, self.name, what)
        except TimeoutError:
            raise UpstreamTimeout(self.name, f"{what} took longer than {timeout:.3g}s") from None
        except aiohttp.ClientError as exc:
            raise UpstreamError(self.name, f"{what} failed: {exc.__class__.__name__}: {exc}") from None
        return _answer(response.status, response.headers, content)

    async def aclose(self) -> None:
        await self.session.aclose()


async def _read_aiohttp(response: aiohttp.ClientResponse, limit: int, name: str, what: str) -> bytes:
    declared = response.content_length
    if declared is not None and declared <= limit:
        return await response.read()  # aiohttp stops at the declared length
    return await _read_limited(response.content.iter_any(), declared, limit, name, what)


class HttpxTransport:
    """An upstream reached through an `httpx.AsyncClient`: an in-process ASGI app, or a test's (mocked) client."""

    def __init__(self, name: str, client: httpx.AsyncClient) -> None:
        self.name = name
        self.client = client

    async def send(
        self, method: str, path: str, *, headers: dict[str, str], body: bytes | None, timeout: float, max_body: int
    ) -> Answer:
        what = f"{method} {path}"
        try:
            async with asyncio.timeout(timeout):
                async with self.client.stream(
                    method, path, headers=headers, content=body, timeout=httpx.Timeout(timeout)
                ) as response:
                    content = await _read_httpx(response, max_body, self.name, what)
        except (TimeoutError, httpx.TimeoutException):
            raise UpstreamTimeout(self.name, f"{what} took longer than {timeout:.3g}s") from None
        except httpx.HTTPError as exc:
            raise UpstreamError(self.name, f"{what} failed: {exc.__class__.__name__}: {exc}") from None
        return _answer(response.status_code, response.headers, content)

    async def aclose(self) -> None:
        await self.client.aclose()


async def _read_httpx(response: httpx.Response, limit: int, name: str, what: str) -> bytes:
    declared = response.headers.get("content-length", "")
    return await _read_limited(response.aiter_bytes(), int(declared) if declared.isdigit() else None, limit, name, what)


def _answer(status: int, headers: Mapping[str, str], content: bytes) -> Answer:
    """The parts of an answer the client keeps (both transports' headers look names up in any case)."""
    return Answer(
        status, _media_type(headers), headers.get("cache-control"), content, headers.get(DEPENDENCY_FAILED_HEADER)
    )


def _media_type(headers: Mapping[str, str]) -> str:
    """`application/json` of `Application/JSON; charset=utf-8`; "" when there is none."""
    return headers.get("content-type", "").split(";")[0].strip().lower()


async def _read_limited(chunks: AsyncIterator[bytes], declared: int | None, limit: int, name: str, what: str) -> bytes:
    """The body, refused as soon as it passes `limit` (a huge body is never held in memory)."""
    if declared is not None and declared > limit:
        raise InvalidResponse(name, f"{what} answered more than {limit} bytes")
    received = []
    size = 0
    async for chunk in chunks:
        size += len(chunk)
        if size > limit:
            raise InvalidResponse(name, f"{what} answered more than {limit} bytes")
        received.append(chunk)
    return b"".join(received)


class StreamingASGITransport(httpx.AsyncBaseTransport):
    """An ASGI app served in this process, its response relayed as the app sends it.

    `httpx.ASGITransport` returns only once the app has finished; a streamed page (one whose slow
    components finish later) would then reach the browser whole and late through the in-process
    gateway. This transport returns at the app's `http.response.start` and hands on each body chunk
    as it comes; closing the response early cancels the app.
    """

    def __init__(self, app: ASGIApp, *, client: tuple[str, int] = ("127.0.0.1", 123)) -> None:
        self.app = app
        self.client = client

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        assert isinstance(request.stream, httpx.AsyncByteStream)
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": request.method,
            "headers": [(name.lower(), value) for name, value in request.headers.raw],
            "scheme": request.url.scheme,
            "path": request.url.path,
            "raw_path": request.url.raw_path.split(b"?")[0],
            "query_string": request.url.query,
            "server": (request.url.host, request.url.port),
            "client": self.client,
            "root_path": "",
        }
        body = request.stream.__aiter__()
        request_complete = False
        response_complete = asyncio.Event()
        started: asyncio.Future[Message] = asyncio.get_running_loop().create_future()
        # Unbounded: a page is at most a few hundred KB, and the reader is the gateway relaying it on.
        chunks: asyncio.Queue[bytes | Exception | None] = asyncio.Queue()

        async def receive() -> Message:
            nonlocal request_complete
            if request_complete:
                await response_complete.wait()
                return {"type": "http.disconnect"}
            try:
                chunk = await body.__anext__()
            except StopAsyncIteration:
                request_complete = True
                return {"type": "http.request", "body": b"", "more_body": False}
            return {"type": "http.request", "body": chunk, "more_body": True}

        async def send(message: Message) -> None:
            if message["type"] == "http.response.start":
                started.set_result(message)
            elif message["type"] == "http.response.body" and not response_complete.is_set():
                if message.get("body") and request.method != "HEAD":
                    chunks.put_nowait(message["body"])
                if not message.get("more_body", False):
                    response_complete.set()

        async def run() -> None:
            try:
                await self.app(scope, receive, send)
            except Exception as exc:
                if not started.done():
                    started.set_exception(exc)  # before the response: the caller gets the app's error
                else:
                    logger.error("in-process app failed after it started its response", exc_info=exc)
            finally:
                ended_whole = response_complete.is_set()
                response_complete.set()
                if not started.done():
                    started.set_exception(RuntimeError("the app ended without a response"))
                chunks.put_nowait(
                    None if ended_whole else httpx.ReadError("the app stopped in the middle of its response")
                )

        task = asyncio.create_task(run())
        try:
            start = await started
        except BaseException:
            task.cancel()
            raise
        return httpx.Response(start["status"], headers=start.get("headers", []), stream=_AppBody(chunks, task))


class _AppBody(httpx.AsyncByteStream):
    """The body of an in-process app's response, chunk by chunk as the app sends it."""

    def __init__(self, chunks: asyncio.Queue[bytes | Exception | None], task: asyncio.Task[None]) -> None:
        self._chunks = chunks
        self._task = task

    async def __aiter__(self) -> AsyncIterator[bytes]:
        while (chunk := await self._chunks.get()) is not None:
            if isinstance(chunk, Exception):
                raise chunk
            yield chunk

    async def aclose(self) -> None:
        if not self._task.done():
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
