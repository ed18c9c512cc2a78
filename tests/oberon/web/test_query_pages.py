"""Pages that read the request: declared query parameters and request context, in process over a fake BFF."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import jinja2
import pytest
import respx

from oberon.pipeline.assets import Assets
from oberon.pipeline.cache_policy import CachePolicy
from oberon.pipeline.page import PageRenderer
from oberon.pipeline.page_cache import PageCache
from oberon.pipeline.registry import load_registry
from oberon.pipeline.seo import SiteInfo
from oberon.web.renderer import RendererApp

pytestmark = pytest.mark.anyio

BFF = "http://shop.test"
FINDER = """name = "finder"
version = "1.0.0"
owner = "shop"
kind = "app"
routes = ["/find", "/find/{shelf}"]
title = "Found: {{ params.q }}"

[query.q]
type = "str"
default = ""
max_length = 40

[query.page]
type = "int"
default = 1
min = 1
max = 50

[query.sort]
type = "str"
default = "date"
max_length = 10
choices = ["date", "name"]
invalid = "default"

[data.hits]
bff = "shop"
path = "/search?q={q}&page={page}&sort={sort}"

[[slots.main]]
component = "echo"
"""
FINDER_TEMPLATE = '<main><p class="q">{{ params.q }}</p><p class="page">{{ params.page }}</p>{{ slots.main }}</main>'
ECHO = """name = "echo"
version = "1.0.0"
owner = "shop"
subscribes = ["banner"]

[data.banner]
bff = "shop"
path = "/banner"

[data.picks]
bff = "shop"
path = "/picks?device={device}&locale={locale}"
context = ["device", "locale"]
"""
ECHO_TEMPLATE = '<p class="echo">{{ params.q }}|{{ state.picks.seen }}</p>'


def finder_site(site: Path) -> None:
    for name, manifest, template in [("finder", FINDER, FINDER_TEMPLATE), ("echo", ECHO, ECHO_TEMPLATE)]:
        folder = site / "components" / name
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "component.toml").write_text(manifest)
        (folder / "template.html").write_text(template)


@pytest.fixture
def page_renderer(site: Path, upstreams, environment: jinja2.Environment, assets: Assets) -> PageRenderer:
    finder_site(site)
    return PageRenderer(
        registry=load_registry([site / "components"], environment=environment),
        upstreams=upstreams,
        environment=environment,
        policy=CachePolicy(),
        assets=assets,
        site=SiteInfo(url="https://tickets.test"),
        page_cache=PageCache(max_seconds=30),
    )


@pytest.fixture
async def client(page_renderer: PageRenderer) -> AsyncIterator[httpx.AsyncClient]:
    app = RendererApp(renderer=page_renderer).starlette()
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://renderer") as client:
        yield client


@pytest.fixture(autouse=True)
def bff() -> respx.MockRouter:
    def search(request: httpx.Request) -> httpx.Response:
        body = {"query": str(request.url.query, "ascii")}
        return httpx.Response(200, json=body, headers={"Cache-Control": "max-age=60"})

    def picks(request: httpx.Request) -> httpx.Response:
        seen = f"{request.url.params['device']}/{request.url.params['locale']}"
        return httpx.Response(200, json={"seen": seen}, headers={"Cache-Control": "max-age=60"})

    with respx.mock(base_url=BFF, assert_all_called=False) as router:
        router.route(host="renderer").pass_through()
        router.get("/search", name="search").mock(side_effect=search)
        router.get("/picks", name="picks").mock(side_effect=picks)
        router.get("/banner").respond(json={"text": "Sale"}, headers={"Cache-Control": "max-age=60"})
        yield router


async def test_a_declared_query_parameter_reaches_the_data_source_path_and_the_templates(
    client: httpx.AsyncClient, bff: respx.MockRouter
) -> None:
    response = await client.get("/find", params={"q": "jazz & blues", "page": "2", "utm_source": "mail"})
    assert response.status_code == 200, response.text
    assert bff["search"].calls.last.request.url.query == b"q=jazz%20%26%20blues&page=2&sort=date"
    assert '<p class="q">jazz &amp; blues</p><p class="page">2</p>' in response.text
    assert "<title>Found: jazz &amp; blues</title>" in response.text
    assert "utm_source" not in response.text and "mail" not in response.text


async def test_a_hostile_query_value_is_escaped_everywhere(client: httpx.AsyncClient) -> None:
    response = await client.get("/find", params={"q": '"><script>alert(1)</script>'})
    assert response.status_code == 200
    assert "<script>alert(1)" not in response.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in response.text


@pytest.mark.parametrize(
    "query",
    ["page=abc", "page=0", "page=99999999999999999999", "q=%00", "q=" + "x" * 41, "page=1e2", "page=%FF"],
)
async def test_a_value_out_of_bounds_answers_the_routes_400_never_a_500(client: httpx.AsyncClient, query) -> None:
    response = await client.get(f"/find?{query}")
    assert response.status_code == 400
    assert "<h1>Bad request</h1>" in response.text
    assert response.headers["cache-control"] == "no-store"
    assert "Traceback" not in response.text


async def test_an_overlong_query_string_is_refused_with_414(client: httpx.AsyncClient) -> None:
    response = await client.get("/find?utm_content=" + "x" * 3000)
    assert response.status_code == 414
    assert response.headers["cache-control"] == "no-store"


async def test_a_value_out_of_bounds_gets_the_default_when_declared_so(
    client: httpx.AsyncClient, bff: respx.MockRouter
) -> None:
    response = await client.get("/find?sort=price&q=a")
    assert response.status_code == 200
    assert bff["search"].calls.last.request.url.query == b"q=a&page=1&sort=date"


async def test_a_repeated_parameter_is_refused(client: httpx.AsyncClient) -> None:
    response = await client.get("/find?page=3&page=2")
    assert response.status_code == 400
    assert "given more than once" in response.text


async def test_the_canonical_link_carries_the_non_default_values_in_declaration_order(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/find/books?utm_source=x&sort=name&page=1&q=jazz")
    assert '<link rel="canonical" href="https://tickets.test/find/books?q=jazz&amp;sort=name">' in response.text
    plain = await client.get("/find?page=1&sort=date")
    assert '<link rel="canonical" href="https://tickets.test/find">' in plain.text


async def test_the_page_cache_keys_a_page_by_its_declared_parameters_only(client: httpx.AsyncClient) -> None:
    first = await client.get("/find?utm_source=x&q=jazz")
    assert "x-oberon-page-cache" not in first.headers
    again = await client.get("/find?q=jazz&gclid=abc&page=1")
    assert again.headers["x-oberon-page-cache"] == "hit"
    other = await client.get("/find?q=rock")
    assert "x-oberon-page-cache" not in other.headers
    assert '<p class="q">rock</p>' in other.text


async def test_a_shared_render_of_a_component_that_reads_params_is_not_served_for_other_params(
    client: httpx.AsyncClient,
) -> None:
    # echo's data (banner, picks) is the same cached object for both pages; its template reads params.q.
    await client.get("/find?q=first")
    second = await client.get("/find?q=second&page=2")
    assert '<p class="echo">second|' in second.text


async def test_a_source_reading_the_device_gets_it_and_the_page_varies_by_it(
    client: httpx.AsyncClient, bff: respx.MockRouter
) -> None:
    mobile = await client.get("/find", headers={"X-Oberon-Device": "mobile", "X-Oberon-Locale": "de"})
    assert '|mobile/de</p>' in mobile.text
    assert mobile.headers["vary"] == "Accept-Language, X-Oberon-Device"
    desktop = await client.get("/find", headers={"X-Oberon-Device": "desktop", "X-Oberon-Locale": "de"})
    assert "x-oberon-page-cache" not in desktop.headers  # the page cache keys it by device too
    assert '|desktop/de</p>' in desktop.text
    mobile_again = await client.get("/find", headers={"X-Oberon-Device": "mobile", "X-Oberon-Locale": "de"})
    assert mobile_again.headers["x-oberon-page-cache"] == "hit" and "|mobile/de</p>" in mobile_again.text


@pytest.mark.parametrize("device", ["", "toaster", "<b>", "MOBILE"])
async def test_an_absent_or_malformed_device_is_desktop(client: httpx.AsyncClient, device: str) -> None:
    response = await client.get("/find", headers={"X-Oberon-Device": device} if device else {})
    assert "|desktop/en</p>" in response.text


async def test_a_page_whose_sources_read_no_context_does_not_vary_by_device(
    site: Path, upstreams, environment, assets: Assets
) -> None:
    renderer = PageRenderer(
        registry=load_registry([site / "components"], environment=environment),
        upstreams=upstreams,
        environment=environment,
        policy=CachePolicy(),
        assets=assets,
    )
    app = RendererApp(renderer=renderer).starlette()
    with respx.mock(base_url=BFF, assert_all_called=False) as router:
        router.route(host="renderer").pass_through()
        router.get("/items/1").respond(json={"name": "Lamp", "price": "€10"})
        router.get("/banner").respond(json={"text": "Sale"})
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://renderer") as client:
            response = await client.get("/items/1?utm_source=x&q=1", headers={"X-Oberon-Device": "mobile"})
    assert response.status_code == 200
    assert response.headers["vary"] == "Accept-Language"
    assert "utm_source" not in response.text


async def test_the_registry_listing_shows_declared_query_parameters_and_context(page_renderer: PageRenderer) -> None:
    from starlette.applications import Starlette

    app = Starlette(routes=RendererApp(renderer=page_renderer).admin_routes())
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://admin") as admin:
        listing = {entry["name"]: entry for entry in (await admin.get("/_oberon/registry")).json()}
    assert listing["finder"]["query"]["page"] == {"type": "int", "default": 1, "invalid": "reject"}
    assert listing["echo"]["data"]["picks"]["context"] == ["device", "locale"]
    assert listing["echo"]["data"]["banner"]["context"] == []


async def test_the_preview_of_an_app_reads_its_declared_query_parameters(
    client: httpx.AsyncClient, bff: respx.MockRouter
) -> None:
    response = await client.get("/_components/finder?shelf=books&q=jazz")
    assert response.status_code == 200
    assert '<p class="q">jazz</p><p class="page">1</p>' in response.text
    assert bff["search"].calls.last.request.url.query == b"q=jazz&page=1&sort=date"
    assert (await client.get("/_components/finder?page=0")).status_code == 400
