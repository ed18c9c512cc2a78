"""What a page render takes and gives: the request's context in, the page out, and its record for observers."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from oberon.headers import DEFAULT_DEVICE, REQUEST_ID_HEADER, ROLES_HEADER, USER_HEADER
from oberon.pipeline.registry import Component
from oberon.pipeline.rendering import Fragment
from oberon.pipeline.server_timing import Timing
from oberon.pipeline.streaming import PageStream
from oberon.types import Mode, Outcome


@dataclass(frozen=True)
class RequestContext:
    """What the page may know about the request, as verified by the gateway."""

    request_id: str
    locale: str = "en"
    headers: Mapping[str, str] = field(default_factory=dict)
    user: str | None = None
    roles: tuple[str, ...] = ()
    device: str = DEFAULT_DEVICE  # the gateway's device class (X-Oberon-Device)

    @property
    def signed_in(self) -> bool:
        return self.user is not None

    def inputs(self) -> dict[str, str]:
        """What a data source may declare it reads (`context = ["device", "locale"]`), by name."""
        return {"device": self.device, "locale": self.locale}

    def upstream_headers(self) -> dict[str, str]:
        """What a BFF learns about the request: its id, the locale and the verified user."""
        headers = {REQUEST_ID_HEADER: self.request_id, "Accept-Language": self.locale}
        if self.user is not None:
            headers[USER_HEADER] = self.user
            headers[ROLES_HEADER] = ",".join(self.roles)
        return headers


class Page(NamedTuple):
    """A rendered page: status, HTML, Cache-Control and what happened to each component.

    A named tuple, not a frozen dataclass (as `Fragment`): one is made on every page, and a frozen dataclass sets each
    of its thirteen fields through `object.__setattr__`; immutable all the same (the page cache shares it)."""

    status_code: int
    html: str
    cache_control: str
    fragments: tuple[Fragment, ...]
    state: Mapping[str, Any]
    preload: str = ""  # a `Link` header value: the page's stylesheets, to fetch before the HTML is parsed
    timing: Timing = Timing()
    surrogate_keys: tuple[str, ...] = ()
    esi: bool = False  # the HTML holds <esi:include> islands for the CDN to fill in
    mode: Mode = Mode.NORMAL  # the renderer's mode its Cache-Control was decided in
    from_cache: bool = False  # served from the page cache, not rendered for this request
    rest: PageStream | None = None  # streamed: the HTML after `html`, as slow components finish
    by_device: bool = False  # a data source read the device class: the page varies by X-Oberon-Device

    @property
    def fallbacks(self) -> list[str]:
        fallback = Outcome.FALLBACK  # read once: a member read off its enum class is a descriptor call in 3.11
        return [fragment.component.name for fragment in self.fragments if fragment.outcome is fallback]


class PageRecord(NamedTuple):
    """One render of a page (or a preview) as the renderer saw it, also when a critical component failed it."""

    root: Component
    fragments: tuple[Fragment, ...]
    timing: Timing
    failed: bool = False
    page_cache: str | None = None  # `hit` or `miss` when the page cache was asked, else None
    streamed: bool = False  # its first bytes left while a child was still pending


PageObserver = Callable[[PageRecord], None]
