"""A renderer following the registry: each visitor's page wholly by their cohort's registry, cached by cohort, and
islands of versions that left the cohort still rendered."""

from __future__ import annotations

from collections.abc import Iterator

import jinja2
import pytest
import respx
from packaging.specifiers import SpecifierSet

from oberon.client.response_cache import ResponseCache
from oberon.client.upstream import Upstreams
from oberon.exceptions import ComponentNotFound
from oberon.pipeline.assets import Assets
from oberon.pipeline.cache_policy import CachePolicy
from oberon.pipeline.page import PageRenderer
from oberon.pipeline.page_cache import PageCache
from oberon.pipeline.page_types import Page, RequestContext
from oberon.pipeline.registry import Registry
from tests.conftest import CANARY_COHORT, TEST_BFF, CanarySite, FakeClock

pytestmark = pytest.mark.anyio

ANONYMOUS = RequestContext(request_id="req-1")


@pytest.fixture
def bff() -> Iterator[respx.MockRouter]:
    with respx.mock(base_url=TEST_BFF, assert_all_called=False) as router:
        router.get("/items/1").respond(json={"name": "Lamp", "price": "€10"}, headers={"Cache-Control": "max-age=60"})
        router.get("/banner").respond(json={"text": "Sale"}, headers={"Cache-Control": "max-age=60"})
        yield router


@pytest.fixture
def following(
    registry: Registry,
    upstreams: Upstreams,
    environment: jinja2.Environment,
    assets: Assets,
    canary_site: CanarySite,
    clock: FakeClock,
) -> PageRenderer:
    """A renderer with a page cache, serving the canary site."""
    upstreams["shop"].cache = ResponseCache(clock=clock)
    renderer = PageRenderer(
        registry=registry,
        upstreams=upstreams,
        environment=environment,
        policy=CachePolicy(),
        assets=assets,
        page_cache=PageCache(max_seconds=10, clock=clock),
    )
    canary_site.follow(renderer)
    return renderer


async def page_for(renderer: PageRenderer, bucket: int | None) -> Page:
    served = renderer.served_for(bucket)
    app = served.registry.get("shop-page")
    return await renderer.render(app, params={"item_id": 1}, context=ANONYMOUS, served=served, stream=False)


async def test_each_bucket_is_rendered_by_its_cohorts_registry(following: PageRenderer, bff: respx.MockRouter) -> None:
    assert following.cohorts is not None and following.cohorts.names() == ["stable", CANARY_COHORT]
    assert following.served_for(0).cohort == following.served_for(29).cohort == CANARY_COHORT
    assert following.served_for(30).cohort == following.served_for(None).cohort == "stable"
    canary = await page_for(following, 7)
    assert '<h1 class="item v2">Lamp</h1>' in canary.html and 'data-oberon-version="1.3.0"' in canary.html
    assert 'data-oberon-script="item-card" data-oberon-version="1.3.0"' in canary.html
    stable = await page_for(following, 70)
    assert '<h1 class="item">Lamp</h1>' in stable.html and 'data-oberon-version="1.2.0"' in stable.html
    assert "1.3.0" not in stable.html


async def test_the_page_cache_never_serves_one_cohorts_page_to_another(
    following: PageRenderer, bff: respx.MockRouter
) -> None:
    canary = await page_for(following, 7)
    stable = await page_for(following, 70)  # the same app, route and data: only the cohort differs
    assert not stable.from_cache and "v2" not in stable.html
    again = await page_for(following, 12)
    assert again.from_cache and again.html == canary.html
    assert (await page_for(following, None)).html == stable.html


async def test_a_follow_empties_the_page_cache_and_needs_a_registry_per_cohort(
    following: PageRenderer, bff: respx.MockRouter, canary_site: CanarySite
) -> None:
    await page_for(following, 70)
    assert following.page_cache is not None and len(following.page_cache) == 1
    canary_site.follow(following)
    assert len(following.page_cache) == 0
    with pytest.raises(ValueError, match=f"no registry for the cohort\\(s\\) {CANARY_COHORT}"):
        following.follow({"stable": canary_site.registries["stable"]}, canary_site.assets, cohorts=canary_site.cohorts)


async def test_an_island_pinned_to_a_version_outside_the_cohort_is_rendered_by_that_version(
    following: PageRenderer, bff: respx.MockRouter
) -> None:
    stable = following.served_for(70)
    component, served = stable.island("item-card", SpecifierSet("==1.3.0"))  # a canary page's island
    assert component.manifest.version_text == "1.3.0" and served is not stable
    assert served.registry.get("item-card") is component and served.cohort == "stable"
    assert served.registry.get("hero-banner") is stable.registry.get("hero-banner")
    assert stable.island("item-card", SpecifierSet("==1.3.0"))[1] is served  # worked out once
    page = await following.render_island(component, params={"item_id": 1}, props={}, context=ANONYMOUS, served=served)
    assert '<h1 class="item v2">Lamp</h1>' in page.html
    own, same = stable.island("item-card", SpecifierSet("==1.2.0"))
    assert same is stable and own is stable.registry.get("item-card")
    with pytest.raises(ComponentNotFound):
        stable.island("item-card", SpecifierSet("==9.9.9"))


async def test_a_renderer_without_a_registry_to_follow_has_no_cohorts(renderer: PageRenderer) -> None:
    assert renderer.cohorts is None
    assert renderer.served_for(7) is renderer.served_for(None) is renderer.served
    assert renderer.served.cohort is None
    with pytest.raises(ComponentNotFound):
        renderer.served.island("item-card", SpecifierSet("==9.9.9"))
