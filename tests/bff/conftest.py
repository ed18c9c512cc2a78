from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator

import httpx
import pytest
import respx
from starlette.types import ASGIApp

from infra.local.services import create_app as backend
from oberon import Upstreams

BACKENDS = ("events", "venues", "ticketing", "recommendations")
# How a backend can fail a BFF: each one must become a 502 that names the backend.
FAILURES = ("error status", "timeout", "connection refused", "not json", "unexpected shape")


@pytest.fixture
async def stand_ins() -> AsyncIterator[Upstreams]:
    """The real stand-in backends, in process."""
    upstreams = Upstreams.create({name: backend(name) for name in BACKENDS})
    yield upstreams
    await upstreams.aclose()


@pytest.fixture
def mocked() -> Iterator[respx.MockRouter]:
    """A respx router answering the `remote` upstreams; each test adds its routes."""
    with respx.mock(assert_all_called=False) as router:
        yield router


@pytest.fixture
async def remote(mocked: respx.MockRouter) -> AsyncIterator[Upstreams]:
    """The backends at URLs (`http://<name>.test`), answered by the `mocked` router."""
    upstreams = Upstreams.create({name: httpx.AsyncClient(base_url=f"http://{name}.test") for name in BACKENDS})
    yield upstreams
    await upstreams.aclose()


@pytest.fixture
async def client_for() -> AsyncIterator[Callable[[ASGIApp], httpx.AsyncClient]]:
    """`client_for(app)`: a client calling a BFF app in process, closed after the test."""
    clients: list[httpx.AsyncClient] = []

    def connect(app: ASGIApp) -> httpx.AsyncClient:
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bff")
        clients.append(client)
        return client

    yield connect
    for client in clients:
        await client.aclose()


@pytest.fixture(params=FAILURES)
def break_route(request: pytest.FixtureRequest) -> Callable[[respx.Route], None]:
    """Each way a backend can fail, as a function making a respx route fail that way (one test run per way)."""
    failure: str = request.param

    def apply(route: respx.Route) -> None:
        if failure == "error status":
            route.respond(500, json={"error": "boom"})
        elif failure == "timeout":
            route.side_effect = httpx.ConnectTimeout("timed out")
        elif failure == "connection refused":
            route.side_effect = httpx.ConnectError("connection refused")
        elif failure == "not json":
            route.respond(200, html="<h1>Gateway</h1>")
        else:
            route.respond(200, json={"unexpected": True})

    return apply
