"""Islands: the private components of a public page, which the CDN fills in per visitor (ESI).

The rest of the page (the shell) stays shared; each island is an `<esi:include>` of its own URL under
`ISLAND_PREFIX`, rendered per visitor and never shared.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlencode

from markupsafe import Markup

from oberon.pipeline.registry import Component, Registry, page_components
from oberon.pipeline.rendering import serialize_state
from oberon.types import Cacheability

ISLAND_PREFIX = "/_islands"


def island_idents(registry: Registry, root: Component, components: Sequence[Component]) -> frozenset[str]:
    """The idents of the private components of a public page, and of what they hold: its islands."""
    if root.manifest.cache is Cacheability.PRIVATE:
        return frozenset()
    islands: set[str] = set()
    for component in components:
        if component is not root and component.manifest.cache is Cacheability.PRIVATE:
            islands.update(part.manifest.ident for part in page_components(registry, component))
    return frozenset(islands)


def island_include(component: Component, *, params: Mapping[str, Any], props: Mapping[str, Any]) -> Markup:
    """The `<esi:include>` the CDN replaces with the component rendered for the visitor."""
    query = urlencode(
        {"version": f"=={component.manifest.version}", **{k: _query_value(v) for k, v in {**params, **props}.items()}}
    )
    return Markup('<esi:include src="{}"/>').format(f"{ISLAND_PREFIX}/{component.name}?{query}")


def island_state(component: Component, state: Mapping[str, Any], failed_keys: Sequence[str]) -> Markup:
    """The island's state as a JSON script beside its boundary, for the browser runtime to pick up."""
    return Markup('<script type="application/json" data-oberon-island="{}">{}</script>').format(
        component.name, serialize_state({"state": state, "failed": failed_keys})
    )


def _query_value(value: Any) -> str:
    return ("true" if value else "false") if isinstance(value, bool) else str(value)
