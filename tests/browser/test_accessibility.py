"""axe-core in real Chromium: no serious or critical violation on the home, event and account pages."""

from __future__ import annotations

from playwright.sync_api import Page, Route

from tests.browser.conftest import run_axe, sign_in


def test_home_page_has_no_serious_accessibility_violation(page: Page, site: str) -> None:
    page.goto(site + "/")
    assert run_axe(page) == []


def test_event_page_has_no_serious_accessibility_violation(page: Page, site: str) -> None:
    held: list[Route] = []
    page.route("**/_islands/**", lambda route: held.append(route))
    page.goto(site + "/e/1")
    while not held:
        page.wait_for_timeout(20)
    assert run_axe(page) == []  # the cart island's placeholder, before it arrives
    for route in held:
        route.continue_()
    page.wait_for_selector('.oberon-island[data-oberon-island-status="ready"]', state="attached")
    assert run_axe(page) == []
    page.select_option("select[data-tier-id]:not([disabled]) >> nth=0", "2")  # after the cart updated, too
    assert run_axe(page) == []


def test_account_page_has_no_serious_accessibility_violation(page: Page, site: str) -> None:
    sign_in(page, site)
    assert page.url == site + "/account"
    assert run_axe(page) == []


def test_sign_in_page_has_no_serious_accessibility_violation(page: Page, site: str) -> None:
    page.goto(site + "/auth/sign-in")
    assert run_axe(page) == []
