"""Team templates cannot reach the renderer's process: refused by `oberon check`, and by the sandbox at render."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import jinja2
import pytest
from jinja2.sandbox import SecurityError

from oberon.exceptions import ManifestError
from oberon.pipeline.registry import load_registry
from oberon.pipeline.rendering import create_environment, render_component
from oberon.types import Outcome

ODD = 'name = "odd"\nversion = "1.0"\nowner = "team-a"\n'


@pytest.mark.parametrize(
    ("template", "attribute"),
    [
        ("<p>\n{{ lipsum.__globals__['os'].popen('id').read() }}</p>", "__globals__"),
        ("<p>\n{{ cycler.__init__ }}</p>", "__init__"),
        ("<p>\n{{ (lipsum|attr('__globals__')) }}</p>", "__globals__"),
        ("<p>\n{{ props['__class__'] }}</p>", "__class__"),
        ("<p>\n{{ items.gi_frame }}</p>", "gi_frame"),
    ],
)
def test_check_names_a_template_that_reaches_for_unsafe_attributes(
    write_component, registry_errors: Callable[[], list[ManifestError]], template: str, attribute: str
) -> None:
    write_component("odd", ODD, template=template)
    errors = registry_errors()
    assert len(errors) == 1
    assert errors[0].file.name == "template.html"
    assert errors[0].field == "line 2"
    assert repr(attribute) in errors[0].message and "sandbox" in errors[0].message


def test_check_names_unsafe_attributes_in_an_app_title(write_component, registry_errors) -> None:
    write_component("odd", ODD + 'kind = "app"\ntitle = "{{ x.__class__ }}"\n')
    errors = registry_errors()
    assert [(error.file.name, error.field) for error in errors] == [("component.toml", "title")]


def test_check_accepts_templates_that_read_their_data(write_component, registry_errors) -> None:
    write_component("odd", ODD, template="{% for k, v in props.items() %}{{ k }}={{ v|upper }}{% endfor %}{{ 'a'[0] }}")
    assert registry_errors() == []


@pytest.mark.parametrize(
    "source",
    [
        "{{ (lipsum|attr(name))['os'] }}",  # a name only known at render time gets past the static check
        "{{ items.append(1) }}",  # the immutable sandbox: a template cannot change shared data
        "{{ ''.__class__.__mro__ }}",
    ],
)
def test_the_environment_is_a_sandbox(source: str) -> None:
    with pytest.raises(SecurityError):
        create_environment().from_string(source).render(name="__globals__", items=[])


def test_a_template_reaching_past_the_sandbox_renders_its_fallback_and_runs_nothing(
    site: Path, tmp_path: Path, environment: jinja2.Environment
) -> None:
    marker = tmp_path / "pwned"
    folder = site / "components" / "odd"
    folder.mkdir()
    (folder / "component.toml").write_text(ODD + '[props.name]\ntype = "str"\ndefault = "__globals__"\n')
    (folder / "template.html").write_text(
        f"{{{{ (lipsum|attr(props.name))['os'].popen('touch {marker}').read() }}}}"
    )
    registry = load_registry([site / "components"], environment=environment)
    odd = registry.get("odd")
    fragment = render_component(odd, state={}, props={"name": "__globals__"}, environment=environment)
    assert fragment.outcome is Outcome.FALLBACK
    assert "unavailable" in fragment.html
    assert not marker.exists()


def test_the_sandbox_judges_an_attribute_once_per_type_and_still_refuses_what_it_refused() -> None:
    """Issue 19: `is_safe_attribute` reads an object's type and the name only, so a safe pair is judged once, not
    on every lookup of every page; what it refuses is refused every time, and a str's `format` stays the
    sandbox's own, however many safe lookups came before."""
    environment = create_environment()
    asked: list[str] = []
    judge = environment.is_safe_attribute

    def counting(obj: object, attribute: str, value: object) -> bool:
        asked.append(attribute)
        return judge(obj, attribute, value)

    environment.is_safe_attribute = counting  # type: ignore[method-assign]
    template = environment.from_string("{% for n in numbers %}{{ n.real }}/{{ n.imag }} {% endfor %}")
    assert template.render(numbers=[1, 2, 3]) == "1/0 2/0 3/0 "
    assert template.render(numbers=[4]) == "4/0 "
    assert asked == ["real", "imag"]
    refused = [
        "{{ n.__class__ }}",
        "{{ numbers.append(1) }}",
        "{{ (n|attr(name)) }}",
        "{{ '{0.__class__}'.format(n) }}",
    ]
    for _ in range(3):
        for source in refused:
            with pytest.raises(SecurityError):
                environment.from_string(source).render(n=1, numbers=[], name="__class__")
