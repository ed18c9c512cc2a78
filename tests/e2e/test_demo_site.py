"""The demo site as users see it: `oberon up` as a real process on a loopback port."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager

import httpx
import pytest

from tests.e2e.conftest import ADMIN, Running, start_server

Server = Callable[..., AbstractContextManager[str]]

EVENT_PAGE_COMPONENTS = {
    "event-page",
    "site-header",
    "event-hero",
    "ticket-selector",
    "venue-info",
    "cart-summary",
    "related-events",
    "site-footer",
}


@pytest.fixture(scope="module")
def running() -> Iterator[Running]:
    with start_server() as running:
        yield running


@pytest.fixture(scope="module")
def site(running: Running) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=running.base_url, timeout=10) as client:
        yield client


def outcomes(html: str) -> dict[str, str]:
    found = re.findall(r'data-oberon-component="([^"]+)" data-oberon-version="[^"]+" data-oberon-outcome="(\w+)"', html)
    return dict(found)


def page_state(html: str) -> dict[str, object]:
    found = re.search(r'<script type="application/json" id="oberon-state">(.*?)</script>', html, re.S)
    assert found is not None
    return json.loads(found.group(1))  # type: ignore[no-any-return]


def set_fault(site: httpx.Client, backend: str, fault: dict[str, object]) -> None:
    response = site.put(f"/_backends/{backend}/_faults", json=fault, headers=ADMIN)
    assert response.status_code == 200, response.text


def test_demo_home_page_lists_events(site: httpx.Client) -> None:
    response = site.get("/")
    assert response.status_code == 200
    assert set(outcomes(response.text).values()) == {"ok"}
    assert {"home-page", "site-header", "event-list", "site-footer"} <= set(outcomes(response.text))
    assert len(re.findall(r'href="/e/\d+"', response.text)) >= 10
    assert response.headers["cache-control"].startswith("public, max-age=0, s-maxage=30")
    assert response.headers["x-oberon-mode"] == "normal"
    assert response.headers["x-oberon-request-id"]


def test_demo_event_page_composes_every_component(site: httpx.Client) -> None:
    response = site.get("/e/1")
    assert response.status_code == 200
    found = outcomes(response.text)
    assert set(found) == EVENT_PAGE_COMPONENTS - {"cart-summary"}  # the visitor's cart: an island, fetched apart
    assert 'data-oberon-island-src="/_islands/cart-summary?version=%3D%3D1.0.0&amp;event_id=1"' in response.text
    assert set(found.values()) == {"ok"}
    state = page_state(response.text)
    assert state["failed"] == []
    event = state["state"]["event"]  # type: ignore[index]
    assert "<h1" in response.text and event["name"] in response.text
    assert f"<title>{event['name']} · Oberon Tickets</title>" in response.text
    assert response.text.count('rel="stylesheet"') == len(
        set(re.findall(r'rel="stylesheet" href="([^"]+)"', response.text))
    )


def test_demo_event_page_assets_are_served_from_the_asset_origin(site: httpx.Client) -> None:
    html = site.get("/e/1").text
    asset_origin = str(site.base_url).rstrip("/").replace("127.0.0.1", "localhost")
    urls = re.findall(r'(?:href|src)="(http://[^"]+/_oberon/assets/[^"]+)"', html)
    assert len(urls) == len(set(urls)) >= 10
    for url in urls:
        assert url.startswith(asset_origin + "/_oberon/assets/")
        response = httpx.get(url, headers={"Accept-Encoding": "gzip"})
        assert response.status_code == 200, url
        assert response.headers["cache-control"] == "public, max-age=31536000, immutable"
        assert response.headers["access-control-allow-origin"] == str(site.base_url).rstrip("/")
        assert "set-cookie" not in response.headers


def test_demo_escapes_a_hostile_event_name(site: httpx.Client) -> None:
    response = site.get("/e/13")
    assert response.status_code == 200
    assert "<script>alert(1)</script>" not in response.text
    assert "&lt;/script&gt;&lt;script&gt;alert(1)&lt;/script&gt;" in response.text
    script = response.text.split('id="oberon-state">')[1].split("</script>")[0]
    assert "\u2028" not in script
    assert "&amp;lt;" not in response.text  # escaped once, not twice
    assert "alert(1)" in page_state(response.text)["state"]["event"]["name"]  # type: ignore[index]


@pytest.mark.parametrize("path", ["/nowhere", "/e/abc", "/e/99999", "/e/1/extra"])
def test_demo_unknown_pages_are_a_rendered_404(site: httpx.Client, path: str) -> None:
    response = site.get(path)
    assert response.status_code == 404
    assert "Page not found" in response.text
    assert "Traceback" not in response.text


def test_demo_registry_lists_components_of_several_teams_on_the_admin_listener(running: Running) -> None:
    components = httpx.get(f"{running.admin_url}/_oberon/registry", timeout=10).json()
    assert len(components) >= 9
    assert len({component["owner"] for component in components}) >= 3
    assert {component["name"] for component in components if component["kind"] == "app"} == {
        "home-page",
        "event-page",
        "account-page",
        "category-page",
        "search-page",
    }


def test_demo_previews_one_component(site: httpx.Client) -> None:
    response = site.get("/_components/event-hero", params={"event_id": 2})
    assert response.status_code == 200
    assert outcomes(response.text) == {"event-hero": "ok"}


def test_demo_event_page_survives_recommendations_down_at_run_time(site: httpx.Client) -> None:
    # An event not shown before: the BFF's cache holds no copy of its related events.
    set_fault(site, "recommendations", {"down": True})
    try:
        response = site.get("/e/5")
        assert response.status_code == 200
        found = outcomes(response.text)
        assert found.pop("related-events") == "fallback"
        assert set(found.values()) == {"ok"}
        assert "related-events-fallback" in response.text
        # The visitor's cart is an island the browser fetches: the page stays public, for a shorter while.
        assert response.headers["cache-control"].startswith("public, max-age=0, s-maxage=")
    finally:
        set_fault(site, "recommendations", {})
    assert outcomes(site.get("/e/5").text)["related-events"] == "ok"


def test_demo_event_page_falls_back_when_a_backend_is_slower_than_the_budget(site: httpx.Client) -> None:
    set_fault(site, "venues", {"latency_ms": 3000})
    try:
        response = site.get("/e/11")  # not shown before, so no cache holds its venue
        assert response.status_code == 200
        assert outcomes(response.text)["venue-info"] == "fallback"
        assert response.elapsed.total_seconds() < 2.5
    finally:
        set_fault(site, "venues", {})


def test_demo_event_page_is_503_when_its_critical_event_data_fails(site: httpx.Client) -> None:
    set_fault(site, "events", {"error_ratio": 1.0})
    try:
        response = site.get("/e/9")  # not shown before, so no cache holds the event
        assert response.status_code == 503
        assert response.headers["cache-control"] == "no-store"
        assert site.get("/").status_code == 200  # the home page does not need the events service
    finally:
        set_fault(site, "events", {})


def test_demo_starts_with_faults_from_the_environment(server: Server) -> None:
    with server(env={"OBERON_FAULTS": "recommendations=down"}) as base:
        response = httpx.get(f"{base}/e/7", timeout=10)
        assert response.status_code == 200
        found = outcomes(response.text)
        assert found.pop("related-events") == "fallback"
        assert set(found.values()) == {"ok"}
        assert httpx.get(f"{base}/_backends/recommendations/_faults", headers=ADMIN).json()["down"] is True


def test_demo_refuses_bad_faults_at_start(server: Server) -> None:
    with pytest.raises(pytest.fail.Exception, match="OBERON_FAULTS"):
        with server(env={"OBERON_FAULTS": "recommendations=sideways"}):
            pass
