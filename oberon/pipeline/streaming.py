"""Streaming of a page: its app's slow non-critical children are sent in their place as they finish.

The app waits for its critical children, then gives the others `after` seconds more (longer while the
process is busy, see `wait_unless_idle`); each still pending then becomes a marker in the HTML, and
`PageStream` sends the child's HTML in the marker's place once it is rendered.
"""

from __future__ import annotations

import asyncio
import re
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from typing import Any

from markupsafe import Markup

# A streamed page's app waits longer for its pending children while this process is busy (see wait_unless_idle).
BUSY_SHARE = 0.5  # of the wait's wall time spent on this thread's CPU
BUSY_LIMIT = 0.1  # seconds, in all, that a busy process waits before it streams anyway
# A streamed page's markers are comments with this process's random token: data is escaped, so only the
# renderer writes one.
_MARKER_TOKEN = secrets.token_hex(8)
_MARKER = re.compile(f"<!--oberon-later:{_MARKER_TOKEN}:([a-z0-9]+)-->")
_STATE = "state"  # the marker of the page's final state, known once every child is rendered


class PendingChildren:
    """The children of a streamed page's app left pending, each marked where its HTML goes."""

    def __init__(self, after: float) -> None:
        self.after = after
        self.started: list[asyncio.Future[Markup]] = []  # every child's render, to cancel if the page is abandoned
        self.by_marker: dict[str, asyncio.Future[Markup]] = {}

    async def render_or_defer(
        self,
        tasks: Sequence[asyncio.Future[Markup]],
        critical: Sequence[asyncio.Future[Markup]],
        later: Callable[[asyncio.Future[Markup]], asyncio.Future[Markup]] | None = None,
    ) -> list[Markup]:
        """Each child's HTML, or a marker if it is not done in time: `critical` ones are waited for.

        `later` turns a child's render left pending into what the stream awaits (a task of its own)."""
        self.started.extend(tasks)
        if critical:
            critical = [task for task in critical if not task.done()]  # a wait costs a loop turn even when all are done
            if critical:
                await asyncio.wait(critical)
        # Plain loops, not a generator or comprehensions (a frame each in 3.11), on every streamed page (issue 19).
        for task in tasks:
            if not task.done():
                await wait_unless_idle(tasks, self.after)
                break
        rendered: list[Markup] = []
        for task in tasks:
            rendered.append(task.result() if task.done() else self._defer(task, later))
        return rendered

    def state_marker(self) -> Markup:
        """Where the page's state goes: it is final only once every pending child is rendered."""
        return self._marker(_STATE)

    def split(self, html: str) -> tuple[str, list[tuple[str, str]]]:
        """The HTML before the first marker, then each marker's name with the HTML that follows it."""
        first, *parts = _MARKER.split(html)
        return first, list(zip(parts[::2], parts[1::2], strict=True))

    def _marker(self, name: str) -> Markup:
        return Markup(f"<!--oberon-later:{_MARKER_TOKEN}:{name}-->")

    def _defer(
        self, task: asyncio.Future[Markup], later: Callable[[asyncio.Future[Markup]], asyncio.Future[Markup]] | None
    ) -> Markup:
        if later is not None:
            task = later(task)
            self.started.append(task)
        name = f"c{len(self.by_marker)}"
        self.by_marker[name] = task
        return self._marker(name)


class PageStream:
    """The rest of a streamed page: each pending child's HTML in its place once rendered, then the final state.

    What is ready goes out as one chunk: a chunk ends only where the stream must wait for a child.
    `aclose()` stops what is still running of the page (the visitor went away); it may be called at any time.
    """

    def __init__(
        self,
        parts: list[tuple[str, str]],
        pending: PendingChildren,
        finish: Callable[[], Awaitable[Markup]],
        loaders: Sequence[asyncio.Task[None]],
    ) -> None:
        self._parts = parts
        self._pending = pending
        self._finish = finish
        self._loaders = loaders

    async def __aiter__(self) -> AsyncIterator[str]:
        by_marker = self._pending.by_marker
        ready: list[str] = []
        for name, html in self._parts:
            task = by_marker.get(name)
            waits = not task.done() if task is not None else not all(t.done() for t in by_marker.values())
            if ready and waits:
                yield "".join(ready)
                ready.clear()
            ready.append(await task if task is not None else await self._finish())
            ready.append(html)
        yield "".join(ready)

    async def aclose(self) -> None:
        await stop_render(self._loaders, self._pending)


async def stop_render(loaders: Sequence[asyncio.Task[None]], pending: PendingChildren | None) -> None:
    """Cancel what is still running of a page and wait for it to end.

    A task already done is only read (its exception retrieved, as a gather would, so none is logged as lost):
    on most pages every task is done by now, and gathering them cost a callback and a loop turn each."""
    running: list[asyncio.Task[Any]] = []
    for task in (*loaders, *(pending.started if pending is not None else ())):
        if not task.done():
            task.cancel()
            running.append(task)
        elif not task.cancelled():
            task.exception()
    if running:
        await asyncio.gather(*running, return_exceptions=True)


async def wait_unless_idle(
    tasks: Iterable[asyncio.Future[Any]], after: float, *, cpu_time: Callable[[], float] = time.thread_time
) -> None:
    """Wait up to `after` seconds for `tasks`; then keep waiting while this thread was busy for most of the wait.

    A child still pending while the process sat idle waits for a slow backend: the page streams it. One
    pending while the process was busy waits for the CPU, behind other pages: streaming would add work
    (chunks, a longer-lived response) and not bring the page sooner, and the CDN would keep the page for
    the fallback lifetime only. So the page goes on waiting, up to `BUSY_LIMIT` in all. With `after` 0
    whatever is pending streams at once.

    The waiting goes on in the timer's callback: the page's task is woken once, when its children are done or it
    streams (issue 19: under load most pages took longer than `after`, and each further wait woke the page's
    task and registered on its children again).
    """
    loop = asyncio.get_running_loop()
    asked, spent = loop.time(), cpu_time()

    def longer() -> float | None:
        """The seconds to wait on when the process was busy for most of the wait so far (within `BUSY_LIMIT`)."""
        waited = loop.time() - asked
        if cpu_time() - spent < BUSY_SHARE * waited or waited >= BUSY_LIMIT:
            return None
        return min(after, BUSY_LIMIT - waited)

    await _wait(list(tasks), after, loop, longer=longer if after > 0 else None)


async def _wait(
    tasks: list[asyncio.Future[Any]],
    timeout: float,
    loop: asyncio.AbstractEventLoop,
    *,
    longer: Callable[[], float | None] | None = None,
) -> list[asyncio.Future[Any]]:
    """What `asyncio.wait(tasks, timeout=timeout)` leaves pending, in the order given.

    The same wait (one future woken by a callback on each task or by a timer; a loop turn at least) without what
    `asyncio.wait` adds around it per call: its sets of tasks, its coroutine checks and `ensure_future` of each
    (issue 19: every streamed page's app waits once). `loop`: the running one, looked up once by the caller (in 3.11
    each `get_running_loop()` is a getpid() call). When the timer goes off, `longer` (when given) may ask for more:
    the seconds to wait on (the timer set again, the waiting task not woken), or None to end the wait."""
    if not tasks:
        raise ValueError("Set of Tasks/Futures is empty.")  # as `asyncio.wait` says
    waiter: asyncio.Future[None] = loop.create_future()
    left = len(tasks)

    def on_done(_: asyncio.Future[Any]) -> None:
        nonlocal left
        left -= 1
        if left == 0 and not waiter.done():
            waiter.set_result(None)

    deadline = _Deadline(loop, waiter, timeout, longer)
    for task in tasks:
        task.add_done_callback(on_done)  # on a task already done: called at the next loop turn, as asyncio's
    try:
        await waiter
    finally:
        deadline.cancel()
        for task in tasks:
            task.remove_done_callback(on_done)
    return [task for task in tasks if not task.done()]


class _Deadline:
    """A wait's timer: when it goes off, `longer` (when given) may ask for more time (the timer is set again),
    else the waiter is released.

    An object, not a closure that sets itself again: such a closure holds itself, a cycle left for the collector on
    every page that waits (issue 19: pages leave nothing for it). A cancelled handle lets go of its callback."""

    __slots__ = ("handle", "longer", "loop", "waiter")

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        waiter: asyncio.Future[None],
        timeout: float,
        longer: Callable[[], float | None] | None,
    ) -> None:
        self.loop = loop
        self.waiter = waiter
        self.longer = longer
        self.handle = loop.call_later(timeout, self.expire)

    def expire(self) -> None:
        if self.waiter.done():
            return
        more = self.longer() if self.longer is not None else None
        if more is not None and more > 0:
            self.handle = self.loop.call_later(more, self.expire)
        else:
            self.waiter.set_result(None)

    def cancel(self) -> None:
        self.handle.cancel()
