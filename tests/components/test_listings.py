"""The demo's search and category components from their fixtures: counts, page links, empty states, escaping."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from oberon.dev.fixtures import fixture_names, render_fixture
from oberon.pipeline.page import PageRenderer

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).resolve().parents[2]
LISTINGS = ("search-page", "search-results", "category-page", "category-results", "site-header")



async def render(demo_renderer: PageRenderer, name: str, fixture: str = "default") -> str:
    page = await render_fixture(demo_renderer, demo_renderer.registry.get(name), fixture=fixture)
    assert page.status_code == 200
    outcomes = re.findall(r'data-oberon-outcome="(\w+)"', page.html)
    assert outcomes and set(outcomes) == {"ok"}, f"{name} [{fixture}] fell back"
    return page.html


async def test_every_listing_fixture_renders(demo_renderer: PageRenderer) -> None:
    for name in LISTINGS:
        for fixture in fixture_names(demo_renderer.registry.get(name)):
            await render(demo_renderer, name, fixture)


async def test_search_results_count_the_results_and_link_the_neighbouring_pages(demo_renderer: PageRenderer) -> None:
    html = await render(demo_renderer, "search-results")
    assert "12 events for “paper lanterns”, page 2 of 2" in html
    assert '<a rel="prev" href="/search?q=paper+lanterns">Previous page</a>' in html
    assert 'rel="next"' not in html
    assert 'href="/e/482">The Paper Lanterns: Album Release Show</a>' in html
    assert 'value="paper lanterns"' in html


async def test_search_results_without_a_query_prompt_for_one(demo_renderer: PageRenderer) -> None:
    html = await render(demo_renderer, "search-results", "prompt")
    assert "Type an artist, show, venue or city to find events" in html
    assert 'role="status"' not in html and 'rel="next"' not in html
    assert '<a href="/c/family">Family</a>' in html


async def test_search_results_escape_a_hostile_query_that_finds_nothing(demo_renderer: PageRenderer) -> None:
    html = await render(demo_renderer, "search-results", "nothing-found")
    assert "<script>alert(1)" not in html
    assert "No events found for “&lt;script&gt;alert(1)&lt;/script&gt;” in Family." in html
    assert 'value="&lt;script&gt;alert(1)&lt;/script&gt;"' in html
    assert '<option value="family" selected>Family</option>' in html
    assert '<a href="/c/concerts">Concerts</a>' in html


async def test_category_results_name_the_category_and_link_both_neighbours(demo_renderer: PageRenderer) -> None:
    html = await render(demo_renderer, "category-results")
    assert '<h1 id="category-results-heading">Concerts</h1>' in html
    assert "120 events, page 2 of 12" in html
    assert '<a rel="prev" href="/c/concerts">Previous page</a>' in html
    assert '<a rel="next" href="/c/concerts?page=3">Next page</a>' in html


async def test_category_results_on_one_page_have_no_page_links(demo_renderer: PageRenderer) -> None:
    html = await render(demo_renderer, "category-results", "one-page")
    assert re.search(r"1 event\s*</p>", html)
    assert 'rel="prev"' not in html and 'rel="next"' not in html and "Pages of" not in html


async def test_category_page_is_titled_by_its_category(demo_renderer: PageRenderer) -> None:
    html = await render(demo_renderer, "category-page")
    assert "<title>Concerts tickets · Oberon Tickets</title>" in html
    assert '<meta name="description" content="Concerts tickets for 120 events across Europe.">' in html


async def test_site_header_searches_with_a_plain_form_and_links_every_category(demo_renderer: PageRenderer) -> None:
    html = await render(demo_renderer, "site-header")
    assert '<form class="site-header__search" role="search" action="/search" method="get"' in html
    assert '<label class="visually-hidden" for="site-header-q">Search events</label>' in html
    assert re.search(r'<input id="site-header-q" name="q" type="search" maxlength="100"', html)
    for slug in ("concerts", "theatre", "sports", "comedy", "family"):
        assert f'<a href="/c/{slug}">{slug.capitalize()}</a>' in html
