from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

import httpx
import jwt
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from gateway.app import Gateway
from gateway.auth import SESSION_COOKIE, Identity, Method, SessionCodec
from gateway.proxy import Target, UpstreamPool
from gateway.settings import GatewaySettings
from gateway.stores import Stores, open_stores
from gateway.table import RouteTable, parse_table
from infra.local.users import create_app as users_app

SECRET = "a-test-session-secret-that-is-long-enough"
JWT_KEY = "a-test-jwt-key-that-is-long-enough-for-hs256-and-for-hs512-too-ok"
AUDIENCE = "oberon"
# Nothing listens on port 1: connecting is refused at once.
DEAD = "http://127.0.0.1:1"

TABLE = """
[[route]]
prefix = "/"
upstream = "renderer"
auth = "optional"

[[route]]
prefix = "/account"
upstream = "renderer"
auth = "required"

[[route]]
prefix = "/_oberon/assets"
upstream = "renderer"
auth = "none"
methods = ["GET"]

[[route]]
prefix = "/bff/shop"
upstream = "bff:shop"
auth = "optional"
strip_prefix = true
timeout = 0.5

[[route]]
prefix = "/bff/dead"
upstream = "bff:dead"
auth = "optional"
strip_prefix = true

[[route]]
prefix = "/_backends/users"
upstream = "backend:users"
auth = "none"
admin = true
strip_prefix = true
"""


async def echo(request: Request) -> Response:
    """What the upstream received: method, path, query, headers (in order, repeated ones too) and body size."""
    body = await request.body()
    return JSONResponse(
        {
            "method": request.method,
            "path": request.url.path,
            "query": request.url.query,
            "headers": [[name.decode("latin-1"), value.decode("latin-1")] for name, value in request.scope["headers"]],
            "body_bytes": len(body),
        },
        headers={"Cache-Control": "public, max-age=60"},
    )


async def page(request: Request) -> Response:
    response = HTMLResponse("<!doctype html><title>Page</title><p>hello</p>", headers={"X-Upstream": "renderer"})
    response.headers["Connection"] = "X-Secret-Hop"
    response.headers["X-Secret-Hop"] = "must not pass"
    response.set_cookie("tracking", "1")
    return response


async def slow(request: Request) -> Response:
    await asyncio.sleep(5)
    return JSONResponse({})


async def stream(request: Request) -> Response:
    async def chunks() -> AsyncIterator[bytes]:
        for index in range(3):
            yield f"chunk {index}\n".encode()

    return StreamingResponse(chunks(), media_type="text/plain")


def fake_upstream() -> Starlette:
    return Starlette(
        routes=[
            Route("/page", page),
            Route("/slow", slow),
            Route("/stream", stream),
            Route("/{path:path}", echo, methods=["GET", "HEAD", "POST", "PUT", "DELETE"]),
        ]
    )


def upstream_names() -> list[str]:
    return ["renderer", "bff:shop", "bff:dead", "backend:users"]


def table() -> RouteTable:
    return parse_table(TABLE, file="routes.toml", upstreams=upstream_names())


def make_token(
    claims: Mapping[str, Any] | None = None, *, key: str = JWT_KEY, algorithm: str = "HS256", **overrides: Any
) -> str:
    """A JWT for `alice` valid for a minute, with `overrides` applied (a value of None removes the claim)."""
    payload: dict[str, Any] = {"sub": "alice", "roles": ["customer"], "aud": AUDIENCE, "exp": int(time.time()) + 60}
    payload.update(claims or {})
    payload.update(overrides)
    payload = {name: value for name, value in payload.items() if value is not None}
    return jwt.encode(payload, key, algorithm=algorithm)


GatewayFactory = Callable[..., Gateway]


@pytest.fixture
def settings() -> GatewaySettings:
    return GatewaySettings(session_secret=SECRET, jwt_key=JWT_KEY, max_header_bytes=4096, max_body_bytes=1000)


@pytest.fixture
async def stores() -> AsyncIterator[Stores]:
    """The session store and sign-in counters the test's gateways share: in-process (a module may override this)."""
    made = open_stores("", clock=time.time)
    yield made
    await made.aclose()


@pytest.fixture
async def make_gateway(settings: GatewaySettings, stores: Stores) -> AsyncIterator[GatewayFactory]:
    """`make_gateway(**overrides)`: a gateway over the fake upstream, a dead one and the users stand-in.

    The test's gateways share `stores`, as replicas share Redis. Each gateway's upstreams are closed at the
    end of the test (a network upstream's pool is an aiohttp session).
    """
    made: list[Gateway] = []

    def make(
        *,
        admin_token: str | None = None,
        routes: RouteTable | None = None,
        stores: Stores = stores,
        **overrides: Any,
    ) -> Gateway:
        targets: dict[str, Target] = {
            "renderer": fake_upstream(),
            "bff:shop": fake_upstream(),
            "bff:dead": DEAD,
            "backend:users": users_app(),
        }
        values = {**vars(settings), **overrides}
        gateway = Gateway(
            table=routes or table(),
            upstreams=UpstreamPool.create(targets),
            settings=GatewaySettings(**values),
            admin_token=admin_token,
            stores=stores,
        )
        made.append(gateway)
        return gateway

    yield make
    for gateway in made:
        await gateway.upstreams.aclose()


@pytest.fixture
async def client(make_gateway: GatewayFactory) -> AsyncIterator[httpx.AsyncClient]:
    gateway = make_gateway()
    transport = httpx.ASGITransport(app=gateway.app())
    async with httpx.AsyncClient(transport=transport, base_url="http://site.test") as client:
        yield client


def received(response: httpx.Response) -> dict[str, Any]:
    """The echo upstream's account of the request."""
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def received_headers(response: httpx.Response, name: str) -> list[str]:
    return [value for key, value in received(response)["headers"] if key.lower() == name.lower()]


ALICE = Identity(user="alice", roles=("customer",), method=Method.SESSION)


CookieHeader = Callable[..., dict[str, str]]


@pytest.fixture
async def session_cookie(stores: Stores) -> CookieHeader:
    """`session_cookie(**others)`: a `Cookie` header carrying a live session of alice's (and `others`)."""
    session = await stores.sessions.create(ALICE, max_age=3600)
    value = SessionCodec(secret=SECRET, max_age=3600).issue(session.id)

    def header(**others: str) -> dict[str, str]:
        cookies = {SESSION_COOKIE: value, **others}
        return {"Cookie": "; ".join(f"{name}={value}" for name, value in cookies.items())}

    return header


def browser(gateway: Gateway) -> httpx.AsyncClient:
    """A client of the gateway's public app, as a browser reaches it."""
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=gateway.app()), base_url="http://site.test")
