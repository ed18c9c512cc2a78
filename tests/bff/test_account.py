"""The account BFF over the users stand-in, and over a failing one (respx)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import httpx
import pytest
import respx
from starlette.types import ASGIApp

from bff.account import create_app
from infra.local.users import create_app as users_app
from oberon import Upstreams

pytestmark = pytest.mark.anyio

ClientFor = Callable[[ASGIApp], httpx.AsyncClient]


@pytest.fixture
async def users() -> AsyncIterator[Upstreams]:
    upstreams = Upstreams.create({"users": users_app()})
    yield upstreams
    await upstreams.aclose()


async def test_account_profile_of_the_signed_in_user(users: Upstreams, client_for: ClientFor) -> None:
    response = await client_for(create_app(users)).get("/me", headers={"X-Oberon-User": "carol"})
    assert response.status_code == 200
    assert response.headers["cache-control"] == "private, no-store"
    assert response.json() == {
        "id": "carol",
        "name": "Carol Nakamura",
        "email": "carol@example.com",
        "member_since": "2023-11-20",
        "member_since_year": "2023",
        "roles": ["customer", "staff"],
    }


@pytest.mark.parametrize("headers", [{}, {"X-Oberon-User": ""}, {"X-Oberon-User": "../users/alice"}])
async def test_account_needs_a_well_formed_user(
    users: Upstreams, client_for: ClientFor, headers: dict[str, str]
) -> None:
    response = await client_for(create_app(users)).get("/me", headers=headers)
    assert response.status_code == 401
    assert response.headers["cache-control"] == "no-store"


async def test_account_unknown_user_is_404(users: Upstreams, client_for: ClientFor) -> None:
    response = await client_for(create_app(users)).get("/me", headers={"X-Oberon-User": "mallory"})
    assert response.status_code == 404


async def test_account_a_failing_users_service_is_a_502_naming_it(client_for: ClientFor) -> None:
    upstreams = Upstreams.create({"users": httpx.AsyncClient(base_url="http://users.test")})
    with respx.mock(assert_all_called=False) as router:
        router.route(host="bff").pass_through()
        router.get("http://users.test/users/alice").respond(500)
        response = await client_for(create_app(upstreams)).get("/me", headers={"X-Oberon-User": "alice"})
    await upstreams.aclose()
    assert response.status_code == 502
    assert "users" in response.json()["error"]
