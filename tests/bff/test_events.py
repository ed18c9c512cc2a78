"""The events BFF over the real stand-in backends, and over failing ones (respx)."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest
import respx
from starlette.types import ASGIApp

from bff.events import create_app
from bff.events.app import EVENT_CACHE, VENUE_CACHE
from infra.local import catalogue
from oberon import Upstreams

pytestmark = pytest.mark.anyio

ClientFor = Callable[[ASGIApp], httpx.AsyncClient]
HERO_KEYS = {"id", "name", "performer", "category", "starts_at", "summary", "image_alt"}
VENUE_KEYS = {"name", "city", "address", "capacity"}


async def test_events_hero_is_the_event_without_what_the_hero_does_not_show(
    stand_ins: Upstreams, client_for: ClientFor
) -> None:
    response = await client_for(create_app(stand_ins)).get("/events/1")
    assert response.status_code == 200
    assert response.headers["cache-control"] == EVENT_CACHE
    event = catalogue.event(1)
    assert event is not None
    assert response.json() == {key: value for key, value in event.items() if key in HERO_KEYS}
    assert set(response.json()) == HERO_KEYS


async def test_events_hero_passes_a_hostile_name_through_unchanged(stand_ins: Upstreams, client_for: ClientFor) -> None:
    # Escaping is the template's job; the view model carries the data as it is.
    response = await client_for(create_app(stand_ins)).get(f"/events/{catalogue.HOSTILE_EVENT_ID}")
    assert response.status_code == 200
    assert response.json()["name"] == catalogue.HOSTILE_NAME


async def test_events_venue_is_the_venue_of_the_event(stand_ins: Upstreams, client_for: ClientFor) -> None:
    response = await client_for(create_app(stand_ins)).get("/events/1/venue")
    assert response.status_code == 200
    assert response.headers["cache-control"] == VENUE_CACHE
    event = catalogue.event(1)
    assert event is not None
    venue = catalogue.venue(event["venue_id"])
    assert venue is not None
    assert response.json() == {key: value for key, value in venue.items() if key in VENUE_KEYS}
    assert set(response.json()) == VENUE_KEYS


@pytest.mark.parametrize("path", ["/events/0", "/events/601", "/events/abc", "/events/601/venue", "/events/abc/venue"])
async def test_events_unknown_event_is_404(stand_ins: Upstreams, client_for: ClientFor, path: str) -> None:
    response = await client_for(create_app(stand_ins)).get(path)
    assert response.status_code == 404
    assert response.headers["cache-control"] == "no-store"
    assert set(response.json()) == {"error"}


async def test_events_venue_is_404_when_the_venue_is_unknown(
    remote: Upstreams, mocked: respx.MockRouter, client_for: ClientFor
) -> None:
    mocked.get("http://events.test/events/1").respond(json={"id": 1, "venue_id": 999})
    mocked.get("http://venues.test/venues/999").respond(404, json={"error": "venue not found"})
    response = await client_for(create_app(remote)).get("/events/1/venue")
    assert response.status_code == 404
    assert response.json() == {"error": "not found at venues"}


async def test_events_hero_is_502_when_events_fail(
    remote: Upstreams,
    mocked: respx.MockRouter,
    client_for: ClientFor,
    break_route: Callable[[respx.Route], None],
) -> None:
    break_route(mocked.get("http://events.test/events/1"))
    response = await client_for(create_app(remote)).get("/events/1")
    assert response.status_code == 502
    assert response.headers["cache-control"] == "no-store"
    assert response.json() == {"error": "upstream events failed"}
    assert response.headers["x-oberon-dependency-failed"] == "events"  # not the BFF's own failure


async def test_events_venue_is_502_naming_events_when_the_event_lookup_fails(
    remote: Upstreams,
    mocked: respx.MockRouter,
    client_for: ClientFor,
    break_route: Callable[[respx.Route], None],
) -> None:
    break_route(mocked.get("http://events.test/events/1"))
    venues = mocked.get(host="venues.test")
    response = await client_for(create_app(remote)).get("/events/1/venue")
    assert response.status_code == 502
    assert response.json() == {"error": "upstream events failed"}
    assert response.headers["x-oberon-dependency-failed"] == "events"
    assert not venues.called


async def test_events_venue_is_502_naming_venues_when_they_fail(
    remote: Upstreams,
    mocked: respx.MockRouter,
    client_for: ClientFor,
    break_route: Callable[[respx.Route], None],
) -> None:
    mocked.get("http://events.test/events/1").respond(json={"id": 1, "venue_id": 8})
    break_route(mocked.get("http://venues.test/venues/8"))
    response = await client_for(create_app(remote)).get("/events/1/venue")
    assert response.status_code == 502
    assert response.json() == {"error": "upstream venues failed"}
    assert response.headers["x-oberon-dependency-failed"] == "venues"
