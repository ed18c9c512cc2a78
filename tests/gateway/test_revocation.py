"""Sessions through the gateway: revoked by sign-out, password change and an operator, on every replica sharing a
store (in-process and a real redis-server); fail closed when Redis is gone; the `__Host-` cookie over https."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import httpx
import pytest
from starlette.applications import Starlette
from starlette.routing import Route

from gateway.app import Gateway
from gateway.stores import Stores, open_stores
from tests.gateway.conftest import GatewayFactory, browser, make_token, received_headers

pytestmark = pytest.mark.anyio

HTML = {"Accept": "text/html,application/xhtml+xml"}
ADMIN_TOKEN = "an-admin-token-that-is-at-least-32-characters"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
ALICE = {"username": "alice", "password": "alice-tickets"}


@pytest.fixture(params=["memory", "redis"])
async def stores(request: pytest.FixtureRequest) -> AsyncIterator[Stores]:
    """The store every gateway of the test shares: in-process, or a redis-server of the test's own."""
    url = request.getfixturevalue("redis_server").url if request.param == "redis" else ""
    made = open_stores(url, clock=time.time)
    yield made
    await made.aclose()


def admin(gateway: Gateway) -> httpx.AsyncClient:
    """A client of the gateway's routes on its process's internal admin listener."""
    app = Starlette(routes=gateway.admin_routes())
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://admin.test")


async def sign_in(client: httpx.AsyncClient, form: dict[str, str] = ALICE) -> str:
    """Sign in; the session cookie's value (the client keeps it too)."""
    response = await client.post("/auth/sign-in", data=form)
    assert response.status_code == 303, response.text
    return response.cookies["oberon_session"]


async def who(client: httpx.AsyncClient, cookie: str | None = None) -> str:
    """Who the upstream is told the caller is (`anonymous` without a user)."""
    headers = {"Cookie": f"oberon_session={cookie}"} if cookie else {}
    response = await client.get("/anything", headers=headers)
    users = received_headers(response, "X-Oberon-User")
    return users[0] if users else "anonymous"


async def test_sign_out_revokes_a_copied_cookie(make_gateway: GatewayFactory) -> None:
    async with browser(make_gateway()) as client, browser(make_gateway()) as thief:
        cookie = await sign_in(client)
        assert await who(thief, cookie) == "alice"
        assert (await client.post("/auth/sign-out")).status_code == 303
        assert await who(thief, cookie) == "anonymous"
        account = await thief.get("/account", headers={**HTML, "Cookie": f"oberon_session={cookie}"})
        assert account.status_code == 303 and account.headers["location"].startswith("/auth/sign-in")


async def test_sign_out_on_one_replica_is_refused_on_another(make_gateway: GatewayFactory) -> None:
    async with browser(make_gateway()) as a, browser(make_gateway()) as b:
        cookie = await sign_in(a)
        assert await who(b, cookie) == "alice"
        await a.post("/auth/sign-out")
        assert await who(b, cookie) == "anonymous"


async def test_a_new_sign_in_replaces_the_session_the_browser_had(make_gateway: GatewayFactory) -> None:
    async with browser(make_gateway()) as client:
        first = await sign_in(client)
        second = await sign_in(client)
        assert first != second
        assert await who(client, first) == "anonymous"
        assert await who(client, second) == "alice"


async def test_password_change_revokes_every_other_session_and_keeps_this_browser(make_gateway: GatewayFactory) -> None:
    async with browser(make_gateway()) as here, browser(make_gateway()) as elsewhere:
        other = await sign_in(elsewhere)
        await sign_in(here)
        form = await here.get("/auth/password", headers=HTML)
        assert form.status_code == 200 and 'name="new_password"' in form.text
        changed = await here.post(
            "/auth/password", data={"current_password": "alice-tickets", "new_password": "a-new-secret"}, headers=HTML
        )
        assert changed.status_code == 200, changed.text
        assert "Password changed" in changed.text and changed.headers["cache-control"] == "no-store"
        assert changed.headers["set-cookie"].startswith("oberon_session=")
        assert await who(elsewhere, other) == "anonymous"
        assert await who(here) == "alice"  # the fresh session this browser was given
        refused = await here.post("/auth/sign-in", data=ALICE)  # `here` reaches the users service that changed it
        assert refused.status_code == 401  # the old password no longer works
        await sign_in(here, {"username": "alice", "password": "a-new-secret"})


async def test_password_change_refuses_a_wrong_current_password(make_gateway: GatewayFactory) -> None:
    async with browser(make_gateway()) as client:
        cookie = await sign_in(client)
        response = await client.post("/auth/password", data={"current_password": "guess", "new_password": "xyz12345"})
        assert response.status_code == 401
        assert "The current password is not right." in response.text
        assert "set-cookie" not in response.headers
        assert await who(client, cookie) == "alice"


async def test_password_change_refuses_an_unacceptable_new_password(make_gateway: GatewayFactory) -> None:
    async with browser(make_gateway()) as client:
        await sign_in(client)
        response = await client.post("/auth/password", data={"current_password": "alice-tickets", "new_password": "x"})
        assert response.status_code == 400
        assert "8 to 1024 characters" in response.text


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        ("current_password=alice-tickets", "application/x-www-form-urlencoded"),
        ("current_password=alice-tickets&new_password=", "application/x-www-form-urlencoded"),
        ("current_password=a&new_password=b&role=staff", "application/x-www-form-urlencoded"),
        ("&".join(f"f{n}=x" for n in range(9)), "application/x-www-form-urlencoded"),
        (b"current_password=\xff&new_password=x", "application/x-www-form-urlencoded"),
        ('{"current_password": "alice-tickets", "new_password": "abcdefgh"}', "application/json"),
        ("current_password", "application/x-www-form-urlencoded"),
    ],
)
async def test_password_change_answers_a_malformed_form_with_400(
    make_gateway: GatewayFactory, body: str | bytes, content_type: str
) -> None:
    async with browser(make_gateway()) as client:
        await sign_in(client)
        response = await client.post("/auth/password", content=body, headers={"Content-Type": content_type})
        assert response.status_code == 400
        assert "set-cookie" not in response.headers


async def test_password_page_needs_a_session_and_a_form_from_this_site(make_gateway: GatewayFactory) -> None:
    async with browser(make_gateway()) as client:
        anonymous = await client.get("/auth/password", headers=HTML)
        assert anonymous.status_code == 303
        assert anonymous.headers["location"] == "/auth/sign-in?next=%2Fauth%2Fpassword"
        form = {"current_password": "alice-tickets", "new_password": "a-new-secret"}
        assert (await client.post("/auth/password", data=form)).status_code == 401
        bearer = await client.get("/auth/password", headers={"Authorization": f"Bearer {make_token()}"})
        assert bearer.status_code == 401  # a session's page: a token cannot change a password
        await sign_in(client)
        cross = await client.post("/auth/password", data=form, headers={"Origin": "https://evil.example"})
        assert cross.status_code == 403


async def test_admin_revokes_every_session_of_a_user(make_gateway: GatewayFactory) -> None:
    gateway = make_gateway(admin_token=ADMIN_TOKEN)
    async with browser(gateway) as client, browser(make_gateway()) as other, admin(gateway) as operator:
        alice = [await sign_in(client), await sign_in(other)]
        bob = await sign_in(other, {"username": "bob", "password": "bob-tickets"})
        public = await client.delete("/_oberon/sessions/alice", headers=ADMIN)
        assert public.status_code != 200  # on the internal admin listener only (here the token is no JWT: 401)
        assert (await operator.delete("/_oberon/sessions/alice")).status_code == 401
        wrong = await operator.delete("/_oberon/sessions/alice", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401
        response = await operator.delete("/_oberon/sessions/alice", headers=ADMIN)
        assert response.status_code == 200
        assert response.json() == {"user": "alice", "revoked": 1}  # the first was replaced by the second sign-in
        assert [await who(client, cookie) for cookie in alice] == ["anonymous", "anonymous"]
        assert await who(client, bob) == "bob"
        bad = await operator.delete("/_oberon/sessions/not%20a%20user", headers=ADMIN)
        assert bad.status_code == 400


async def test_admin_session_endpoint_fails_closed_without_a_token(make_gateway: GatewayFactory) -> None:
    gateway = make_gateway()
    async with browser(gateway) as client, admin(gateway) as operator:
        cookie = await sign_in(client)
        response = await operator.delete("/_oberon/sessions/alice", headers=ADMIN)
        assert response.status_code == 403
        assert await who(client, cookie) == "alice"


async def test_admin_routes_are_one_list_for_the_internal_listener(make_gateway: GatewayFactory) -> None:
    routes = make_gateway().admin_routes()
    paths = [(route.path, route.methods) for route in routes if isinstance(route, Route)]
    assert ("/_oberon/sessions/{user}", {"DELETE"}) in paths


async def test_a_disabled_user_cannot_sign_in_and_loses_their_sessions(make_gateway: GatewayFactory) -> None:
    gateway = make_gateway(admin_token=ADMIN_TOKEN)
    async with browser(gateway) as client, admin(gateway) as operator:
        cookie = await sign_in(client)
        disabled = await client.post("/_backends/users/users/alice/disable", headers=ADMIN)
        assert disabled.status_code == 200
        assert (await client.post("/auth/sign-in", data=ALICE)).status_code == 401
        await operator.delete("/_oberon/sessions/alice", headers=ADMIN)
        assert await who(client, cookie) == "anonymous"


async def test_a_host_cookie_over_https_and_neither_name_reaches_an_upstream(make_gateway: GatewayFactory) -> None:
    proxy = {"X-Forwarded-Proto": "https"}
    async with browser(make_gateway(trusted_proxies=("127.0.0.1",))) as client:
        response = await client.post("/auth/sign-in", data=ALICE, headers=proxy)
        cookie = response.headers["set-cookie"]
        assert cookie.startswith("__Host-oberon_session=") and cookie.endswith("; Secure") and "Path=/;" in cookie
        value = cookie.split(";")[0].split("=", 1)[1]
        jar = f"__Host-oberon_session={value}; oberon_session={value}; theme=dark"
        over_https = await client.get("/anything", headers={**proxy, "Cookie": jar})
        assert received_headers(over_https, "X-Oberon-User") == ["alice"]
        assert received_headers(over_https, "Cookie") == []  # no route here forwards cookies (test_cookies.py)
        # Over plain http only the plain name counts: a `__Host-` cookie is https's alone.
        plain = await client.get("/anything", headers={"Cookie": f"__Host-oberon_session={value}"})
        assert received_headers(plain, "X-Oberon-Auth") == ["anonymous"]
        signed_out = await client.post("/auth/sign-out", headers={**proxy, "Cookie": jar})
        assert signed_out.headers["set-cookie"].startswith("__Host-oberon_session=;")
