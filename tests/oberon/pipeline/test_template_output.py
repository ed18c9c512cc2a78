"""Values printed by templates: escaped to `str` exactly as markupsafe escapes them, and the same pages."""

from __future__ import annotations

from typing import Any

import jinja2
import pytest
from markupsafe import Markup, escape

from oberon.pipeline.rendering import create_environment
from oberon.pipeline.template_output import escape_output, trusted


class Html:
    def __html__(self) -> str:
        return "<em>trusted</em>"


class Text:
    def __str__(self) -> str:
        return "<script>alert('x')</script>"


VALUES: list[Any] = [
    "",
    "plain",
    '<a href="/x?a=1&b=2">\'quoted\' & "double"</a>',
    "é ü \u2028 \u2029 日本",
    "&amp; already escaped once",
    0,
    -5,
    10**30,
    True,
    False,
    None,
    1.5,
    float("nan"),
    Markup("<b>ok</b>"),
    Html(),
    Text(),
    ["<x>", 1],
    {"a": "<"},
]


@pytest.mark.parametrize("value", VALUES, ids=repr)
def test_a_value_is_escaped_as_markupsafe_escapes_it(value: Any) -> None:
    assert escape_output(value) == str(escape(value))
    assert type(escape_output(value)) in (str, Markup)


TEMPLATES = {
    "output": '<p title="{{ value }}">{{ value }}</p>{{ number }}{{ flag }}{{ nothing }}',
    "loop": "{% for item in items %}<li>{{ item.name }} {{ item['price'] }} {{ loop.index }}</li>{% endfor %}",
    "set block": "{% set block %}<i>{{ value }}</i>{% endset %}{{ block }}|{{ block | length }}",
    "macro": (
        "{% macro card(x) %}<b>{{ x }}</b>{{ caller() }}{% endmacro %}{% call card(value) %}{{ value }}{% endcall %}"
    ),
    "filters": "{{ value | upper }}{{ value | e }}{{ trusted | safe }}{{ value | safe }}{{ value ~ number }}",
    "filter block": "{% filter upper %}{{ value }}<br>{% endfilter %}",
    "autoescape off": "{% autoescape false %}{{ value }}{% endautoescape %}{{ value }}",
    "markup": "{{ trusted }}{{ html }}{{ text }}",
    "include": "{% include 'part.html' %}",
    "join": "{{ items | map(attribute='name') | join(', ') }}{{ [value, value] | join('<') }}",
    "safe": (
        "{{ value|safe }}{{ trusted|safe }}{{ html|safe }}{{ text|safe }}{{ number|safe }}{{ flag|safe }}"
        "{{ nothing|safe }}{{ items[0].name|safe }}{{ items|safe }}{{ value|safe|upper }}{{ value|upper|safe }}"
        "{{ '<i>'|safe }}{{ (value ~ number)|safe }}{% set block %}{{ value|safe }}{% endset %}{{ block }}"
    ),
}
CONTEXT = {
    "value": "<a href=\"x\">Tom & 'Jerry'</a>",
    "number": 42,
    "flag": True,
    "nothing": None,
    "items": [{"name": "<b>A</b>", "price": "1 & 2"}, {"name": "B's", "price": 3}],
    "trusted": Markup("<strong>ok</strong>"),
    "html": Html(),
    "text": Text(),
}


def environments() -> tuple[jinja2.Environment, jinja2.Environment]:
    ours = create_environment()
    stock = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    for environment in (ours, stock):
        environment.loader = jinja2.DictLoader({**TEMPLATES, "part.html": "<span>{{ value }}</span>"})
    return ours, stock


@pytest.mark.parametrize("name", TEMPLATES)
def test_templates_render_the_same_page_as_jinjas_own_escaping(name: str) -> None:
    ours, stock = environments()
    assert ours.get_template(name).render(CONTEXT) == stock.get_template(name).render(CONTEXT)


def test_compiled_templates_print_through_escape_output() -> None:
    # If a Jinja release renamed the hook, pages would stay correct but slower: this says so.
    ours, stock = environments()
    assert "environment.escape_output(" in str(ours.compile("{{ value }}", raw=True))
    assert "environment.escape_output(" not in str(stock.compile("{{ value }}", raw=True))


def test_a_value_printed_safe_is_printed_as_it_is_without_the_safe_filter() -> None:
    ours, stock = environments()
    source = str(ours.compile("{{ html|safe }}", raw=True))
    assert "environment.print_safe(" in source
    assert "environment.print_safe(t_" not in source  # the filter is not called around the value
    assert "environment.print_safe(" not in str(stock.compile("{{ html|safe }}", raw=True))


def test_a_replaced_safe_filter_is_still_called() -> None:
    ours, _ = environments()
    ours.filters["safe"] = lambda value: Markup(f"[{value}]")
    assert "environment.print_safe(" not in str(ours.compile("{{ html|safe }}", raw=True))
    assert ours.from_string("{{ html|safe }}").render(html="<b>") == "[<b>]"


def test_an_undefined_value_still_fails_the_render() -> None:
    ours, _ = environments()
    with pytest.raises(jinja2.UndefinedError):
        ours.from_string("{{ missing }}").render()
    with pytest.raises(jinja2.UndefinedError):
        ours.from_string("{{ missing|safe }}").render()
    with pytest.raises(jinja2.UndefinedError):
        ours.from_string("{{ value.missing|safe }}").render(value={"present": 1})
    with pytest.raises(jinja2.UndefinedError):
        ours.from_string("{{ value.missing }}").render(value={"present": 1})


@pytest.mark.parametrize("html", ["", "<b>ok</b>", "Tom & 'Jerry' é \u2028", "<div>" + "x" * 5000 + "</div>"])
def test_trusted_html_is_the_markup_markupsafe_makes_of_it(html: str) -> None:
    made = trusted(html)
    assert type(made) is Markup
    assert made == Markup(html) and str(made) == html
    assert made.__html__() is made
    assert Markup("<p>{}</p>").format(made) == Markup("<p>{}</p>").format(Markup(html))
