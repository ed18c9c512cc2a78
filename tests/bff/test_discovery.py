"""The discovery BFF over the real stand-in backends, and over failing ones (respx)."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest
import respx
from starlette.types import ASGIApp

from bff.discovery import create_app
from bff.discovery.app import LISTING_CACHE
from infra.local import catalogue
from oberon import Upstreams

pytestmark = pytest.mark.anyio

ClientFor = Callable[[ASGIApp], httpx.AsyncClient]
EVENT_LINK_KEYS = {"id", "name", "starts_at", "category", "url"}


def expected_links(items: list[catalogue.EventSummary]) -> list[dict[str, object]]:
    return [
        {
            "id": item["id"],
            "name": item["name"],
            "starts_at": item["starts_at"],
            "category": item["category"],
            "url": f"/e/{item['id']}",
        }
        for item in items
    ]


async def test_discovery_featured_lists_twelve_event_links(stand_ins: Upstreams, client_for: ClientFor) -> None:
    response = await client_for(create_app(stand_ins)).get("/home/featured")
    assert response.status_code == 200
    assert response.headers["cache-control"] == LISTING_CACHE
    body = response.json()
    assert set(body) == {"events"}
    assert len(body["events"]) == 12
    assert all(set(event) == EVENT_LINK_KEYS for event in body["events"])
    assert body["events"] == expected_links(catalogue.featured(12))


async def test_discovery_related_lists_four_event_links(stand_ins: Upstreams, client_for: ClientFor) -> None:
    response = await client_for(create_app(stand_ins)).get("/events/1/related")
    assert response.status_code == 200
    assert response.headers["cache-control"] == LISTING_CACHE
    body = response.json()
    assert set(body) == {"events"}
    assert len(body["events"]) == 4
    assert all(set(event) == EVENT_LINK_KEYS for event in body["events"])
    related = catalogue.related(1, 4)
    assert related is not None
    assert body["events"] == expected_links(related)


@pytest.mark.parametrize("path", ["/events/0/related", "/events/601/related", "/events/abc/related"])
async def test_discovery_related_of_an_unknown_event_is_404(
    stand_ins: Upstreams, client_for: ClientFor, path: str
) -> None:
    response = await client_for(create_app(stand_ins)).get(path)
    assert response.status_code == 404
    assert response.headers["cache-control"] == "no-store"
    assert set(response.json()) == {"error"}


async def test_discovery_featured_is_502_when_recommendations_fail(
    remote: Upstreams,
    mocked: respx.MockRouter,
    client_for: ClientFor,
    break_route: Callable[[respx.Route], None],
) -> None:
    break_route(mocked.get(host="recommendations.test", path="/featured"))
    response = await client_for(create_app(remote)).get("/home/featured")
    assert response.status_code == 502
    assert response.headers["cache-control"] == "no-store"
    assert response.json() == {"error": "upstream recommendations failed"}


async def test_discovery_related_is_502_when_recommendations_fail(
    remote: Upstreams,
    mocked: respx.MockRouter,
    client_for: ClientFor,
    break_route: Callable[[respx.Route], None],
) -> None:
    break_route(mocked.get(host="recommendations.test", path="/events/1/related"))
    response = await client_for(create_app(remote)).get("/events/1/related")
    assert response.status_code == 502
    assert response.json() == {"error": "upstream recommendations failed"}
