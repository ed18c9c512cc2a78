"""How a streamed page's app waits, in a server that `bench.page_cpu --waits` starts (Python loads this file first).

Counts the app's waits for its pending children (`wait_unless_idle`), the waits they made (`_wait`: before session
16 each further wait of a busy process was one more, the page's task woken for each), the times a wait's timer went
off (`_release` before session 16, `_Deadline.expire` after) and how many of those found the wait already over (its
children done in the same loop turn); writes them as JSON to `$WAITPROBE_OUT` at exit.
"""

from __future__ import annotations

import atexit
import functools
import importlib
import json
import os
from collections.abc import Callable
from typing import Any

_OUT = os.environ.get("WAITPROBE_OUT")
_counts = {"waits": 0, "rounds": 0, "timer_expiries": 0, "expiries_after_the_end": 0}


def _counted(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(function)
    def counted(*args: Any, **kwargs: Any) -> Any:
        _counts[name] += 1
        return function(*args, **kwargs)

    return counted


def _write() -> None:
    assert _OUT is not None
    with open(_OUT, "w", encoding="utf-8") as out:
        json.dump(_counts, out)


if _OUT:
    # Read as Any: the probe patches what each checkout's module has (`_release` before session 16, `_Deadline` after).
    streaming: Any = importlib.import_module("oberon.pipeline.streaming")

    # Module globals: the streaming code calls them by name, so the counting ones are what it calls.
    streaming.wait_unless_idle = _counted("waits", streaming.wait_unless_idle)
    streaming._wait = _counted("rounds", streaming._wait)
    release: Any = getattr(streaming, "_release", None)  # before session 16: a wait's timer
    if release is not None:

        def _release(waiter: Any) -> None:
            _counts["timer_expiries"] += 1
            if waiter.done():
                _counts["expiries_after_the_end"] += 1
            release(waiter)

        streaming._release = _release
    deadline: Any = getattr(streaming, "_Deadline", None)  # session 16 on
    if deadline is not None:
        expire = deadline.expire

        def _expire(self: Any) -> None:
            _counts["timer_expiries"] += 1
            if self.waiter.done():  # the children were done in the same loop turn: nothing left to decide
                _counts["expiries_after_the_end"] += 1
            expire(self)

        deadline.expire = _expire
    atexit.register(_write)
