"""Testing a component alone: rendered from the fixtures in its manifest, with no BFF or backend running.

```python
from oberon.testing import fixtures, render_alone

@pytest.mark.parametrize("fixture", fixtures("ticket-selector", site=SITE))
async def test_ticket_selector_renders_each_fixture(fixture):
    rendered = await render_alone("ticket-selector", site=SITE, fixture=fixture)
    assert rendered.outcome("ticket-selector") == "ok"
```

This is what the gallery shows at `/_oberon/gallery/NAME`: the real page pipeline (loaders,
boundaries, fallbacks, assets, the document) with each data source answered from the fixture.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2

from oberon.client.upstream import Upstreams
from oberon.dev.fixtures import fixture_names, render_fixture
from oberon.pipeline.assets import Assets, build_assets
from oberon.pipeline.cache_policy import CachePolicy
from oberon.pipeline.manifest import DEFAULT_FIXTURE
from oberon.pipeline.page import PageRenderer
from oberon.pipeline.page_types import Page
from oberon.pipeline.registry import Registry, load_registry
from oberon.pipeline.rendering import create_environment
from oberon.site import Site

DEFAULT_SITE = Path("oberon.toml")


@dataclass(frozen=True)
class Rendered:
    """A component rendered alone: its page, and how each component on it ended (`ok` or `fallback`)."""

    page: Page

    @property
    def html(self) -> str:
        return self.page.html

    @property
    def status_code(self) -> int:
        return self.page.status_code

    @property
    def outcomes(self) -> dict[str, str]:
        return {fragment.component.name: fragment.outcome.value for fragment in self.page.fragments}

    def outcome(self, name: str) -> str:
        """How component `name` ended; KeyError if it is not on the page."""
        return self.outcomes[name]


def load_registry_of(site: Path | str = DEFAULT_SITE, *, environment: jinja2.Environment | None = None) -> Registry:
    """The registry of the site file `site`; RegistryError lists every problem, as `oberon check` does."""
    return load_registry(Site.load(Path(site)).components, environment=environment or create_environment())


def fixtures(name: str, *, site: Path | str = DEFAULT_SITE) -> list[str]:
    """The names of component `name`'s fixtures, `default` first (for `pytest.mark.parametrize`)."""
    return fixture_names(load_registry_of(site).get(name))


async def render_alone(
    name: str,
    *,
    site: Path | str = DEFAULT_SITE,
    fixture: str = DEFAULT_FIXTURE,
    props: Mapping[str, Any] | None = None,
    fallback: bool = False,
    version: str = "",
) -> Rendered:
    """Component `name` rendered alone from its fixture, `props` over the fixture's; with `fallback`, its fallback."""
    environment = create_environment()
    registry = load_registry_of(site, environment=environment)
    with tempfile.TemporaryDirectory(prefix="oberon-test-assets-") as folder:
        renderer = PageRenderer(
            registry=registry,
            upstreams=Upstreams({}),
            environment=environment,
            policy=CachePolicy(),
            assets=Assets(build_assets(registry, Path(folder))),
        )
        page = await render_fixture(
            renderer, registry.get(name, version), fixture=fixture, props=props, fallback=fallback
        )
    return Rendered(page)
