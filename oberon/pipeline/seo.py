"""What pages tell search engines and link previews, and the site's `robots.txt` and `sitemap.xml`.

A page's head carries its title, a meta description and canonical URL derived from its state,
Open Graph tags, a robots directive and, when its app declares one, JSON-LD structured data.
Pages that must not be indexed say `noindex`: apps that declare it (account), private pages,
previews, and any page rendered with a fallback (a degraded duplicate of the real page).
"""

from __future__ import annotations

import functools
import json
import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote
from xml.sax.saxutils import escape

from markupsafe import Markup

from oberon.client.upstream import Upstreams
from oberon.exceptions import UpstreamError
from oberon.pipeline.assets import ASSET_PATH
from oberon.pipeline.query import canonical_query
from oberon.pipeline.registry import Component, Registry
from oberon.pipeline.rendering import serialize_state
from oberon.types import Cacheability

logger = logging.getLogger("oberon.seo")  # the name operators' log filters know

DESCRIPTION_LENGTH = 160
INDEX = "index, follow"
NOINDEX = "noindex"
DEFAULT_SITE_NAME = "Oberon Tickets"
# Never worth crawling: sessions, sign-in, client-side APIs and the platform's own endpoints.
DISALLOWED: tuple[str, ...] = (
    "/account",
    "/auth/",
    "/bff/",
    "/_oberon/",
    "/_components/",
    "/_backends/",
    "/_islands/",  # a visitor's own part of a page, fetched by their browser (the shell around it is indexed)
)
SITEMAP_TIMEOUT = 5.0
_PLACEHOLDER = re.compile(r"{([a-zA-Z_][a-zA-Z0-9_]*)(?::[a-z]+)?}")
_SPACE = re.compile(r"\s+")
JINJA_MARKS = ("{{", "{%", "{#")  # what starts Jinja syntax: a template without any renders its text as it is


@dataclass(frozen=True)
class SiteInfo:
    """The site as search engines see it: its name and the public origin canonical URLs start with."""

    url: str
    name: str = DEFAULT_SITE_NAME

    def absolute(self, path: str) -> str:
        return self.url.rstrip("/") + path


@dataclass(frozen=True)
class Head:
    """The head of one page, ready for the document template."""

    title: str
    description: str
    robots: str
    canonical: str = ""
    open_graph: tuple[tuple[str, str], ...] = ()
    json_ld: Markup | None = None


def route_path(template: str, params: Mapping[str, Any]) -> str | None:
    """`/e/{event_id:int}` with `{"event_id": 7}` is `/e/7`; None when a param is missing."""
    names, parts = _route(template)
    if not names <= params.keys():
        return None
    # parts: text, name, text, name, …, text. A plain loop, not a generator (a frame resumed per part, on every page:
    # issue 19); an int's digits and sign need no quoting (a bool is not `int` here).
    path = parts[0]
    for index in range(1, len(parts), 2):
        value = params[parts[index]]
        path += (str(value) if value.__class__ is int else quote(str(value), safe="")) + parts[index + 1]
    return path


def canonical_path(app: Component, params: Mapping[str, Any]) -> str | None:
    """The app's route that takes exactly these path params, filled in, with its declared query parameters that
    differ from their defaults, in declaration order: the one address of the page."""
    declared = app.manifest.query
    path_params = {name: value for name, value in params.items() if name not in declared} if declared else params
    for template in app.manifest.routes:
        if _route(template)[0] == path_params.keys():
            path = route_path(template, path_params)
            query = canonical_query(declared, params) if declared else ""
            return f"{path}?{query}" if path is not None and query else path
    return None


@functools.lru_cache(maxsize=1024)
def _route(template: str) -> tuple[frozenset[str], tuple[str, ...]]:
    """A route's param names, and its text split around them; worked out once per route, not per page."""
    return frozenset(_PLACEHOLDER.findall(template)), tuple(_PLACEHOLDER.split(template))


def fixed_description(root: Component) -> str | None:
    """The description of every page of `root` when its template reads nothing (it has no Jinja in it); else None."""
    if root.description is None or not any(mark in root.manifest.meta.description for mark in JINJA_MARKS):
        return _description(root, {}, {})
    return None


def page_head(
    root: Component,
    *,
    title: str,
    state: Mapping[str, Any],
    params: Mapping[str, Any],
    site: SiteInfo,
    locale: str = "en",
    cacheability: Cacheability = Cacheability.PUBLIC,
    fell_back: bool = False,
    description: str | None = None,
) -> Head:
    """The head of a page of `root` (an app, or one component in a preview) rendered from `state`; `description`:
    its `fixed_description`, when it has one."""
    if description is None:
        description = _description(root, state, params)
    path = canonical_path(root, params) if root.manifest.routes else None
    indexable = (
        path is not None
        and root.manifest.meta.robots == "index"
        and cacheability is Cacheability.PUBLIC
        and not fell_back
    )
    canonical = site.absolute(path) if path is not None else ""
    return Head(
        title=title,
        description=description,
        robots=INDEX if indexable else NOINDEX,
        canonical=canonical,
        open_graph=(*open_graph(title, description, site, locale), *((("og:url", canonical),) if canonical else ())),
        json_ld=_structured_data(root, state, params, canonical) if path is not None else None,
    )


def open_graph(title: str, description: str, site: SiteInfo, locale: str) -> tuple[tuple[str, str], ...]:
    """A page's Open Graph properties but its URL (`og:url`, its canonical URL, last when it has one)."""
    return (
        ("og:type", "website"),
        ("og:site_name", site.name),
        ("og:title", title),
        ("og:description", description),
        ("og:locale", locale.replace("-", "_")),
    )


def _description(root: Component, state: Mapping[str, Any], params: Mapping[str, Any]) -> str:
    text = ""
    if root.description is not None:
        try:
            text = root.description.render(state=state, params=params)
        except Exception:  # the data it needs failed: the app's own description still describes the page
            text = ""
    text = _SPACE.sub(" ", Markup(text).unescape()).strip() or root.manifest.description
    if len(text) > DESCRIPTION_LENGTH:
        text = text[: DESCRIPTION_LENGTH - 1].rsplit(" ", 1)[0].rstrip(",.;:") + "…"
    return text


def _structured_data(root: Component, state: Mapping[str, Any], params: Mapping[str, Any], url: str) -> Markup | None:
    """The app's JSON-LD, checked to be JSON and serialised so that no value can close the script."""
    if root.structured_data is None:
        return None
    try:
        data = json.loads(root.structured_data.render(state=state, params=params, url=url))
    except Exception as exc:  # missing data or a template bug: the page is still fine without it
        logger.warning("structured data of %s not rendered: %r", root.manifest.ident, exc)
        return None
    return serialize_state(data) if isinstance(data, dict) else None


def robots_txt(site: SiteInfo) -> str:
    """Crawl everything public; not sessions, sign-in, APIs or platform endpoints; here is the sitemap."""
    lines = [
        "User-agent: *",
        f"Allow: {ASSET_PATH}",  # crawlers render pages with their CSS and JS, when those are same-origin
        *(f"Disallow: {path}" for path in DISALLOWED),
        "",
        f"Sitemap: {site.absolute('/sitemap.xml')}",
    ]
    return "\n".join(lines) + "\n"


async def sitemap_paths(
    registry: Registry, upstreams: Upstreams, *, headers: Mapping[str, str] | None = None
) -> list[str]:
    """Every public page: routes without params as they are, the others filled from their app's sitemap BFF."""
    paths: dict[str, None] = {}
    for app in registry.apps():
        meta = app.manifest.meta
        if meta.robots != "index" or app.manifest.cache is not Cacheability.PUBLIC:
            continue
        for template in app.manifest.routes:
            if not _PLACEHOLDER.search(template):
                paths[template] = None
            elif meta.sitemap is not None:
                for params in await _listed_params(upstreams, meta.sitemap.bff, meta.sitemap.path, headers):
                    path = route_path(template, params)
                    if path is not None:
                        paths[path] = None
    return list(paths)


async def _listed_params(
    upstreams: Upstreams, bff: str, path: str, headers: Mapping[str, str] | None
) -> list[Mapping[str, Any]]:
    try:
        body = await upstreams[bff].get_json(path, timeout=SITEMAP_TIMEOUT, headers=headers)
        pages = body["pages"]
        return [page["params"] for page in pages if isinstance(page.get("params"), dict)]
    except (UpstreamError, KeyError, TypeError, AttributeError) as exc:
        logger.warning("sitemap: %s%s failed: %r", bff, path, exc)
        return []


def sitemap_xml(site: SiteInfo, paths: Iterable[str]) -> str:
    """The sitemaps.org XML for these paths."""
    urls = "".join(f"<url><loc>{escape(site.absolute(path))}</loc></url>\n" for path in paths)
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">\n'
        f"{urls}</urlset>\n"
    )
