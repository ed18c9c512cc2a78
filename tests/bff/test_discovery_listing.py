"""The discovery BFF's search and category pages over the real stand-in backends, and over failing ones (respx)."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import httpx
import pytest
import respx
from starlette.types import ASGIApp

from bff.discovery import create_app
from bff.discovery.app import CATEGORIES_CACHE, LISTING_CACHE
from bff.discovery.listing import CATEGORIES, MAX_PAGE, PAGE_SIZE
from infra.local import catalogue
from oberon import Upstreams

pytestmark = pytest.mark.anyio

ClientFor = Callable[[ASGIApp], httpx.AsyncClient]
PAGE_KEYS = {"query", "category", "page", "pages", "total", "results", "prev", "next"}
CATEGORY_LINKS = [
    {"category": "concerts", "name": "Concerts", "url": "/c/concerts"},
    {"category": "theatre", "name": "Theatre", "url": "/c/theatre"},
    {"category": "sports", "name": "Sports", "url": "/c/sports"},
    {"category": "comedy", "name": "Comedy", "url": "/c/comedy"},
    {"category": "family", "name": "Family", "url": "/c/family"},
]


def links(items: Sequence[Mapping[str, Any]]) -> list[dict[str, object]]:
    return [
        {**{key: item[key] for key in ("id", "name", "starts_at", "category")}, "url": f"/e/{item['id']}"}
        for item in items
    ]


def test_discovery_knows_every_category_of_the_events_backend() -> None:
    assert tuple(CATEGORIES) == catalogue.CATEGORIES


async def test_discovery_search_gives_the_first_page_of_matches(stand_ins: Upstreams, client_for: ClientFor) -> None:
    response = await client_for(create_app(stand_ins)).get("/search", params={"q": "  Paper   LANTERNS "})
    assert response.status_code == 200
    assert response.headers["cache-control"] == LISTING_CACHE
    body = response.json()
    assert set(body) == PAGE_KEYS | {"categories"}
    found = catalogue.search("paper lanterns", None, 0, 600)
    assert found["total"] > PAGE_SIZE
    assert body["query"] == "Paper LANTERNS"
    assert (body["category"], body["page"], body["total"]) == ("", 1, found["total"])
    assert body["pages"] == math.ceil(found["total"] / PAGE_SIZE)
    assert body["results"] == links(found["items"][:PAGE_SIZE])
    assert body["prev"] is None
    assert body["next"] == "/search?q=Paper+LANTERNS&page=2"
    assert body["categories"] == CATEGORY_LINKS


async def test_discovery_search_pages_within_a_category(stand_ins: Upstreams, client_for: ClientFor) -> None:
    params = {"q": "the", "category": "family", "page": "3"}
    body = (await client_for(create_app(stand_ins)).get("/search", params=params)).json()
    found = catalogue.search("the", "family", 0, 600)
    assert body["results"] == links(found["items"][2 * PAGE_SIZE : 3 * PAGE_SIZE])
    assert (body["page"], body["total"], body["category"]) == (3, found["total"], "family")
    assert body["prev"] == "/search?q=the&category=family&page=2"
    assert body["next"] == "/search?q=the&category=family&page=4"


async def test_discovery_search_first_page_url_has_no_page(stand_ins: Upstreams, client_for: ClientFor) -> None:
    body = (await client_for(create_app(stand_ins)).get("/search?q=paris&page=2")).json()
    assert body["prev"] == "/search?q=paris"


async def test_discovery_search_by_category_alone_lists_it(stand_ins: Upstreams, client_for: ClientFor) -> None:
    body = (await client_for(create_app(stand_ins)).get("/search?category=comedy")).json()
    assert (body["query"], body["total"], body["pages"]) == ("", 120, 12)
    assert body["next"] == "/search?category=comedy&page=2"


async def test_discovery_search_pages_stop_at_the_last_one(stand_ins: Upstreams, client_for: ClientFor) -> None:
    total = catalogue.search("lanterns", None, 0, 600)["total"]
    last = math.ceil(total / PAGE_SIZE)
    client = client_for(create_app(stand_ins))
    at_last = (await client.get("/search", params={"q": "lanterns", "page": last})).json()
    assert at_last["next"] is None and len(at_last["results"]) == total - (last - 1) * PAGE_SIZE
    beyond = (await client.get("/search", params={"q": "lanterns", "page": MAX_PAGE})).json()
    assert beyond["results"] == [] and beyond["next"] is None
    assert beyond["prev"] == f"/search?q=lanterns&page={last}"


async def test_discovery_search_offers_no_page_past_the_bound(stand_ins: Upstreams, client_for: ClientFor) -> None:
    body = (await client_for(create_app(stand_ins)).get("/search", params={"q": "the", "page": MAX_PAGE})).json()
    assert body["total"] > MAX_PAGE * PAGE_SIZE / 2
    assert body["pages"] <= MAX_PAGE and body["next"] is None


async def test_discovery_search_with_nothing_asked_is_a_prompt_without_a_backend_call(
    remote: Upstreams, mocked: respx.MockRouter, client_for: ClientFor
) -> None:
    searched = mocked.get(host="events.test", path="/events/search").respond(500)
    for path in ("/search", "/search?q=%20%20&category=", "/search?page=2"):
        response = await client_for(create_app(remote)).get(path)
        assert response.status_code == 200, path
        body = response.json()
        assert (body["query"], body["total"], body["pages"], body["results"]) == ("", 0, 0, [])
        assert body["prev"] is None and body["next"] is None
        assert body["categories"] == CATEGORY_LINKS
    assert not searched.called


async def test_discovery_search_keeps_a_hostile_query_as_data(stand_ins: Upstreams, client_for: ClientFor) -> None:
    hostile = "<script>alert(1)</script>"
    body = (await client_for(create_app(stand_ins)).get("/search", params={"q": hostile})).json()
    assert body["query"] == hostile
    assert [event["id"] for event in body["results"]] == [catalogue.HOSTILE_EVENT_ID]
    assert body["results"][0]["name"] == catalogue.HOSTILE_NAME


async def test_discovery_search_accepts_100_characters(stand_ins: Upstreams, client_for: ClientFor) -> None:
    response = await client_for(create_app(stand_ins)).get("/search", params={"q": "ü" * 100})
    assert response.status_code == 200
    assert response.json()["total"] == 0


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"q": "x" * 101}, "q"),
        ({"q": "jazz", "category": "opera"}, "category"),
        ({"q": "jazz", "page": "0"}, "page"),
        ({"q": "jazz", "page": str(MAX_PAGE + 1)}, "page"),
        ({"q": "jazz", "page": "two"}, "page"),
        ({"q": "jazz", "page": ""}, "page"),
        ({"q": "jazz", "page": "9" * 400}, "page"),
    ],
)
async def test_discovery_search_refuses_bad_input_with_400(
    stand_ins: Upstreams, client_for: ClientFor, params: dict[str, str], field: str
) -> None:
    response = await client_for(create_app(stand_ins)).get("/search", params=params)
    assert response.status_code == 400
    assert response.headers["cache-control"] == "no-store"
    assert response.json()["error"].startswith(field)


async def test_discovery_category_gives_its_first_page(stand_ins: Upstreams, client_for: ClientFor) -> None:
    response = await client_for(create_app(stand_ins)).get("/categories/concerts")
    assert response.status_code == 200
    assert response.headers["cache-control"] == LISTING_CACHE
    body = response.json()
    assert set(body) == PAGE_KEYS | {"name"}
    assert (body["name"], body["category"], body["query"]) == ("Concerts", "concerts", "")
    assert (body["page"], body["pages"], body["total"]) == (1, 12, 120)
    assert body["results"] == links(catalogue.events(0, PAGE_SIZE, "concerts")["items"])
    assert body["prev"] is None
    assert body["next"] == "/c/concerts?page=2"


async def test_discovery_category_pages_through_to_the_last(stand_ins: Upstreams, client_for: ClientFor) -> None:
    client = client_for(create_app(stand_ins))
    second = (await client.get("/categories/theatre?page=2")).json()
    assert second["prev"] == "/c/theatre" and second["next"] == "/c/theatre?page=3"
    assert second["results"] == links(catalogue.events(PAGE_SIZE, PAGE_SIZE, "theatre")["items"])
    last = (await client.get("/categories/theatre?page=12")).json()
    assert last["prev"] == "/c/theatre?page=11" and last["next"] is None
    assert len(last["results"]) == PAGE_SIZE


@pytest.mark.parametrize("path", ["/categories/nope", "/categories/Concerts", "/categories/concerts?page=13"])
async def test_discovery_category_unknown_is_404(stand_ins: Upstreams, client_for: ClientFor, path: str) -> None:
    response = await client_for(create_app(stand_ins)).get(path)
    assert response.status_code == 404
    assert response.headers["cache-control"] == "no-store"
    assert set(response.json()) == {"error"}


@pytest.mark.parametrize("page", ["0", "x", "51", ""])
async def test_discovery_category_bad_page_is_400(stand_ins: Upstreams, client_for: ClientFor, page: str) -> None:
    response = await client_for(create_app(stand_ins)).get(f"/categories/concerts?page={page}")
    assert response.status_code == 400
    assert response.json()["error"].startswith("page")


async def test_discovery_categories_lists_links_and_sitemap_params(stand_ins: Upstreams, client_for: ClientFor) -> None:
    response = await client_for(create_app(stand_ins)).get("/categories")
    assert response.status_code == 200
    assert response.headers["cache-control"] == CATEGORIES_CACHE
    assert response.json() == {
        "categories": CATEGORY_LINKS,
        "pages": [{"params": {"category": slug}} for slug in catalogue.CATEGORIES],
    }


@pytest.mark.parametrize(
    ("path", "backend_path"),
    [("/search?q=lanterns", "/events/search"), ("/categories/concerts", "/events")],
)
async def test_discovery_listing_is_502_when_events_fail(
    remote: Upstreams,
    mocked: respx.MockRouter,
    client_for: ClientFor,
    break_route: Callable[[respx.Route], None],
    path: str,
    backend_path: str,
) -> None:
    break_route(mocked.get(host="events.test", path=backend_path))
    response = await client_for(create_app(remote)).get(path)
    assert response.status_code == 502
    assert response.headers["cache-control"] == "no-store"
    assert response.json() == {"error": "upstream events failed"}
