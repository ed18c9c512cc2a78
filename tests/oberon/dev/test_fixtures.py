"""`[fixtures.NAME]` in a manifest, and a component rendered alone from one with no BFF running."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import jinja2
import pytest

from oberon.client.upstream import Upstreams
from oberon.dev.fixtures import fixture_names, render_fixture, sample
from oberon.exceptions import ManifestError
from oberon.pipeline.assets import Assets, build_assets
from oberon.pipeline.cache_policy import CachePolicy
from oberon.pipeline.page import PageRenderer
from oberon.pipeline.registry import Registry, load_registry
from oberon.types import Outcome

Errors = Callable[[], list[ManifestError]]

CARD = """name = "item-card"
version = "1.2.0"
owner = "shop"
timeout_ms = 300
critical = true

[props.compact]
type = "bool"
default = false

[data.item]
bff = "shop"
path = "/items/{item_id}"

[assets]
css = ["assets/item.css"]
js = ["assets/item.js"]

[fixtures.default]
description = "A lamp."
state.item = { name = "Lamp", price = "€10" }

[fixtures.compact]
props = { compact = true }
state.item = { name = "Chair", price = "€30" }
"""
PRICE_FIXTURE = '\n[fixtures.default]\nstate.item = { name = "Lamp", price = "€10" }\n'
BANNER_FIXTURE = '\n[fixtures.default]\nstate.banner = { text = "Sale" }\n'


def messages(errors: list[ManifestError]) -> list[str]:
    return [f"{error.field}: {error.message}" for error in errors]


@pytest.fixture
def with_fixtures(site: Path, write_component) -> Path:
    components = site / "components"
    (components / "item-card" / "component.toml").write_text(CARD)
    (components / "item-card" / "template.html").write_text(
        '<h1 class="item{% if props.compact %} compact{% endif %}">{{ state.item.name }}</h1>'
    )
    for name, extra in (("item-price", PRICE_FIXTURE), ("hero-banner", BANNER_FIXTURE)):
        manifest = components / name / "component.toml"
        manifest.write_text(manifest.read_text() + extra)
    return site


@pytest.fixture
def fixture_registry(with_fixtures: Path, environment: jinja2.Environment) -> Registry:
    return load_registry([with_fixtures / "components"], environment=environment)


@pytest.fixture
def renderer(fixture_registry: Registry, environment: jinja2.Environment, tmp_path: Path) -> PageRenderer:
    assets = Assets(build_assets(fixture_registry, tmp_path / "build"))
    return PageRenderer(
        registry=fixture_registry,
        upstreams=Upstreams({}),
        environment=environment,
        policy=CachePolicy(),
        assets=assets,
    )


def test_fixtures_are_read_from_the_manifest(fixture_registry: Registry) -> None:
    card = fixture_registry.get("item-card")
    assert list(card.manifest.fixtures) == ["default", "compact"]
    assert card.manifest.fixtures["default"].description == "A lamp."
    assert card.manifest.fixtures["compact"].props == {"compact": True}
    assert fixture_names(card) == ["default", "compact"]
    assert fixture_names(fixture_registry.get("greeting")) == ["default"]


@pytest.mark.parametrize(
    ("fixture", "message"),
    [
        ("[fixtures.default]\nstate.other = 1\nstate.item = {}\n", "fixtures.default.state.other: 'other' is not"),
        ("[fixtures.default]\nprops = {}\n", "fixtures.default.state: missing state key 'item'"),
        ("[fixtures.default]\nstate.item = {}\nprops = { size = 1 }\n", "fixtures.default.props.size: the component"),
        ("[fixtures.default]\nstate.item = {}\nprops = { compact = 1 }\n", "fixtures.default.props.compact: expected"),
        ("[fixtures.default]\nstate.item = {}\ncolour = 1\n", "fixtures.default.colour: unknown field"),
        ("[fixtures.Bad]\nstate.item = {}\n", "fixtures.Bad: a fixture name is lowercase"),
        ("[fixtures]\ndefault = 3\n", "fixtures.default: expected a table"),
    ],
)
def test_fixtures_are_validated_with_file_and_field(
    site: Path, registry_errors: Errors, fixture: str, message: str
) -> None:
    manifest = site / "components" / "item-card" / "component.toml"
    manifest.write_text(manifest.read_text() + '\n[props.compact]\ntype = "bool"\ndefault = false\n\n' + fixture)
    found = messages(registry_errors())
    assert any(line.startswith(message) for line in found), found


def test_fixture_of_a_required_prop_must_give_it(site: Path, write_component, registry_errors: Errors) -> None:
    write_component(
        "label",
        'name = "label"\nversion = "1.0"\nowner = "t"\n[props.text]\ntype = "str"\nrequired = true\n'
        "[fixtures.default]\nprops = {}\n",
    )
    assert "fixtures.default.props: missing required prop 'text'" in messages(registry_errors())


def test_an_app_fixture_is_filled_by_its_children(fixture_registry: Registry) -> None:
    found = sample(fixture_registry, fixture_registry.get("shop-page"))
    assert found.state == {"item": {"name": "Lamp", "price": "€10"}, "banner": {"text": "Sale"}}
    assert found.params == {"item_id": "fixture"}


@pytest.mark.anyio
async def test_a_component_renders_alone_from_its_fixture(renderer: PageRenderer) -> None:
    page = await render_fixture(renderer, renderer.registry.get("item-card"), fixture="compact")
    assert page.status_code == 200
    assert '<h1 class="item compact">Chair</h1>' in page.html
    assert [fragment.outcome for fragment in page.fragments] == [Outcome.OK]


@pytest.mark.anyio
async def test_props_given_override_the_fixture(renderer: PageRenderer) -> None:
    card = renderer.registry.get("item-card")
    page = await render_fixture(renderer, card, fixture="compact", props={"compact": False})
    assert '<h1 class="item">Chair</h1>' in page.html


@pytest.mark.anyio
async def test_a_critical_component_shows_its_fallback_when_asked(renderer: PageRenderer) -> None:
    page = await render_fixture(renderer, renderer.registry.get("item-card"), fallback=True)
    assert page.status_code == 200
    assert '<p class="item-fallback">Item unavailable</p>' in page.html
    assert [fragment.outcome for fragment in page.fragments] == [Outcome.FALLBACK]


@pytest.mark.anyio
async def test_a_component_without_data_falls_back_by_raising(renderer: PageRenderer) -> None:
    page = await render_fixture(renderer, renderer.registry.get("greeting"), fallback=True)
    assert [fragment.outcome for fragment in page.fragments] == [Outcome.FALLBACK]
    assert 'data-oberon-outcome="fallback"' in page.html
    assert renderer.registry.get("greeting").manifest.critical is False


@pytest.mark.anyio
async def test_an_app_renders_from_its_childrens_fixtures(renderer: PageRenderer) -> None:
    page = await render_fixture(renderer, renderer.registry.get("shop-page"))
    assert {fragment.outcome for fragment in page.fragments} == {Outcome.OK}
    assert "<title>Lamp · Shop</title>" in page.html
    assert '<div class="banner">Sale</div>' in page.html


@pytest.mark.anyio
async def test_the_renderer_itself_is_left_as_it_was(renderer: PageRenderer) -> None:
    registry, upstreams = renderer.registry, renderer.upstreams
    await render_fixture(renderer, renderer.registry.get("item-card"), fallback=True)
    assert renderer.registry is registry and renderer.upstreams is upstreams
    assert renderer.registry.get("item-card").manifest.critical is True
