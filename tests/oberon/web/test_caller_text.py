"""No caller-supplied text in a response a shared cache may keep: the request id stays out of public bodies."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
import respx

from oberon.pipeline.assets import Assets
from oberon.pipeline.page import PageRenderer
from oberon.web.asset_server import AssetServer
from oberon.web.renderer import RendererApp

pytestmark = pytest.mark.anyio

CHOSEN = {"X-Oberon-Request-Id": "call-support-on-555-0100"}  # well formed, so it is kept for tracing


@pytest.fixture
async def client(renderer: PageRenderer, assets: Assets) -> AsyncIterator[httpx.AsyncClient]:
    app = RendererApp(renderer=renderer, asset_server=AssetServer(folder=assets.manifest.folder)).starlette()
    with respx.mock(base_url="http://shop.test", assert_all_called=False) as router:
        router.route(host="renderer").pass_through()
        router.get("/items/1").respond(json={"name": "Lamp", "price": "€10"})
        router.get("/banner").respond(json={"text": "Sale"})
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://renderer") as client:
            yield client


async def test_public_404_page_does_not_print_the_callers_request_id(client: httpx.AsyncClient) -> None:
    response = await client.get("/nowhere", headers=CHOSEN)
    assert response.status_code == 404
    assert response.headers["cache-control"].startswith("public")
    assert "call-support" not in response.text
    assert "Request id" not in response.text


async def test_public_page_does_not_print_the_callers_request_id(client: httpx.AsyncClient) -> None:
    response = await client.get("/items/1", headers=CHOSEN)
    assert response.headers["cache-control"].startswith("public") and "Lamp" in response.text
    assert "call-support" not in response.text


async def test_no_store_error_page_may_show_its_validated_request_id(
    client: httpx.AsyncClient, renderer: PageRenderer
) -> None:
    async def explode(*args: object, **kwargs: object) -> None:
        raise RuntimeError("boom")

    renderer.render = explode  # type: ignore[method-assign]
    response = await client.get("/items/1", headers=CHOSEN)
    assert response.status_code == 500 and response.headers["cache-control"] == "no-store"
    assert "call-support-on-555-0100" in response.text
