"""Real headless Chromium (Debian's, never a downloaded build) driven by Playwright, against `oberon up`.

The page is served on `127.0.0.1:PORT` and its assets on `localhost:PORT`: two host names, so
the browser keeps their cookies apart, as it would for two domains in production.
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, Request, Response, sync_playwright

from tests.e2e.conftest import ROOT, run_server

Server = Callable[..., contextlib.AbstractContextManager[str]]

# What ENVIRONMENT.md found to work with Debian's chromium: no sandbox (root), no GPU, nothing phoning home.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
AXE = ROOT / "node_modules" / "axe-core" / "axe.min.js"
DEMO_USER = ("alice", "alice-tickets")


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """One headless Chromium per module; each test gets its own context (cookies, cache) and page.

    Per module, not per session: while Playwright's sync API runs, its event loop counts as
    running in this thread, and the async tests of later modules could not start theirs.
    """
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.fail("Debian's chromium is missing: apt-get install chromium (scripts/system-packages)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context()
    try:
        yield context.new_page()
    finally:
        context.close()


@pytest.fixture(scope="session")
def server() -> Server:
    return run_server


@pytest.fixture(scope="module")
def site(server: Server) -> Iterator[str]:
    """The demo site, running for the module's tests; its base URL."""
    with server() as base:
        yield base


def asset_base(base: str) -> str:
    """The asset origin `oberon up` uses for a site at `base`: the other loopback host name, same port."""
    return base.replace("127.0.0.1", "localhost")


class Watcher:
    """Everything that went wrong while a page loaded: console errors, uncaught errors, failed requests."""

    def __init__(self, page: Page) -> None:
        self.console_errors: list[str] = []
        self.page_errors: list[str] = []
        self.failed: list[str] = []
        self.requests: list[Request] = []
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.page_errors.append(str(error)))
        page.on("requestfailed", lambda request: self.failed.append(f"{request.url}: {request.failure}"))
        page.on("response", self._response)
        page.on("request", lambda request: self.requests.append(request))

    def _console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.console_errors.append(message.text)

    def _response(self, response: Response) -> None:
        if response.status >= 400:
            self.failed.append(f"{response.url}: {response.status}")

    def assert_clean(self) -> None:
        assert self.console_errors == []
        assert self.page_errors == []
        assert self.failed == []


@pytest.fixture
def watch() -> Callable[[Page], Watcher]:
    return Watcher


def sign_in(page: Page, base: str, user: tuple[str, str] = DEMO_USER) -> None:
    """Sign in through the gateway's form, as a person would; the session cookie is then set on `base`'s host."""
    page.goto(f"{base}/auth/sign-in?next=/account")
    page.fill("#username", user[0])
    page.fill("#password", user[1])
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/account")


def run_axe(page: Page) -> list[dict[str, Any]]:
    """The serious and critical violations axe-core finds on the page as it is now."""
    if not AXE.is_file():
        pytest.fail(f"{AXE} is missing: run `npm ci` (make setup does)")
    # Evaluated through the DevTools protocol, which the page's CSP (no inline scripts) does not govern.
    page.evaluate(AXE.read_text(encoding="utf-8") + "\n;undefined")
    result: dict[str, Any] = page.evaluate("async () => await axe.run(document, {resultTypes: ['violations']})")
    assert result["testEngine"]["name"] == "axe-core" and result["url"] == page.url
    return [
        {"id": violation["id"], "impact": violation["impact"], "nodes": [node["target"] for node in violation["nodes"]]}
        for violation in result["violations"]
        if violation["impact"] in ("serious", "critical")
    ]


def demo_site_copy(tmp: Path) -> Path:
    """A writable copy of the demo's components with the demo's services: a site file to change in a test."""
    shutil.copytree(ROOT / "components", tmp / "components")
    site_file = tmp / "oberon.toml"
    text = (ROOT / "oberon.toml").read_text()
    site_file.write_text(
        text.replace('routes = "gateway/routes.toml"', f'routes = "{ROOT / "gateway" / "routes.toml"}"')
    )
    return site_file
