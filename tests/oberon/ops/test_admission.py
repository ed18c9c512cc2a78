"""Admission: the adaptive limit on injected latencies, and the middleware shedding under an injected slow handler."""

from __future__ import annotations

import asyncio
import json
import logging

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route
from starlette.types import Message, Receive, Scope, Send

from oberon.exceptions import ConfigError
from oberon.ops.admission import (
    APP,
    HELD,
    SERVER,
    STALE_HEADER,
    AdaptiveLimit,
    Admission,
    AdmissionSettings,
    ShedAnswer,
    StaleCopies,
    StaleCopy,
)
from oberon.ops.metrics import Metrics

PUBLIC = "public, max-age=0, s-maxage=30"
DEGRADED = "public, max-age=0, s-maxage=300"


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def limiter(clock: Clock, **settings: float) -> AdaptiveLimit:
    values = {"min_limit": 2, "initial_limit": 10, "max_limit": 20, "floor_seconds": 0.0, **settings}
    return AdaptiveLimit(settings=AdmissionSettings(**values), clock=clock)  # type: ignore[arg-type]


def fill(limit: AdaptiveLimit, count: int) -> None:
    for _ in range(count):
        assert limit.try_acquire()


def test_limit_refuses_a_request_beyond_it_and_admits_again_once_one_is_released() -> None:
    limit = limiter(Clock())
    fill(limit, 10)
    assert not limit.try_acquire()
    limit.release(0.01)
    assert limit.try_acquire()


def test_limit_grows_by_one_per_fast_answer_while_at_least_half_used() -> None:
    limit = limiter(Clock())
    fill(limit, 6)
    limit.release(0.01)  # the baseline: 10 ms; the target 20 ms
    assert limit.limit == 11
    limit.release(0.015)  # 5 in flight of 11: under half, nothing learnt
    assert limit.limit == 11


def test_limit_never_grows_past_its_max() -> None:
    limit = limiter(Clock(), max_limit=10)
    fill(limit, 10)
    limit.release(0.01)
    assert limit.limit == 10


def test_limit_backs_off_on_an_answer_slower_than_twice_the_baseline_once_per_interval() -> None:
    clock = Clock()
    limit = limiter(clock)
    fill(limit, 3)
    limit.release(0.01)
    assert limit.target == pytest.approx(0.02)
    limit.release(0.05)
    assert limit.limit == 9  # 10 × 0.9
    limit.release(0.05)  # the same burst: no second cut
    assert limit.limit == 9
    clock.now += 0.1
    fill(limit, 1)
    limit.release(0.05)
    assert limit.limit == 8  # int(9 × 0.9)


def test_limit_never_backs_off_below_its_min() -> None:
    clock = Clock()
    limit = limiter(clock, min_limit=9)
    fill(limit, 2)
    limit.release(0.01)
    for _ in range(5):
        clock.now += 1
        fill(limit, 1)
        limit.release(1.0)
    assert limit.limit == 9


def test_latency_below_the_floor_never_backs_off() -> None:
    limit = limiter(Clock(), floor_seconds=0.025)
    fill(limit, 2)
    limit.release(0.001)
    limit.release(0.02)  # 20 × the baseline, but within the page objective
    assert limit.target == 0.025
    assert limit.limit == 10


def test_baseline_is_the_lowest_latency_of_the_last_window_and_forgets_older_ones() -> None:
    clock = Clock()
    limit = limiter(clock, window_seconds=10)
    fill(limit, 3)
    limit.release(0.01)
    clock.now = 11  # a new bucket: the old minimum still counts
    limit.release(0.04)
    assert limit.baseline == 0.01
    clock.now = 22  # two windows on: only the last bucket's
    assert limit.baseline == 0.04
    clock.now = 60  # nothing for two windows: nothing known
    assert limit.baseline == float("inf")


@pytest.mark.parametrize(
    "values",
    [{"min_limit": 0}, {"min_limit": 5, "initial_limit": 4}, {"initial_limit": 30}, {"backoff": 1.0}],
)
def test_admission_settings_refuse_bounds_out_of_order(values: dict[str, float]) -> None:
    with pytest.raises(ConfigError):
        AdmissionSettings(**{"min_limit": 1, "initial_limit": 5, "max_limit": 20, **values})  # type: ignore[arg-type]


def test_stale_copies_are_bounded_in_bytes_least_recent_first() -> None:
    copies = StaleCopies(max_bytes=10)
    copies.put("/a", StaleCopy(b"12345", b"text/html"))
    copies.put("/b", StaleCopy(b"12345", b"text/html"))
    copies.put("/c", StaleCopy(b"123", b"text/html"))
    assert copies.get("/a") is None
    assert copies.get("/b") is not None and copies.get("/c") is not None
    copies.put("/big", StaleCopy(b"x" * 11, b"text/html"))
    assert copies.get("/big") is None


class Site:
    """A public app with a page the test holds until it lets go, a quick page, and health."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.held = 0
        self.version = ""  # a page's text after a deploy

    async def slow(self, request: Request) -> Response:
        self.held += 1
        await self.release.wait()
        return HTMLResponse("<p>slow</p>")

    async def page(self, request: Request) -> Response:
        headers = {"Cache-Control": PUBLIC, "Vary": "Accept-Language"}
        return HTMLResponse(f"<p>page {request.url.path}{self.version}</p>", headers=headers)

    async def varied(self, request: Request) -> Response:
        return HTMLResponse("<p>for you</p>", headers={"Cache-Control": PUBLIC, "Vary": "User-Agent"})

    async def private(self, request: Request) -> Response:
        return HTMLResponse("<p>mine</p>", headers={"Cache-Control": "private, no-store"})

    async def health(self, request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/slow", self.slow),
                Route("/p/{name}", self.page),
                Route("/me", self.private),
                Route("/varied", self.varied),
                Route("/_oberon/health", self.health),
            ]
        )


def admission(site: Site, *, limit: int, metrics: Metrics | None = None, stale: bool = True) -> Admission:
    settings = AdmissionSettings(min_limit=limit, initial_limit=limit, max_limit=limit)
    observers = (metrics.shed_observer("gateway"),) if metrics is not None else ()
    adaptive = AdaptiveLimit(settings=settings)
    if metrics is not None:
        metrics.watch_admission("gateway", adaptive)
    return Admission(
        site.app(),
        entrance="gateway",
        limit=adaptive,
        stale=StaleCopies() if stale else None,
        stale_cache_control=DEGRADED,
        observers=observers,
    )


def client(app: Admission) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://site.test")


async def hold(site: Site, browser: httpx.AsyncClient, count: int) -> list[asyncio.Task[httpx.Response]]:
    """`count` slow requests in flight, each holding a place until `site.release` is set."""
    tasks = [asyncio.create_task(browser.get("/slow")) for _ in range(count)]
    while site.held < count:
        await asyncio.sleep(0)
    return tasks


async def let_go(site: Site, tasks: list[asyncio.Task[httpx.Response]]) -> None:
    site.release.set()
    assert [response.status_code for response in await asyncio.gather(*tasks)] == [200] * len(tasks)


@pytest.mark.anyio
async def test_admission_sheds_beyond_the_limit_with_a_fast_503_while_health_answers() -> None:
    site = Site()
    async with client(admission(site, limit=3)) as browser:
        tasks = await hold(site, browser, 3)
        shed = await asyncio.wait_for(browser.get("/p/new", headers={"Accept": "application/json"}), 1)
        health = await asyncio.wait_for(browser.get("/_oberon/health"), 1)
        await let_go(site, tasks)
        after = await browser.get("/p/new")
    assert shed.status_code == 503
    assert shed.headers["Retry-After"] == "1"
    assert shed.headers["Cache-Control"] == "no-store"
    assert shed.json() == {"error": "overloaded", "retry_after": 1}
    assert health.status_code == 200
    assert after.status_code == 200  # the places are free again


@pytest.mark.anyio
async def test_admission_answers_a_browser_with_a_small_static_page() -> None:
    site = Site()
    async with client(admission(site, limit=1)) as browser:
        tasks = await hold(site, browser, 1)
        shed = await browser.get("/p/x", headers={"Accept": "text/html,application/xhtml+xml"})
        await let_go(site, tasks)
    assert shed.status_code == 503
    assert shed.headers["Content-Type"].startswith("text/html")
    assert "<h1>We are very busy right now</h1>" in shed.text


@pytest.mark.anyio
async def test_admission_serves_the_last_good_copy_of_an_anonymous_public_page_before_a_503() -> None:
    site = Site()
    async with client(admission(site, limit=1)) as browser:
        await browser.get("/p/kept")  # first asked for: not kept yet
        fresh = await browser.get("/p/kept")  # asked for again lately: kept
        await browser.get("/p/once")  # asked for once: not kept
        await browser.get("/me"), await browser.get("/me")  # private: never kept
        tasks = await hold(site, browser, 1)
        stale = await browser.get("/p/kept")
        signed_in = await browser.get("/p/kept", headers={"Cookie": "oberon_session=x"})
        never_seen = await browser.get("/p/other")
        seen_once = await browser.get("/p/once")
        other_language = await browser.get("/p/kept", headers={"Accept-Language": "de"})
        private = await browser.get("/me")
        await let_go(site, tasks)
    assert fresh.status_code == 200 and STALE_HEADER not in fresh.headers
    assert stale.status_code == 200
    assert stale.text == fresh.text
    assert stale.headers[STALE_HEADER] == "admission"
    assert stale.headers["Cache-Control"] == DEGRADED
    shed = [signed_in, never_seen, seen_once, other_language, private]
    assert [response.status_code for response in shed] == [503] * 5


@pytest.mark.anyio
async def test_admission_keeps_no_copy_of_pages_asked_for_once_and_renews_the_copies_it_holds() -> None:
    """Pages whose URL is their own (a crawler's walk, every page its own data) are not kept: each would evict a page
    that is asked for again. A page kept is renewed on every answer, however long ago it was first seen."""
    site = Site()
    app = admission(site, limit=1)
    async with client(app) as browser:
        await browser.get("/p/kept"), await browser.get("/p/kept")
        for n in range(3_000):
            await browser.get(f"/p/{n}")
        assert app.stale is not None and 1 <= len(app.stale) < 3_000 // 16
        site.version = " v2"
        renewed = await browser.get("/p/kept")
        tasks = await hold(site, browser, 1)
        stale = await browser.get("/p/kept")
        await let_go(site, tasks)
    assert stale.headers[STALE_HEADER] == "admission" and stale.text == renewed.text == "<p>page /p/kept v2</p>"


@pytest.mark.anyio
async def test_admission_keys_a_stale_copy_by_its_query_without_tracking_parameters_in_one_order() -> None:
    site = Site()
    async with client(admission(site, limit=1)) as browser:
        await browser.get("/p/kept?utm_source=mail&q=jazz&page=2")
        await browser.get("/p/kept?q=jazz&page=2")  # the same page, asked for again: kept
        tasks = await hold(site, browser, 1)
        same_page = await browser.get("/p/kept?page=2&q=jazz&gclid=1")
        other_page = await browser.get("/p/kept?q=rock&page=2")
        await let_go(site, tasks)
    assert same_page.status_code == 200 and same_page.headers[STALE_HEADER] == "admission"
    assert other_page.status_code == 503


@pytest.mark.anyio
async def test_admission_keeps_the_stale_copies_of_each_canary_bucket_apart() -> None:
    """Behind the gateway a renderer's pages depend on the bucket it says (`X-Oberon-Bucket`): a page rendered for a
    canary's bucket is never another bucket's stale copy."""
    site = Site()
    async with client(admission(site, limit=1)) as browser:
        await browser.get("/p/kept", headers={"X-Oberon-Bucket": "05"})
        canary = await browser.get("/p/kept", headers={"X-Oberon-Bucket": "05"})
        tasks = await hold(site, browser, 1)
        same_bucket = await browser.get("/p/kept", headers={"X-Oberon-Bucket": "05"})
        other_bucket = await browser.get("/p/kept", headers={"X-Oberon-Bucket": "70"})
        no_bucket = await browser.get("/p/kept")
        await let_go(site, tasks)
    assert canary.status_code == 200 and same_bucket.status_code == 200
    assert same_bucket.headers[STALE_HEADER] == "admission"
    assert (other_bucket.status_code, no_bucket.status_code) == (503, 503)


@pytest.mark.anyio
async def test_admission_without_stale_copies_rejects_even_a_page_it_served() -> None:
    site = Site()
    async with client(admission(site, limit=1, stale=False)) as browser:
        await browser.get("/p/kept"), await browser.get("/p/kept")
        tasks = await hold(site, browser, 1)
        shed = await browser.get("/p/kept")
        await let_go(site, tasks)
    assert shed.status_code == 503


@pytest.mark.anyio
async def test_admission_disabled_admits_everything() -> None:
    site = Site()
    settings = AdmissionSettings(enabled=False, min_limit=1, initial_limit=1, max_limit=1)
    app = Admission(site.app(), entrance="gateway", limit=AdaptiveLimit(settings=settings))
    async with client(app) as browser:
        tasks = await hold(site, browser, 2)
        page = await browser.get("/p/x")
        await let_go(site, tasks)
    assert page.status_code == 200


def sample(metrics: Metrics, name: str, **labels: str) -> float:
    found = metrics.registry.get_sample_value(name, labels)
    return 0.0 if found is None else found


@pytest.mark.anyio
async def test_admission_counts_shed_requests_by_outcome_and_shows_its_limit_and_in_flight() -> None:
    site = Site()
    metrics = Metrics()
    async with client(admission(site, limit=2, metrics=metrics)) as browser:
        await browser.get("/p/kept"), await browser.get("/p/kept")
        tasks = await hold(site, browser, 2)
        await browser.get("/p/kept")
        await browser.get("/p/other")
        await browser.get("/p/other")
        metrics.refresh()
        in_flight = sample(metrics, "oberon_admission_in_flight", service="gateway")
        await let_go(site, tasks)
    assert sample(metrics, "oberon_admission_shed_total", service="gateway", outcome="stale", at="app") == 1
    assert sample(metrics, "oberon_admission_shed_total", service="gateway", outcome="rejected", at="app") == 2
    assert sample(metrics, "oberon_admission_limit", service="gateway") == 2
    assert in_flight == 2


@pytest.mark.anyio
async def test_admission_logs_shed_requests_at_most_once_a_second_with_a_count(
    caplog: pytest.LogCaptureFixture,
) -> None:
    site = Site()
    clock = Clock()
    settings = AdmissionSettings(min_limit=1, initial_limit=1, max_limit=1)
    app = Admission(site.app(), entrance="gateway", limit=AdaptiveLimit(settings=settings, clock=clock), clock=clock)
    caplog.set_level(logging.WARNING, logger="oberon.admission")
    async with client(app) as browser:
        tasks = await hold(site, browser, 1)
        for _ in range(5):
            await browser.get("/p/x")
        clock.now = 1.0
        for _ in range(3):
            await browser.get("/p/x")
        await let_go(site, tasks)
    lines = [record.getMessage() for record in caplog.records if record.name == "oberon.admission"]
    assert lines == [
        "admission: gateway shed 1 request(s) beyond its concurrency limit of 1",
        "admission: gateway shed 5 request(s) beyond its concurrency limit of 1",
    ]


@pytest.mark.anyio
async def test_admission_keeps_no_copy_from_a_head_nor_of_a_page_that_varies_by_other_headers() -> None:
    site = Site()
    async with client(admission(site, limit=1)) as browser:
        await browser.head("/p/headed"), await browser.head("/p/headed")
        await browser.get("/varied"), await browser.get("/varied")
        tasks = await hold(site, browser, 1)
        headed = await browser.get("/p/headed")
        varied = await browser.get("/varied")
        await let_go(site, tasks)
    assert [headed.status_code, varied.status_code] == [503, 503]


HTML = [(b"accept", b"text/html,application/xhtml+xml")]
JSON_ACCEPT = [(b"accept", b"application/json")]


async def kept(site: Site, *, limit: int, metrics: Metrics | None = None) -> Admission:
    """An entrance that answered `/p/kept` twice (so it holds its stale copy), every place now taken."""
    app = admission(site, limit=limit, metrics=metrics)
    async with client(app) as browser:
        for _ in range(2):
            assert (await browser.get("/p/kept")).status_code == 200
    fill(app.limit, limit)
    return app


def wire_headers(answer: ShedAnswer) -> dict[bytes, bytes]:
    lines = answer.head.split(b"\r\n")
    assert lines[-1] == b""  # each line ends in CRLF
    return dict(line.split(b": ", 1) for line in lines[:-1])


@pytest.mark.anyio
async def test_admission_admit_takes_a_free_place_and_answers_nothing() -> None:
    app = admission(Site(), limit=2)
    assert app.admit("GET", "/p/x", b"", HTML, at=SERVER) is None
    assert app.limit.in_flight == 1


@pytest.mark.anyio
async def test_shed_answer_is_the_stale_copy_of_an_anonymous_page_it_served() -> None:
    app = await kept(Site(), limit=1)
    answer = app.admit("GET", "/p/kept", b"", HTML, at=SERVER)
    assert answer is not None
    assert (answer.outcome, answer.status, answer.body) == ("stale", 200, b"<p>page /p/kept</p>")
    assert dict(answer.headers) == {
        b"cache-control": DEGRADED.encode(),
        b"x-oberon-stale": b"admission",
        b"content-type": b"text/html; charset=utf-8",
        b"content-length": str(len(answer.body)).encode(),
    }
    assert wire_headers(answer) == dict(answer.headers)  # the same lines, prebuilt for the wire


@pytest.mark.anyio
async def test_shed_answer_to_a_head_has_the_length_of_the_get_and_no_body() -> None:
    app = await kept(Site(), limit=1)
    stale = app.admit("HEAD", "/p/kept", b"", HTML, at=SERVER)
    rejected = app.admit("HEAD", "/p/never", b"", JSON_ACCEPT, at=SERVER)
    assert stale is not None and rejected is not None
    assert (stale.status, stale.body, dict(stale.headers)[b"content-length"]) == (200, b"", b"19")
    json_length = str(len(b'{"error": "overloaded", "retry_after": 1}')).encode()
    assert (rejected.status, rejected.body, dict(rejected.headers)[b"content-length"]) == (503, b"", json_length)


@pytest.mark.anyio
async def test_shed_answer_is_a_503_page_for_a_browser_and_json_for_anything_else() -> None:
    app = await kept(Site(), limit=1)
    page = app.admit("GET", "/p/never", b"", HTML, at=SERVER)
    data = app.admit("GET", "/p/never", b"", JSON_ACCEPT, at=SERVER)
    signed_in = app.admit("GET", "/p/kept", b"", [*HTML, (b"cookie", b"oberon_session=x")], at=SERVER)
    other_query = app.admit("GET", "/p/kept", b"x=1", HTML, at=SERVER)
    posted = app.admit("POST", "/p/kept", b"", HTML, at=SERVER)
    assert page is not None and data is not None
    assert (page.outcome, page.status) == ("rejected", 503)
    assert b"<h1>We are very busy right now</h1>" in page.body
    assert dict(page.headers)[b"content-type"] == b"text/html; charset=utf-8"
    assert dict(page.headers)[b"retry-after"] == b"1" and dict(page.headers)[b"cache-control"] == b"no-store"
    assert json.loads(data.body) == {"error": "overloaded", "retry_after": 1}
    assert dict(data.headers)[b"content-type"] == b"application/json"
    assert wire_headers(data) == dict(data.headers)
    assert [answer.status if answer else None for answer in (signed_in, other_query, posted)] == [503] * 3


@pytest.mark.anyio
async def test_admission_counts_requests_shed_by_the_server_apart_from_those_it_shed_itself() -> None:
    site = Site()
    metrics = Metrics()
    app = await kept(site, limit=1, metrics=metrics)
    app.admit("GET", "/p/kept", b"", HTML, at=SERVER)
    app.admit("GET", "/p/never", b"", HTML, at=SERVER)
    async with client(app) as browser:
        await browser.get("/p/never")
    counted = {
        (outcome, at): sample(metrics, "oberon_admission_shed_total", service="gateway", outcome=outcome, at=at)
        for outcome in ("stale", "rejected")
        for at in (SERVER, APP)
    }
    assert counted == {("stale", SERVER): 1, ("rejected", SERVER): 1, ("stale", APP): 0, ("rejected", APP): 1}


@pytest.mark.anyio
async def test_admission_lets_through_a_request_whose_place_the_server_holds_and_the_server_keeps_its_copy() -> None:
    site = Site()
    app = admission(site, limit=1)
    fill(app.limit, 1)  # the server took the place for the request below
    answered: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        answered.append(message)

    scope = {"type": "http", "method": "GET", "path": "/p/held", "raw_path": b"/p/held", "query_string": b"",
             "headers": [], "root_path": "", "scheme": "http", "server": ("test", 80), HELD: True}  # fmt: skip
    await app(scope, receive, send)
    assert answered[0]["status"] == 200
    assert app.limit.in_flight == 1  # neither counted again nor given back: the server's to give back
    assert app.admit("GET", "/p/held", b"", [], at=SERVER).outcome == "rejected"  # type: ignore[union-attr]
    # As the server runs it (`EntranceProtocol`): its `holding` gives the place back and keeps the answer, from the
    # page's second time (the middleware let the request above through as is: it neither kept nor counted it).
    await app.holding(app)(scope, receive, send)
    assert app.limit.in_flight == 0 and app.stale is not None and len(app.stale) == 0
    fill(app.limit, 1)
    await app.holding(app)(scope, receive, send)
    assert answered[-1]["body"] == answered[1]["body"]
    assert app.limit.in_flight == 0 and len(app.stale) == 1
    fill(app.limit, 1)
    answer = app.admit("GET", "/p/held", b"", [], at=SERVER)
    assert answer is not None and answer.outcome == "stale"
    assert answer.body == answered[-1]["body"]


def request_scope(path: str, *, method: str = "GET", held: bool = False) -> Scope:
    """A request's scope as uvicorn makes it; `held`: the server took its place (`HELD`)."""
    scope = {"type": "http", "method": method, "path": path, "raw_path": path.encode(), "query_string": b""}
    return {**scope, "headers": [], "root_path": "", "scheme": "http", "server": ("test", 80), HELD: held}


KEPT_HTML = [(b"content-type", b"text/html; charset=utf-8"), (b"cache-control", PUBLIC.encode())]


@pytest.mark.parametrize(
    ("method", "status", "headers", "parts", "kept"),
    [
        ("GET", 200, KEPT_HTML, [b"<p>a</p>"], True),
        ("GET", 200, [(b"Content-Type", b"text/html"), (b"Cache-Control", b"public")], [b"<p>", b"a</p>"], True),
        ("GET", 200, [*KEPT_HTML, (b"vary", b"Accept-Language")], [b"<p>a</p>"], True),
        ("GET", 200, [*KEPT_HTML, (b"vary", b"Accept-Language, Cookie")], [b"<p>a</p>"], False),
        ("GET", 200, [*KEPT_HTML, (b"vary", b"cookie"), (b"vary", b"accept-language")], [b"<p>a</p>"], True),
        ("GET", 200, [*KEPT_HTML, (b"set-cookie", b"a=1")], [b"<p>a</p>"], False),
        ("GET", 200, [*KEPT_HTML, (b"Content-Encoding", b"gzip")], [b"<p>a</p>"], False),
        ("GET", 200, [*KEPT_HTML, (b"x-oberon-stale", b"admission")], [b"<p>a</p>"], False),
        ("GET", 200, [*KEPT_HTML, (b"cache-control", b"private")], [b"<p>a</p>"], False),
        ("GET", 200, [(b"content-type", b"application/json"), (b"cache-control", b"public")], [b"{}"], False),
        ("GET", 200, [(b"content-type", b"text/html")], [b"<p>a</p>"], False),
        ("GET", 404, KEPT_HTML, [b"<p>a</p>"], False),
        ("HEAD", 200, KEPT_HTML, [b""], False),
        ("GET", 200, KEPT_HTML, [b"x" * (1024 * 1024), b"x"], False),
    ],
)
@pytest.mark.anyio
async def test_admission_keeps_only_a_whole_public_cookieless_html_page_and_passes_every_message_on(
    method: str, status: int, headers: list[tuple[bytes, bytes]], parts: list[bytes], kept: bool
) -> None:
    """The stale copy's conditions as a dict of the answer's headers had them (the last of a repeated one counts);
    each message reaches the server as the app sent it, whether it is kept or not, and the place is given back."""
    sent = [{"type": "http.response.start", "status": status, "headers": headers}]
    sent += [{"type": "http.response.body", "body": part, "more_body": True} for part in parts[:-1]]
    sent.append({"type": "http.response.body", "body": parts[-1]})
    received: list[Message] = []

    async def answering(scope: Scope, receive: Receive, send: Send) -> None:
        for message in sent:
            await send(message)

    async def send(message: Message) -> None:
        received.append(message)

    app = Admission(answering, entrance="gateway", limit=AdaptiveLimit(), stale=StaleCopies())
    await app(request_scope("/p/x", method=method), receive_nothing, send)  # asked for once: never kept
    assert received == sent and app.stale is not None and len(app.stale) == 0
    received.clear()
    await app(request_scope("/p/x", method=method), receive_nothing, send)
    assert received == sent
    assert app.limit.in_flight == 0
    copy = app.stale.get("/p/x? ") if app.stale is not None else None
    assert (copy is not None) == kept
    if copy is not None:
        assert copy == StaleCopy(b"".join(parts), dict((n.lower(), v) for n, v in headers)[b"content-type"])


@pytest.mark.anyio
async def test_admission_holding_gives_the_place_back_with_its_latency_even_when_the_app_fails() -> None:
    clock = Clock()
    settings = AdmissionSettings(min_limit=1, initial_limit=1, max_limit=1)
    app = Admission(Site().app(), entrance="gateway", limit=AdaptiveLimit(settings=settings, clock=clock), clock=clock)

    async def failing(scope: Scope, receive: Receive, send: Send) -> None:
        clock.now += 0.25
        raise RuntimeError("boom")

    assert app.admit("GET", "/p/x", b"", [], at=SERVER) is None
    with pytest.raises(RuntimeError):
        await app.holding(failing)({}, receive_nothing, send_nothing)
    assert app.limit.in_flight == 0
    assert app.limit.baseline == 0.25


async def receive_nothing() -> Message:
    raise AssertionError("not read")


async def send_nothing(message: Message) -> None:
    raise AssertionError("not sent")


@pytest.mark.anyio
async def test_admission_holding_gives_the_place_back_with_the_answers_last_part_not_when_the_app_returns() -> None:
    clock = Clock()
    settings = AdmissionSettings(min_limit=1, initial_limit=1, max_limit=1)
    app = Admission(Site().app(), entrance="gateway", limit=AdaptiveLimit(settings=settings, clock=clock), clock=clock)
    in_flight: list[int] = []

    async def proxied(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        clock.now += 0.125
        await send({"type": "http.response.body", "body": b"a", "more_body": True})
        in_flight.append(app.limit.in_flight)
        await send({"type": "http.response.body", "body": b"b"})
        in_flight.append(app.limit.in_flight)  # the client has its answer and may ask again on this connection
        clock.now += 1.0  # closing what it proxied, say: no longer the client's wait

    async def send(message: Message) -> None:
        if message["type"] == "http.response.body" and not message.get("more_body"):
            in_flight.append(app.limit.in_flight)  # a server may await its write while the next request comes

    assert app.admit("GET", "/p/x", b"", [], at=SERVER) is None
    await app.holding(proxied)({}, receive_nothing, send)
    assert in_flight == [1, 0, 0]
    assert app.limit.in_flight == 0  # given back once
    assert app.limit.baseline == 0.125
