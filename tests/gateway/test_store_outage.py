"""Redis unreachable: a request showing a session cookie gets a clear 503; anonymous and Bearer callers are served."""

from __future__ import annotations

import logging
import time

import httpx
import pytest

from gateway.stores import open_stores
from tests.gateway.conftest import GatewayFactory, browser, make_token, received, received_headers
from tests.redis_server import RedisServer

pytestmark = pytest.mark.anyio

HTML = {"Accept": "text/html,application/xhtml+xml"}
ALICE = {"username": "alice", "password": "alice-tickets"}


async def sign_in(client: httpx.AsyncClient) -> str:
    response = await client.post("/auth/sign-in", data=ALICE)
    assert response.status_code == 303, response.text
    return response.cookies["oberon_session"]


async def test_signed_in_requests_fail_closed_when_redis_stops(
    make_gateway: GatewayFactory, redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    stores = open_stores(redis_server.url, clock=time.time)
    async with browser(make_gateway(stores=stores)) as client:
        cookie = await sign_in(client)
        client.cookies.clear()  # each request below says which cookie it shows
        redis_server.stop()
        with caplog.at_level(logging.INFO, logger="oberon.gateway"):
            page = await client.get("/anything", headers={**HTML, "Cookie": f"oberon_session={cookie}"})
            api = await client.get("/anything", headers={"Cookie": f"oberon_session={cookie}"})
            anonymous = await client.get("/anything", headers={"Cookie": "theme=dark"})
            bearer = await client.get("/account", headers={"Authorization": f"Bearer {make_token()}"})
            sign_in_page = await client.get("/auth/sign-in")
            signing_in = await client.post("/auth/sign-in", data=ALICE)
        assert page.status_code == 503 and "text/html" in page.headers["content-type"]
        assert "Traceback" not in page.text and "unavailable" in page.text
        assert api.status_code == 503 and api.json()["error"].startswith("Signing in and signed-in pages")
        assert received(anonymous)["path"] == "/anything"
        assert received_headers(bearer, "X-Oberon-User") == ["alice"]
        assert sign_in_page.status_code == 200
        assert signing_in.status_code == 503
        assert not [record for record in caplog.records if record.exc_info]
        assert len([record for record in caplog.records if record.levelno == logging.WARNING]) == 1
    await stores.aclose()
