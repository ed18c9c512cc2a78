"""https behind a proxy: the public URL and the trusted proxies say the browser is on https."""

from __future__ import annotations

import httpx
import pytest

from gateway.settings import GatewaySettings
from oberon.exceptions import ConfigError
from tests.gateway.conftest import SECRET, GatewayFactory

pytestmark = pytest.mark.anyio

FORM = {"username": "bob", "password": "bob-tickets", "next": "/"}


async def test_gateway_with_an_https_public_url_signs_in_with_a_secure_cookie_and_hsts(
    make_gateway: GatewayFactory,
) -> None:
    gateway = make_gateway(public_url="https://tickets.example.com")
    transport = httpx.ASGITransport(app=gateway.app())
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway.internal") as client:
        response = await client.post("/auth/sign-in", data=FORM, headers={"Origin": "https://tickets.example.com"})
        assert response.status_code == 303, response.text
        assert "; Secure" in response.headers["set-cookie"]
        assert response.headers["strict-transport-security"].startswith("max-age=")
        page = await client.get("/anything")  # every response, whatever the hop to the gateway was
        assert page.headers["strict-transport-security"].startswith("max-age=")
        signed_out = await client.post("/auth/sign-out", headers={"Origin": "https://tickets.example.com"})
        assert "; Secure" in signed_out.headers["set-cookie"]


async def test_gateway_with_a_public_url_still_refuses_a_form_from_another_site(make_gateway: GatewayFactory) -> None:
    gateway = make_gateway(public_url="https://tickets.example.com")
    transport = httpx.ASGITransport(app=gateway.app())
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway.internal") as client:
        for origin in ("https://evil.example", "http://tickets.example.com", "https://tickets.example.com.evil"):
            response = await client.post("/auth/sign-in", data=FORM, headers={"Origin": origin})
            assert response.status_code == 403, origin
            assert "set-cookie" not in response.headers


async def test_gateway_without_a_public_url_sends_no_hsts_over_plain_http(client: httpx.AsyncClient) -> None:
    response = await client.get("/anything")
    assert "strict-transport-security" not in response.headers


def test_gateway_settings_refuse_a_public_url_that_is_not_one() -> None:
    for bad in ("tickets.example.com", "ftp://tickets.example.com", "https://", "https://x.example/?a=1"):
        with pytest.raises(ConfigError, match="OBERON_PUBLIC_URL"):
            GatewaySettings(session_secret=SECRET, public_url=bad)
    settings = GatewaySettings(session_secret=SECRET, public_url="https://Tickets.Example.com/shop/")
    assert (settings.public_origin, settings.public_https) == ("https://tickets.example.com", True)
