"""What development mode adds to the renderer, handed to `oberon.web` by the runtime (web never imports dev)."""

from __future__ import annotations

from collections.abc import Mapping

from starlette.routing import BaseRoute

from oberon.dev.debug import annotate, debug_routes, wants_debug
from oberon.dev.gallery import gallery_routes
from oberon.pipeline.page import PageRenderer
from oberon.pipeline.page_types import Page
from oberon.pipeline.registry import Registry


class DevelopmentTools:
    """The gallery, the debug view's stylesheet route, and `?oberon-debug=1` outlines."""

    def routes(self, renderer: PageRenderer) -> list[BaseRoute]:
        return [*gallery_routes(renderer), *debug_routes()]

    def wants_debug(self, query: Mapping[str, str]) -> bool:
        return wants_debug(query)

    def annotate(self, page: Page, registry: Registry) -> str:
        return annotate(page, registry)
