from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import jinja2
import pytest

from oberon.exceptions import ComponentNotFound, ManifestError, RegistryError
from oberon.pipeline.registry import Registry, load_registry, page_components

Errors = Callable[[], list[ManifestError]]

MINIMAL = 'name = "{name}"\nversion = "{version}"\nowner = "team-a"\n'
APP = MINIMAL.format(name="app-a", version="1.0") + 'kind = "app"\n'
ODD = MINIMAL.format(name="odd", version="1.0")


def only(errors: list[ManifestError]) -> ManifestError:
    assert len(errors) == 1, [str(error) for error in errors]
    return errors[0]


def test_registry_loads_the_test_site(registry: Registry) -> None:
    assert registry.names() == ["greeting", "hero-banner", "item-card", "item-price", "shop-page"]
    assert [app.name for app in registry.apps()] == ["shop-page"]


def test_registry_resolves_the_newest_version_matching_a_specifier(
    registry: Registry, write_component, site, environment
) -> None:
    write_component("item-card-2", MINIMAL.format(name="item-card", version="2.0.0"))
    write_component("item-card-13", MINIMAL.format(name="item-card", version="1.3.0"))
    registry = load_registry([site / "components"], environment=environment)
    assert str(registry.get("item-card").manifest.version) == "2.0.0"
    assert str(registry.get("item-card", "~=1.2").manifest.version) == "1.3.0"
    assert str(registry.get("item-card", "==1.2.0").manifest.version) == "1.2.0"
    with pytest.raises(ComponentNotFound) as info:
        registry.get("item-card", ">=3")
    assert isinstance(info.value, LookupError)


def test_registry_slot_uses_the_version_its_specifier_asks_for(write_component, site, environment) -> None:
    write_component("item-card-2", MINIMAL.format(name="item-card", version="2.0.0"))
    registry = load_registry([site / "components"], environment=environment)
    app = registry.get("shop-page")
    versions = {component.name: str(component.manifest.version) for component in page_components(registry, app)}
    assert versions["item-card"] == "1.2.0"


def test_registry_reports_an_unknown_field(write_component, registry_errors: Errors) -> None:
    write_component("odd", ODD + 'colour = "red"\n')
    error = only(registry_errors())
    assert error.file.name == "component.toml" and error.file.parent.name == "odd"
    assert error.field == "colour"
    assert "unknown field" in error.message


def test_registry_reports_a_wrong_type(write_component, registry_errors: Errors) -> None:
    write_component("odd", ODD + 'timeout_ms = "fast"\n')
    error = only(registry_errors())
    assert (error.field, error.message) == ("timeout_ms", "expected an integer, got a string")


def test_registry_reports_a_missing_required_field(write_component, registry_errors: Errors) -> None:
    write_component("odd", 'name = "odd"\nversion = "1.0"\n')
    error = only(registry_errors())
    assert (error.field, error.message) == ("owner", "missing required field")


def test_registry_reports_a_missing_template(write_component, registry_errors: Errors) -> None:
    write_component("odd", ODD, template=None)
    error = only(registry_errors())
    assert error.file.name == "template.html"
    assert error.message == "missing template file"


def test_registry_reports_a_template_syntax_error_with_its_line(write_component, registry_errors: Errors) -> None:
    write_component("odd", ODD, template="<p>\n{% if %}</p>")
    error = only(registry_errors())
    assert error.file.name == "template.html"
    assert error.field == "line 2"
    assert "syntax" in error.message


def test_registry_reports_a_bad_version(write_component, registry_errors: Errors) -> None:
    write_component("odd", MINIMAL.format(name="odd", version="one point two"))
    error = only(registry_errors())
    assert error.field == "version"
    assert "PEP 440" in error.message


def test_registry_reports_a_bad_name(write_component, registry_errors: Errors) -> None:
    write_component("odd", MINIMAL.format(name="Odd_Name", version="1.0"))
    assert only(registry_errors()).field == "name"


def test_registry_reports_a_subscribed_key_nobody_produces(write_component, registry_errors: Errors) -> None:
    write_component("odd", ODD + 'subscribes = ["weather"]\n')
    error = only(registry_errors())
    assert error.field == "subscribes[0]"
    assert "no component produces state key 'weather'" in error.message


def test_registry_reports_a_props_default_of_the_wrong_type(write_component, registry_errors: Errors) -> None:
    manifest = ODD + '[props.count]\ntype = "int"\ndefault = "three"\n'
    write_component("odd", manifest)
    error = only(registry_errors())
    assert error.field == "props.count.default"
    assert "not of type int" in error.message


def test_registry_reports_a_prop_without_default_or_required(write_component, registry_errors: Errors) -> None:
    write_component("odd", ODD + '[props.count]\ntype = "int"\n')
    assert only(registry_errors()).field == "props.count"


def test_registry_reports_a_duplicate_name_and_version(write_component, registry_errors: Errors) -> None:
    write_component("greeting-copy", MINIMAL.format(name="greeting", version="1.0.0"))
    error = only(registry_errors())
    assert error.field == "version"
    assert "greeting@1.0.0 is also declared in" in error.message


def test_registry_reports_a_cycle_of_apps(write_component, registry_errors: Errors) -> None:
    app = MINIMAL + 'kind = "app"\n[[slots.main]]\ncomponent = "{child}"\n'
    write_component("app-a", app.format(name="app-a", version="1.0", child="app-b"))
    write_component("app-b", app.format(name="app-b", version="1.0", child="app-a"))
    errors = registry_errors()
    assert {error.field for error in errors} == {"slots"}
    assert "app-a -> app-b -> app-a" in errors[0].message


def test_registry_reports_an_app_slotting_itself(write_component, registry_errors: Errors) -> None:
    app = MINIMAL + 'kind = "app"\n[[slots.main]]\ncomponent = "{name}"\n'
    write_component("app-a", app.format(name="app-a", version="1.0"))
    assert "app-a -> app-a" in only(registry_errors()).message


def test_registry_reports_a_slot_naming_an_unknown_component(write_component, registry_errors: Errors) -> None:
    app = APP + '[[slots.main]]\ncomponent = "nope"\n'
    write_component("app-a", app)
    error = only(registry_errors())
    assert error.field == "slots.main[0].component"
    assert "no component matches 'nope'" in error.message


def test_registry_reports_a_slot_specifier_nothing_satisfies(write_component, registry_errors: Errors) -> None:
    app = MINIMAL.format(name="app-a", version="1.0")
    app += 'kind = "app"\n[[slots.main]]\ncomponent = "greeting"\nversion = ">=2"\n'
    write_component("app-a", app)
    assert only(registry_errors()).field == "slots.main[0].component"


def test_registry_validates_slot_props_against_the_child(write_component, registry_errors: Errors) -> None:
    app = APP + ""
    app += '[[slots.main]]\ncomponent = "greeting"\nprops = { who = 3, shout = true }\n'
    write_component("app-a", app)
    errors = {error.field: error.message for error in registry_errors()}
    assert errors == {
        "slots.main[0].props.who": "expected str, got 3",
        "slots.main[0].props.shout": "greeting has no prop 'shout'",
    }


def test_registry_reports_a_route_that_lacks_a_param_its_data_needs(site: Path, registry_errors: Errors) -> None:
    manifest = site / "components" / "shop-page" / "component.toml"
    manifest.write_text(manifest.read_text().replace('"/items/{item_id:int}"', '"/items/{item_id:int}", "/all"'))
    error = only(registry_errors())
    assert error.field == "routes[1]"
    assert "lacks param item_id" in error.message


def test_registry_reports_a_bad_route_template(write_component, registry_errors: Errors) -> None:
    write_component("app-a", APP + 'routes = ["/x/{id:uuidish}"]\n')
    error = only(registry_errors())
    assert error.field == "routes[0]"
    assert "uuidish" in error.message


def test_registry_reports_a_route_owned_twice(write_component, registry_errors: Errors) -> None:
    write_component("app-a", APP + 'routes = ["/items/{item_id:int}"]\n')
    assert "also owned by" in only(registry_errors()).message


def test_registry_reports_routes_on_a_plain_component(write_component, registry_errors: Errors) -> None:
    write_component("odd", ODD + 'routes = ["/odd"]\n')
    error = only(registry_errors())
    assert error.field == "routes"
    assert "only an app" in error.message


def test_registry_reports_a_consumed_action_nobody_publishes(write_component, registry_errors: Errors) -> None:
    write_component("odd", ODD + '[consumes."cart/emptied"]\nfields = []\n')
    error = only(registry_errors())
    assert error.field == "consumes.cart/emptied"
    assert "no component publishes" in error.message


def test_registry_reports_a_consumed_field_the_publisher_does_not_send(
    write_component, registry_errors: Errors
) -> None:
    manifest = ODD + '[consumes."cart/item-added"]\nfields = ["quantity", "colour"]\n'
    write_component("odd", manifest)
    error = only(registry_errors())
    assert error.field == "consumes.cart/item-added.fields"
    assert "item-price@1.0.0 publishes 'cart/item-added' without field(s) colour" in error.message


def test_registry_reports_a_key_loaded_from_two_different_sources(write_component, registry_errors: Errors) -> None:
    manifest = ODD + '[data.item]\nbff = "shop"\npath = "/other/{item_id}"\n'
    write_component("odd", manifest)
    assert only(registry_errors()).field == "data.item"


def test_registry_reports_a_missing_asset_and_one_outside_the_folder(write_component, registry_errors: Errors) -> None:
    manifest = ODD + '[assets]\ncss = ["assets/none.css", "../greeting/assets/shared.css"]\n'
    write_component("odd", manifest)
    errors = {error.field: error.message for error in registry_errors()}
    assert "does not exist" in errors["assets.css[0]"]
    assert "outside the component folder" in errors["assets.css[1]"]


def test_registry_reports_invalid_toml(write_component, registry_errors: Errors) -> None:
    write_component("odd", 'name = "odd\n')
    error = only(registry_errors())
    assert error.field == ""
    assert "not valid TOML" in error.message


def test_registry_reports_every_error_at_once(write_component, registry_errors: Errors) -> None:
    write_component("odd", 'name = "odd"\nversion = "x"\nowner = 1\ncolour = 2\n')
    fields = {error.field for error in registry_errors()}
    assert {"version", "owner", "colour"} <= fields


def test_load_registry_raises_with_every_error(write_component, site: Path, environment: jinja2.Environment) -> None:
    write_component("odd", 'name = "odd"\nversion = "x"\n')
    with pytest.raises(RegistryError) as info:
        load_registry([site / "components"], environment=environment)
    assert len(info.value.errors) == 2
    assert "odd/component.toml:version" in str(info.value)


def test_load_registry_reports_an_empty_root(tmp_path: Path, environment: jinja2.Environment) -> None:
    with pytest.raises(RegistryError, match="no components found"):
        load_registry([tmp_path], environment=environment)


def test_registry_sources_for_a_page_load_each_key_once(registry: Registry) -> None:
    components = page_components(registry, registry.get("shop-page"))
    sources = registry.sources_for(components)
    assert sorted(sources) == ["banner", "item"]
    assert sources["item"].path == "/items/{item_id}"
