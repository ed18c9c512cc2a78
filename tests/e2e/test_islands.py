"""The event page's cart as an island, over real processes in every topology: embedded, split, and behind Varnish.

The page holding the cart is public and indexable everywhere; the cart is filled per visitor (by the browser from
`/_islands/…` without a CDN, by Varnish's ESI with one): a signed-in visitor sees their own, nobody else ever does.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterator

import httpx
import pytest

from infra.local import catalogue
from tests.e2e.conftest import Running, start_server

CART_ISLAND = "/_islands/cart-summary?version=%3D%3D1.0.0&event_id={event_id}"
EMPTY = "Your cart is empty."


@pytest.fixture(scope="module", params=["embedded", "split", "cdn"])
def topology(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="module")
def running(topology: str) -> Iterator[Running]:
    args = {"embedded": (), "split": ("--split",), "cdn": ("--cdn",)}[topology]
    with start_server(*args) as running:
        yield running


@pytest.fixture(scope="module")
def site(running: Running) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=running.base_url, timeout=10) as client:
        yield client


def sign_in(site: httpx.Client, user: str) -> dict[str, str]:
    """A session for `user` through the gateway's sign-in form, as the Cookie header to send."""
    origin = str(site.base_url).rstrip("/")
    form = {"username": user, "password": f"{user}-tickets", "next": "/"}
    response = httpx.post(f"{origin}/auth/sign-in", data=form, headers={"Origin": origin})
    assert response.status_code == 303, response.text
    return {"Cookie": f"oberon_session={response.cookies['oberon_session']}"}


def put_in_cart(site: httpx.Client, session: dict[str, str], tier: str, quantity: int) -> None:
    origin = str(site.base_url).rstrip("/")
    response = site.put(
        f"/bff/checkout/cart/items/{tier}", json={"quantity": quantity}, headers={**session, "Origin": origin}
    )
    assert response.status_code == 200, response.text
    assert response.json()["count"] >= quantity


def cart_status(text: str) -> str:
    found = re.search(r'<p class="cart-summary__status" role="status">\s*(.*?)\s*</p>', text, re.S)
    assert found is not None, text
    return html.unescape(found.group(1))


def island_state(text: str) -> dict[str, object]:
    found = re.search(r'<script type="application/json" data-oberon-island="cart-summary">(.*?)</script>', text, re.S)
    assert found is not None, text
    return json.loads(found.group(1))  # type: ignore[no-any-return]


def test_the_event_page_is_public_and_indexable(site: httpx.Client, topology: str) -> None:
    first = site.get("/e/21")
    assert first.status_code == 200
    assert first.headers["cache-control"].startswith("public, max-age=0, s-maxage=")
    assert '<meta name="robots" content="index, follow">' in first.text
    assert "<esi:include" not in first.text
    again = site.get("/e/21")
    if topology == "cdn":
        # Varnish filled the island in (ESI) and shares the shell.
        assert again.headers["x-cache"] == "HIT"
        assert cart_status(again.text) == EMPTY
        assert 'data-oberon-island-src="' not in again.text
    else:
        # The browser fills the island in; the shell is the page cache's to keep.
        box = f'<div class="oberon-island" data-oberon-island-src="{CART_ISLAND.format(event_id=21)}"'
        assert box.replace("&", "&amp;") in first.text
        assert 'data-oberon-component="cart-summary"' not in first.text
        assert again.headers["x-oberon-page-cache"] == "hit"


def test_the_cart_island_is_each_visitors_own(site: httpx.Client, topology: str) -> None:
    alice, bob = sign_in(site, "alice"), sign_in(site, "bob")
    tiers = [tier for tier in catalogue.tickets(22) or () if tier["available"] >= 3]
    put_in_cart(site, alice, tiers[0]["id"], 3)
    put_in_cart(site, bob, tiers[1]["id"], 1)
    island = CART_ISLAND.format(event_id=22)

    seen = {who: site.get(island, headers=headers) for who, headers in (("alice", alice), ("bob", bob), ("none", {}))}
    for response in seen.values():
        assert response.status_code == 200
        assert response.headers["cache-control"] == "private, no-store"
    alice_cart = island_state(seen["alice"].text)["state"]["cart"]  # type: ignore[index]
    assert cart_status(seen["alice"].text) == "3 tickets in your cart."
    assert [(item["tier_id"], item["quantity"]) for item in alice_cart["items"]] == [(tiers[0]["id"], 3)]
    bob_cart = island_state(seen["bob"].text)["state"]["cart"]  # type: ignore[index]
    assert [item["tier_id"] for item in bob_cart["items"]] == [tiers[1]["id"]]
    assert cart_status(seen["none"].text) == EMPTY
    assert island_state(seen["none"].text)["state"]["cart"]["items"] == []  # type: ignore[index]
    # Asked again anonymously, after both: never a copy of someone's cart (the CDN keeps none either).
    assert cart_status(site.get(island).text) == EMPTY

    if topology == "cdn":
        # Through Varnish the page itself carries each visitor's own cart (ESI), the shared shell around it.
        assert cart_status(site.get("/e/22", headers=alice).text) == "3 tickets in your cart."
        assert cart_status(site.get("/e/22", headers=bob).text) == "1 ticket in your cart."
        assert cart_status(site.get("/e/22").text) == EMPTY
    else:
        # Without a CDN the page holds nobody's cart, only the box the browser fills from the island.
        for headers in (alice, bob, {}):
            page = site.get("/e/22", headers=headers)
            assert "in your cart." not in page.text and 'data-oberon-island-src="/_islands/cart-summary?' in page.text
