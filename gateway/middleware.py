"""The gateway's outer ASGI layers: limits and path normalisation on the way in, security headers on the way out."""

from __future__ import annotations

import json
from urllib.parse import quote

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.context import ProxyTrust
from gateway.security import SecurityHeaders
from gateway.table import normalize_path

_PATH_SAFE = "/:@!$&'()*+,;=-._~"
_REPLACED = frozenset({b"content-security-policy", b"referrer-policy", b"x-frame-options", b"x-content-type-options"})


async def _refuse(send: Send, status: int, message: str) -> None:
    body = json.dumps({"error": message}).encode("utf-8")
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode("ascii")),
        (b"cache-control", b"no-store"),
        (b"connection", b"close"),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class Entrance:
    """Refuses oversized headers (431) and URLs (414); hands on the path with `.`, `..` and `//` resolved.

    Everything after this layer — the gateway's own endpoints, the routing table, the upstream —
    sees the same path, so a path cannot match one route and reach another.
    """

    def __init__(self, app: ASGIApp, *, max_header_bytes: int) -> None:
        self.app = app
        self.max_header_bytes = max_header_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        # As on the wire: "name: value\r\n" for each field.
        size = sum(len(name) + len(value) + 4 for name, value in scope["headers"])
        if size > self.max_header_bytes:
            await _refuse(send, 431, f"the request's headers are larger than {self.max_header_bytes} bytes")
            return
        if len(scope.get("raw_path") or b"") + len(scope.get("query_string", b"")) > self.max_header_bytes:
            await _refuse(send, 414, f"the URL is longer than {self.max_header_bytes} bytes")
            return
        path = normalize_path(scope["path"])
        if path != scope["path"]:
            scope = {**scope, "path": path, "raw_path": quote(path, safe=_PATH_SAFE).encode("ascii")}
        await self.app(scope, receive, send)


class SecureHeaders:
    """Adds the security headers to every response: CSP and framing rules on HTML, `nosniff` on all.

    HSTS goes on every response once the caller is on https: `always_https` (the public URL is
    https) or the connection's scheme, or a trusted proxy's `X-Forwarded-Proto`, says so.
    """

    def __init__(
        self, app: ASGIApp, *, headers: SecurityHeaders, proxies: ProxyTrust, always_https: bool = False
    ) -> None:
        self.app = app
        self.headers = headers
        self.proxies = proxies
        self.always_https = always_https

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        https = self._https(scope)

        async def send_secured(message: Message) -> None:
            if message["type"] == "http.response.start":
                raw = [(name, value) for name, value in message.get("headers", []) if name.lower() not in _REPLACED]
                content_type = next((value for name, value in raw if name.lower() == b"content-type"), b"")
                html = content_type.split(b";")[0].strip().lower() in (b"text/html", b"application/xhtml+xml")
                added = [
                    (name.encode("latin-1"), value.encode("latin-1"))
                    for name, value in self.headers.headers(html=html, https=https)
                ]
                message = {**message, "headers": raw + added}
            await send(message)

        await self.app(scope, receive, send_secured)

    def _https(self, scope: Scope) -> bool:
        if self.always_https:
            return True
        client = scope.get("client")
        headers = [(name.decode("latin-1"), value.decode("latin-1")) for name, value in scope["headers"]]
        caller = self.proxies.resolve(
            peer=client[0] if client else None, scheme=scope.get("scheme", "http"), host="", headers=headers
        )
        return caller.scheme == "https"
