"""The debug view of a page (`?oberon-debug=1`, development mode only).

Every component boundary is outlined and labelled with the component's name and version, how
its render ended, how long each of its data sources took and its template's render time; a
table at the end of the page sums them up with the page's own timing. It is drawn by a
stylesheet (`/_oberon/debug.css`) from attributes on the boundaries, so it needs no inline
style or script that the gateway's Content-Security-Policy would block.
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources

from markupsafe import Markup
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from oberon.pipeline.page_types import Page
from oberon.pipeline.registry import Registry
from oberon.pipeline.rendering import Fragment
from oberon.pipeline.server_timing import Loader

DEBUG_PARAM = "oberon-debug"
STYLESHEET = "/_oberon/debug.css"
_TRUE = frozenset({"1", "true", "yes", "on"})
_BOUNDARY = re.compile(
    r'(<div class="oberon-boundary" data-oberon-component="(?P<name>[^"]+)" data-oberon-version="(?P<version>[^"]+)")'
)
_HEAD_END = re.compile(r"</head\s*>", re.I)
_BODY_END = re.compile(r"</body\s*>", re.I)


@dataclass(frozen=True)
class Row:
    """One component of the page as the debug view shows it."""

    ident: str
    result: str
    reason: str
    render_ms: float
    data: tuple[tuple[str, float | None], ...]  # each key it reads, and how long its source took (None: not loaded)

    @property
    def label(self) -> str:
        outcome = f"{self.result} ({self.reason})" if self.reason else self.result
        parts = [self.ident, outcome]
        parts += [f"data {key} {_ms(seconds)}" for key, seconds in self.data]
        parts.append(f"render {self.render_ms:.1f} ms")
        return " · ".join(parts)


def wants_debug(query: Mapping[str, str]) -> bool:
    """Whether the request asks for the debug view: `?oberon-debug=1`."""
    return query.get(DEBUG_PARAM, "").lower() in _TRUE


def rows(page: Page, registry: Registry) -> list[Row]:
    """Each component of the page, in page order, with its outcome and timings."""
    by_key = {loader.key: loader for loader in page.timing.loaders}
    by_source = {loader.source: loader for loader in page.timing.loaders}
    found = []
    for fragment in page.fragments:
        data = tuple((key, _seconds(key, registry, by_key, by_source)) for key in fragment.component.manifest.keys)
        found.append(_row(fragment, data))
    return found


def _row(fragment: Fragment, data: tuple[tuple[str, float | None], ...]) -> Row:
    return Row(
        ident=fragment.component.manifest.ident,
        result=fragment.result,
        reason=fragment.reason,
        render_ms=fragment.seconds * 1000,
        data=data,
    )


def _seconds(
    key: str, registry: Registry, by_key: Mapping[str, Loader], by_source: Mapping[str, Loader]
) -> float | None:
    if key in by_key:
        return by_key[key].seconds
    source = registry.producers.get(key)
    loader = by_source.get(f"{source.bff} {source.path}") if source else None
    return loader.seconds if loader else None


def annotate(page: Page, registry: Registry) -> str:
    """The page's HTML with each boundary labelled, the debug stylesheet linked and a summary at the end."""
    found = rows(page, registry)
    labels = {row.ident: row.label for row in found}

    def label(match: re.Match[str]) -> str:
        text = labels.get(f"{match['name']}@{match['version']}")
        if text is None:
            return match.group(0)
        return f'{match.group(1)} data-oberon-debug="{html.escape(text, quote=True)}"'

    document = _BOUNDARY.sub(label, page.html)
    link = f'<link rel="stylesheet" href="{STYLESHEET}">\n'
    document = _HEAD_END.sub(lambda match: link + match.group(0), document, count=1)
    summary = str(summary_table(page, found))
    return _BODY_END.sub(lambda match: summary + "\n" + match.group(0), document, count=1)


def summary_table(page: Page, found: list[Row]) -> Markup:
    """The table at the end of a debug page: the page's timing, then each component."""
    timing = page.timing
    lines = [
        Markup('<aside class="oberon-debug" aria-label="Oberon debug view">'),
        Markup("<h2>Oberon debug view</h2><p>Page: total {} · data {} · render {} · status {}</p>").format(
            _ms(timing.total), _ms(timing.data), _ms(timing.render), page.status_code
        ),
        Markup(
            '<table><thead><tr><th scope="col">Component</th><th scope="col">Outcome</th>'
            '<th scope="col">Data</th><th scope="col">Render</th></tr></thead><tbody>'
        ),
    ]
    for row in found:
        data = ", ".join(f"{key} {_ms(seconds)}" for key, seconds in row.data) or "—"
        outcome = f"{row.result}: {row.reason}" if row.reason else row.result
        lines.append(
            Markup('<tr class="oberon-debug__{}"><td>{}</td><td>{}</td><td>{}</td><td>{:.1f} ms</td></tr>').format(
                row.result, row.ident, outcome, data, row.render_ms
            )
        )
    lines.append(Markup("</tbody></table></aside>"))
    return Markup("\n").join(lines)


def _ms(seconds: float | None) -> str:
    return "not loaded" if seconds is None else f"{seconds * 1000:.1f} ms"


async def _stylesheet(request: Request) -> Response:
    css = resources.files("oberon").joinpath("static/debug.css").read_text(encoding="utf-8")
    return Response(css, media_type="text/css", headers={"Cache-Control": "no-cache"})


def debug_routes() -> list[Route]:
    """The debug view's stylesheet."""
    return [Route(STYLESHEET, _stylesheet, methods=["GET", "HEAD"])]
