"""The checkout BFF over the real stand-in backends, and over failing ones (respx)."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest
import respx
from starlette.types import ASGIApp

from bff.checkout import create_app
from bff.checkout.app import TICKETS_CACHE, format_price
from infra.local import catalogue
from oberon import Upstreams

pytestmark = pytest.mark.anyio

ClientFor = Callable[[ASGIApp], httpx.AsyncClient]
TIER_KEYS = {"id", "name", "price", "price_cents", "available", "sold_out"}


@pytest.mark.parametrize(
    ("cents", "currency", "expected"),
    [
        (1250, "EUR", "€12.50"),
        (0, "EUR", "€0.00"),
        (5, "EUR", "€0.05"),
        (123456, "EUR", "€1,234.56"),
        (999, "GBP", "£9.99"),
        (1250, "SEK", "12.50 SEK"),
        (-250, "EUR", "-€2.50"),
    ],
)
def test_checkout_format_price(cents: int, currency: str, expected: str) -> None:
    assert format_price(cents, currency) == expected


async def test_checkout_tickets_lists_tiers_with_display_prices(stand_ins: Upstreams, client_for: ClientFor) -> None:
    # Event 5 has four tiers, the first of them sold out.
    response = await client_for(create_app(stand_ins)).get("/events/5/tickets")
    assert response.status_code == 200
    assert response.headers["cache-control"] == TICKETS_CACHE
    body = response.json()
    assert set(body) == {"event_id", "tiers"}
    assert body["event_id"] == 5
    tiers = catalogue.tickets(5)
    assert tiers is not None
    assert body["tiers"] == [
        {
            "id": tier["id"],
            "name": tier["name"],
            "price": format_price(tier["price_cents"], "EUR"),
            "price_cents": tier["price_cents"],
            "available": tier["available"],
            "sold_out": tier["available"] == 0,
        }
        for tier in tiers
    ]
    assert all(set(tier) == TIER_KEYS for tier in body["tiers"])
    assert [tier["sold_out"] for tier in body["tiers"]] == [True, False, False, False]
    assert body["tiers"][0]["price"] == "€26.00"


@pytest.mark.parametrize("path", ["/events/0/tickets", "/events/601/tickets", "/events/abc/tickets"])
async def test_checkout_tickets_of_an_unknown_event_is_404(
    stand_ins: Upstreams, client_for: ClientFor, path: str
) -> None:
    response = await client_for(create_app(stand_ins)).get(path)
    assert response.status_code == 404
    assert response.headers["cache-control"] == "no-store"
    assert set(response.json()) == {"error"}


async def test_checkout_tickets_is_502_when_ticketing_fails(
    remote: Upstreams,
    mocked: respx.MockRouter,
    client_for: ClientFor,
    break_route: Callable[[respx.Route], None],
) -> None:
    break_route(mocked.get("http://ticketing.test/events/5/tickets"))
    response = await client_for(create_app(remote)).get("/events/5/tickets")
    assert response.status_code == 502
    assert response.headers["cache-control"] == "no-store"
    assert response.json() == {"error": "upstream ticketing failed"}


async def test_checkout_cart_is_the_anonymous_empty_cart(stand_ins: Upstreams, client_for: ClientFor) -> None:
    response = await client_for(create_app(stand_ins)).get("/cart")
    assert response.status_code == 200
    assert response.headers["cache-control"] == "private, no-store"
    assert response.json() == {"items": [], "count": 0, "total": "€0.00"}


async def test_checkout_anonymous_cart_needs_no_backend(
    remote: Upstreams, mocked: respx.MockRouter, client_for: ClientFor
) -> None:
    response = await client_for(create_app(remote)).get("/cart")
    assert response.status_code == 200
    assert not mocked.calls


async def test_checkout_keeps_each_signed_in_visitors_own_cart(stand_ins: Upstreams, client_for: ClientFor) -> None:
    client = client_for(create_app(stand_ins))
    alice, bob = {"X-Oberon-User": "alice"}, {"X-Oberon-User": "bob"}
    tier = catalogue.tickets(5)[1]  # type: ignore[index]  # event 5's first tier is sold out
    put = await client.put(f"/cart/items/{tier['id']}", json={"quantity": 2}, headers=alice)
    assert put.status_code == 200 and put.headers["cache-control"] == "private, no-store"
    total = format_price(2 * tier["price_cents"], "EUR")
    item = {"event_id": 5, "tier_id": tier["id"], "name": tier["name"], "price_cents": tier["price_cents"]}
    item["quantity"] = 2
    assert put.json() == {"items": [item], "count": 2, "total": total}
    mine = await client.get("/cart", headers=alice)
    assert mine.json() == put.json() and mine.headers["cache-control"] == "private, no-store"
    assert (await client.get("/cart", headers=bob)).json() == {"items": [], "count": 0, "total": "€0.00"}
    assert (await client.get("/cart")).json()["count"] == 0
    emptied = await client.put(f"/cart/items/{tier['id']}", json={"quantity": 0}, headers=alice)
    assert emptied.json()["count"] == 0


@pytest.mark.parametrize(
    ("path", "body", "headers", "status"),
    [
        ("/cart/items/5-reserved", {"quantity": 1}, {}, 401),
        ("/cart/items/5-reserved", {"quantity": 11}, {"X-Oberon-User": "alice"}, 400),
        ("/cart/items/5-reserved", {"quantity": "2"}, {"X-Oberon-User": "alice"}, 400),
        ("/cart/items/5-reserved", ["quantity"], {"X-Oberon-User": "alice"}, 400),
        ("/cart/items/5-standard", {"quantity": 1}, {"X-Oberon-User": "alice"}, 409),  # sold out
        ("/cart/items/5-balcony", {"quantity": 1}, {"X-Oberon-User": "alice"}, 404),
        ("/cart/items/5-reserved%2F..", {"quantity": 1}, {"X-Oberon-User": "alice"}, 404),
        ("/cart/items/601-standard", {"quantity": 1}, {"X-Oberon-User": "alice"}, 404),
    ],
)
async def test_checkout_refuses_a_bad_cart_change_with_a_4xx(
    stand_ins: Upstreams, client_for: ClientFor, path: str, body: object, headers: dict[str, str], status: int
) -> None:
    response = await client_for(create_app(stand_ins)).put(path, json=body, headers=headers)
    assert response.status_code == status, response.text
    assert "error" in response.json()
