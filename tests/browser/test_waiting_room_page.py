"""axe-core in real Chromium on the waiting room's pages (in line; store down).

One finding is kept on purpose: axe's `meta-refresh` (WCAG 2.2.1, timing adjustable). The page must
move a visitor on without script, which only a refresh does; it falls under 2.2.1's real-time exception
(the wait is a live event), and a refresh loses nothing — the page holds no form or input, only the
place in line, and a "Check now" link does the same at once. README, "Waiting room", says so.
"""

from __future__ import annotations

from playwright.sync_api import Page

from gateway.pages import create_environment
from tests.browser.conftest import run_axe


def test_the_queue_pages_have_no_serious_accessibility_violation_but_their_refresh(page: Page) -> None:
    template = create_environment().get_template("waiting_room.html")
    for position in (12, None):
        page.set_content(template.render(position=position, refresh=10))
        assert page.get_by_role("status").is_visible()
        assert page.get_by_role("link", name="Check now").is_visible()
        assert [violation["id"] for violation in run_axe(page)] == ["meta-refresh"]
