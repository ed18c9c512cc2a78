"""Client code binds to the version that rendered the boundary (issue 17, item 6): in real headless Chromium, a
canary's script enhances the canary's boundaries and the stable script the stable ones — on one page holding both,
and for two visitors of a site whose registry ramps a canary."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page

from tests.browser.conftest import Server, demo_site_copy
from tests.e2e.conftest import ROOT
from tests.registry_stand_in import TOKEN, StandInRegistry, run_stand_in

EVENT = "/e/1"
OPENING = 'oberon.component("ticket-selector", function (root, ctx) {\n'
BOUNDARIES = '[data-oberon-component="ticket-selector"]'
# Each boundary as (the version that rendered it, the scripts that bound it, whether the client started).
READ = """roots => roots.map(r => [r.dataset.oberonVersion, r.dataset.boundBy || "", r.dataset.oberonClient || ""])"""


def marking(folder: Path, version: str) -> Path:
    """ticket-selector at `folder` as `version`, its script noting on each boundary it binds that it did."""
    manifest = folder / "component.toml"
    manifest.write_text(manifest.read_text().replace('version = "1.0.0"', f'version = "{version}"', 1))
    script = folder / "assets" / "ticket-selector.js"
    mark = f'  root.setAttribute("data-bound-by", (root.getAttribute("data-bound-by") || "") + "{version};");\n'
    text = script.read_text()
    assert OPENING in text
    script.write_text(text.replace(OPENING, OPENING + mark, 1))
    return folder


def boundaries(page: Page, url: str) -> list[list[str]]:
    page.goto(url)
    page.wait_for_function(
        f"() => [...document.querySelectorAll('{BOUNDARIES}')].every(r => r.dataset.oberonClient)", timeout=10_000
    )
    found: list[list[str]] = page.eval_on_selector_all(BOUNDARIES, READ)
    return found


@pytest.fixture(scope="module")
def both_versions_site(server: Server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The demo site whose event page slots ticket-selector 1.0.0 and 1.1.0 side by side (a folder registry)."""
    root = tmp_path_factory.mktemp("both-versions")
    site_file = demo_site_copy(root)
    marking(root / "components" / "ticket-selector", "1.0.0")
    original = ROOT / "components" / "ticket-selector"
    marking(shutil.copytree(original, root / "components" / "ticket-selector-next"), "1.1.0")
    app = root / "components" / "event-page" / "component.toml"
    app.write_text(
        app.read_text().replace(
            '[[slots.main]]\ncomponent = "ticket-selector"\nversion = "~=1.0"',
            '[[slots.main]]\ncomponent = "ticket-selector"\nversion = "==1.0.0"\n\n'
            '[[slots.main]]\ncomponent = "ticket-selector"\nversion = "==1.1.0"',
            1,
        )
    )
    env = {"OBERON_SITE_FILE": str(site_file), "OBERON_BUILD_DIR": str(root / "build")}
    with server(env=env) as base:
        yield base


def test_each_versions_script_binds_only_the_boundaries_that_version_rendered(
    page: Page, both_versions_site: str
) -> None:
    assert boundaries(page, both_versions_site + EVENT) == [["1.0.0", "1.0.0;", "ready"], ["1.1.0", "1.1.0;", "ready"]]


@pytest.fixture(scope="module")
def canary_site(server: Server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The demo site following a registry in which ticket-selector 1.1.0 is a canary at 50 % (buckets 00–49)."""
    root = tmp_path_factory.mktemp("canary")
    state = StandInRegistry(root / "registry")
    components = shutil.copytree(ROOT / "components", root / "components")
    marking(components / "ticket-selector", "1.0.0")
    state.publish_site(components)
    original = ROOT / "components" / "ticket-selector"
    canary = marking(shutil.copytree(original, root / "next" / "ticket-selector"), "1.1.0")
    state.ramp(state.publish(canary), 50)
    env = {
        "OBERON_REGISTRY_TOKEN": TOKEN,
        "OBERON_REGISTRY_CACHE_DIR": str(root / "cache"),
        "OBERON_BUILD_DIR": str(root / "build"),
    }
    with run_stand_in(state) as registry, server("--registry", registry.url, env=env) as base:
        yield base


@pytest.mark.parametrize(("bucket", "version"), [("07", "1.1.0"), ("93", "1.0.0")], ids=["canary", "stable"])
def test_a_canary_boundary_is_bound_by_the_canary_script_and_a_stable_one_by_the_stable_script(
    browser: Browser, canary_site: str, bucket: str, version: str
) -> None:
    context = browser.new_context()
    try:
        visitor = f"v1.{bucket}.{'x' * 22}"
        context.add_cookies([{"name": "oberon_visitor", "value": visitor, "url": canary_site}])
        page = context.new_page()
        scripts: list[str] = []
        page.on("request", lambda request: scripts.append(request.url) if request.resource_type == "script" else None)
        assert boundaries(page, canary_site + EVENT) == [[version, f"{version};", "ready"]]
        tags = page.eval_on_selector_all(
            "script[data-oberon-script]", "tags => tags.map(t => [t.dataset.oberonScript, t.dataset.oberonVersion])"
        )
        assert ["ticket-selector", version] in tags
        assert len([url for url in scripts if "/ticket-selector." in url]) == 1  # the one version's script only
    finally:
        context.close()
