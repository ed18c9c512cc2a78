"""Downstream HTTP calls: one pooled `httpx.AsyncClient` per named upstream.

An upstream is reached over the network (a base URL) or in the same process (an ASGI app
through `httpx.ASGITransport`); callers use the same code path for both.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator, Mapping
from typing import Any

import httpx
from starlette.types import ASGIApp

from oberon.exceptions import InvalidResponse, UpstreamError, UpstreamStatusError, UpstreamTimeout

DEFAULT_TIMEOUT = 2.0
DEFAULT_LIMITS = httpx.Limits(max_connections=32, max_keepalive_connections=32)
DEFAULT_MAX_BODY_BYTES = 2 * 1024 * 1024

Target = str | ASGIApp


class Upstream:
    """A named downstream service and the pooled client that reaches it."""

    def __init__(self, name: str, *, client: httpx.AsyncClient, max_body_bytes: int = DEFAULT_MAX_BODY_BYTES) -> None:
        self.name = name
        self.client = client
        self.max_body_bytes = max_body_bytes

    @classmethod
    def create(
        cls, name: str, target: Target, *, timeout: float = DEFAULT_TIMEOUT, limits: httpx.Limits = DEFAULT_LIMITS
    ) -> Upstream:
        """An upstream at a base URL, or an ASGI app served in this process."""
        if isinstance(target, str):
            client = httpx.AsyncClient(base_url=target, timeout=timeout, limits=limits)
        else:
            client = httpx.AsyncClient(
                base_url=f"http://{name}", timeout=timeout, transport=httpx.ASGITransport(app=target)
            )
        return cls(name, client=client)

    async def get_json(self, path: str, *, timeout: float, headers: Mapping[str, str] | None = None) -> Any:
        """GET `path` and return its JSON body; raises an UpstreamError subclass on any failure."""
        try:
            async with asyncio.timeout(timeout):
                response = await self.client.get(path, headers=headers, timeout=timeout)
        except (TimeoutError, httpx.TimeoutException):
            raise UpstreamTimeout(self.name, f"GET {path} took longer than {timeout:.3g}s") from None
        except httpx.HTTPError as exc:
            raise UpstreamError(self.name, f"GET {path} failed: {exc.__class__.__name__}: {exc}") from None
        if response.status_code >= 400:
            raise UpstreamStatusError(
                self.name, f"GET {path} answered {response.status_code}", status_code=response.status_code
            )
        content_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type != "application/json" and not content_type.endswith("+json"):
            raise InvalidResponse(self.name, f"GET {path} answered {content_type or 'no content type'}, not JSON")
        if len(response.content) > self.max_body_bytes:
            raise InvalidResponse(self.name, f"GET {path} answered more than {self.max_body_bytes} bytes")
        try:
            return json.loads(response.content)
        except ValueError:
            raise InvalidResponse(self.name, f"GET {path} answered malformed JSON") from None

    async def aclose(self) -> None:
        await self.client.aclose()


class Upstreams(Mapping[str, Upstream]):
    """The upstreams a service calls, by name."""

    def __init__(self, upstreams: Mapping[str, Upstream] | None = None) -> None:
        self._upstreams = dict(upstreams or {})

    @classmethod
    def create(cls, targets: Mapping[str, Target], *, timeout: float = DEFAULT_TIMEOUT) -> Upstreams:
        return cls({name: Upstream.create(name, target, timeout=timeout) for name, target in targets.items()})

    def __getitem__(self, name: str) -> Upstream:
        try:
            return self._upstreams[name]
        except KeyError:
            raise UpstreamError(name, "no such upstream is configured") from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._upstreams)

    def __len__(self) -> int:
        return len(self._upstreams)

    async def aclose(self) -> None:
        for upstream in self._upstreams.values():
            await upstream.aclose()
