"""Islands: private components of a public page are carved out, so the shell is shared; a CDN in front fills them in
(ESI), else the browser does (client islands)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx
import jinja2
import pytest
import respx
from starlette.applications import Starlette

from oberon.client.upstream import Upstreams
from oberon.ops.degradation import DegradationController
from oberon.pipeline.assets import Assets
from oberon.pipeline.cache_policy import CachePolicy
from oberon.pipeline.page import PageRenderer
from oberon.pipeline.page_types import RequestContext
from oberon.pipeline.registry import Registry, load_registry
from oberon.web.renderer import RendererApp

pytestmark = pytest.mark.anyio

BFF = "http://shop.test"


@pytest.fixture
def private_banner(site: Path, environment: jinja2.Environment) -> Registry:
    """The test site with its hero-banner made private (as a cart or a greeting by name would be)."""
    manifest = site / "components/hero-banner/component.toml"
    manifest.write_text('cache = "private"\n' + manifest.read_text())
    return load_registry([site / "components"], environment=environment)


@pytest.fixture(autouse=True)
def bff() -> respx.MockRouter:
    with respx.mock(base_url=BFF, assert_all_called=False) as router:
        router.route(host="renderer").pass_through()
        router.get("/items/1", name="item").respond(json={"name": "Lamp", "price": "€10"})
        router.get("/banner", name="banner").respond(json={"text": "Sale"})
        yield router


def renderer_for(
    registry: Registry, upstreams: Upstreams, environment, assets: Assets, *, esi: bool, islands: bool = True
) -> PageRenderer:
    return PageRenderer(
        registry=registry,
        upstreams=upstreams,
        environment=environment,
        policy=CachePolicy(),
        assets=assets,
        esi=esi,
        islands=islands,
    )


def island_box(html: str) -> re.Match[str] | None:
    return re.search(r'<div class="oberon-island" data-oberon-island-src="([^"]+)">(.*?)</div>', html, re.S)


async def test_islands_keep_a_page_with_a_private_component_public(
    private_banner: Registry, upstreams: Upstreams, environment, assets: Assets, bff: respx.MockRouter
) -> None:
    renderer = renderer_for(private_banner, upstreams, environment, assets, esi=True)
    page = await renderer.render(private_banner.get("shop-page"), params={"item_id": 1}, context=RequestContext("r"))
    assert page.esi
    assert page.cache_control.startswith("public,")
    include = re.search(r'<esi:include src="([^"]+)"/>', page.html)
    assert include is not None
    assert include.group(1) == "/_islands/hero-banner?version=%3D%3D1.0.0&amp;item_id=1"
    assert "Sale" not in page.html  # the island's content is not in the shared shell
    assert bff["banner"].call_count == 0  # nor is its data loaded for the shell
    assert "component:hero-banner" in page.surrogate_keys


async def test_without_esi_a_private_component_is_a_client_island_and_the_page_stays_public(
    private_banner: Registry, upstreams: Upstreams, environment, assets: Assets, bff: respx.MockRouter
) -> None:
    renderer = renderer_for(private_banner, upstreams, environment, assets, esi=False)
    page = await renderer.render(private_banner.get("shop-page"), params={"item_id": 1}, context=RequestContext("r"))
    assert not page.esi  # no Surrogate-Control: nothing for a CDN to process
    assert page.cache_control.startswith("public,")
    assert '<meta name="robots" content="index, follow">' in page.html
    assert "<esi:include" not in page.html
    box = island_box(page.html)
    assert box is not None
    assert box.group(1) == "/_islands/hero-banner?version=%3D%3D1.0.0&amp;item_id=1"  # the URL ESI would include
    # No placeholder: the box holds the component's fallback (the platform's), reserving its place.
    assert "This part of the page is unavailable right now." in box.group(2)
    assert 'data-oberon-component="hero-banner"' not in page.html  # no boundary of it in the shared shell
    assert "Sale" not in page.html
    assert bff["banner"].call_count == 0
    assert "component:hero-banner" in page.surrogate_keys


async def test_a_client_island_shows_its_placeholder_with_its_fallback_in_reserve(
    private_banner: Registry, site: Path, environment: jinja2.Environment, upstreams: Upstreams, assets: Assets
) -> None:
    folder = site / "components/hero-banner"
    (folder / "placeholder.html").write_text(
        '<div class="banner" aria-busy="true">…</div><noscript><a href="{{ island_url }}">See the offer</a></noscript>'
    )
    (folder / "fallback.html").write_text('<div class="banner">No offer today</div>')
    registry = load_registry([site / "components"], environment=environment)
    renderer = renderer_for(registry, upstreams, environment, assets, esi=False)
    page = await renderer.render(registry.get("shop-page"), params={"item_id": 1}, context=RequestContext("r"))
    url = "/_islands/hero-banner?version=%3D%3D1.0.0&amp;item_id=1"
    assert (
        f'<div class="oberon-island" data-oberon-island-src="{url}">'
        f'<div class="banner" aria-busy="true">…</div><noscript><a href="{url}">See the offer</a></noscript>'
        '<template data-oberon-island-fallback><div class="banner">No offer today</div></template></div>'
    ) in page.html


async def test_without_islands_a_private_component_makes_the_page_private(
    private_banner: Registry, upstreams: Upstreams, environment, assets: Assets
) -> None:
    renderer = renderer_for(private_banner, upstreams, environment, assets, esi=False, islands=False)
    page = await renderer.render(private_banner.get("shop-page"), params={"item_id": 1}, context=RequestContext("r"))
    assert not page.esi
    assert page.cache_control == "private, no-store"
    assert "Sale" in page.html
    assert island_box(page.html) is None


async def island_of(registry: Registry, upstreams: Upstreams, environment, assets: Assets) -> httpx.Response:
    """The hero-banner island as ada gets it."""
    renderer = renderer_for(registry, upstreams, environment, assets, esi=True)
    app = RendererApp(renderer=renderer).starlette()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://renderer") as client:
        return await client.get(
            "/_islands/hero-banner", params={"version": "==1.0.0", "item_id": "1"}, headers={"X-Oberon-User": "ada"}
        )


def island_state(response: httpx.Response) -> object:
    state = re.search(r'<script type="application/json" data-oberon-island="hero-banner">(.*)</script>', response.text)
    assert state is not None
    return json.loads(state.group(1))


async def test_an_island_ships_only_the_keys_some_script_reads(
    private_banner: Registry, upstreams: Upstreams, environment, assets: Assets
) -> None:
    response = await island_of(private_banner, upstreams, environment, assets)
    assert "Sale" in response.text  # rendered with its banner, which no component's script reads
    assert island_state(response) == {"state": {}, "failed": []}


async def test_island_endpoint_renders_the_component_for_the_visitor_never_shared(
    private_banner: Registry, upstreams: Upstreams, environment, assets: Assets, bff: respx.MockRouter, site: Path
) -> None:
    manifest = site / "components/item-card/component.toml"  # item-card's script reads the banner too
    manifest.write_text(manifest.read_text().replace("timeout_ms", 'subscribes = ["banner"]\ntimeout_ms', 1))
    registry = load_registry([site / "components"], environment=environment)
    response = await island_of(registry, upstreams, environment, assets)
    assert response.status_code == 200
    assert response.headers["cache-control"] == "private, no-store"
    assert response.headers["x-robots-tag"] == "noindex"
    assert response.text.startswith('<div class="oberon-boundary" data-oberon-component="hero-banner"')
    assert "<html" not in response.text
    assert island_state(response) == {"state": {"banner": {"text": "Sale"}}, "failed": []}
    assert bff["banner"].calls.last.request.headers["x-oberon-user"] == "ada"


async def test_app_sends_surrogate_keys_and_the_esi_marker(
    private_banner: Registry, upstreams: Upstreams, environment, assets: Assets
) -> None:
    renderer = renderer_for(private_banner, upstreams, environment, assets, esi=True)
    app = RendererApp(renderer=renderer).starlette()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://renderer") as client:
        response = await client.get("/items/1")
    assert response.headers["surrogate-control"] == 'content="ESI/1.0"'
    keys = response.headers["surrogate-key"].split()
    assert keys[0] == "app:shop-page" and "item-1" in keys and "component:item-card" in keys
    assert response.headers["vary"] == "Accept-Language"


async def test_app_serves_the_degradation_switch_and_pages_follow_it(
    registry: Registry, upstreams: Upstreams, environment, assets: Assets
) -> None:
    controller = DegradationController()
    renderer = PageRenderer(
        registry=registry,
        upstreams=upstreams,
        environment=environment,
        policy=CachePolicy(degraded_max_age=120),
        assets=assets,
        mode=lambda: controller.mode,
    )
    renderer_app = RendererApp(renderer=renderer, degradation=controller, admin_token="t0ken")
    admin = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=Starlette(routes=renderer_app.admin_routes())), base_url="http://admin"
    )
    transport = httpx.ASGITransport(app=renderer_app.starlette())
    async with admin, httpx.AsyncClient(transport=transport, base_url="http://renderer") as client:
        before = await client.get("/items/1")
        switched = await admin.put(
            "/_oberon/degradation", json={"mode": "degraded"}, headers={"Authorization": "Bearer t0ken"}
        )
        after = await client.get("/items/1")
        status = (await admin.get("/_oberon/degradation")).json()
    assert (before.headers["x-oberon-mode"], "s-maxage=30," in before.headers["cache-control"]) == ("normal", True)
    assert switched.status_code == 200
    assert (after.headers["x-oberon-mode"], "s-maxage=120," in after.headers["cache-control"]) == ("degraded", True)
    assert status["mode"] == "degraded"
