"""Canary cohorts: a bucket sees every canary whose percent is above it, so n canaries make at most n + 1 cohorts."""

from __future__ import annotations

import pytest

from oberon.headers import cohort
from oberon.pipeline.cohorts import Canary, Cohorts

TICKETS = Canary("ticket-selector", "1.1.0", 30)
CART = Canary("cart-summary", "2.0.0", 10)


def test_cohorts_without_canaries_are_stable_alone() -> None:
    cohorts = Cohorts()
    assert cohorts.names() == ["stable"]
    assert {cohorts.of(bucket) for bucket in range(100)} == {"stable"}
    assert cohorts.of(None) == "stable" and cohorts.members("stable") == ()


def test_cohorts_nest_one_more_per_canary_not_one_per_bucket() -> None:
    cohorts = Cohorts([TICKETS, CART])
    both = "cart-summary@2.0.0 ticket-selector@1.1.0"
    assert cohorts.names() == ["stable", "ticket-selector@1.1.0", both]
    assert [cohorts.of(bucket) for bucket in (0, 9)] == [both, both]
    assert [cohorts.of(bucket) for bucket in (10, 29)] == ["ticket-selector@1.1.0"] * 2
    assert [cohorts.of(bucket) for bucket in (30, 99)] == ["stable", "stable"]
    assert cohorts.members(both) == (CART, TICKETS)
    assert cohorts.members("ticket-selector@1.1.0") == (TICKETS,)


def test_cohort_names_are_spelled_as_the_edge_spells_them() -> None:
    cohorts = Cohorts([TICKETS, CART])
    triples = [(c.name, c.version, c.percent) for c in (TICKETS, CART)]
    assert all(cohorts.of(bucket) == cohort(triples, bucket) for bucket in range(100))


def test_canaries_at_one_percent_make_one_cohort() -> None:
    cohorts = Cohorts([Canary("a", "2", 50), Canary("b", "3", 50)])
    assert cohorts.names() == ["stable", "a@2 b@3"]


def test_cohorts_refuse_what_cannot_be() -> None:
    with pytest.raises(ValueError, match="percent"):
        Canary("a", "2", 100)
    with pytest.raises(ValueError, match="at most one canary"):
        Cohorts([Canary("a", "2", 10), Canary("a", "3", 20)])
    with pytest.raises(ValueError, match="bucket"):
        Cohorts([TICKETS]).of(100)
    with pytest.raises(KeyError):
        Cohorts([TICKETS]).members("cart-summary@2.0.0")
