"""Islands: the private components of a public page, filled in per visitor at their own URL.

The rest of the page (the shell) stays shared; each island is rendered per visitor and never shared, at its own
URL under `ISLAND_PREFIX`. With a CDN in front (ESI on) the page holds an `<esi:include>` of that URL, which the
CDN replaces; without one, a client island: a box holding the component's placeholder (else its fallback), which
the browser runtime (`oberon.js`) fills from the same URL once the page is parsed. The placeholder reserves the
island's box, so nothing moves when it arrives.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlencode

import jinja2
from markupsafe import Markup

from oberon.pipeline.registry import Component, Registry, page_components
from oberon.pipeline.rendering import fallback_body, resolve_props, serialize_state
from oberon.types import Cacheability

ISLAND_PREFIX = "/_islands"

logger = logging.getLogger("oberon.rendering")


def island_idents(registry: Registry, root: Component, components: Sequence[Component]) -> frozenset[str]:
    """The idents of the private components of a public page, and of what they hold: its islands."""
    if root.manifest.cache is Cacheability.PRIVATE:
        return frozenset()
    islands: set[str] = set()
    for component in components:
        if component is not root and component.manifest.cache is Cacheability.PRIVATE:
            islands.update(part.manifest.ident for part in page_components(registry, component))
    return frozenset(islands)


def island_url(component: Component, *, params: Mapping[str, Any], props: Mapping[str, Any]) -> str:
    """The island's own URL: its version pinned (the page's), its route params and props in the query."""
    query = urlencode(
        {"version": f"=={component.manifest.version}", **{k: _query_value(v) for k, v in {**params, **props}.items()}}
    )
    return f"{ISLAND_PREFIX}/{component.name}?{query}"


def island_include(component: Component, *, params: Mapping[str, Any], props: Mapping[str, Any]) -> Markup:
    """The `<esi:include>` the CDN replaces with the component rendered for the visitor."""
    return Markup('<esi:include src="{}"/>').format(island_url(component, params=params, props=props))


def client_island(
    component: Component, *, params: Mapping[str, Any], props: Mapping[str, Any], environment: jinja2.Environment
) -> Markup:
    """The box the browser fills with the island: its placeholder (else its fallback) until it arrives.

    The placeholder template sees `props`, `params` and `island_url` (for a `<noscript>` link to it); with a
    placeholder the fallback rides along in a `<template>`, shown if the island cannot be fetched.
    """
    url = island_url(component, params=params, props=props)
    resolved = resolve_props(component, props)
    fallback = fallback_body(component, state={}, props=resolved, environment=environment, params=params)
    shown, spare = fallback, Markup("")
    if component.placeholder is not None:
        try:
            shown = Markup(component.placeholder.render(state={}, props=resolved, params=params, island_url=url))
            spare = Markup("<template data-oberon-island-fallback>{}</template>").format(fallback)
        except Exception as exc:  # a broken placeholder leaves the fallback in the box
            logger.warning("placeholder of %s raised: %r", component.manifest.ident, exc)
    return Markup('<div class="oberon-island" data-oberon-island-src="{}">{}{}</div>').format(url, shown, spare)


def island_state(
    component: Component, state: Mapping[str, Any], failed_keys: Sequence[str], keys: frozenset[str]
) -> Markup:
    """The island's state as a JSON script beside its boundary, for the browser runtime to merge into its store:
    the values of `keys` (those client code reads) and which of them failed."""
    shipped = {key: value for key, value in state.items() if key in keys}
    failed = [key for key in failed_keys if key in keys]
    return Markup('<script type="application/json" data-oberon-island="{}">{}</script>').format(
        component.name, serialize_state({"state": shipped, "failed": failed})
    )


def _query_value(value: Any) -> str:
    return ("true" if value else "false") if isinstance(value, bool) else str(value)
