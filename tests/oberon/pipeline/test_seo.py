from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

import httpx
import jinja2
import pytest
import respx

from oberon.client.upstream import Upstreams
from oberon.pipeline.registry import Registry, load_registry
from oberon.pipeline.seo import (
    INDEX,
    NOINDEX,
    SiteInfo,
    canonical_path,
    page_head,
    robots_txt,
    route_path,
    sitemap_paths,
    sitemap_xml,
)
from oberon.types import Cacheability
from tests.conftest import ComponentWriter

SITE = SiteInfo(url="https://tickets.example", name="Tickets")

SHOW_APP = """
name = "show-page"
version = "1.0.0"
owner = "web"
kind = "app"
routes = ["/s/{show_id:int}"]
title = "{{ state.show.name }}"

[meta]
description = "{{ state.show.name }} & friends: {{ state.show.summary }}"
structured_data = "ld.json"
sitemap = { bff = "shop", path = "/shows" }
"""

LD = """{% set show = state.show %}
{"@context": "https://schema.org", "@type": "Event", "name": {{ show.name|tojson }}, "url": {{ url|tojson }}}"""


@pytest.fixture
def shows(site: Path, write_component: ComponentWriter, environment: jinja2.Environment) -> Registry:
    write_component("show-page", SHOW_APP, "<main></main>", **{"ld.json": LD})
    write_component(
        "private-page",
        'name = "private-page"\nversion = "1.0.0"\nowner = "web"\nkind = "app"\ncache = "private"\nroutes = ["/me"]\n',
    )
    write_component(
        "hidden-page",
        'name = "hidden-page"\nversion = "1.0.0"\nowner = "web"\nkind = "app"\nroutes = ["/hidden"]\n'
        '[meta]\nrobots = "noindex"\n',
    )
    return load_registry([site / "components"], environment=environment)


Head = Callable[..., object]


def test_page_head_derives_description_canonical_and_open_graph_from_state(shows: Registry) -> None:
    state = {"show": {"name": "Cats </script>", "summary": "A musical " * 30}}
    head = page_head(shows.get("show-page"), title="Cats", state=state, params={"show_id": 7}, site=SITE)
    assert head.canonical == "https://tickets.example/s/7"
    assert head.robots == INDEX
    assert head.description.startswith("Cats </script> & friends: A musical")
    assert len(head.description) <= 160 and head.description.endswith("…")
    og = dict(head.open_graph)
    assert og["og:url"] == head.canonical and og["og:title"] == "Cats" and og["og:site_name"] == "Tickets"
    assert head.json_ld is not None
    assert "</script>" not in head.json_ld
    assert json.loads(head.json_ld) == {
        "@context": "https://schema.org",
        "@type": "Event",
        "name": "Cats </script>",
        "url": "https://tickets.example/s/7",
    }


def test_page_head_falls_back_to_the_manifest_description_and_drops_broken_structured_data(shows: Registry) -> None:
    head = page_head(shows.get("show-page"), title="Show", state={}, params={"show_id": 7}, site=SITE)
    assert head.description == ""  # the app declares no static description
    assert head.json_ld is None
    assert head.canonical == "https://tickets.example/s/7"


@pytest.mark.parametrize(
    ("name", "kwargs"),
    [
        ("hidden-page", {}),
        ("private-page", {"cacheability": Cacheability.PRIVATE}),
        ("show-page", {"fell_back": True}),
    ],
)
def test_page_head_says_noindex_for_hidden_private_and_degraded_pages(
    shows: Registry, name: str, kwargs: dict[str, object]
) -> None:
    params = {"show_id": 1} if name == "show-page" else {}
    head = page_head(shows.get(name), title="x", state={}, params=params, site=SITE, **kwargs)  # type: ignore[arg-type]
    assert head.robots == NOINDEX


def test_page_head_of_a_preview_has_no_canonical_and_is_noindex(shows: Registry) -> None:
    head = page_head(shows.get("greeting"), title="x", state={}, params={}, site=SITE)
    assert head.robots == NOINDEX
    assert head.canonical == ""


def test_route_path_fills_and_quotes_params(shows: Registry) -> None:
    assert route_path("/s/{show_id:int}", {"show_id": 3}) == "/s/3"
    assert route_path("/t/{slug}", {"slug": "a b/c"}) == "/t/a%20b%2Fc"
    assert route_path("/s/{show_id:int}", {}) is None
    assert canonical_path(shows.get("show-page"), {"show_id": 3, "utm": "x"}) is None


@pytest.mark.parametrize("value", [0, 7, -12, 10**30, True, False, 1.5, "a b/c", "é&<", ""])
def test_route_path_writes_a_param_as_quoting_its_text_does(value: object) -> None:
    expected = "/s/" + quote(str(value), safe="") + "/x"
    assert route_path("/s/{show_id}/x", {"show_id": value}) == expected


def test_robots_txt_disallows_private_areas_and_names_the_sitemap() -> None:
    text = robots_txt(SITE)
    assert "User-agent: *" in text
    for path in ("/account", "/auth/", "/bff/", "/_oberon/", "/_islands/"):
        assert f"Disallow: {path}\n" in text
    assert text.endswith("Sitemap: https://tickets.example/sitemap.xml\n")


@pytest.mark.anyio
async def test_sitemap_lists_public_routes_and_the_pages_a_bff_names(shows: Registry, upstreams: Upstreams) -> None:
    with respx.mock:
        respx.get("http://shop.test/shows").mock(
            return_value=httpx.Response(200, json={"pages": [{"params": {"show_id": 1}}, {"params": {"show_id": 2}}]})
        )
        paths = await sitemap_paths(shows, upstreams)
    assert "/s/1" in paths and "/s/2" in paths
    assert "/me" not in paths and "/hidden" not in paths
    xml = sitemap_xml(SITE, ["/s/1", "/a?b&c"])
    assert "<loc>https://tickets.example/s/1</loc>" in xml
    assert "<loc>https://tickets.example/a?b&amp;c</loc>" in xml
    assert xml.startswith('<?xml version="1.0" encoding="UTF-8"?>')


@pytest.mark.anyio
async def test_sitemap_leaves_out_what_a_failing_bff_would_have_listed(shows: Registry, upstreams: Upstreams) -> None:
    with respx.mock:
        respx.get("http://shop.test/shows").mock(return_value=httpx.Response(503))
        paths = await sitemap_paths(shows, upstreams)
    assert not any(path.startswith("/s/") for path in paths)


def test_manifest_meta_errors_name_the_field(
    write_component: ComponentWriter, registry_errors: Callable[[], list[object]]
) -> None:
    write_component(
        "bad-meta",
        'name = "bad-meta"\nversion = "1.0.0"\nowner = "web"\nkind = "app"\nroutes = ["/bad"]\n'
        '[meta]\nrobots = "maybe"\nstructured_data = "../x.json"\nsitemap = { bff = "shop" }\nextra = 1\n',
    )
    messages = [str(error) for error in registry_errors()]
    for field in ("meta.robots", "meta.structured_data", "meta.sitemap", "meta.extra"):
        assert any(f"bad-meta/component.toml:{field}:" in message for message in messages), field
