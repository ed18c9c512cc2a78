"""axe-core in real Chromium: no serious or critical violation on the home, event and account pages."""

from __future__ import annotations

from playwright.sync_api import Page

from tests.browser.conftest import run_axe, sign_in


def test_home_page_has_no_serious_accessibility_violation(page: Page, site: str) -> None:
    page.goto(site + "/")
    assert run_axe(page) == []


def test_event_page_has_no_serious_accessibility_violation(page: Page, site: str) -> None:
    page.goto(site + "/e/1")
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
