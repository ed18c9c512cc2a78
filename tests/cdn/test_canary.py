"""Canaries through the CDN: a real varnishd with infra/cdn/oberon.vcl, in front of the real gateway, in front of a
stand-in renderer that keeps the renderer's side of the contract (`/_oberon/cohort/NN`; pages rendered for the
trusted `X-Oberon-Bucket` say the cohort they were rendered for in `X-Oberon-Cohort`)."""

from __future__ import annotations

import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp

from gateway.app import Gateway
from gateway.proxy import UpstreamPool
from gateway.settings import GatewaySettings
from gateway.table import parse_table
from oberon.headers import BUCKET, BUCKET_HEADER, COHORT_HEADER, COHORT_PATH, cohort
from oberon.runtime.cdn import Varnish
from oberon.runtime.supervisor import free_port
from tests.cdn.test_vcl import INTERNAL_SPELLINGS, raw_get

SECRET = "a-test-session-secret-that-is-long-enough"
PUBLIC = "public, max-age=0, s-maxage=60, stale-if-error=300"
SHORT = "public, max-age=0, s-maxage=1, stale-if-error=300"
CANARY = ("ticket-selector", "1.1.0", 30)
SET_COOKIE = re.compile(
    r"^oberon_visitor=(v1\.([0-9]{2})\.[A-Za-z0-9_-]{22,64}); Path=/; Max-Age=31536000; SameSite=Lax; HttpOnly$"
)
TABLE = """
[[route]]
prefix = "/"
upstream = "renderer"
auth = "optional"
methods = ["GET"]

[[route]]
prefix = "/_oberon"
upstream = "renderer"
auth = "none"
methods = ["GET"]
"""

Canaries = list[tuple[str, str, int]]


@dataclass
class Renderer:
    """The renderer's side of the contract, with what it was asked. `canaries` None: it follows no registry.

    `skew` renders pages with other canaries than the cohort lookup answers with (a ramp between the two).
    """

    canaries: Canaries | None = None
    skew: Canaries | None = None
    renders: Counter[str] = field(default_factory=Counter)
    lookups: Counter[str] = field(default_factory=Counter)
    seen: dict[str, list[dict[str, str]]] = field(default_factory=dict)

    def cohort(self, request: Request, *, rendering: bool = True) -> str | None:
        if self.canaries is None:
            return None
        bucket = request.headers.get(BUCKET_HEADER, "")
        canaries = self.skew if rendering and self.skew is not None else self.canaries
        return cohort(canaries, int(bucket)) if BUCKET.match(bucket) else "stable"

    def app(self) -> Starlette:
        async def health(request: Request) -> Response:
            return JSONResponse({"status": "ok"}, headers={"Cache-Control": "no-store"})

        async def cohort_lookup(request: Request) -> Response:
            bucket = request.path_params["bucket"]
            self.lookups[bucket] += 1
            if self.canaries is None or not BUCKET.match(bucket):
                return HTMLResponse("no registry", status_code=404, headers={"Cache-Control": "no-store"})
            headers = {COHORT_HEADER: cohort(self.canaries, int(bucket)), "Cache-Control": "public, max-age=1"}
            return Response(status_code=204, headers=headers)

        def answer(request: Request, body: str, cache_control: str, **headers: str) -> Response:
            path = request.url.path
            self.renders[path] += 1
            self.seen.setdefault(path, []).append(dict(request.headers))
            made = self.cohort(request)
            if made is not None:
                headers[COHORT_HEADER] = made
            bucket = request.headers.get(BUCKET_HEADER, "none")
            text = f"{body} rendered for cohort {made} (bucket {bucket}) #{self.renders[path]}"
            return HTMLResponse(text, headers={"Cache-Control": cache_control, **headers})

        async def shell(request: Request) -> Response:
            body = '<main>shell <esi:include src="/_islands/cart-summary?version=%3D%3D1.0.0"/></main>'
            return answer(request, body, PUBLIC, **{"Surrogate-Control": 'content="ESI/1.0"'})

        async def island(request: Request) -> Response:
            return answer(request, "<aside>cart</aside>", "private, no-store")

        async def page(request: Request) -> Response:
            short = request.url.path.startswith("/short/")
            return answer(request, f"<p>page {request.url.path}</p>", SHORT if short else PUBLIC)

        return Starlette(
            routes=[
                Route("/_oberon/health", health),
                Route(COHORT_PATH + "{bucket}", cohort_lookup),
                Route("/esi", shell),
                Route("/_islands/{name}", island),
                Route("/{path:path}", page),
            ]
        )


class Server:
    """An ASGI app served by uvicorn on a loopback port, in a thread of this process."""

    def __init__(self, app: ASGIApp, *, port: int) -> None:
        self.port = port
        self._server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
        )
        self._thread = threading.Thread(target=self._server.run, daemon=True)

    def start(self) -> None:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            assert time.monotonic() < deadline, "server did not start"
            time.sleep(0.01)

    def stop(self) -> None:
        if self._thread.is_alive():
            self._server.should_exit = True
            self._thread.join(timeout=10)


@dataclass
class Site:
    """Varnish → gateway → stand-in renderer; `get` sends exactly the cookies given (no cookie jar)."""

    url: str
    renderer: Renderer
    gateway: Server

    def get(self, path: str, visitor: str | None = None, **headers: str) -> httpx.Response:
        sent = {name.replace("_", "-"): value for name, value in headers.items()}
        if visitor is not None:
            sent["Cookie"] = f"oberon_visitor={visitor}" + (f"; {sent['Cookie']}" if "Cookie" in sent else "")
        return httpx.get(self.url + path, headers=sent, timeout=10)


SiteFactory = Callable[..., Site]


@pytest.fixture
def make_site() -> Iterator[SiteFactory]:
    """`make_site(canaries=[…] | None)`: the site following a registry with those canaries, or none."""
    stack: list[tuple[Server, Varnish]] = []

    def make(canaries: Canaries | None) -> Site:
        renderer = Renderer(canaries=canaries)
        settings = GatewaySettings(session_secret=SECRET, visitor_cookie=canaries is not None)
        gateway = Gateway(
            table=parse_table(TABLE, file="routes.toml", upstreams=["renderer"]),
            upstreams=UpstreamPool.create({"renderer": renderer.app()}),
            settings=settings,
        )
        server = Server(gateway.app(), port=free_port())
        server.start()
        varnish = Varnish(port=free_port(), origin_port=server.port)
        stack.append((server, varnish))
        varnish.start()
        return Site(url=varnish.url, renderer=renderer, gateway=server)

    yield make
    for server, varnish in stack:
        varnish.stop()
        server.stop()


def visitor(bucket: int, name: str = "a") -> str:
    return f"v1.{bucket:02d}.{name * 22}"


def minted(response: httpx.Response) -> tuple[str, int]:
    """The id and bucket of the one visitor cookie an answer sets."""
    cookies = response.headers.get_list("set-cookie")
    assert len(cookies) == 1, cookies
    match = SET_COOKIE.match(cookies[0])
    assert match is not None, cookies[0]
    return match.group(1), int(match.group(2))


def test_canary_pages_are_stored_once_per_cohort_not_per_bucket(make_site: SiteFactory) -> None:
    site = make_site([CANARY])
    visitors = [visitor(bucket, name) for bucket in range(0, 100, 5) for name in "ab"]  # 40 visitors, 20 buckets
    first = {id_: site.get("/e/1", id_) for id_ in visitors}
    again = {id_: site.get("/e/1", id_) for id_ in visitors}
    assert site.renderer.renders["/e/1"] == 2  # one copy for the 30 % canary's cohort, one for stable
    for id_ in visitors:
        expected = cohort([CANARY], int(id_[3:5]))
        assert f"rendered for cohort {expected} " in first[id_].text, id_
        assert again[id_].text == first[id_].text and again[id_].headers["x-cache"] == "HIT"
        assert again[id_].headers[COHORT_HEADER] == expected
        assert "set-cookie" not in first[id_].headers and first[id_].headers["cache-control"] == PUBLIC
    assert set(site.renderer.lookups) == {f"{bucket:02d}" for bucket in range(0, 100, 5)}  # by bucket, not visitor


def test_canary_a_second_canary_adds_one_copy_more(make_site: SiteFactory) -> None:
    site = make_site([CANARY, ("event-hero", "2.0.0", 10)])
    for bucket in range(0, 100, 3):
        site.get("/e/2", visitor(bucket))
    assert site.renderer.renders["/e/2"] == 3


def test_canary_a_new_visitor_gets_an_id_on_a_private_answer_and_the_stored_copy_has_none(
    make_site: SiteFactory,
) -> None:
    site = make_site([CANARY])
    new = site.get("/e/3")
    id_, bucket = minted(new)
    assert new.headers.get_list("cache-control") == ["private, no-store"]
    assert f"rendered for cohort {cohort([CANARY], bucket)} (bucket {bucket:02d})" in new.text
    # The origin saw the id the CDN gave (its bucket passed on by the gateway) — and never set a cookie itself.
    assert site.renderer.seen["/e/3"][0][BUCKET_HEADER.lower()] == f"{bucket:02d}"
    back = site.get("/e/3", id_)
    assert (back.headers["x-cache"], back.text) == ("HIT", new.text)
    assert "set-cookie" not in back.headers and back.headers["cache-control"] == PUBLIC
    other = site.get("/e/3", visitor(bucket, "z"))  # another visitor of the same bucket: the same stored copy
    assert other.headers["x-cache"] == "HIT" and "set-cookie" not in other.headers
    assert site.renderer.renders["/e/3"] == 1


def test_canary_new_visitors_are_spread_over_the_buckets(make_site: SiteFactory) -> None:
    site = make_site([CANARY])
    ids = [minted(site.get("/e/4"))[0] for _ in range(60)]
    assert len(set(ids)) == 60
    assert len({id_[3:5] for id_ in ids}) >= 30  # 60 draws from 100 buckets: about 45 distinct
    in_canary = sum(int(id_[3:5]) < 30 for id_ in ids)
    assert 4 <= in_canary <= 36


def test_canary_visitor_cookie_is_secure_over_https(make_site: SiteFactory) -> None:
    site = make_site([CANARY])
    response = site.get("/e/5", X_Forwarded_Proto="https")  # from the TLS terminator on loopback
    assert response.headers["set-cookie"].startswith("oberon_visitor=v1.")
    assert response.headers["set-cookie"].endswith("; HttpOnly; Secure")


def test_canary_a_visitor_with_an_invalid_id_gets_a_new_one(make_site: SiteFactory) -> None:
    site = make_site([CANARY])
    for value in ("v1.5.aaaaaaaaaaaaaaaaaaaaaaaa", "v1.07.short", "<script>", "v1.07." + "a" * 22 + "%0d%0aX: y"):
        response = site.get("/e/6", value)
        id_, _ = minted(response)
        assert value not in response.headers["set-cookie"] and id_ != value


def test_canary_a_page_rendered_for_another_cohort_is_delivered_but_never_stored(make_site: SiteFactory) -> None:
    site = make_site([CANARY])
    site.renderer.skew = []  # the canary ended between the cohort lookup and the render
    first = site.get("/e/7", visitor(10))
    assert "rendered for cohort stable" in first.text and first.headers["x-cache"] == "PASS"
    second = site.get("/e/7", visitor(11))
    assert site.renderer.renders["/e/7"] == 2  # not stored under the canary cohort it was looked up by
    assert "rendered for cohort stable" in second.text
    site.renderer.skew = None
    site.get("/e/7", visitor(12))
    assert site.get("/e/7", visitor(13)).headers["x-cache"] == "HIT"
    assert site.renderer.renders["/e/7"] == 3


def test_canary_a_ramp_reaches_the_cdn_within_seconds(make_site: SiteFactory) -> None:
    site = make_site([CANARY])
    assert "cohort stable" in site.get("/e/8", visitor(40)).text
    site.renderer.canaries = site.renderer.skew = [("ticket-selector", "1.1.0", 50)]
    deadline = time.monotonic() + 5
    while "cohort stable" in site.get("/e/8", visitor(40)).text:
        assert time.monotonic() < deadline, "the ramp to 50 % did not reach bucket 40"
        time.sleep(0.2)
    assert "cohort ticket-selector@1.1.0" in site.get("/e/8", visitor(40)).text


def test_canary_islands_are_rendered_for_the_pages_visitor(make_site: SiteFactory) -> None:
    site = make_site([CANARY])
    new = site.get("/esi")
    _, bucket = minted(new)
    assert "<esi:include" not in new.text
    assert f"<aside>cart</aside> rendered for cohort {cohort([CANARY], bucket)} (bucket {bucket:02d})" in new.text
    known = site.get("/esi", visitor(42))
    assert "<aside>cart</aside> rendered for cohort stable (bucket 42)" in known.text
    assert "set-cookie" not in known.headers
    islands = site.renderer.seen["/_islands/cart-summary"]
    assert [seen[BUCKET_HEADER.lower()] for seen in islands] == [f"{bucket:02d}", "42"]
    assert all("cookie" not in seen for seen in islands)  # the gateway passes the bucket, never the id


def test_canary_a_signed_in_visitor_keeps_their_bucket(make_site: SiteFactory) -> None:
    site = make_site([CANARY])
    response = site.get("/e/9", Cookie="oberon_session=not-a-live-one; theme=dark")
    id_, bucket = minted(response)
    assert response.headers["x-cache"] == "PASS"
    assert site.renderer.seen["/e/9"][0][BUCKET_HEADER.lower()] == f"{bucket:02d}"
    again = site.get("/e/9", id_, Cookie="oberon_session=not-a-live-one")
    assert "set-cookie" not in again.headers
    assert site.renderer.seen["/e/9"][1][BUCKET_HEADER.lower()] == f"{bucket:02d}"


def test_canary_a_canary_visitor_gets_the_canary_page_stale_when_the_origin_is_gone(make_site: SiteFactory) -> None:
    site = make_site([CANARY])
    canary, stable = site.get("/short/1", visitor(10)), site.get("/short/1", visitor(90))
    assert "cohort ticket-selector@1.1.0" in canary.text and "cohort stable" in stable.text
    site.gateway.stop()
    time.sleep(3.5)  # past s-maxage=1 and the cohorts' second, and long enough for the probe to mark the origin sick
    assert site.get("/short/1", visitor(10)).text == canary.text
    assert site.get("/short/1", visitor(90)).text == stable.text
    assert site.get("/short/1", visitor(10, "n")).headers["x-cache"].startswith("HIT")


def test_canary_a_site_without_a_registry_gets_no_cookie_and_one_copy(make_site: SiteFactory) -> None:
    site = make_site(None)
    new = site.get("/e/10")
    assert "set-cookie" not in new.headers and new.headers["cache-control"] == PUBLIC
    for bucket in range(0, 100, 10):
        response = site.get("/e/10", visitor(bucket))
        assert response.headers["x-cache"] == "HIT" and "set-cookie" not in response.headers
    assert site.renderer.renders["/e/10"] == 1
    assert BUCKET_HEADER.lower() not in site.renderer.seen["/e/10"][0]  # no cookie reaches the origin
    assert COHORT_HEADER.lower() not in {name.lower() for name in new.headers}
    for _ in range(5):
        site.get("/e/11", visitor(33))
    assert site.renderer.lookups["33"] == 1  # the registry's absence is kept


def test_canary_internal_paths_are_still_refused(make_site: SiteFactory) -> None:
    site = make_site([CANARY])
    answered = {path: raw_get(site.url, path)[0] for path in INTERNAL_SPELLINGS}
    assert {path: status for path, status in answered.items() if status != 404} == {}
    assert [path for path in site.renderer.renders if "metrics" in path or "registry" in path] == []
    assert raw_get(site.url, "/_oberon/cohort/07")[0] == 204  # the cohort lookup is public
