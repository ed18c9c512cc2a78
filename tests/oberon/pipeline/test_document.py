"""A page's document, byte for byte as the Jinja template it is built in place of (issue 19) rendered it."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import jinja2
import pytest
import respx
from markupsafe import Markup

from oberon.client.upstream import Upstreams
from oberon.pipeline.assets import Assets, build_assets
from oberon.pipeline.cache_policy import CachePolicy, surrogate_keys
from oberon.pipeline.document import page_frame, render_document
from oberon.pipeline.page import PageRenderer
from oberon.pipeline.page_types import RequestContext
from oberon.pipeline.registry import Component, load_registry
from oberon.pipeline.seo import SiteInfo, page_head
from oberon.types import Cacheability
from tests.conftest import TEST_BFF, ComponentWriter

pytestmark = pytest.mark.anyio

# oberon/templates/document.html as it was before issue 19 built the document by joining strings.
REFERENCE = (Path(__file__).parent / "document_reference.html").read_text()

SHOP_PAGE = """
name = "shop-page"
version = "1.0.0"
owner = "shop"
kind = "app"
description = "Shop & more"
routes = ["/items/{item_id:int}"]
title = "TITLE"
CACHE

[meta]
description = "DESCRIPTION"
structured_data = "ld.json"

[[slots.main]]
component = "greeting"
props = { who = "shopper" }

[[slots.main]]
component = "item-card"
version = "~=1.0"

[[slots.main]]
component = "item-price"

[[slots.side]]
component = "hero-banner"
"""
LD = '{"@type": "Product", "name": {{ state.item.name|tojson }}, "url": {{ url|tojson }}}'
SITE = SiteInfo(url="https://shop.example", name="Shop <&> Co")
FROM_DATA = ("{{ state.item.name }} · Shop", '{{ state.item.name }}: \\"{{ state.item.price }}\\" <today>')
FIXED = ("Shop & <b>more</b>", "Everything  for the   home & garden: <today> ")  # no Jinja: rendered once per plan
ITEM = {"name": "Lamp & <Shade> \"'", "price": "€10"}


@pytest.mark.parametrize(
    ("cache", "item_fails", "locale", "base_url", "head"),
    [
        # title, description and JSON-LD from data; assets from another origin
        ("", False, "de-CH", "https://cdn.example/_oberon/assets/", FROM_DATA),
        ('cache = "private"', False, "en", "/_oberon/assets/", FROM_DATA),  # private: noindex
        ("", True, "fr", "/_oberon/assets/", FROM_DATA),  # the title's data failed: the app's description
        ("", False, "en", "/_oberon/assets/", FIXED),  # a title and a description that read nothing
    ],
)
async def test_the_document_is_byte_for_byte_what_the_template_rendered(
    site: Path,
    tmp_path: Path,
    write_component: ComponentWriter,
    environment: jinja2.Environment,
    upstreams: Upstreams,
    cache: str,
    item_fails: bool,
    locale: str,
    base_url: str,
    head: tuple[str, str],
) -> None:
    manifest = SHOP_PAGE.replace("CACHE", cache).replace("TITLE", head[0]).replace("DESCRIPTION", head[1])
    write_component("shop-page", manifest, None, **{"ld.json": LD})
    (site / "components/shop-page/template.html").write_text(
        (Path(__file__).parents[2] / "res/site/components/shop-page/template.html").read_text()
    )
    registry = load_registry([site / "components"], environment=environment)
    assets = Assets(build_assets(registry, tmp_path / "assets"), base_url=base_url)
    renderer = PageRenderer(
        registry=registry, upstreams=upstreams, environment=environment, policy=CachePolicy(), assets=assets, site=SITE
    )
    app = registry.get("shop-page")
    params = {"item_id": 3}
    with respx.mock(base_url=TEST_BFF, assert_all_called=False) as bff:
        bff.get("/items/3").respond(500 if item_fails else 200, json=ITEM)
        bff.get("/banner").respond(503)  # hero-banner falls back on every page
        for _ in range(2):  # the first page works its frame out, the second reuses it
            page = await renderer.render(app, params=params, context=RequestContext(request_id="r", locale=locale))
            plan = renderer.served.plans[app.manifest.ident]
            expected = _reference(environment, app, page.html, page.state, params, locale, plan.cacheability)
            assert page.html == expected.render(assets=assets.for_page(plan.components), base_url=base_url)
            assert page.preload == assets.for_page(plan.components).preload_header()
            names = [component.name for component in plan.components]
            assert list(page.surrogate_keys) == surrogate_keys(app="shop-page", components=names, params=params)
    assert "hero-banner" in page.fallbacks
    assert ("application/ld+json" in page.html) == (not item_fails)
    assert ("<title>Lamp &amp; &lt;Shade&gt;" in page.html) == (not item_fails and head is FROM_DATA)


class _Reference:
    def __init__(self, environment: jinja2.Environment, values: dict[str, Any]) -> None:
        self.template = environment.from_string(REFERENCE)
        self.values = values

    def render(self, *, assets: object, base_url: str) -> str:
        origin = "https://cdn.example" if base_url.startswith("https://") else ""
        return self.template.render(assets=assets, asset_origin=origin, **self.values)


def _reference(
    environment: jinja2.Environment,
    app: Component,
    html: str,
    state: dict[str, Any] | Any,
    params: dict[str, Any],
    locale: str,
    cacheability: tuple[Cacheability, ...],
) -> _Reference:
    """The template's inputs for this page: its head from page_head, its body and state script cut from `html`."""
    assert app.title is not None
    try:
        title: str = Markup(app.title.render(state=state, params=params))
    except Exception:
        title = app.manifest.description
    private = Cacheability.PRIVATE in cacheability
    head = page_head(
        app,
        title=title,
        state=state,
        params=params,
        site=SITE,
        locale=locale,
        cacheability=Cacheability.PRIVATE if private else Cacheability.PUBLIC,
        fell_back=True,  # hero-banner fell back
    )
    tail = html.split("<body>\n", 1)[1]
    found = re.search(r'\n(<script type="application/json" id="oberon-state">.*?</script>)\n', tail, re.S)
    assert found is not None  # item-card's script reads `item`
    body, script = Markup(tail[: found.start()]), Markup(found.group(1))
    return _Reference(environment, {"lang": locale, "head": head, "body": body, "state": script})


FIXED_HEAD_APP = """
name = "fixed-page"
version = "1.0.0"
owner = "shop"
kind = "app"
description = "Fixed & <more>"
routes = ["/fixed/{name}", "/fixed/{name}/{item_id:int}"]
title = "Fixed & <b>\\"title\\"</b> 'x'"
ROBOTS

[meta]
description = "Everything  for the   home & garden: <today> \\"'"
"""


@pytest.mark.parametrize("robots", ["", '[meta.robots]\nvalue = "noindex"'])
def test_a_head_that_reads_nothing_is_the_same_text_from_the_frame_as_from_page_head(
    site: Path, tmp_path: Path, write_component: ComponentWriter, environment: jinja2.Environment, robots: str
) -> None:
    """A fixed title and description and no JSON-LD: the head's text kept in the frame, with each page's canonical
    URL put in, is what `page_head` gives that page (each combination asked twice: once made, once kept)."""
    manifest = (
        FIXED_HEAD_APP.replace("ROBOTS", "")
        if not robots
        else FIXED_HEAD_APP.replace("ROBOTS\n\n[meta]\n", '\n[meta]\nrobots = "noindex"\n')
    )
    write_component("fixed-page", manifest)
    registry = load_registry([site / "components"], environment=environment)
    app = registry.get("fixed-page")
    assert app.structured_data is None
    body, script = Markup("<main>body</main>"), Markup("")
    for base_url in ("https://cdn.example/_oberon/assets/", "/_oberon/assets/"):
        assets = Assets(build_assets(registry, tmp_path / "assets"), base_url=base_url)
        frame = page_frame(assets, app, [app], [Cacheability.PUBLIC])
        assert frame.title is not None and frame.description is not None
        for private in (False, True):
            kept = replace(frame, private=private, heads={})
            from_page_head = replace(kept, title=None, description=None)  # the page_head path, every page
            for _ in range(2):
                for params in ({"name": "a b/&<\"'é"}, {"name": "x", "item_id": 7}, {"other": 1}, {}):
                    for locale in ("en", "de-CH"):
                        for fell_back in (False, True):
                            for site_info in (SITE, SiteInfo(url="https://x.example/a?b&c/", name="<X> & 'Y'")):
                                values: dict[str, Any] = dict(
                                    body=body,
                                    state={},
                                    state_script=script,
                                    params=params,
                                    site=site_info,
                                    locale=locale,
                                    fell_back=fell_back,
                                )
                                html = render_document(app, frame=kept, **values)
                                assert html == render_document(app, frame=from_page_head, **values)
            assert kept.heads  # the fast path was taken
    assert app.manifest.meta.robots == ("noindex" if robots else "index")
    canonical = render_document(
        app,
        body=body,
        state={},
        state_script=script,
        params={"name": "x", "item_id": 7},
        site=SITE,
        locale="en",
        fell_back=False,
        frame=frame,
    )
    assert '<link rel="canonical" href="https://shop.example/fixed/x/7">' in canonical
    assert '<meta property="og:url" content="https://shop.example/fixed/x/7">' in canonical
