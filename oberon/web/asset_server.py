"""The asset server: the hashed files of one build folder, cached forever by browsers and CDNs.

It runs on its own origin (a second host name), so the browser sends no cookie with an asset
request; it never sets one. A hashed file never changes, so every answer is
`Cache-Control: public, max-age=31536000, immutable` with a strong ETag, and the file is sent
precompressed (brotli or gzip, whichever the request accepts) with `Vary: Accept-Encoding`.

Only a single path segment shaped like a hashed file name is ever looked up, and the file
found must resolve inside the folder: `..`, encoded dots (`%2e%2e`, `%252e`), backslashes,
absolute paths, NUL bytes and symlinks out of the folder all end in 404.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from cachetools import LRUCache
from starlette.datastructures import Headers
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from oberon.pipeline.assets import ASSET_PATH, ENCODINGS, HASHED_NAME

IMMUTABLE = "public, max-age=31536000, immutable"
MEDIA_TYPES: Mapping[str, str] = {"css": "text/css; charset=utf-8", "js": "text/javascript; charset=utf-8"}
DEFAULT_CACHE_ENTRIES = 512


@dataclass(frozen=True)
class _Variant:
    body: bytes
    etag: str


@dataclass(frozen=True)
class _File:
    media_type: str
    variants: Mapping[str, _Variant]  # "identity", "gzip", "br"


class AssetServer:
    """An ASGI app serving the hashed files of `folder` under `prefix`; `allow_origins` may load them (CORS)."""

    def __init__(
        self,
        *,
        folder: Path,
        allow_origins: Sequence[str] = (),
        prefix: str = ASSET_PATH,
        cache_entries: int = DEFAULT_CACHE_ENTRIES,
    ) -> None:
        if not (prefix.startswith("/") and prefix.endswith("/")):
            raise ValueError(f"the asset path prefix must start and end with '/', got {prefix!r}")
        self.folder = folder
        self.allow_origins = tuple(allow_origins)
        self.prefix = prefix
        # Hashed files never change, so what was read once is served from memory from then on.
        self._cache: LRUCache[str, _File] = LRUCache(maxsize=cache_entries)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        response = self.respond(scope["method"], scope["path"], Headers(scope=scope))
        await response(scope, receive, send)

    def respond(self, method: str, path: str, headers: Headers) -> Response:
        """The answer to one request, from its method, its (already percent-decoded) path and headers."""
        cors = self._cors(headers.get("origin"))
        if method not in ("GET", "HEAD"):
            return PlainTextResponse("Method not allowed", status_code=405, headers={"Allow": "GET, HEAD", **cors})
        found = self._find(path)
        if found is None:
            return PlainTextResponse("Not found", status_code=404, headers={"Cache-Control": "no-store", **cors})
        encoding = _choose_encoding(headers.get("accept-encoding", ""), found.variants)
        variant = found.variants[encoding]
        common = {
            "Cache-Control": IMMUTABLE,
            "ETag": variant.etag,
            "Vary": "Accept-Encoding",
            "X-Content-Type-Options": "nosniff",
            "Cross-Origin-Resource-Policy": "cross-origin",
            **cors,
        }
        if _matches(headers.get("if-none-match", ""), variant.etag):
            return Response(status_code=304, headers=common)
        if encoding != "identity":
            common["Content-Encoding"] = encoding
        body = b"" if method == "HEAD" else variant.body
        common["Content-Length"] = str(len(variant.body))
        return Response(body, headers=common, media_type=found.media_type)

    def _cors(self, origin: str | None) -> dict[str, str]:
        if not self.allow_origins:
            return {}
        if len(self.allow_origins) == 1:
            only = self.allow_origins[0]
            return {"Access-Control-Allow-Origin": only, "Timing-Allow-Origin": only}
        # Several page origins: echo the one asking, and tell caches the answer depends on it.
        allowed = origin if origin in self.allow_origins else self.allow_origins[0]
        return {"Access-Control-Allow-Origin": allowed, "Timing-Allow-Origin": allowed, "Vary": "Origin"}

    def _find(self, path: str) -> _File | None:
        if not path.startswith(self.prefix):
            return None
        name = path[len(self.prefix) :]
        if not HASHED_NAME.match(name):  # one plain segment: no '/', '\\', '..', '%', NUL
            return None
        cached = self._cache.get(name)
        if cached is not None:
            return cached
        loaded = self._load(name)
        if loaded is not None:
            self._cache[name] = loaded
        return loaded

    def _load(self, name: str) -> _File | None:
        root = self.folder.resolve()
        variants: dict[str, _Variant] = {}
        for encoding, suffix in (("identity", ""), *ENCODINGS.items()):
            path = self.folder / (name + suffix)
            try:
                if not path.resolve(strict=True).is_relative_to(root) or not path.is_file():
                    continue
                body = path.read_bytes()
            except (OSError, RuntimeError):  # missing, unreadable, or a symlink loop
                continue
            tag = hashlib.sha256(body).hexdigest()[:32]
            variants[encoding] = _Variant(body=body, etag=f'"{tag}"')
        if "identity" not in variants:
            return None
        return _File(media_type=MEDIA_TYPES[name.rsplit(".", 1)[-1]], variants=variants)


def _choose_encoding(accept_encoding: str, available: Iterable[str]) -> str:
    """The best precompressed variant the request accepts (brotli before gzip), else the file as is."""
    accepted: dict[str, float] = {}
    for item in accept_encoding.split(","):
        token, _, params = item.strip().partition(";")
        quality = 1.0
        params = params.strip()
        if params.startswith("q="):
            try:
                quality = float(params[2:])
            except ValueError:
                quality = 0.0
        if token:
            accepted[token.strip().lower()] = quality
    have = set(available)
    for encoding in ENCODINGS:
        if encoding in have and accepted.get(encoding, accepted.get("*", 0.0)) > 0:
            return encoding
    return "identity"


def _matches(if_none_match: str, etag: str) -> bool:
    """`If-None-Match` holds `*` or this ETag (compared weakly, as RFC 9110 asks for this header)."""
    if not if_none_match:
        return False
    if if_none_match.strip() == "*":
        return True
    return any(tag.strip().removeprefix("W/") == etag for tag in if_none_match.split(","))


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


class HostDispatch:
    """Sends requests for the asset host names to the asset server, everything else to `app`.

    The embedded topology serves both origins on one port: cookies are per host name, not per
    port, so `localhost:8000` carries none of the cookies of `127.0.0.1:8000`. On the asset host
    `/` redirects to the site (for a person who typed it); every other path is the asset server's.
    """

    def __init__(self, app: ASGIApp, *, assets: ASGIApp, hosts: Iterable[str], site_origin: str) -> None:
        self.app = app
        self.assets = assets
        self.hosts = frozenset(host.lower() for host in hosts)
        self.site_origin = site_origin

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            host = Headers(scope=scope).get("host", "").lower()
            if host in self.hosts:
                if scope["type"] == "http" and scope["path"] == "/":
                    response = RedirectResponse(self.site_origin + "/", status_code=307)
                    await response(scope, receive, send)
                    return
                await self.assets(scope, receive, send)
                return
        await self.app(scope, receive, send)
