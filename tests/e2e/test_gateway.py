"""The gateway over real processes, in both topologies: one process (embedded) and one per service (split).

The same requests must get the same answers from either.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager

import httpx
import jwt
import pytest

from tests.e2e.conftest import ADMIN

Server = Callable[..., AbstractContextManager[str]]

JWT_KEY = "an-end-to-end-test-key-long-enough-for-hs256-signatures"
ENV = {"OBERON_JWT_KEY": JWT_KEY, "OBERON_MAX_BODY_BYTES": "65536"}
HTML = {"Accept": "text/html"}
ALG_NONE = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJzdWIiOiJhZG1pbiIsImF1ZCI6Im9iZXJvbiIsImV4cCI6OTk5OTk5OTk5OX0."


@pytest.fixture(scope="module", params=["embedded", "split"])
def site(request: pytest.FixtureRequest, server: Server) -> Iterator[httpx.Client]:
    args = ("--split",) if request.param == "split" else ()
    with server(*args, env=ENV) as base, httpx.Client(base_url=base, timeout=10) as client:
        yield client


def token(key: str = JWT_KEY, **claims: object) -> str:
    payload = {"sub": "carol", "roles": ["customer", "staff"], "aud": "oberon", "exp": int(time.time()) + 60, **claims}
    return jwt.encode(payload, key, algorithm="HS256")


def sign_in(site: httpx.Client, user: str, password: str, next_path: str = "/account") -> httpx.Response:
    return site.post("/auth/sign-in", data={"username": user, "password": password, "next": next_path})


def test_gateway_renders_a_forged_user_header_as_anonymous(site: httpx.Client) -> None:
    forged = {"X-Oberon-User": "admin", "X-Oberon-Roles": "staff", "x-oberon-auth": "session", **HTML}
    home = site.get("/", headers=forged)
    assert home.status_code == 200
    assert home.headers["cache-control"].startswith("public, ")  # rendered for nobody in particular
    assert site.get("/account", headers=forged).status_code == 303
    assert site.get("/bff/account/me", headers={"X-Oberon-User": "admin"}).status_code == 401


def test_gateway_account_redirects_without_a_session(site: httpx.Client) -> None:
    response = site.get("/account", headers=HTML)
    assert response.status_code == 303
    assert response.headers["location"] == "/auth/sign-in?next=%2Faccount"
    form = site.get(response.headers["location"])
    assert form.status_code == 200 and 'name="next" value="/account"' in form.text


def test_gateway_account_renders_with_a_session(site: httpx.Client) -> None:
    signed_in = sign_in(site, "alice", "alice-tickets")
    assert signed_in.status_code == 303 and signed_in.headers["location"] == "/account"
    cookie = signed_in.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    try:
        page = site.get("/account", headers=HTML)
        assert page.status_code == 200
        assert page.headers["cache-control"] == "private, no-store"
        assert '<dd class="account-profile__user">alice</dd>' in page.text
        assert (
            'data-oberon-component="account-profile" data-oberon-version="1.0.0" data-oberon-outcome="ok"' in page.text
        )
        assert site.get("/").headers["cache-control"] == "private, no-store"  # every page, for a signed-in user
    finally:
        signed_out = site.post("/auth/sign-out")
        assert signed_out.status_code == 303
    assert site.get("/account", headers=HTML).status_code == 303


def test_gateway_sign_in_refuses_a_wrong_password(site: httpx.Client) -> None:
    response = sign_in(site, "alice", "not-her-password")
    assert response.status_code == 401
    assert "set-cookie" not in response.headers


def test_gateway_sign_in_never_redirects_off_site(site: httpx.Client) -> None:
    response = sign_in(site, "bob", "bob-tickets", next_path="//evil.example/")
    site.cookies.clear()
    assert response.headers["location"] == "/"


@pytest.mark.parametrize(
    "bearer",
    [token(key="the-wrong-key-although-it-is-long-enough-for-hs256"), ALG_NONE],
    ids=["wrong-key", "alg-none"],
)
def test_gateway_refuses_a_bad_bearer_token_with_401(site: httpx.Client, bearer: str) -> None:
    response = site.get("/account", headers={"Authorization": f"Bearer {bearer}"})
    assert response.status_code == 401
    assert response.json()["error"]
    assert site.get("/bff/account/me", headers={"Authorization": f"Bearer {bearer}"}).status_code == 401


def test_gateway_accepts_a_valid_bearer_token(site: httpx.Client) -> None:
    response = site.get("/bff/account/me", headers={"Authorization": f"Bearer {token()}"})
    assert response.status_code == 200
    assert response.json()["id"] == "carol"
    assert response.json()["roles"] == ["customer", "staff"]


def test_gateway_refuses_an_oversized_header_with_431(site: httpx.Client) -> None:
    assert site.get("/", headers={"X-Padding": "x" * 16_000}).status_code == 431
    assert site.get("/").status_code == 200


def test_gateway_refuses_an_oversized_body_with_413(site: httpx.Client) -> None:
    assert site.post("/bff/checkout/cart", content=b"x" * 100_000).status_code == 413

    def chunks() -> Iterator[bytes]:
        for _ in range(100):
            yield b"x" * 1000

    assert site.post("/bff/checkout/cart", content=chunks()).status_code == 413


def test_gateway_puts_security_headers_on_pages(site: httpx.Client) -> None:
    response = site.get("/e/1")
    csp = response.headers["content-security-policy"]
    assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"]
    assert response.headers["x-oberon-request-id"]
    for url in re.findall(r'(?:href|src)="(/_oberon/assets/[^"]+)"', response.text):
        asset = site.get(url)
        assert asset.status_code == 200 and asset.headers["x-content-type-options"] == "nosniff"


def test_gateway_never_repeats_a_callers_request_id_in_a_shared_page(site: httpx.Client) -> None:
    response = site.get("/", headers={"X-Request-Id": "trace-e2e-1"})
    assert "public" in response.headers["cache-control"]
    assert response.headers["x-oberon-request-id"] != "trace-e2e-1"
    assert "trace-e2e-1" not in response.text


def test_gateway_routes_bff_calls_and_fault_admin(site: httpx.Client) -> None:
    assert site.get("/bff/events/events/2").json()["id"] == 2
    healthy = {"down": False, "latency_ms": 0, "error_ratio": 0.0}
    assert site.get("/_backends/venues/_faults", headers=ADMIN).json() == healthy
    assert site.get("/_backends/venues/_faults").status_code == 401  # admin routes need the admin token
