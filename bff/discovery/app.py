"""Discovery BFF: the featured events of the home page, the events related to one event, search and categories."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bff.discovery.listing import (
    CATEGORIES,
    PAGE_SIZE,
    BadInput,
    Search,
    category_links,
    category_url,
    offset,
    page_count,
    parse_page,
    results_page,
)
from oberon import Upstreams
from oberon.bff import create_bff, fetch, view_model

FEATURED_LIMIT = 12
RELATED_LIMIT = 4
LISTING_CACHE = "public, max-age=30, stale-if-error=600"
CATEGORIES_CACHE = "public, max-age=3600, stale-if-error=86400"


def event_link(item: dict[str, Any]) -> dict[str, Any]:
    """One event as `event-list` and `related-events` show it: a link with its date and category."""
    event_id = int(item["id"])
    return {
        "id": event_id,
        "name": str(item["name"]),
        "starts_at": str(item["starts_at"]),
        "category": str(item["category"]),
        "url": f"/e/{event_id}",
    }


def event_links(body: dict[str, Any], limit: int) -> dict[str, Any]:
    """The `{"events": [...]}` view model from a recommendations listing, at most `limit` long."""
    return {"events": [event_link(item) for item in body["items"][:limit]]}


def featured_events(body: dict[str, Any]) -> dict[str, Any]:
    """The `event-list` view model of the home page."""
    return event_links(body, FEATURED_LIMIT)


def related_events(body: dict[str, Any]) -> dict[str, Any]:
    """The `related-events` view model of an event page."""
    return event_links(body, RELATED_LIMIT)


def found_events(body: dict[str, Any]) -> tuple[int, list[dict[str, Any]]]:
    """The total and the event links of one page of an events listing (`{"items", "total"}`)."""
    return int(body["total"]), [event_link(item) for item in body["items"]]


def _bad_input(error: BadInput) -> Response:
    return view_model({"error": str(error)}, 400)


def create_app(upstreams: Upstreams) -> Starlette:
    """The discovery BFF over the `recommendations` and `events` backends."""

    async def featured(request: Request) -> Response:
        path = f"/featured?limit={FEATURED_LIMIT}"
        return view_model(
            await fetch(upstreams, "recommendations", path, request, view=featured_events), cache_control=LISTING_CACHE
        )

    async def related(request: Request) -> Response:
        event_id: int = request.path_params["event_id"]
        path = f"/events/{event_id}/related?limit={RELATED_LIMIT}"
        return view_model(
            await fetch(upstreams, "recommendations", path, request, view=related_events), cache_control=LISTING_CACHE
        )

    async def search(request: Request) -> Response:
        """`/search?q=&category=&page=`: a page of the events matching the words, or a prompt when none are given."""
        try:
            asked = Search.parse(request.query_params)
        except BadInput as exc:
            return _bad_input(exc)
        results: list[dict[str, Any]] = []  # nothing asked: the page prompts for words, no backend call
        total = 0
        if asked.asked:
            params = {"q": asked.query, "category": asked.category, "offset": offset(asked.page), "limit": PAGE_SIZE}
            path = f"/events/search?{urlencode(params)}"
            total, results = await fetch(upstreams, "events", path, request, view=found_events)
        body = results_page(
            query=asked.query, category=asked.category, page=asked.page, total=total, results=results, url=asked.url
        )
        return view_model({**body, "categories": category_links()}, cache_control=LISTING_CACHE)

    async def category(request: Request) -> Response:
        """`/categories/{category}?page=`: a page of the category's events; 404 for no such category or page."""
        slug: str = request.path_params["category"]
        if slug not in CATEGORIES:
            return view_model({"error": "category not found"}, 404)
        try:
            page = parse_page(request.query_params)
        except BadInput as exc:
            return _bad_input(exc)
        path = f"/events?{urlencode({'category': slug, 'offset': offset(page), 'limit': PAGE_SIZE})}"
        total, results = await fetch(upstreams, "events", path, request, view=found_events)
        if page > max(1, page_count(total)):
            return view_model({"error": "page not found"}, 404)
        body = results_page(
            query="", category=slug, page=page, total=total, results=results, url=lambda n: category_url(slug, n)
        )
        return view_model({**body, "name": CATEGORIES[slug]}, cache_control=LISTING_CACHE)

    async def categories(request: Request) -> Response:
        """`/categories`: every category as a link, and as the category pages' params for `sitemap.xml`."""
        pages = [{"params": {"category": slug}} for slug in CATEGORIES]
        return view_model({"categories": category_links(), "pages": pages}, cache_control=CATEGORIES_CACHE)

    return create_bff(
        [
            Route("/home/featured", featured, methods=["GET"]),
            Route("/events/{event_id:int}/related", related, methods=["GET"]),
            Route("/search", search, methods=["GET"]),
            Route("/categories", categories, methods=["GET"]),
            Route("/categories/{category}", category, methods=["GET"]),
        ],
        upstreams=upstreams,
        requires=["recommendations", "events"],
    )
