"""The preview gallery at `/_oberon/gallery`, served by the renderer in development mode only.

The index lists every component with its owner, version and what it reads and publishes. A
component's page is the component itself rendered alone from one of its fixtures (the real page
pipeline, its BFFs answered from the fixture) with a panel on top — owner, versions, props as a
form from the props schema, state keys, published and consumed actions, slots — and its fallback
render below.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from typing import Any

from markupsafe import Markup
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from oberon.dev.fixtures import fixture_names, render_fixture
from oberon.exceptions import ComponentNotFound
from oberon.headers import new_request_id
from oberon.pipeline.manifest import DEFAULT_FIXTURE, PropSpec
from oberon.pipeline.page import PageRenderer
from oberon.pipeline.page_types import Page, RequestContext
from oberon.pipeline.registry import Component, Registry
from oberon.types import Kind, Outcome

GALLERY_PATH = "/_oberon/gallery"
STYLESHEET = GALLERY_PATH + "/gallery.css"
PROP_FIELD = "prop."  # query names of the props form: `prop.show_summary=false`
HEADERS = {"Cache-Control": "no-store", "X-Robots-Tag": "noindex"}
_HEAD_END = re.compile(r"</head\s*>", re.I)
_BODY_START = re.compile(r"<body[^>]*>", re.I)
_BODY_END = re.compile(r"</body\s*>", re.I)


@dataclass(frozen=True)
class PropField:
    """One prop as the form shows it: its spec and the value the render used."""

    spec: PropSpec
    value: Any

    @property
    def input_type(self) -> str:
        return {"bool": "checkbox", "int": "number", "float": "number"}.get(self.spec.type, "text")

    @property
    def step(self) -> str:
        return "1" if self.spec.type == "int" else "any"

    @property
    def field_name(self) -> str:
        return PROP_FIELD + self.spec.name


def gallery_routes(renderer: PageRenderer) -> list[Route]:
    """The gallery's routes; they read `renderer.registry` on every request, so a reloaded registry shows at once."""
    gallery = Gallery(renderer)
    return [
        Route(GALLERY_PATH, gallery.index, methods=["GET", "HEAD"]),
        Route(STYLESHEET, gallery.stylesheet, methods=["GET", "HEAD"]),
        Route(GALLERY_PATH + "/{name}", gallery.component, methods=["GET", "HEAD"]),
    ]


class Gallery:
    """The gallery's endpoints over one renderer."""

    def __init__(self, renderer: PageRenderer) -> None:
        self.renderer = renderer

    @property
    def registry(self) -> Registry:
        return self.renderer.registry

    async def index(self, request: Request) -> Response:
        owners: dict[str, list[Component]] = {}
        for component in self.registry:
            owners.setdefault(component.manifest.owner, []).append(component)
        html = self.renderer.environment.get_template("gallery_index.html").render(
            owners=sorted(owners.items()),
            count=len(self.registry),
            stylesheet=STYLESHEET,
            gallery=GALLERY_PATH,
            fixture_names=fixture_names,
            Kind=Kind,
        )
        return HTMLResponse(html, headers=HEADERS)

    async def stylesheet(self, request: Request) -> Response:
        css = resources.files("oberon").joinpath("static/gallery.css").read_text(encoding="utf-8")
        return Response(css, media_type="text/css", headers={"Cache-Control": "no-cache"})

    async def component(self, request: Request) -> Response:
        """One component rendered alone from a fixture (`?fixture=`), props from the form, its fallback below."""
        query = request.query_params
        try:
            component = self.registry.get(request.path_params["name"], SpecifierSet(query.get("version", "")))
        except (ComponentNotFound, InvalidSpecifier) as exc:
            message = str(exc) if isinstance(exc, ComponentNotFound) else "invalid version specifier"
            html = self.renderer.environment.get_template("error.html").render(
                title="Not in the gallery", message=message, request_id=""
            )
            return HTMLResponse(html, status_code=404, headers=HEADERS)
        names = fixture_names(component)
        fixture = query.get("fixture", DEFAULT_FIXTURE)
        if fixture not in names:
            fixture = names[0]
        props, problems = _props_from_query(component, {name: query.getlist(name) for name in query})
        context = RequestContext(request_id=new_request_id())
        page = await render_fixture(self.renderer, component, fixture=fixture, props=props, context=context)
        fallback = await render_fixture(self.renderer, component, fixture=fixture, props=props, fallback=True)
        root_fallback = next(
            (f for f in reversed(fallback.fragments) if f.component.name == component.name), None
        )
        given = component.manifest.fixtures.get(fixture)
        effective = {
            **{name: spec.default for name, spec in component.manifest.props.items()},
            **(given.props if given else {}),
            **props,
        }
        panel = self.renderer.environment.get_template("gallery_panel.html").render(
            component=component,
            manifest=component.manifest,
            versions=[c for c in self.registry if c.name == component.name],
            fixture=fixture,
            fixtures=names,
            described=component.manifest.fixtures,
            fields=[PropField(spec, effective.get(name)) for name, spec in component.manifest.props.items()],
            problems=problems,
            producers=self.registry.producers,
            consumers=_consumers(self.registry),
            publishers=_publishers(self.registry),
            gallery=GALLERY_PATH,
            outcomes=[(f.component.manifest.ident, f.outcome.value, f.reason) for f in page.fragments],
            status_code=page.status_code,
        )
        below = self.renderer.environment.get_template("gallery_fallback.html").render(
            fragment=root_fallback,
            fallback_html=Markup(root_fallback.html) if root_fallback else Markup(""),
            Outcome=Outcome,
        )
        return HTMLResponse(compose(page, panel=panel, below=below), headers=HEADERS)


def compose(page: Page, *, panel: str, below: str) -> str:
    """The rendered document with the gallery's stylesheet, its panel at the top of the body, `below` at the end."""
    html = page.html
    link = f'<link rel="stylesheet" href="{STYLESHEET}">\n'
    html = _HEAD_END.sub(lambda match: link + match.group(0), html, count=1)
    html = _BODY_START.sub(lambda match: match.group(0) + "\n" + panel, html, count=1)
    return _BODY_END.sub(lambda match: below + "\n" + match.group(0), html, count=1)


def _props_from_query(component: Component, query: Mapping[str, list[str]]) -> tuple[dict[str, Any], list[str]]:
    """The props the form sent (`prop.NAME`; a checkbox's last value wins over its hidden `false`)."""
    props: dict[str, Any] = {}
    problems = []
    for name, spec in component.manifest.props.items():
        values = query.get(PROP_FIELD + name)
        if not values:
            continue
        try:
            props[name] = spec.coerce(values[-1])
        except ValueError as exc:
            problems.append(f"{name}: {exc}")
    return props, problems


def _publishers(registry: Registry) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for component in registry:
        for action in component.manifest.publishes:
            found.setdefault(action, []).append(component.manifest.ident)
    return found


def _consumers(registry: Registry) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for component in registry:
        for action in component.manifest.consumes:
            found.setdefault(action, []).append(component.manifest.ident)
    return found
