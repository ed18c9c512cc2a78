"""`oberon up --dev` as a real process: editing a component's script rebuilds the assets the pages reference."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path

import httpx

from tests.browser.conftest import demo_site_copy

Server = Callable[..., AbstractContextManager[str]]


def selector_script(base: str) -> str:
    html = httpx.get(f"{base}/e/1", timeout=10).text
    found = re.search(r'<script src="([^"]+/ticket-selector\.[0-9a-f]{16}\.js)"', html)
    assert found is not None, html
    return found.group(1)


def test_up_dev_rebuilds_the_assets_when_a_component_script_changes(server: Server, tmp_path: Path) -> None:
    site_file = demo_site_copy(tmp_path)
    script = tmp_path / "components" / "ticket-selector" / "assets" / "ticket-selector.js"
    with server("--dev", env={"OBERON_SITE_FILE": str(site_file)}) as base:
        before = selector_script(base)
        assert before.startswith(base.replace("127.0.0.1", "localhost") + "/_oberon/assets/")
        script.write_text(script.read_text() + '\nconsole.info("edited");\n')
        deadline = time.monotonic() + 15
        after = before
        while after == before and time.monotonic() < deadline:
            time.sleep(0.2)
            after = selector_script(base)
        assert after != before, "the page still references the old build"
        assert httpx.get(after).text.endswith('console.info("edited");')
        assert httpx.get(before).status_code == 200, "the previous build stays for pages rendered before"
    assert (tmp_path / "build" / "assets" / "manifest.json").is_file(), "the build sits beside the site file"
