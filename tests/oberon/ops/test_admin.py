from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from starlette.applications import Starlette

from oberon.ops.admin import degradation_routes
from oberon.ops.degradation import DegradationController

pytestmark = pytest.mark.anyio

TOKEN = "s3cret-token"


@pytest.fixture
def controller() -> DegradationController:
    return DegradationController()


async def client_for(controller: DegradationController, token: str | None) -> httpx.AsyncClient:
    app = Starlette(routes=degradation_routes(controller, admin_token=token))
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://renderer")


@pytest.fixture
async def client(controller: DegradationController) -> AsyncIterator[httpx.AsyncClient]:
    async with await client_for(controller, TOKEN) as client:
        yield client


async def test_admin_shows_the_mode_and_signals(client: httpx.AsyncClient) -> None:
    body = (await client.get("/_oberon/degradation")).json()
    assert body["mode"] == "normal"
    assert set(body["signals"]) == {"calls", "error_ratio", "p95_ms", "open_breakers"}


async def test_admin_sets_the_mode_with_the_token(client: httpx.AsyncClient, controller) -> None:
    auth = {"Authorization": f"Bearer {TOKEN}"}
    response = await client.put(
        "/_oberon/degradation", json={"mode": "degraded", "reason": "incident 42"}, headers=auth
    )
    assert response.status_code == 200
    assert (response.json()["mode"], response.json()["reason"]) == ("degraded", "incident 42")
    assert (await client.put("/_oberon/degradation", json={"mode": "auto"}, headers=auth)).json()["mode"] == "normal"


@pytest.mark.parametrize(
    "headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {TOKEN}"}, {"Authorization": TOKEN}]
)
async def test_admin_refuses_without_the_token(client: httpx.AsyncClient, controller, headers) -> None:
    response = await client.put("/_oberon/degradation", json={"mode": "degraded"}, headers=headers)
    assert response.status_code == 401
    assert controller.status()["mode"] == "normal"


async def test_admin_refuses_every_write_when_no_token_is_configured(controller) -> None:
    async with await client_for(controller, None) as client:
        response = await client.put(
            "/_oberon/degradation", json={"mode": "degraded"}, headers={"Authorization": "Bearer "}
        )
    assert response.status_code == 403


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[]",
        b'{"mode": "sideways"}',
        b'{"mode": "degraded", "extra": 1}',
        b'{"mode": "normal", "reason": 5}',
    ],
)
async def test_admin_refuses_bad_bodies(client: httpx.AsyncClient, body: bytes) -> None:
    response = await client.put("/_oberon/degradation", content=body, headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 400
    assert "error" in response.json()
