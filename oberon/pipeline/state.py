"""The per-request state container: actions, reducers, dispatch, subscriptions and waiting for keys.

Updates flow one way: an action is dispatched, reducers compute the new state, and the
callbacks subscribed to the keys that changed are invoked. Components never call each
other; they read the keys they subscribe to.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

DATA_LOADED = "oberon/data-loaded"
DATA_FAILED = "oberon/data-failed"


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
    """Holds one request's state; changed only by dispatching actions through reducers."""

    def __init__(self, *, reducers: Iterable[Reducer] = (data_reducer,), initial: Mapping[str, Any] | None = None):
        self._reducers = tuple(reducers)
        self._state: Mapping[str, Any] = dict(initial or {})
        self._listeners: list[tuple[frozenset[str], Listener]] = []

    @property
    def state(self) -> Mapping[str, Any]:
        """A read-only view of the current state."""
        return MappingProxyType(dict(self._state))

    def dispatch(self, action: Action) -> None:
        """Run the reducers, then notify every subscriber whose keys changed."""
        before = self._state
        after = before
        for reducer in self._reducers:
            after = reducer(after, action)
        if after is before:
            return
        self._state = after
        gone = object()
        changed = {key for key in after.keys() | before.keys() if before.get(key, gone) is not after.get(key, gone)}
        view = MappingProxyType(dict(after))
        for keys, listener in list(self._listeners):
            if keys & changed:
                listener(view)

    def subscribe(self, keys: Iterable[str], listener: Listener) -> Callable[[], None]:
        """Call `listener(state)` whenever one of `keys` changes; returns the unsubscribe function."""
        entry = (frozenset(keys), listener)
        self._listeners.append(entry)

        def unsubscribe() -> None:
            if entry in self._listeners:
                self._listeners.remove(entry)

        return unsubscribe

    def slice(self, keys: Iterable[str]) -> dict[str, Any]:
        """The values of `keys` that are present (failed keys included)."""
        return {key: self._state[key] for key in keys if key in self._state}

    def split_failed(self) -> tuple[dict[str, Any], list[str]]:
        """The state without its failed keys, and the failed keys, sorted: what a page sends to the browser."""
        kept = {key: value for key, value in self._state.items() if not isinstance(value, Failed)}
        return kept, sorted(key for key, value in self._state.items() if isinstance(value, Failed))

    async def wait_for(self, keys: Iterable[str], timeout: float) -> None:
        """Return once every key is in the store (loaded or failed), or when `timeout` passes."""
        wanted = set(keys)
        if wanted <= self._state.keys():
            return
        loop = asyncio.get_running_loop()
        ready = loop.create_future()  # a bare future and timer: this runs for every component of every page

        def settle(_: object = None) -> None:
            if not ready.done():
                ready.set_result(None)

        unsubscribe = self.subscribe(wanted, lambda state: settle() if wanted <= state.keys() else None)
        timer = loop.call_later(timeout, settle)
        try:
            await ready
        finally:
            timer.cancel()
            unsubscribe()
