"""The renderer's HTTP layer, in process, over a fake BFF (respx)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import jinja2
import pytest
import respx
from starlette.applications import Starlette

from oberon.ops.degradation import DegradationController
from oberon.pipeline.assets import Assets
from oberon.pipeline.page import PageRenderer
from oberon.pipeline.registry import load_registry
from oberon.web.asset_server import AssetServer
from oberon.web.renderer import RendererApp

pytestmark = pytest.mark.anyio

BFF = "http://shop.test"


@pytest.fixture
async def client(renderer: PageRenderer, assets: Assets) -> AsyncIterator[httpx.AsyncClient]:
    app = RendererApp(renderer=renderer, asset_server=AssetServer(folder=assets.manifest.folder)).starlette()
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://renderer") as client:
        yield client


@pytest.fixture
async def admin(renderer: PageRenderer) -> AsyncIterator[httpx.AsyncClient]:
    """What the renderer adds to its process's admin listener."""
    app = Starlette(routes=RendererApp(renderer=renderer, degradation=DegradationController()).admin_routes())
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://admin") as client:
        yield client


@pytest.fixture(autouse=True)
def bff() -> respx.MockRouter:
    with respx.mock(base_url=BFF, assert_all_called=False) as router:
        router.route(host="renderer").pass_through()
        router.get("/items/1", name="item").respond(json={"name": "Lamp", "price": "€10"})
        router.get("/items/404").respond(404, json={"error": "no such item"})
        router.get("/banner", name="banner").respond(json={"text": "Sale"})
        yield router


async def test_app_renders_a_page_with_its_headers(client: httpx.AsyncClient) -> None:
    response = await client.get("/items/1")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert response.headers["cache-control"].startswith("public, max-age=0, s-maxage=30")
    assert response.headers["x-oberon-mode"] == "normal"
    assert len(response.headers["x-oberon-request-id"]) == 32
    assert "Lamp" in response.text


async def test_app_keeps_a_well_formed_request_id_and_replaces_a_hostile_one(client: httpx.AsyncClient) -> None:
    kept = await client.get("/items/1", headers={"X-Oberon-Request-Id": "abc-123"})
    assert kept.headers["x-oberon-request-id"] == "abc-123"
    replaced = await client.get("/items/1", headers={"X-Oberon-Request-Id": "<script>alert(1)</script>"})
    assert "<" not in replaced.headers["x-oberon-request-id"]


@pytest.mark.parametrize("path", ["/nowhere", "/items/lamp", "/items/1/more", "/items/%2e%2e/etc/passwd"])
async def test_app_answers_unknown_paths_and_wrong_param_types_with_a_404_page(
    client: httpx.AsyncClient, path: str
) -> None:
    response = await client.get(path)
    assert response.status_code == 404
    assert "<h1>Page not found</h1>" in response.text
    assert "noindex" in response.text


async def test_app_answers_404_when_a_critical_components_data_is_not_found(
    client: httpx.AsyncClient, site: Path, environment: jinja2.Environment, renderer: PageRenderer
) -> None:
    manifest = site / "components/item-card/component.toml"
    manifest.write_text("critical = true\n" + manifest.read_text())
    renderer.registry = load_registry([site / "components"], environment=environment)
    response = await client.get("/items/404")
    assert response.status_code == 404


async def test_app_answers_503_no_store_when_a_critical_component_fails(
    client: httpx.AsyncClient, bff: respx.MockRouter, site: Path, environment: jinja2.Environment, renderer
) -> None:
    manifest = site / "components/item-card/component.toml"
    manifest.write_text("critical = true\n" + manifest.read_text())
    renderer.registry = load_registry([site / "components"], environment=environment)
    bff["item"].respond(500)
    response = await client.get("/items/1")
    assert response.status_code == 503
    assert response.headers["cache-control"] == "no-store"
    assert "Temporarily unavailable" in response.text


async def test_app_hides_unexpected_errors_behind_a_500_page(client: httpx.AsyncClient, renderer) -> None:
    async def explode(*args: object, **kwargs: object) -> None:
        raise RuntimeError("secret internals")

    renderer.render = explode
    response = await client.get("/items/1")
    assert response.status_code == 500
    assert "secret internals" not in response.text
    assert "Traceback" not in response.text
    assert response.headers["cache-control"] == "no-store"


async def test_app_lists_the_registry_on_the_admin_listener(admin: httpx.AsyncClient) -> None:
    response = await admin.get("/_oberon/registry")
    components = {entry["name"]: entry for entry in response.json()}
    assert components["item-card"]["version"] == "1.2.0"
    assert components["item-card"]["owner"] == "shop"
    assert components["item-price"]["subscribes"] == ["item"]
    assert components["shop-page"]["routes"] == ["/items/{item_id:int}"]


async def test_app_health_reports_itself_and_its_upstreams_on_the_admin_listener(admin: httpx.AsyncClient) -> None:
    body = (await admin.get("/_oberon/health")).json()
    assert body == {"status": "ok", "service": "renderer", "components": 5, "upstreams": ["shop"]}
    assert (await admin.get("/_oberon/degradation")).json()["mode"] == "normal"


async def test_public_app_says_only_ok_and_serves_no_registry_or_degradation(renderer: PageRenderer) -> None:
    app = RendererApp(renderer=renderer, degradation=DegradationController(), admin_token="t" * 32).starlette()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://renderer") as client:
        assert (await client.get("/_oberon/health")).json() == {"status": "ok"}
        assert (await client.get("/_oberon/registry")).status_code == 404
        assert (await client.get("/_oberon/degradation")).status_code == 404
        refused = await client.put("/_oberon/degradation", json={"mode": "degraded"}, headers={"Authorization": "x"})
        assert refused.status_code in (404, 405)


async def test_app_previews_one_component_with_props_from_the_query(client: httpx.AsyncClient) -> None:
    response = await client.get("/_components/greeting", params={"who": "<em>team</em>", "excited": "yes"})
    assert response.status_code == 200
    assert '<p class="greeting">Hello &lt;em&gt;team&lt;/em&gt;!</p>' in response.text
    assert response.text.count("data-oberon-component=") == 1


async def test_app_previews_a_component_with_data_from_route_params(client: httpx.AsyncClient) -> None:
    response = await client.get("/_components/item-card", params={"item_id": "1", "version": "~=1.0"})
    assert '<h1 class="item">Lamp</h1>' in response.text


@pytest.mark.parametrize(
    ("query", "status"),
    [({"excited": "maybe"}, 400), ({"version": "not a specifier"}, 400), ({"version": ">=9"}, 404)],
)
async def test_app_preview_refuses_bad_input(client: httpx.AsyncClient, query: dict[str, str], status: int) -> None:
    response = await client.get("/_components/greeting", params=query)
    assert response.status_code == status


async def test_app_preview_of_an_unknown_component_is_404(client: httpx.AsyncClient) -> None:
    assert (await client.get("/_components/nope")).status_code == 404


async def test_app_serves_the_asset_build_on_its_own_origin(client: httpx.AsyncClient, assets: Assets) -> None:
    css = assets.manifest.assets["item-card@1.2.0/assets/item.css"].file
    ok = await client.get(f"/_oberon/assets/{css}")
    assert ok.status_code == 200
    assert ok.text == ".item{}"
    assert ok.headers["content-type"].startswith("text/css")
    assert ok.headers["cache-control"] == "public, max-age=31536000, immutable"
    for path in [
        "/_oberon/assets/item-card/1.2.0/assets/item.css",
        "/_oberon/assets/manifest.json",
        "/_oberon/assets/../components/item-card/component.toml",
        "/_oberon/assets/%2e%2e/template.html",
    ]:
        assert (await client.get(path)).status_code == 404, path


async def test_app_serves_robots_txt_and_a_sitemap(client: httpx.AsyncClient) -> None:
    robots = await client.get("/robots.txt")
    assert robots.status_code == 200
    assert "Disallow: /account" in robots.text and "Sitemap: " in robots.text
    sitemap = await client.get("/sitemap.xml")
    assert sitemap.status_code == 200
    assert sitemap.headers["content-type"].startswith("application/xml")
    assert "<urlset" in sitemap.text


async def test_app_sends_a_preload_link_header_for_the_page_stylesheets(
    client: httpx.AsyncClient, assets: Assets
) -> None:
    response = await client.get("/items/1")
    css = assets.manifest.assets["item-card@1.2.0/assets/item.css"].file
    assert f"</_oberon/assets/{css}>; rel=preload; as=style" in response.headers["link"]
