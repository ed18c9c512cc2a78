"""The VCL in infra/cdn with a real varnishd in front of a stand-in origin we control."""

from __future__ import annotations

import asyncio
import http.client
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from oberon.runtime.cdn import VCL_DIR, VCL_FILE, Varnish, check_vcl
from oberon.runtime.supervisor import free_port

PUBLIC = "public, max-age=0, s-maxage=60, stale-while-revalidate=1, stale-if-error=300"


@dataclass
class Origin:
    """A stand-in origin: counts requests per path, and can be made to fail."""

    port: int
    hits: Counter[str] = field(default_factory=Counter)
    failing: bool = False
    seen_headers: dict[str, dict[str, str]] = field(default_factory=dict)
    seen_queries: dict[str, str] = field(default_factory=dict)


def origin_app(origin: Origin) -> Starlette:
    async def page(request: Request) -> Response:
        path = request.url.path
        origin.hits[path] += 1
        origin.seen_headers[path] = dict(request.headers)
        origin.seen_queries[path] = request.url.query
        if origin.failing:
            return HTMLResponse("origin error", status_code=503, headers={"Cache-Control": "no-store"})
        host = request.headers.get("x-forwarded-host", "site")
        user = request.cookies.get("oberon_session", "anonymous")
        body = f"<p>page {path} for {user} on {host} #{origin.hits[path]}</p>"
        cache_control = PUBLIC
        if path.startswith("/short/"):
            cache_control = "public, max-age=0, s-maxage=1, stale-if-error=300"
        elif path.startswith("/swr/"):
            cache_control = "public, max-age=0, s-maxage=1, stale-while-revalidate=10, stale-if-error=300"
        headers = {"Cache-Control": cache_control, "Surrogate-Key": f"app:demo {path.strip('/').replace('/', '-')}"}
        if path.startswith("/lang/"):
            headers["Vary"] = "Accept-Language"
        if path.startswith("/device/"):  # a page whose data source read the device class
            headers["Vary"] = "Accept-Language, X-Oberon-Device"
            body += f"<p>for a {request.headers.get('x-oberon-device', 'unknown')}</p>"
        if user != "anonymous":
            headers["Cache-Control"] = "private, no-store"
        return HTMLResponse(body, headers=headers)

    async def esi_page(request: Request) -> Response:
        origin.hits[request.url.path] += 1
        count = origin.hits[request.url.path]
        body = f'<main>shell #{count} <esi:include src="/_islands/cart"/></main>'
        headers = {"Cache-Control": PUBLIC, "Surrogate-Control": 'content="ESI/1.0"'}
        return HTMLResponse(body, headers=headers)

    async def island(request: Request) -> Response:
        origin.hits[request.url.path] += 1
        user = request.cookies.get("oberon_session", "anonymous")
        return HTMLResponse(f"<aside>cart of {user}</aside>", headers={"Cache-Control": "private, no-store"})

    async def sets_cookie(request: Request) -> Response:
        origin.hits[request.url.path] += 1
        response = HTMLResponse("hello", headers={"Cache-Control": PUBLIC})
        response.set_cookie("tracker", "1")
        return response

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    return Starlette(
        routes=[
            Route("/_oberon/health", health),
            Route("/esi", esi_page),
            Route("/_islands/cart", island),
            Route("/cookie", sets_cookie),
            Route("/{path:path}", page),
        ]
    )


class OriginServer:
    """The origin as a real uvicorn server on a loopback port, in a thread, that can be stopped and restarted."""

    def __init__(self, origin: Origin) -> None:
        self.origin = origin
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        config = uvicorn.Config(
            origin_app(self.origin), host="127.0.0.1", port=self.origin.port, log_level="warning", lifespan="off"
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            assert time.monotonic() < deadline, "origin did not start"
            time.sleep(0.01)

    def stop(self) -> None:
        assert self._server is not None and self._thread is not None
        self._server.should_exit = True
        self._thread.join(timeout=10)


@pytest.fixture
def origin() -> Iterator[OriginServer]:
    server = OriginServer(Origin(port=free_port()))
    server.start()
    yield server
    if server._thread is not None and server._thread.is_alive():
        server.stop()


@pytest.fixture
def cdn(origin: OriginServer) -> Iterator[httpx.Client]:
    with Varnish(port=free_port(), origin_port=origin.origin.port) as varnish:
        with httpx.Client(base_url=varnish.url, timeout=10) as client:
            yield client


def test_vcl_compiles() -> None:
    check_vcl()


def test_vcl_second_request_for_a_public_page_is_a_hit(cdn: httpx.Client, origin: OriginServer) -> None:
    first = cdn.get("/e/1")
    second = cdn.get("/e/1")
    assert (first.headers["x-cache"], second.headers["x-cache"]) == ("MISS", "HIT")
    assert second.text == first.text
    assert origin.origin.hits["/e/1"] == 1
    assert "surrogate-key" not in second.headers


def test_vcl_coalesces_concurrent_misses(cdn: httpx.Client, origin: OriginServer) -> None:
    async def burst() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=str(cdn.base_url), timeout=10) as client:
            return await asyncio.gather(*(client.get("/e/2") for _ in range(20)))

    responses = asyncio.run(burst())
    assert {response.status_code for response in responses} == {200}
    assert origin.origin.hits["/e/2"] == 1


def test_vcl_never_serves_a_session_from_the_cache_nor_stores_it(cdn: httpx.Client, origin: OriginServer) -> None:
    cdn.get("/e/3")  # the anonymous entry
    signed_in = cdn.get("/e/3", headers={"Cookie": "oberon_session=ada; theme=dark"})
    assert signed_in.headers["x-cache"] == "PASS"
    assert "for ada" in signed_in.text
    again = cdn.get("/e/3", headers={"Cookie": "oberon_session=ada"})
    assert again.headers["x-cache"] == "PASS"
    anonymous = cdn.get("/e/3")
    assert anonymous.headers["x-cache"] == "HIT"
    assert "ada" not in anonymous.text


def test_vcl_passes_the_https_session_cookie_to_the_origin(cdn: httpx.Client, origin: OriginServer) -> None:
    cdn.get("/e/host-cookie")  # the anonymous entry
    signed_in = cdn.get("/e/host-cookie", headers={"Cookie": "__Host-oberon_session=ada; theme=dark"})
    assert signed_in.headers["x-cache"] == "PASS"
    assert origin.origin.seen_headers["/e/host-cookie"]["cookie"] == "__Host-oberon_session=ada; theme=dark"


def test_vcl_strips_other_cookies_so_public_pages_stay_cacheable(cdn: httpx.Client, origin: OriginServer) -> None:
    cdn.get("/e/4", headers={"Cookie": "theme=dark; _ga=1"})
    second = cdn.get("/e/4", headers={"Cookie": "theme=light"})
    assert second.headers["x-cache"] == "HIT"
    assert "cookie" not in origin.origin.seen_headers["/e/4"]


def test_vcl_does_not_cache_a_response_that_sets_a_cookie(cdn: httpx.Client, origin: OriginServer) -> None:
    cdn.get("/cookie")
    cdn.get("/cookie")
    assert origin.origin.hits["/cookie"] == 2


def test_vcl_ignores_an_attackers_forwarded_host(cdn: httpx.Client, origin: OriginServer) -> None:
    poisoned = cdn.get("/e/5", headers={"X-Forwarded-Host": "evil.example"})
    assert "evil" not in poisoned.text
    assert "x-forwarded-host" not in origin.origin.seen_headers["/e/5"]
    assert "evil" not in cdn.get("/e/5").text


def test_vcl_purges_exactly_the_pages_that_carry_a_surrogate_key(cdn: httpx.Client, origin: OriginServer) -> None:
    for path in ("/e/6", "/e/7"):
        cdn.get(path)
    purge = cdn.request("PURGE", "/", headers={"Surrogate-Key": "e-6"})
    assert purge.status_code == 200
    assert cdn.get("/e/6").headers["x-cache"] == "MISS"
    assert cdn.get("/e/7").headers["x-cache"] == "HIT"


@pytest.mark.parametrize("key", ["e-6|.*", "", "a b", "(.*)", "e.6"])
def test_vcl_refuses_a_surrogate_key_that_is_not_one_plain_key(cdn: httpx.Client, key: str) -> None:
    assert cdn.request("PURGE", "/", headers={"Surrogate-Key": key}).status_code == 400


def test_vcl_serves_stale_when_the_origin_errors(cdn: httpx.Client, origin: OriginServer) -> None:
    assert cdn.get("/short/1").headers["x-cache"] == "MISS"
    time.sleep(1.2)  # past s-maxage=1, and no stale-while-revalidate: a healthy origin is asked again
    origin.origin.failing = True
    response = cdn.get("/short/1")
    assert response.status_code == 200
    assert response.headers["x-cache"] == "HIT STALE"
    # Asked once and failed, so the stale copy was served (delivering it may start one background refresh).
    assert origin.origin.hits["/short/1"] in (2, 3)


def test_vcl_answers_a_clean_503_when_the_origin_errors_and_nothing_is_cached(
    cdn: httpx.Client, origin: OriginServer
) -> None:
    origin.origin.failing = True
    response = cdn.get("/short/never-seen")
    assert response.status_code == 503
    assert response.headers["cache-control"] == "no-store"
    assert "Temporarily unavailable" in response.text
    assert origin.origin.hits["/short/never-seen"] == 1  # not asked again on the restart


def test_vcl_serves_stale_within_grace_when_the_origin_is_gone(cdn: httpx.Client, origin: OriginServer) -> None:
    cdn.get("/short/2")
    origin.stop()
    time.sleep(3.5)  # past s-maxage, and long enough for the probe to mark the origin sick
    response = cdn.get("/short/2")
    assert response.status_code == 200
    assert "page /short/2" in response.text
    assert response.headers["x-cache"].startswith("HIT")


def test_vcl_refreshes_in_the_background_within_stale_while_revalidate(cdn: httpx.Client, origin: OriginServer) -> None:
    cdn.get("/swr/1")
    time.sleep(1.2)
    stale = cdn.get("/swr/1")
    assert stale.headers["x-cache"] == "HIT" and "#1" in stale.text
    time.sleep(0.3)
    assert "#2" in cdn.get("/swr/1").text


def test_vcl_processes_esi_islands_per_user(cdn: httpx.Client, origin: OriginServer) -> None:
    anonymous = cdn.get("/esi")
    assert "<esi:include" not in anonymous.text
    assert "cart of anonymous" in anonymous.text
    again = cdn.get("/esi")
    assert again.headers["x-cache"] == "HIT"
    assert origin.origin.hits["/esi"] == 1  # the shell is shared
    assert origin.origin.hits["/_islands/cart"] == 2  # the island is not
    signed_in = cdn.get("/esi", headers={"Cookie": "oberon_session=ada"})
    assert "cart of ada" in signed_in.text
    assert "cart of ada" not in cdn.get("/esi").text


def test_vcl_is_open_to_purges_from_loopback_only() -> None:
    text = (VCL_DIR / VCL_FILE).read_text()
    acl = text[text.index("acl local_network {") : text.index("}", text.index("acl local_network {"))]
    assert acl.split()[3:] == ['"127.0.0.1";', '"::1";']
    assert text.count("client.ip !~ local_network") == 1  # PURGE


INTERNAL_SPELLINGS = [
    "/metrics",
    "/metrics/",
    "//metrics",
    "/./metrics",
    "/x/../metrics",
    "/x/y/../../metrics",
    "/../metrics",
    "/%6detrics",
    "/%6Detrics",
    "/%2Fmetrics",
    "/%252Fmetrics",
    "/%2e/metrics",
    "/METRICS",
    "/\\metrics",
    "/metrics?x=1",
    "/metrics/?x=1",
    "/_oberon/registry",
    "/_oberon//registry",
    "/_oberon/./registry/",
    "/_oberon/health/../registry",
    "/_oberon/%72egistry",
    "/_oberon%2Fregistry",
    "/%5Foberon/registry",
    "/_oberon/degradation",
    "/_oberon/degradation?x=1",
    "/_oberon/%64egradation",
    "/_Oberon/Degradation/",
]


def raw_get(base: str, path: str, method: str = "GET") -> tuple[int, str]:
    """One request with `path` sent as written (httpx would normalise it first)."""
    url = httpx.URL(base)
    connection = http.client.HTTPConnection(url.host, url.port, timeout=10)
    try:
        connection.request(method, path)
        response = connection.getresponse()
        return response.status, response.read().decode("utf-8", "replace")
    finally:
        connection.close()


def test_vcl_answers_404_for_every_spelling_of_an_internal_path(cdn: httpx.Client) -> None:
    """The origin here answers every path: only the VCL stands between the caller and it (one Varnish for all)."""
    base = str(cdn.base_url)
    answered = {path: (raw_get(base, path)[0], raw_get(base, path, method="PUT")[0]) for path in INTERNAL_SPELLINGS}
    assert {path: statuses for path, statuses in answered.items() if statuses != (404, 404)} == {}


def test_vcl_passes_other_paths_to_the_origin(cdn: httpx.Client) -> None:
    base = str(cdn.base_url)
    paths = ["/e/1", "/_oberon/health", "/metrics-page", "/e/metrics", "/bff/x/metrics"]
    assert {path: raw_get(base, path)[0] for path in paths} == dict.fromkeys(paths, 200)


def test_vcl_does_not_keep_a_response_that_states_no_cacheability(cdn: httpx.Client, origin: OriginServer) -> None:
    cdn.get("/_oberon/health")
    second = cdn.get("/_oberon/health")
    assert second.headers["x-cache"] == "PASS"


def test_vcl_normalises_accept_language_so_variants_stay_few(cdn: httpx.Client, origin: OriginServer) -> None:
    cdn.get("/lang/1", headers={"Accept-Language": "en-GB,en;q=0.9,de;q=0.5"})
    assert origin.origin.seen_headers["/lang/1"]["accept-language"] == "en"
    assert cdn.get("/lang/1", headers={"Accept-Language": "EN-us"}).headers["x-cache"] == "HIT"


def test_vcl_strips_tracking_parameters_and_sorts_the_query_into_one_object(
    cdn: httpx.Client, origin: OriginServer
) -> None:
    first = cdn.get("/search?utm_source=x&q=jazz&page=2")
    same = [
        cdn.get("/search?page=2&q=jazz"),
        cdn.get("/search?q=jazz&UTM_Medium=mail&page=2&gclid=1"),
        cdn.get("/search?fbclid=1&page=2&msclkid=2&q=jazz&mc_cid=3&mc_eid=4"),
    ]
    other = cdn.get("/search?q=rock&page=2")
    assert first.headers["x-cache"] == "MISS"
    assert [response.headers["x-cache"] for response in same] == ["HIT"] * 3
    assert other.headers["x-cache"] == "MISS"
    assert origin.origin.hits["/search"] == 2
    assert origin.origin.seen_queries["/search"] == "page=2&q=rock"


def test_vcl_keeps_parameters_that_only_look_like_tracking_ones(cdn: httpx.Client, origin: OriginServer) -> None:
    cdn.get("/look?q=utm_source&gclidx=1&utm=2")
    assert origin.origin.seen_queries["/look"] == "gclidx=1&q=utm_source&utm=2"
    cdn.get("/only?utm_source=x&gclid=1")
    assert origin.origin.seen_queries["/only"] == ""


UAS = {
    "desktop": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36",
    "desktop2": "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:121.0) Gecko/20100101 Firefox/121.0",
    "mobile": "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148",
    "mobile2": "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 Chrome/120.0 Mobile Safari/537.36",
    "tablet": "Mozilla/5.0 (Linux; Android 13; SM-X200) AppleWebKit/537.36 Chrome/120.0 Safari/537.36",
    "bot": "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
}


def test_vcl_sets_the_device_class_as_the_gateway_reads_it(cdn: httpx.Client, origin: OriginServer) -> None:
    from gateway.context import device_class

    for name, agent in UAS.items():
        # A client's own X-Oberon-Device never picks the variant: the VCL sets it from User-Agent.
        cdn.get(f"/device/{name}", headers={"User-Agent": agent, "X-Oberon-Device": "bot"})
        assert origin.origin.seen_headers[f"/device/{name}"]["x-oberon-device"] == device_class(agent), name


def test_vcl_keeps_one_object_per_device_class_of_a_page_that_varies_by_it(
    cdn: httpx.Client, origin: OriginServer
) -> None:
    def get(name: str, path: str = "/device/page") -> httpx.Response:
        return cdn.get(path, headers={"User-Agent": UAS[name], "X-Oberon-Device": "desktop"})

    desktop, mobile = get("desktop"), get("mobile")
    assert (desktop.headers["x-cache"], mobile.headers["x-cache"]) == ("MISS", "MISS")
    assert "for a desktop" in desktop.text and "for a mobile" in mobile.text
    desktop2, mobile2 = get("desktop2"), get("mobile2")
    assert (desktop2.headers["x-cache"], mobile2.headers["x-cache"]) == ("HIT", "HIT")
    assert "for a desktop" in desktop2.text and "for a mobile" in mobile2.text
    assert origin.origin.hits["/device/page"] == 2
    # A page that does not vary by device is one object for every class.
    plain = [get(name, "/e/plain").headers["x-cache"] for name in ("desktop", "mobile", "tablet", "bot")]
    assert plain == ["MISS", "HIT", "HIT", "HIT"]
