"""The preview gallery over the demo registry: every component, its fixtures, props form and fallback."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import jinja2
import pytest
from starlette.applications import Starlette

from oberon.client.upstream import Upstreams
from oberon.dev.gallery import gallery_routes
from oberon.dev.tools import DevelopmentTools
from oberon.pipeline.assets import Assets, build_assets
from oberon.pipeline.cache_policy import CachePolicy
from oberon.pipeline.page import PageRenderer
from oberon.pipeline.registry import Registry, load_registry
from oberon.pipeline.rendering import create_environment
from oberon.web.renderer import RendererApp

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).resolve().parents[3]
DEMO = load_registry([ROOT / "components"], environment=create_environment())


def outcome_of(html: str, name: str) -> list[str]:
    return re.findall(rf'data-oberon-component="{name}" data-oberon-version="[^"]+" data-oberon-outcome="(\w+)"', html)


@pytest.fixture
def demo(environment: jinja2.Environment) -> Registry:
    return load_registry([ROOT / "components"], environment=environment)


@pytest.fixture
async def client(demo: Registry, environment: jinja2.Environment, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    renderer = PageRenderer(
        registry=demo,
        upstreams=Upstreams({}),
        environment=environment,
        policy=CachePolicy(),
        assets=Assets(build_assets(demo, tmp_path / "assets")),
    )
    app = Starlette(routes=gallery_routes(renderer))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://renderer") as client:
        yield client


async def test_gallery_index_lists_every_component_with_its_owner_and_version(client: httpx.AsyncClient) -> None:
    response = await client.get("/_oberon/gallery")
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["x-robots-tag"] == "noindex"
    for component in DEMO:
        manifest = component.manifest
        link = f'/_oberon/gallery/{manifest.name}?version=%3D%3D{manifest.version}">{manifest.name}</a>'
        assert link in response.text
        assert f'id="owner-{manifest.owner}">Team {manifest.owner}</h2>' in response.text
    assert "two-tickets" in response.text  # cart-summary's second fixture


@pytest.mark.parametrize("name", DEMO.names())
async def test_gallery_renders_every_demo_component_and_its_fallback(client: httpx.AsyncClient, name: str) -> None:
    response = await client.get(f"/_oberon/gallery/{name}")
    assert response.status_code == 200, response.text
    html = response.text
    live, _, below = html.partition('aria-label="Fallback render"')
    assert outcome_of(live, name) == ["ok"], f"{name} did not render from its fixture"
    assert outcome_of(below, name) == ["fallback"], f"{name} did not show its fallback"
    component = DEMO.get(name)
    assert f"team {component.manifest.owner}" in html
    assert '<link rel="stylesheet" href="/_oberon/gallery/gallery.css">' in html
    if component.manifest.kind.value == "component":
        assert html.count('data-oberon-outcome="ok"') == 1, "a component renders alone"


async def test_gallery_shows_props_as_a_form_from_the_schema(client: httpx.AsyncClient) -> None:
    html = (await client.get("/_oberon/gallery/event-hero")).text
    assert '<input type="checkbox" id="prop.show_summary" name="prop.show_summary" value="true" checked>' in html
    assert "event-hero__summary" in html
    unchecked = (await client.get("/_oberon/gallery/event-hero?prop.show_summary=false")).text
    assert 'name="prop.show_summary" value="true">' in unchecked
    live = unchecked.partition('aria-label="Fallback render"')[0]
    assert "event-hero__summary" not in live
    number = (await client.get("/_oberon/gallery/ticket-selector?prop.max_quantity=2")).text
    assert 'type="number" step="1" id="prop.max_quantity" name="prop.max_quantity" value="2"' in number
    assert '<option value="3">' not in number.partition('aria-label="Fallback render"')[0]


async def test_gallery_reports_a_prop_that_does_not_fit_and_renders_anyway(client: httpx.AsyncClient) -> None:
    response = await client.get("/_oberon/gallery/ticket-selector?prop.max_quantity=many")
    assert response.status_code == 200
    assert "Prop max_quantity: invalid literal" in response.text


async def test_gallery_switches_fixtures(client: httpx.AsyncClient) -> None:
    html = (await client.get("/_oberon/gallery/ticket-selector?fixture=sold-out")).text
    assert "Live render: fixture “sold-out”" in html
    assert "Sold out" in html
    assert "Add to cart" not in html


async def test_gallery_shows_published_and_consumed_actions_with_the_other_side(client: httpx.AsyncClient) -> None:
    selector = (await client.get("/_oberon/gallery/ticket-selector")).text
    assert "<code>cart/quantity-selected</code></td><td>publishes</td>" in selector
    assert "cart-summary@1.0.0" in selector
    summary = (await client.get("/_oberon/gallery/cart-summary")).text
    assert "<code>cart/quantity-selected</code></td><td>consumes</td>" in summary
    assert "ticket-selector@1.0.0" in summary


async def test_gallery_shows_where_each_state_key_comes_from(client: httpx.AsyncClient) -> None:
    html = (await client.get("/_oberon/gallery/ticket-selector")).text
    assert "its own data: BFF <code>checkout</code> <code>GET /events/{event_id}/tickets</code>" in html
    assert "subscribed; loaded from BFF <code>events</code> <code>GET /events/{event_id}</code>" in html


async def test_gallery_loads_the_components_assets_and_state(client: httpx.AsyncClient) -> None:
    html = (await client.get("/_oberon/gallery/ticket-selector")).text
    assert re.search(r'<script src="/_oberon/assets/ticket-selector\.[0-9a-f]{16}\.js"', html)
    assert '<script type="application/json" id="oberon-state">' in html


async def test_gallery_answers_404_for_an_unknown_component(client: httpx.AsyncClient) -> None:
    response = await client.get("/_oberon/gallery/nothing")
    assert response.status_code == 404
    assert "no component matches" in response.text


@pytest.mark.parametrize("dev", [True, False])
async def test_gallery_and_debug_view_are_served_in_development_mode_only(
    demo: Registry, environment: jinja2.Environment, tmp_path: Path, dev: bool
) -> None:
    renderer = PageRenderer(
        registry=demo,
        upstreams=Upstreams({}),
        environment=environment,
        policy=CachePolicy(),
        assets=Assets(build_assets(demo, tmp_path / "assets")),
    )
    app = RendererApp(renderer=renderer, dev=DevelopmentTools() if dev else None).starlette()
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://renderer") as client:
        gallery = await client.get("/_oberon/gallery")
        stylesheet = await client.get("/_oberon/debug.css")
        preview = await client.get("/_components/site-footer?oberon-debug=1")
    assert gallery.status_code == (200 if dev else 404)
    assert stylesheet.status_code == (200 if dev else 404)
    assert ("data-oberon-debug=" in preview.text) is dev
    assert ("no-store" in preview.headers["cache-control"]) is dev
