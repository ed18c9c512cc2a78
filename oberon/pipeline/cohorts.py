"""Canary cohorts: which canaries a visitor's bucket sees, and so which registry renders their pages.

A visitor's bucket (00–99) is fixed by their `oberon_visitor` cookie; the gateway tells the renderer
(`X-Oberon-Bucket`). Bucket b sees every canary whose percentage is above b, so the cohorts nest: n
canaries make at most n + 1 of them (`stable`, the biggest canary's, the two biggest's, …), each a
registry of its own, and a CDN keeps one copy of a page per cohort, not per bucket. A cohort is named
as the edge spells it (`oberon.headers.cohort`): `name@version` sorted and space-separated, or `stable`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from oberon.headers import BUCKETS, STABLE_COHORT, cohort


@dataclass(frozen=True)
class Canary:
    """A version of `name` served to `percent` % of visitors (the buckets below `percent`) instead of stable."""

    name: str
    version: str
    percent: int

    def __post_init__(self) -> None:
        if not 0 < self.percent < BUCKETS:
            raise ValueError(f"a canary's percent is 1–{BUCKETS - 1}, got {self.percent}")


class Cohorts:
    """The cohorts of a set of canaries (at most one per component): each bucket's, and what each holds."""

    def __init__(self, canaries: Iterable[Canary] = ()) -> None:
        self.canaries = tuple(sorted(canaries, key=lambda canary: canary.name))
        if len({canary.name for canary in self.canaries}) != len(self.canaries):
            raise ValueError("a component has at most one canary")
        triples = [(canary.name, canary.version, canary.percent) for canary in self.canaries]
        self._by_bucket = tuple(cohort(triples, bucket) for bucket in range(BUCKETS))
        self._members: dict[str, tuple[Canary, ...]] = {STABLE_COHORT: ()}
        for bucket, name in enumerate(self._by_bucket):
            self._members.setdefault(name, tuple(canary for canary in self.canaries if canary.percent > bucket))

    def of(self, bucket: int | None) -> str:
        """The cohort of `bucket`; a request without one (no visitor id) is the stable cohort's."""
        if bucket is None:
            return STABLE_COHORT
        if not 0 <= bucket < BUCKETS:
            raise ValueError(f"a bucket is 0–{BUCKETS - 1}, got {bucket}")
        return self._by_bucket[bucket]

    def names(self) -> list[str]:
        """Every cohort, `stable` first, then by how many canaries it holds."""
        return sorted(self._members, key=lambda name: len(self._members[name]))

    def members(self, name: str) -> tuple[Canary, ...]:
        """The canaries of the cohort `name`; KeyError for a cohort these canaries do not make."""
        return self._members[name]

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Cohorts) and other.canaries == self.canaries

    def __hash__(self) -> int:
        return hash(self.canaries)

    def __repr__(self) -> str:
        return f"Cohorts({list(self.canaries)!r})"
