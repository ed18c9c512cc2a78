"""Checkout BFF: the ticket tiers of an event with display prices, and the visitor's cart.

A signed-in visitor's cart is kept by the ticketing service, by the user the gateway names (`X-Oberon-User`); an
anonymous visitor's is always empty (there is nowhere to keep it yet).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from oberon import Upstreams, UpstreamStatusError
from oberon.bff import PRIVATE, USER_HEADER, USER_ID, budget, create_bff, fetch, view_model

CART_CURRENCY = "EUR"
# Availability changes quickly: a few seconds of sharing, but a stale copy beats no ticket selector.
TICKETS_CACHE = "public, max-age=5, stale-if-error=60"
CURRENCY_SYMBOLS: Mapping[str, str] = {"EUR": "€", "GBP": "£", "USD": "$"}
MAX_QUANTITY = 10
# The ticketing service's refusals of a cart change, passed on as they are (the visitor's input was wrong).
CART_REFUSALS = frozenset({400, 404, 409})
TIER_ID = re.compile(r"^[0-9]{1,6}-[a-z]{1,20}$")  # `5-standard`: the event, then the tier


def format_price(cents: int, currency: str) -> str:
    """`1250, "EUR"` gives `"€12.50"`; a currency without a known symbol keeps its code: `"12.50 SEK"`."""
    units, rest = divmod(abs(cents), 100)
    sign = "-" if cents < 0 else ""
    amount = f"{units:,}.{rest:02d}"
    symbol = CURRENCY_SYMBOLS.get(currency)
    return f"{sign}{symbol}{amount}" if symbol else f"{sign}{amount} {currency}"


def tier(raw: dict[str, Any]) -> dict[str, Any]:
    """One tier as `ticket-selector` shows it: the price formatted, sold out spelled out."""
    price_cents = int(raw["price_cents"])
    available = int(raw["available"])
    return {
        "id": str(raw["id"]),
        "name": str(raw["name"]),
        "price": format_price(price_cents, str(raw["currency"])),
        "price_cents": price_cents,
        "available": available,
        "sold_out": available <= 0,
    }


def empty_cart() -> dict[str, Any]:
    """The anonymous visitor's cart: always empty."""
    return {"items": [], "count": 0, "total": format_price(0, CART_CURRENCY)}


def cart_view(raw: dict[str, Any]) -> dict[str, Any]:
    """A user's cart as `cart-summary` shows it: its items, how many tickets, their total formatted."""
    items: list[dict[str, Any]] = [
        {
            "event_id": int(item["event_id"]),
            "tier_id": str(item["tier_id"]),
            "name": str(item["name"]),
            "price_cents": int(item["price_cents"]),
            "quantity": int(item["quantity"]),
        }
        for item in raw["items"]
    ]
    cents = sum(item["price_cents"] * item["quantity"] for item in items)
    count = sum(item["quantity"] for item in items)
    return {"items": items, "count": count, "total": format_price(cents, str(raw["currency"]))}


def create_app(upstreams: Upstreams) -> Starlette:
    """The checkout BFF over the `ticketing` backend."""

    async def tickets(request: Request) -> Response:
        event_id: int = request.path_params["event_id"]
        tiers = await fetch(
            upstreams,
            "ticketing",
            f"/events/{event_id}/tickets",
            request,
            view=lambda body: [tier(raw) for raw in body["tiers"]],
        )
        return view_model({"event_id": event_id, "tiers": tiers}, cache_control=TICKETS_CACHE)

    async def cart(request: Request) -> Response:
        user = request.headers.get(USER_HEADER, "")
        if not USER_ID.match(user):
            return view_model(empty_cart(), cache_control=PRIVATE)
        return view_model(
            await fetch(upstreams, "ticketing", f"/carts/{user}", request, view=cart_view), cache_control=PRIVATE
        )

    async def set_quantity(request: Request) -> Response:
        """`PUT /cart/items/{tier_id}` `{"quantity": n}`: how many tickets of a tier the visitor's cart holds."""
        user = request.headers.get(USER_HEADER, "")
        if not USER_ID.match(user):
            return view_model({"error": "sign in to keep a cart"}, 401)
        try:
            quantity = (await request.json())["quantity"]
        except (ValueError, KeyError, TypeError):
            quantity = None
        if type(quantity) is not int or not 0 <= quantity <= MAX_QUANTITY:
            return view_model({"error": f'the body is {{"quantity": 0 to {MAX_QUANTITY}}}'}, 400)
        tier_id = request.path_params["tier_id"]
        if not TIER_ID.match(tier_id):
            return view_model({"error": "no such ticket tier"}, 404)
        try:
            raw = await upstreams["ticketing"].request_json(
                "PUT", f"/carts/{user}/items/{tier_id}", json_body={"quantity": quantity}, timeout=budget(request)
            )
        except UpstreamStatusError as exc:
            if exc.status_code in CART_REFUSALS:
                return view_model({"error": f"the cart refused it ({exc.status_code})"}, exc.status_code)
            raise
        return view_model(cart_view(raw), cache_control=PRIVATE)

    return create_bff(
        [
            Route("/events/{event_id:int}/tickets", tickets, methods=["GET"]),
            Route("/cart", cart, methods=["GET"]),
            Route("/cart/items/{tier_id}", set_quantity, methods=["PUT"]),
        ],
        upstreams=upstreams,
        requires=["ticketing"],
    )
