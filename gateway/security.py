"""Security headers on every response the gateway sends: a Content-Security-Policy for HTML, and the rest.

Pages load styles and scripts from the site itself (and the asset origin, once assets move
there); the page's `<script type="application/json">` state is data, which CSP does not block.
Inline `<style>` blocks that the platform's own error and sign-in pages carry are allowed by hash.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import re
from collections.abc import Iterable, Sequence
from importlib import resources

REFERRER_POLICY = "strict-origin-when-cross-origin"
HSTS = "max-age=31536000"
_STYLE = re.compile(r"<style>(.*?)</style>", re.S)
_HTML = (b"text/html", b"application/xhtml+xml")
# An answer's own headers under these names give way to the gateway's (`SecurityHeaders.headers`; HSTS is added).
# In an answer's start message: its headers have the security headers already, as `SecureHeaders` would add them
# (the embedded gateway's hop adds them in its one pass over the upstream's headers; issue 19).
SECURED = "oberon.secured"
REPLACED = frozenset({b"content-security-policy", b"referrer-policy", b"x-frame-options", b"x-content-type-options"})
# The platform's own pages that carry an inline <style>: the renderer's error page and the gateway's pages.
PLATFORM_TEMPLATES: tuple[tuple[str, str], ...] = (
    ("oberon", "templates/error.html"),
    ("gateway", "templates/layout.html"),
)


def style_hashes(texts: Iterable[str]) -> tuple[str, ...]:
    """CSP source expressions (`'sha256-…'`) for every inline `<style>` block in `texts`."""
    found: dict[str, None] = {}
    for text in texts:
        for block in _STYLE.findall(text):
            digest = base64.b64encode(hashlib.sha256(block.encode("utf-8")).digest()).decode("ascii")
            found[f"'sha256-{digest}'"] = None
    return tuple(found)


def platform_style_hashes() -> tuple[str, ...]:
    """The hashes of the inline styles of the platform's own pages."""
    texts = []
    for package, name in PLATFORM_TEMPLATES:
        texts.append(resources.files(package).joinpath(name).read_text(encoding="utf-8"))
    return style_hashes(texts)


@functools.lru_cache(maxsize=64)
def is_html(content_type: bytes) -> bool:
    """Whether an answer's `Content-Type` is HTML: worked out once per distinct value (a site sends a few)."""
    return content_type.split(b";")[0].strip().lower() in _HTML


def content_security_policy(*, asset_origin: str = "", style_hashes: Sequence[str] = ()) -> str:
    """Same-origin everything (plus the asset origin for assets); no framing, no plugins, no foreign forms."""
    assets = f" {asset_origin}" if asset_origin else ""
    hashes = "".join(f" {value}" for value in style_hashes)
    return "; ".join(
        [
            "default-src 'self'",
            f"script-src 'self'{assets}",
            f"style-src 'self'{assets}{hashes}",
            f"img-src 'self'{assets} data:",
            f"font-src 'self'{assets}",
            "connect-src 'self'",
            "object-src 'none'",
            "base-uri 'none'",
            "form-action 'self'",
            "frame-ancestors 'none'",
        ]
    )


class SecurityHeaders:
    """The headers the gateway puts on responses, replacing any an upstream sent under the same names."""

    def __init__(self, *, asset_origin: str = "", style_hashes: Sequence[str] = ()) -> None:
        self.csp = content_security_policy(asset_origin=asset_origin, style_hashes=style_hashes)
        # The headers as an ASGI answer holds them, encoded once for each kind of answer: (html, https) → headers.
        self._encoded = {
            (html, https): [
                (name.encode("latin-1"), value.encode("latin-1"))
                for name, value in self.headers(html=html, https=https)
            ]
            for html in (False, True)
            for https in (False, True)
        }

    def headers(self, *, html: bool, https: bool) -> list[tuple[str, str]]:
        headers = [("X-Content-Type-Options", "nosniff")]
        if html:
            headers += [
                ("Content-Security-Policy", self.csp),
                ("Referrer-Policy", REFERRER_POLICY),
                ("X-Frame-Options", "DENY"),
            ]
        if https:
            headers.append(("Strict-Transport-Security", HSTS))
        return headers

    def encoded(self, *, html: bool, https: bool) -> list[tuple[bytes, bytes]]:
        """`headers` as bytes (the same list every time: copy it to change it)."""
        return self._encoded[html, https]
