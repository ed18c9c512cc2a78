from __future__ import annotations

import asyncio
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


def test_store_notifies_key_listeners_of_each_changed_key_only() -> None:
    store = Store()
    changed: list[str] = []
    store.on_change(changed.append)
    store.dispatch(loaded("event", 1))
    store.dispatch(failed("cart", "down"))
    store.dispatch(Action("unrelated/thing"))
    assert changed == ["event", "cart"]
    value = store.get("event")
    store.dispatch(loaded("event", value))  # the very same value: nothing changed
    assert changed == ["event", "cart"] and store.get("missing") is None


@pytest.mark.anyio
async def test_store_when_ready_calls_back_at_once_when_keys_arrive_or_at_the_deadline() -> None:
    store = Store(initial={"a": 1})
    calls: list[str] = []
    store.when_ready(["a"], 1.0, lambda: calls.append("at once"))
    assert calls == ["at once"]
    store.when_ready(["a", "b"], 1.0, lambda: calls.append("b arrived"))
    store.when_ready(["c"], 0.01, lambda: calls.append("c timed out"))
    store.dispatch(loaded("b", 2))
    assert calls == ["at once", "b arrived"]
    await asyncio.sleep(0.05)
    assert calls == ["at once", "b arrived", "c timed out"]
    store.dispatch(loaded("c", 3))
    assert calls == ["at once", "b arrived", "c timed out"]  # once only


@pytest.mark.anyio
async def test_store_waits_of_one_page_share_one_timer(monkeypatch: pytest.MonkeyPatch) -> None:
    loop = asyncio.get_running_loop()
    timers: list[float] = []
    call_at = loop.call_at

    def counted(when: float, *args: Any, **kwargs: Any) -> asyncio.TimerHandle:
        timers.append(when)
        return call_at(when, *args, **kwargs)

    monkeypatch.setattr(loop, "call_at", counted)
    monkeypatch.setattr(loop, "call_later", lambda delay, *a, **k: counted(loop.time() + delay, *a, **k))
    store = Store()
    waits = [asyncio.ensure_future(store.wait_for([f"k{index}"], 0.02 + index)) for index in range(5)]
    await asyncio.sleep(0)
    for index in range(5):
        store.dispatch(loaded(f"k{index}", index))
    await asyncio.gather(*waits)
    assert len(timers) == 1
    late = asyncio.ensure_future(store.wait_for(["never"], 0.01))
    await asyncio.wait_for(late, 1)  # the timeout still holds


@pytest.mark.anyio
async def test_store_looks_its_loop_up_once_for_all_its_waits(monkeypatch: pytest.MonkeyPatch) -> None:
    running = asyncio.get_running_loop()
    lookups: list[None] = []

    def counted() -> asyncio.AbstractEventLoop:
        lookups.append(None)
        return running

    store = Store()
    monkeypatch.setattr(asyncio, "get_running_loop", counted)
    calls: list[int] = []
    for index in range(5):
        store.when_ready([f"k{index}"], 0.01 + index, lambda index=index: calls.append(index))
    waited = asyncio.ensure_future(store.wait_for(["late"], 0.01))
    await asyncio.sleep(0)
    assert store.loop is running and len(lookups) == 1
    for index in range(1, 5):
        store.put(f"k{index}", index)
    await asyncio.wait_for(waited, 1)  # timed out on the store's loop, with "k0"'s waiter
    assert calls == [1, 2, 3, 4, 0] and len(lookups) == 1


def _watched(store: Store) -> list[tuple[str, Any]]:
    """What a store tells: each changed key (`on_change`), each subscriber's view, each waiter settled."""
    told: list[tuple[str, Any]] = []
    store.on_change(lambda key: told.append(("changed", key)))
    store.subscribe(["event", "cart"], lambda state: told.append(("view", dict(state))))
    store.when_ready(["event", "cart"], 5.0, lambda: told.append(("ready", None)))
    return told


@pytest.mark.anyio
@pytest.mark.parametrize("reducers", [(data_reducer,), (data_reducer, counter)])
async def test_store_put_does_what_dispatching_loaded_or_failed_does(reducers: tuple[Any, ...]) -> None:
    value = {"id": 1}
    by_action, by_put = Store(reducers=reducers), Store(reducers=reducers)
    told_by_action, told_by_put = _watched(by_action), _watched(by_put)
    by_action.dispatch(loaded("event", value))
    by_action.dispatch(loaded("event", value))  # the very same value: nothing changed
    by_action.dispatch(failed("cart", "down", 503))
    by_put.put("event", value)
    by_put.put("event", value)
    by_put.put("cart", Failed("down", 503))
    assert told_by_put == told_by_action
    assert ("ready", None) in told_by_action
    assert by_put.state == by_action.state == {"event": value, "cart": Failed("down", 503)}
    assert by_put.get("event") is value
    by_action.close()
    by_put.close()
