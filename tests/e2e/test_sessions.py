"""Revocable sessions and throttled sign-in on real processes: `oberon up`, and two gateway replicas on one Redis."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.e2e.conftest import ADMIN, Replica, Running, gateway_replica, start_server
from tests.redis_server import RedisServer

HTML = {"Accept": "text/html"}
ALICE = {"username": "alice", "password": "alice-tickets", "next": "/account"}


def sign_in(base: str, form: dict[str, str] = ALICE) -> str:
    """Sign in with a browser of its own; the session cookie's value."""
    response = httpx.post(f"{base}/auth/sign-in", data=form, timeout=10)
    assert response.status_code == 303, response.text
    return response.cookies["oberon_session"]


def account(base: str, cookie: str) -> httpx.Response:
    return httpx.get(f"{base}/account", headers={**HTML, "Cookie": f"oberon_session={cookie}"}, timeout=10)


def signed_in_as(base: str, cookie: str, user: str) -> bool:
    page = account(base, cookie)
    return page.status_code == 200 and f'<dd class="account-profile__user">{user}</dd>' in page.text


def refused(base: str, cookie: str) -> bool:
    """The cookie counts for nothing: the account page sends the browser to sign in."""
    page = account(base, cookie)
    return page.status_code == 303 and page.headers["location"].startswith("/auth/sign-in")


@pytest.fixture(scope="module")
def up() -> Iterator[str]:
    with start_server() as running:
        yield running.base_url


def test_up_a_copied_cookie_stops_working_after_sign_out(up: str) -> None:
    with httpx.Client(base_url=up, timeout=10) as browser:
        assert browser.post("/auth/sign-in", data=ALICE).status_code == 303
        copied = browser.cookies["oberon_session"]
        assert signed_in_as(up, copied, "alice")
        assert browser.post("/auth/sign-out").status_code == 303
    assert refused(up, copied)


def test_up_sixth_wrong_password_gets_429_with_retry_after(up: str) -> None:
    wrong = {"username": "bob", "password": "not-his-password"}
    answers = [httpx.post(f"{up}/auth/sign-in", data=wrong, timeout=10) for _ in range(6)]
    assert [answer.status_code for answer in answers] == [401] * 5 + [429]
    assert int(answers[-1].headers["retry-after"]) > 0
    page = httpx.post(f"{up}/auth/sign-in", data=wrong, headers=HTML, timeout=10)
    assert page.status_code == 429 and "Too many attempts" in page.text


@pytest.fixture
def split_on_redis(redis_server: RedisServer) -> Iterator[Running]:
    with start_server("--split", env={"OBERON_SESSION_STORE": redis_server.url}) as running:
        yield running


@pytest.fixture
def second_gateway(split_on_redis: Running, redis_server: RedisServer) -> Iterator[Replica]:
    """Gateway B: another `oberon serve gateway` over the same services and the same Redis."""
    with gateway_replica(split_on_redis, {"OBERON_SESSION_STORE": redis_server.url}) as replica:
        yield replica


def test_split_two_gateways_on_one_redis_share_sessions_and_their_revocation(
    split_on_redis: Running, second_gateway: Replica
) -> None:
    a, b = split_on_redis.base_url, second_gateway.base_url
    cookie = sign_in(a)
    assert signed_in_as(b, cookie, "alice")
    sign_out = httpx.post(f"{a}/auth/sign-out", headers={"Cookie": f"oberon_session={cookie}"}, timeout=10)
    assert sign_out.status_code == 303
    assert refused(b, cookie)
    assert refused(a, cookie)


def test_split_an_operator_revokes_a_user_on_every_gateway(split_on_redis: Running, second_gateway: Replica) -> None:
    a, b = split_on_redis.base_url, second_gateway.base_url
    cookies = [sign_in(a), sign_in(b)]
    disabled = httpx.post(f"{a}/_backends/users/users/alice/disable", headers=ADMIN, timeout=10)
    assert disabled.status_code == 200
    public = httpx.delete(f"{b}/_oberon/sessions/alice", headers=ADMIN, timeout=10)
    assert public.status_code in (404, 405)  # revocation is on the internal admin listener only
    assert all(signed_in_as(base, cookie, "alice") for base in (a, b) for cookie in cookies)
    revoked = httpx.delete(f"{second_gateway.admin_url}/_oberon/sessions/alice", headers=ADMIN, timeout=10)
    assert revoked.json() == {"user": "alice", "revoked": 2}
    assert all(refused(base, cookie) for base in (a, b) for cookie in cookies)
    assert httpx.post(f"{b}/auth/sign-in", data=ALICE, timeout=10).status_code == 401
