"""`oberon up --split`: every service its own process on its own loopback port, watched and stopped by PID."""

from __future__ import annotations

import os
import re
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import Running, start_server

SERVICES = {
    "gateway",
    "renderer",
    "bff:discovery",
    "bff:events",
    "bff:checkout",
    "bff:account",
    "backend:events",
    "backend:venues",
    "backend:ticketing",
    "backend:recommendations",
    "backend:users",
}
STOP_TIMEOUT = 15.0


@pytest.fixture
def split() -> Iterator[Running]:
    """A split topology of its own: these tests kill parts of it."""
    with start_server("--split") as running:
        yield running


def outcomes(html: str) -> dict[str, str]:
    found = re.findall(r'data-oberon-component="([^"]+)" data-oberon-version="[^"]+" data-oberon-outcome="(\w+)"', html)
    return dict(found)


def alive(pid: int) -> bool:
    """Running (a zombie that whoever adopted it has not reaped yet does not count)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def wait_until(condition: object, timeout: float = STOP_TIMEOUT) -> bool:
    assert callable(condition)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return False


def test_split_prints_a_map_of_services_each_on_its_own_loopback_port(split: Running) -> None:
    services = split.services()
    assert set(services) == SERVICES
    ports = {int(url.rsplit(":", 1)[1]) for url, _ in services.values()}
    assert len(ports) == len(SERVICES)
    assert all(url.startswith("http://127.0.0.1:") for url, _ in services.values())
    assert services["gateway"][0] == split.base_url
    assert len({pid for _, pid in services.values()} | {split.process.pid}) == len(SERVICES) + 1
    # Each service answers on its own port, not only through the gateway; its internals on its admin port alone.
    assert httpx.get(f"{services['renderer'][0]}/_oberon/health", timeout=5).json() == {"status": "ok"}
    admins = split.admin_urls()
    assert set(admins) == SERVICES and len({*admins.values(), *(url for url, _ in services.values())}) == 2 * len(
        SERVICES
    )
    assert httpx.get(f"{admins['renderer']}/_oberon/health", timeout=5).json()["service"] == "renderer"
    assert httpx.get(f"{admins['renderer']}/_oberon/registry", timeout=5).status_code == 200
    assert httpx.get(f"{services['backend:users'][0]}/health", timeout=5).json()["service"] == "users"


def test_split_killing_a_bff_gives_fallbacks_and_a_clean_502(split: Running) -> None:
    _, pid = split.services()["bff:discovery"]
    # A first page warms every process and pool, so no budget is missed for a cold start on a busy machine.
    assert httpx.get(f"{split.base_url}/e/41", timeout=10).status_code == 200
    os.kill(pid, signal.SIGKILL)
    assert wait_until(lambda: "bff:discovery (pid" in split.output() and "exited" in split.output())
    with httpx.Client(base_url=split.base_url, timeout=10) as site:
        page = site.get("/e/42")  # not shown before: no cache holds its related events
        assert page.status_code == 200
        found = outcomes(page.text)
        assert found.pop("related-events") == "fallback"
        assert set(found.values()) == {"ok"}
        api = site.get("/bff/discovery/home/featured")
        assert api.status_code == 502
        assert api.json()["upstream"] == "bff:discovery"
        assert "Traceback" not in api.text
        html = site.get("/bff/discovery/home/featured", headers={"Accept": "text/html"})
        assert html.status_code == 502 and "bff:discovery" in html.text and "Traceback" not in html.text
        assert site.get("/_oberon/health").json() == {"status": "ok"}  # pages still render: ready
        health = httpx.get(f"{split.admin_url}/_oberon/health", timeout=10).json()
        assert health["status"] == "degraded"
        assert health["upstreams"]["bff:discovery"]["reachable"] is False
        assert site.get("/e/1").status_code == 200  # the gateway stays up
    assert "bff:discovery (pid" in split.output() and "the gateway answers 502 for its routes" in split.output()
    assert split.process.poll() is None


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_split_stops_every_child_on_a_signal(split: Running, signum: int) -> None:
    pids = [pid for _, pid in split.services().values()]
    assert all(alive(pid) for pid in pids)
    split.process.send_signal(signum)
    assert split.process.wait(timeout=STOP_TIMEOUT) == 0
    assert wait_until(lambda: not any(alive(pid) for pid in pids))
    assert "stopped 11 processes" in split.output()


def test_split_children_stop_when_the_supervisor_is_killed(split: Running) -> None:
    pids = [pid for _, pid in split.services().values()]
    split.process.kill()
    split.process.wait(timeout=STOP_TIMEOUT)
    assert wait_until(lambda: not any(alive(pid) for pid in pids)), "children outlived their supervisor"


def test_split_stops_when_the_gateway_dies(split: Running) -> None:
    services = split.services()
    os.kill(services["gateway"][1], signal.SIGKILL)
    assert split.process.wait(timeout=STOP_TIMEOUT) == 1
    assert wait_until(lambda: not any(alive(pid) for _, pid in services.values()))
    assert "gateway (pid" in split.output()


def environment_names(pid: int) -> set[str]:
    """The names in a process's environment, as the kernel holds them."""
    entries = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return {entry.split(b"=", 1)[0].decode() for entry in entries if entry}


def test_split_gives_each_process_only_the_secrets_it_uses() -> None:
    # A team's template runs in the renderer: the session secret that signs every session must not be there.
    secrets = {
        "OBERON_SESSION_SECRET": "a-real-session-secret-of-32-characters-or-more",
        "OBERON_JWT_KEY": "a-real-jwt-key-of-at-least-32-characters-long",
    }
    with start_server("--split", env=secrets) as running:
        held = {name: environment_names(pid) for name, (_, pid) in running.services().items()}
    assert {"OBERON_SESSION_SECRET", "OBERON_JWT_KEY", "OBERON_ADMIN_TOKEN"} <= held["gateway"]
    assert "OBERON_ADMIN_TOKEN" in held["renderer"]  # its degradation switch checks it
    assert held["renderer"].isdisjoint({"OBERON_SESSION_SECRET", "OBERON_JWT_KEY"})
    others = [names for name, names in held.items() if name not in ("gateway", "renderer")]
    assert len(others) == len(SERVICES) - 2
    assert all(names.isdisjoint({"OBERON_SESSION_SECRET", "OBERON_JWT_KEY", "OBERON_ADMIN_TOKEN"}) for names in others)
