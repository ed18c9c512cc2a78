"""The users stand-in: demo users, profiles, and the check of a user name and password."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from infra.local.users import DEMO_USERS, Attempts, User, create_app

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


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def test_users_throttle_authenticate_per_user_name() -> None:
    clock = Clock()
    app = create_app(attempts=Attempts(max_failures=3, window=900, backoff=5, clock=clock))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://users") as client:
        for _ in range(3):
            response = await client.post("/authenticate", json={"username": "alice", "password": "guess"})
            assert response.status_code == 401
        right = {"username": "alice", "password": "alice-tickets"}
        throttled = await client.post("/authenticate", json=right)
        assert throttled.status_code == 429 and throttled.headers["retry-after"] == "5"
        assert (await client.post("/authenticate", json={"username": "bob", "password": "bob-tickets"})).is_success
        clock.now += 5
        assert (await client.post("/authenticate", json=right)).status_code == 200
        await client.post("/authenticate", json={"username": "alice", "password": "guess"})
        assert (await client.post("/authenticate", json=right)).status_code == 200  # the success cleared the count


async def test_users_change_a_password(client: httpx.AsyncClient) -> None:
    wrong = await client.post("/users/alice/password", json={"current": "guess", "new": "a-new-secret"})
    assert wrong.status_code == 401
    short = await client.post("/users/alice/password", json={"current": "alice-tickets", "new": "short"})
    assert short.status_code == 400 and "8 to 1024 characters" in short.json()["error"]
    changed = await client.post("/users/alice/password", json={"current": "alice-tickets", "new": "a-new-secret"})
    assert changed.status_code == 200
    old = await client.post("/authenticate", json={"username": "alice", "password": "alice-tickets"})
    assert old.status_code == 401
    new = await client.post("/authenticate", json={"username": "alice", "password": "a-new-secret"})
    assert new.status_code == 200
    assert (await client.post("/users/mallory/password", json={"current": "x", "new": "y" * 8})).status_code == 404


@pytest.mark.parametrize("content", [b"not json", b"[]", b'{"current": "alice-tickets"}', b'{"current": 1, "new": 2}'])
async def test_users_reject_a_malformed_password_change(client: httpx.AsyncClient, content: bytes) -> None:
    assert (await client.post("/users/alice/password", content=content)).status_code == 400


async def test_users_disable_a_user(client: httpx.AsyncClient) -> None:
    assert (await client.post("/users/alice/disable")).json() == {"id": "alice", "disabled": True}
    refused = await client.post("/authenticate", json={"username": "alice", "password": "alice-tickets"})
    assert refused.status_code == 403
    change = await client.post("/users/alice/password", json={"current": "alice-tickets", "new": "a-new-secret"})
    assert change.status_code == 403
    assert (await client.post("/users/mallory/disable")).status_code == 404
