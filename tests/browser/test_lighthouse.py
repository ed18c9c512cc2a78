"""Lighthouse holds the demo's SEO, accessibility, best practices and performance in `make test`.

One run of the pinned npm `lighthouse` (Debian's chromium, simulated mobile) per page against a real
embedded `oberon up`; each fails under 90 in any category, naming the page, the category, its score
and the failed audits, and rewrites `bench/results/lighthouse-<page>.json` (bench/lighthouse.py).
"""

from __future__ import annotations

import pytest

from bench import lighthouse


@pytest.mark.parametrize(
    "page",
    [
        "home",
        "event",
        "category",
    ],
)
def test_page_scores_at_least_90_in_every_lighthouse_category(site: str, page: str) -> None:
    card = lighthouse.audit(site, page)
    assert card.shortfalls() == [], "\n".join(card.shortfalls())
