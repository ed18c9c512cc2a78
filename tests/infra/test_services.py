from __future__ import annotations

import json

import httpx
import pytest

from infra.local import catalogue
from infra.local.services import BACKENDS, EVENT_CACHE, LISTING_CACHE, TICKETS_CACHE, VENUE_CACHE, create_app
from oberon.dev.faults import Fault, FaultInjector


def client_for(name: str, *, fault: Fault | None = None) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=FaultInjector(create_app(name), fault=fault or Fault()))
    return httpx.AsyncClient(transport=transport, base_url=f"http://{name}")


def test_create_app_rejects_unknown_names() -> None:
    with pytest.raises(ValueError, match="unknown backend 'tickets'.*events, venues, ticketing, recommendations"):
        create_app("tickets")


@pytest.mark.anyio
@pytest.mark.parametrize("name", BACKENDS)
async def test_service_health_reports_ok(name: str) -> None:
    async with client_for(name) as client:
        response = await client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "service": name}
    assert response.headers["cache-control"] == "no-store"


@pytest.mark.anyio
@pytest.mark.parametrize("name", BACKENDS)
async def test_service_health_fails_when_down(name: str) -> None:
    async with client_for(name, fault=Fault(down=True)) as client:
        response = await client.get("/health")
    assert response.status_code == 503


@pytest.mark.anyio
async def test_service_down_is_revived_through_the_admin_endpoint() -> None:
    async with client_for("events", fault=Fault(down=True)) as client:
        assert (await client.get("/events/1")).status_code == 503
        assert (await client.put("/_faults", json={})).status_code == 200
        response = await client.get("/events/1")
    assert response.status_code == 200
    assert response.json() == catalogue.event(1)


@pytest.mark.anyio
async def test_service_unknown_path_is_a_json_404() -> None:
    async with client_for("venues") as client:
        response = await client.get("/nowhere")
    assert response.status_code == 404
    assert "error" in response.json()
    assert response.headers["cache-control"] == "no-store"


@pytest.mark.anyio
async def test_service_wrong_method_is_a_json_405() -> None:
    async with client_for("events") as client:
        response = await client.post("/events/1")
    assert response.status_code == 405
    assert "error" in response.json()
    assert "GET" in response.headers["allow"]


@pytest.mark.anyio
async def test_events_lists_the_first_page_by_default() -> None:
    async with client_for("events") as client:
        response = await client.get("/events")
    assert response.status_code == 200
    body = response.json()
    assert body["total"] == 600
    assert [item["id"] for item in body["items"]] == list(range(1, 21))
    assert response.headers["cache-control"] == "no-store"


@pytest.mark.anyio
async def test_events_honours_offset_limit_and_category() -> None:
    async with client_for("events") as client:
        response = await client.get("/events", params={"offset": 10, "limit": 5, "category": "comedy"})
    body = response.json()
    assert body["total"] == 120
    assert len(body["items"]) == 5
    assert {item["category"] for item in body["items"]} == {"comedy"}
    assert body["items"] == catalogue.events(10, 5, "comedy")["items"]


@pytest.mark.anyio
async def test_events_treats_an_empty_category_as_all() -> None:
    async with client_for("events") as client:
        response = await client.get("/events?category=")
    assert response.json()["total"] == 600


@pytest.mark.anyio
async def test_events_caps_the_limit_at_100() -> None:
    async with client_for("events") as client:
        response = await client.get("/events", params={"limit": 1000})
    assert len(response.json()["items"]) == 100


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"limit": "ten"}, "limit"),
        ({"limit": "-1"}, "limit"),
        ({"limit": ""}, "limit"),
        ({"offset": "1.5"}, "offset"),
        ({"offset": "9" * 5000}, "offset"),
        ({"category": "opera"}, "category"),
    ],
)
async def test_events_rejects_bad_query_values(query: dict[str, str], field: str) -> None:
    async with client_for("events") as client:
        response = await client.get("/events", params=query)
    assert response.status_code == 400
    assert field in response.json()["error"]
    assert response.headers["cache-control"] == "no-store"


@pytest.mark.anyio
async def test_events_search_finds_events_by_words_and_category() -> None:
    async with client_for("events") as client:
        response = await client.get("/events/search", params={"q": "Lanterns", "offset": 2, "limit": 3})
        filtered = await client.get("/events/search", params={"q": "the", "category": "family", "limit": 100})
    assert response.status_code == 200
    assert response.json() == catalogue.search("Lanterns", None, 2, 3)
    assert response.json()["total"] > 3
    assert response.headers["cache-control"] == LISTING_CACHE
    assert filtered.json() == catalogue.search("the", "family", 0, 100)


@pytest.mark.anyio
async def test_events_search_without_a_query_lists_every_event() -> None:
    async with client_for("events") as client:
        response = await client.get("/events/search", params={"category": ""})
    assert response.json() == catalogue.search("", None, 0, 20)
    assert response.json()["total"] == 600


@pytest.mark.anyio
async def test_events_search_serves_the_hostile_name_intact() -> None:
    async with client_for("events") as client:
        response = await client.get("/events/search", params={"q": "<script>alert(1)</script>"})
    assert [item["name"] for item in response.json()["items"]] == [catalogue.HOSTILE_NAME]


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"q": "x" * 101}, "q"),
        ({"category": "opera"}, "category"),
        ({"offset": "-1"}, "offset"),
        ({"limit": "many"}, "limit"),
    ],
)
async def test_events_search_rejects_bad_query_values(query: dict[str, str], field: str) -> None:
    async with client_for("events") as client:
        response = await client.get("/events/search", params=query)
    assert response.status_code == 400
    assert response.json()["error"].startswith(field)
    assert response.headers["cache-control"] == "no-store"


@pytest.mark.anyio
async def test_events_search_accepts_a_query_of_100_characters() -> None:
    async with client_for("events") as client:
        response = await client.get("/events/search", params={"q": "é" * 100})
    assert response.status_code == 200
    assert response.json() == {"items": [], "total": 0}


@pytest.mark.anyio
async def test_events_search_fails_as_injected() -> None:
    async with client_for("events", fault=Fault(down=True)) as client:
        down = await client.get("/events/search", params={"q": "lanterns"})
    async with client_for("events", fault=Fault(error_ratio=1.0)) as client:
        failing = await client.get("/events/search", params={"q": "lanterns"})
    assert down.status_code == 503
    assert failing.status_code >= 500


@pytest.mark.anyio
async def test_events_returns_one_event() -> None:
    async with client_for("events") as client:
        response = await client.get("/events/42")
    assert response.status_code == 200
    assert response.json() == catalogue.event(42)
    assert response.headers["cache-control"] == EVENT_CACHE


@pytest.mark.anyio
async def test_events_serves_the_hostile_name_intact() -> None:
    async with client_for("events") as client:
        response = await client.get("/events/13")
    assert response.json()["name"] == 'Les "Misérables" </script><script>alert(1)</script> \u2028 & Co'
    assert json.loads(response.content)["name"] == catalogue.HOSTILE_NAME


@pytest.mark.anyio
@pytest.mark.parametrize("path", ["/events/0", "/events/601"])
async def test_events_unknown_event_is_404(path: str) -> None:
    async with client_for("events") as client:
        response = await client.get(path)
    assert response.status_code == 404
    assert response.json() == {"error": "event not found"}
    assert response.headers["cache-control"] == "no-store"


@pytest.mark.anyio
async def test_venues_returns_one_venue() -> None:
    async with client_for("venues") as client:
        response = await client.get("/venues/40")
    assert response.status_code == 200
    assert response.json() == catalogue.venue(40)
    assert response.headers["cache-control"] == VENUE_CACHE


@pytest.mark.anyio
@pytest.mark.parametrize("path", ["/venues/0", "/venues/41"])
async def test_venues_unknown_venue_is_404(path: str) -> None:
    async with client_for("venues") as client:
        response = await client.get(path)
    assert response.status_code == 404
    assert response.json() == {"error": "venue not found"}


@pytest.mark.anyio
async def test_ticketing_returns_the_tiers_of_an_event() -> None:
    async with client_for("ticketing") as client:
        response = await client.get("/events/7/tickets")
    assert response.status_code == 200
    assert response.json() == {"event_id": 7, "tiers": catalogue.tickets(7)}
    assert response.headers["cache-control"] == TICKETS_CACHE


@pytest.mark.anyio
async def test_ticketing_unknown_event_is_404() -> None:
    async with client_for("ticketing") as client:
        response = await client.get("/events/601/tickets")
    assert response.status_code == 404
    assert response.json() == {"error": "event not found"}


@pytest.mark.anyio
async def test_recommendations_returns_related_event_summaries() -> None:
    async with client_for("recommendations") as client:
        response = await client.get("/events/13/related")
    assert response.status_code == 200
    body = response.json()
    assert body["event_id"] == 13
    assert len(body["items"]) == 4
    assert 13 not in [item["id"] for item in body["items"]]
    assert all(set(item) == {"id", "name", "starts_at", "category", "venue_id"} for item in body["items"])
    assert response.headers["cache-control"] == LISTING_CACHE


@pytest.mark.anyio
async def test_recommendations_related_honours_the_limit() -> None:
    async with client_for("recommendations") as client:
        response = await client.get("/events/13/related", params={"limit": 2})
    assert len(response.json()["items"]) == 2


@pytest.mark.anyio
async def test_recommendations_related_of_unknown_event_is_404() -> None:
    async with client_for("recommendations") as client:
        response = await client.get("/events/999/related")
    assert response.status_code == 404
    assert response.json() == {"error": "event not found"}
    assert response.headers["cache-control"] == "no-store"


@pytest.mark.anyio
@pytest.mark.parametrize("path", ["/events/13/related?limit=x", "/featured?limit=-3"])
async def test_recommendations_rejects_bad_limits(path: str) -> None:
    async with client_for("recommendations") as client:
        response = await client.get(path)
    assert response.status_code == 400
    assert "limit" in response.json()["error"]


@pytest.mark.anyio
async def test_recommendations_featured_returns_12_by_default() -> None:
    async with client_for("recommendations") as client:
        response = await client.get("/featured")
    assert response.status_code == 200
    assert response.json() == {"items": catalogue.featured(12)}
    assert response.headers["cache-control"] == LISTING_CACHE


@pytest.mark.anyio
async def test_recommendations_featured_honours_the_limit() -> None:
    async with client_for("recommendations") as client:
        response = await client.get("/featured", params={"limit": 3})
    assert len(response.json()["items"]) == 3
