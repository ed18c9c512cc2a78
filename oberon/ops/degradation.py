"""The degradation controller: decides whether this renderer runs in normal or degraded mode.

Degraded mode lengthens the shared cache lifetime of public pages (see `cache_policy`), taking
load off the fleet while downstream services struggle. It is entered

- manually: the admin endpoint, `OBERON_DEGRADED` at start, or a watched file (a ConfigMap can
  flip a whole fleet) whose content is `degraded` or `normal` (anything else, or no file: automatic);
  the workers of one machine (`oberon up --workers N`) share the admin endpoint's switch through a
  file of their own (`shared_file`): a switch written by one is read by all within a second;
- automatically: from downstream signals over a sliding window — error ratio, p95 latency, open
  circuit breakers — and left only after the signals stay healthy for a hold time (hysteresis).
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import time
from array import array
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from oberon.client.upstream import FAILED_OUTCOMES, CallRecord
from oberon.defaults import DEFAULT_DEGRADATION_ERROR_RATIO as DEFAULT_ERROR_RATIO
from oberon.defaults import DEFAULT_DEGRADATION_HOLD_SECONDS as DEFAULT_HOLD_SECONDS
from oberon.defaults import DEFAULT_DEGRADATION_MIN_CALLS as DEFAULT_MIN_CALLS
from oberon.defaults import DEFAULT_DEGRADATION_OPEN_BREAKERS as DEFAULT_OPEN_BREAKERS
from oberon.defaults import DEFAULT_DEGRADATION_P95_MS
from oberon.defaults import DEFAULT_DEGRADATION_WINDOW_SECONDS as DEFAULT_WINDOW_SECONDS
from oberon.exceptions import ConfigError
from oberon.types import Mode

DEFAULT_P95_SECONDS = DEFAULT_DEGRADATION_P95_MS / 1000
DEFAULT_EVALUATION_SECONDS = 1.0
MAX_SAMPLES = 10_000


class CallSamples:
    """The latest calls (at most `capacity`): when each ended, whether it went well, its seconds; oldest first.

    In flat arrays used as a ring: a call adds no object that outlives it. A deque of tuples kept three objects a
    call alive for the last 10,000 calls, memory that every request then missed in the processor's caches as it
    was made and dropped (issue 19)."""

    def __init__(self, capacity: int = MAX_SAMPLES) -> None:
        self._capacity = capacity
        self._when = array("d", bytes(8 * capacity))
        self._seconds = array("d", bytes(8 * capacity))
        self._ok = bytearray(capacity)
        self._first = 0  # where the oldest is
        self._count = 0

    def add(self, when: float, ok: bool, seconds: float) -> None:
        """One call; the oldest is overwritten when the ring is full."""
        index = self._first + self._count
        if self._count == self._capacity:
            self._first = (self._first + 1) % self._capacity
        else:
            self._count += 1
        index %= self._capacity
        self._when[index] = when
        self._seconds[index] = seconds
        self._ok[index] = ok

    def drop_before(self, horizon: float) -> None:
        """Forget the calls that ended before `horizon`."""
        while self._count and self._when[self._first] < horizon:
            self._first = (self._first + 1) % self._capacity
            self._count -= 1

    def outcomes(self) -> tuple[int, int, list[float]]:
        """The calls kept, how many went well, and their seconds in ascending order (counted and sorted in C)."""
        spans = self._spans()
        went_well = sum(self._ok[start:end].count(1) for start, end in spans)
        seconds = sorted(self._seconds[spans[0][0] : spans[0][1]] + self._seconds[spans[1][0] : spans[1][1]])
        return self._count, went_well, seconds

    def __len__(self) -> int:
        return self._count

    def __iter__(self) -> Iterator[tuple[float, bool, float]]:
        for start, end in self._spans():
            for index in range(start, end):
                yield self._when[index], bool(self._ok[index]), self._seconds[index]

    def _spans(self) -> tuple[tuple[int, int], tuple[int, int]]:
        """The ring's kept part as two index ranges, in order (the second empty unless it wraps around)."""
        end = self._first + self._count
        if end <= self._capacity:
            return (self._first, end), (0, 0)
        return (self._first, self._capacity), (0, end - self._capacity)


@dataclass(frozen=True)
class DegradationSettings:
    """Thresholds of the automatic switch; defaults are documented in the README."""

    window_seconds: float = DEFAULT_WINDOW_SECONDS
    min_calls: int = DEFAULT_MIN_CALLS
    error_ratio: float = DEFAULT_ERROR_RATIO
    p95_seconds: float = DEFAULT_P95_SECONDS
    open_breakers: int = DEFAULT_OPEN_BREAKERS
    hold_seconds: float = DEFAULT_HOLD_SECONDS
    # The mode is asked on every page; the window is seconds long, so once a second is fresh enough.
    evaluation_seconds: float = DEFAULT_EVALUATION_SECONDS

    def __post_init__(self) -> None:
        if self.window_seconds <= 0 or self.hold_seconds < 0 or self.p95_seconds <= 0:
            raise ConfigError("degradation window and p95 must be positive, the hold time not negative")
        if not 0 < self.error_ratio <= 1:
            raise ConfigError(f"degradation error_ratio must be in (0, 1], got {self.error_ratio}")
        if self.min_calls < 1 or self.open_breakers < 1:
            raise ConfigError("degradation min_calls and open_breakers must be at least 1")


@dataclass(frozen=True)
class Signals:
    """Downstream health over the window."""

    calls: int
    error_ratio: float
    p95_seconds: float
    open_breakers: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "calls": self.calls,
            "error_ratio": round(self.error_ratio, 4),
            "p95_ms": round(self.p95_seconds * 1000, 1),
            "open_breakers": self.open_breakers,
        }


class DegradationController:
    """Holds the mode of one renderer process; cheap to ask on every request."""

    def __init__(
        self,
        *,
        settings: DegradationSettings | None = None,
        manual: Mode | None = None,
        switch_file: Path | None = None,
        shared_file: Path | None = None,
        open_breakers: Callable[[], int] = lambda: 0,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings or DegradationSettings()
        self.switch_file = switch_file
        # The operator's switch of every worker of this machine: `set_manual` writes it, each worker reads it.
        self.shared_file = shared_file
        self._open_breakers = open_breakers
        self._clock = clock
        self._wall_clock = wall_clock
        self._calls = CallSamples()
        self._manual = manual
        self._manual_reason = "set at start" if manual else ""
        self._automatic = False
        self._automatic_reason = ""
        self._healthy_since: float | None = None
        self._mode = Mode.NORMAL
        self._reason = ""
        self._since = wall_clock()
        self._file_state: tuple[float, Mode | None] = (-1.0, None)
        self._shared_state: tuple[tuple[int, int], tuple[Mode | None, str] | None] = ((-1, -1), None)
        self._evaluated_at = -math.inf

    def record(self, *, ok: bool, seconds: float) -> None:
        """One downstream call's outcome and the latency its caller saw."""
        self._calls.add(self._clock(), ok, seconds)

    def observe(self, call: CallRecord) -> None:
        """A `CallObserver` for the resilient client; answers from the cache are not downstream calls."""
        outcome = call.outcome
        if outcome != "cached":  # `record(ok=not call.upstream_failed, ...)` without its frame (issue 19)
            self._calls.add(self._clock(), outcome not in FAILED_OUTCOMES, call.seconds)

    def set_manual(self, mode: Mode | None, reason: str = "") -> None:
        """Force a mode (`None` returns to automatic)."""
        self._manual = mode
        self._manual_reason = reason or ("set by an operator" if mode else "")
        if self.shared_file is not None:
            write_shared_switch(self.shared_file, mode, self._manual_reason)
        self._evaluated_at = -math.inf  # an operator's switch takes effect on the next page

    @property
    def mode(self) -> Mode:
        """The mode now; the file switch and the signals are re-evaluated at most every `evaluation_seconds`."""
        now = self._clock()
        if now - self._evaluated_at < self.settings.evaluation_seconds:
            return self._mode
        self._evaluated_at = now
        manual, reason = self._manual_mode()
        if manual is not None:
            return self._become(manual, reason)
        self._evaluate()
        return self._become(Mode.DEGRADED if self._automatic else Mode.NORMAL, self._automatic_reason)

    def signals(self) -> Signals:
        self._calls.drop_before(self._clock() - self.settings.window_seconds)
        calls, went_well, latencies = self._calls.outcomes()
        errors = calls - went_well
        p95 = latencies[max(0, math.ceil(0.95 * calls) - 1)] if latencies else 0.0
        return Signals(calls, errors / calls if calls else 0.0, p95, self._open_breakers())

    def status(self) -> dict[str, Any]:
        """What `GET /_oberon/degradation` shows."""
        mode = self.mode
        manual, _ = self._manual_mode()
        return {
            "mode": mode.value,
            "reason": self._reason,
            "since": self._since,
            "manual": manual.value if manual else None,
            "switch_file": str(self.switch_file) if self.switch_file else None,
            "signals": self.signals().as_dict(),
            "thresholds": {
                "error_ratio": self.settings.error_ratio,
                "p95_ms": self.settings.p95_seconds * 1000,
                "open_breakers": self.settings.open_breakers,
                "min_calls": self.settings.min_calls,
                "window_seconds": self.settings.window_seconds,
                "hold_seconds": self.settings.hold_seconds,
            },
        }

    def _become(self, mode: Mode, reason: str) -> Mode:
        if mode is not self._mode:
            self._mode = mode
            self._since = self._wall_clock()
        self._reason = reason
        return mode

    def _manual_mode(self) -> tuple[Mode | None, str]:
        from_file = self._read_switch_file()
        if from_file is not None:
            return from_file, f"switch file {self.switch_file}"
        shared = self._read_shared_file()
        if shared is not None:
            return shared
        return self._manual, self._manual_reason

    def _read_shared_file(self) -> tuple[Mode | None, str] | None:
        """The switch shared by the machine's workers: (mode, reason), mode None for automatic; None: no switch."""
        if self.shared_file is None:
            return None
        try:
            stat = self.shared_file.stat()
        except OSError:
            return None
        # A switch replaces the file (a new inode): a write within the mtime's resolution is still seen.
        version = (stat.st_ino, stat.st_mtime_ns)
        if version != self._shared_state[0]:
            self._shared_state = (version, read_shared_switch(self.shared_file))
        return self._shared_state[1]

    def _read_switch_file(self) -> Mode | None:
        if self.switch_file is None:
            return None
        try:
            mtime = self.switch_file.stat().st_mtime
        except OSError:
            return None
        if mtime != self._file_state[0]:
            try:
                text = self.switch_file.read_text(encoding="utf-8").strip().lower()
            except (OSError, UnicodeDecodeError):
                text = ""
            self._file_state = (mtime, Mode(text) if text in {m.value for m in Mode} else None)
        return self._file_state[1]

    def _evaluate(self) -> None:
        signals = self.signals()
        problems = self._problems(signals)
        now = self._clock()
        if problems:
            self._automatic = True
            self._automatic_reason = "; ".join(problems)
            self._healthy_since = None
        elif self._automatic:
            if self._healthy_since is None:
                self._healthy_since = now
            if now - self._healthy_since >= self.settings.hold_seconds:
                self._automatic = False
                self._automatic_reason = ""
                self._healthy_since = None

    def _problems(self, signals: Signals) -> list[str]:
        settings = self.settings
        problems = []
        if signals.open_breakers >= settings.open_breakers:
            problems.append(f"{signals.open_breakers} circuit breaker(s) open")
        if signals.calls >= settings.min_calls:
            if signals.error_ratio >= settings.error_ratio:
                problems.append(f"downstream error ratio {signals.error_ratio:.0%}")
            if signals.p95_seconds >= settings.p95_seconds:
                problems.append(f"downstream p95 {signals.p95_seconds * 1000:.0f} ms")
        return problems


def write_shared_switch(path: Path, mode: Mode | None, reason: str) -> None:
    """Replace the shared switch file at once (written beside it, then renamed): no reader sees half of it."""
    text = json.dumps({"mode": mode.value if mode else "auto", "reason": reason})
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".degradation-")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            file.write(text)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def read_shared_switch(path: Path) -> tuple[Mode | None, str] | None:
    """(mode, reason) from a shared switch file, mode None for `auto`; None when it is missing or not a switch."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        mode, reason = data["mode"], data.get("reason", "")
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return None
    if mode not in ("auto", *(m.value for m in Mode)) or not isinstance(reason, str):
        return None
    return (None if mode == "auto" else Mode(mode)), reason
