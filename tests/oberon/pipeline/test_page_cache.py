"""The renderer's page cache: kept as long as all of a page's data is fresh, only for anonymous complete pages."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import jinja2
import pytest
import respx

from oberon.client.response_cache import ResponseCache
from oberon.client.upstream import Upstreams
from oberon.ops.metrics import Metrics
from oberon.pipeline.assets import Assets
from oberon.pipeline.cache_policy import CachePolicy
from oberon.pipeline.page import PageRenderer
from oberon.pipeline.page_cache import PageCache
from oberon.pipeline.page_types import Page, PageRecord, RequestContext
from oberon.pipeline.registry import Registry, load_registry
from oberon.pipeline.server_timing import HEADER as SERVER_TIMING
from oberon.types import Mode, Outcome
from oberon.web.renderer import PAGE_CACHE_HEADER, RendererApp
from tests.conftest import TEST_BFF, FakeClock

ITEM = {"name": "Lamp", "price": "€10"}
ANONYMOUS = RequestContext(request_id="req-1")


def max_age(seconds: int) -> dict[str, str]:
    return {"Cache-Control": f"max-age={seconds}"}


# The PageCache alone, over a fake clock.


@pytest.mark.parametrize(
    ("fresh_for", "kept_for"),
    [(3, 3.0), (60, 10.0)],
    ids=["its data lifetime when shorter than max seconds", "at most max seconds"],
)
def test_a_page_is_kept_for_its_data_lifetime_at_most_max_seconds(
    clock: FakeClock, fresh_for: float, kept_for: float
) -> None:
    cache: PageCache[str] = PageCache(max_seconds=10, clock=clock)
    cache.put("k", "page", size=4, fresh_for=fresh_for)
    clock.now += kept_for - 0.1
    assert cache.get("k") == "page"
    clock.now += 0.1
    assert cache.get("k") is None
    assert len(cache) == 0


@pytest.mark.parametrize("fresh_for", [0.0, -1.0])
def test_a_page_whose_data_is_not_fresh_is_not_kept(clock: FakeClock, fresh_for: float) -> None:
    cache: PageCache[str] = PageCache(max_seconds=10, clock=clock)
    cache.put("k", "page", size=4, fresh_for=fresh_for)
    assert cache.get("k") is None and len(cache) == 0


def test_max_seconds_zero_turns_the_cache_off(clock: FakeClock) -> None:
    assert PageCache(max_seconds=10, clock=clock).enabled
    off: PageCache[str] = PageCache(max_seconds=0, clock=clock)
    assert not off.enabled
    off.put("k", "page", size=4, fresh_for=60)
    assert off.get("k") is None


def test_a_page_larger_than_max_bytes_is_not_kept(clock: FakeClock) -> None:
    cache: PageCache[str] = PageCache(max_bytes=100, clock=clock)
    cache.put("small", "a", size=100, fresh_for=5)
    cache.put("big", "b", size=101, fresh_for=5)
    assert cache.get("big") is None
    assert cache.get("small") == "a"  # the refused page evicted nothing


def test_the_least_recently_used_pages_go_first_when_bytes_run_out(clock: FakeClock) -> None:
    cache: PageCache[str] = PageCache(max_bytes=100, clock=clock)
    cache.put("a", "A", size=40, fresh_for=5)
    cache.put("b", "B", size=40, fresh_for=5)
    assert cache.get("a") == "A"  # `b` is now the least recently used
    cache.put("c", "C", size=40, fresh_for=5)
    assert cache.get("b") is None
    assert (cache.get("a"), cache.get("c")) == ("A", "C")
    cache.put("d", "D", size=90, fresh_for=5)  # needs room for 90 of 100 bytes: both go
    assert (cache.get("a"), cache.get("c"), cache.get("d")) == (None, None, "D")


def test_clear_forgets_every_page(clock: FakeClock) -> None:
    cache: PageCache[str] = PageCache(clock=clock)
    cache.put("a", "A", size=1, fresh_for=5)
    cache.put("b", "B", size=1, fresh_for=5)
    cache.clear()
    assert len(cache) == 0 and cache.get("a") is None and cache.get("b") is None


# The PageRenderer with a page cache, over a fake BFF and one fake clock for both caches.


@pytest.fixture
def bff() -> Iterator[respx.MockRouter]:
    with respx.mock(base_url=TEST_BFF, assert_all_called=False) as router:
        router.route(host="r").pass_through()  # the renderer's own ASGI client
        router.get("/items/1", name="item").respond(json=ITEM, headers=max_age(60))
        router.get("/items/2", name="item2").respond(json={"name": "Desk", "price": "€90"}, headers=max_age(60))
        router.get("/banner", name="banner").respond(json={"text": "Sale"}, headers=max_age(60))
        yield router


@pytest.fixture
def timed_upstreams(upstreams: Upstreams, clock: FakeClock) -> Upstreams:
    """The test site's BFF client, its response cache on the test's clock."""
    upstreams["shop"].cache = ResponseCache(clock=clock)
    return upstreams


@pytest.fixture
def page_cache(clock: FakeClock) -> PageCache[Page]:
    return PageCache(max_seconds=10, clock=clock)


@pytest.fixture
def records() -> list[PageRecord]:
    return []


@pytest.fixture
def cached(
    registry: Registry,
    timed_upstreams: Upstreams,
    environment: jinja2.Environment,
    assets: Assets,
    page_cache: PageCache[Page],
    records: list[PageRecord],
) -> PageRenderer:
    return PageRenderer(
        registry=registry,
        upstreams=timed_upstreams,
        environment=environment,
        policy=CachePolicy(),
        assets=assets,
        page_cache=page_cache,
        observers=[records.append],
    )


async def render(
    renderer: PageRenderer, item_id: int = 1, context: RequestContext = ANONYMOUS, **kwargs: object
) -> Page:
    app = renderer.registry.get("shop-page")
    return await renderer.render(app, params={"item_id": item_id}, context=context, **kwargs)  # type: ignore[arg-type]


@pytest.mark.anyio
async def test_a_page_with_fresh_data_is_rendered_once_then_served_from_the_cache(
    cached: PageRenderer, bff: respx.MockRouter, records: list[PageRecord]
) -> None:
    first = await render(cached)
    second = await render(cached)
    assert not first.from_cache and second.from_cache
    assert second.html == first.html
    assert (second.status_code, second.cache_control) == (first.status_code, first.cache_control)
    assert bff["item"].call_count == 1 and bff["banner"].call_count == 1
    assert [record.page_cache for record in records] == ["miss", "hit"]


@pytest.mark.anyio
async def test_a_page_is_rendered_again_once_its_shortest_lived_data_is_stale(
    cached: PageRenderer, bff: respx.MockRouter, clock: FakeClock
) -> None:
    bff["banner"].respond(json={"text": "Sale"}, headers=max_age(1))
    assert not (await render(cached)).from_cache
    clock.now += 0.5
    assert (await render(cached)).from_cache
    clock.now += 0.6  # past the banner's 1 s, well within the item's 60 s
    again = await render(cached)
    assert not again.from_cache
    assert bff["banner"].call_count == 2
    assert bff["item"].call_count == 1  # still fresh in the client's response cache
    assert (await render(cached)).from_cache  # kept again, for the banner's new second


@pytest.mark.anyio
@pytest.mark.parametrize("cache_control", ["no-store", "no-cache", "private, max-age=60", "max-age=0", None])
async def test_a_page_with_data_that_must_not_be_kept_is_rendered_every_time(
    cached: PageRenderer, bff: respx.MockRouter, page_cache: PageCache[Page], cache_control: str | None
) -> None:
    headers = {"Cache-Control": cache_control} if cache_control else {}
    bff["item"].respond(json=ITEM, headers=headers)
    first = await render(cached)
    second = await render(cached)
    assert not first.from_cache and not second.from_cache
    assert bff["item"].call_count == 2
    assert len(page_cache) == 0


@pytest.mark.anyio
async def test_a_signed_in_visitor_never_gets_a_kept_page_nor_leaves_one(
    cached: PageRenderer, bff: respx.MockRouter, page_cache: PageCache[Page], records: list[PageRecord]
) -> None:
    alice = RequestContext(request_id="req-2", user="alice")
    assert not (await render(cached, context=alice)).from_cache
    assert len(page_cache) == 0
    assert (await render(cached)).from_cache is False  # the anonymous page is rendered, and kept
    assert len(page_cache) == 1
    signed_in = await render(cached, context=alice)
    assert not signed_in.from_cache
    assert signed_in.cache_control == "private, no-store"
    assert len(page_cache) == 1
    assert [record.page_cache for record in records] == [None, "miss", None]


@pytest.mark.anyio
async def test_a_preview_with_props_is_never_kept(
    cached: PageRenderer, bff: respx.MockRouter, page_cache: PageCache[Page]
) -> None:
    card = cached.registry.get("item-card")
    for _ in range(2):
        page = await cached.render(card, params={"item_id": 1}, context=ANONYMOUS, props={})
        assert not page.from_cache
    assert len(page_cache) == 0


@pytest.mark.anyio
async def test_params_locale_and_mode_are_each_their_own_entry(
    cached: PageRenderer, bff: respx.MockRouter, page_cache: PageCache[Page]
) -> None:
    one = await render(cached, 1)
    two = await render(cached, 2)
    assert not two.from_cache and "Desk" in two.html and "Desk" not in one.html
    german = await render(cached, 1, context=RequestContext(request_id="req-3", locale="de"))
    assert not german.from_cache and 'lang="de"' in german.html
    cached.mode = lambda: Mode.DEGRADED
    degraded = await render(cached, 1)
    assert not degraded.from_cache and "s-maxage=300," in degraded.cache_control
    assert len(page_cache) == 4
    cached.mode = lambda: Mode.NORMAL
    for item_id, context, html in ((1, ANONYMOUS, one.html), (2, ANONYMOUS, two.html)):
        again = await render(cached, item_id, context=context)
        assert again.from_cache and again.html == html
    assert (await render(cached, 1, context=RequestContext(request_id="r", locale="de"))).html == german.html


@pytest.mark.anyio
async def test_a_page_with_a_fallback_is_not_kept(
    cached: PageRenderer, bff: respx.MockRouter, page_cache: PageCache[Page]
) -> None:
    bff["banner"].respond(500, json={"error": "boom"})
    first = await render(cached)
    assert {f.component.name: f.outcome for f in first.fragments}["hero-banner"] is Outcome.FALLBACK
    second = await render(cached)
    assert not second.from_cache
    assert bff["banner"].call_count == 2
    assert len(page_cache) == 0


@pytest.mark.anyio
async def test_a_page_with_fresh_data_but_a_failing_template_is_not_kept(
    cached: PageRenderer,
    bff: respx.MockRouter,
    page_cache: PageCache[Page],
    site: Path,
    environment: jinja2.Environment,
) -> None:
    (site / "components/item-price/template.html").write_text("{{ 1 // 0 }}")
    cached.registry = load_registry([site / "components"], environment=environment)
    first = await render(cached)
    assert first.fallbacks == ["item-price"]
    assert not (await render(cached)).from_cache
    assert bff["item"].call_count == 1  # the data itself was fresh
    assert len(page_cache) == 0


@pytest.mark.anyio
async def test_a_private_page_is_not_kept(
    cached: PageRenderer,
    bff: respx.MockRouter,
    page_cache: PageCache[Page],
    site: Path,
    environment: jinja2.Environment,
) -> None:
    manifest = site / "components/shop-page/component.toml"
    manifest.write_text(manifest.read_text().replace('owner = "shop"', 'owner = "shop"\ncache = "private"'))
    cached.registry = load_registry([site / "components"], environment=environment)
    assert (await render(cached)).cache_control == "private, no-store"
    assert not (await render(cached)).from_cache
    assert len(page_cache) == 0


@pytest.mark.anyio
async def test_a_page_with_a_private_island_is_kept_without_it(
    cached: PageRenderer,
    bff: respx.MockRouter,
    page_cache: PageCache[Page],
    site: Path,
    environment: jinja2.Environment,
) -> None:
    manifest = site / "components/hero-banner/component.toml"
    manifest.write_text(manifest.read_text().replace('owner = "shop"', 'owner = "shop"\ncache = "private"'))
    cached.registry = load_registry([site / "components"], environment=environment)
    first = await render(cached)
    assert first.cache_control.startswith("public,")
    again = await render(cached)
    assert again.from_cache and again.html == first.html
    assert 'data-oberon-island-src="/_islands/hero-banner?' in again.html  # the visitor's part is fetched apart
    assert bff["banner"].call_count == 0


@pytest.mark.anyio
async def test_a_new_registry_clears_the_cache(
    cached: PageRenderer,
    bff: respx.MockRouter,
    page_cache: PageCache[Page],
    site: Path,
    environment: jinja2.Environment,
) -> None:
    await render(cached)
    assert (await render(cached)).from_cache
    (site / "components/hero-banner/template.html").write_text('<div class="banner">New: {{ state.banner.text }}</div>')
    cached.registry = load_registry([site / "components"], environment=environment)
    assert len(page_cache) == 0
    page = await render(cached)
    assert not page.from_cache
    assert '<div class="banner">New: Sale</div>' in page.html


# Through the HTTP edge: the hit header and the page cache's metrics.


@pytest.fixture
def metrics() -> Metrics:
    return Metrics()


@pytest.fixture
async def client(
    registry: Registry,
    timed_upstreams: Upstreams,
    environment: jinja2.Environment,
    assets: Assets,
    page_cache: PageCache[Page],
    metrics: Metrics,
) -> AsyncIterator[httpx.AsyncClient]:
    renderer = PageRenderer(
        registry=registry,
        upstreams=timed_upstreams,
        environment=environment,
        policy=CachePolicy(),
        assets=assets,
        page_cache=page_cache,
        observers=[metrics.page_observer("renderer")],
    )
    transport = httpx.ASGITransport(app=RendererApp(renderer=renderer).starlette())
    async with httpx.AsyncClient(transport=transport, base_url="http://r") as client:
        yield client


def value(metrics: Metrics, name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(name, labels) or 0.0


@pytest.mark.anyio
async def test_the_second_request_is_a_hit_without_server_timing(
    client: httpx.AsyncClient, bff: respx.MockRouter
) -> None:
    first = await client.get("/items/1")
    second = await client.get("/items/1")
    assert first.status_code == second.status_code == 200
    assert PAGE_CACHE_HEADER not in first.headers and SERVER_TIMING in first.headers
    assert second.headers[PAGE_CACHE_HEADER] == "hit" and SERVER_TIMING not in second.headers
    assert second.text == first.text
    assert second.headers["cache-control"] == first.headers["cache-control"]
    assert bff["item"].call_count == 1


@pytest.mark.anyio
async def test_a_signed_in_request_is_never_a_hit(client: httpx.AsyncClient, bff: respx.MockRouter) -> None:
    await client.get("/items/1")
    response = await client.get("/items/1", headers={"X-Oberon-User": "alice"})
    assert response.status_code == 200 and PAGE_CACHE_HEADER not in response.headers


@pytest.mark.anyio
async def test_hits_and_misses_are_counted_and_a_hit_is_not_a_render(
    client: httpx.AsyncClient, bff: respx.MockRouter, metrics: Metrics
) -> None:
    page = {"service": "renderer", "cache": "page"}
    renders = {"service": "renderer", "app": "shop-page"}
    await client.get("/items/1")
    assert value(metrics, "oberon_cache_requests_total", **page, result="miss") == 1
    assert value(metrics, "oberon_cache_requests_total", **page, result="hit") == 0
    assert value(metrics, "oberon_page_render_duration_seconds_count", **renders) == 1
    await client.get("/items/1")
    assert value(metrics, "oberon_cache_requests_total", **page, result="miss") == 1
    assert value(metrics, "oberon_cache_requests_total", **page, result="hit") == 1
    assert value(metrics, "oberon_page_render_duration_seconds_count", **renders) == 1
    card = {"service": "renderer", "component": "item-card", "version": "1.2.0", "outcome": "ok"}
    assert value(metrics, "oberon_component_render_duration_seconds_count", **card) == 1
