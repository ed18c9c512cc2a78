"""A micro-cache of rendered pages, for as long as all of their data is fresh.

A page is a pure function of its app, params, locale, mode and data: when every data source it read
answered with a shared lifetime (`max-age`/`s-maxage`, kept by the client's response cache), the same
request renders the same HTML until the first of those lifetimes ends. The renderer keeps it that long,
bounded by `max_seconds` and `max_bytes`. Only anonymous, public, complete pages are kept: nothing
rendered for a signed-in visitor, nothing private, no page with a fallback or a component still pending.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar

from cachetools import TLRUCache

from oberon.defaults import DEFAULT_PAGE_CACHE_SECONDS as DEFAULT_MAX_SECONDS

DEFAULT_MAX_BYTES = 32 * 1024 * 1024

Value = TypeVar("Value")


@dataclass(frozen=True)
class _Entry(Generic[Value]):
    value: Value
    size: int
    expires: float


class PageCache(Generic[Value]):
    """Rendered pages by key, each until its own expiry; bounded in bytes (least recently used go first)."""

    def __init__(
        self,
        *,
        max_seconds: float = DEFAULT_MAX_SECONDS,
        max_bytes: int = DEFAULT_MAX_BYTES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_seconds = max_seconds
        self._clock = clock
        self._entries: TLRUCache[Hashable, _Entry[Value]] = TLRUCache(
            maxsize=max_bytes, ttu=lambda _key, entry, _now: entry.expires, timer=clock, getsizeof=lambda e: e.size
        )

    @property
    def enabled(self) -> bool:
        return self.max_seconds > 0

    def get(self, key: Hashable) -> Value | None:
        entry = self._entries.get(key)
        return entry.value if entry is not None else None

    def put(self, key: Hashable, value: Value, *, size: int, fresh_for: float) -> None:
        """Keep `value` for `fresh_for` seconds (at most `max_seconds`); a page that is too big is not kept."""
        seconds = min(fresh_for, self.max_seconds)
        if seconds <= 0 or size > self._entries.maxsize:
            return
        self._entries[key] = _Entry(value, size, self._clock() + seconds)

    def clear(self) -> None:
        """Forget every page (the registry changed)."""
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)
