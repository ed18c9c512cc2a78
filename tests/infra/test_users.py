"""The users stand-in: demo users, profiles, and the check of a user name and password."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from infra.local.users import DEMO_USERS, User, create_app

pytestmark = pytest.mark.anyio


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app()), base_url="http://users") as client:
        yield client


@pytest.mark.parametrize("user", DEMO_USERS, ids=lambda user: user.id)
async def test_users_authenticate_each_demo_user(client: httpx.AsyncClient, user: User) -> None:
    response = await client.post("/authenticate", json={"username": user.id, "password": user.password})
    assert response.status_code == 200
    assert response.json() == {"id": user.id, "name": user.name, "roles": list(user.roles)}
    assert response.headers["cache-control"] == "no-store"


@pytest.mark.parametrize(
    "body",
    [
        {"username": "alice", "password": "bob-tickets"},
        {"username": "mallory", "password": "alice-tickets"},
        {"username": "alice", "password": ""},
        {"username": "alice", "password": None},
    ],
)
async def test_users_refuse_wrong_credentials(client: httpx.AsyncClient, body: dict[str, object]) -> None:
    response = await client.post("/authenticate", json=body)
    assert response.status_code == 401
    assert "alice-tickets" not in response.text


@pytest.mark.parametrize("content", [b"not json", b"[]", b'{"password": "x"}', b"{" + b" " * 5000 + b"}"])
async def test_users_reject_a_malformed_request(client: httpx.AsyncClient, content: bytes) -> None:
    response = await client.post("/authenticate", content=content)
    assert response.status_code == 400


async def test_users_profile_never_contains_the_password(client: httpx.AsyncClient) -> None:
    response = await client.get("/users/alice")
    assert response.status_code == 200
    assert response.json()["email"] == "alice@example.com"
    assert "password" not in response.json() and "alice-tickets" not in response.text
    assert (await client.get("/users/mallory")).status_code == 404
