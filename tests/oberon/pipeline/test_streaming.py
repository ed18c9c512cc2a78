"""Streaming: an app's page starts before its slow non-critical children finish, and claims no more than it should."""

from __future__ import annotations

import asyncio
import functools
import gc
import json
import re
from collections.abc import Coroutine, Generator
from pathlib import Path
from typing import Any

import httpx
import jinja2
import pytest
import respx

from oberon.exceptions import RenderError
from oberon.ops.metrics import Metrics
from oberon.pipeline.assets import build_assets
from oberon.pipeline.page import PageRenderer
from oberon.pipeline.page_types import Page, RequestContext
from oberon.pipeline.registry import load_registry
from oberon.pipeline.streaming import BUSY_LIMIT, _wait, stop_render, wait_unless_idle
from oberon.types import Outcome

pytestmark = pytest.mark.anyio

BFF = "http://shop.test"
CONTEXT = RequestContext(request_id="req-1")
PAGE_WORK = {"_deferred_render", "_load_group"}  # the tasks a streamed page still runs: a deferred child, a loader
AFTER = 0.02  # seconds the app waits for its non-critical children before sending
SLACK = 0.005  # a loop timer may fire a clock tick early


@pytest.fixture(autouse=True)
def streaming(renderer: PageRenderer, site: Path, environment: jinja2.Environment, tmp_path: Path) -> None:
    """The test site's renderer (its BFF answered with respx) streams in these tests; hero-banner ships a script
    that reads its banner, so the state sent at the stream's end holds the late child's key."""
    folder = site / "components/hero-banner"
    (folder / "banner.js").write_text("oberon.component('hero-banner', function () {});\n")
    (folder / "component.toml").write_text((folder / "component.toml").read_text() + '\n[assets]\njs = ["banner.js"]\n')
    registry = load_registry([site / "components"], environment=environment)
    renderer.swap(registry, build_assets(registry, tmp_path / "streaming-assets"))
    renderer.stream_after = AFTER


def slow(seconds: float, response: httpx.Response):  # type: ignore[no-untyped-def]
    async def answer(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(seconds)
        return response

    return answer


async def render(renderer: PageRenderer) -> Page:
    return await renderer.render(renderer.registry.get("shop-page"), params={"item_id": 1}, context=CONTEXT)


async def rest_of(page: Page) -> list[str]:
    assert page.rest is not None
    return [chunk async for chunk in page.rest]


def state_of(html: str) -> dict[str, object]:
    found = re.search(r'<script type="application/json" id="oberon-state">(.*?)</script>', html, re.S)
    assert found is not None
    return json.loads(found.group(1))  # type: ignore[no-any-return]


async def test_a_slow_non_critical_child_is_streamed_in_its_place(renderer: PageRenderer) -> None:
    with respx.mock(base_url=BFF) as bff:
        bff.get("/items/1").respond(json={"name": "Lamp", "price": "€10"})
        bff.get("/banner").mock(side_effect=slow(0.3, httpx.Response(200, json={"text": "Sale"})))
        loop = asyncio.get_running_loop()
        started = loop.time()
        page = await render(renderer)
        first_after = loop.time() - started
        assert page.rest is not None and first_after < 0.25  # sent while the banner is still loading
        assert '<h1 class="item">Lamp</h1>' in page.html and "Sale" not in page.html
        assert page.html.endswith("<aside>")  # the banner's place is where the first chunk stops
        rest = await rest_of(page)
    whole = page.html + "".join(rest)
    assert re.search(r"<aside><div class=\"oberon-boundary\" data-oberon-component=\"hero-banner\"[^>]*>.*Sale", whole)
    assert "oberon-later" not in whole  # every marker was replaced
    assert whole.rstrip().endswith("</html>")
    assert state_of(whole)["state"] == {"item": {"name": "Lamp", "price": "€10"}, "banner": {"text": "Sale"}}
    assert page.status_code == 200
    # Decided before the banner was known: it counts as a possible fallback (s-maxage of a fallback page).
    assert page.cache_control.startswith("public, max-age=0, s-maxage=5")


async def test_a_late_fallback_is_streamed_and_was_already_accounted_for(renderer: PageRenderer) -> None:
    records = []
    renderer.observers.append(records.append)
    with respx.mock(base_url=BFF) as bff:
        bff.get("/items/1").respond(json={"name": "Lamp", "price": "€10"})
        bff.get("/banner").mock(side_effect=slow(0.1, httpx.Response(500)))
        page = await render(renderer)
        assert records == []  # the render is observed once it is whole
        whole = page.html + "".join(await rest_of(page))
    assert 'data-oberon-component="hero-banner" data-oberon-version="1.0.0" data-oberon-outcome="fallback"' in whole
    assert "s-maxage=5" in page.cache_control
    assert state_of(whole)["failed"] == ["banner"]
    [record] = records
    assert {f.component.name: f.outcome for f in record.fragments}["hero-banner"] is Outcome.FALLBACK


async def test_streamed_pages_are_counted_for_operators(renderer: PageRenderer) -> None:
    metrics = Metrics()
    renderer.observers.append(metrics.page_observer("renderer"))

    def streamed() -> float | None:
        return metrics.registry.get_sample_value(
            "oberon_pages_streamed_total", {"service": "renderer", "app": "shop-page"}
        )

    with respx.mock(base_url=BFF) as bff:
        bff.get("/items/1").respond(json={"name": "Lamp", "price": "€10"})
        bff.get("/banner").respond(json={"text": "Sale"})
        assert (await render(renderer)).rest is None
        assert streamed() is None  # a page sent whole is not counted
        bff.get("/banner").mock(side_effect=slow(3 * AFTER, httpx.Response(200, json={"text": "Sale"})))
        page = await render(renderer)
        await rest_of(page)
    assert streamed() == 1


async def test_a_page_whose_children_are_all_quick_is_sent_whole(renderer: PageRenderer) -> None:
    with respx.mock(base_url=BFF) as bff:
        bff.get("/items/1").respond(json={"name": "Lamp", "price": "€10"})
        bff.get("/banner").respond(json={"text": "Sale"})
        page = await render(renderer)
    assert page.rest is None
    assert "Sale" in page.html and "oberon-later" not in page.html
    assert page.cache_control.startswith("public, max-age=0, s-maxage=30")


async def test_a_critical_child_is_waited_for_and_decides_the_status_before_any_byte(
    renderer: PageRenderer, site: Path, write_component, environment: jinja2.Environment
) -> None:
    manifest = (site / "components" / "hero-banner" / "component.toml").read_text()
    write_component("hero-banner", manifest.replace('owner = "shop"', 'owner = "shop"\ncritical = true'), None)
    renderer.registry = load_registry([site / "components"], environment=environment)
    with respx.mock(base_url=BFF) as bff:
        bff.get("/items/1").respond(json={"name": "Lamp", "price": "€10"})
        bff.get("/banner").mock(side_effect=slow(0.1, httpx.Response(200, json={"text": "Sale"})))
        page = await render(renderer)
        assert page.rest is None and "Sale" in page.html  # not streamed: the page waited for it
        bff.get("/banner").mock(side_effect=slow(0.1, httpx.Response(500)))
        with pytest.raises(RenderError, match="hero-banner"):
            await render(renderer)  # a 503 before any byte, not a broken stream


async def test_an_abandoned_stream_stops_the_page(renderer: PageRenderer) -> None:
    records = []
    renderer.observers.append(records.append)
    with respx.mock(base_url=BFF, assert_all_called=False) as bff:
        bff.get("/items/1").respond(json={"name": "Lamp", "price": "€10"})
        bff.get("/banner").mock(side_effect=slow(5, httpx.Response(200, json={"text": "Sale"})))
        page = await render(renderer)
        assert page.rest is not None
        running = {task for task in asyncio.all_tasks() if task.get_coro().__qualname__ in PAGE_WORK}  # type: ignore[union-attr]
        assert {task.get_coro().__qualname__ for task in running} == PAGE_WORK  # type: ignore[union-attr]
        await page.rest.aclose()  # the visitor went away before a byte of the rest was asked for
        # Stopped: the banner's render and its loader. (The client's own call, which other pages may share, ends
        # within its budget.)
        assert all(task.done() for task in running)
    assert records == []  # an abandoned page is not observed as rendered


async def test_a_busy_process_waits_for_a_child_that_is_behind_other_pages_instead_of_streaming_it(
    renderer: PageRenderer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Busy for the whole wait: the thread's CPU clock runs as the wall clock. (Spinning here instead made the test
    # depend on the machine: with other processes on the core the spinning thread got less than half of it, and
    # the page rightly streamed. `wait_unless_idle` against the real thread clock is tested below.)
    busy = asyncio.get_running_loop().time
    monkeypatch.setattr(
        "oberon.pipeline.streaming.wait_unless_idle", functools.partial(wait_unless_idle, cpu_time=busy)
    )
    with respx.mock(base_url=BFF) as bff:
        bff.get("/items/1").respond(json={"name": "Lamp", "price": "€10"})
        bff.get("/banner").mock(side_effect=slow(3 * AFTER, httpx.Response(200, json={"text": "Sale"})))
        page = await render(renderer)
    assert page.rest is None and "Sale" in page.html  # sent whole, as if the banner had been quick
    assert page.cache_control.startswith("public, max-age=0, s-maxage=30")


async def test_waiting_while_busy_is_bounded_and_idle_means_stream(renderer: PageRenderer) -> None:
    loop = asyncio.get_running_loop()
    busy = loop.time  # a CPU clock that runs as fast as the wall clock: the thread never rested

    slow_child = asyncio.create_task(asyncio.sleep(5))
    started = loop.time()
    await wait_unless_idle([slow_child], AFTER)  # the real thread clock: this process sat idle
    assert not slow_child.done() and AFTER - SLACK <= loop.time() - started < BUSY_LIMIT

    started = loop.time()
    await wait_unless_idle([slow_child], AFTER, cpu_time=busy)
    assert not slow_child.done() and BUSY_LIMIT - SLACK <= loop.time() - started < 2 * BUSY_LIMIT  # streams at last

    started = loop.time()
    await wait_unless_idle([slow_child], 0, cpu_time=busy)  # 0: stream at once, busy or not
    assert loop.time() - started < AFTER
    slow_child.cancel()

    quick_enough = asyncio.create_task(asyncio.sleep(BUSY_LIMIT / 2))
    await wait_unless_idle([quick_enough], AFTER, cpu_time=busy)
    assert quick_enough.done()


async def test_stopping_a_page_whose_tasks_are_all_done_takes_no_loop_turn_and_loses_no_error() -> None:
    """Most pages end with every loader and child done: stopping them is only reading them (issue 19)."""

    async def fails() -> None:
        raise RuntimeError("a loader's bug")

    loop = asyncio.get_running_loop()
    reported: list[str] = []
    loop.set_exception_handler(lambda _loop, context: reported.append(context["message"]))
    quick, failed = asyncio.create_task(asyncio.sleep(0)), asyncio.create_task(fails())
    await asyncio.sleep(0.01)
    stopping = stop_render([quick, failed], None)
    with pytest.raises(StopIteration):  # over at its first step: nothing was scheduled and waited for
        stopping.send(None)
    del quick, failed
    gc.collect()
    assert reported == []  # the error was retrieved, as gathering the tasks retrieved it


async def test_the_streamed_pages_wait_leaves_pending_what_asyncio_wait_leaves_and_takes_as_many_loop_turns() -> None:
    loop = asyncio.get_running_loop()

    async def turns_until(wait: asyncio.Future[object]) -> int:
        """Loop turns until `wait` is done, counted by a task that yields once a turn."""
        count = 0
        while not wait.done():
            count += 1
            await asyncio.sleep(0)
        return count

    async def both(make: object, timeout: float) -> tuple[list[list[bool]], list[int]]:
        pendings, turns = [], []
        for lean in (False, True):
            futures = make()  # type: ignore[operator]
            if lean:
                wait: asyncio.Future[object] = asyncio.ensure_future(_wait(futures, timeout, loop))
            else:
                wait = asyncio.ensure_future(asyncio.wait(futures, timeout=timeout))
            turns.append(await turns_until(wait))
            left = wait.result() if lean else wait.result()[1]
            pendings.append([future in left for future in futures])
            for future in futures:
                future.cancel()
        return pendings, turns

    def done_ones() -> list[asyncio.Future[int]]:
        futures = [loop.create_future() for _ in range(3)]
        for future in futures:
            future.set_result(1)
        return futures

    def filled_in_turns() -> list[asyncio.Future[int]]:
        futures = [loop.create_future() for _ in range(4)]
        for turn, future in enumerate(futures[:3]):
            loop.call_later(turn * 0.001, future.set_result, turn)
        return futures

    def filled_soon() -> list[asyncio.Future[int]]:
        futures = [loop.create_future() for _ in range(3)]
        for future in futures:
            loop.call_soon(future.set_result, 1)
        return futures

    for make, timeout in ((done_ones, 1.0), (filled_soon, 1.0), (filled_soon, 0), (filled_in_turns, 0.05)):
        (asyncio_left, lean_left), (asyncio_turns, lean_turns) = await both(make, timeout)
        assert lean_left == asyncio_left
        if make is not filled_in_turns:  # with no timer of the wall clock's to wait for: turn for turn
            assert lean_turns == asyncio_turns
    with pytest.raises(ValueError):
        await _wait([], 1.0, loop)


class _Stepped:
    """Awaits a coroutine, counting the times it suspended (each a wake-up of the task that awaits it)."""

    def __init__(self, coroutine: Coroutine[Any, Any, Any]) -> None:
        self.coroutine = coroutine
        self.steps = 0

    def __await__(self) -> Generator[Any, Any, Any]:
        steps = self.coroutine.__await__()
        value = None
        while True:
            try:
                future = steps.send(value)
            except StopIteration as stop:
                return stop.value
            self.steps += 1
            value = yield future


async def test_a_busy_wait_goes_on_in_its_timer_and_wakes_the_page_once() -> None:
    """Under load most pages wait past `after`: each further wait is the timer's, not a wake-up of the page."""
    loop = asyncio.get_running_loop()
    busy = loop.time
    child = asyncio.create_task(asyncio.sleep(4 * AFTER))  # done within the busy bound: several `after`s in
    started = loop.time()
    waiting = _Stepped(wait_unless_idle([child], AFTER, cpu_time=busy))
    await waiting
    assert child.done() and 4 * AFTER - SLACK <= loop.time() - started < BUSY_LIMIT
    assert waiting.steps == 1

    slow_child = asyncio.create_task(asyncio.sleep(5))
    waiting = _Stepped(wait_unless_idle([slow_child], AFTER, cpu_time=busy))
    await waiting  # streams at the bound, woken once all the same
    assert not slow_child.done() and waiting.steps == 1
    slow_child.cancel()


async def test_a_wait_leaves_nothing_for_the_collector() -> None:
    """Pages leave no cycle behind (issue 19): a timer that sets itself again must not hold itself."""
    loop = asyncio.get_running_loop()
    busy = loop.time
    gc.collect()
    gc.disable()
    try:
        quick = [loop.create_future() for _ in range(3)]
        for future in quick:
            loop.call_soon(future.set_result, 1)
        await wait_unless_idle(quick, AFTER, cpu_time=busy)
        child = asyncio.create_task(asyncio.sleep(2.5 * AFTER))
        await wait_unless_idle([child], AFTER, cpu_time=busy)  # waits on twice, in the timer
        assert child.done()
        del quick, child
        assert gc.collect() == 0
    finally:
        gc.enable()
