"""The event page in real headless Chromium: assets from the cookieless origin, the client store, isolation, and
the visitor's cart as a client island (fetched after the page, in a box kept its size)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page, Route, expect

from gateway.auth import SESSION_COOKIE
from tests.browser.conftest import Server, Watcher, asset_base, demo_site_copy, sign_in

EVENT = "/e/1"
CART = '[data-oberon-component="cart-summary"]'
ISLAND = '.oberon-island[data-oberon-island-status="ready"]'
EMPTY_CART = {"items": [], "count": 0, "total": "€0.00"}
# Counts the page's layout shifts from its first paint on (a DevTools init script: the page's CSP does not apply).
LAYOUT_SHIFTS = """
window.__shifts = [];
new PerformanceObserver(function (list) {
  list.getEntries().forEach(function (entry) {
    if (!entry.hadRecentInput) { window.__shifts.push(entry.value); }
  });
}).observe({ type: "layout-shift", buffered: true });
"""


def server_state(base: str, path: str) -> dict[str, object]:
    html = httpx.get(base + path, timeout=10).text
    found = re.search(r'<script type="application/json" id="oberon-state">(.*?)</script>', html, re.S)
    assert found is not None
    return json.loads(found.group(1))  # type: ignore[no-any-return]


def test_event_page_loads_with_no_errors_and_cookieless_assets(
    page: Page, site: str, watch: Callable[[Page], Watcher]
) -> None:
    sign_in(page, site)  # the page requests now carry the session cookie
    watcher = watch(page)
    response = page.goto(site + EVENT)
    assert response is not None and response.status == 200
    page.wait_for_load_state("networkidle")
    watcher.assert_clean()

    document = next(request for request in watcher.requests if request.url == site + EVENT)
    assert f"{SESSION_COOKIE}=" in document.all_headers().get("cookie", "")
    assets = [request for request in watcher.requests if request.url.startswith(asset_base(site) + "/_oberon/assets/")]
    kinds = {request.resource_type for request in assets}
    assert {"stylesheet", "script"} <= kinds
    for request in assets:
        assert "cookie" not in request.all_headers(), request.url
        answer = request.response()
        assert answer is not None and answer.status == 200
        assert "set-cookie" not in answer.all_headers()
    booted = page.eval_on_selector_all("[data-oberon-client]", "roots => roots.map(r => r.dataset.oberonClient)")
    assert booted == ["ready", "ready"]


def test_event_page_store_starts_from_the_server_state_and_the_islands(page: Page, site: str) -> None:
    page.goto(site + EVENT)
    page.wait_for_selector(ISLAND, state="attached")
    in_page = page.evaluate("() => window.oberon.getState()")
    assert in_page == {**server_state(site, EVENT)["state"], "cart": EMPTY_CART}  # type: ignore[dict-item]


def test_selecting_a_ticket_quantity_updates_the_cart_summary(page: Page, site: str) -> None:
    page.goto(site + EVENT)
    cart = page.locator(CART)  # in the island, once it arrived and its client code is bound
    expect(cart).to_have_attribute("data-oberon-client", "ready")
    expect(cart.locator(".cart-summary__count")).to_have_text("0")
    tickets = server_state(site, EVENT)["state"]["tickets"]  # type: ignore[index]
    first, second = tickets["tiers"][0], tickets["tiers"][1]

    page.select_option(f"#ticket-qty-{first['id']}", "2")
    expect(cart.locator(".cart-summary__count")).to_have_text("2")
    expect(cart.locator(".cart-summary__status")).to_have_text("2 tickets in your cart.")
    page.select_option(f"#ticket-qty-{second['id']}", "1")
    expect(cart.locator(".cart-summary__count")).to_have_text("3")
    cents = 2 * first["price_cents"] + second["price_cents"]
    expect(cart.locator(".cart-summary__total")).to_have_text(f"€{cents // 100:,}.{cents % 100:02d}")

    state = page.evaluate("() => window.oberon.getState()")
    assert state["cart"]["count"] == 3
    assert [(item["tier_id"], item["quantity"]) for item in state["cart"]["items"]] == [
        (first["id"], 2),
        (second["id"], 1),
    ]
    # Everything but the cart is still exactly what the server rendered with.
    server = server_state(site, EVENT)["state"]
    assert {key: value for key, value in state.items() if key != "cart"} == {
        key: value
        for key, value in server.items()
        if key != "cart"  # type: ignore[union-attr]
    }

    page.select_option(f"#ticket-qty-{first['id']}", "0")
    expect(cart.locator(".cart-summary__count")).to_have_text("1")


def test_client_calls_reach_a_team_bff_through_the_gateway_route(page: Page, site: str) -> None:
    page.goto(site + EVENT)
    with page.expect_request(site + "/bff/checkout/cart") as sent:
        cart = page.evaluate("() => window.oberon.bff('checkout', '/cart')")
    assert cart == EMPTY_CART
    assert sent.value.headers["accept"] == "application/json"
    refused = page.evaluate("() => window.oberon.bff('../x', '/cart').then(() => 'sent', (error) => error.name)")
    assert refused == "TypeError"


BROKEN_COMPONENT = """
name = "broken-widget"
version = "1.0.0"
owner = "platform"
kind = "component"
description = "A widget whose client code throws, to show the others keep working."

[assets]
js = ["assets/throws-on-load.js", "assets/throws-in-init.js"]
"""


@pytest.fixture(scope="module")
def broken_site(server: Server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The demo site with a component whose scripts throw, slotted into the event page beside the others."""
    root = tmp_path_factory.mktemp("broken-site")
    site_file = demo_site_copy(root)
    folder = root / "components" / "broken-widget"
    (folder / "assets").mkdir(parents=True)
    (folder / "component.toml").write_text(BROKEN_COMPONENT)
    (folder / "template.html").write_text('<p class="broken-widget">Widget</p>')
    (folder / "assets" / "throws-on-load.js").write_text('throw new Error("broken-widget fails as it loads");\n')
    (folder / "assets" / "throws-in-init.js").write_text(
        'oberon.component("broken-widget", function () { throw new Error("broken-widget fails to start"); });\n'
    )
    app = root / "components" / "event-page" / "component.toml"
    app.write_text(
        app.read_text().replace(
            '[[slots.main]]\ncomponent = "ticket-selector"',
            '[[slots.main]]\ncomponent = "broken-widget"\nversion = "~=1.0"\n\n'
            '[[slots.main]]\ncomponent = "ticket-selector"',
            1,
        )
    )
    env = {"OBERON_SITE_FILE": str(site_file), "OBERON_BUILD_DIR": str(Path(root) / "build")}
    with server(env=env) as base:
        yield base


def test_a_component_whose_client_code_throws_does_not_stop_the_others(
    page: Page, broken_site: str, watch: Callable[[Page], Watcher]
) -> None:
    watcher = watch(page)
    page.goto(broken_site + EVENT)
    expect(page.locator('[data-oberon-component="broken-widget"]')).to_have_attribute("data-oberon-client", "failed")
    assert any("broken-widget fails as it loads" in error for error in watcher.page_errors)
    assert any("broken-widget fails to start" in error for error in watcher.console_errors)

    tier = page.locator("select[data-tier-id]:not([disabled])").first
    tier.select_option("1")
    expect(page.locator('[data-oberon-component="cart-summary"] .cart-summary__count')).to_have_text("1")
    assert watcher.failed == []


def test_the_cart_island_arrives_after_the_page_without_moving_anything(
    page: Page, site: str, watch: Callable[[Page], Watcher]
) -> None:
    page.set_viewport_size({"width": 390, "height": 2400})  # one column, the cart and what follows it in view
    page.add_init_script(LAYOUT_SHIFTS)
    held: list[Route] = []
    page.route("**/_islands/**", lambda route: held.append(route))
    watcher = watch(page)
    page.goto(site + EVENT)
    while not held:
        page.wait_for_timeout(20)
    page.wait_for_timeout(500)  # the page painted with the placeholder in the box: a slow island
    box = page.locator(".oberon-island")
    before = box.bounding_box()
    held[0].continue_()
    expect(page.locator(CART)).to_have_attribute("data-oberon-client", "ready")
    assert box.bounding_box() == before  # the placeholder had the island's size
    page.wait_for_load_state("networkidle")
    island = next(request for request in watcher.requests if "/_islands/cart-summary?" in request.url)
    assert island.url == site + "/_islands/cart-summary?version=%3D%3D1.0.0&event_id=1"  # same origin, after the page
    assert page.locator(".oberon-island template[data-oberon-island-fallback]").count() == 0  # the box holds the island
    page.wait_for_timeout(300)  # a shift is reported after the frame it happened in
    shifts = page.evaluate("() => window.__shifts")
    assert shifts == []  # CLS 0 (the fallback in the box instead of the placeholder: 0.0005, 6 px)
    watcher.assert_clean()


def test_a_signed_in_visitor_sees_their_own_cart_and_the_selector_still_reaches_it(page: Page, site: str) -> None:
    sign_in(page, site)
    tier = server_state(site, EVENT)["state"]["tickets"]["tiers"][1]  # type: ignore[index]
    saved = page.request.put(
        f"{site}/bff/checkout/cart/items/{tier['id']}", data={"quantity": 2}, headers={"Origin": site}
    )
    assert saved.status == 200, saved.text()
    page.goto(site + EVENT)
    cart = page.locator(CART)
    expect(cart).to_have_attribute("data-oberon-client", "ready")
    expect(cart.locator(".cart-summary__status")).to_have_text("2 tickets in your cart.")
    page.select_option(f"#ticket-qty-{tier['id']}", "3")  # ticket-selector publishes; the island's code subscribes
    expect(cart.locator(".cart-summary__count")).to_have_text("3")
    page.request.put(f"{site}/bff/checkout/cart/items/{tier['id']}", data={"quantity": 0}, headers={"Origin": site})


def test_an_action_published_before_the_island_arrives_is_replayed_over_it(page: Page, site: str) -> None:
    held: list[Route] = []
    page.route("**/_islands/**", lambda route: held.append(route))
    page.goto(site + EVENT)
    page.wait_for_function("() => window.oberon !== undefined")
    tier = server_state(site, EVENT)["state"]["tickets"]["tiers"][0]  # type: ignore[index]
    page.select_option(f"#ticket-qty-{tier['id']}", "2")  # while the cart is still on its way
    expect(page.locator(".oberon-island .cart-summary__status")).to_have_text("Loading your cart…")
    while not held:
        page.wait_for_timeout(20)
    held[0].continue_()
    expect(page.locator(CART + " .cart-summary__count")).to_have_text("2")


def test_a_cart_island_that_cannot_be_fetched_shows_its_fallback(
    page: Page, site: str, watch: Callable[[Page], Watcher]
) -> None:
    page.route("**/_islands/**", lambda route: route.fulfill(status=503, body="down"))
    watcher = watch(page)
    page.goto(site + EVENT)
    box = page.locator('.oberon-island[data-oberon-island-status="failed"]')
    expect(box).to_contain_text("Your cart can't be shown right now. Nothing in it is lost.")
    assert page.locator(CART).count() == 0
    assert any("island /_islands/cart-summary" in error for error in watcher.console_errors)
    expect(page.locator("select[data-tier-id]:not([disabled])").first).to_be_enabled()  # the page works on
