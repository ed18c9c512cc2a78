"""The visitor cookie: a canary bucket for good, only when the site follows a registry, never on a shared answer."""

from __future__ import annotations

import re

import httpx
import pytest

from gateway.app import Gateway
from gateway.table import parse_table
from gateway.visitor import MAX_AGE, Visitor, is_page_request
from oberon.headers import BUCKET_HEADER, cohort
from tests.gateway.conftest import TABLE, GatewayFactory, received_headers, upstream_names

pytestmark = pytest.mark.anyio

VISITOR = "v1.07.abcdefghijklmnopqrstuv"
SET_COOKIE = re.compile(
    r"^oberon_visitor=(v1\.([0-9]{2})\.[A-Za-z0-9_-]{22,}); Path=/; Max-Age=31536000; SameSite=Lax; HttpOnly$"
)
HOSTILE = [
    "",
    "v1.7.abcdefghijklmnopqrstuv",  # one digit
    "v1.100.abcdefghijklmnopqrstuv",
    "v2.07.abcdefghijklmnopqrstuv",
    "v1.07.short",
    "v1.07.abcdefghijklmnopqrstu!",
    "v1.07.abcdefghijklmnopqrstuv.extra",
    "<script>alert(1)</script>",
    '"v1.07.abcdefghijklmnopqrstuv',
    "v1.07.abcdefghijklmnopqrstuv%0d%0aSet-Cookie:%20evil=1",
    "v1.07.abcdefghijklmnopqrstuv\\u000d",
    "v1.07." + "a" * 65,
]


async def fetch(
    gateway: Gateway, path: str, *, method: str = "GET", headers: dict[str, str] | None = None
) -> httpx.Response:
    """One request from a browser with only the cookies given (a client of its own: httpx would keep them)."""
    transport = httpx.ASGITransport(app=gateway.app())
    async with httpx.AsyncClient(transport=transport, base_url="http://site.test") as client:
        return await client.request(method, path, headers=headers)


def visitor_of(response: httpx.Response) -> tuple[str, str]:
    """The id and bucket of the visitor cookie an answer sets (and that it sets exactly one)."""
    cookies = response.headers.get_list("set-cookie")
    assert len(cookies) == 1, cookies
    match = SET_COOKIE.match(cookies[0])
    assert match is not None, cookies[0]
    return match.group(1), match.group(2)


async def test_gateway_sets_no_visitor_cookie_for_a_site_without_a_registry(make_gateway: GatewayFactory) -> None:
    response = await fetch(make_gateway(), "/e/1", headers={"Accept": "text/html"})
    assert "set-cookie" not in response.headers
    assert response.headers["cache-control"] == "public, max-age=60"  # the upstream's, still shareable
    assert received_headers(response, BUCKET_HEADER) == []


async def test_gateway_gives_a_new_visitor_a_bucket_on_a_private_answer_when_the_site_follows_a_registry(
    make_gateway: GatewayFactory,
) -> None:
    gateway = make_gateway(visitor_cookie=True)
    response = await fetch(gateway, "/e/1")
    _, bucket = visitor_of(response)
    assert received_headers(response, BUCKET_HEADER) == [bucket]  # the page is rendered for the bucket it sets
    assert response.headers.get_list("cache-control") == ["private, no-store"]  # never a public Set-Cookie
    head = await fetch(gateway, "/e/1", method="HEAD")
    visitor_of(head)
    assert head.headers.get_list("cache-control") == ["private, no-store"]


async def test_gateway_new_visitors_fall_into_every_bucket(make_gateway: GatewayFactory) -> None:
    assert {Visitor.mint().bucket for _ in range(3000)} == set(range(100))
    gateway = make_gateway(visitor_cookie=True)
    ids = {visitor_of(await fetch(gateway, "/e/1"))[0] for _ in range(20)}
    assert len(ids) == 20


async def test_gateway_visitor_cookie_is_secure_over_https(make_gateway: GatewayFactory) -> None:
    response = await fetch(make_gateway(visitor_cookie=True, public_url="https://tickets.example.com"), "/e/1")
    assert response.headers["set-cookie"].startswith("oberon_visitor=v1.")  # the same name as over http
    assert response.headers["set-cookie"].endswith("; HttpOnly; Secure")


@pytest.mark.parametrize("follows_registry", [True, False])
async def test_gateway_passes_a_valid_visitors_bucket_and_keeps_the_answer_shareable(
    make_gateway: GatewayFactory, follows_registry: bool
) -> None:
    gateway = make_gateway(visitor_cookie=follows_registry)
    response = await fetch(gateway, "/e/1", headers={"Cookie": f"theme=dark; oberon_visitor={VISITOR}"})
    assert received_headers(response, BUCKET_HEADER) == ["07"]
    assert "set-cookie" not in response.headers
    assert response.headers["cache-control"] == "public, max-age=60"


async def test_gateway_replaces_a_callers_own_bucket_header(make_gateway: GatewayFactory) -> None:
    gateway = make_gateway()
    without = await fetch(gateway, "/e/1", headers={BUCKET_HEADER: "05"})
    claims = {BUCKET_HEADER: "05", "X_Oberon_Bucket": "06", "Cookie": f"oberon_visitor={VISITOR}"}
    with_cookie = await fetch(gateway, "/e/1", headers=claims)
    assert received_headers(without, BUCKET_HEADER) == []
    assert received_headers(with_cookie, BUCKET_HEADER) == ["07"]


@pytest.mark.parametrize("value", HOSTILE)
async def test_gateway_treats_a_malformed_visitor_as_new_and_never_repeats_it(
    make_gateway: GatewayFactory, value: str
) -> None:
    response = await fetch(make_gateway(visitor_cookie=True), "/e/1", headers={"Cookie": f"oberon_visitor={value}"})
    visitor, bucket = visitor_of(response)
    assert visitor != value and received_headers(response, BUCKET_HEADER) == [bucket]
    if value:
        assert value not in "".join(response.headers.values())  # the gateway repeats none of it
    assert "evil" not in response.headers["set-cookie"]


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/_oberon/assets/app.js"),
        ("GET", "/_oberon/cohort/07"),
        ("GET", "/bff/shop/items"),
        ("GET", "/robots.txt"),
        ("POST", "/e/1"),
    ],
)
async def test_gateway_gives_no_bucket_to_what_is_not_a_page(
    make_gateway: GatewayFactory, method: str, path: str
) -> None:
    gateway = make_gateway(visitor_cookie=True)
    known = await fetch(gateway, path, method=method, headers={"Cookie": f"oberon_visitor={VISITOR}"})
    new = await fetch(gateway, path, method=method)
    assert received_headers(known, BUCKET_HEADER) == []
    assert received_headers(new, BUCKET_HEADER) == []
    assert "set-cookie" not in new.headers


async def test_gateway_never_forwards_the_visitor_id_where_cookies_are_forwarded(make_gateway: GatewayFactory) -> None:
    extra = '[[route]]\nprefix = "/prefs"\nupstream = "renderer"\nauth = "optional"\nforward_cookies = true\n'
    gateway = make_gateway(routes=parse_table(TABLE + extra, file="routes.toml", upstreams=upstream_names()))
    response = await fetch(gateway, "/prefs/x", headers={"Cookie": f"theme=dark; oberon_visitor={VISITOR}"})
    assert received_headers(response, "Cookie") == ["theme=dark"]
    assert received_headers(response, BUCKET_HEADER) == ["07"]  # the bucket, not the id


def test_visitor_reads_only_well_formed_ids() -> None:
    assert Visitor.read(VISITOR) == Visitor(id=VISITOR, bucket=7)
    assert [value for value in HOSTILE if Visitor.read(value) is not None] == []
    assert Visitor.read(None) is None
    assert MAX_AGE == 365 * 24 * 3600


def test_visitor_page_requests_are_pages_islands_and_previews() -> None:
    pages = [("GET", "/"), ("HEAD", "/e/1"), ("GET", "/_islands/cart-summary"), ("GET", "/_components/header")]
    others = [("GET", "/_oberon"), ("GET", "/_oberon/health"), ("GET", "/sitemap.xml"), ("PUT", "/e/1")]
    assert [request for request in pages if not is_page_request(*request)] == []
    assert [request for request in others if is_page_request(*request)] == []


def test_cohort_is_every_canary_above_the_bucket_sorted() -> None:
    canaries = [("ticket-selector", "1.1.0", 30), ("event-hero", "2.0.0", 10)]
    assert cohort(canaries, 5) == "event-hero@2.0.0 ticket-selector@1.1.0"
    assert cohort(canaries, 10) == "ticket-selector@1.1.0"
    assert cohort(canaries, 29) == "ticket-selector@1.1.0"
    assert cohort(canaries, 30) == "stable"
    assert cohort([], 0) == "stable"
    assert len({cohort(canaries, bucket) for bucket in range(100)}) == 3  # one cohort more per canary
