"""Discovery BFF: the featured events of the home page and the events related to one event."""

from __future__ import annotations

from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from oberon import Upstreams
from oberon.bff import create_bff, fetch, view_model

FEATURED_LIMIT = 12
RELATED_LIMIT = 4
LISTING_CACHE = "public, max-age=30, stale-if-error=600"


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


def create_app(upstreams: Upstreams) -> Starlette:
    """The discovery BFF over the `recommendations` backend."""

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

    return create_bff(
        [
            Route("/home/featured", featured, methods=["GET"]),
            Route("/events/{event_id:int}/related", related, methods=["GET"]),
        ],
        upstreams=upstreams,
        requires=["recommendations"],
    )
