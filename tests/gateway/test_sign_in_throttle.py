"""Sign-in through the gateway is throttled per client address and per user name (429 + Retry-After), on a store
every replica shares (in-process and a real redis-server)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import pytest

from gateway.stores import Stores, open_stores
from tests.gateway.conftest import GatewayFactory, browser

pytestmark = pytest.mark.anyio

HTML = {"Accept": "text/html,application/xhtml+xml"}
WRONG = {"username": "alice", "password": "guess"}
RIGHT = {"username": "alice", "password": "alice-tickets"}


@pytest.fixture(params=["memory", "redis"])
async def stores(request: pytest.FixtureRequest) -> AsyncIterator[Stores]:
    url = request.getfixturevalue("redis_server").url if request.param == "redis" else ""
    made = open_stores(url, clock=time.time)
    yield made
    await made.aclose()


def from_address(ip: str) -> dict[str, str]:
    return {"X-Forwarded-For": ip}


async def test_sixth_wrong_password_gets_429_with_retry_after(make_gateway: GatewayFactory) -> None:
    async with browser(make_gateway()) as client:
        for _ in range(5):
            assert (await client.post("/auth/sign-in", data=WRONG)).status_code == 401
        throttled = await client.post("/auth/sign-in", data=WRONG)
        assert throttled.status_code == 429
        assert throttled.headers["retry-after"] == "5"
        assert throttled.json()["error"] == "Too many failed attempts. Please wait 5 seconds and try again."
        page = await client.post("/auth/sign-in", data=RIGHT, headers=HTML)  # not even checked while blocked
        assert page.status_code == 429 and "Too many attempts" in page.text and "Traceback" not in page.text
        assert "set-cookie" not in page.headers


async def test_throttle_counts_per_address_across_user_names(make_gateway: GatewayFactory) -> None:
    async with browser(make_gateway()) as client:
        for name in ["alice", "bob", "carol", "dave", "erin"]:
            assert (await client.post("/auth/sign-in", data={"username": name, "password": "x"})).status_code == 401
        assert (await client.post("/auth/sign-in", data={"username": "frank", "password": "x"})).status_code == 429


async def test_throttle_counts_per_user_name_across_addresses(make_gateway: GatewayFactory) -> None:
    async with browser(make_gateway(trusted_proxies=("127.0.0.1",))) as client:
        for n in range(5):
            response = await client.post("/auth/sign-in", data=WRONG, headers=from_address(f"198.51.100.{n}"))
            assert response.status_code == 401
        blocked = await client.post("/auth/sign-in", data=RIGHT, headers=from_address("203.0.113.50"))
        assert blocked.status_code == 429
        other = await client.post("/auth/sign-in", data={"username": "bob", "password": "bob-tickets"})
        assert other.status_code == 303


async def test_an_untrusted_forwarded_for_does_not_change_the_address(make_gateway: GatewayFactory) -> None:
    async with browser(make_gateway()) as client:
        for n in range(5):
            data = {"username": f"user{n}", "password": "x"}
            await client.post("/auth/sign-in", data=data, headers=from_address(f"198.51.100.{n}"))
        spoofed = await client.post(
            "/auth/sign-in", data={"username": "bob", "password": "x"}, headers=from_address("203.0.113.77")
        )
        assert spoofed.status_code == 429


async def test_a_successful_sign_in_clears_the_user_name_count(make_gateway: GatewayFactory) -> None:
    async with browser(make_gateway(trusted_proxies=("127.0.0.1",))) as client:
        for n in range(4):
            await client.post("/auth/sign-in", data=WRONG, headers=from_address(f"198.51.100.{n}"))
        assert (await client.post("/auth/sign-in", data=RIGHT)).status_code == 303
        for n in range(4):
            response = await client.post("/auth/sign-in", data=WRONG, headers=from_address(f"192.0.2.{n}"))
            assert response.status_code == 401


async def test_replicas_share_the_throttle(make_gateway: GatewayFactory) -> None:
    async with browser(make_gateway()) as a, browser(make_gateway()) as b:
        for client in [a, b, a, b, a]:
            await client.post("/auth/sign-in", data=WRONG)
        assert (await b.post("/auth/sign-in", data=WRONG)).status_code == 429


async def test_a_throttled_users_service_gives_429_not_502(make_gateway: GatewayFactory) -> None:
    # The gateway's own limit set high: the users stand-in (10 failures per user name) answers 429 first.
    async with browser(make_gateway(sign_in_max_failures=100)) as client:
        for _ in range(10):
            assert (await client.post("/auth/sign-in", data=WRONG)).status_code == 401
        response = await client.post("/auth/sign-in", data=RIGHT, headers=HTML)
        assert response.status_code == 429
        assert response.headers["retry-after"] == "5"
        assert "Too many attempts" in response.text


async def test_wrong_current_passwords_are_throttled_too(make_gateway: GatewayFactory) -> None:
    async with browser(make_gateway()) as client:
        assert (await client.post("/auth/sign-in", data=RIGHT)).status_code == 303
        form = {"current_password": "guess", "new_password": "a-new-secret"}
        for _ in range(5):
            assert (await client.post("/auth/password", data=form)).status_code == 401
        assert (await client.post("/auth/password", data=form)).status_code == 429
