from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from oberon.pipeline.state import DATA_FAILED, Action, Failed, Store, data_reducer, failed, loaded


def counter(state: Mapping[str, Any], action: Action) -> Mapping[str, Any]:
    if action.type == "counter/added":
        return {**state, "count": state.get("count", 0) + action.payload["by"]}
    return state


def test_store_dispatch_runs_reducers_into_new_state() -> None:
    store = Store(reducers=[counter], initial={"count": 1})
    store.dispatch(Action("counter/added", {"by": 2}))
    assert store.state == {"count": 3}


def test_store_state_cannot_be_mutated_from_outside() -> None:
    store = Store(initial={"count": 1})
    with pytest.raises(TypeError):
        store.state["count"] = 2  # type: ignore[index]


def test_store_notifies_only_subscribers_of_changed_keys() -> None:
    store = Store()
    seen: list[tuple[str, Any]] = []
    store.subscribe(["event"], lambda state: seen.append(("event", state["event"])))
    store.subscribe(["cart"], lambda state: seen.append(("cart", state["cart"])))
    store.dispatch(loaded("event", {"id": 1}))
    assert seen == [("event", {"id": 1})]


def test_store_flow_is_unidirectional_action_reducer_state_subscriber() -> None:
    order: list[str] = []

    def tracing(state: Mapping[str, Any], action: Action) -> Mapping[str, Any]:
        order.append(f"reduce {action.type}")
        return data_reducer(state, action)

    store = Store(reducers=[tracing])
    store.subscribe(["event"], lambda state: order.append(f"notify event={state['event']}"))
    store.dispatch(loaded("event", 7))
    assert order == ["reduce oberon/data-loaded", "notify event=7"]


def test_store_does_not_notify_when_no_reducer_changes_state() -> None:
    store = Store()
    calls: list[object] = []
    store.subscribe(["event"], calls.append)
    store.dispatch(Action("unrelated/thing"))
    assert calls == []


def test_store_unsubscribe_stops_notifications() -> None:
    store = Store()
    calls: list[object] = []
    unsubscribe = store.subscribe(["event"], calls.append)
    unsubscribe()
    unsubscribe()  # twice is harmless
    store.dispatch(loaded("event", 1))
    assert calls == []


def test_store_failure_is_an_action_that_sets_a_failed_value() -> None:
    store = Store()
    store.dispatch(failed("related", "recommendations: down", 503))
    assert store.state["related"] == Failed("recommendations: down", 503)
    assert failed("x", "y").type == DATA_FAILED


def test_store_slice_returns_only_the_asked_keys_present() -> None:
    store = Store(initial={"a": 1, "b": 2})
    assert store.slice(["a", "c"]) == {"a": 1}
