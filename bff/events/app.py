"""Events BFF: one event as the hero shows it, and the venue it takes place at."""

from __future__ import annotations

from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from oberon import Upstreams
from oberon.bff import create_bff, fetch, view_model

HERO_FIELDS = ("id", "name", "performer", "category", "starts_at", "summary", "image_alt")
VENUE_FIELDS = ("name", "city", "address", "capacity")
EVENT_CACHE = "public, max-age=30, stale-if-error=3600"
VENUE_CACHE = "public, max-age=300, stale-if-error=86400"
SITEMAP_CACHE = "public, max-age=3600, stale-if-error=86400"
SITEMAP_PAGE = 100  # the events backend's largest page


def hero(event: dict[str, Any]) -> dict[str, Any]:
    """The `event-hero` view model: the event without the fields the hero does not show."""
    return {field: event[field] for field in HERO_FIELDS}


def venue(place: dict[str, Any]) -> dict[str, Any]:
    """The `venue-info` view model."""
    return {field: place[field] for field in VENUE_FIELDS}


def create_app(upstreams: Upstreams) -> Starlette:
    """The events BFF over the `events` and `venues` backends."""

    async def event(request: Request) -> Response:
        event_id: int = request.path_params["event_id"]
        return view_model(
            await fetch(upstreams, "events", f"/events/{event_id}", request, view=hero), cache_control=EVENT_CACHE
        )

    async def event_venue(request: Request) -> Response:
        event_id: int = request.path_params["event_id"]
        # Sequential by necessity: the venue's id is only known from the event.
        venue_id = await fetch(
            upstreams, "events", f"/events/{event_id}", request, view=lambda body: int(body["venue_id"])
        )
        return view_model(
            await fetch(upstreams, "venues", f"/venues/{venue_id}", request, view=venue), cache_control=VENUE_CACHE
        )

    async def sitemap(request: Request) -> Response:
        """Every event page's route params, for the renderer's `sitemap.xml`."""
        pages: list[dict[str, Any]] = []
        total = 1
        while len(pages) < total:
            path = f"/events?offset={len(pages)}&limit={SITEMAP_PAGE}"
            listing = await fetch(upstreams, "events", path, request, view=lambda body: body)
            items, total = listing["items"], int(listing["total"])
            if not items:
                break
            pages += [{"params": {"event_id": int(item["id"])}} for item in items]
        return view_model({"pages": pages}, cache_control=SITEMAP_CACHE)

    return create_bff(
        [
            Route("/sitemap", sitemap, methods=["GET"]),
            Route("/events/{event_id:int}", event, methods=["GET"]),
            Route("/events/{event_id:int}/venue", event_venue, methods=["GET"]),
        ],
        upstreams=upstreams,
        requires=["events", "venues"],
    )
