"""How `{{ value }}` reaches a page: escaped to a plain `str`, not a `Markup` per value.

Jinja's autoescaping wraps every value it prints in `markupsafe.escape`, which builds a `Markup`
object only for it to be joined into the template's output a moment later; a listing card prints
dozens of values, and those objects were a tenth of a page's rendering time. The compiled templates
here call `escape_output` instead: the same characters escaped the same way (`&`, `<`, `>`, `"` and
`'`, as markupsafe writes them), objects with `__html__` trusted as before, and the output joined and
wrapped in `Markup` by Jinja exactly as before. Only static autoescaping is changed; a template
whose escaping is decided at run time keeps Jinja's own code.
"""

from __future__ import annotations

from typing import Any

from jinja2.compiler import CodeGenerator, Frame
from jinja2.nodes import Expr


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
        text.replace("&", "&amp;")
        .replace("<", "&lt;")
        .replace(">", "&gt;")
        .replace('"', "&#34;")
        .replace("'", "&#39;")
    )


class OutputCodeGenerator(CodeGenerator):
    """Jinja's code generator, printing autoescaped values through `environment.escape_output`."""

    def _output_child_pre(self, node: Expr, frame: Frame, finalize: Any) -> None:
        if frame.eval_ctx.volatile or not frame.eval_ctx.autoescape:
            super()._output_child_pre(node, frame, finalize)
            return
        self.write("environment.escape_output(")
        if finalize.src is not None:
            self.write(finalize.src)
