"""The render pipeline over a fake BFF (respx): loaders, fallbacks, isolation, escaping, assets."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

import httpx
import jinja2
import pytest
import respx

from oberon.exceptions import ComponentNotFound, RenderError
from oberon.pipeline.page import PageRenderer
from oberon.pipeline.page_types import Page, PageRecord, RequestContext
from oberon.pipeline.registry import Registry, load_registry
from oberon.pipeline.server_timing import Loader, Timing
from oberon.types import Mode, Outcome

pytestmark = pytest.mark.anyio

BFF = "http://shop.test"
ITEM = {"name": "Lamp", "price": "€10"}
CONTEXT = RequestContext(request_id="req-1")


@pytest.fixture
def bff() -> respx.MockRouter:
    with respx.mock(base_url=BFF, assert_all_called=False) as router:
        router.get("/items/1", name="item").respond(json=ITEM)
        router.get("/banner", name="banner").respond(json={"text": "Sale"})
        yield router


async def render(renderer: PageRenderer, item_id: int = 1) -> Page:
    app = renderer.registry.get("shop-page")
    return await renderer.render(app, params={"item_id": item_id}, context=CONTEXT)


def outcomes(page: Page) -> dict[str, Outcome]:
    return {fragment.component.name: fragment.outcome for fragment in page.fragments}


def page_state(html: str) -> dict[str, object]:
    found = re.search(r'<script type="application/json" id="oberon-state">(.*?)</script>', html, re.S)
    assert found is not None
    return json.loads(found.group(1))  # type: ignore[no-any-return]


async def test_page_renders_every_component_from_its_state(renderer: PageRenderer, bff: respx.MockRouter) -> None:
    page = await render(renderer)
    assert page.status_code == 200
    assert set(outcomes(page).values()) == {Outcome.OK}
    assert "<title>Lamp · Shop</title>" in page.html
    assert '<h1 class="item">Lamp</h1>' in page.html
    assert '<p class="price">€10</p>' in page.html
    assert '<p class="greeting">Hello shopper</p>' in page.html
    assert 'data-oberon-component="item-card" data-oberon-version="1.2.0" data-oberon-outcome="ok"' in page.html
    assert page_state(page.html) == {"state": {"item": ITEM}, "failed": []}  # what item-card's script reads
    assert page.cache_control.startswith("public, max-age=0, s-maxage=30")


def reload_with_item_card(
    site: Path, environment: jinja2.Environment, renderer: PageRenderer, old: str, new: str
) -> None:
    """Serve the test site with `old` replaced by `new` in item-card's manifest."""
    manifest = site / "components/item-card/component.toml"
    manifest.write_text(manifest.read_text().replace(old, new))
    renderer.registry = load_registry([site / "components"], environment=environment)


async def test_the_browser_gets_exactly_the_keys_the_pages_scripts_read(
    renderer: PageRenderer, bff: respx.MockRouter, site: Path, environment: jinja2.Environment
) -> None:
    page = await render(renderer)
    assert page.state == {"item": ITEM, "banner": {"text": "Sale"}}  # the server rendered with both
    assert page_state(page.html)["state"] == {"item": ITEM}  # hero-banner ships no script: no copy of banner
    assert '"text":"Sale"' not in page.html
    # item-card's script subscribes to the banner too: now the browser gets it, as loaded or as failed.
    reload_with_item_card(site, environment, renderer, "timeout_ms", 'subscribes = ["banner"]\ntimeout_ms')
    page = await render(renderer)
    assert page_state(page.html) == {"state": {"item": ITEM, "banner": {"text": "Sale"}}, "failed": []}
    bff["banner"].respond(500)
    assert page_state((await render(renderer)).html) == {"state": {"item": ITEM}, "failed": ["banner"]}


async def test_a_page_whose_components_ship_no_script_carries_no_state(
    renderer: PageRenderer, bff: respx.MockRouter, site: Path, environment: jinja2.Environment
) -> None:
    reload_with_item_card(site, environment, renderer, 'js = ["assets/item.js"]', "js = []")
    bff["banner"].respond(500)  # nor the keys that failed
    page = await render(renderer)
    assert '<h1 class="item">Lamp</h1>' in page.html and page.state == {"item": ITEM}
    assert "oberon-state" not in page.html and "<script" not in page.html
    assert '"name":"Lamp"' not in page.html and '"banner"' not in page.html


async def test_page_fetches_a_source_shared_by_two_components_once(
    renderer: PageRenderer, bff: respx.MockRouter
) -> None:
    await render(renderer)
    assert bff["item"].call_count == 1
    assert bff["banner"].call_count == 1


async def test_pages_share_renders_while_the_answers_are_the_same_bytes_and_never_after(
    renderer: PageRenderer, bff: respx.MockRouter
) -> None:
    first = await render(renderer)
    await render(renderer)  # the bytes' second sight: from now on decoded to the same objects
    again = await render(renderer)
    assert bff["item"].call_count == 3  # not cacheable: asked for each page
    card = {fragment.component.name: fragment for fragment in again.fragments}["item-card"]
    assert card.seconds == 0.0  # the same objects: the second page's render
    assert again.html == first.html
    bff["item"].respond(json={"name": "Desk", "price": "€99"})
    changed = await render(renderer)
    assert '<h1 class="item">Desk</h1>' in changed.html and "Lamp" not in changed.html


async def test_page_passes_the_request_id_to_the_bff(renderer: PageRenderer, bff: respx.MockRouter) -> None:
    await render(renderer)
    assert bff["item"].calls.last.request.headers["X-Oberon-Request-Id"] == "req-1"


async def test_page_gathers_assets_of_its_components_once_in_a_stable_order(
    renderer: PageRenderer, bff: respx.MockRouter
) -> None:
    page = await render(renderer)
    css = re.findall(
        r'<link rel="stylesheet" href="([^"]+)" integrity="sha384-[^"]+" crossorigin="anonymous">', page.html
    )
    js = re.findall(r'<script src="([^"]+)" integrity="sha384-[^"]+" crossorigin="anonymous"[^>]* defer>', page.html)
    built = renderer.assets.manifest.assets
    assert css == [
        "/_oberon/assets/" + built[name].file
        for name in (
            "greeting@1.0.0/assets/shared.css",
            "item-card@1.2.0/assets/item.css",
            "item-price@1.0.0/assets/price.css",
        )
    ]
    assert js == [
        "/_oberon/assets/" + built[name].file for name in ("oberon/oberon.js", "item-card@1.2.0/assets/item.js")
    ]
    again = await render(renderer)
    assert re.findall(r'href="([^"]+)"', again.html) == re.findall(r'href="([^"]+)"', page.html)
    # A component's script says whose it is, for oberon.js to bind it to that version's boundaries only.
    item_js = "/_oberon/assets/" + built["item-card@1.2.0/assets/item.js"].file
    assert f'<script src="{item_js}" ' in page.html
    assert 'data-oberon-script="item-card" data-oberon-version="1.2.0" defer></script>' in page.html


@pytest.mark.parametrize(
    "response",
    [
        httpx.Response(500, json={"error": "boom"}),
        httpx.Response(200, text="{not json", headers={"Content-Type": "application/json"}),
        httpx.Response(200, text="<html>oops</html>", headers={"Content-Type": "text/html"}),
        httpx.Response(200, content=b"", headers={"Content-Type": "application/json"}),
        httpx.ConnectTimeout("timed out"),
        httpx.ConnectError("refused"),
    ],
    ids=["500", "malformed-json", "wrong-content-type", "empty-body", "timeout", "refused"],
)
async def test_page_falls_back_where_data_failed_and_still_answers(
    renderer: PageRenderer, bff: respx.MockRouter, response: httpx.Response | Exception
) -> None:
    if isinstance(response, Exception):
        bff["item"].mock(side_effect=response)  # every attempt, retries included
    else:
        bff["item"].mock(return_value=response)
    page = await render(renderer)
    assert page.status_code == 200
    assert outcomes(page) == {
        "shop-page": Outcome.OK,
        "greeting": Outcome.OK,
        "item-card": Outcome.FALLBACK,
        "item-price": Outcome.FALLBACK,
        "hero-banner": Outcome.OK,
    }
    assert '<p class="item-fallback">Item unavailable</p>' in page.html
    assert "This part of the page is unavailable right now." in page.html  # item-price's default fallback
    assert '<div class="banner">Sale</div>' in page.html
    assert page_state(page.html)["failed"] == ["item"]
    assert "s-maxage=5," in page.cache_control


async def test_page_falls_back_when_data_is_slower_than_timeout_ms(
    renderer: PageRenderer, bff: respx.MockRouter
) -> None:
    async def slow(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(2)
        return httpx.Response(200, json=ITEM)

    bff["item"].mock(side_effect=slow)
    started = asyncio.get_running_loop().time()
    page = await render(renderer)
    assert asyncio.get_running_loop().time() - started < 1.5  # the budget is 300 ms, not the slow 2 s
    assert outcomes(page)["item-card"] is Outcome.FALLBACK
    assert outcomes(page)["hero-banner"] is Outcome.OK


async def test_page_contains_a_template_that_raises(
    renderer: PageRenderer, bff: respx.MockRouter, write_component, site: Path, environment: jinja2.Environment
) -> None:
    write_component("item-price", (site / "components/item-price/component.toml").read_text(), "{{ 1 // 0 }}")
    registry = load_registry([site / "components"], environment=environment)
    renderer.registry = registry
    page = await render(renderer)
    assert page.status_code == 200
    assert outcomes(page)["item-price"] is Outcome.FALLBACK
    assert outcomes(page)["item-card"] is Outcome.OK


async def test_page_fails_when_a_critical_component_fails(
    renderer: PageRenderer, bff: respx.MockRouter, site: Path, environment: jinja2.Environment
) -> None:
    manifest = site / "components/item-card/component.toml"
    manifest.write_text("critical = true\n" + manifest.read_text())
    renderer.registry = load_registry([site / "components"], environment=environment)
    bff["item"].respond(503)
    with pytest.raises(RenderError) as info:
        await render(renderer)
    assert (info.value.component, info.value.status_code) == ("item-card", 503)
    bff["item"].respond(404, json={"error": "no such item"})
    with pytest.raises(RenderError) as info:
        await render(renderer)
    assert info.value.status_code == 404


async def test_page_escapes_hostile_backend_values_in_html_and_state(
    renderer: PageRenderer, bff: respx.MockRouter
) -> None:
    hostile = 'Lamp "x" </script><script>alert(1)</script> \u2028 & co'
    bff["item"].respond(json={"name": hostile, "price": "<b>1</b>"})
    page = await render(renderer)
    assert "<script>alert(1)</script>" not in page.html
    assert "</script><script>" not in page.html.split('id="oberon-state">')[1].split("</script>")[0]
    assert "&lt;/script&gt;&lt;script&gt;alert(1)&lt;/script&gt;" in page.html
    assert "&lt;b&gt;1&lt;/b&gt;" in page.html
    assert "&amp;lt;" not in page.html  # the title is escaped once, not twice
    assert "\u2028" not in page.html.split('id="oberon-state">')[1]
    assert page_state(page.html)["state"]["item"]["name"] == hostile  # type: ignore[index]


async def test_page_uses_the_degraded_lifetime_in_degraded_mode(renderer: PageRenderer, bff: respx.MockRouter) -> None:
    renderer.mode = lambda: Mode.DEGRADED
    page = await render(renderer)
    assert "s-maxage=300," in page.cache_control


async def test_page_is_private_when_a_component_is_private_and_islands_are_off(
    renderer: PageRenderer, bff: respx.MockRouter, site: Path, environment: jinja2.Environment
) -> None:
    manifest = site / "components/hero-banner/component.toml"
    manifest.write_text(manifest.read_text().replace('owner = "shop"', 'owner = "shop"\ncache = "private"'))
    renderer.islands = False  # as the gallery renders fixtures (with islands, see test_islands.py)
    renderer.registry = load_registry([site / "components"], environment=environment)
    page = await render(renderer)
    assert page.cache_control == "private, no-store"


async def test_without_an_exporter_a_render_opens_no_span_and_each_path_is_resolved_once(
    renderer: PageRenderer, bff: respx.MockRouter, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Nothing records spans by default: a component's render is not wrapped in one (its ids would go nowhere);
    a source's call still sends a `traceparent` of its own. Issue 19: per-page work that buys nothing."""
    from oberon import tracing
    from oberon.pipeline import loading

    spans: list[str] = []
    resolved: list[str] = []
    child, resolve = tracing.child, loading._resolve

    def counting_child(name: str, **kwargs: object) -> object:
        spans.append(name)
        return child(name, **kwargs)  # type: ignore[arg-type]

    def counting_resolve(source: object, *args: object) -> str:
        resolved.append(source.key)  # type: ignore[attr-defined]
        return resolve(source, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(tracing, "child", counting_child)
    monkeypatch.setattr(loading, "_resolve", counting_resolve)  # a path from the page's params, quoted once
    page = await render(renderer)
    assert page.status_code == 200
    assert not [name for name in spans if name.startswith("render ")]
    assert sorted(name.split()[0] for name in spans) == ["GET", "GET"]  # the item and the banner
    assert sorted(resolved) == ["banner", "item"]
    assert bff["item"].calls.last.request.headers["traceparent"]


async def test_a_leaf_component_renders_without_a_task_of_its_own(
    renderer: PageRenderer, bff: respx.MockRouter
) -> None:
    loop = asyncio.get_running_loop()
    started: list[str] = []
    factory = loop.get_task_factory()

    def counting(loop: asyncio.AbstractEventLoop, coro, **kwargs):  # type: ignore[no-untyped-def]
        started.append(coro.__qualname__)
        return asyncio.Task(coro, loop=loop, **kwargs) if factory is None else factory(loop, coro, **kwargs)

    loop.set_task_factory(counting)
    try:
        page = await render(renderer)
    finally:
        loop.set_task_factory(factory)
    assert set(outcomes(page).values()) == {Outcome.OK}
    assert "PageRenderer._render_tree" not in started  # the page's components have no slots: rendered as keys arrive


def test_a_page_its_record_and_timing_are_immutable_values() -> None:
    """Named tuples (issue 19): fields and defaults as the dataclasses had them, a page's copy by `_replace`; the page
    cache shares one page between visitors, so nothing may change it."""
    page = Page(200, "<p>x</p>", "no-store", (), {})
    assert (page.preload, page.timing, page.surrogate_keys, page.esi) == ("", Timing(), (), False)
    assert page.mode is Mode.NORMAL
    assert (page.from_cache, page.rest, page.by_device, page.fallbacks) == (False, None, False, [])
    with pytest.raises(AttributeError):
        page.html = "<p>y</p>"  # type: ignore[misc]
    copy = page._replace(from_cache=True)
    assert copy.from_cache and not page.from_cache and copy.html is page.html
    timing = Timing(0.5, 0.25, 0.125, (Loader("a", "bff /a", 0.25),))
    assert (timing.total, timing.data, timing.render, timing.slowest(1)) == (0.5, 0.25, 0.125, [timing.loaders[0]])
    assert Timing() == Timing(0.0, 0.0, 0.0, ())
    record = PageRecord(None, (), timing)  # type: ignore[arg-type]
    assert (record.failed, record.page_cache, record.streamed) == (False, None, False)
    with pytest.raises(AttributeError):
        record.failed = True  # type: ignore[misc]


async def test_a_childs_props_are_resolved_once_and_no_template_changes_them_for_the_next_page(
    renderer: PageRenderer, bff: respx.MockRouter, site: Path, environment: jinja2.Environment
) -> None:
    """Issue 19: a child's props (its defaults overlaid with its slot entry's) are resolved once per registry and
    every page renders with the same dict; the sandbox refuses a template that would change it."""
    template = site / "components/greeting/template.html"
    template.write_text("{% if props.excited %}{{ props.update(who='mallory') }}{% endif %}" + template.read_text())
    renderer.registry = load_registry([site / "components"], environment=environment)
    pages = [await render(renderer) for _ in range(2)]
    for page in pages:
        assert outcomes(page)["greeting"] is Outcome.OK
        assert '<p class="greeting">Hello shopper</p>' in page.html
    (props,) = [
        child.props for child in renderer.served.resolved["shop-page@1.0.0"] if child.component.name == "greeting"
    ]
    assert props == {"who": "shopper", "excited": False}
    props["excited"] = True  # as if a page had changed it: the next page's greeting then tries to change `who`
    page = await render(renderer)
    assert outcomes(page)["greeting"] is Outcome.FALLBACK  # refused (SecurityError), contained to the greeting
    assert props == {"who": "shopper", "excited": True}


async def test_pages_whose_data_is_their_own_stop_looking_for_shared_renders_until_data_is_shared_again(
    renderer: PageRenderer, bff: respx.MockRouter
) -> None:
    """Issue 19: no render is found again while every answer is new; once answers are the same bytes again, one
    of the renders a cold page still keeps is found, and pages share renders as before. (A component reading no
    data finds its render on every page, so the card is rendered alone here.)"""
    card = renderer.registry.get("item-card")
    rendered = renderer.served.rendered
    rendered.max_entries = 8

    async def render_card() -> Page:
        return await renderer.render(card, params={"item_id": 1}, props={}, context=CONTEXT)

    answers = iter(range(10_000))
    bff["item"].side_effect = lambda request: httpx.Response(200, json={"name": f"Lamp {next(answers)}", "price": "€1"})
    for _ in range(rendered.max_entries):
        page = await render_card()
        assert page.fragments[0].seconds > 0.0
    assert rendered.cold
    bff["item"].side_effect = None
    bff["item"].respond(json=ITEM)
    for _ in range(4 * rendered.COLD_SAMPLE):
        if not rendered.cold:
            break
        await render_card()
    assert not rendered.cold
    first, again = await render_card(), await render_card()
    assert again.fragments[0].seconds == 0.0 and again.html == first.html


async def test_an_app_is_looked_up_once_per_registry_as_registry_get_finds_it(renderer: PageRenderer) -> None:
    """Issue 19: a route's app is matched against its version specifier once per registry served, not every page."""
    served = renderer.served
    app = served.app("shop-page")
    assert app is served.registry.get("shop-page") and served.app("shop-page") is app
    with pytest.raises(ComponentNotFound):
        served.app("no-such-app")
    renderer.swap(Registry([component for component in served.registry if component.name != "shop-page"]))
    with pytest.raises(ComponentNotFound):
        renderer.served.app("shop-page")  # a new registry, looked up afresh
    assert served.app("shop-page") is app  # a page in flight keeps what it captured
