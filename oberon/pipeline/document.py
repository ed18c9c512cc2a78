"""The HTML document around a page's body: its head (title, what search engines see), its assets, its state."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

import jinja2
from markupsafe import Markup

from oberon.pipeline.assets import Assets, PageAssets
from oberon.pipeline.registry import Component
from oberon.pipeline.rendering import serialize_state
from oberon.pipeline.seo import SiteInfo, page_head
from oberon.types import Cacheability

DOCUMENT_TEMPLATE = "document.html"


def render_document(
    environment: jinja2.Environment,
    root: Component,
    *,
    body: Markup,
    state: Mapping[str, Any],
    state_script: Markup,
    params: Mapping[str, Any],
    site: SiteInfo,
    locale: str,
    private: bool,
    fell_back: bool,
    assets: Assets,
    components: Iterable[Component],
) -> tuple[str, PageAssets]:
    """The whole document of a page of `root`, and the stylesheets and scripts of `components` it loads."""
    head = page_head(
        root,
        title=_title(root, state, params),
        state=state,
        params=params,
        site=site,
        locale=locale,
        cacheability=Cacheability.PRIVATE if private else Cacheability.PUBLIC,
        fell_back=fell_back,
    )
    page_assets = assets.for_page(components)
    html = environment.get_template(DOCUMENT_TEMPLATE).render(
        lang=locale,
        head=head,
        body=body,
        state=state_script,
        assets=page_assets,
        asset_origin=_origin(assets.base_url),
    )
    return html, page_assets


def state_script(state: Mapping[str, Any], failed: Sequence[str], keys: frozenset[str]) -> Markup:
    """The `<script id="oberon-state">` the client runtime seeds its store from: the values of `keys` (what the
    page's client code reads) and which of them failed; nothing at all when the page's code reads no key."""
    if not keys:
        return Markup("")
    shipped = {key: value for key, value in state.items() if key in keys}
    data = serialize_state({"state": shipped, "failed": [key for key in failed if key in keys]})
    return Markup(f'<script type="application/json" id="oberon-state">{data}</script>')


def _title(root: Component, state: Mapping[str, Any], params: Mapping[str, Any]) -> str:
    if root.title is not None:
        try:
            # Already escaped by the autoescaping environment.
            return Markup(root.title.render(state=state, params=params))
        except Exception:  # a title needing failed data falls back to the app's name
            pass
    return root.manifest.description or root.name


def _origin(url: str) -> str:
    """`http://localhost:8000/_oberon/assets/` → `http://localhost:8000`; "" for a same-origin path."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else ""
