"""A page's plan: which components a page of an app holds, which data it loads, in what order, which are islands.

The renderer works a plan out once per registry and follows it on every render of the page.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from oberon.pipeline.assets import Assets
from oberon.pipeline.document import PageFrame, page_frame
from oberon.pipeline.islands import island_idents
from oberon.pipeline.manifest import DataSource
from oberon.pipeline.registry import Component, Registry, page_components
from oberon.types import Cacheability

MAX_FRAMES = 4


@dataclass(frozen=True)
class PagePlan:
    """A page of one app, as the registry defines it: which components, which data, in what order."""

    root: Component
    components: tuple[Component, ...]
    islands: frozenset[str]  # idents of the components filled in per visitor (by the CDN, else the browser)
    sources: dict[str, DataSource]
    timeouts: dict[str, float]
    cacheability: tuple[Cacheability, ...]  # of the components rendered here (not islands)
    order: dict[str, int]  # ident → place in the page
    holding_critical: frozenset[str]  # idents of the components that are, or hold, a critical one
    client_keys: frozenset[str]  # the state keys its client code reads: the browser gets these, no others
    by_device: bool  # a data source of the shell reads the device class: the page varies by it
    # The frame of its pages for each asset build it was rendered with: one, as a plan lives in one `Served`.
    frames: dict[Assets, PageFrame] = field(default_factory=dict, compare=False, repr=False)

    def frame(self, assets: Assets) -> PageFrame:
        """What every page of this plan carries whatever its data (its assets, its app's surrogate keys), worked
        out on its first page."""
        frame = self.frames.get(assets)
        if frame is None:
            if len(self.frames) >= MAX_FRAMES:  # a plan outliving many asset builds keeps the latest few
                self.frames.clear()
            frame = self.frames[assets] = page_frame(assets, self.root, self.components, self.cacheability)
        return frame


def plan_page(registry: Registry, root: Component, *, islands: bool = True) -> PagePlan:
    """What a page of `root` is made of; with `islands`, the private components of a public page are islands."""
    components = page_components(registry, root)
    carved = island_idents(registry, root, components) if islands else frozenset()
    shell = tuple(component for component in components if component.manifest.ident not in carved)
    sources = registry.sources_for(shell)
    return PagePlan(
        root=root,
        components=tuple(components),
        islands=carved,
        sources=sources,
        timeouts=key_timeouts(shell),
        cacheability=tuple(component.manifest.cache for component in shell),
        order={component.manifest.ident: index for index, component in enumerate(components)},
        holding_critical=frozenset(
            component.manifest.ident
            for component in components
            if any(part.manifest.critical for part in page_components(registry, component))
        ),
        client_keys=keys_read_by_scripts(components),
        by_device=any("device" in source.context for source in sources.values()),
    )


def keys_read_by_scripts(components: Iterable[Component]) -> frozenset[str]:
    """The keys read (data and `subscribes`) by those of `components` that ship scripts: all the client code of
    their page may read. The runtime (oberon.js) reads none of its own; an island brings its own state along."""
    return frozenset(key for component in components if component.manifest.js for key in component.manifest.keys)


def key_timeouts(components: Iterable[Component]) -> dict[str, float]:
    """Each key's budget: the longest `timeout_ms` among the components that read it."""
    timeouts: dict[str, float] = {}
    for component in components:
        for key in component.manifest.keys:
            timeouts[key] = max(timeouts.get(key, 0.0), component.manifest.timeout_ms / 1000)
    return timeouts
