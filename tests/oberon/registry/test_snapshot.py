"""Snapshots read back only when whole: a follower never swaps in half a registry."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from oberon.registry.snapshot import Canary, Entry, InvalidSnapshot, Pin, Snapshot

DIGEST = "sha256:" + "ab" * 32
OTHER = "sha256:" + "cd" * 32
GOOD: dict[str, Any] = {
    "revision": 42,
    "components": [
        {
            "name": "ticket-selector",
            "owner": "checkout",
            "stable": {"version": "1.0.0", "digest": DIGEST},
            "canary": {"version": "1.1.0", "digest": OTHER, "percent": 10},
        },
        {"name": "cart-summary", "owner": "checkout", "stable": {"version": "2.0.0", "digest": OTHER}, "canary": None},
    ],
}


def test_snapshot_reads_its_json_sorted_by_name_and_writes_it_back() -> None:
    snapshot = Snapshot.from_json(GOOD)
    assert (snapshot.revision, snapshot.etag) == (42, '"42"')
    assert [entry.name for entry in snapshot.components] == ["cart-summary", "ticket-selector"]
    assert snapshot.components[1] == Entry(
        name="ticket-selector",
        owner="checkout",
        stable=Pin("ticket-selector", "1.0.0", DIGEST),
        canary=Canary(pin=Pin("ticket-selector", "1.1.0", OTHER), percent=10),
    )
    assert [pin.ident for pin in snapshot.stable()] == ["cart-summary@2.0.0", "ticket-selector@1.0.0"]
    assert Snapshot.from_json(snapshot.to_json()) == snapshot


def _broken(path: str, value: object) -> dict[str, Any]:
    data = copy.deepcopy(GOOD)
    *parents, last = path.split(".")
    target: Any = data
    for part in parents:
        target = target[int(part)] if part.isdigit() else target[part]
    target[last] = value
    return data


@pytest.mark.parametrize(
    ("data", "where"),
    [
        ([], "a snapshot is a JSON object"),
        (_broken("revision", "42"), "revision"),
        (_broken("revision", True), "revision"),
        (_broken("revision", -1), "revision"),
        (_broken("components", {}), "components"),
        (_broken("components.0.name", ""), "components[0]: name and owner"),
        (_broken("components.0.stable", None), "components[0].stable"),
        (_broken("components.0.stable.digest", "sha256:xyz"), "components[0].stable.digest"),
        (_broken("components.0.stable.digest", "md5:" + "a" * 64), "components[0].stable.digest"),
        (_broken("components.0.stable.version", 1), "components[0].stable.version"),
        (_broken("components.0.canary.percent", 0), "components[0].canary.percent"),
        (_broken("components.0.canary.percent", 100), "components[0].canary.percent"),
        (_broken("components.1.name", "ticket-selector"), "components: a name is listed twice"),
    ],
)
def test_snapshot_refuses_anything_not_whole(data: object, where: str) -> None:
    with pytest.raises(InvalidSnapshot, match=f"^{where.replace('[', '.').replace(']', '.')}"):
        Snapshot.from_json(data)
