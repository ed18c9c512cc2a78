from __future__ import annotations

import pytest

from oberon.client.response_cache import Freshness, ResponseCache


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, Freshness()),
        ("no-store", Freshness()),
        ("private, max-age=60", Freshness()),
        ("no-cache, max-age=60", Freshness()),
        ("max-age=60", Freshness(max_age=60, store=True)),
        ("public, max-age=60, s-maxage=10", Freshness(max_age=10, store=True)),
        ("max-age=60, stale-if-error=300", Freshness(max_age=60, stale_if_error=300, store=True)),
        ("max-age=banana", Freshness()),
        ("max-age=0, stale-if-error=300", Freshness(stale_if_error=300)),
    ],
)
def test_freshness_reads_cache_control(header: str | None, expected: Freshness) -> None:
    assert Freshness.parse(header) == expected


def test_cache_serves_fresh_then_stale_then_nothing(clock) -> None:
    cache = ResponseCache(clock=clock)
    cache.store("k", {"v": 1}, size=10, freshness=Freshness(max_age=30, stale_if_error=60, store=True))
    assert cache.lookup("k").fresh
    clock.now += 30
    stale = cache.lookup("k")
    assert (stale.fresh, stale.stale, stale.value) == (False, True, {"v": 1})
    clock.now += 60
    assert not cache.lookup("k").stale
    assert (cache.stats.hits, cache.stats.misses) == (1, 2)


def test_cache_does_not_keep_what_may_not_be_stored() -> None:
    cache = ResponseCache()
    cache.store("k", 1, size=1, freshness=Freshness.parse("private, max-age=60"))
    assert len(cache) == 0


def test_cache_drops_a_stored_entry_when_a_newer_answer_is_no_store() -> None:
    cache = ResponseCache()
    cache.store("k", 1, size=1, freshness=Freshness(max_age=60, store=True))
    cache.store("k", 2, size=1, freshness=Freshness())
    assert not cache.lookup("k").fresh


def test_cache_is_bounded_by_entries_and_bytes() -> None:
    cache = ResponseCache(max_entries=3, max_bytes=100, max_entry_bytes=50)
    keep = Freshness(max_age=60, store=True)
    for key in "abcd":
        cache.store(key, key, size=10, freshness=keep)
    assert len(cache) == 3
    cache.store("big", "x", size=51, freshness=keep)
    big = cache.lookup("big")
    assert not big.fresh and not big.stale
    for key in "wxyz":
        cache.store(key, key, size=40, freshness=keep)
    assert cache.bytes <= 100


def test_a_cache_that_kept_nothing_misses_without_reading_its_clock() -> None:
    # Issue 19: an upstream answering no-store never fills its cache; each lookup and store went through
    # cachetools' timer and expiry all the same.
    reads: list[float] = []

    def clock() -> float:
        reads.append(0.0)
        return 0.0

    cache = ResponseCache(clock=clock)
    for _ in range(3):
        lookup = cache.lookup("k")
        assert not lookup.fresh and not lookup.stale
        assert cache.store("k", {"v": 1}, size=10, freshness=Freshness()) == 0.0
    assert reads == [] and cache.stats.misses == 3
    cache.store("k", {"v": 1}, size=10, freshness=Freshness(max_age=30, store=True))
    assert cache.lookup("k").fresh and cache.stats.hits == 1
    cache.store("k", {"v": 2}, size=10, freshness=Freshness())  # a no-store answer drops the kept copy
    assert not cache.lookup("k").fresh and len(cache) == 0
