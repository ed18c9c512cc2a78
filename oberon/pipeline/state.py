"""The per-request state container: actions, reducers, dispatch, subscriptions and waiting for keys.

Updates flow one way: an action is dispatched, reducers compute the new state, and the
callbacks subscribed to the keys that changed are invoked. Components never call each
other; they read the keys they subscribe to.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

DATA_LOADED = "oberon/data-loaded"
DATA_FAILED = "oberon/data-failed"
_RESOLUTION = time.get_clock_info("monotonic").resolution  # the loop runs a timer this early at most


@dataclass(frozen=True)
class Action:
    """Something that happened: a type like "cart/item-added" and its payload."""

    type: str
    payload: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Failed:
    """The value of a state key whose data source failed or timed out."""

    reason: str
    status_code: int | None = None


Reducer = Callable[[Mapping[str, Any], Action], Mapping[str, Any]]
Listener = Callable[[Mapping[str, Any]], None]


def data_reducer(state: Mapping[str, Any], action: Action) -> Mapping[str, Any]:
    """Store a loader's result (or its failure) under the key it was loading."""
    if action.type == DATA_LOADED:
        return {**state, action.payload["key"]: action.payload["value"]}
    if action.type == DATA_FAILED:
        failure = Failed(action.payload["reason"], action.payload.get("status_code"))
        return {**state, action.payload["key"]: failure}
    return state


def loaded(key: str, value: Any) -> Action:
    return Action(DATA_LOADED, {"key": key, "value": value})


def failed(key: str, reason: str, status_code: int | None = None) -> Action:
    return Action(DATA_FAILED, {"key": key, "reason": reason, "status_code": status_code})


class Store:
    """Holds one request's state; changed only by dispatching actions through reducers.

    The state is one request's own: a data action (the loaders') sets its one key in place, and listeners get a
    read-only view of the live state rather than a copy per action.
    """

    def __init__(self, *, reducers: Iterable[Reducer] = (data_reducer,), initial: Mapping[str, Any] | None = None):
        self._reducers = tuple(reducers)
        self._data_only = self._reducers == (data_reducer,)  # data actions need no reducer run: set the key
        self._state: dict[str, Any] = dict(initial or {})
        self._view: Mapping[str, Any] = MappingProxyType(self._state)
        self._listeners: list[tuple[frozenset[str], Listener]] = []
        self._key_listeners: list[Callable[[str], None]] = []
        self._waiting: dict[str, list[_Waiter]] = {}  # key → the waiters still missing it
        self._timed: list[_Waiter] = []  # waiters not yet settled, for the one deadline timer
        self._timer: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None  # the running loop, found on the first wait

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The running loop the request's work runs on: looked up once a store, not once a wait or a task (issue 19:
        in Python 3.11 each `asyncio.get_running_loop()` is a `getpid()` system call)."""
        loop = self._loop
        if loop is None:
            loop = self._loop = asyncio.get_running_loop()
        return loop

    @property
    def state(self) -> Mapping[str, Any]:
        """A read-only copy of the current state."""
        return MappingProxyType(dict(self._state))

    def get(self, key: str, default: Any = None) -> Any:
        return self._state.get(key, default)

    def dispatch(self, action: Action) -> None:
        """Run the reducers, then notify every subscriber whose keys changed."""
        if self._data_only:
            self._dispatch_data(action)
            return
        before = self._state
        after: Mapping[str, Any] = before
        for reducer in self._reducers:
            after = reducer(after, action)
        if after is before:
            return
        gone = object()
        changed = {key for key in after.keys() | before.keys() if before.get(key, gone) is not after.get(key, gone)}
        self._state = dict(after)
        self._view = MappingProxyType(self._state)
        self._notify(changed)

    def _dispatch_data(self, action: Action) -> None:
        """`data_reducer`'s effect without copying the state: one key set."""
        payload = action.payload
        if action.type == DATA_LOADED:
            self.put(payload["key"], payload["value"])
        elif action.type == DATA_FAILED:
            self.put(payload["key"], Failed(payload["reason"], payload.get("status_code")))

    def put(self, key: str, value: Any) -> None:
        """What dispatching `loaded(key, value)` does (`value` a `Failed`: `failed(key, …)`), without making the
        action: a loader's result goes straight to its key when only `data_reducer` runs (issue 19)."""
        if not self._data_only:
            if isinstance(value, Failed):
                self.dispatch(failed(key, value.reason, value.status_code))
            else:
                self.dispatch(loaded(key, value))
            return
        state = self._state
        if key in state and state[key] is value:
            return
        state[key] = value
        self._notify((key,))

    def _notify(self, changed: Iterable[str]) -> None:
        for key in changed:
            for on_key in self._key_listeners:
                on_key(key)
            waiters = self._waiting.pop(key, None)
            if waiters is not None:
                for waiter in waiters:
                    waiter.missing.discard(key)
                    if not waiter.missing:
                        self._settle(waiter)
        if self._listeners:
            view = self._view
            changed = set(changed)
            for keys, listener in list(self._listeners):
                if not keys.isdisjoint(changed):
                    listener(view)

    def subscribe(self, keys: Iterable[str], listener: Listener) -> Callable[[], None]:
        """Call `listener(state)` whenever one of `keys` changes; returns the unsubscribe function."""
        entry = (frozenset(keys), listener)
        self._listeners.append(entry)

        def unsubscribe() -> None:
            if entry in self._listeners:
                self._listeners.remove(entry)

        return unsubscribe

    def on_change(self, listener: Callable[[str], None]) -> None:
        """Call `listener(key)` for each key whose value changes (cheaper than `subscribe` over many keys)."""
        self._key_listeners.append(listener)

    def slice(self, keys: Iterable[str]) -> dict[str, Any]:
        """The values of `keys` that are present (failed keys included)."""
        state = self._state
        found = {}
        for key in keys:  # a loop, not a comprehension (a frame of its own in 3.11): once per render (issue 19)
            if key in state:
                found[key] = state[key]
        return found

    def split_failed(self) -> tuple[dict[str, Any], list[str]]:
        """The state without its failed keys, and the failed keys, sorted: what a page sends to the browser."""
        kept = {key: value for key, value in self._state.items() if not isinstance(value, Failed)}
        return kept, sorted(key for key, value in self._state.items() if isinstance(value, Failed))

    def when_ready(self, keys: Iterable[str], timeout: float, callback: Callable[[], None]) -> None:
        """Call `callback()` once every key is in the store (loaded or failed), or when `timeout` passes; at once
        when they are there already. One timer for the store, however many wait: this runs for every component."""
        missing = set(keys).difference(self._state)
        if not missing:
            callback()
            return
        loop = self.loop
        waiter = _Waiter(missing, loop.time() + timeout, callback)
        for key in missing:
            self._waiting.setdefault(key, []).append(waiter)
        self._timed.append(waiter)
        if self._timer is None or waiter.deadline < self._timer.when():
            if self._timer is not None:
                self._timer.cancel()
            self._timer = loop.call_at(waiter.deadline, self._expire)

    async def wait_for(self, keys: Iterable[str], timeout: float) -> None:
        """Return once every key is in the store (loaded or failed), or when `timeout` passes."""
        wanted = set(keys)
        if wanted <= self._state.keys():
            return
        ready = self.loop.create_future()

        def settle() -> None:
            if not ready.done():
                ready.set_result(None)

        self.when_ready(wanted, timeout, settle)
        await ready

    def close(self) -> None:
        """Stop the deadline timer: nothing waits any more (the page is over)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _settle(self, waiter: _Waiter) -> None:
        if waiter.settled:
            return
        waiter.settled = True
        timed = self._timed
        timed.remove(waiter)
        if not timed and self._timer is not None:
            self._timer.cancel()
            self._timer = None
        waiter.callback()

    def _expire(self) -> None:
        """The deadline timer: settle the waiters whose time is up, then set it for the next deadline."""
        self._timer = None
        loop = self.loop  # the one the timer was set on
        now = loop.time()
        for waiter in [waiter for waiter in self._timed if waiter.deadline <= now + _RESOLUTION]:
            self._settle(waiter)
        if self._timed and self._timer is None:
            self._timer = loop.call_at(min(waiter.deadline for waiter in self._timed), self._expire)


@dataclass(eq=False, slots=True)
class _Waiter:
    """A callback waiting for keys, until its deadline (loop time)."""

    missing: set[str]
    deadline: float
    callback: Callable[[], None]
    settled: bool = False
