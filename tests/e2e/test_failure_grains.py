"""A non-critical dependency failing takes no critical component down, over a real `oberon up` (and `--split`).

The scenario of issue 16: `OBERON_FAULTS="venues=error:0.5"`, event pages from 16 clients at once. The venues
backend is read only by `venue-info` (non-critical), through the events BFF's `/events/{event_id}/venue`;
the critical `event-hero` reads `/events/{event_id}` of the same BFF. With one breaker per BFF, the venue's
failures opened it and refused the hero: a quarter of the pages answered 503.
"""

from __future__ import annotations

import itertools
import re
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.e2e.conftest import gauge, start_server

PAGES = 120
CLIENTS = 16
FALLBACK = re.compile(r'data-oberon-component="([^"]+)" data-oberon-version="[^"]+" data-oberon-outcome="fallback"')
RENDERED = re.compile(r'data-oberon-component="([^"]+)" data-oberon-version="[^"]+" data-oberon-outcome="ok"')
event_ids = itertools.count(200)  # events no other test has shown: nothing of theirs is cached yet


@pytest.mark.parametrize("topology", [(), ("--split",)], ids=["embedded", "split"])
def test_venues_failing_half_the_time_leave_every_event_page_whole_but_its_venue(topology: tuple[str, ...]) -> None:
    env = {"OBERON_FAULTS": "venues=error:0.5", "OBERON_BULKHEAD_MAX_IN_FLIGHT": "64"}
    with start_server(*topology, env=env) as running:
        paths = [f"/e/{next(event_ids)}" for _ in range(PAGES)]
        with httpx.Client(base_url=running.base_url, timeout=10) as site, ThreadPoolExecutor(CLIENTS) as pool:
            pages = list(pool.map(site.get, paths))
        # The events BFF's clients: in the process's admin listener, or (split) in the BFF's own.
        admin_url = running.admin_urls().get("bff:events", running.admin_url)
        bounds = gauge(admin_url, "oberon_bulkhead_max_in_flight", upstream="venues")
    statuses = [page.status_code for page in pages]
    assert statuses == [200] * PAGES, f"{PAGES - statuses.count(200)} of {PAGES} pages failed: {set(statuses)}"
    fell_back = [set(FALLBACK.findall(page.text)) for page in pages]
    assert all(names <= {"venue-info"} for names in fell_back), "only the venue's component may fall back"
    assert all("event-hero" in RENDERED.findall(page.text) for page in pages)
    assert any(fell_back), "the venues backend never failed: the scenario did not happen"
    # The bulkhead's bound is a setting, and reaches every process's clients (here the events BFF's).
    assert bounds == [64]
