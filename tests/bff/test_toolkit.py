"""What every team BFF shares: the request id and budget of backend calls, and JSON errors."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest
import respx
from starlette.types import ASGIApp

from bff.discovery import create_app
from oberon import Upstreams
from oberon.bff import BACKEND_TIMEOUT, BUDGET_MARGIN, DEPENDENCY_FAILED_HEADER, dependency_failed
from oberon.defaults import DEFAULT_BULKHEAD_MAX_IN_FLIGHT
from oberon.exceptions import ConfigError

ClientFor = Callable[[ASGIApp], httpx.AsyncClient]


pytestmark = pytest.mark.anyio


async def test_toolkit_passes_the_request_id_and_budget_to_backends(
    remote: Upstreams, mocked: respx.MockRouter, client_for: ClientFor
) -> None:
    route = mocked.get(host="recommendations.test", path="/featured").respond(json={"items": []})
    response = await client_for(create_app(remote)).get("/home/featured", headers={"X-Oberon-Request-Id": "req-42"})
    assert response.status_code == 200
    request = route.calls.last.request
    assert request.headers["x-oberon-request-id"] == "req-42"
    assert 0.9 < request.extensions["timeout"]["read"] <= BACKEND_TIMEOUT == 1.0


async def test_toolkit_shortens_backend_calls_to_the_budget_its_caller_passed_down(
    remote: Upstreams, mocked: respx.MockRouter, client_for: ClientFor
) -> None:
    route = mocked.get(host="recommendations.test", path="/featured").respond(json={"items": []})
    await client_for(create_app(remote)).get("/home/featured", headers={"X-Oberon-Budget-Ms": "300"})
    assert route.calls.last.request.extensions["timeout"]["read"] <= 0.3 - BUDGET_MARGIN


async def test_toolkit_health_reports_each_upstreams_breaker_and_cache(
    stand_ins: Upstreams, client_for: ClientFor
) -> None:
    client = client_for(create_app(stand_ins))
    await client.get("/home/featured")
    await client.get("/home/featured")
    body = (await client.get("/_oberon/health")).json()
    assert body["status"] == "ok"
    recommendations = body["upstreams"]["recommendations"]
    assert recommendations["breaker"] == "closed"
    assert recommendations["endpoints"] == {"/featured": "closed"}
    assert recommendations["bulkhead"] == {"in_flight": 0, "max": DEFAULT_BULKHEAD_MAX_IN_FLIGHT}
    assert recommendations["cache"] == {"entries": 1, "hits": 1, "misses": 1, "stale_served": 0}


def test_toolkit_refuses_to_start_without_a_declared_upstream() -> None:
    with pytest.raises(ConfigError, match="needs upstream.s. recommendations; configured: events"):
        create_app(Upstreams.create({"events": "http://events.test"}))


async def test_toolkit_sends_no_request_id_when_none_came_in(
    remote: Upstreams, mocked: respx.MockRouter, client_for: ClientFor
) -> None:
    route = mocked.get(host="recommendations.test", path="/featured").respond(json={"items": []})
    await client_for(create_app(remote)).get("/home/featured")
    assert "x-oberon-request-id" not in route.calls.last.request.headers


@pytest.mark.parametrize(("method", "path", "status_code"), [("GET", "/nowhere", 404), ("POST", "/home/featured", 405)])
async def test_toolkit_answers_routing_errors_as_json(
    stand_ins: Upstreams, client_for: ClientFor, method: str, path: str, status_code: int
) -> None:
    response = await client_for(create_app(stand_ins)).request(method, path)
    assert response.status_code == status_code
    assert response.headers["cache-control"] == "no-store"
    assert set(response.json()) == {"error"}


async def test_toolkit_answers_a_json_list_where_an_object_belongs_with_502(
    remote: Upstreams, mocked: respx.MockRouter, client_for: ClientFor
) -> None:
    mocked.get(host="recommendations.test", path="/featured").respond(json=[1, 2, 3])
    response = await client_for(create_app(remote)).get("/home/featured")
    assert response.status_code == 502
    assert response.json() == {"error": "upstream recommendations failed"}


def test_toolkit_answers_a_dependencys_failure_with_the_documented_marker() -> None:
    response = dependency_failed("venues", 504)
    assert response.status_code == 504
    assert response.headers[DEPENDENCY_FAILED_HEADER] == "venues"
    assert DEPENDENCY_FAILED_HEADER == "X-Oberon-Dependency-Failed"
    assert response.headers["cache-control"] == "no-store"
    with pytest.raises(ValueError, match="502, 503 or 504"):
        dependency_failed("venues", 500)  # a 500 is the BFF's own failure
