"""A component rendered alone from the sample state its manifest declares (`[fixtures.NAME]`).

The real page pipeline runs — loaders, boundaries, fallbacks, assets, document — with its BFFs
replaced by one small in-process app per BFF that answers each data source from the fixture.
The gallery and the tests a team writes for its component both render this way, with no BFF or
backend running.

An app's fixture is filled in by its children's: each child contributes its fixture of the same
name (or its `default` one), and the app's own state is laid over them.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Collection, Mapping
from dataclasses import dataclass, replace
from typing import Any

from starlette.types import Receive, Scope, Send

from oberon.client.upstream import Upstreams
from oberon.pipeline.loading import resolve_path
from oberon.pipeline.manifest import DEFAULT_FIXTURE, Fixture
from oberon.pipeline.page import PageRenderer
from oberon.pipeline.page_types import Page, RequestContext
from oberon.pipeline.registry import Component, Registry, page_components
from oberon.pipeline.routing import Route
from oberon.types import Kind

# Any value fills a path placeholder: the fixture BFF answers by the resolved path, whatever it is.
PARAM_VALUE = "fixture"
# A template that raises when rendered: how a component without data shows its fallback.
RAISING_TEMPLATE = "{{ oberon_fixture_forces_the_fallback }}"
FAILED_STATUS = 500  # not retried by the client, so the fallback shows at once


@dataclass(frozen=True)
class Sample:
    """What one fixture render needs: the state of every key on the page, the root's props, the route params."""

    fixture: str
    state: Mapping[str, Any]
    props: Mapping[str, Any]
    params: Mapping[str, Any]


def fixture_names(component: Component) -> list[str]:
    """The component's fixtures, `default` first; just `default` (no sample state) when it declares none."""
    names = [name for name in component.manifest.fixtures if name != DEFAULT_FIXTURE]
    if DEFAULT_FIXTURE in component.manifest.fixtures or not names:
        names.insert(0, DEFAULT_FIXTURE)
    return names


def pick(component: Component, name: str) -> Fixture | None:
    """The component's fixture `name`, else its `default`, else its first; None when it has none."""
    fixtures = component.manifest.fixtures
    return fixtures.get(name) or fixtures.get(DEFAULT_FIXTURE) or next(iter(fixtures.values()), None)


def sample(registry: Registry, root: Component, fixture: str = DEFAULT_FIXTURE) -> Sample:
    """The state, props and params to render `root` with its fixture `fixture` (children's fixtures under an app)."""
    state: dict[str, Any] = {}
    for component in reversed(page_components(registry, root)[1:]):
        found = pick(component, fixture)
        if found is not None:
            state.update(found.state)
    own = pick(root, fixture)
    if own is not None:
        state.update(own.state)
    props = dict(own.props) if own is not None else {}
    return Sample(fixture=fixture, state=state, props=props, params=_params(registry, root))


def _params(registry: Registry, root: Component) -> dict[str, Any]:
    names: set[str] = set()
    for template in root.manifest.routes:
        names |= Route.compile(template, root.name).params
    for source in registry.sources_for(page_components(registry, root)).values():
        names |= source.params
    return dict.fromkeys(sorted(names), PARAM_VALUE)


class FixtureBFF:
    """An ASGI app standing in for one BFF: each data source's path answers its key's fixture value.

    A key in `failing`, or one the fixture lacks, answers an error, so whatever reads it falls back.
    """

    def __init__(self, answers: Mapping[str, str], *, state: Mapping[str, Any], failing: Collection[str]) -> None:
        self.answers = dict(answers)  # resolved path → state key
        self.state = state
        self.failing = frozenset(failing)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        key = self.answers.get(scope["path"])
        if key is None:
            status, body = 404, {"error": f"no fixture data source at {scope['path']}"}
        elif key in self.failing or key not in self.state:
            status, body = FAILED_STATUS, {"error": f"fixture: {key!r} fails on purpose"}
        else:
            status, body = 200, self.state[key]
        payload = json.dumps(body).encode("utf-8")
        headers = [(b"content-type", b"application/json"), (b"cache-control", b"no-store")]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": payload})


def fixture_upstreams(
    registry: Registry, root: Component, sample: Sample, *, failing: Collection[str] = ()
) -> Upstreams:
    """One `FixtureBFF` per BFF the page's components load from."""
    answers: dict[str, dict[str, str]] = {}
    for key, source in registry.sources_for(page_components(registry, root)).items():
        answers.setdefault(source.bff, {})[resolve_path(source, sample.params)] = key
    apps = {bff: FixtureBFF(paths, state=sample.state, failing=failing) for bff, paths in answers.items()}
    return Upstreams.create(dict(apps))


def fallback_registry(registry: Registry, root: Component) -> tuple[Registry, Component, frozenset[str]]:
    """A registry in which `root` falls back, and the keys to fail for it.

    A component that reads state falls back because its data fails; an app, or a component that reads
    none, because its template raises (an app's children are not dragged down with it). Either way it
    is not critical here, so its fallback shows instead of an error page.
    """
    changed = replace(root, manifest=replace(root.manifest, critical=False))
    keys = frozenset(root.manifest.keys) if root.manifest.kind is not Kind.APP else frozenset()
    if not keys:
        changed = replace(changed, template=root.template.environment.from_string(RAISING_TEMPLATE))
    others = [component for component in registry if component is not root]
    return Registry([*others, changed]), changed, keys


async def render_fixture(
    renderer: PageRenderer,
    root: Component,
    *,
    fixture: str = DEFAULT_FIXTURE,
    props: Mapping[str, Any] | None = None,
    fallback: bool = False,
    context: RequestContext | None = None,
) -> Page:
    """`root` rendered as a whole document from its fixture, with `props` over the fixture's; or its fallback."""
    registry = renderer.registry
    found = sample(registry, root, fixture)
    failing: frozenset[str] = frozenset()
    if fallback:
        registry, root, failing = fallback_registry(registry, root)
    upstreams = fixture_upstreams(registry, root, found, failing=failing)
    # A copy shares the renderer's environment, assets, policy and observers; only its data and registry differ.
    alone = copy.copy(renderer)
    alone.registry = registry
    alone.upstreams = upstreams
    alone.observers = []  # a sample is not traffic: it stays out of the page metrics
    try:
        return await alone.render(
            root,
            params=found.params,
            context=context or RequestContext(request_id="fixture"),
            props={**found.props, **(props or {})},
        )
    finally:
        await upstreams.aclose()
