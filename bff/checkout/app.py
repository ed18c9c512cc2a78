"""Checkout BFF: the ticket tiers of an event with display prices, and the visitor's cart."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from oberon import Upstreams
from oberon.bff import PRIVATE, create_bff, fetch, view_model

CART_CURRENCY = "EUR"
# Availability changes quickly: a few seconds of sharing, but a stale copy beats no ticket selector.
TICKETS_CACHE = "public, max-age=5, stale-if-error=60"
CURRENCY_SYMBOLS: Mapping[str, str] = {"EUR": "€", "GBP": "£", "USD": "$"}


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
    """The anonymous visitor's cart: sessions do not exist yet, so it is always empty."""
    return {"items": [], "count": 0, "total": format_price(0, CART_CURRENCY)}


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
        return view_model(empty_cart(), cache_control=PRIVATE)

    return create_bff(
        [
            Route("/events/{event_id:int}/tickets", tickets, methods=["GET"]),
            Route("/cart", cart, methods=["GET"]),
        ],
        upstreams=upstreams,
        requires=["ticketing"],
    )
