"""A registry swapped in while pages render: each page is rendered wholly by the registry (and assets) it started on."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import httpx
import jinja2
import pytest
import respx

from oberon.pipeline.assets import build_assets
from oberon.pipeline.page import PageRenderer
from oberon.pipeline.page_types import RequestContext
from oberon.pipeline.registry import Registry, load_registry

pytestmark = pytest.mark.anyio

BFF = "http://shop.test"
CONTEXT = RequestContext(request_id="req-swap")


def second_version(site: Path, environment: jinja2.Environment) -> Registry:
    """The test site with item-card 1.3.0 in place of 1.2.0: another template and another stylesheet."""
    folder = site / "components" / "item-card"
    manifest = folder / "component.toml"
    manifest.write_text(manifest.read_text().replace('version = "1.2.0"', 'version = "1.3.0"'))
    (folder / "template.html").write_text('<h1 class="item v2">{{ state.item.name }}</h1>')
    (folder / "assets" / "item.css").write_text(".item.v2 { color: teal; }")
    return load_registry([site / "components"], environment=environment)


@pytest.fixture
def v2_site(site: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "site-v2"
    shutil.copytree(site, copy)
    return copy


async def test_a_page_in_flight_keeps_the_registry_and_assets_it_started_with(
    renderer: PageRenderer, v2_site: Path, environment: jinja2.Environment
) -> None:
    answer = asyncio.Event()
    asked = asyncio.Event()

    async def slow_item(request: httpx.Request) -> httpx.Response:
        asked.set()
        await answer.wait()
        return httpx.Response(200, json={"name": "Lamp", "price": "€10"})

    v2 = second_version(v2_site, environment)
    v2_assets = build_assets(v2, renderer.assets.manifest.folder)  # the same build folder, as a renderer does
    with respx.mock(base_url=BFF, assert_all_called=False) as bff:
        bff.get("/items/1").mock(side_effect=slow_item)
        bff.get("/banner").respond(json={"text": "Sale"})
        old_css = renderer.assets.url(renderer.registry.get("item-card"), "assets/item.css")
        app = renderer.registry.get("shop-page")
        rendering = asyncio.create_task(renderer.render(app, params={"item_id": 1}, context=CONTEXT, stream=False))
        await asyncio.wait_for(asked.wait(), 5)
        renderer.swap(v2, v2_assets)  # mid-render: the page's data is still on its way
        answer.set()
        page = await rendering

        assert page.status_code == 200
        assert '<h1 class="item">Lamp</h1>' in page.html and "v2" not in page.html
        assert 'data-oberon-version="1.2.0"' in page.html
        assert old_css in page.html
        new_css = renderer.assets.url(v2.get("item-card"), "assets/item.css")
        assert new_css != old_css and new_css not in page.html

        after = await renderer.render(renderer.registry.get("shop-page"), params={"item_id": 1}, context=CONTEXT)
        assert '<h1 class="item v2">Lamp</h1>' in after.html and 'data-oberon-version="1.3.0"' in after.html
        assert new_css in after.html and old_css not in after.html
