"""The ticketing stand-in's carts: one per user, kept in the process's memory."""

from __future__ import annotations

import httpx
import pytest

from infra.local import catalogue
from infra.local.services import create_app

pytestmark = pytest.mark.anyio


def ticketing() -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app("ticketing")), base_url="http://ticketing")


async def test_carts_keep_each_users_tiers_apart() -> None:
    tier = catalogue.tickets(7)[0]  # type: ignore[index]
    async with ticketing() as client:
        put = await client.put(f"/carts/alice/items/{tier['id']}", json={"quantity": 3})
        alice = await client.get("/carts/alice")
        bob = await client.get("/carts/bob")
    assert put.status_code == 200 and put.json() == alice.json()
    assert alice.headers["cache-control"] == "no-store"
    assert alice.json()["items"] == [
        {"event_id": 7, "tier_id": tier["id"], "name": tier["name"], "price_cents": tier["price_cents"], "quantity": 3}
    ]
    assert bob.json() == {"user": "bob", "currency": "EUR", "items": []}


@pytest.mark.parametrize(
    ("path", "body", "status"),
    [
        ("/carts/alice/items/7-standard", b'{"quantity": -1}', 400),
        ("/carts/alice/items/7-standard", b'{"quantity": true}', 400),
        ("/carts/alice/items/7-standard", b"not json", 400),
        ("/carts/al%20ice/items/7-standard", b'{"quantity": 1}', 400),
        ("/carts/alice/items/7-nosuch", b'{"quantity": 1}', 404),
        ("/carts/alice/items/5-standard", b'{"quantity": 1}', 409),
    ],
)
async def test_carts_refuse_a_bad_change(path: str, body: bytes, status: int) -> None:
    async with ticketing() as client:
        response = await client.put(path, content=body)
    assert response.status_code == status
    assert response.json()["error"]
