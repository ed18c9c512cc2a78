"""A TTL cache of upstream responses that honours their Cache-Control and keeps stale copies for errors."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any

from cachetools import TLRUCache

DEFAULT_MAX_ENTRIES = 2048
DEFAULT_MAX_BYTES = 32 * 1024 * 1024
DEFAULT_MAX_ENTRY_BYTES = 1024 * 1024


@dataclass(frozen=True)
class Freshness:
    """What a response's Cache-Control allows a shared cache to do with it."""

    max_age: float = 0.0
    stale_if_error: float = 0.0
    store: bool = False

    @classmethod
    @functools.lru_cache(maxsize=256)  # an upstream sends the same few headers again and again
    def parse(cls, header: str | None) -> Freshness:
        """Read `no-store`, `private`, `no-cache`, `s-maxage`/`max-age` and `stale-if-error`."""
        if not header:
            return cls()
        directives: dict[str, str] = {}
        for part in header.lower().split(","):
            name, _, value = part.strip().partition("=")
            directives[name.strip()] = value.strip().strip('"')
        if {"no-store", "private", "no-cache"} & directives.keys():
            return cls()
        max_age = _seconds(directives.get("s-maxage", directives.get("max-age")))
        stale = _seconds(directives.get("stale-if-error"))
        return cls(max_age=max_age, stale_if_error=stale, store=max_age > 0)


def _seconds(value: str | None) -> float:
    try:
        return max(0.0, float(int(value))) if value is not None else 0.0
    except ValueError:
        return 0.0


@dataclass(frozen=True)
class Entry:
    value: Any
    size: int
    fresh_until: float
    stale_until: float


@dataclass
class CacheStats:
    hits: int = 0
    misses: int = 0
    stale_served: int = 0


@dataclass(frozen=True)
class Lookup:
    """A cache lookup: a fresh value, a stale one usable only if the upstream fails, or nothing."""

    value: Any = None
    fresh: bool = False
    stale: bool = False
    fresh_for: float = 0.0  # seconds the fresh value stays fresh


_MISS = Lookup()  # every miss: one shared value, never changed (issue 19)


class ResponseCache:
    """Bounded by entries and bytes; each entry lives until its stale-if-error window ends."""

    def __init__(
        self,
        *,
        max_entries: int = DEFAULT_MAX_ENTRIES,
        max_bytes: int = DEFAULT_MAX_BYTES,
        max_entry_bytes: int = DEFAULT_MAX_ENTRY_BYTES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_entries = max_entries
        self.max_entry_bytes = max_entry_bytes
        self._clock = clock
        self._entries: TLRUCache[Hashable, Entry] = TLRUCache(
            maxsize=max_bytes, ttu=lambda _key, entry, _now: entry.stale_until, timer=clock, getsizeof=_size
        )
        self.stats = CacheStats()
        # Until the first answer is kept, every lookup misses: no need to ask cachetools (its timer and expiry
        # cost each call; issue 19: an upstream that answers no-store, as the peers' fragment server does, never
        # fills it).
        self._kept_any = False

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def bytes(self) -> int:
        return int(self._entries.currsize)

    def lookup(self, key: Hashable) -> Lookup:
        if not self._kept_any:
            self.stats.misses += 1
            return _MISS
        entry = self._entries.get(key)
        if entry is None:
            self.stats.misses += 1
            return _MISS
        now = self._clock()
        if now < entry.fresh_until:
            self.stats.hits += 1
            return Lookup(entry.value, fresh=True, fresh_for=entry.fresh_until - now)
        self.stats.misses += 1
        return Lookup(entry.value, stale=True)

    def store(self, key: Hashable, value: Any, *, size: int, freshness: Freshness) -> float:
        """Keep `value` if its Cache-Control allows and it is not too large; how long it stays fresh (0: not kept)."""
        if not freshness.store or size > self.max_entry_bytes:
            if self._kept_any and key in self._entries:  # an older copy this answer replaces
                del self._entries[key]
            return 0.0
        while len(self._entries) >= self.max_entries and key not in self._entries:
            self._entries.popitem()
        self._kept_any = True
        now = self._clock()
        fresh_until = now + freshness.max_age
        self._entries[key] = Entry(value, size, fresh_until, fresh_until + freshness.stale_if_error)
        return freshness.max_age

    def served_stale(self) -> None:
        self.stats.stale_served += 1


def _size(entry: Entry) -> int:
    return entry.size
