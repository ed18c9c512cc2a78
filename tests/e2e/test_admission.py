"""Admission control over a real `oberon up` (and `--split`): beyond the entrance's limit, a stale copy or a fast 503.

The limit is pinned at 2 (`OBERON_ADMISSION_*_LIMIT`) and the events backend made slow through its fault
endpoint, so two event pages hold both places for most of a second. Meanwhile the home page (anonymous
and public; an event page is private: it shows the cart) comes back as the copy the entrance answered
before, a page never seen gets 503 with `Retry-After`, and `/_oberon/health` answers at once: it is
never counted against the limit nor shed.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.e2e.conftest import ADMIN, gauge, start_server

LIMIT = 2
SLOW_MS = 800  # within the event page's budgets: the held pages end well
ENV = {f"OBERON_ADMISSION_{bound}_LIMIT": str(LIMIT) for bound in ("MIN", "INITIAL", "MAX")}


@pytest.mark.parametrize("topology", [(), ("--split",)], ids=["embedded", "split"])
def test_entrance_beyond_its_limit_serves_a_stale_copy_or_a_fast_503_while_health_answers(
    topology: tuple[str, ...],
) -> None:
    with start_server(*topology, env=ENV) as running, httpx.Client(base_url=running.base_url, timeout=10) as site:
        seen = site.get("/")
        assert seen.status_code == 200 and seen.headers["Cache-Control"].startswith("public")
        assert site.put("/_backends/events/_faults", json={"latency_ms": SLOW_MS}, headers=ADMIN).status_code == 200
        try:
            with ThreadPoolExecutor(LIMIT) as pool:
                held = [pool.submit(site.get, f"/e/{event_id}") for event_id in (301, 302)]
                wait_for_in_flight(running.admin_url, LIMIT)
                stale = site.get("/")
                rejected = site.get("/e/303", headers={"Accept": "text/html"})
                started = time.monotonic()
                health = site.get("/_oberon/health")
                health_seconds = time.monotonic() - started
                in_flight_during = gauge(running.admin_url, "oberon_admission_in_flight", service="gateway")
                assert [future.result().status_code for future in held] == [200, 200]
        finally:
            assert site.put("/_backends/events/_faults", json={}, headers=ADMIN).status_code == 200
        shed = {
            outcome: sum(gauge(running.admin_url, "oberon_admission_shed_total", service="gateway", outcome=outcome))
            for outcome in ("stale", "rejected")
        }
    assert in_flight_during == [LIMIT]  # the probes were answered while both places were taken
    assert stale.status_code == 200
    assert stale.headers["X-Oberon-Stale"] == "admission"
    assert "s-maxage=300" in stale.headers["Cache-Control"]  # as degraded mode would keep it
    assert stale.text == seen.text
    assert rejected.status_code == 503
    assert rejected.headers["Retry-After"] == "1"
    assert "We are very busy right now" in rejected.text
    assert health.status_code == 200
    assert health_seconds < SLOW_MS / 1000  # not queued behind the held pages (they take longer)
    assert shed == {"stale": 1, "rejected": 1}


def wait_for_in_flight(admin_url: str, count: int) -> None:
    """Until the entrance has `count` requests in flight, as its admin listener shows."""
    deadline = time.monotonic() + 5
    while gauge(admin_url, "oberon_admission_in_flight", service="gateway") != [count]:
        assert time.monotonic() < deadline, "the held pages never reached the entrance"
        time.sleep(0.01)
