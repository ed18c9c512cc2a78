"""The one function that decides a page's Cache-Control."""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from oberon.defaults import DEFAULT_CACHE_DEGRADED_MAX_AGE as DEFAULT_DEGRADED_MAX_AGE
from oberon.defaults import DEFAULT_CACHE_FALLBACK_MAX_AGE as DEFAULT_FALLBACK_MAX_AGE
from oberon.defaults import DEFAULT_CACHE_SHARED_MAX_AGE as DEFAULT_SHARED_MAX_AGE
from oberon.defaults import DEFAULT_CACHE_STALE_IF_ERROR as DEFAULT_STALE_IF_ERROR
from oberon.defaults import DEFAULT_CACHE_STALE_WHILE_REVALIDATE as DEFAULT_STALE_WHILE_REVALIDATE
from oberon.exceptions import ConfigError
from oberon.types import Cacheability, Mode

PRIVATE = "private, no-store"
NO_STORE = "no-store"
DEGRADED_BOUNDS = (60, 300)


@dataclass(frozen=True)
class CachePolicy:
    """Shared (CDN) lifetimes for public pages; degraded mode lengthens them within 60–300 s."""

    shared_max_age: int = DEFAULT_SHARED_MAX_AGE
    degraded_max_age: int = DEFAULT_DEGRADED_MAX_AGE
    fallback_max_age: int = DEFAULT_FALLBACK_MAX_AGE
    stale_while_revalidate: int = DEFAULT_STALE_WHILE_REVALIDATE
    stale_if_error: int = DEFAULT_STALE_IF_ERROR

    def __post_init__(self) -> None:
        low, high = DEGRADED_BOUNDS
        if not low <= self.degraded_max_age <= high:
            raise ConfigError(f"degraded_max_age must be {low} to {high} seconds, got {self.degraded_max_age}")
        for name in ("shared_max_age", "fallback_max_age", "stale_while_revalidate", "stale_if_error"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must not be negative")

    def cache_control(
        self,
        *,
        page: Cacheability,
        components: Iterable[Cacheability] = (),
        fell_back: bool = False,
        mode: Mode = Mode.NORMAL,
        session: bool = False,
        sets_cookie: bool = False,
    ) -> str:
        """Cache-Control for a page from its cacheability, its components', fallbacks, session and mode."""
        if session or sets_cookie or page is Cacheability.PRIVATE or Cacheability.PRIVATE in components:
            return PRIVATE
        if mode is Mode.DEGRADED:
            return self._degraded
        return self._fell_back if fell_back else self._normal

    # The three public values, written once per policy rather than formatted on every page (issue 19).
    @functools.cached_property
    def _normal(self) -> str:
        return self._public(self.shared_max_age)

    @functools.cached_property
    def _fell_back(self) -> str:
        return self._public(min(self.fallback_max_age, self.shared_max_age))

    @functools.cached_property
    def _degraded(self) -> str:
        return self._public(self.degraded_max_age)

    def _public(self, shared: int) -> str:
        return (
            f"public, max-age=0, s-maxage={shared}, "
            f"stale-while-revalidate={self.stale_while_revalidate}, stale-if-error={self.stale_if_error}"
        )


_KEY_UNSAFE = re.compile(r"[^A-Za-z0-9:_-]")  # nothing a ban regex would read as syntax


def surrogate_keys(*, app: str, components: Iterable[str], params: Mapping[str, Any]) -> list[str]:
    """Keys a CDN can purge a page by: its app, each component on it, and the entities in its route.

    A route param `event_id=123` names the entity `event-123`, so changing event 123 purges every page of it.
    """
    return list(dict.fromkeys((*page_keys(app=app, components=components), *entity_keys(params))))


def page_keys(*, app: str, components: Iterable[str]) -> tuple[str, ...]:
    """The keys of every page of `app` with these components: its app's and each component's, each once."""
    return tuple(dict.fromkeys([f"app:{app}", *(f"component:{name}" for name in components)]))


def entity_keys(params: Mapping[str, Any]) -> list[str]:
    """The keys of the entities a page's route names, in the order of their params' names."""
    return [_KEY_UNSAFE.sub("_", f"{name.removesuffix('_id')}-{value}") for name, value in sorted(params.items())]
