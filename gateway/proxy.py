"""Forwarding one request to an upstream and streaming its answer back, through a pooled httpx client.

An upstream is a base URL (split topology) or an ASGI app in this process (embedded topology,
through `httpx.ASGITransport`): the same code path either way.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator, Mapping
from urllib.parse import quote

import httpx
from starlette.types import ASGIApp

from oberon.exceptions import BodyTooLarge, UpstreamUnavailable

DEFAULT_MAX_CONNECTIONS = 64
DEFAULT_CONNECT_TIMEOUT = 2.0
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

Target = str | ASGIApp
Headers = list[tuple[str, str]]


def connection_headers(headers: Headers) -> frozenset[str]:
    """Hop-by-hop header names of a message: the fixed ones and those its `Connection` header lists."""
    named = {
        token.strip().lower() for name, value in headers if name.lower() == "connection" for token in value.split(",")
    }
    return HOP_BY_HOP | named


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


class Upstream:
    """One named upstream and its pooled client."""

    def __init__(self, name: str, *, client: httpx.AsyncClient) -> None:
        self.name = name
        self.client = client

    @classmethod
    def create(cls, name: str, target: Target, *, max_connections: int = DEFAULT_MAX_CONNECTIONS) -> Upstream:
        """An upstream at a base URL, or an ASGI app served in this process."""
        if isinstance(target, str):
            limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections)
            client = httpx.AsyncClient(base_url=target, limits=limits, follow_redirects=False, trust_env=False)
        else:
            # The app's own 500 comes back as a 500 response, as it would over the network.
            transport = httpx.ASGITransport(app=target, raise_app_exceptions=False)
            client = httpx.AsyncClient(base_url=f"http://{name.replace(':', '.')}", transport=transport)
        return cls(name, client=client)

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
        raw_path = quote(path, safe=_PATH_SAFE).encode("ascii") + (b"?" + query if query else b"")
        request = self.client.build_request(
            method,
            self.client.base_url.copy_with(raw_path=raw_path),
            headers=headers,
            content=body,
            timeout=httpx.Timeout(timeout, connect=min(timeout, DEFAULT_CONNECT_TIMEOUT)),
        )
        try:
            # httpx's timeouts do not cover an in-process app; this does, for both.
            async with asyncio.timeout(timeout):
                response = await self.client.send(request, stream=True)
        except BodyTooLarge:
            raise
        except (TimeoutError, httpx.TimeoutException):
            raise UpstreamUnavailable(self.name, f"no answer within {timeout:g}s", status_code=504) from None
        except httpx.HTTPError as exc:
            if isinstance(body, LimitedBody) and body.exceeded:
                raise BodyTooLarge(body.limit) from None
            raise UpstreamUnavailable(self.name, f"{exc.__class__.__name__}: {exc}".rstrip(": ")) from None
        if isinstance(body, LimitedBody) and body.exceeded:
            # An in-process app that read past the limit answered its own error: the limit is the answer.
            await response.aclose()
            raise BodyTooLarge(body.limit)
        return response

    async def aclose(self) -> None:
        await self.client.aclose()


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
