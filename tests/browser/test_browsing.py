"""Browsing and searching the demo in real Chromium: from the header to a category or to search results."""

from __future__ import annotations

import re
from collections.abc import Callable

from playwright.sync_api import Dialog, Page

from tests.browser.conftest import Watcher, run_axe

HOSTILE = "<script>alert(1)</script>"


def test_open_a_category_from_the_header(page: Page, site: str, watch: Callable[[Page], Watcher]) -> None:
    watcher = watch(page)
    page.goto(site + "/")
    page.get_by_role("navigation", name="Categories").get_by_role("link", name="Theatre").click()
    page.wait_for_url(site + "/c/theatre")
    assert page.get_by_role("heading", level=1).inner_text() == "Theatre"
    assert page.locator(".category-results__item").count() == 10
    assert page.locator('a[rel="next"]').get_attribute("href") == "/c/theatre?page=2"
    assert run_axe(page) == []
    watcher.assert_clean()


def test_search_page_prompts_without_a_query(page: Page, site: str, watch: Callable[[Page], Watcher]) -> None:
    watcher = watch(page)
    page.goto(site + "/search")
    assert "Type an artist, show, venue or city" in page.locator(".search-results__status").inner_text()
    assert page.get_by_role("search", name="Site search").is_visible()
    assert page.get_by_role("search", name="Refine search").is_visible()
    assert run_axe(page) == []
    watcher.assert_clean()


def test_search_from_the_header_and_page_through_results(
    page: Page, site: str, watch: Callable[[Page], Watcher]
) -> None:
    watcher = watch(page)
    page.goto(site + "/e/1")
    page.get_by_label("Search events").fill("lanterns")
    page.get_by_label("Search events").press("Enter")
    page.wait_for_url(site + "/search?q=lanterns")
    status = page.locator(".search-results__status").inner_text()
    assert re.match(r"\d+ events for “lanterns”, page 1 of \d+", status), status
    assert page.locator(".search-results__item").count() == 10
    assert run_axe(page) == []
    page.locator('a[rel="next"]').click()
    page.wait_for_url(site + "/search?q=lanterns&page=2")
    assert ", page 2 of " in page.locator(".search-results__status").inner_text()
    page.locator('a[rel="prev"]').click()
    page.wait_for_url(site + "/search?q=lanterns")
    watcher.assert_clean()


def test_a_hostile_search_is_shown_as_text(page: Page, site: str, watch: Callable[[Page], Watcher]) -> None:
    watcher = watch(page)
    dialogs: list[str] = []

    def record(dialog: Dialog) -> None:
        dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", record)
    page.goto(site + "/")
    page.get_by_label("Search events").fill(HOSTILE)
    page.get_by_label("Search events").press("Enter")
    page.wait_for_url(re.compile(r".*/search\?q=.*"))
    assert page.locator(".search-results__status").inner_text() == f"1 event for “{HOSTILE}”"
    assert page.get_by_label("Words").input_value() == HOSTILE
    assert dialogs == []
    assert run_axe(page) == []
    watcher.assert_clean()


def test_a_search_without_results_offers_the_categories(
    page: Page, site: str, watch: Callable[[Page], Watcher]
) -> None:
    watcher = watch(page)
    page.goto(site + "/search?q=zzzz")
    assert "No events found for “zzzz”." in page.locator(".search-results__status").inner_text()
    page.get_by_role("navigation", name="Browse by category").get_by_role("link", name="Comedy").click()
    page.wait_for_url(site + "/c/comedy")
    assert run_axe(page) == []
    watcher.assert_clean()
