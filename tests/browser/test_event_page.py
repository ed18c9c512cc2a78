"""The event page in real headless Chromium: assets from the cookieless origin, the client store, isolation."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page, expect

from gateway.auth import SESSION_COOKIE
from tests.browser.conftest import Server, Watcher, asset_base, demo_site_copy, sign_in

EVENT = "/e/1"


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


def test_event_page_store_starts_from_the_server_state(page: Page, site: str) -> None:
    page.goto(site + EVENT)
    page.wait_for_function("() => window.oberon !== undefined")
    in_page = page.evaluate("() => window.oberon.getState()")
    assert in_page == server_state(site, EVENT)["state"]


def test_selecting_a_ticket_quantity_updates_the_cart_summary(page: Page, site: str) -> None:
    page.goto(site + EVENT)
    cart = page.locator('[data-oberon-component="cart-summary"]')
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
    assert cart == server_state(site, EVENT)["state"]["cart"]  # type: ignore[index]
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
