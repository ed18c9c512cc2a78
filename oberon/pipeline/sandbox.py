"""What a team's template may not reach for, found before it renders.

Templates render in Jinja's immutable sandbox (`rendering.create_environment`), which refuses such
attributes when a page renders; `oberon check` names them first, by file and line, so a template that
tries never reaches a page.
"""

from __future__ import annotations

from collections.abc import Iterator

from jinja2 import nodes
from jinja2.sandbox import (
    UNSAFE_ASYNC_GENERATOR_ATTRIBUTES,
    UNSAFE_COROUTINE_ATTRIBUTES,
    UNSAFE_FUNCTION_ATTRIBUTES,
    UNSAFE_GENERATOR_ATTRIBUTES,
    UNSAFE_METHOD_ATTRIBUTES,
)

UNSAFE_ATTRIBUTES = frozenset(
    {
        *UNSAFE_FUNCTION_ATTRIBUTES,
        *UNSAFE_METHOD_ATTRIBUTES,
        *UNSAFE_GENERATOR_ATTRIBUTES,
        *UNSAFE_COROUTINE_ATTRIBUTES,
        *UNSAFE_ASYNC_GENERATOR_ATTRIBUTES,
        "mro",
        "format_map",  # str.format_map reaches attributes the sandbox cannot see
    }
)


def unsafe_attributes(template: nodes.Template) -> Iterator[tuple[int, str]]:
    """(line, problem) for each attribute the template names that leads out of its data: `_…` or internals."""
    for node in template.find_all((nodes.Getattr, nodes.Getitem, nodes.Filter)):
        for name in _names(node):
            if name.startswith("_") or name in UNSAFE_ATTRIBUTES:
                yield node.lineno, f"template reaches for {name!r}, which the sandbox refuses (templates see data only)"


def _names(node: nodes.Node) -> Iterator[str]:
    if isinstance(node, nodes.Getattr):
        yield node.attr
    elif isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Const) and isinstance(node.arg.value, str):
        yield node.arg.value
    elif isinstance(node, nodes.Filter) and node.name == "attr":
        for arg in node.args:  # `x|attr("__class__")`
            if isinstance(arg, nodes.Const) and isinstance(arg.value, str):
                yield arg.value
