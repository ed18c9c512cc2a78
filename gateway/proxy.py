"""Forwarding one request to an upstream and streaming its answer back.

An upstream is a base URL (split topology) or an ASGI app in this process (embedded topology).
Two transports behind one small interface (as in `oberon.client.transport`):

- `AiohttpProxyTransport`, for an upstream at a URL: one pooled aiohttp session. Every page goes
  through here, and httpx's client layer and connection pool cost several times aiohttp's CPU per
  request under load (`oberon.client.transport`'s measurements).
- `HttpxProxyTransport`, around an `httpx.AsyncClient`: an ASGI app served in this process
  (`oberon.client.transport.StreamingASGITransport`), or any client a test gives (mocked with respx).

Either way the answer is an `httpx.Response` whose body is still to be streamed, chunk by chunk
as the upstream sends it (close it with `aclose`). The gateway's proxy does not use the transport of an
in-process app for pages and API calls: it calls the app directly (`gateway.direct`, no HTTP framing);
the transport remains for the health probes and the user directory.
"""

from __future__ import annotations

import asyncio
import string
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import Protocol
from urllib.parse import quote

import aiohttp
import httpx
from starlette.types import ASGIApp
from yarl import URL

from gateway.errors import BodyTooLarge, SendFailed, UpstreamUnavailable
from oberon.client.transport import PooledSession, StreamingASGITransport

DEFAULT_MAX_CONNECTIONS = 64
DEFAULT_CONNECT_TIMEOUT = 2.0
# The response header sizes httpx (httpcore over h11) accepts; aiohttp's own default is 8190 bytes a line.
MAX_HEADER_BYTES = 100 * 1024
# Never forwarded in either direction (RFC 9110 §7.6.1), with any header the Connection header names.
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)
_PATH_SAFE = "/:@!$&'()*+,;=-._~"
# What `quote` never changes in a path: its own always-safe bytes (letters, digits, `_.-~`) and `_PATH_SAFE`.
_PATH_UNQUOTED = (string.ascii_letters + string.digits + "_.-~" + _PATH_SAFE).encode("ascii")

# A base URL, an ASGI app in this process, or an httpx client (a test's, mocked with respx).
Target = str | ASGIApp | httpx.AsyncClient
Headers = list[tuple[str, str]]


def host_name(upstream: str) -> str:
    """The host name an upstream in this process is called by (`bff:events` → `bff.events`)."""
    return upstream.replace(":", ".")


def quote_path(path: str) -> bytes:
    """The path as sent upstream, percent-encoded: as it is when no byte of it needs quoting (a page's path, every
    request), without `quote`'s frames (issue 19)."""
    encoded = path.encode("utf-8")
    return encoded if not encoded.rstrip(_PATH_UNQUOTED) else quote(path, safe=_PATH_SAFE).encode("ascii")


def connection_headers(headers: Headers) -> frozenset[str]:
    """Hop-by-hop header names of a message: the fixed ones and those its `Connection` header lists."""
    named: set[str] = set()
    for name, value in headers:
        if name.lower() == "connection":
            named |= connection_tokens(value)
    return HOP_BY_HOP | named


def connection_tokens(value: str) -> set[str]:
    """The header names a `Connection` header's value lists, lowercase."""
    return {token.strip().lower() for token in value.split(",")}


def without_hop_by_hop(headers: Headers) -> Headers:
    drop = connection_headers(headers)
    return [(name, value) for name, value in headers if name.lower() not in drop]


class LimitedBody:
    """The request body as an async iterator that stops with BodyTooLarge past `limit` bytes."""

    def __init__(self, chunks: AsyncIterator[bytes], *, limit: int) -> None:
        self.chunks = chunks
        self.limit = limit
        self.size = 0
        self.exceeded = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self.chunks:
            self.size += len(chunk)
            if self.size > self.limit:
                self.exceeded = True
                raise BodyTooLarge(self.limit)
            if chunk:
                yield chunk


class ProxyTransport(Protocol):
    """Sends one request to an upstream; its answer's body is still to be streamed."""

    async def send(
        self, method: str, raw_path: bytes, *, headers: Headers, body: LimitedBody | bytes | None, timeout: float
    ) -> httpx.Response:
        """The answer once its headers are in; raises TimeoutError, SendFailed, or BodyTooLarge from the body."""
        ...

    async def aclose(self) -> None: ...


class HttpxProxyTransport:
    """An upstream reached through an `httpx.AsyncClient`: an in-process ASGI app, or a test's (mocked) client."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client

    async def send(
        self, method: str, raw_path: bytes, *, headers: Headers, body: LimitedBody | bytes | None, timeout: float
    ) -> httpx.Response:
        request = self.client.build_request(
            method,
            self.client.base_url.copy_with(raw_path=raw_path),
            headers=headers,
            content=body,
            timeout=httpx.Timeout(timeout, connect=min(timeout, DEFAULT_CONNECT_TIMEOUT)),
        )
        try:
            return await self.client.send(request, stream=True)
        except httpx.TimeoutException:
            raise TimeoutError from None
        except httpx.HTTPError as exc:
            raise SendFailed(f"{exc.__class__.__name__}: {exc}".rstrip(": ")) from None

    async def aclose(self) -> None:
        await self.client.aclose()


class AiohttpProxyTransport:
    """An upstream at `base_url`, through one pooled aiohttp session (created on first use, in the running loop)."""

    def __init__(self, base_url: str, *, max_connections: int) -> None:
        url = URL(base_url)
        self.origin = str(url.origin())  # the request's raw path replaces the base URL's, as with httpx
        self.session = PooledSession(
            max_connections=max_connections,
            auto_decompress=False,  # the body is relayed as the upstream encoded it, with its Content-Encoding
            max_line_size=MAX_HEADER_BYTES,
            max_field_size=MAX_HEADER_BYTES,
        )

    async def send(
        self, method: str, raw_path: bytes, *, headers: Headers, body: LimitedBody | bytes | None, timeout: float
    ) -> httpx.Response:
        url = URL(self.origin + raw_path.decode("ascii"), encoded=True)  # path and query exactly as received
        # Connect within the connect timeout, then each read of the streamed body within `timeout`
        # (the wait for the answer's headers is bounded by the caller).
        limits = aiohttp.ClientTimeout(sock_connect=min(timeout, DEFAULT_CONNECT_TIMEOUT), sock_read=timeout)
        try:
            response = await self.session.get().request(
                method,
                url,
                headers=headers,
                data=body,
                allow_redirects=False,
                timeout=limits,
                skip_auto_headers=("Content-Type",),  # never invent one for a body that came without
            )
        except TimeoutError:
            raise  # aiohttp's timeouts are ClientErrors too: a timeout, not a failure
        except aiohttp.ClientError as exc:
            raise SendFailed(f"{exc.__class__.__name__}: {exc}".rstrip(": ")) from None
        return httpx.Response(response.status, headers=response.raw_headers, stream=_AiohttpBody(response))

    async def aclose(self) -> None:
        await self.session.aclose()


class _AiohttpBody(httpx.AsyncByteStream):
    """An aiohttp response's body as httpx streams it: each piece as it arrives, errors as httpx's."""

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self.response = response

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self.response.content.iter_any():
                yield chunk
        except TimeoutError:
            raise httpx.ReadTimeout("the upstream stopped sending its answer") from None
        except aiohttp.ClientError as exc:
            raise httpx.ReadError(f"{exc.__class__.__name__}: {exc}".rstrip(": ")) from None

    async def aclose(self) -> None:
        # The connection goes back to the pool when the body was read to its end; else it is closed.
        self.response.release()


class Upstream:
    """One named upstream and its pooled transport; `app`, when it runs in this process (the gateway's proxy then
    calls it directly: `gateway.direct`; the transport serves the health probes and the user directory)."""

    def __init__(self, name: str, *, transport: ProxyTransport, app: ASGIApp | None = None) -> None:
        self.name = name
        self.transport = transport
        self.app = app

    @classmethod
    def create(cls, name: str, target: Target, *, max_connections: int = DEFAULT_MAX_CONNECTIONS) -> Upstream:
        """An upstream at a base URL, an ASGI app served in this process, or a given httpx client."""
        transport: ProxyTransport
        app: ASGIApp | None = None
        if isinstance(target, str):
            transport = AiohttpProxyTransport(target, max_connections=max_connections)
        elif isinstance(target, httpx.AsyncClient):
            transport = HttpxProxyTransport(target)
        else:
            # The app's answer is relayed as the app sends it (`httpx.ASGITransport` waits for the whole).
            asgi = StreamingASGITransport(target)
            transport = HttpxProxyTransport(httpx.AsyncClient(base_url=f"http://{host_name(name)}", transport=asgi))
            app = target
        return cls(name, transport=transport, app=app)

    async def send(
        self,
        method: str,
        path: str,
        *,
        query: bytes = b"",
        headers: Headers,
        body: LimitedBody | bytes | None = None,
        timeout: float,
    ) -> httpx.Response:
        """Send the request; the response's body is still to be streamed (close it with `aclose`).

        Raises UpstreamUnavailable when there is no answer within `timeout`, and BodyTooLarge.
        """
        raw_path = quote_path(path) + (b"?" + query if query else b"")
        try:
            # The transports' own timeouts do not cover an in-process app; this does, for all.
            async with asyncio.timeout(timeout):
                response = await self.transport.send(method, raw_path, headers=headers, body=body, timeout=timeout)
        except BodyTooLarge:
            raise
        except TimeoutError:
            raise UpstreamUnavailable(self.name, f"no answer within {timeout:g}s", status_code=504) from None
        except SendFailed as exc:
            if isinstance(body, LimitedBody) and body.exceeded:
                raise BodyTooLarge(body.limit) from None
            raise UpstreamUnavailable(self.name, exc.reason) from None
        if isinstance(body, LimitedBody) and body.exceeded:
            # An upstream that read past the limit answered its own error: the limit is the answer.
            await response.aclose()
            raise BodyTooLarge(body.limit)
        return response

    async def aclose(self) -> None:
        await self.transport.aclose()


class UpstreamPool(Mapping[str, Upstream]):
    """Every upstream of the gateway, by name (`renderer`, `bff:events`, `backend:users`…)."""

    def __init__(self, upstreams: Mapping[str, Upstream]) -> None:
        self._upstreams = dict(upstreams)

    @classmethod
    def create(cls, targets: Mapping[str, Target], *, max_connections: int = DEFAULT_MAX_CONNECTIONS) -> UpstreamPool:
        return cls(
            {name: Upstream.create(name, target, max_connections=max_connections) for name, target in targets.items()}
        )

    def __getitem__(self, name: str) -> Upstream:
        return self._upstreams[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._upstreams)

    def __len__(self) -> int:
        return len(self._upstreams)

    async def aclose(self) -> None:
        for upstream in self._upstreams.values():
            await upstream.aclose()
