"""Search results and category listings as pages: the inputs they accept, their page links, their view models.

The view model of both is one shape, so one template can show either:
`{"query", "category", "page", "pages", "total", "results": [event links], "prev", "next"}`, where
`prev`/`next` are the site's URLs of the neighbouring pages (None at either end).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

PAGE_SIZE = 10
MAX_PAGE = 50  # the search page's `[query.page]` bound; deeper pages are not worth crawling or paging to
MAX_QUERY_LENGTH = 100
# The discovery team's navigation: each category of the events backend with the name visitors see.
CATEGORIES: Mapping[str, str] = {
    "concerts": "Concerts",
    "theatre": "Theatre",
    "sports": "Sports",
    "comedy": "Comedy",
    "family": "Family",
}


class BadInput(ValueError):
    """A query parameter the view cannot use (the BFF answers 400)."""


@dataclass(frozen=True)
class Search:
    """What a visitor searched for: words (maybe none), a category ("" for all) and a page from 1."""

    query: str = ""
    category: str = ""
    page: int = 1

    @classmethod
    def parse(cls, params: Mapping[str, str]) -> Search:
        """From `?q=&category=&page=`; BadInput names the parameter that does not fit."""
        query = params.get("q", "")
        if len(query) > MAX_QUERY_LENGTH:
            raise BadInput(f"q must be at most {MAX_QUERY_LENGTH} characters, got {len(query)}")
        category = params.get("category", "")
        if category and category not in CATEGORIES:
            raise BadInput(f"category must be one of {', '.join(CATEGORIES)}, got {category!r}")
        return cls(query=" ".join(query.split()), category=category, page=parse_page(params))

    @property
    def asked(self) -> bool:
        """Whether there is anything to look for: words or a category (else the page prompts for them)."""
        return bool(self.query or self.category)

    def url(self, page: int) -> str:
        """The search page's URL for another page of these results: the parameters that differ from their
        defaults, in the order the search page declares them (its canonical form)."""
        params = [("q", self.query), ("category", self.category), ("page", str(page) if page > 1 else "")]
        text = urlencode([(name, value) for name, value in params if value])
        return f"/search?{text}" if text else "/search"


def parse_page(params: Mapping[str, str]) -> int:
    """`?page=` as a number from 1 to MAX_PAGE (1 when absent); BadInput otherwise."""
    raw = params.get("page", "1")
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 3 and 1 <= int(raw) <= MAX_PAGE):
        raise BadInput(f"page must be a whole number from 1 to {MAX_PAGE}, got {raw!r}")
    return int(raw)


def category_url(category: str, page: int = 1) -> str:
    """The category page's URL; page 1 has no `?page=` (its canonical form)."""
    path = f"/c/{quote(category, safe='')}"
    return f"{path}?page={page}" if page > 1 else path


def page_count(total: int) -> int:
    """How many pages `total` results fill, at most MAX_PAGE (0 when there are none)."""
    return min(math.ceil(total / PAGE_SIZE), MAX_PAGE)


def offset(page: int) -> int:
    return (page - 1) * PAGE_SIZE


def results_page(
    *, query: str, category: str, page: int, total: int, results: list[dict[str, Any]], url: Callable[[int], str]
) -> dict[str, Any]:
    """The shared view model; `url(n)` is the URL of page n. Past the last page, `prev` leads back to it."""
    pages = page_count(total)
    return {
        "query": query,
        "category": category,
        "page": page,
        "pages": pages,
        "total": total,
        "results": results,
        "prev": url(min(page - 1, pages)) if page > 1 and pages else None,
        "next": url(page + 1) if page < pages else None,
    }


def category_links() -> list[dict[str, str]]:
    """Every category as a link: `{"category", "name", "url"}`."""
    return [{"category": slug, "name": name, "url": category_url(slug)} for slug, name in CATEGORIES.items()]
