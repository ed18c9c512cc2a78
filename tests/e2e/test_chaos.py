"""Chaos over a real `oberon up`: each stand-in backend in turn down, slow past the budget, or failing half
its calls. Every page still answers 200 within its budget, falls back only where that backend's data is
used, and recovers once the backend is back."""

from __future__ import annotations

import itertools
import re
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.e2e.conftest import ADMIN, Running, gauge, start_server

BUDGET = 1.5  # the longest timeout_ms of the demo's components
MARGIN = 1.0
# Which components show data that comes (through a BFF) from each backend.
USERS_OF = {
    "events": {"event-page", "event-hero", "venue-info", "ticket-selector"},
    "venues": {"venue-info"},
    "ticketing": {"ticket-selector"},
    "recommendations": {"related-events", "event-list"},
}
FAULTS = {"down": {"down": True}, "slow": {"latency_ms": 2500}, "erroring": {"error_ratio": 0.5}}
fresh_event_ids = itertools.count(100)


@pytest.fixture(scope="module")
def running() -> Iterator[Running]:
    with start_server() as running:
        yield running


@pytest.fixture(scope="module")
def site(running: Running) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=running.base_url, timeout=10) as client:
        yield client


def fallbacks(html: str) -> set[str]:
    return set(
        re.findall(r'data-oberon-component="([^"]+)" data-oberon-version="[^"]+" data-oberon-outcome="fallback"', html)
    )


def timed_get(site: httpx.Client, path: str) -> httpx.Response:
    started = time.monotonic()
    response = site.get(path)
    assert time.monotonic() - started < BUDGET + MARGIN, f"{path} took too long"
    return response


@pytest.mark.parametrize("fault", FAULTS)
@pytest.mark.parametrize("backend", USERS_OF)
def test_chaos_pages_answer_and_fall_back_only_where_the_backend_is_used(
    site: httpx.Client, running: Running, backend: str, fault: str
) -> None:
    event_id = next(fresh_event_ids)
    if backend == "events":
        # The event is the page's critical data: it can only survive an outage of its source from a cache.
        assert fallbacks(site.get(f"/e/{event_id}").text) == set()
    assert site.put(f"/_backends/{backend}/_faults", json=FAULTS[fault], headers=ADMIN).status_code == 200
    try:
        for path in ("/", f"/e/{event_id}"):
            response = timed_get(site, path)
            assert response.status_code == 200, path
            assert fallbacks(response.text) <= USERS_OF[backend], path
        if backend != "events" and fault != "erroring":
            # A page not seen before has no cached copy: the backend's users really fell back.
            assert fallbacks(timed_get(site, f"/e/{next(fresh_event_ids)}").text) & USERS_OF[backend]
    finally:
        assert site.put(f"/_backends/{backend}/_faults", json={}, headers=ADMIN).status_code == 200
    assert_recovers(site, running.admin_url, backend)


def assert_recovers(site: httpx.Client, admin_url: str, backend: str) -> None:
    """Within the breaker's open period and a probe, pages are whole again and the BFFs' breaker of the backend
    is closed (as the admin listener's metrics show it)."""
    deadline = time.monotonic() + 15
    while True:
        page = site.get(f"/e/{next(fresh_event_ids)}")
        closed = gauge(admin_url, "oberon_circuit_breaker_state", upstream=backend, state="closed")
        if page.status_code == 200 and not fallbacks(page.text) and closed and all(closed):
            return
        assert time.monotonic() < deadline, f"{backend} did not recover: closed={closed}"
        time.sleep(0.5)
