"""`Proxying`: the gateway's catch-all route taken in one layer, as Starlette's router would take it (issue 19)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import anyio
import httpx
import pytest
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse
from starlette.routing import Match, Route
from starlette.types import Message, Receive, Scope, Send

from gateway.middleware import CatchAll, Proxying

_FULL = Match.FULL

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


async def server_error(request: Request, exc: Exception) -> Response:
    errors.append((request.url.path, exc))
    return PlainTextResponse("went wrong", status_code=500)


errors: list[tuple[str, Exception]] = []


@pytest.mark.parametrize("path", ["/broken", "/late"])
async def test_with_a_server_error_handler_an_error_no_handler_takes_is_answered_once_and_raised_on(path: str) -> None:
    """As Starlette's `ServerErrorMiddleware`: the handler is told, its answer sent unless one started, the error raised
    on for the server to log."""
    errors.clear()
    app = Proxying(
        router,
        route=Route("/{path:path}", endpoint, methods=["GET"]),
        own_paths=[],
        handlers={Refused: refused},
        server_error=server_error,
    )
    sent: list[Message] = []
    requests = [{"type": "http.request", "body": b"", "more_body": False}]

    async def receive() -> Message:
        if requests:
            return requests.pop()
        await anyio.sleep_forever()  # the client stays: a streamed answer listens for it to leave
        raise AssertionError

    async def send(message: Message) -> None:
        sent.append(message)

    scope: Scope = {"type": "http", "method": "GET", "path": path, "root_path": "", "headers": [], "query_string": b""}
    with pytest.raises(LookupError if path == "/broken" else RuntimeError):
        await app(scope, receive, send)
    ((seen_path, error),) = errors
    assert seen_path == path
    starts = [message for message in sent if message["type"] == "http.response.start"]
    if path == "/broken":  # nothing started: the handler's answer
        assert isinstance(error, LookupError)
        assert [start["status"] for start in starts] == [500]
        assert sent[-1]["body"] == b"went wrong"
    else:  # the streamed answer had started: told, not answered twice
        assert isinstance(error, RuntimeError) and "already started" in str(error)
        assert [start["status"] for start in starts] == [200]


async def test_a_handled_error_after_the_answer_started_is_not_answered_twice() -> None:
    async with client() as http:
        with pytest.raises(RuntimeError, match="response already started"):
            await http.get("/late")


@pytest.mark.parametrize(
    ("path", "root_path", "method", "given"),
    [
        ("/", "", "GET", None),
        ("/page-5/1", "", "GET", None),
        ("/a b/ü", "", "POST", None),
        ("/page-5/1", "", "GET", {"tenant": "x"}),
        ("/a\n", "", "GET", None),  # a line break at the end: the regex's `$` takes it
        ("/a\nb", "", "GET", None),  # one before the end: no match, the router's
        ("/r/page", "/r", "GET", None),  # mounted: the path within the mount
        ("/page-5/1", "", "PROPFIND", None),
    ],
)
async def test_the_written_out_match_gives_the_scope_starlettes_route_gives(
    path: str, root_path: str, method: str, given: dict[str, str] | None
) -> None:
    route = Route("/{path:path}", endpoint, methods=["GET", "POST"])
    seen: list[Scope] = []

    async def noted(request: Request) -> Response:
        seen.append(dict(request.scope))
        return PlainTextResponse("proxied")

    async def noted_router(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append({})
        await router(scope, receive, send)

    app = Proxying(noted_router, route=CatchAll(noted, methods=["GET", "POST"]), own_paths=[], handlers={})
    scope: Scope = {"type": "http", "method": method, "path": path, "root_path": root_path, "headers": []}
    if given is not None:
        scope["path_params"] = given
    sent: list[dict[str, object]] = []

    async def receive() -> dict[str, object]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, object]) -> None:
        sent.append(message)

    await app(dict(scope), receive, send)
    match, expected = route.matches(dict(scope))
    if match is _FULL:
        assert seen[0]["path_params"] == expected["path_params"]
        assert seen[0]["endpoint"] is noted
        assert seen[0]["route"].path == "/{path:path}"
    else:
        assert seen == [{}]  # the router's


async def test_a_route_other_than_the_catch_all_is_matched_by_starlette() -> None:
    app = Proxying(
        router, route=Route("/pages/{name}", endpoint, methods=["GET"]), own_paths=[], handlers={Refused: refused}
    )
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://gateway") as http:
        other = await http.get("/else/where")
        deeper = await http.get("/pages/a/b")
    assert other.text == "router GET /else/where"
    assert deeper.text == "router GET /pages/a/b"
