"""The gateway in process, in front of fake upstreams, a dead one and the users stand-in."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from starlette.applications import Starlette
from starlette.types import Message, Receive, Scope, Send

from gateway.auth import SESSION_COOKIE, SIGN_IN_PATH, Identity, Method
from gateway.middleware import Entrance
from gateway.table import parse_table
from tests.gateway.conftest import (
    TABLE,
    CookieHeader,
    GatewayFactory,
    make_token,
    received,
    received_headers,
    upstream_names,
)

pytestmark = pytest.mark.anyio

HTML = {"Accept": "text/html,application/xhtml+xml"}
ALICE = Identity(user="alice", roles=("customer",), method=Method.SESSION)


async def test_gateway_deletes_every_incoming_oberon_header(client: httpx.AsyncClient) -> None:
    headers = [
        ("X-Oberon-User", "admin"),
        ("x-oberon-user", "root"),
        ("X-OBERON-ROLES", "staff"),
        ("X_Oberon_User", "admin"),
        ("X-Oberon-Auth", "session"),
        ("X-Oberon-Something-New", "1"),
        ("X-Forwarded-For", "10.9.9.9"),
        ("Forwarded", "for=10.9.9.9"),
    ]
    response = await client.get("/anything", headers=headers)
    names = [name.lower() for name, _ in received(response)["headers"]]
    assert "x-oberon-user" not in names and "x_oberon_user" not in names
    assert "x-oberon-roles" not in names and "x-oberon-something-new" not in names and "forwarded" not in names
    assert received_headers(response, "X-Oberon-Auth") == ["anonymous"]
    assert received_headers(response, "X-Forwarded-For") == ["127.0.0.1"]


async def test_gateway_deletes_an_oberon_header_folded_over_lines(client: httpx.AsyncClient) -> None:
    # Servers unfold obs-fold into one value; the header is still deleted whole by its name.
    response = await client.get("/anything", headers={"X-Oberon-User": "admin\t staff"})
    assert received_headers(response, "X-Oberon-User") == []


async def test_gateway_sets_the_verified_context(client: httpx.AsyncClient, session_cookie: CookieHeader) -> None:
    response = await client.get(
        "/anything",
        headers={
            "X-Request-Id": "trace-42",
            "Accept-Language": "de-DE, en;q=0.5",
            "User-Agent": "iPhone Mobile",
            **session_cookie(),
        },
    )
    assert received_headers(response, "X-Oberon-User") == ["alice"]
    assert received_headers(response, "X-Oberon-Roles") == ["customer"]
    assert received_headers(response, "X-Oberon-Auth") == ["session"]
    assert received_headers(response, "X-Oberon-Locale") == ["en"]
    assert received_headers(response, "X-Oberon-Device") == ["mobile"]


async def test_gateway_never_adopts_an_untrusted_callers_request_id(client: httpx.AsyncClient) -> None:
    # The id is repeated in the answer, which a CDN may share with others: a caller's own text never is.
    response = await client.get("/anything", headers={"X-Request-Id": "trace-42"})
    (given,) = received_headers(response, "X-Oberon-Request-Id")
    assert given != "trace-42" and response.headers["x-oberon-request-id"] == given


async def test_gateway_adopts_a_trusted_proxys_request_id(make_gateway: GatewayFactory) -> None:
    gateway = make_gateway(trusted_proxies=("127.0.0.1",))  # the test client's address
    transport = httpx.ASGITransport(app=gateway.app())
    async with httpx.AsyncClient(transport=transport, base_url="http://site.test") as client:
        response = await client.get("/anything", headers={"X-Request-Id": "trace-42"})
    assert received_headers(response, "X-Oberon-Request-Id") == ["trace-42"]
    assert response.headers["x-oberon-request-id"] == "trace-42"


async def test_gateway_never_forwards_the_session_cookie_or_a_verified_token(
    client: httpx.AsyncClient, session_cookie: CookieHeader
) -> None:
    response = await client.get(
        "/anything", headers={"Authorization": f"Bearer {make_token()}", **session_cookie(theme="dark")}
    )
    assert received_headers(response, "Cookie") == []
    assert received_headers(response, "Authorization") == []
    assert received_headers(response, "X-Oberon-Auth") == ["bearer"]


async def test_gateway_treats_a_forged_user_header_as_anonymous(client: httpx.AsyncClient) -> None:
    response = await client.get("/anything", headers={"X-Oberon-User": "admin", "X-Oberon-Roles": "staff"})
    assert received_headers(response, "X-Oberon-User") == []
    assert received_headers(response, "X-Oberon-Auth") == ["anonymous"]


async def test_gateway_makes_answers_to_a_signed_in_caller_private(
    client: httpx.AsyncClient, session_cookie: CookieHeader
) -> None:
    assert (await client.get("/anything")).headers["cache-control"] == "public, max-age=60"
    response = await client.get("/anything", headers=session_cookie())
    assert response.headers["cache-control"] == "private, no-store"


async def test_gateway_ignores_an_invalid_session_cookie(client: httpx.AsyncClient) -> None:
    response = await client.get("/anything", headers={"Cookie": f"{SESSION_COOKIE}=forged.value.here"})
    assert received_headers(response, "X-Oberon-Auth") == ["anonymous"]


async def test_gateway_redirects_a_browser_without_a_session_to_sign_in(client: httpx.AsyncClient) -> None:
    response = await client.get("/account/orders?page=2", headers=HTML)
    assert response.status_code == 303
    assert response.headers["location"] == "/auth/sign-in?next=%2Faccount%2Forders%3Fpage%3D2"
    assert response.headers["cache-control"] == "no-store"


async def test_gateway_answers_an_api_call_without_a_session_with_401(client: httpx.AsyncClient) -> None:
    response = await client.get("/account", headers={"Accept": "application/json"})
    assert response.status_code == 401
    assert response.json()["error"] == "authentication required"
    assert response.headers["www-authenticate"].startswith("Bearer")


async def test_gateway_lets_a_session_through_a_required_route(
    client: httpx.AsyncClient, session_cookie: CookieHeader
) -> None:
    response = await client.get("/account", headers=session_cookie())
    assert received(response)["path"] == "/account"


async def test_gateway_does_not_reach_a_required_route_through_dot_segments(client: httpx.AsyncClient) -> None:
    response = await client.get("/_oberon/assets/%2e%2e/%2e%2e/account", headers=HTML)
    assert response.status_code == 303


@pytest.mark.parametrize(
    "token",
    [
        make_token(key="the-wrong-key-but-long-enough-for-the-hmac-checks-to-run-through"),
        "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJzdWIiOiJhZG1pbiIsImF1ZCI6Im9iZXJvbiIsImV4cCI6OTk5OTk5OTk5OX0.",
        make_token(exp=1),
        make_token(aud="another-service"),
    ],
    ids=["wrong-key", "alg-none", "expired", "other-audience"],
)
async def test_gateway_answers_an_invalid_bearer_token_with_401(client: httpx.AsyncClient, token: str) -> None:
    response = await client.get("/anything", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401
    assert 'error="invalid_token"' in response.headers["www-authenticate"]
    assert "request_id" in response.json()


async def test_an_empty_authorization_header_without_cookies_is_still_checked(client: httpx.AsyncClient) -> None:
    """A request with neither cookies nor an Authorization header is anonymous without authenticating; an empty
    Authorization header is one, and is refused as before."""
    response = await client.get("/anything", headers={"Authorization": ""})
    assert response.status_code == 401
    response = await client.get("/anything")
    assert received_headers(response, "X-Oberon-Auth") == ["anonymous"]


async def test_gateway_accepts_a_valid_bearer_token_on_a_required_route(client: httpx.AsyncClient) -> None:
    response = await client.get("/account", headers={"Authorization": f"Bearer {make_token(sub='bob')}"})
    assert received_headers(response, "X-Oberon-User") == ["bob"]


async def test_gateway_keeps_the_callers_authorization_from_a_route_without_auth(client: httpx.AsyncClient) -> None:
    response = await client.get("/_oberon/assets/x.css", headers={"Authorization": "Bearer an-admin-token"})
    assert received_headers(response, "Authorization") == []
    assert received_headers(response, "X-Oberon-Auth") == ["anonymous"]


async def test_gateway_forwards_authorization_where_the_route_says_so(make_gateway: GatewayFactory) -> None:
    extra = '[[route]]\nprefix = "/_oberon/admin"\nupstream = "renderer"\nauth = "none"\nforward_authorization = true\n'
    routes = TABLE + extra
    gateway = make_gateway(routes=parse_table(routes, file="routes.toml", upstreams=upstream_names()))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=gateway.app()), base_url="http://t") as client:
        response = await client.get("/_oberon/admin/x", headers={"Authorization": "Bearer not-a-jwt"})
    assert received_headers(response, "Authorization") == ["Bearer not-a-jwt"]


async def test_gateway_strips_the_prefix_and_keeps_the_query(client: httpx.AsyncClient) -> None:
    answer = received(await client.get("/bff/shop/items/1?colour=red&size=2"))
    assert answer["path"] == "/items/1"
    assert answer["query"] == "colour=red&size=2"


async def test_gateway_refuses_a_method_the_route_does_not_allow(client: httpx.AsyncClient) -> None:
    response = await client.post("/_oberon/assets/x.css")
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, HEAD"


async def test_gateway_streams_a_request_body_to_the_upstream(client: httpx.AsyncClient) -> None:
    response = await client.post("/anything", content=b"x" * 1000)
    assert received(response)["body_bytes"] == 1000


async def test_gateway_refuses_a_body_over_the_limit_by_its_length(client: httpx.AsyncClient) -> None:
    response = await client.post("/anything", content=b"x" * 1001)
    assert response.status_code == 413
    assert response.json()["error"] == "The request body is larger than 1000 bytes."


async def test_gateway_refuses_a_chunked_body_over_the_limit(client: httpx.AsyncClient) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(5):
            yield b"x" * 300

    response = await client.post("/anything", content=chunks())
    assert response.status_code == 413


async def test_gateway_refuses_headers_over_the_limit_with_431(client: httpx.AsyncClient) -> None:
    response = await client.get("/anything", headers={"X-Big": "x" * 5000})
    assert response.status_code == 431


@pytest.mark.parametrize(("extra", "status"), [(0, 200), (1, 431)])
async def test_the_header_limit_counts_each_field_as_on_the_wire(extra: int, status: int) -> None:
    """`name: value\r\n` for each field: a request exactly at the limit passes, one byte more is refused."""
    headers = [(b"host", b"site.test"), (b"x-a", b"1"), (b"x-b", b"")]
    size = sum(len(name) + len(value) + 4 for name, value in headers)
    headers.append((b"x-pad", b"p" * (100 - size - len(b"x-pad") - 4 + extra)))
    seen: list[int] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(200)

    async def send(message: Message) -> None:
        if message["type"] == "http.response.start":
            seen.append(message["status"])

    scope = {"type": "http", "path": "/", "raw_path": b"/", "query_string": b"", "headers": headers}

    async def receive() -> Message:
        return {"type": "http.disconnect"}

    await Entrance(app, max_header_bytes=100)(scope, receive, send)
    assert seen == [status]


async def test_gateway_refuses_a_url_over_the_limit_with_414(client: httpx.AsyncClient) -> None:
    response = await client.get("/anything?q=" + "x" * 5000)
    assert response.status_code == 414


async def test_gateway_drops_upstream_cookies_and_hop_by_hop_headers(client: httpx.AsyncClient) -> None:
    response = await client.get("/page")
    assert response.status_code == 200
    assert "set-cookie" not in response.headers
    assert "x-secret-hop" not in response.headers
    assert response.headers["x-upstream"] == "renderer"


async def test_gateway_removes_hop_by_hop_headers_from_the_request(client: httpx.AsyncClient) -> None:
    response = await client.get(
        "/anything", headers={"Connection": "keep-alive, X-Private", "X-Private": "1", "TE": "x"}
    )
    names = {name.lower() for name, _ in received(response)["headers"]}
    assert not names & {"x-private", "te"}
    assert received_headers(response, "Connection") == ["keep-alive"]  # the gateway's own hop to the upstream


async def test_gateway_streams_a_response(client: httpx.AsyncClient) -> None:
    async with client.stream("GET", "/stream") as response:
        assert [line async for line in response.aiter_lines()] == ["chunk 0", "chunk 1", "chunk 2"]


async def test_gateway_puts_security_headers_on_html(client: httpx.AsyncClient) -> None:
    response = await client.get("/page")
    csp = response.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in csp and "default-src 'self'" in csp and "object-src 'none'" in csp
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "strict-origin-when-cross-origin"
    json_response = await client.get("/anything")
    assert "content-security-policy" not in json_response.headers
    assert json_response.headers["x-content-type-options"] == "nosniff"


async def test_gateway_csp_allows_the_asset_origin(make_gateway: GatewayFactory) -> None:
    gateway = make_gateway(asset_origin="http://localhost:8001")
    transport = httpx.ASGITransport(app=gateway.app())
    async with httpx.AsyncClient(transport=transport, base_url="http://site.test") as client:
        csp = (await client.get("/page")).headers["content-security-policy"]
    assert "script-src 'self' http://localhost:8001" in csp
    assert "style-src 'self' http://localhost:8001" in csp


async def test_gateway_answers_502_naming_a_dead_upstream(client: httpx.AsyncClient) -> None:
    response = await client.get("/bff/dead/anything")
    assert response.status_code == 502
    assert response.json()["upstream"] == "bff:dead"
    page = await client.get("/bff/dead/anything", headers=HTML)
    assert page.status_code == 502
    assert "The bff:dead service is not answering right now." in page.text
    assert "Traceback" not in page.text and "ConnectError" not in page.text
    assert "content-security-policy" in page.headers


async def test_gateway_answers_504_for_a_slow_upstream(client: httpx.AsyncClient) -> None:
    response = await client.get("/bff/shop/slow")
    assert response.status_code == 504
    assert response.json()["upstream"] == "bff:shop"


async def test_gateway_answers_404_without_a_route(make_gateway: GatewayFactory) -> None:
    from gateway.table import Auth, Route, RouteTable

    gateway = make_gateway()
    gateway.table = RouteTable([Route(prefix="/only", upstream="renderer", auth=Auth.NONE)])
    transport = httpx.ASGITransport(app=gateway.app())
    async with httpx.AsyncClient(transport=transport, base_url="http://site.test") as client:
        assert (await client.get("/elsewhere")).status_code == 404


async def test_gateway_public_health_says_ok_and_names_no_upstream(client: httpx.AsyncClient) -> None:
    health = await client.get("/_oberon/health")
    assert health.status_code == 200 and health.json() == {"status": "ok"}  # a BFF is dead; pages still render
    assert "renderer" not in health.text and "bff" not in health.text


async def test_gateway_admin_health_reports_each_upstream(make_gateway: GatewayFactory) -> None:
    admin = Starlette(routes=make_gateway().admin_routes())  # what the admin listener serves
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=admin), base_url="http://admin") as client:
        health = (await client.get("/_oberon/health")).json()
    assert health["service"] == "gateway"
    assert health["status"] == "degraded"
    assert health["upstreams"]["renderer"]["reachable"] is True
    assert health["upstreams"]["bff:dead"]["reachable"] is False


async def test_gateway_admin_route_fails_closed_without_an_admin_token(client: httpx.AsyncClient) -> None:
    refused = await client.get("/_backends/users/users/alice")
    assert refused.status_code == 403
    assert "OBERON_ADMIN_TOKEN" in refused.json()["error"]
    assert (await client.put("/_backends/users/_faults", json={"down": True})).status_code == 403
    assert (await client.get("/_backends/users/health", headers={"Authorization": "Bearer "})).status_code == 403


async def test_gateway_admin_route_needs_the_admin_token_when_set(make_gateway: GatewayFactory) -> None:
    gateway = make_gateway(admin_token="s3cret-admin-token")
    transport = httpx.ASGITransport(app=gateway.app())
    async with httpx.AsyncClient(transport=transport, base_url="http://site.test") as client:
        assert (await client.get("/_backends/users/health")).status_code == 401
        wrong = {"Authorization": "Bearer nope"}
        assert (await client.get("/_backends/users/health", headers=wrong)).status_code == 401
        right = {"Authorization": "Bearer s3cret-admin-token"}
        assert (await client.get("/_backends/users/health", headers=right)).status_code == 200


async def test_gateway_sign_in_form_keeps_only_a_safe_next(client: httpx.AsyncClient) -> None:
    page = await client.get("/auth/sign-in", params={"next": "/account"})
    assert page.status_code == 200
    assert 'name="next" value="/account"' in page.text
    assert page.headers["cache-control"] == "no-store"
    assert "content-security-policy" in page.headers
    evil = await client.get("/auth/sign-in", params={"next": "//evil.example"})
    assert 'name="next" value="/"' in evil.text


async def test_gateway_sign_in_starts_a_session(client: httpx.AsyncClient) -> None:
    form = {"username": "alice", "password": "alice-tickets", "next": "/account"}
    response = await client.post("/auth/sign-in", data=form)
    assert response.status_code == 303
    assert response.headers["location"] == "/account"
    cookie = response.headers["set-cookie"]
    assert cookie.startswith(f"{SESSION_COOKIE}=")
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Path=/" in cookie
    assert "Secure" not in cookie  # served over plain http
    account = await client.get("/account")
    assert received_headers(account, "X-Oberon-User") == ["alice"]


async def test_gateway_sign_in_never_redirects_off_site(client: httpx.AsyncClient) -> None:
    form = {"username": "alice", "password": "alice-tickets", "next": "https://evil.example/"}
    response = await client.post("/auth/sign-in", data=form)
    assert response.headers["location"] == "/"


async def test_gateway_sign_in_refuses_a_wrong_password(client: httpx.AsyncClient) -> None:
    response = await client.post("/auth/sign-in", data={"username": "alice", "password": "guess", "next": "/"})
    assert response.status_code == 401
    assert "set-cookie" not in response.headers
    assert "The user name or password is not right." in response.text
    assert 'value="alice"' in response.text


async def test_gateway_sign_in_refuses_a_form_from_another_site(client: httpx.AsyncClient) -> None:
    form = {"username": "alice", "password": "alice-tickets"}
    response = await client.post("/auth/sign-in", data=form, headers={"Origin": "https://evil.example"})
    assert response.status_code == 403
    response = await client.post("/auth/sign-in", data=form, headers={"Sec-Fetch-Site": "cross-site"})
    assert response.status_code == 403
    same = await client.post("/auth/sign-in", data=form, headers={"Origin": "http://site.test"})
    assert same.status_code == 303


async def test_gateway_sets_a_secure_cookie_behind_a_trusted_https_proxy(make_gateway: GatewayFactory) -> None:
    gateway = make_gateway(trusted_proxies=("127.0.0.1",))
    transport = httpx.ASGITransport(app=gateway.app())
    async with httpx.AsyncClient(transport=transport, base_url="http://site.test") as client:
        form = {"username": "bob", "password": "bob-tickets"}
        response = await client.post("/auth/sign-in", data=form, headers={"X-Forwarded-Proto": "https"})
        assert response.headers["set-cookie"].endswith("; Secure")
        assert response.headers["strict-transport-security"].startswith("max-age=")
        answer = await client.get("/anything", headers={"X-Forwarded-For": "203.0.113.9"})
        assert received_headers(answer, "X-Forwarded-For") == ["203.0.113.9"]


async def test_gateway_ignores_forwarded_proto_from_an_untrusted_peer(client: httpx.AsyncClient) -> None:
    form = {"username": "bob", "password": "bob-tickets"}
    response = await client.post("/auth/sign-in", data=form, headers={"X-Forwarded-Proto": "https"})
    assert "Secure" not in response.headers["set-cookie"]
    answer = await client.get("/anything", headers={"X-Forwarded-Proto": "https"})
    assert received_headers(answer, "X-Forwarded-Proto") == ["http"]


async def test_gateway_sign_out_ends_the_session(client: httpx.AsyncClient) -> None:
    await client.post("/auth/sign-in", data={"username": "alice", "password": "alice-tickets"})
    confirm = await client.get("/auth/sign-out")
    assert "signed in as <strong>alice</strong>" in confirm.text
    response = await client.post("/auth/sign-out")
    assert response.status_code == 303
    assert response.headers["location"] == "/"
    assert "Max-Age=0" in response.headers["set-cookie"]
    assert received_headers(await client.get("/anything"), "X-Oberon-Auth") == ["anonymous"]


async def test_gateway_sign_in_says_which_service_is_down(make_gateway: GatewayFactory) -> None:
    gateway = make_gateway()
    gateway.directory.upstream = gateway.upstreams["bff:dead"]
    transport = httpx.ASGITransport(app=gateway.app())
    async with httpx.AsyncClient(transport=transport, base_url="http://site.test") as client:
        response = await client.post("/auth/sign-in", data={"username": "a", "password": "b"}, headers=HTML)
    assert response.status_code == 502
    assert "bff:dead" in response.text


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        ("&".join(f"f{n}=x" for n in range(9)), "application/x-www-form-urlencoded"),  # too many fields
        ("username=alice&password", "application/x-www-form-urlencoded"),  # a field without `=`
        ("username=alice&username=bob&password=x", "application/x-www-form-urlencoded"),
        ("username=" + "a" * 2000 + "&password=x", "application/x-www-form-urlencoded"),
        (b"username=\xff\xfe&password=x", "application/x-www-form-urlencoded"),  # not UTF-8
        ('{"username": "alice", "password": "alice-tickets"}', "application/json"),
        ("", "application/x-www-form-urlencoded"),
    ],
)
async def test_gateway_sign_in_answers_a_malformed_form_with_a_4xx(
    client: httpx.AsyncClient, body: str | bytes, content_type: str
) -> None:
    response = await client.post("/auth/sign-in", content=body, headers={"Content-Type": content_type})
    assert 400 <= response.status_code < 500
    assert "set-cookie" not in response.headers


async def test_gateway_never_forwards_a_public_path_to_an_upstreams_platform_endpoints(
    client: httpx.AsyncClient,
) -> None:
    # A BFF's /_oberon/health shows its breakers and caches: the cluster's to read, not the internet's.
    paths = ["/bff/shop/_oberon/health", "/bff/shop/_oberon", "/bff/shop//_oberon/health", "/bff/shop/x/../_oberon/"]
    for path in paths:
        response = await client.get(path)
        assert response.status_code == 404, path
        assert "upstreams" not in response.text, path
    assert (await client.get("/bff/shop/_oberonish")).status_code == 200  # whole segments only
    assert (await client.get("/_oberon/assets/app.js")).status_code == 200  # the renderer's own, under its own path


async def test_gateway_error_pages_carry_the_request_s_context_id(make_gateway: GatewayFactory) -> None:
    """The context kept for the error handlers (`keep_context`, `request.state.context`) is the request's own."""
    gateway = make_gateway(trusted_proxies=("127.0.0.1",))  # the test client's address
    transport = httpx.ASGITransport(app=gateway.app())
    async with httpx.AsyncClient(transport=transport, base_url="http://site.test") as client:
        missing = await client.get("/bff/shop/_oberon/health", headers={"X-Request-Id": "trace-43"})
        too_slow = await client.get("/bff/shop/slow", headers={"X-Request-Id": "trace-44"})
    assert missing.status_code == 404 and missing.json()["request_id"] == "trace-43"
    assert missing.headers["x-oberon-request-id"] == "trace-43"
    assert too_slow.status_code == 504 and too_slow.json()["request_id"] == "trace-44"


@pytest.mark.parametrize(("path", "broken_part"), [("/anything", "visitor"), (SIGN_IN_PATH, "sign_in")])
async def test_an_unexpected_error_gets_the_gateways_error_page_with_the_security_headers(
    make_gateway: GatewayFactory,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    path: str,
    broken_part: str,
) -> None:
    """A page's (taken by `Proxying`) and the gateway's own endpoint's (Starlette's error middleware): the same
    answer, logged, and the error raised on for the server."""
    gateway = make_gateway()

    def broken(*args: object, **kwargs: object) -> None:
        raise LookupError("no such thing")

    monkeypatch.setattr(gateway, broken_part, broken)
    transport = httpx.ASGITransport(app=gateway.app(), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://site.test") as client:
        response = await client.get(path, headers=HTML)
    assert response.status_code == 500
    assert "Something went wrong" in response.text
    assert response.headers["x-frame-options"] and response.headers["content-security-policy"]
    assert response.headers["x-content-type-options"] == "nosniff"
    assert any("unhandled error on " + path in record.getMessage() for record in caplog.records)
    transport = httpx.ASGITransport(app=gateway.app())
    async with httpx.AsyncClient(transport=transport, base_url="http://site.test") as client:
        with pytest.raises(LookupError):
            await client.get(path, headers=HTML)
