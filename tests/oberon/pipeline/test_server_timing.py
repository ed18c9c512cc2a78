"""Server-Timing: phases of a page, the slowest loaders, and a header browsers parse."""

from __future__ import annotations

import random

import pytest

from oberon.pipeline.manifest import DataSource
from oberon.pipeline.server_timing import Loader, PageClock, Timing, header, parse
from oberon.pipeline.state import Store, loaded


class Clock:
    def __init__(self) -> None:
        self.now = 10.0

    def __call__(self) -> float:
        return self.now


def source(key: str, bff: str, path: str) -> DataSource:
    return DataSource(key=key, bff=bff, path=path)


def test_page_clock_notes_when_each_source_settles() -> None:
    clock = Clock()
    store = Store()
    timer = PageClock(clock=clock)
    sources = {
        "event": source("event", "events", "/events/{event_id}"),
        "hero": source("hero", "events", "/events/{event_id}"),
        "related": source("related", "discovery", "/events/{event_id}/related"),
    }
    timer.watch(store, sources)
    clock.now += 0.004
    store.dispatch(loaded("event", {}))
    store.dispatch(loaded("hero", {}))
    clock.now += 0.006
    timing = timer.finish(rendered=0.002)
    assert timing.total == pytest.approx(0.010) and timing.render == 0.002
    assert timing.data == pytest.approx(0.010)  # `related` never settled: it counts until the end
    # `event` and `hero` are one call: listed once.
    assert [(loader.key, round(loader.seconds, 3)) for loader in timing.loaders] == [
        ("event", 0.004),
        ("related", 0.01),
    ]


def test_header_lists_the_phases_and_slowest_loaders_numbered_naming_no_bff_or_path() -> None:
    loaders = tuple(Loader(f"k{index}", f"bff /p/{index}", index / 1000) for index in range(5))
    value = header(Timing(total=0.0123, data=0.008, render=0.0011, loaders=loaders), slowest=2)
    assert value == "total;dur=12.3, data;dur=8.0, render;dur=1.1, load.1;dur=4.0, load.2;dur=3.0"
    assert "bff" not in value and "/p/" not in value and "k4" not in value
    assert parse(value) == {"total": 12.3, "data": 8.0, "render": 1.1, "load.1": 4.0, "load.2": 3.0}


def test_header_named_lists_each_loads_key_bff_and_path_for_development() -> None:
    loaders = tuple(Loader(f"k{index}", f"bff /p/{index}", index / 1000) for index in range(5))
    value = header(Timing(total=0.0123, data=0.008, render=0.0011, loaders=loaders), slowest=2, named=True)
    assert value == (
        'total;dur=12.3, data;dur=8.0, render;dur=1.1, load.k4;dur=4.0;desc="bff /p/4", load.k3;dur=3.0;desc="bff /p/3"'
    )
    assert parse(value) == {"total": 12.3, "data": 8.0, "render": 1.1, "load.k4": 4.0, "load.k3": 3.0}


def test_header_total_can_be_the_callers_measure_and_names_are_tokens() -> None:
    value = header(Timing(loaders=(Loader("a b", 'x "y", z', 0.001),)), total=0.02, named=True)
    assert value.startswith("total;dur=20.0, ")
    assert 'load.a_b;dur=1.0;desc="x \\"y\\", z"' in value
    assert parse(value)["load.a_b"] == 1.0


@pytest.mark.parametrize("slowest", [0, 1, 3, 10, 11, 14, -1])
def test_header_is_the_phases_and_the_numbered_slowest_loads_joined_for_any_count(slowest: int) -> None:
    """Issue 19: the public header is grown in a loop; the same text as the phases and each load joined by ", "."""
    rng = random.Random(19)
    for count in (0, 1, 2, 3, 5, 12, 14):
        loaders = tuple(
            Loader(f"k{index}", f"bff /p/{index}", rng.choice([0.0, 0.0125, rng.random()])) for index in range(count)
        )
        timing = Timing(total=rng.random(), data=rng.random(), render=rng.random(), loaders=loaders)
        loads = [
            f"load.{rank};dur={loader.seconds * 1000:.1f}" for rank, loader in enumerate(timing.slowest(slowest), 1)
        ]
        total, data, render = (f"{seconds * 1000:.1f}" for seconds in timing[:3])
        phases = f"total;dur={total}, data;dur={data}, render;dur={render}"
        assert header(timing, slowest=slowest) == ", ".join([phases, *loads])


def test_page_clock_data_is_the_slowest_loader_or_nothing_without_loaders() -> None:
    clock = Clock()
    store = Store()
    timer = PageClock(clock=clock)
    timer.watch(store, {"a": source("a", "x", "/a"), "b": source("b", "x", "/b"), "c": source("c", "x", "/a")})
    clock.now -= 0.5  # a clock that went back: the loaders' seconds are negative, `data` still their largest
    store.dispatch(loaded("b", {}))
    clock.now -= 0.25
    timing = timer.finish()
    assert timing == Timing(-0.75, -0.5, 0.0, (Loader("a", "x /a", -0.75), Loader("b", "x /b", -0.5)))
    assert type(timing) is Timing and all(type(loader) is Loader for loader in timing.loaders)
    assert PageClock(clock=clock).finish(rendered=0.25) == Timing(0.0, 0.0, 0.25, ())
