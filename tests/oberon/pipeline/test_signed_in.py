"""The renderer behind the gateway: it learns the user from the trusted headers, passes it to BFFs, never shares."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import jinja2
import pytest
import respx

from oberon.client.upstream import Upstreams
from oberon.pipeline.assets import Assets
from oberon.pipeline.cache_policy import CachePolicy
from oberon.pipeline.page import PageRenderer
from oberon.pipeline.registry import Registry
from oberon.web.renderer import RendererApp

pytestmark = pytest.mark.anyio

BFF = "http://shop.test"


@pytest.fixture
async def client(
    registry: Registry, environment: jinja2.Environment, assets: Assets
) -> AsyncIterator[httpx.AsyncClient]:
    upstreams = Upstreams.create({"shop": httpx.AsyncClient(base_url=BFF)})
    renderer = PageRenderer(
        registry=registry, upstreams=upstreams, environment=environment, policy=CachePolicy(), assets=assets
    )
    transport = httpx.ASGITransport(app=RendererApp(renderer=renderer).starlette())
    async with httpx.AsyncClient(transport=transport, base_url="http://renderer") as client:
        yield client
    await upstreams.aclose()


@pytest.fixture
def bff() -> respx.MockRouter:
    with respx.mock(base_url=BFF, assert_all_called=False) as router:
        router.route(host="renderer").pass_through()
        router.get("/items/1", name="item").respond(json={"name": "Lamp", "price": "€10"})
        router.get("/banner", name="banner").respond(json={"text": "Sale"})
        yield router


async def test_signed_in_page_is_private_and_passes_the_user_to_bffs(
    client: httpx.AsyncClient, bff: respx.MockRouter
) -> None:
    headers = {"X-Oberon-User": "alice", "X-Oberon-Roles": "customer,staff", "X-Oberon-Request-Id": "req-7"}
    response = await client.get("/items/1", headers=headers)
    assert response.status_code == 200
    assert response.headers["cache-control"] == "private, no-store"
    sent = bff["item"].calls.last.request.headers
    assert sent["x-oberon-user"] == "alice"
    assert sent["x-oberon-roles"] == "customer,staff"
    assert sent["x-oberon-request-id"] == "req-7"


async def test_signed_in_anonymous_page_stays_public_and_sends_no_user(
    client: httpx.AsyncClient, bff: respx.MockRouter
) -> None:
    response = await client.get("/items/1")
    assert response.headers["cache-control"].startswith("public, ")
    assert "x-oberon-user" not in bff["item"].calls.last.request.headers


@pytest.mark.parametrize("user", ["", "alice smith", "a" * 65, "alice\tbob"])
async def test_signed_in_a_malformed_user_header_is_anonymous(
    client: httpx.AsyncClient, bff: respx.MockRouter, user: str
) -> None:
    response = await client.get("/items/1", headers={"X-Oberon-User": user, "X-Oberon-Roles": "staff"})
    assert response.headers["cache-control"].startswith("public, ")
    sent = bff["item"].calls.last.request.headers
    assert "x-oberon-user" not in sent and "x-oberon-roles" not in sent
