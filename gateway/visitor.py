"""The visitor id: a first-party cookie that keeps a visitor in one canary bucket (00–99) on every page.

`oberon_visitor=v1.<bucket>.<22+ url-safe random characters>` (`Path=/`, a year, `SameSite=Lax`,
`HttpOnly`, `Secure` over https; the same name over http and https). The bucket is written into the
id so the CDN reads it without hashing; the random part only makes the id a visitor's own. The id is
not a credential: a visitor who edits the bucket opts themselves into or out of a canary, nothing more.
A malformed value counts as no cookie.

The gateway hands a page request's bucket to the renderer as the trusted `X-Oberon-Bucket`, and the
renderer picks the canaries that apply (`oberon.headers.cohort`). A visitor without a valid cookie
gets a new id only when the site follows a registry (`OBERON_VISITOR_COOKIE`; without canaries there
is nothing to put a visitor in, so no cookie at all) — and the answer that sets it is made
`private, no-store`, so no shared cache ever stores a `Set-Cookie` (the CDN keys its copies by
cohort instead: infra/cdn/oberon.vcl).
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass

from starlette.responses import Response

from oberon.headers import BUCKET_HEADER, BUCKETS, bucket_value
from oberon.pipeline.cache_policy import PRIVATE

VISITOR_COOKIE = "oberon_visitor"
MAX_AGE = 365 * 24 * 3600
RANDOM_BYTES = 16  # 22 url-safe characters: an id nobody else draws
_VISITOR = re.compile(r"^v1\.([0-9]{2})\.[A-Za-z0-9_-]{22,64}$")
_PLATFORM_PATH = re.compile(r"^/_oberon(/|$)")
_BUCKET_NAME = BUCKET_HEADER.lower().encode("latin-1")
_FILE_NAME = re.compile(r"\.[A-Za-z0-9]+$")  # robots.txt, sitemap.xml: files, the same for every cohort


def is_page_request(method: str, path: str) -> bool:
    """Whether a request to the renderer asks for something a canary can change: a page, island or preview.

    Not the platform's own paths (assets, health, the cohort lookup) nor a file name (`/robots.txt`); the VCL
    draws the same line.
    """
    if method not in ("GET", "HEAD"):
        return False
    return not _PLATFORM_PATH.match(path) and not _FILE_NAME.search(path.rsplit("/", 1)[-1])


@dataclass(frozen=True)
class Visitor:
    """A visitor's id and bucket; `minted` when the id is new, to be set as a cookie on the answer."""

    id: str
    bucket: int
    minted: bool = False

    @classmethod
    def read(cls, value: str | None) -> Visitor | None:
        """The visitor a cookie value names; None for a missing or malformed one."""
        match = _VISITOR.match(value or "")
        return cls(id=match.group(0), bucket=int(match.group(1))) if match else None

    @classmethod
    def mint(cls) -> Visitor:
        """A new visitor in a bucket drawn uniformly."""
        bucket = secrets.randbelow(BUCKETS)
        return cls(id=f"v1.{bucket_value(bucket)}.{secrets.token_urlsafe(RANDOM_BYTES)}", bucket=bucket, minted=True)

    def header(self) -> tuple[str, str]:
        """The trusted header that tells the renderer the bucket."""
        return (BUCKET_HEADER, bucket_value(self.bucket))

    def raw_header(self) -> tuple[bytes, bytes]:
        """`header()` as an ASGI scope holds it (the in-process hop's)."""
        return (_BUCKET_NAME, bucket_value(self.bucket).encode("ascii"))

    def set_cookie(self, *, https: bool) -> str:
        """The `Set-Cookie` value that keeps this visitor in their bucket for a year."""
        attributes = [f"{VISITOR_COOKIE}={self.id}", "Path=/", f"Max-Age={MAX_AGE}", "SameSite=Lax", "HttpOnly"]
        if https:
            attributes.append("Secure")
        return "; ".join(attributes)

    def stamp(self, response: Response, *, https: bool) -> Response:
        """Give a new visitor's answer their cookie; an answer that sets one is never stored by a shared cache."""
        if self.minted:
            kept = [(name, value) for name, value in response.raw_headers if name.lower() != b"cache-control"]
            response.raw_headers = [
                *kept,
                (b"cache-control", PRIVATE.encode("latin-1")),
                (b"set-cookie", self.set_cookie(https=https).encode("latin-1")),
            ]
        return response
