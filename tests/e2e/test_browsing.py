"""Search and category pages of the demo as users and crawlers see them: `oberon up` as a real process."""

from __future__ import annotations

import re
from collections.abc import Iterator
from html import unescape

import httpx
import pytest

from infra.local import catalogue
from tests.e2e.conftest import Running, start_server


@pytest.fixture(scope="module")
def site() -> Iterator[httpx.Client]:
    running: Running
    with start_server() as running, httpx.Client(base_url=running.base_url, timeout=10) as client:
        yield client


def robots(html: str) -> str:
    found = re.search(r'<meta name="robots" content="([^"]+)">', html)
    assert found is not None
    return found.group(1)


def canonical(html: str) -> str:
    found = re.search(r'<link rel="canonical" href="([^"]+)">', html)
    assert found is not None
    return unescape(found.group(1))


def page_link(html: str, rel: str) -> str | None:
    found = re.search(rf'<a rel="{rel}" href="([^"]+)">', html)
    return unescape(found.group(1)) if found else None


def event_ids(html: str) -> list[int]:
    return [int(found) for found in re.findall(r'class="(?:category|search)-results__link" href="/e/(\d+)"', html)]


def test_category_page_is_an_indexable_first_page_with_a_next_link(site: httpx.Client) -> None:
    response = site.get("/c/concerts")
    assert response.status_code == 200
    html = response.text
    assert 'data-oberon-component="category-results"' in html
    assert "<title>Concerts tickets · Oberon Tickets</title>" in html
    assert robots(html) == "index, follow"
    assert canonical(html).endswith("/c/concerts")
    assert response.headers["cache-control"].startswith("public, max-age=0, s-maxage=")
    assert event_ids(html) == [item["id"] for item in catalogue.events(0, 10, "concerts")["items"]]
    assert "120 events, page 1 of 12" in html
    assert page_link(html, "next") == "/c/concerts?page=2"
    assert page_link(html, "prev") is None


def test_category_pages_are_listed_in_the_sitemap_and_search_is_not(site: httpx.Client) -> None:
    response = site.get("/sitemap.xml")
    assert response.status_code == 200
    locations = re.findall(r"<loc>([^<]+)</loc>", response.text)
    for slug in catalogue.CATEGORIES:
        assert any(location.endswith(f"/c/{slug}") for location in locations), slug
    assert not any("/search" in location for location in locations)
    assert any(location.endswith("/e/600") for location in locations)  # the events' listing is still there


@pytest.mark.parametrize("path", ["/c/nope", "/c/Concerts", "/c/%3Cscript%3E"])
def test_unknown_category_is_a_rendered_404_not_a_500(site: httpx.Client, path: str) -> None:
    response = site.get(path)
    assert response.status_code == 404
    assert "Page not found" in response.text
    assert "Traceback" not in response.text
    assert "<script>" not in response.text


def test_every_page_header_searches_with_a_get_form_and_links_the_categories(site: httpx.Client) -> None:
    for path in ("/", "/e/1", "/c/family", "/search"):
        html = site.get(path).text
        assert '<form class="site-header__search" role="search" action="/search" method="get"' in html, path
        assert 'for="site-header-q">Search events</label>' in html, path
        assert all(f'href="/c/{slug}"' in html for slug in catalogue.CATEGORIES), path


def test_search_page_without_a_query_prompts_and_is_noindex(site: httpx.Client) -> None:
    response = site.get("/search")
    assert response.status_code == 200
    assert "Type an artist, show, venue or city to find events" in response.text
    assert robots(response.text) == "noindex"
    assert 'href="/c/theatre">Theatre</a>' in response.text


def test_search_result_pages_are_noindex(site: httpx.Client) -> None:
    response = site.get("/search", params={"q": "lanterns"})
    assert response.status_code == 200
    assert robots(response.text) == "noindex"


def test_search_finds_events_with_a_count_and_a_next_page(site: httpx.Client) -> None:
    found = catalogue.search("lanterns", None, 0, 10)
    html = site.get("/search", params={"q": "lanterns"}).text
    assert f"{found['total']} events for “lanterns”, page 1 of" in html
    assert event_ids(html) == [item["id"] for item in found["items"]]
    assert page_link(html, "next") == "/search?q=lanterns&page=2"
    assert page_link(html, "prev") is None


def test_search_pages_through_results_to_the_last(site: httpx.Client) -> None:
    total = catalogue.search("lanterns", None, 0, 600)["total"]
    html = site.get("/search?q=lanterns&page=2").text
    assert event_ids(html) == [item["id"] for item in catalogue.search("lanterns", None, 10, 10)["items"]]
    assert page_link(html, "prev") == "/search?q=lanterns"
    last = (total + 9) // 10
    assert page_link(site.get(f"/search?q=lanterns&page={last}").text, "next") is None


def test_search_shows_a_hostile_query_as_text(site: httpx.Client) -> None:
    response = site.get("/search", params={"q": "<script>alert(1)</script>"})
    assert response.status_code == 200
    html = response.text
    assert "<script>alert(1)" not in html
    assert "1 event for “&lt;script&gt;alert(1)&lt;/script&gt;”" in html
    assert 'value="&lt;script&gt;alert(1)&lt;/script&gt;"' in html
    assert event_ids(html) == [catalogue.HOSTILE_EVENT_ID]


def test_search_without_results_says_so_and_offers_the_categories(site: httpx.Client) -> None:
    html = site.get("/search", params={"q": "zzzz", "category": "comedy"}).text
    assert "No events found for “zzzz” in Comedy." in html
    assert 'href="/c/family">Family</a>' in html
    assert event_ids(html) == []


def test_category_second_page_links_both_ways_and_is_its_own_canonical(site: httpx.Client) -> None:
    html = site.get("/c/concerts?page=2").text
    assert event_ids(html) == [item["id"] for item in catalogue.events(10, 10, "concerts")["items"]]
    assert page_link(html, "prev") == "/c/concerts"
    assert page_link(html, "next") == "/c/concerts?page=3"
    assert canonical(html).endswith("/c/concerts?page=2")


def test_category_page_past_the_last_is_a_404(site: httpx.Client) -> None:
    response = site.get("/c/concerts?page=13")
    assert response.status_code == 404
    assert "Traceback" not in response.text
