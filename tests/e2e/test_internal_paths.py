"""The internals stay off the public entrance of a real `oberon up`, embedded and split, however the path is spelled.

Requests go through `http.client`, which sends the path exactly as written (httpx would normalise
`/x/../metrics` before sending it). The CDN topology is covered in tests/e2e/test_cdn.py.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import ADMIN, Running, internal_spellings, raw_request, start_server


@pytest.fixture(scope="module", params=["embedded", "split"])
def running(request: pytest.FixtureRequest) -> Iterator[Running]:
    with start_server(*(["--split"] if request.param == "split" else [])) as running:
        yield running


@pytest.mark.parametrize("path", internal_spellings())
def test_the_entrance_answers_404_for_every_spelling_of_an_internal_path(running: Running, path: str) -> None:
    status, body = raw_request(running.base_url, "GET", path)
    assert status == 404, (path, body[:200])
    assert b"oberon_" not in body and b"upstreams" not in body and b'"mode"' not in body


def test_the_degradation_switch_cannot_be_reached_through_the_entrance_even_with_the_token(running: Running) -> None:
    for path in ("/_oberon/degradation", "//_oberon/degradation", "/_oberon/%64egradation"):
        status, _ = raw_request(running.base_url, "PUT", path, body=b'{"mode": "degraded"}')
        assert status in (404, 405), path
    renderer = running.admin_urls().get("renderer", running.admin_url)  # split: the renderer's own admin listener
    assert httpx.get(f"{renderer}/_oberon/degradation", timeout=10).json()["mode"] == "normal"


def test_prometheus_targets_are_the_admin_listeners(running: Running) -> None:
    found = re.search(r"^oberon: prometheus targets in (\S+)", running.output(), re.M)
    assert found is not None
    targets = {target for group in json.loads(Path(found.group(1)).read_text()) for target in group["targets"]}
    admins = set(running.admin_urls().values()) or {running.admin_url}
    assert targets == {url.removeprefix("http://") for url in admins}


def test_public_health_says_only_ok_and_the_admin_listener_says_the_rest(running: Running) -> None:
    public = httpx.get(f"{running.base_url}/_oberon/health", timeout=10)
    assert public.status_code == 200 and public.json() == {"status": "ok"}
    admin = httpx.Client(base_url=running.admin_url, timeout=10)
    with admin:
        health = admin.get("/_oberon/health").json()
        assert health["service"] == "gateway" and health["upstreams"]["renderer"]["reachable"] is True
        assert "oberon_http_request_duration_seconds" in admin.get("/metrics").text
        switched = admin.put("/_oberon/degradation", json={"mode": "degraded"}, headers=ADMIN)
        refused = admin.put("/_oberon/degradation", json={"mode": "degraded"})
        restored = admin.put("/_oberon/degradation", json={"mode": "auto"}, headers=ADMIN)
    if "--split" in running.process.args:  # type: ignore[operator]
        # The gateway's admin listener has no switch: the renderer's has, on its own admin port.
        assert switched.status_code == 404
        renderer = running.admin_urls()["renderer"]
        assert httpx.get(f"{renderer}/_oberon/registry", timeout=10).status_code == 200
        assert httpx.put(f"{renderer}/_oberon/degradation", json={"mode": "normal"}).status_code == 401
    else:
        assert switched.status_code == 200 and switched.json()["mode"] == "degraded"
        assert refused.status_code == 401  # the admin token is still required on the admin listener
        assert restored.json()["mode"] == "normal"
