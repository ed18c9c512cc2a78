"""How `{{ value }}` reaches a page: escaped to a plain `str`, not a `Markup` per value.

Jinja's autoescaping wraps every value it prints in `markupsafe.escape`, which builds a `Markup`
object only for it to be joined into the template's output a moment later; a listing card prints
dozens of values, and those objects were a tenth of a page's rendering time. The compiled templates
here call `escape_output` instead: the same characters escaped the same way (`&`, `<`, `>`, `"` and
`'`, as markupsafe writes them), objects with `__html__` trusted as before, and the output joined and
wrapped in `Markup` by Jinja exactly as before. Only static autoescaping is changed; a template
whose escaping is decided at run time keeps Jinja's own code.

`{{ html|safe }}`, how a fragment prints the HTML its source sent, is printed by `print_safe`: a plain
`str` as it is, without Jinja's `safe` filter making a `Markup` of it for `escape_output` to take apart.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from jinja2.compiler import CodeGenerator, Frame
from jinja2.filters import do_mark_safe
from jinja2.nodes import Expr, Filter
from markupsafe import Markup


def escape_output(value: Any) -> str:
    """`str(markupsafe.escape(value))`, without the `Markup` in between."""
    if value.__class__ is str:
        return _escape(value)
    if value.__class__ is int:
        return str(value)  # digits and a sign: nothing to escape (a bool is not `int` here)
    if hasattr(value, "__html__"):
        html = value.__html__()  # trusted, as markupsafe trusts it
        return html if isinstance(html, str) else str(html)
    return _escape(str(value))


def _escape(text: str) -> str:
    return (
        text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&#34;").replace("'", "&#39;")
    )


# `trusted(html)`: `Markup(html)` for a `str` known to be HTML (a render, a boundary around one): the same object, made
# by `str.__new__` without markupsafe's `__new__` in Python (its `__html__` check and `super()` call, about 4,000
# instructions a call whatever the length, seven a page of target 1; issue 19). A `partial` of it, not a function
# around it: called in C, no frame of its own (issue 19, session 18).
trusted: Callable[[str], Markup] = functools.partial(str.__new__, Markup)


def print_safe(value: Any) -> str:
    """What `{{ value|safe }}` prints, `escape_output(Markup(value))`, without the `Markup` for a plain `str`."""
    if value.__class__ is str:
        return value
    return escape_output(Markup(value))


class OutputCodeGenerator(CodeGenerator):
    """Jinja's code generator, printing autoescaped values through `environment.escape_output`, and `{{ value|safe }}`
    through `environment.print_safe`."""

    _printing_safe: Filter | None = None  # the `|safe` being printed, whose value goes to `print_safe` as it is

    def _output_child_pre(self, node: Expr, frame: Frame, finalize: Any) -> None:
        if frame.eval_ctx.volatile or not frame.eval_ctx.autoescape:
            super()._output_child_pre(node, frame, finalize)
            return
        safe = self._plain_safe(node) if finalize.src is None else None
        if safe is not None:
            self._printing_safe = safe
            self.write("environment.print_safe(")
            return
        self.write("environment.escape_output(")
        if finalize.src is not None:
            self.write(finalize.src)

    def visit_Filter(self, node: Filter, frame: Frame) -> None:
        if node is self._printing_safe and node.node is not None:
            self._printing_safe = None
            self.visit(node.node, frame)  # the value, without Jinja's `safe` filter around it
            return
        super().visit_Filter(node, frame)

    def _plain_safe(self, node: Expr) -> Filter | None:
        """`node` if it is `value|safe` with Jinja's own `safe` filter, no arguments, in a synchronous environment."""
        if not isinstance(node, Filter) or node.name != "safe" or node.node is None:
            return None
        if node.args or node.kwargs or node.dyn_args is not None or node.dyn_kwargs is not None:
            return None
        if self.environment.is_async or self.environment.filters.get("safe") is not do_mark_safe:
            return None
        return node
