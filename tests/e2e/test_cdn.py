"""`oberon up --cdn`: the whole site behind a real Varnish, as a browser and an operator see it."""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import Running, internal_spellings, raw_request, start_server

Server = Callable[..., AbstractContextManager[str]]
ADMIN_TOKEN = "cdn-test-admin-token-of-32-characters-or-more"


@pytest.fixture(scope="module")
def running() -> Iterator[Running]:
    with start_server("--cdn", env={"OBERON_ADMIN_TOKEN": ADMIN_TOKEN}) as running:
        yield running


@pytest.fixture(scope="module")
def site(running: Running) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=running.base_url, timeout=10) as client:
        yield client


def sign_in(site: httpx.Client, user: str) -> dict[str, str]:
    """A session for `user`, as the Cookie header to send (the shared client keeps no cookie of its own)."""
    form = {"username": user, "password": f"{user}-tickets", "next": "/"}
    origin = f"{site.base_url.scheme}://{site.base_url.netloc.decode()}"
    response = httpx.post(f"{origin}/auth/sign-in", data=form, headers={"Origin": origin})
    assert response.status_code == 303, response.text
    return {"Cookie": f"oberon_session={response.cookies['oberon_session']}"}


def test_cdn_second_request_for_a_public_page_is_a_hit(site: httpx.Client) -> None:
    first, second = site.get("/"), site.get("/")
    assert (first.headers["x-cache"], second.headers["x-cache"]) == ("MISS", "HIT")
    assert second.headers["x-oberon-request-id"] == first.headers["x-oberon-request-id"]  # one render, twice served


def test_cdn_shares_the_event_page_shell_and_fills_the_cart_island_per_visit(site: httpx.Client) -> None:
    first, second = site.get("/e/31"), site.get("/e/31")
    assert second.headers["x-cache"] == "HIT"
    assert first.headers["cache-control"].startswith("public,")
    for response in (first, second):
        assert "<esi:include" not in response.text
        assert 'data-oberon-component="cart-summary"' in response.text
        assert 'data-oberon-island="cart-summary"' in response.text
    assert "surrogate-key" not in second.headers


def test_cdn_never_serves_a_signed_in_request_from_the_cache_nor_stores_it(site: httpx.Client) -> None:
    session = sign_in(site, "alice")
    site.get("/e/32")
    signed_in = site.get("/e/32", headers=session)
    assert signed_in.headers["x-cache"] == "PASS"
    account = site.get("/account", headers=session)
    assert account.status_code == 200 and account.headers["x-cache"] == "PASS"
    name = re.search(r"Alice[^<]*", account.text)
    assert name is not None
    for path in ("/e/32", "/", "/account"):
        anonymous = site.get(path)
        assert "Alice" not in anonymous.text, path


def test_cdn_purges_exactly_the_pages_that_carry_a_surrogate_key(site: httpx.Client) -> None:
    for path in ("/e/41", "/e/42"):
        site.get(path)
        assert site.get(path).headers["x-cache"] == "HIT"
    assert site.request("PURGE", "/", headers={"Surrogate-Key": "event-41"}).status_code == 200
    assert site.get("/e/41").headers["x-cache"] == "MISS"
    assert site.get("/e/42").headers["x-cache"] == "HIT"


def test_cdn_ignores_an_attackers_forwarded_host(site: httpx.Client) -> None:
    poisoned = site.get("/e/43", headers={"X-Forwarded-Host": "evil.example", "X-Original-URL": "/account"})
    assert "evil.example" not in poisoned.text
    assert 'rel="canonical" href="http://127.0.0.1' in poisoned.text
    assert "evil.example" not in site.get("/e/43").text


def test_cdn_does_not_cache_a_private_path_dressed_as_a_stylesheet(site: httpx.Client) -> None:
    for _ in range(2):
        response = site.get("/account/anything.css", headers={"Accept": "text/html"})
        assert response.headers["x-cache"] != "HIT"
        assert response.status_code in (303, 404)
    session = sign_in(site, "bob")
    own = site.get("/account/anything.css", headers=session)
    assert own.headers["x-cache"] == "PASS"
    assert "Bob" not in site.get("/account/anything.css").text


def test_cdn_keeps_health_out_of_the_cache(site: httpx.Client) -> None:
    site.get("/_oberon/health")
    health = site.get("/_oberon/health")
    assert health.headers["x-cache"] != "HIT" and health.json() == {"status": "ok"}


@pytest.mark.parametrize("path", [*internal_spellings(), "/\\metrics", "/_oberon/health/../registry"])
def test_cdn_answers_404_for_every_spelling_of_an_internal_path(running: Running, path: str) -> None:
    status, body = raw_request(running.base_url, "GET", path)
    assert status == 404, (path, body[:200])
    assert b"oberon_" not in body and b"upstreams" not in body and b'"mode"' not in body


def test_cdn_topology_keeps_the_internals_on_the_admin_listener(running: Running) -> None:
    assert "oberon_http_request_duration_seconds" in httpx.get(f"{running.admin_url}/metrics", timeout=10).text
    assert httpx.get(f"{running.admin_url}/_oberon/degradation", timeout=10).json()["mode"] in ("normal", "degraded")


def renders(admin_url: str) -> float:
    """Pages the renderer has rendered so far (its request counter, on the admin listener)."""
    text = httpx.get(f"{admin_url}/metrics", timeout=10).text
    total = 0.0
    for line in text.splitlines():
        if line.startswith("oberon_http_request_duration_seconds_count{") and 'service="renderer"' in line:
            if re.search(r'route="/(e/\{event_id:int\})?"', line):
                total += float(line.rsplit(" ", 1)[1])
    return total


def load(site: httpx.Client, seconds: float) -> int:
    """Browse the home page and three event pages for `seconds`; every response must be a page."""
    deadline = time.monotonic() + seconds
    count = 0
    while time.monotonic() < deadline:
        for path in ("/", "/e/51", "/e/52", "/e/53"):
            assert site.get(path).status_code == 200, path
            count += 1
        time.sleep(0.05)
    return count


def test_cdn_degraded_mode_takes_load_off_the_origin_while_backends_are_down() -> None:
    env = {
        "OBERON_ADMIN_TOKEN": ADMIN_TOKEN,
        "OBERON_CACHE_SHARED_MAX_AGE": "1",
        "OBERON_CACHE_STALE_WHILE_REVALIDATE": "0",
    }
    with start_server("--cdn", env=env) as running, httpx.Client(base_url=running.base_url, timeout=10) as site:
        admin = running.admin_url
        load(site, 1)  # warm: every page and its data once
        before = renders(admin)
        normal_requests = load(site, 4)
        normal = renders(admin) - before

        auth = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        switched = httpx.put(
            f"{admin}/_oberon/degradation", json={"mode": "degraded", "reason": "test"}, headers=auth, timeout=10
        )
        assert switched.status_code == 200 and switched.json()["mode"] == "degraded"
        for backend in ("events", "venues", "ticketing", "recommendations"):
            site.put(f"/_backends/{backend}/_faults", json={"down": True}, headers=auth)
        time.sleep(1.1)  # let the pages cached for 1 s in normal mode expire
        before = renders(admin)
        degraded_requests = load(site, 4)
        degraded = renders(admin) - before
        page = site.get("/e/51")
        assert page.headers["x-oberon-mode"] == "degraded"
        assert "s-maxage=300" in page.headers["cache-control"]

    ratio = degraded / normal
    print(
        f"\norigin renders over 4 s: normal {normal:.0f} for {normal_requests} requests, "
        f"degraded with backends down {degraded:.0f} for {degraded_requests} requests: ratio {ratio:.2f}"
    )
    assert normal >= 8  # pages cached for 1 s: the origin renders each page about once a second
    assert ratio < 0.5


def renderer_of(base: str) -> int:
    """The PID of the renderer process of the split topology whose entrance is `base` (not another one's)."""
    port = base.rsplit(":", 1)[1]
    candidates = subprocess.run(
        ["pgrep", "-f", "oberon --site .* serve renderer "], capture_output=True, text=True, check=False
    ).stdout.split()
    for pid in candidates:
        status = Path(f"/proc/{pid}/status").read_text()
        parent = next(line.split()[1] for line in status.splitlines() if line.startswith("PPid:"))
        argv = Path(f"/proc/{parent}/cmdline").read_bytes().split(b"\0")
        if b"--port" in argv and argv[argv.index(b"--port") + 1] == port.encode():
            return int(pid)
    raise AssertionError(f"no renderer process under the topology at {base}")


def test_cdn_serves_stale_within_grace_when_the_renderer_is_killed(server: Server) -> None:
    with server("--cdn", "--split", env={"OBERON_CACHE_SHARED_MAX_AGE": "1"}) as base:
        with httpx.Client(base_url=base, timeout=10) as site:
            assert site.get("/e/61").status_code == 200
            renderer = renderer_of(base)
            subprocess.run(["kill", str(renderer)], check=True)
            time.sleep(1.5)  # past s-maxage: only grace (stale-if-error) can answer now
            response = site.get("/e/61")
            assert response.status_code == 200
            assert response.headers["x-cache"].startswith("HIT")
            assert "STALE" in response.headers["x-cache"] or int(response.headers["age"]) >= 1
            assert site.get("/e/62").status_code in (502, 503)  # nothing cached for a page never seen
