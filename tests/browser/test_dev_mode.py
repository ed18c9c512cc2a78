"""`oberon up --dev` in a real browser: an open page reloads itself after an edit, under the gateway's CSP; the
gallery and the debug view load cleanly and are accessible."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page

from tests.browser.conftest import Watcher, run_axe
from tests.e2e.conftest import start_server
from tests.projects import project_copy


@pytest.fixture(scope="module")
def dev_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    project = tmp_path_factory.mktemp("browser-dev") / "project"
    site_file = project_copy(project)
    with start_server("--dev", env={"OBERON_SITE_FILE": str(site_file)}, cwd=project) as running:
        yield running.base_url, project


def test_open_page_reloads_itself_after_a_template_edit(
    dev_site: tuple[str, Path], page: Page, watch: Callable[[Page], Watcher]
) -> None:
    base, project = dev_site
    watcher = watch(page)
    page.goto(f"{base}/")
    page.wait_for_selector(".site-footer")
    template = project / "components" / "site-footer" / "template.html"
    template.write_text(template.read_text().replace("Back to all events", "Back to the listing"))
    page.wait_for_selector("text=Back to the listing", timeout=20_000)  # no reload by hand
    watcher.failed = [failure for failure in watcher.failed if "/_oberon/dev/changes" not in failure]
    watcher.assert_clean()


def test_open_page_shows_registry_errors_then_recovers(dev_site: tuple[str, Path], page: Page) -> None:
    base, project = dev_site
    page.goto(f"{base}/e/1")
    manifest = project / "components" / "venue-info" / "component.toml"
    good = manifest.read_text()
    manifest.write_text(good.replace("timeout_ms = 1200", 'timeout_ms = "soon"'))
    try:
        page.wait_for_selector(".oberon-dev-errors", timeout=20_000)
        assert "timeout_ms: expected an integer" in page.inner_text(".oberon-dev-errors")
        assert page.is_visible(".venue-info"), "the last good registry keeps serving"
    finally:
        manifest.write_text(good)
    page.wait_for_selector(".oberon-dev-errors", state="detached", timeout=20_000)


def test_gallery_and_debug_view_load_cleanly_and_accessibly(
    dev_site: tuple[str, Path], page: Page, watch: Callable[[Page], Watcher]
) -> None:
    base, _ = dev_site
    watcher = watch(page)
    page.goto(f"{base}/_oberon/gallery")
    assert run_axe(page) == []
    page.goto(f"{base}/_oberon/gallery/ticket-selector")
    assert run_axe(page) == []
    page.fill("#prop\\.max_quantity", "2")
    page.click("text=Render with these props")
    page.wait_for_url("**prop.max_quantity=2**")
    assert page.locator(".oberon-gallery__fallback").is_visible()
    page.goto(f"{base}/e/1?oberon-debug=1")
    label = page.evaluate(
        "getComputedStyle(document.querySelector('[data-oberon-component=event-hero]'), '::before').content"
    )
    assert "event-hero@1.0.0 · ok" in label
    # Leaving a page cancels the reload script's pending long poll; that is not a failure.
    watcher.failed = [failure for failure in watcher.failed if "/_oberon/dev/changes" not in failure]
    watcher.assert_clean()
