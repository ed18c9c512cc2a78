"""Where a page's time went, for the `Server-Timing` header a browser's devtools show.

`total` is the whole request in the renderer; `data` runs until the last data source settled (or
was abandoned when the page finished without it); `render` is the time spent in the components'
templates (an app's layout included, not the document around them). The slowest loaders follow:
in public numbered from the slowest (`load.1`, `load.2`…), durations only, since a BFF's name and
path map the backend for anyone who looks; named by state key with the BFF and path template as
the description when the renderer runs in development mode (`oberon up --dev`).
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable, Iterable, Mapping
from operator import itemgetter
from typing import NamedTuple

from oberon.pipeline.manifest import DataSource
from oberon.pipeline.state import Store

HEADER = "Server-Timing"
DEFAULT_SLOWEST = 3
_TOKEN_UNSAFE = re.compile(r"[^A-Za-z0-9!#$%&'*+.^_`|~-]")


class Loader(NamedTuple):
    """One data source of a page and how long it took to settle (loaded or failed).

    A named tuple, not a frozen dataclass: a page makes one per source, and a tuple is made in a fraction of the time.
    """

    key: str
    source: str  # "bff /path/{template}"
    seconds: float


_BY_SECONDS = itemgetter(2)


class Timing(NamedTuple):
    """A page's phases, in seconds (a named tuple, as `Loader`: one a page)."""

    total: float = 0.0
    data: float = 0.0
    render: float = 0.0
    loaders: tuple[Loader, ...] = ()

    def slowest(self, count: int = DEFAULT_SLOWEST) -> list[Loader]:
        return sorted(self.loaders, key=_BY_SECONDS, reverse=True)[:count]


class PageClock:
    """Measures one page render: when each data source settled, and the time spent in templates."""

    def __init__(self, *, clock: Callable[[], float] = time.perf_counter) -> None:
        self._clock = clock
        self.started = clock()
        self._sources: dict[str, DataSource] = {}
        self._settled: dict[str, float] = {}

    def watch(self, store: Store, sources: Mapping[str, DataSource]) -> None:
        """Note when each of `sources` first reaches the store."""
        self._sources = dict(sources)
        watched, settled, clock, started = self._sources, self._settled, self._clock, self.started

        def on_change(key: str) -> None:
            if key in watched and key not in settled:
                settled[key] = clock() - started

        store.on_change(on_change)

    def finish(self, *, rendered: float = 0.0) -> Timing:
        """The timing so far, with `rendered` seconds spent in templates.

        A source that never settled counts until now; keys loaded by one call count once.
        """
        now = self._clock() - self.started
        settled = self._settled
        by_source: dict[str, Loader] = {}
        data = -math.inf
        for key, source in self._sources.items():
            described = f"{source.bff} {source.path}"
            if described not in by_source:
                seconds = settled.get(key, now)
                # The tuple made as the named tuple's `_make` makes one, without its `__new__` frame (five a page).
                by_source[described] = tuple.__new__(Loader, (key, described, seconds))
                if seconds > data:
                    data = seconds  # the slowest so far: `max` of the loaders' seconds, without a list of them
        return tuple.__new__(Timing, (now, data if by_source else 0.0, rendered, tuple(by_source.values())))


def header(
    timing: Timing, *, total: float | None = None, slowest: int = DEFAULT_SLOWEST, named: bool = False
) -> str:
    """`total;dur=12.3, data;dur=8.1, render;dur=1.9, load.1;dur=8.0`; `named`, the loads are
    `load.event;dur=8.0;desc="events /events/{event_id}"`."""
    # The phases' names are tokens already: only the loads' (a state key, in development) are made safe.
    total_ms = (timing.total if total is None else total) * 1000
    value = f"total;dur={total_ms:.1f}, data;dur={timing.data * 1000:.1f}, render;dur={timing.render * 1000:.1f}"
    if not timing.loaders:
        return value
    slowest_loaders = timing.slowest(slowest)
    if named:
        loads = [_metric(f"load.{loader.key}", loader.seconds, loader.source) for loader in slowest_loaders]
        return ", ".join([value, *loads])
    # One string grown in a loop: no list, no `enumerate`, a rank's name looked up (a header a page; issue 19).
    rank = 0
    for loader in slowest_loaders:
        rank += 1
        name = _LOADS[rank] if rank < len(_LOADS) else f", load.{rank};dur="
        value += f"{name}{loader[2] * 1000:.1f}"
    return value


_LOADS = tuple(f", load.{rank};dur=" for rank in range(11))  # by rank (from 1)


def _metric(name: str, seconds: float, description: str | None = None) -> str:
    text = f"{_TOKEN_UNSAFE.sub('_', name)};dur={seconds * 1000:.1f}"
    if description:
        quoted = description.replace("\\", "\\\\").replace('"', '\\"')
        text += f';desc="{quoted}"'
    return text


def parse(value: str) -> dict[str, float]:
    """`{"total": 12.3, …}` in milliseconds, from a `Server-Timing` header (for tests and tools)."""
    durations: dict[str, float] = {}
    for entry in _split(value):
        name, *params = (part.strip() for part in entry.split(";"))
        for param in params:
            key, _, raw = param.partition("=")
            if key.strip() == "dur":
                try:
                    durations[name] = float(raw.strip())
                except ValueError:
                    pass
    return durations


def _split(value: str) -> Iterable[str]:
    """Entries separated by commas outside quoted strings."""
    entry, quoted, escaped = "", False, False
    for char in value:
        if escaped:
            entry, escaped = entry + char, False
        elif char == "\\" and quoted:
            entry, escaped = entry + char, True
        elif char == '"':
            entry, quoted = entry + char, not quoted
        elif char == "," and not quoted:
            yield entry.strip()
            entry = ""
        else:
            entry += char
    if entry.strip():
        yield entry.strip()
