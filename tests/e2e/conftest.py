"""Helpers for end-to-end tests: start real `oberon` processes on free loopback ports."""

from __future__ import annotations

import contextlib
import http.client
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, NamedTuple
from urllib.parse import urlsplit

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from oberon.runtime.supervisor import free_port

ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT = 30.0
ADMIN_TOKEN = "e2e-admin-token-of-at-least-32-characters"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}  # for the admin routes: /_backends/…, degradation


# The internal paths and ways to spell them that a lenient server or proxy reads as the same path.
INTERNAL = ["/metrics", "/_oberon/registry", "/_oberon/degradation"]
SPELLINGS = [
    "{path}",
    "{path}/",
    "/{path}",
    "/.{path}",
    "/x/..{path}",
    "{path}?x=1",
    "{path}/?x=1",
    "/{path}/",
]
ENCODED = [
    "/%6detrics",
    "/%6Detrics",
    "/%2Fmetrics",
    "/%252Fmetrics",
    "/_oberon/%72egistry",
    "/_oberon%2Fregistry",
    "/_oberon/%64egradation",
    "/_oberon%2Fdegradation",
]


def internal_spellings() -> list[str]:
    """Every spelling of every internal path to try at a public entrance."""
    return [spelling.format(path=path) for path in INTERNAL for spelling in SPELLINGS] + ENCODED


def raw_request(base: str, method: str, path: str, body: bytes | None = None) -> tuple[int, bytes]:
    """One request with `path` sent byte for byte as given."""
    url = urlsplit(base)
    connection = http.client.HTTPConnection(url.hostname or "127.0.0.1", url.port, timeout=10)
    try:
        headers = {"Authorization": ADMIN["Authorization"], "Content-Type": "application/json"} if body else {}
        connection.request(method, path, body=body, headers=headers)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


@pytest.fixture(scope="session")
def server() -> Callable[..., contextlib.AbstractContextManager[str]]:
    """`with server(env={...}) as base_url:` runs `oberon up` for the block; `server("--split")` the split topology."""
    return run_server


@dataclass
class Running:
    """A running `oberon up`: its entrance, its internal admin listener, its process, and what it has printed."""

    base_url: str
    process: subprocess.Popen[str]
    log: IO[str]
    admin_url: str = ""  # /metrics, the detailed health, registry and degradation (never the entrance)

    def output(self) -> str:
        # Read through a handle of our own: the child writes through one that shares the log's offset.
        return Path(self.log.name).read_text(encoding="utf-8", errors="replace")

    def services(self) -> dict[str, tuple[str, int]]:
        """The split topology's map of services: name → (URL, PID), as `oberon up --split` prints it."""
        found = re.findall(r"^oberon:\s+(\S+)\s+(http://\S+)\s+pid (\d+)", self.output(), re.M)
        return {name: (url, int(pid)) for name, url, pid in found}

    def admin_urls(self) -> dict[str, str]:
        """The split topology's admin listeners: name → URL, as `oberon up --split` prints them."""
        found = re.findall(r"^oberon:\s+(\S+)\s+http://\S+\s+pid \d+\s+admin (http://\S+)", self.output(), re.M)
        return dict(found)


@contextlib.contextmanager
def run_server(*args: str, env: Mapping[str, str] | None = None, cwd: Path = ROOT) -> Iterator[str]:
    """Run `oberon up` on a free port; yield its base URL once healthy; stop it (by its PID) afterwards."""
    with start_server(*args, env=env, cwd=cwd) as running:
        yield running.base_url


@contextlib.contextmanager
def start_server(
    *args: str, env: Mapping[str, str] | None = None, cwd: Path = ROOT, port: int | None = None
) -> Iterator[Running]:
    """Run `oberon up`; yield it once its gateway reports every upstream reachable; stop it by its PID afterwards.

    The entrance is on `port` (a free one unless the test chose it beforehand, e.g. to point another process at it).
    The admin listener gets a free port of its own (the default, the entrance's + 1, may be another test's).
    One worker unless the test asks for more (`--workers N`): the default, one per CPU with a session store,
    would multiply the processes of every test.
    """
    port = port if port is not None else free_port()
    if "--workers" not in args:
        args = (*args, "--workers", "1")
    if "--admin-port" in args:
        admin_port = int(args[args.index("--admin-port") + 1])
    else:
        admin_port = free_port(taken={port})
        args = (*args, "--admin-port", str(admin_port))
    environ = {key: value for key, value in os.environ.items() if not key.startswith("OBERON_")}
    environ["OBERON_ADMIN_TOKEN"] = ADMIN_TOKEN  # admin routes fail closed without one
    environ.update(env or {})
    # A file, not a pipe: an unread pipe fills up and blocks the server's logging.
    log = tempfile.NamedTemporaryFile(mode="w+", prefix="oberon-up-", suffix=".log")
    process = subprocess.Popen(
        [sys.executable, "-m", "oberon", "up", "--port", str(port), *args],
        cwd=cwd,
        env=environ,
        stdout=log,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    admin = f"http://127.0.0.1:{admin_port}"
    try:
        _wait_healthy(process, base, admin, log)
        if "--split" in args:
            # The gateway can report every upstream reachable a poll before the supervisor has seen them all;
            # until it has, a child's death counts as a failed start and stops the whole topology.
            _wait_announced(process, log, "services are up; entrance")
        yield Running(base_url=base, process=process, log=log, admin_url=admin)
    finally:
        stop(process)
        log.close()


def stop(process: subprocess.Popen[str]) -> None:
    """Stop a process this test started, by its PID: SIGTERM, then SIGKILL after 10 s."""
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _wait_announced(process: subprocess.Popen[str], log: IO[str], line: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while line not in Path(log.name).read_text(encoding="utf-8", errors="replace"):
        if process.poll() is not None or time.monotonic() > deadline:
            pytest.fail(f"oberon up did not print {line!r}:\n{Path(log.name).read_text()}")
        time.sleep(0.05)


def _wait_healthy(process: subprocess.Popen[str], base: str, admin: str, log: IO[str]) -> None:
    """Until the admin listener's health (the gateway's probes) says every upstream answers, and the entrance
    answers too (the admin listener starts first)."""
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            log.seek(0)
            pytest.fail(f"oberon up exited with {process.returncode}:\n{log.read()}")
        try:
            health = httpx.get(f"{admin}/_oberon/health", timeout=2)
            if health.status_code == 200 and health.json()["status"] == "ok":
                if httpx.get(f"{base}/_oberon/health", timeout=2).status_code == 200:
                    return
        except (httpx.HTTPError, ValueError, KeyError):
            pass
        time.sleep(0.1)
    pytest.fail(f"oberon up did not become healthy within {START_TIMEOUT}s")


def gauge(admin_url: str, name: str, **labels: str) -> list[float]:
    """The values of metric `name` whose labels include `labels`, as an admin listener's `/metrics` shows them."""
    exposition = httpx.get(f"{admin_url}/metrics", timeout=10).text
    return [
        sample.value
        for family in text_string_to_metric_families(exposition)
        for sample in family.samples
        if sample.name == name and labels.items() <= sample.labels.items()
    ]


class Replica(NamedTuple):
    """Another gateway process of a split topology: its entrance and its internal admin listener."""

    base_url: str
    admin_url: str


@contextlib.contextmanager
def gateway_replica(running: Running, env: Mapping[str, str]) -> Iterator[Replica]:
    """Gateway B: another `oberon serve gateway` over the split topology's services, with `env` (its session store);
    stopped by its PID."""
    upstreams = [
        arg
        for name, (url, _) in running.services().items()
        if name != "gateway"
        for arg in ("--upstream", f"{name}={url}")
    ]
    port = free_port()
    admin_port = free_port(taken={port})
    environ = {key: value for key, value in os.environ.items() if not key.startswith("OBERON_")}
    environ.update({"OBERON_ADMIN_TOKEN": ADMIN_TOKEN, **env})
    log = tempfile.NamedTemporaryFile(mode="w+", prefix="oberon-gateway-b-", suffix=".log")
    process = subprocess.Popen(
        [sys.executable, "-m", "oberon", "serve", "gateway", "--port", str(port), "--admin-port", str(admin_port)]
        + upstreams,
        cwd=ROOT,
        env=environ,
        stdout=log,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(process, f"{base}/_oberon/health", log=Path(log.name), name="gateway B")
        yield Replica(base, f"http://127.0.0.1:{admin_port}")
    finally:
        stop(process)
        log.close()


def wait_healthy(process: subprocess.Popen[str], health: str, *, log: Path, name: str) -> None:
    """Until `health` answers 200; fails with `log` if `process` exits, or after START_TIMEOUT."""
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        assert process.poll() is None, f"{name} exited:\n{log.read_text()}"
        assert time.monotonic() < deadline, f"{name} did not start"
        try:
            if httpx.get(health, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            time.sleep(0.1)
