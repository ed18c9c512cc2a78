from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import jinja2
import pytest
from markupsafe import Markup

from oberon.pipeline.registry import Registry, load_registry
from oberon.pipeline.rendering import (
    RenderedFragments,
    create_environment,
    render_component,
    resolve_props,
    serialize_state,
)
from oberon.pipeline.state import Failed
from oberon.types import Outcome


@pytest.mark.parametrize(
    "value",
    ["</script><script>alert(1)</script>", "<!-- x", "a\u2028b\u2029c", "&amp; <b>", 'quote " and \\ backslash'],
)
def test_serialize_state_cannot_break_out_of_a_script_element(value: str) -> None:
    text = serialize_state({"name": value})
    for forbidden in ("<", ">", "\u2028", "\u2029"):
        assert forbidden not in text
    assert json.loads(text) == {"name": value}


def test_serialize_state_escapes_every_character_that_matters_in_keys_and_values_alike() -> None:
    hostile = "</script><!--<script>&amp;\u2028\u2029 é € … 😀 \\u003c"
    text = serialize_state({hostile: [hostile, {"k": hostile}], "n": 10**30})
    for forbidden in ("<", ">", "&", "\u2028", "\u2029"):
        assert forbidden not in text
    assert "\\u003c/script\\u003e" in text and "\\u0026amp;" in text and "\\u2028\\u2029" in text
    assert "é € … 😀" in text  # other non-ASCII as it is
    assert json.loads(text) == {hostile: [hostile, {"k": hostile}], "n": 10**30}


def test_render_component_wraps_it_in_a_boundary_naming_it(registry: Registry, environment) -> None:
    greeting = registry.get("greeting")
    fragment = render_component(greeting, state={}, props=resolve_props(greeting, {}), environment=environment)
    assert fragment.outcome is Outcome.OK
    assert fragment.html == Markup(
        '<div class="oberon-boundary" data-oberon-component="greeting" data-oberon-version="1.0.0" '
        'data-oberon-outcome="ok"><p class="greeting">Hello world</p></div>'
    )


def test_render_component_uses_its_fallback_for_a_failed_key(registry: Registry, environment) -> None:
    card = registry.get("item-card")
    fragment = render_component(card, state={"item": Failed("down")}, props={}, environment=environment)
    assert fragment.outcome is Outcome.FALLBACK
    assert fragment.reason == "down"
    assert "Item unavailable" in fragment.html


def test_render_component_uses_the_default_fallback_for_a_missing_key(registry: Registry, environment) -> None:
    price = registry.get("item-price")
    fragment = render_component(price, state={}, props={}, environment=environment)
    assert fragment.outcome is Outcome.FALLBACK
    assert "timed out waiting for item" in fragment.reason
    assert "unavailable right now" in fragment.html


def test_render_component_app_whose_layout_fails_still_shows_its_children(
    site: Path, environment: jinja2.Environment
) -> None:
    (site / "components/shop-page/template.html").write_text("{{ slots.main }}{{ state.nothing.here }}")
    app = load_registry([site / "components"], environment=environment).get("shop-page")
    slots = {"main": Markup("<p>child</p>"), "side": Markup("<p>other</p>")}
    fragment = render_component(app, state={}, props={}, environment=environment, slots=slots)
    assert fragment.outcome is Outcome.FALLBACK
    assert "<p>child</p><p>other</p>" in fragment.html


def test_render_component_escapes_props(registry: Registry, environment) -> None:
    greeting = registry.get("greeting")
    fragment = render_component(
        greeting, state={}, props={"who": "<img src=x onerror=alert(1)>"}, environment=environment
    )
    assert "<img" not in fragment.html


def test_render_component_result_tells_failed_data_from_a_raising_template(
    site: Path, environment: jinja2.Environment
) -> None:
    registry = load_registry([site / "components"], environment=environment)
    card = registry.get("item-card")
    ok = render_component(card, state={"item": {"name": "Lamp", "price": "€10"}}, props={}, environment=environment)
    failed = render_component(card, state={"item": Failed("down")}, props={}, environment=environment)
    (site / "components/item-card/template.html").write_text("{{ state.item.name.nothing.here }}")
    broken = load_registry([site / "components"], environment=environment).get("item-card")
    raised = render_component(broken, state={"item": {"name": "Lamp"}}, props={}, environment=environment)
    assert (ok.result, failed.result, raised.result) == ("ok", "fallback", "error")
    assert all(fragment.seconds > 0 for fragment in (ok, failed, raised))


def test_the_environment_reads_dict_items_as_jinja_does() -> None:
    environment = create_environment()
    render = environment.from_string("{{ d.name }}|{{ d.items is callable }}|{{ o.real }}").render
    assert render(d={"name": "Lamp", "items": [1]}, o=3) == "Lamp|True|3"  # a dict's own methods still win
    with pytest.raises(jinja2.UndefinedError):
        environment.from_string("{{ d.missing }}").render(d={})


def test_state_serialization_keeps_big_integers_and_odd_values() -> None:
    text = serialize_state({"id": 10**30, "when": Path("/x"), "ok": [1.5, None, "é"], 3: "int key"})
    assert json.loads(text) == {"id": 10**30, "when": "/x", "ok": [1.5, None, "é"], "3": "int key"}


def test_a_render_is_shared_only_by_the_very_same_data_objects(registry: Registry) -> None:
    environment = create_environment()
    component = registry.get("item-card")
    rendered = RenderedFragments()
    item = {"item": {"name": "Lamp", "price": "€10"}}
    fragment = render_component(component, state=item, props={}, environment=environment)
    rendered.put(component, item, {}, fragment)
    shared = rendered.get(component, dict(item), {})  # another page holding the same decoded object
    assert shared is not None and shared.html == fragment.html and shared.seconds == 0.0
    assert rendered.get(component, {"item": dict(item["item"])}, {}) is None  # equal is not enough: same object
    assert rendered.get(component, item, {"size": "big"}) is None  # other props
    rendered.put(component, item, {"tags": ["a"]}, fragment)  # an unhashable prop is not kept
    assert rendered.get(component, item, {"tags": ["a"]}) is None
    failed = {"item": Failed("down")}
    rendered.put(component, failed, {}, render_component(component, state=failed, props={}, environment=environment))
    assert rendered.get(component, failed, {}) is None  # only successful renders are shared


def test_a_shared_render_is_handed_out_as_kept_without_a_copy(registry: Registry) -> None:
    environment = create_environment()
    component = registry.get("item-card")
    rendered = RenderedFragments()
    item = {"item": {"name": "Lamp", "price": "€10"}}
    rendered.put(component, item, {}, render_component(component, state=item, props={}, environment=environment))
    first, second = rendered.get(component, item, {}), rendered.get(component, item, {})
    assert first is not None and first is second and first.seconds == 0.0  # frozen: one object serves every page


def test_a_templates_globals_are_one_plain_dict() -> None:
    """Issue 19: each render copies its template's globals into a context and takes their key set; over
    Jinja's ChainMap both are walks in Python, over a dict they are C. The globals are all still there."""
    template = create_environment().from_string("{{ range(2)|list }} {{ dict(a=x) }}")
    assert type(template.globals) is dict
    assert template.render(x=1) == "[0, 1] {&#39;a&#39;: 1}"


def test_shared_renders_are_bounded_dropping_the_least_recently_used(registry: Registry) -> None:
    environment = create_environment()
    component = registry.get("item-card")
    rendered = RenderedFragments(max_entries=2)
    states = [{"item": {"name": f"Lamp {index}", "price": "€10"}} for index in range(3)]
    for state in states[:2]:
        rendered.put(component, state, {}, render_component(component, state=state, props={}, environment=environment))
    assert rendered.get(component, states[0], {}) is not None  # used: now the most recent
    last = states[2]
    rendered.put(component, last, {}, render_component(component, state=last, props={}, environment=environment))
    assert rendered.get(component, states[1], {}) is None  # the least recently used went
    assert rendered.get(component, states[0], {}) is not None and rendered.get(component, states[2], {}) is not None


def test_a_fragment_is_an_immutable_value_and_a_shared_one_differs_only_in_its_time(registry: Registry) -> None:
    environment = create_environment()
    component = registry.get("item-card")
    item = {"item": {"name": "Lamp", "price": "€10"}}
    fragment = render_component(component, state=item, props={}, environment=environment)
    with pytest.raises(AttributeError):
        fragment.html = Markup("")  # type: ignore[misc]
    assert (fragment.component, fragment.outcome, fragment.reason, fragment.status_code, fragment.raised) == (
        component,
        Outcome.OK,
        "",
        None,
        False,
    )
    rendered = RenderedFragments()
    rendered.put(component, item, {}, fragment)
    shared = rendered.get(component, item, {})
    assert shared is not None and shared.seconds == 0.0 < fragment.seconds
    assert shared._replace(seconds=fragment.seconds) == fragment


def test_shared_renders_go_cold_when_none_is_found_and_warm_again_once_one_is(registry: Registry) -> None:
    """Issue 19: where every page's data is its own, a page looks for a shared render (and keeps its own) only once
    in `COLD_SAMPLE` renders; a kept render found again means data is shared once more, and every render looks."""
    environment = create_environment()
    component = registry.get("item-card")
    rendered = RenderedFragments(max_entries=4)
    assert rendered.looks() and not rendered.cold
    states = [{"item": {"name": f"Lamp {index}", "price": "€10"}} for index in range(4)]
    for state in states:
        assert not rendered.cold and rendered.looks()
        rendered.put(component, state, {}, render_component(component, state=state, props={}, environment=environment))
    assert rendered.cold  # four kept in a row, none found
    looked = [rendered.looks() for _ in range(3 * RenderedFragments.COLD_SAMPLE)]
    assert looked.count(True) == 3 and looked[RenderedFragments.COLD_SAMPLE - 1]
    assert rendered.get(component, states[3], {}) is not None  # still kept, and found
    assert not rendered.cold and all(rendered.looks() for _ in range(2 * RenderedFragments.COLD_SAMPLE))
    failed = {"item": Failed("down")}  # a fallback is never kept, and counts for nothing
    fallback = render_component(component, state=failed, props={}, environment=environment)
    for _ in range(8):
        rendered.put(component, failed, {}, fallback)
    assert not rendered.cold
    for state in states:
        rendered.put(component, state, {}, render_component(component, state=state, props={}, environment=environment))
    assert rendered.cold
    rendered.clear()
    assert not rendered.cold and rendered.looks()


def test_a_components_render_sees_the_globals_and_its_own_names_and_leaves_nothing_for_the_next(
    registry: Registry,
) -> None:
    """Issue 19: a render's context is made from one dict of the template's globals and its four names, handed to
    Jinja as is (`new_context(shared=True)`): every name is still there, and each render starts from its own."""
    environment = create_environment()
    environment.globals["site_name"] = "Shop"
    source = (
        "{% set ns = namespace(n=0) %}{% for i in range(props.count) %}{% set ns.n = ns.n + i %}{% endfor %}"
        "{{ site_name }}:{{ ns.n }}:{{ state.item.name }}:{{ params.id }}:{{ slots.main }}"
        "{% set props = 'shadowed' %}{{ props }}"
    )
    greeting = registry.get("greeting")
    component = dataclasses.replace(greeting, template=environment.from_string(source))
    for count, name in ((3, "Lamp"), (4, "Desk")):
        fragment = render_component(
            component,
            state={"item": {"name": name}},
            props={"count": count},
            environment=environment,
            slots={"main": Markup("<b>x</b>")},
            params={"id": "<7>"},
        )
        assert fragment.outcome is Outcome.OK, fragment.reason
        total = sum(range(count))
        assert f"Shop:{total}:{name}:&lt;7&gt;:<b>x</b>shadowed</div>" in fragment.html
