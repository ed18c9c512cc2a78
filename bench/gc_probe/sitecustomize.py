"""The collector's pauses in a server that `bench.page_cpu --gc` starts (Python loads this file first).

Counts each collection by generation, with its wall time and the objects it freed, from when the server has set
its own threshold (start-up runs with Python's default of 700); writes them as JSON to `$GCPROBE_OUT` at exit.
"""

from __future__ import annotations

import atexit
import gc
import json
import os
import time

_OUT = os.environ.get("GCPROBE_OUT")
_DEFAULT_THRESHOLD = 700
_started: list[float] = []
_pauses: dict[int, list[tuple[float, int]]] = {0: [], 1: [], 2: []}  # (ms, objects freed)


def _observe(phase: str, info: dict[str, int]) -> None:
    if gc.get_threshold()[0] == _DEFAULT_THRESHOLD:
        return  # start-up: the server has not set its threshold yet
    if phase == "start":
        _started[:] = [time.perf_counter()]
    elif _started:
        _pauses[info["generation"]].append(((time.perf_counter() - _started[0]) * 1000, info["collected"]))


def _write() -> None:
    assert _OUT is not None
    with open(_OUT, "w", encoding="utf-8") as out:
        json.dump({str(generation): pauses for generation, pauses in _pauses.items()}, out)


if _OUT:
    gc.callbacks.append(_observe)
    atexit.register(_write)
