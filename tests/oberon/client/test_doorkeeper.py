"""The doorkeeper: a key counts as seen lately from its second look on, within a window of recent first sights."""

from __future__ import annotations

import pytest

from oberon.client.doorkeeper import Doorkeeper


def test_a_key_is_seen_from_its_second_look_on() -> None:
    doorkeeper = Doorkeeper(1 << 10)
    assert not doorkeeper.seen_before("/e/1")
    assert doorkeeper.seen_before("/e/1")
    assert doorkeeper.seen_before("/e/1")
    assert not doorkeeper.seen_before("/e/2")


def test_a_key_is_forgotten_after_two_generations_of_first_sights() -> None:
    doorkeeper = Doorkeeper(1 << 10)  # a generation: 32 first sights
    assert not doorkeeper.seen_before("kept")
    others = iter(range(1_000_000))

    def new_keys(count: int) -> int:
        """Marks `count` keys never seen (a key that shares a slot with an earlier one does not count)."""
        marked = 0
        while marked < count:
            marked += not doorkeeper.seen_before(next(others))
        return marked

    new_keys(31)  # the rest of the first generation
    new_keys(31)  # all but one of the second: "kept" was marked in the one before, so it still counts
    assert doorkeeper.seen_before("kept")
    new_keys(1)  # the third begins: the first generation's marks no longer count
    assert not doorkeeper.seen_before("kept")  # forgotten: marked anew
    assert doorkeeper.seen_before("kept")


def test_few_keys_seen_once_pass_for_seen() -> None:
    doorkeeper = Doorkeeper(1 << 16)
    passed = sum(doorkeeper.seen_before(f"/page-5/{n}") for n in range(100_000))
    assert passed < 100_000 // 16  # two generations fill at most a sixteenth of the slots


@pytest.mark.parametrize("slots", [0, 16, 1000, -64])
def test_slots_are_a_power_of_two_of_at_least_32(slots: int) -> None:
    with pytest.raises(ValueError, match="power of two"):
        Doorkeeper(slots)
