"""The debug view: every boundary labelled with name, version, outcome and timings, and a summary table."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from oberon.dev.debug import annotate, rows, wants_debug
from oberon.dev.fixtures import render_fixture
from oberon.pipeline.page import PageRenderer

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).resolve().parents[3]



@pytest.mark.parametrize(("value", "wanted"), [("1", True), ("true", True), ("0", False), ("", False)])
def test_debug_is_asked_for_with_a_query_parameter(value: str, wanted: bool) -> None:
    assert wants_debug({"oberon-debug": value}) is wanted


async def test_debug_labels_every_boundary_with_name_version_outcome_and_timings(demo_renderer: PageRenderer) -> None:
    page = await render_fixture(demo_renderer, demo_renderer.registry.get("event-page"))
    html = annotate(page, demo_renderer.registry)
    found = re.findall(r'data-oberon-component="([^"]+)" data-oberon-version="[^"]+" data-oberon-debug="([^"]+)"', html)
    labels = dict(found)
    assert set(labels) == {fragment.component.name for fragment in page.fragments}
    assert re.fullmatch(
        r"ticket-selector@1\.0\.0 · ok · data tickets [0-9.]+ ms · data event [0-9.]+ ms · render [0-9.]+ ms",
        labels["ticket-selector"],
    ), labels["ticket-selector"]
    assert re.fullmatch(r"site-header@1\.0\.0 · ok · render [0-9.]+ ms", labels["site-header"])
    assert '<link rel="stylesheet" href="/_oberon/debug.css">\n</head>' in html
    assert '<aside class="oberon-debug" aria-label="Oberon debug view">' in html
    assert html.index('<aside class="oberon-debug"') < html.index("</body>")


async def test_debug_shows_why_a_component_fell_back(demo_renderer: PageRenderer) -> None:
    page = await render_fixture(demo_renderer, demo_renderer.registry.get("venue-info"), fallback=True)
    (row,) = rows(page, demo_renderer.registry)
    assert row.result == "fallback"
    assert "answered 500" in row.reason
    html = annotate(page, demo_renderer.registry)
    assert 'data-oberon-debug="venue-info@1.0.0 · fallback (events: GET /events/fixture/venue answered 500)' in html
    assert '<tr class="oberon-debug__fallback"><td>venue-info@1.0.0</td>' in html
