"""Which keys were seen lately: the gate that lets a cache keep only what is asked for a second time.

A cache that keeps everything it sees is flushed by what is seen once: a crawler's walk, a search's long tail,
pages whose data is their own. Each of those costs a copy, an insert and the eviction of an older entry that may
have been asked for again, and the memory they churn through costs every other request cache misses. A cache
that keeps an entry only on its second sight within a recent window resists that scan: nginx's
`proxy_cache_min_uses 2`, TinyLFU's doorkeeper.

The table is a fixed `bytearray` of hash slots, so a look allocates nothing and the table never grows. Each slot
holds the generation that marked it; a new generation begins after every `slots // 32` marks, and a key marked in
this generation or the one before counts as seen, so "lately" is the last `slots // 32` to `slots // 16` first
sights. Two keys can share a slot: then a key seen once counts as seen (at most one look in sixteen), and its
cache keeps it as it kept everything before; never a wrong answer.
"""

from __future__ import annotations

from collections.abc import Hashable

_GENERATIONS = 255  # a slot's byte: 0 is never marked, generations count 1…255 and then 1 again


class Doorkeeper:
    """`seen_before(key)`: whether `key` was marked lately; a key that was not is marked now."""

    def __init__(self, slots: int) -> None:
        if slots < 32 or slots & (slots - 1):
            raise ValueError(f"slots must be a power of two of at least 32, got {slots}")
        self._slots = bytearray(slots)
        self._mask = slots - 1
        self._per_generation = slots // 32
        self._marked = 0  # marks in this generation
        self._generation = 1
        self._previous = _GENERATIONS  # the generation before this one (none yet: no slot holds it)

    def seen_before(self, key: Hashable) -> bool:
        slot = hash(key) & self._mask
        marked = self._slots[slot]
        if marked and (marked == self._generation or marked == self._previous):
            return True
        self._slots[slot] = self._generation
        self._marked += 1
        if self._marked == self._per_generation:
            self._previous, self._generation = self._generation, self._generation % _GENERATIONS + 1
            self._marked = 0
        return False
