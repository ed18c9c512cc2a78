"""`oberon up --registry URL`: renderers follow the registry service without restarting (issue 17, item 5).

The registry is a stand-in that speaks the service's two GETs (`tests/registry_stand_in.py`), served by
its own uvicorn process on a free loopback port, whose snapshot a test changes and which a test stops.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from oberon.registry.bundle import Bundle
from oberon.runtime.supervisor import free_port
from tests.e2e.conftest import ROOT, Running, gauge, start_server
from tests.redis_server import RedisServer
from tests.registry_stand_in import TOKEN, RunningStandIn, StandInRegistry, run_stand_in

PAGE = "/e/1"
FOLLOW_SECONDS = 5.0  # the bound: a promote or rollback is served by every renderer within it
HEADING = re.compile(r'<h2 id="ticket-selector-heading">([^<]*)</h2>')
VERSION = re.compile(r'data-oberon-component="ticket-selector" data-oberon-version="([^"]+)"')


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[RunningStandIn]:
    """A registry holding every component of the demo site, each stable (as `oberon publish --all` leaves it)."""
    state = StandInRegistry(tmp_path / "registry")
    assert state.publish_site(ROOT / "components") == 1
    with run_stand_in(state) as running:
        yield running


def following(tmp_path: Path, **more: str) -> dict[str, str]:
    """The environment of an `oberon up` that follows: its token, and its disk copy and assets in the test's folder."""
    return {
        "OBERON_REGISTRY_TOKEN": TOKEN,
        "OBERON_REGISTRY_CACHE_DIR": str(tmp_path / "cache"),
        "OBERON_BUILD_DIR": str(tmp_path / "build"),
        **more,
    }


def ticket_selector(base: str) -> tuple[str, str]:
    """The ticket selector of an event page as served: its heading and its version."""
    page = httpx.get(f"{base}{PAGE}", headers={"Connection": "close"}, timeout=10)
    assert page.status_code == 200, page.text[:500]
    heading, version = HEADING.search(page.text), VERSION.search(page.text)
    assert heading is not None and version is not None, page.text[:2000]
    return heading.group(1), version.group(1)


def new_ticket_selector(tmp_path: Path, version: str, heading: str) -> Path:
    """ticket-selector as a team would change it: its template edited, its version raised."""
    folder = tmp_path / "edits" / version / "ticket-selector"
    shutil.copytree(ROOT / "components" / "ticket-selector", folder)
    manifest = folder / "component.toml"
    manifest.write_text(manifest.read_text().replace('version = "1.0.0"', f'version = "{version}"', 1))
    template = folder / "template.html"
    template.write_text(template.read_text().replace(">Tickets</h2>", f">{heading}</h2>", 1))
    return folder


def within(seconds: float, condition: Callable[[], bool], what: str) -> float:
    """How long `condition` took to hold; fails when it did not within `seconds`."""
    start = time.monotonic()
    while not condition():
        assert time.monotonic() - start < seconds, f"not within {seconds:g}s: {what}"
        time.sleep(0.05)
    return time.monotonic() - start


def registry_health(admin_url: str) -> dict[str, object]:
    found: dict[str, object] = httpx.get(f"{admin_url}/_oberon/health", timeout=10).json()["registry"]
    return found


@pytest.mark.parametrize("topology", [(), ("--split",)], ids=["embedded", "split"])
def test_a_published_version_and_its_rollback_are_served_within_5_seconds_without_a_restart(
    registry: RunningStandIn, tmp_path: Path, topology: tuple[str, ...]
) -> None:
    with start_server(*topology, "--registry", registry.url, env=following(tmp_path)) as running:
        assert ticket_selector(running.base_url) == ("Tickets", "1.0.0")
        renderer_admin = running.admin_urls()["renderer"] if topology else running.admin_url
        assert registry_health(renderer_admin)["revision"] == 1

        v110 = registry.state.publish(new_ticket_selector(tmp_path, "1.1.0", "Get your tickets"))
        assert registry.state.release(v110) == 2
        within(FOLLOW_SECONDS, lambda: ticket_selector(running.base_url) == ("Get your tickets", "1.1.0"), "1.1.0")

        health = registry_health(renderer_admin)
        assert (health["revision"], health["source"], health["last_error"]) == (2, "registry", None)
        assert gauge(renderer_admin, "oberon_registry_revision", service="renderer") == [2.0]
        assert gauge(renderer_admin, "oberon_registry_sync_failures_total", service="renderer") == [0.0]

        v100 = registry.state.publish(ROOT / "components" / "ticket-selector")  # the same bytes: the same digest
        assert registry.state.release(v100) == 3  # a rollback: stable is 1.0.0 again
        within(FOLLOW_SECONDS, lambda: ticket_selector(running.base_url) == ("Tickets", "1.0.0"), "rolled back")
        if not topology:
            assert "registry: now serving revision 3 of" in running.output()
            assert "ticket-selector 1.1.0 → 1.0.0" in running.output()


def test_a_registry_outage_changes_nothing_and_a_renderer_restarted_meanwhile_serves_its_disk_copy(
    registry: RunningStandIn, tmp_path: Path
) -> None:
    environ = following(tmp_path)
    with start_server("--registry", registry.url, env=environ) as running:
        registry.state.release(registry.state.publish(new_ticket_selector(tmp_path, "1.1.0", "Get your tickets")))
        within(FOLLOW_SECONDS, lambda: ticket_selector(running.base_url)[1] == "1.1.0", "1.1.0 served")
        registry.stop()
        deadline = time.monotonic() + 3  # three polls against a registry that is gone
        while time.monotonic() < deadline:
            assert ticket_selector(running.base_url) == ("Get your tickets", "1.1.0")
            time.sleep(0.2)
        assert gauge(running.admin_url, "oberon_registry_sync_failures_total", service="renderer")[0] >= 2
        health = registry_health(running.admin_url)
        assert health["revision"] == 2 and "ConnectError" in str(health["last_error"])

    with start_server("--registry", registry.url, env=environ) as restarted:
        assert ticket_selector(restarted.base_url) == ("Get your tickets", "1.1.0")
        health = registry_health(restarted.admin_url)
        assert (health["revision"], health["source"]) == (2, "disk")
        assert f"from the disk copy {tmp_path / 'cache' / 'snapshot.json'}" in restarted.output()

        registry.start()  # the registry is back: the renderer follows it again
        within(FOLLOW_SECONDS, lambda: registry_health(restarted.admin_url)["source"] == "registry", "following again")


def test_with_the_registry_down_and_no_disk_copy_oberon_up_refuses_to_start(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    environ = {key: value for key, value in os.environ.items() if not key.startswith("OBERON_")}
    environ.update(following(tmp_path))
    port = free_port()
    finished = subprocess.run(
        [sys.executable, "-m", "oberon", "up", "--registry", url, "--port", str(port), "--workers", "1"],
        cwd=ROOT,
        env=environ,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert finished.returncode == 2, finished.stdout + finished.stderr
    message = finished.stderr
    assert f"oberon: cannot start: the registry {url} cannot be followed" in message
    assert "Connection refused" in message
    assert f"there is no disk copy to start from at {tmp_path / 'cache' / 'snapshot.json'}" in message


def test_a_bundle_whose_digest_does_not_match_the_snapshot_is_refused_and_the_last_good_kept(
    registry: RunningStandIn, tmp_path: Path
) -> None:
    with start_server("--registry", registry.url, env=following(tmp_path)) as running:
        state = registry.state
        published = state.publish(new_ticket_selector(tmp_path, "1.1.0", "Get your tickets"))
        other = state.publish(new_ticket_selector(tmp_path / "other", "1.1.0", "Not what was published"))
        state.put_bundle(published.digest, other.data)  # the registry serves other bytes than the digest it names
        state.release(published)
        within(
            FOLLOW_SECONDS,
            lambda: "the digests differ" in str(registry_health(running.admin_url)["last_error"]),
            "refused",
        )
        assert ticket_selector(running.base_url) == ("Tickets", "1.0.0")
        assert registry_health(running.admin_url)["revision"] == 1
        assert not (tmp_path / "cache" / "components" / "ticket-selector@1.1.0").exists()

        fixed = state.publish(new_ticket_selector(tmp_path / "fixed", "1.2.0", "Fixed tickets"))
        state.release(fixed)  # the next good revision is followed as usual
        within(FOLLOW_SECONDS, lambda: ticket_selector(running.base_url)[1] == "1.2.0", "1.2.0 served")


def test_every_worker_follows_the_registry_on_its_own_sharing_one_disk_copy(
    registry: RunningStandIn, tmp_path: Path, redis_server: RedisServer
) -> None:
    environ = following(tmp_path, OBERON_SESSION_STORE=redis_server.url)
    with start_server("--workers", "2", "--registry", registry.url, env=environ) as running:
        assert "followed by each worker" in running.output()
        assert set(served(running, 20)) == {"1.0.0"}
        bundle: Bundle = registry.state.publish(new_ticket_selector(tmp_path, "1.1.0", "Get your tickets"))
        registry.state.release(bundle)
        time.sleep(FOLLOW_SECONDS)
        assert set(served(running, 40)) == {"1.1.0"}  # new connections: both workers answer
        assert sorted(path.name for path in (tmp_path / "cache" / "components").glob("ticket-selector@*")) == [
            "ticket-selector@1.0.0",
            "ticket-selector@1.1.0",
        ]


def served(running: Running, count: int) -> list[str]:
    """The ticket selector's version on `count` event pages, 8 at a time, each on a new connection."""
    with ThreadPoolExecutor(max_workers=8) as pool:
        return list(pool.map(lambda _: ticket_selector(running.base_url)[1], range(count)))
