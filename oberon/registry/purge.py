"""Purging the site's CDN when a component's channels change, so no cached page keeps a version that left.

The registry service is given the site's CDN once (`oberon registry serve --cdn-purge URL`, or
`OBERON_REGISTRY_CDN_PURGE`; several URLs for several Varnish servers). After each ramp, promote and
rollback it sends `PURGE URL` with `Surrogate-Key: component:NAME`, as infra/cdn/oberon.vcl takes it (from
its local network only): every cached page holding the component goes. A purge that fails is logged and
said in the change's answer (the CLI prints it); it never undoes or fails the change.

Renderers take up a change a poll or two later (`OBERON_REGISTRY_POLL_SECONDS`): a page the CDN fetches in
between is rendered by the old version and cached again. So each purge is sent once more
`again_after` seconds later (`OBERON_REGISTRY_CDN_PURGE_AGAIN_SECONDS`, 3 by default), when the renderers
serve the change.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx

from oberon.exceptions import ConfigError

logger = logging.getLogger("oberon.registry")

DEFAULT_AGAIN_AFTER = 3.0
TIMEOUT = 5.0
SURROGATE_KEY = "Surrogate-Key"


def surrogate_key(name: str) -> str:
    """The key every page holding component `name` carries (`oberon.pipeline.cache_policy.surrogate_keys`)."""
    return f"component:{name}"


@dataclass(frozen=True)
class Purged:
    """What one CDN answered to a purge: `error` None when it purged."""

    url: str
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"url": self.url, "ok": self.error is None, "error": self.error}


class Purger:
    """Purges component pages from the CDNs at `urls`, now and again `again_after` seconds later."""

    def __init__(
        self,
        *,
        urls: Sequence[str],
        again_after: float = DEFAULT_AGAIN_AFTER,
        timeout: float = TIMEOUT,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        for url in urls:
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.netloc:
                raise ConfigError(f"a CDN to purge is an http:// or https:// URL, got {url!r}")
        if again_after < 0:
            raise ConfigError(f"the purge is sent again 0 or more seconds later, got {again_after}")
        self.urls = tuple(urls)
        self.again_after = again_after
        self._timeout = timeout
        self._transport = transport

    async def purge(self, name: str) -> list[Purged]:
        """Purge `name`'s pages from every CDN; what each answered (logged when it failed)."""
        key = surrogate_key(name)
        async with httpx.AsyncClient(timeout=self._timeout, transport=self._transport, trust_env=False) as client:
            results = await asyncio.gather(*(self._one(client, url, key) for url in self.urls))
        for result in results:
            if result.error is not None:
                logger.warning("registry: the CDN purge of %s at %s failed: %s", key, result.url, result.error)
        return list(results)

    async def purge_again(self, name: str) -> None:
        """After `again_after` seconds, purge once more: what the CDN cached while renderers took the change up."""
        if self.again_after <= 0:
            return
        await asyncio.sleep(self.again_after)
        await self.purge(name)

    async def _one(self, client: httpx.AsyncClient, url: str, key: str) -> Purged:
        try:
            response = await client.request("PURGE", url, headers={SURROGATE_KEY: key})
        except httpx.HTTPError as exc:
            return Purged(url, f"{type(exc).__name__}: {exc or 'no answer'}")
        if response.status_code != 200:
            return Purged(url, f"answered {response.status_code}")
        return Purged(url)
