"""`Proxying`: the gateway's catch-all route taken in one layer, as Starlette's router would take it (issue 19)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from gateway.middleware import Proxying

pytestmark = pytest.mark.anyio


class Refused(Exception):
    pass


async def router(scope: Scope, receive: Receive, send: Send) -> None:
    """What stands for the rest of the Starlette app: says it was reached."""
    await PlainTextResponse(f"router {scope['method']} {scope['path']}")(scope, receive, send)


async def endpoint(request: Request) -> Response:
    if request.url.path == "/refused":
        raise Refused
    if request.url.path == "/broken":
        raise LookupError("no such thing")
    if request.url.path == "/late":

        async def body() -> AsyncIterator[bytes]:
            yield b"part"
            raise Refused

        return StreamingResponse(body())
    route = request.scope["route"]
    return PlainTextResponse(f"proxied {request.scope['path_params']['path']} by {route.path}")


async def refused(request: Request, exc: Exception) -> Response:
    return PlainTextResponse("refused here", status_code=403)


def client() -> httpx.AsyncClient:
    app = Proxying(
        router,
        route=Route("/{path:path}", endpoint, methods=["GET", "POST"]),
        own_paths=["/sign-in"],
        handlers={Refused: refused},
    )
    return httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://gateway")


async def test_any_path_but_the_own_ones_goes_to_the_catch_all_route_with_the_routers_scope() -> None:
    async with client() as http:
        answer = await http.get("/page-5/1")
    assert answer.text == "proxied page-5/1 by /{path:path}"


async def test_the_gateways_own_paths_and_other_methods_go_on_to_the_router() -> None:
    async with client() as http:
        own = await http.get("/sign-in")
        other_method = await http.request("PROPFIND", "/page-5/1")
    assert own.text == "router GET /sign-in"
    assert other_method.text == "router PROPFIND /page-5/1"


async def test_an_error_before_the_answer_starts_gets_its_handlers_answer() -> None:
    async with client() as http:
        answer = await http.get("/refused")
    assert (answer.status_code, answer.text) == (403, "refused here")


async def test_an_error_no_handler_takes_goes_on_to_the_error_middleware_outside() -> None:
    async with client() as http:
        with pytest.raises(LookupError, match="no such thing"):
            await http.get("/broken")


async def test_a_handled_error_after_the_answer_started_is_not_answered_twice() -> None:
    async with client() as http:
        with pytest.raises(RuntimeError, match="response already started"):
            await http.get("/late")
