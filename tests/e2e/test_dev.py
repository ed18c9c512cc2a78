"""`oberon up --dev` as a real process on a copy of the project: the summary, the gallery, the debug view, and
live reload of a template, of a manifest that breaks the registry (errors in the page and the terminal, the last
good registry still serving), and of a BFF's code."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import Running, start_server
from tests.projects import project_copy

DEADLINE = 20.0


def eventually(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    pytest.fail(f"not within {DEADLINE:g}s: {what}")


@pytest.fixture(scope="module")
def dev(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Running, Path]]:
    project = tmp_path_factory.mktemp("dev") / "project"
    site_file = project_copy(project)
    with start_server("--dev", env={"OBERON_SITE_FILE": str(site_file)}, cwd=project) as running:
        yield running, project


def page(running: Running, path: str = "/") -> httpx.Response:
    return httpx.get(running.base_url + path, timeout=10)


def test_dev_summary_names_the_site_gallery_and_metrics(dev: tuple[Running, Path]) -> None:
    running, project = dev
    output = running.output()
    assert f"oberon: site      {running.base_url}/" in output
    assert f"oberon: gallery   {running.base_url}/_oberon/gallery" in output
    assert f"oberon: metrics   {running.admin_url}/metrics" in output  # the admin listener, not the entrance
    assert f"oberon: dev       live reload of {project / 'components'}" in output
    assert str(project / "bff" / "checkout") in output


def test_dev_server_timing_names_each_loads_bff_and_path(dev: tuple[Running, Path]) -> None:
    running, _ = dev
    value = page(running, "/e/1").headers["server-timing"]
    assert re.search(r'load\.[a-z_]+;dur=[\d.]+;desc="(events|discovery|checkout) /', value), value


def test_dev_serves_the_gallery_through_the_gateway(dev: tuple[Running, Path]) -> None:
    running, _ = dev
    index = page(running, "/_oberon/gallery")
    assert index.status_code == 200
    assert "ticket-selector" in index.text
    detail = page(running, "/_oberon/gallery/ticket-selector?fixture=sold-out")
    assert detail.status_code == 200
    assert "Fallback render" in detail.text and "Sold out" in detail.text
    # The gateway's Content-Security-Policy holds: everything the gallery loads is same-origin.
    assert "default-src 'self'" in detail.headers["content-security-policy"]
    assert page(running, "/_oberon/gallery/gallery.css").headers["content-type"].startswith("text/css")


def test_dev_debug_view_labels_every_component(dev: tuple[Running, Path]) -> None:
    running, _ = dev
    html = page(running, "/e/1?oberon-debug=1").text
    labels = re.findall(r'data-oberon-debug="([^"]+)"', html)
    assert any(label.startswith("event-hero@1.0.0 · ok · data event ") for label in labels), labels
    assert '<link rel="stylesheet" href="/_oberon/debug.css">' in html
    assert page(running, "/_oberon/debug.css").status_code == 200


def test_dev_reload_picks_up_a_template_change(dev: tuple[Running, Path]) -> None:
    running, project = dev
    template = project / "components" / "site-footer" / "template.html"
    template.write_text(template.read_text().replace("Back to all events", "Back to every event"))
    eventually(lambda: "Back to every event" in page(running).text, "the edited footer shows")


def test_dev_reload_keeps_the_last_good_registry_and_shows_the_errors(dev: tuple[Running, Path]) -> None:
    running, project = dev
    manifest = project / "components" / "site-footer" / "component.toml"
    good = manifest.read_text()
    manifest.write_text(good.replace('version = "1.0.0"', 'version = "one"'))
    try:
        eventually(lambda: "oberon-dev-errors" in page(running).text, "the errors show in the page")
        response = page(running)
        assert response.status_code == 200
        assert "site-footer" in response.text, "the last good registry keeps serving"
        assert "component.toml:version: &#39;one&#39; is not a PEP 440 version" in response.text
        assert "the registry has" in running.output() and "still serving the last good one" in running.output()
        assert "component.toml:version: 'one' is not a PEP 440 version" in running.output()
    finally:
        manifest.write_text(good)
    eventually(lambda: "oberon-dev-errors" not in page(running).text, "the errors go once it is fixed")


def test_dev_reload_picks_up_a_bff_change_and_survives_a_broken_one(dev: tuple[Running, Path]) -> None:
    running, project = dev
    module = project / "bff" / "checkout" / "app.py"
    good = module.read_text()
    assert page(running, "/bff/checkout/cart").json()["total"] == "€0.00"
    module.write_text(good.replace('"EUR": "€"', '"EUR": "EUR "'))
    eventually(lambda: page(running, "/bff/checkout/cart").json()["total"] == "EUR 0.00", "the BFF change shows")
    module.write_text(good + "\ndef broken(:\n")
    try:
        eventually(lambda: "bff:checkout: SyntaxError" in page(running).text, "the import error shows in the page")
        assert page(running, "/bff/checkout/cart").json()["total"] == "EUR 0.00", "the previous code answers"
    finally:
        module.write_text(good)
    eventually(lambda: page(running, "/bff/checkout/cart").json()["total"] == "€0.00", "the fixed code answers")
    assert "bff:checkout" not in page(running).text
