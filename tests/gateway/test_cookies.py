"""The caller's cookies stop at the gateway unless a route says `forward_cookies = true`."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from gateway.errors import RouteTableError
from gateway.table import load_table, parse_table
from oberon.site import GATEWAY, Site, service_names
from tests.gateway.conftest import TABLE, CookieHeader, GatewayFactory, received_headers, upstream_names

pytestmark = pytest.mark.anyio
ROOT = Path(__file__).resolve().parents[2]


async def test_gateway_strips_the_callers_cookies_from_proxied_requests(
    client: httpx.AsyncClient, session_cookie: CookieHeader
) -> None:
    for path in ("/anything", "/bff/shop/items", "/_oberon/assets/app.js"):
        response = await client.get(path, headers=session_cookie(theme="dark", consent="yes"))
        assert received_headers(response, "Cookie") == [], path
    signed_in = await client.get("/bff/shop/items", headers=session_cookie())
    assert received_headers(signed_in, "X-Oberon-User") == ["alice"]  # the context says who it is instead


async def test_gateway_forwards_cookies_where_the_route_says_so_but_never_the_session(
    make_gateway: GatewayFactory, session_cookie: CookieHeader
) -> None:
    extra = '[[route]]\nprefix = "/prefs"\nupstream = "bff:shop"\nauth = "optional"\nforward_cookies = true\n'
    gateway = make_gateway(routes=parse_table(TABLE + extra, file="routes.toml", upstreams=upstream_names()))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=gateway.app()), base_url="http://t") as client:
        response = await client.get("/prefs/x", headers=session_cookie(theme="dark"))
    assert received_headers(response, "Cookie") == ["theme=dark"]
    assert received_headers(response, "X-Oberon-User") == ["alice"]


def test_table_refuses_a_forward_cookies_that_is_not_a_flag() -> None:
    text = '[[route]]\nprefix = "/a"\nupstream = "renderer"\nauth = "none"\nforward_cookies = "yes"\n'
    with pytest.raises(RouteTableError) as raised:
        parse_table(text, file="routes.toml", upstreams=upstream_names())
    assert raised.value.errors == ["routes.toml:5: route.forward_cookies: expected true or false, got 'yes'"]


def test_site_routes_forward_no_cookies() -> None:
    # No BFF or component reads a cookie: each reads the gateway's context headers.
    upstreams = [name for name in service_names(Site.load(ROOT / "oberon.toml")) if name != GATEWAY]
    table = load_table(ROOT / "gateway" / "routes.toml", upstreams=upstreams)
    assert [route.prefix for route in table.routes if route.forward_cookies] == []
