"""The stand-in ticketing service's carts: each user's tickets chosen, kept in memory for the process's life.

`GET /carts/{user}` answers the user's cart; `PUT /carts/{user}/items/{tier_id}` with `{"quantity": n}` sets how many
tickets of a tier it holds (0 takes the tier out). Who the user is, is the caller's business (the checkout BFF
passes on the gateway's `X-Oberon-User`): this service trusts the path, as a backend behind the BFFs does.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from infra.local import catalogue

NO_STORE = {"Cache-Control": "no-store"}
MAX_QUANTITY = 10
MAX_BODY_BYTES = 1024
USER = re.compile(r"^[A-Za-z0-9._@-]{1,64}$")
TIER = re.compile(r"^([0-9]{1,6})-[a-z]{1,20}$")


@dataclass
class Carts:
    """Each user's cart: tier id → item, in the order the tiers were first chosen."""

    by_user: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)

    def routes(self) -> list[Route]:
        return [
            Route("/carts/{user}", self.get, methods=["GET"]),
            Route("/carts/{user}/items/{tier_id}", self.put, methods=["PUT"]),
        ]

    def view(self, user: str) -> dict[str, Any]:
        return {"user": user, "currency": catalogue.CURRENCY, "items": list(self.by_user.get(user, {}).values())}

    async def get(self, request: Request) -> Response:
        user = request.path_params["user"]
        if not USER.match(user):
            return _error("bad user id", 400)
        return JSONResponse(self.view(user), headers=NO_STORE)

    async def put(self, request: Request) -> Response:
        user, tier_id = request.path_params["user"], request.path_params["tier_id"]
        if not USER.match(user):
            return _error("bad user id", 400)
        quantity = _quantity(await request.body())
        if quantity is None:
            return _error(f'the body is {{"quantity": 0 to {MAX_QUANTITY}}}', 400)
        match = TIER.match(tier_id)
        tiers = catalogue.tickets(int(match.group(1))) if match else None
        tier = next((tier for tier in tiers or () if tier["id"] == tier_id), None)
        if tier is None:
            return _error("tier not found", 404)
        if quantity > tier["available"]:
            return _error(f"only {tier['available']} left", 409)
        cart = self.by_user.setdefault(user, {})
        if quantity == 0:
            cart.pop(tier_id, None)
        else:
            cart[tier_id] = {
                "event_id": int(tier_id.split("-")[0]),
                "tier_id": tier_id,
                "name": tier["name"],
                "price_cents": tier["price_cents"],
                "quantity": quantity,
            }
        return JSONResponse(self.view(user), headers=NO_STORE)


def _quantity(body: bytes) -> int | None:
    if len(body) > MAX_BODY_BYTES:
        return None
    try:
        value = json.loads(body).get("quantity")
    except (ValueError, AttributeError):
        return None
    if type(value) is not int or not 0 <= value <= MAX_QUANTITY:
        return None
    return value


def _error(message: str, status_code: int) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status_code, headers=NO_STORE)
