"""The HTML document around a page's body: its head (title, what search engines see), its assets, its state.

A document is built by joining strings, not by a template: what is the same on every page of a plan (its
stylesheets, scripts, `Link` header and the surrogate keys of its app and components) is worked out once per plan
(`PageFrame`, kept by `PagePlan.frame`), and only what reads the page's data (its head and its body) per page.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from markupsafe import Markup

from oberon.pipeline.assets import AssetRef, Assets, PageAssets
from oberon.pipeline.cache_policy import page_keys
from oberon.pipeline.registry import Component
from oberon.pipeline.rendering import serialize_state
from oberon.pipeline.seo import (
    INDEX,
    JINJA_MARKS,
    NOINDEX,
    Head,
    SiteInfo,
    canonical_path,
    fixed_description,
    open_graph,
    page_head,
)
from oberon.pipeline.template_output import escape_output  # markupsafe's escaping, to a str: no `Markup` a value
from oberon.types import Cacheability

_OPENING = '<!doctype html>\n<html lang="'
_HEAD = (
    '">\n<head>\n<meta charset="utf-8">\n<meta name="viewport" content="width=device-width, initial-scale=1">\n<title>'
)
_ICON = '</title>\n<link rel="icon" href="data:,">\n'


@dataclass(frozen=True)
class PageFrame:
    """What every page of one plan carries whatever its data, worked out once per plan and asset build."""

    assets: PageAssets
    stylesheets: str  # the head's preconnect and stylesheet links, as HTML
    scripts: str  # the scripts at the end of the body, as HTML
    preload: str  # the `Link` header: the stylesheets, fetched before the HTML is parsed
    keys: tuple[str, ...]  # the surrogate keys of the app and its components (a page adds its route's entities)
    private: bool  # a component rendered on the page is private
    title: str | None  # the title of every page, when the app's reads no data; else None (rendered per page)
    description: str | None  # likewise, its description
    # The head's text around its canonical URL, by site, locale, robots and whether there is a canonical URL, when
    # the title and description are fixed and there is no JSON-LD (`_fixed_head`); filled as pages come.
    heads: dict[tuple[str, str, str, bool, bool], tuple[str, str, str]] = field(
        default_factory=dict, compare=False, repr=False
    )


MAX_HEADS = 64  # head texts a frame keeps (locales × robots): a bound, whatever locales visitors send


def page_frame(
    assets: Assets, root: Component, components: Sequence[Component], cacheability: Iterable[Cacheability]
) -> PageFrame:
    """The frame of every page of `root` made of `components` (the shell's `cacheability`) with this asset build."""
    page_assets = assets.for_page(components)
    origin = _origin(assets.base_url)
    preconnect = f'<link rel="preconnect" href="{escape_output(origin)}" crossorigin>\n' if origin else ""
    return PageFrame(
        assets=page_assets,
        stylesheets=preconnect + "".join(_stylesheet(ref) for ref in page_assets.css),
        scripts="".join(_script(ref) for ref in page_assets.js),
        preload=page_assets.preload_header(),
        keys=page_keys(app=root.name, components=(component.name for component in components)),
        private=Cacheability.PRIVATE in cacheability,
        title=_fixed_title(root),
        description=fixed_description(root),
    )


def render_document(
    root: Component,
    *,
    body: Markup,
    state: Mapping[str, Any],
    state_script: Markup,
    params: Mapping[str, Any],
    site: SiteInfo,
    locale: str,
    fell_back: bool,
    frame: PageFrame,
) -> str:
    """The whole document of a page of `root` in `frame`."""
    if frame.title is not None and frame.description is not None and root.structured_data is None:
        head_html = _fixed_head(root, params=params, site=site, locale=locale, fell_back=fell_back, frame=frame)
    else:
        head_html = _head(root, state=state, params=params, site=site, locale=locale, fell_back=fell_back, frame=frame)
    return "".join(
        (
            head_html,
            "</head>\n<body>\n",
            body,  # markup, as is: as the template output it
            "\n",
            state_script,
            "\n",
            frame.scripts,
            "</body>\n</html>",
        )
    )


def _head(
    root: Component,
    *,
    state: Mapping[str, Any],
    params: Mapping[str, Any],
    site: SiteInfo,
    locale: str,
    fell_back: bool,
    frame: PageFrame,
) -> str:
    """The document up to the end of its head, from `page_head`."""
    head = page_head(
        root,
        title=_title(root, state, params) if frame.title is None else frame.title,
        state=state,
        params=params,
        site=site,
        locale=locale,
        cacheability=Cacheability.PRIVATE if frame.private else Cacheability.PUBLIC,
        fell_back=fell_back,
        description=frame.description,
    )
    return "".join(
        (
            _OPENING,
            escape_output(locale),
            _HEAD,
            escape_output(head.title),
            _ICON,
            _head_tags(head),
            frame.stylesheets,
            f'<script type="application/ld+json">{head.json_ld}</script>\n' if head.json_ld else "",
        )
    )


def _fixed_head(
    root: Component, *, params: Mapping[str, Any], site: SiteInfo, locale: str, fell_back: bool, frame: PageFrame
) -> str:
    """What `_head` gives for a page whose title and description read nothing and that has no JSON-LD: only its
    canonical URL is its own; the text around it depends on the site, locale and robots, and is made once."""
    path = canonical_path(root, params) if root.manifest.routes else None
    indexable = path is not None and root.manifest.meta.robots == "index" and not frame.private and not fell_back
    canonical = site.absolute(path) if path is not None else ""
    key = (site.url, site.name, locale, indexable, bool(canonical))
    parts = frame.heads.get(key)
    if parts is None:
        if len(frame.heads) >= MAX_HEADS:
            frame.heads.clear()
        parts = frame.heads[key] = _fixed_head_parts(frame, site, locale, INDEX if indexable else NOINDEX, canonical)
    if not canonical:
        return parts[0]
    url = escape_output(canonical)  # in its link and in `og:url`
    return "".join((parts[0], url, parts[1], url, parts[2]))


def _fixed_head_parts(
    frame: PageFrame, site: SiteInfo, locale: str, robots: str, canonical: str
) -> tuple[str, str, str]:
    """The text of `_fixed_head` before, between and after its canonical URL's two places (the whole text first, when
    it has none), as `_head` writes it."""
    assert frame.title is not None and frame.description is not None
    title, description = frame.title, frame.description
    start = (
        f"{_OPENING}{escape_output(locale)}{_HEAD}{escape_output(title)}{_ICON}"
        f"{_description_tag(description)}{_robots_tag(robots)}"
    )
    fixed = "".join(_property_tag(name, content) for name, content in open_graph(title, description, site, locale))
    if not canonical:
        return start + fixed + frame.stylesheets, "", ""
    link, _, link_end = _canonical_tag(_URL).partition(_URL)
    og_url, _, og_url_end = _property_tag("og:url", _URL).partition(_URL)
    return start + link, link_end + fixed + og_url, og_url_end + frame.stylesheets


_URL = "{url}"  # where a tag's URL goes, to cut the tag around it (text with no character to escape)


_NO_STATE = Markup("")


def state_script(state: Mapping[str, Any], failed: Sequence[str], keys: frozenset[str]) -> Markup:
    """The `<script id="oberon-state">` the client runtime seeds its store from: the values of `keys` (what the
    page's client code reads) and which of them failed; nothing at all when the page's code reads no key."""
    if not keys:
        return _NO_STATE
    shipped = {key: value for key, value in state.items() if key in keys}
    data = serialize_state({"state": shipped, "failed": [key for key in failed if key in keys]})
    return Markup(f'<script type="application/json" id="oberon-state">{data}</script>')


def _head_tags(head: Head) -> str:
    """The description, robots, canonical and Open Graph tags of a page's head."""
    tags = [_description_tag(head.description), _robots_tag(head.robots)]
    if head.canonical:
        tags.append(_canonical_tag(head.canonical))
    tags.extend(_property_tag(name, content) for name, content in head.open_graph)
    return "".join(tags)


def _description_tag(description: str) -> str:
    return f'<meta name="description" content="{escape_output(description)}">\n' if description else ""


def _robots_tag(robots: str) -> str:
    return f'<meta name="robots" content="{escape_output(robots)}">\n'


def _canonical_tag(url: str) -> str:
    return f'<link rel="canonical" href="{escape_output(url)}">\n'


def _property_tag(name: str, content: str) -> str:
    # The properties are seo's own names (`og:title`), nothing to escape.
    return f'<meta property="{name}" content="{escape_output(content)}">\n'


def _stylesheet(ref: AssetRef) -> str:
    return (
        f'<link rel="stylesheet" href="{escape_output(ref.url)}" integrity="{escape_output(ref.integrity)}"'
        ' crossorigin="anonymous">\n'
    )


def _script(ref: AssetRef) -> str:
    owner = (
        f' data-oberon-script="{escape_output(ref.component)}" data-oberon-version="{escape_output(ref.version)}"'
        if ref.component
        else ""
    )
    return (
        f'<script src="{escape_output(ref.url)}" integrity="{escape_output(ref.integrity)}"'
        f' crossorigin="anonymous"{owner} defer></script>\n'
    )


def _title(root: Component, state: Mapping[str, Any], params: Mapping[str, Any]) -> str:
    if root.title is not None:
        try:
            # Already escaped by the autoescaping environment.
            return Markup(root.title.render(state=state, params=params))
        except Exception:  # a title needing failed data falls back to the app's name
            pass
    return root.manifest.description or root.name


def _fixed_title(root: Component) -> str | None:
    """The title of every page of `root` when its title template has no Jinja in it (it reads nothing), else None."""
    if root.title is not None and any(mark in root.manifest.title for mark in JINJA_MARKS):
        return None
    return _title(root, {}, {})


def _origin(url: str) -> str:
    """`http://localhost:8000/_oberon/assets/` → `http://localhost:8000`; "" for a same-origin path."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else ""
