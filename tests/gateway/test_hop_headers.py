"""The headers an upstream gets from the gateway, pinned header for header (issue 19: the caller's headers are read
once from the scope and kept as bytes on the in-process hop; `GOLDEN` is what the gateway sent before that)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from starlette.datastructures import Headers
from starlette.requests import Request

from gateway.app import Gateway, request_cookies, without_cookies
from gateway.auth import SESSION_COOKIES, Identity, Method
from gateway.context import is_untrusted
from gateway.proxy import LimitedBody, Upstream, UpstreamPool, connection_headers
from gateway.settings import GatewaySettings
from gateway.table import Auth, Route, parse_table
from gateway.visitor import VISITOR_COOKIE
from oberon.headers import first_values
from tests.gateway.conftest import fake_upstream

pytestmark = pytest.mark.anyio

SETTINGS = GatewaySettings(session_secret="s" * 40, jwt_key="k" * 64, max_body_bytes=1000)
TABLE = """
[[route]]
prefix = "/"
upstream = "renderer"
auth = "optional"

[[route]]
prefix = "/shop"
upstream = "renderer"
auth = "none"
forward_cookies = true
forward_authorization = true
"""
RANDOM_PER_REQUEST = {"x-oberon-request-id", "x-request-id"}
VISITOR = "v1.07.abcdefghijklmnopqrstuv"


class Recorder:
    """The remote hop's transport: keeps the headers it is given, answers 200."""

    def __init__(self) -> None:
        self.seen: list[list[tuple[str, str]]] = []

    async def send(
        self, method: str, raw_path: bytes, *, headers: Any, body: LimitedBody | bytes | None, timeout: float
    ) -> httpx.Response:
        if isinstance(body, LimitedBody):
            async for _ in body:
                pass
        self.seen.append([(name, "-" if name.lower() in RANDOM_PER_REQUEST else value) for name, value in headers])
        return httpx.Response(200, headers=[("content-type", "text/plain")], stream=httpx.ByteStream(b"ok"))

    async def aclose(self) -> None:
        pass


class App:
    """The in-process hop's app: keeps the scope's headers, answers 200."""

    def __init__(self) -> None:
        self.seen: list[list[tuple[str, str]]] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        while (await receive()).get("more_body", False):
            pass
        headers = [(name.decode("latin-1"), value.decode("latin-1")) for name, value in scope["headers"]]
        self.seen.append([(name, "-" if name in RANDOM_PER_REQUEST else value) for name, value in headers])
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"ok"})


async def chunked(*parts: bytes) -> Any:
    for part in parts:
        yield part


CASES: dict[str, tuple[str, str, dict[str, Any]]] = {
    "browser": (
        "GET",
        "/page?q=1",
        {
            "headers": [
                ("Accept", "text/html"),
                ("Accept-Language", "de-CH, de;q=0.9"),
                ("User-Agent", "Mozilla/5.0 (iPhone) Mobile"),
                ("Cookie", f"a=1; oberon_visitor={VISITOR}"),
                ("Cookie", "b=2"),
                ("X-Oberon-User", "mallory"),
                ("X_Oberon_Roles", "admin"),
                ("X-Forwarded-For", "6.6.6.6"),
                ("X-Request-Id", "mine"),
                ("Forwarded", "for=6.6.6.6"),
                ("Connection", "keep-alive, X-Hop ,x-other"),
                ("X-Hop", "1"),
                ("X-Other", "2"),
                ("X-Kept", "one"),
                ("X-Kept", "two"),
                ("X-Latin", "caf\xe9".encode("latin-1")),
                ("Expect", "100-continue"),
            ]
        },
    ),
    "signed-in": ("GET", "/account/orders", {"headers": [("Accept", "application/json")], "session": True}),
    "forwarded-cookies": (
        "GET",
        "/shop/cart",
        {
            "headers": [
                ("Cookie", f"oberon_session=x; cart=3; oberon_visitor={VISITOR}"),
                ("Cookie", "oberon_visitor=v; __Host-oberon_session=y"),
                ("Authorization", "Basic Zm9vOmJhcg=="),
                ("TE", "trailers"),
            ]
        },
    ),
    "only-session-cookies": ("GET", "/shop/x", {"headers": [("Cookie", "oberon_session=x")]}),
    "form": ("POST", "/shop/form", {"content": b"a=1&b=2", "headers": [("Content-Type", "text/plain")]}),
    "chunked": ("POST", "/shop/upload", {"chunks": [b"one,", b"two"]}),
}


def gateway(target: Any) -> Gateway:
    """A gateway whose renderer is `target`: an app (the in-process hop) or a `Recorder` (a remote one)."""
    others = UpstreamPool.create({name: fake_upstream() for name in ("backend:users",)})
    hop = (
        Upstream("renderer", transport=target) if isinstance(target, Recorder) else Upstream.create("renderer", target)
    )
    routes = parse_table(TABLE, file="routes.toml", upstreams=["renderer", "backend:users"])
    return Gateway(table=routes, upstreams=UpstreamPool({**others, "renderer": hop}), settings=SETTINGS)


async def seen_by(target: Recorder | App, case: str) -> list[tuple[str, str]]:
    method, url, options = CASES[case]
    app = gateway(target)
    headers = list(options.get("headers", []))
    if options.get("session"):
        identity = Identity(user="u-42", roles=("buyer", "staff"), method=Method.SESSION)
        session = await app.sessions.create(identity, max_age=60)
        headers.append(("Cookie", app.codec.set_cookie(session.id, https=False).split(";")[0]))
    given: dict[str, Any] = {"headers": headers}
    if "content" in options:
        given["content"] = options["content"]
    if "chunks" in options:
        given["content"] = chunked(*options["chunks"])
    transport = httpx.ASGITransport(app=app.app(), client=("203.0.113.9", 5000))
    # Not httpx's defaults, which follow its version and the packages installed.
    defaults = {"User-Agent": "test-agent", "Accept-Encoding": "gzip"}
    async with httpx.AsyncClient(transport=transport, base_url="http://site.test", headers=defaults) as client:
        response = await client.request(method, url, **given)
    assert response.status_code == 200, response.text
    (seen,) = target.seen
    return seen


@pytest.mark.parametrize("case", sorted(CASES))
async def test_the_remote_hop_gets_the_headers_it_got_before(case: str) -> None:
    assert await seen_by(Recorder(), case) == GOLDEN[case]["remote"]


@pytest.mark.parametrize("case", sorted(CASES))
async def test_the_in_process_hop_gets_the_headers_it_got_before(case: str) -> None:
    assert await seen_by(App(), case) == GOLDEN[case]["direct"]


HEADER_LISTS: list[list[tuple[bytes, bytes]]] = [
    [],
    [(b"host", b"a"), (b"host", b"b"), (b"user-agent", b"x")],
    [(b"cookie", b"a=1; b=2"), (b"cookie", b"a=3; c"), (b"Cookie", b"d=4"), (b"accept-language", b"caf\xe9")],
    [(b"cookie", b""), (b"cookie", b'q="x y"; r=%20; =s')],
    [(b"content-length", b"12"), (b"content-length", b"13"), (b"transfer-encoding", b"chunked")],
]


@pytest.mark.parametrize("raw", HEADER_LISTS)
def test_first_values_and_request_cookies_read_the_scope_as_starlette_does(raw: list[tuple[bytes, bytes]]) -> None:
    request = Request({"type": "http", "headers": raw})
    first = first_values(raw)
    for name in {name.lower() for name, _ in raw} | {b"host", b"cookie", b"x-absent"}:  # the gateway asks lower-case
        found = first.get(name)
        assert (found.decode("latin-1") if found is not None else None) == Headers(raw=raw).get(name.decode())
    assert request_cookies(raw) == request.cookies


# What the gateway sent each hop before issue 19 kept the in-process hop's headers as bytes (`0ae9dee`).
GOLDEN: dict[str, dict[str, list[tuple[str, str]]]] = {
    "browser": {
        "remote": [
            ("accept-encoding", "gzip"),
            ("accept", "text/html"),
            ("accept-language", "de-CH, de;q=0.9"),
            ("user-agent", "Mozilla/5.0 (iPhone) Mobile"),
            ("x-kept", "one"),
            ("x-kept", "two"),
            ("x-latin", "café"),
            ("X-Oberon-Request-Id", "-"),
            ("X-Request-Id", "-"),
            ("X-Oberon-Auth", "anonymous"),
            ("X-Oberon-Locale", "en"),
            ("X-Oberon-Device", "mobile"),
            ("X-Forwarded-For", "203.0.113.9"),
            ("X-Forwarded-Proto", "http"),
            ("X-Forwarded-Host", "site.test"),
            ("X-Oberon-Bucket", "07"),
        ],
        "direct": [
            ("host", "renderer"),
            ("connection", "keep-alive"),
            ("accept-encoding", "gzip"),
            ("accept", "text/html"),
            ("accept-language", "de-CH, de;q=0.9"),
            ("user-agent", "Mozilla/5.0 (iPhone) Mobile"),
            ("x-kept", "one"),
            ("x-kept", "two"),
            ("x-latin", "café"),
            ("x-oberon-request-id", "-"),
            ("x-request-id", "-"),
            ("x-oberon-auth", "anonymous"),
            ("x-oberon-locale", "en"),
            ("x-oberon-device", "mobile"),
            ("x-forwarded-for", "203.0.113.9"),
            ("x-forwarded-proto", "http"),
            ("x-forwarded-host", "site.test"),
            ("x-oberon-bucket", "07"),
        ],
    },
    "chunked": {
        "remote": [
            ("accept", "*/*"),
            ("user-agent", "test-agent"),
            ("accept-encoding", "gzip"),
            ("X-Oberon-Request-Id", "-"),
            ("X-Request-Id", "-"),
            ("X-Oberon-Auth", "anonymous"),
            ("X-Oberon-Locale", "en"),
            ("X-Oberon-Device", "desktop"),
            ("X-Forwarded-For", "203.0.113.9"),
            ("X-Forwarded-Proto", "http"),
            ("X-Forwarded-Host", "site.test"),
        ],
        "direct": [
            ("host", "renderer"),
            ("connection", "keep-alive"),
            ("accept", "*/*"),
            ("user-agent", "test-agent"),
            ("accept-encoding", "gzip"),
            ("x-oberon-request-id", "-"),
            ("x-request-id", "-"),
            ("x-oberon-auth", "anonymous"),
            ("x-oberon-locale", "en"),
            ("x-oberon-device", "desktop"),
            ("x-forwarded-for", "203.0.113.9"),
            ("x-forwarded-proto", "http"),
            ("x-forwarded-host", "site.test"),
            ("content-length", "7"),
        ],
    },
    "form": {
        "remote": [
            ("accept", "*/*"),
            ("user-agent", "test-agent"),
            ("accept-encoding", "gzip"),
            ("content-type", "text/plain"),
            ("Content-Length", "7"),
            ("X-Oberon-Request-Id", "-"),
            ("X-Request-Id", "-"),
            ("X-Oberon-Auth", "anonymous"),
            ("X-Oberon-Locale", "en"),
            ("X-Oberon-Device", "desktop"),
            ("X-Forwarded-For", "203.0.113.9"),
            ("X-Forwarded-Proto", "http"),
            ("X-Forwarded-Host", "site.test"),
        ],
        "direct": [
            ("host", "renderer"),
            ("connection", "keep-alive"),
            ("accept", "*/*"),
            ("user-agent", "test-agent"),
            ("accept-encoding", "gzip"),
            ("content-type", "text/plain"),
            ("content-length", "7"),
            ("x-oberon-request-id", "-"),
            ("x-request-id", "-"),
            ("x-oberon-auth", "anonymous"),
            ("x-oberon-locale", "en"),
            ("x-oberon-device", "desktop"),
            ("x-forwarded-for", "203.0.113.9"),
            ("x-forwarded-proto", "http"),
            ("x-forwarded-host", "site.test"),
        ],
    },
    "forwarded-cookies": {
        "remote": [
            ("accept", "*/*"),
            ("user-agent", "test-agent"),
            ("accept-encoding", "gzip"),
            ("cookie", "cart=3"),
            ("authorization", "Basic Zm9vOmJhcg=="),
            ("X-Oberon-Request-Id", "-"),
            ("X-Request-Id", "-"),
            ("X-Oberon-Auth", "anonymous"),
            ("X-Oberon-Locale", "en"),
            ("X-Oberon-Device", "desktop"),
            ("X-Forwarded-For", "203.0.113.9"),
            ("X-Forwarded-Proto", "http"),
            ("X-Forwarded-Host", "site.test"),
        ],
        "direct": [
            ("host", "renderer"),
            ("connection", "keep-alive"),
            ("accept", "*/*"),
            ("user-agent", "test-agent"),
            ("accept-encoding", "gzip"),
            ("cookie", "cart=3"),
            ("authorization", "Basic Zm9vOmJhcg=="),
            ("x-oberon-request-id", "-"),
            ("x-request-id", "-"),
            ("x-oberon-auth", "anonymous"),
            ("x-oberon-locale", "en"),
            ("x-oberon-device", "desktop"),
            ("x-forwarded-for", "203.0.113.9"),
            ("x-forwarded-proto", "http"),
            ("x-forwarded-host", "site.test"),
        ],
    },
    "only-session-cookies": {
        "remote": [
            ("accept", "*/*"),
            ("user-agent", "test-agent"),
            ("accept-encoding", "gzip"),
            ("X-Oberon-Request-Id", "-"),
            ("X-Request-Id", "-"),
            ("X-Oberon-Auth", "anonymous"),
            ("X-Oberon-Locale", "en"),
            ("X-Oberon-Device", "desktop"),
            ("X-Forwarded-For", "203.0.113.9"),
            ("X-Forwarded-Proto", "http"),
            ("X-Forwarded-Host", "site.test"),
        ],
        "direct": [
            ("host", "renderer"),
            ("connection", "keep-alive"),
            ("accept", "*/*"),
            ("user-agent", "test-agent"),
            ("accept-encoding", "gzip"),
            ("x-oberon-request-id", "-"),
            ("x-request-id", "-"),
            ("x-oberon-auth", "anonymous"),
            ("x-oberon-locale", "en"),
            ("x-oberon-device", "desktop"),
            ("x-forwarded-for", "203.0.113.9"),
            ("x-forwarded-proto", "http"),
            ("x-forwarded-host", "site.test"),
        ],
    },
    "signed-in": {
        "remote": [
            ("user-agent", "test-agent"),
            ("accept-encoding", "gzip"),
            ("accept", "application/json"),
            ("X-Oberon-Request-Id", "-"),
            ("X-Request-Id", "-"),
            ("X-Oberon-Auth", "session"),
            ("X-Oberon-Locale", "en"),
            ("X-Oberon-Device", "desktop"),
            ("X-Forwarded-For", "203.0.113.9"),
            ("X-Forwarded-Proto", "http"),
            ("X-Forwarded-Host", "site.test"),
            ("X-Oberon-User", "u-42"),
            ("X-Oberon-Roles", "buyer,staff"),
        ],
        "direct": [
            ("host", "renderer"),
            ("connection", "keep-alive"),
            ("user-agent", "test-agent"),
            ("accept-encoding", "gzip"),
            ("accept", "application/json"),
            ("x-oberon-request-id", "-"),
            ("x-request-id", "-"),
            ("x-oberon-auth", "session"),
            ("x-oberon-locale", "en"),
            ("x-oberon-device", "desktop"),
            ("x-forwarded-for", "203.0.113.9"),
            ("x-forwarded-proto", "http"),
            ("x-forwarded-host", "site.test"),
            ("x-oberon-user", "u-42"),
            ("x-oberon-roles", "buyer,staff"),
        ],
    },
}


def _upstream_headers_before(raw: list[tuple[bytes, bytes]], route: Route) -> list[tuple[bytes, bytes]]:
    """`Gateway._upstream_headers` as it was before a header's kind was worked out once per name (`eda40af`)."""
    connection = [(n.decode("latin-1"), v.decode("latin-1")) for n, v in raw if n.lower() == b"connection"]
    drop = connection_headers(connection) | {"host", "expect", "content-length"}
    headers = []
    for name, value in raw:
        lowered = name.decode("latin-1").lower()
        if lowered in drop or is_untrusted(lowered):
            continue
        if lowered == "authorization" and not route.forward_authorization:
            continue
        if lowered == "cookie":
            if not route.forward_cookies:
                continue
            kept = without_cookies(value.decode("latin-1"), (*SESSION_COOKIES, VISITOR_COOKIE))
            if not kept:
                continue
            value = kept.encode("latin-1")
        headers.append((name, value))
    return headers


@pytest.mark.parametrize("forwards", [False, True])
@pytest.mark.parametrize(
    "raw",
    [
        [(b"accept", b"*/*"), (b"user-agent", b"wrk")],
        [(b"x-kept", b"1"), (b"authorization", b"Basic x"), (b"connection", b"X-Kept, cookie"), (b"cookie", b"a=1")],
        [(b"Cookie", b"oberon_session=s; a=1"), (b"AUTHORIZATION", b"Bearer t"), (b"Connection", b"authorization")],
        [(b"x_oberon_user", b"m"), (b"X-Forwarded-Host", b"h"), (b"te", b"trailers"), (b"expect", b"100-continue")],
        [(b"connection", b"close"), (b"connection", b" X-A ,x-b"), (b"x-a", b"1"), (b"X-B", b"2"), (b"x-c", b"3")],
        [(b"cookie", b"oberon_session=s"), (b"x-caf\xe9", b"\xe9"), (b"content-length", b"3"), (b"host", b"h")],
    ],
)
def test_upstream_headers_drop_what_they_dropped_before(raw: list[tuple[bytes, bytes]], forwards: bool) -> None:
    route = Route(
        prefix="/", upstream="renderer", auth=Auth.NONE, forward_authorization=forwards, forward_cookies=forwards
    )
    app = gateway(fake_upstream())
    assert app._upstream_headers(raw, route) == _upstream_headers_before(raw, route)
