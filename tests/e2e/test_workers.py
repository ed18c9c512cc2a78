"""`oberon up --workers 2`: two processes serve pages on one port; the admin listener merges their metrics and
switches their degradation mode at once; a worker killed by its PID is replaced while pages keep answering."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit

import httpx
from prometheus_client.multiprocess import MultiProcessCollector

from tests.e2e.conftest import ADMIN, ADMIN_TOKEN, Running, gauge, start_server
from tests.redis_server import RedisServer

PAGE = "/e/1"
PAGES = 60
TIMEOUT = 30.0
BURST = 8  # held requests opened together
BURSTS = 10


def pages(base: str, count: int) -> list[int]:
    """`count` pages, 8 at a time, each on a new connection (so the kernel hands them to both workers)."""

    def one(_: int) -> int:
        return httpx.get(f"{base}{PAGE}", headers={"Connection": "close"}, timeout=10).status_code

    with ThreadPoolExecutor(max_workers=8) as pool:
        return list(pool.map(one, range(count)))


def workers(admin_url: str) -> dict[str, dict[str, object]]:
    """The workers the machine's health names, by PID."""
    answer: dict[str, dict[str, object]] = httpx.get(f"{admin_url}/_oberon/health", timeout=10).json()["workers"]
    return answer


def pages_served_by(metrics_dir: Path, pid: int) -> float:
    """Pages the renderer of process `pid` counted, from that process's own metrics file."""
    files = [str(path) for path in metrics_dir.glob(f"histogram_{pid}.db")]
    return sum(
        sample.value
        for metric in MultiProcessCollector.merge(files, accumulate=True)  # type: ignore[no-untyped-call]
        for sample in metric.samples
        if sample.name == "oberon_http_request_duration_seconds_count"
        and sample.labels.get("service") == "renderer"
        and sample.labels.get("route", "").startswith("/e/")
    )


def until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + TIMEOUT
    while not condition():
        assert time.monotonic() < deadline, f"not within {TIMEOUT:g}s: {what}"
        time.sleep(0.1)


def replaced(running: Running, killed: int) -> bool:
    named = workers(running.admin_url)
    return len(named) == 2 and str(killed) not in named


def modes(running: Running) -> list[object]:
    status = httpx.get(f"{running.admin_url}/_oberon/degradation", timeout=10).json()
    return [worker["mode"] for worker in status["workers"].values()]


def test_two_workers_share_the_port_the_metrics_and_the_switch_and_a_killed_one_is_replaced(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    environ = {"OBERON_SESSION_STORE": redis_server.url, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    with start_server("--workers", "2", env=environ) as running:
        pids = [int(pid) for pid in workers(running.admin_url)]
        assert len(pids) == 2 and os.getpid() not in pids
        assert pages(running.base_url, PAGES) == [200] * PAGES

        # Both processes rendered pages; the admin listener shows them merged.
        until(lambda: sum(pages_served_by(tmp_path, pid) for pid in pids) == PAGES, "every page counted")
        assert all(pages_served_by(tmp_path, pid) > 0 for pid in pids), [pages_served_by(tmp_path, p) for p in pids]
        merged = gauge(running.admin_url, "oberon_http_request_duration_seconds_count", service="renderer")
        assert sum(merged) >= PAGES  # every worker's pages (and nothing but the renderer's own probes besides)

        # One switch on the admin listener reaches both workers.
        switched = httpx.put(
            f"{running.admin_url}/_oberon/degradation", json={"mode": "degraded", "reason": "e2e"}, headers=ADMIN
        )
        assert switched.status_code == 200
        until(lambda: modes(running) == ["degraded", "degraded"], "both workers degraded")

        # A worker killed by its PID: the other keeps answering, the supervisor starts another, counted.
        os.kill(pids[0], signal.SIGKILL)
        assert pages(running.base_url, 20) == [200] * 20
        until(lambda: replaced(running, pids[0]), "a worker in place of the killed one")
        until(lambda: httpx.get(f"{running.admin_url}/_oberon/health", timeout=10).status_code == 200, "healthy again")
        assert gauge(running.admin_url, "oberon_worker_restarts_total") == [1.0]
        assert f"pid {pids[0]}) exited with status -9; restarting it" in running.output()
        assert modes(running) == ["degraded", "degraded"]  # the replacement read the shared switch at its start
        assert pages(running.base_url, 20) == [200] * 20


def test_each_worker_sheds_at_its_server_beyond_its_own_limit(redis_server: RedisServer, tmp_path: Path) -> None:
    limit = {f"OBERON_ADMISSION_{bound}_LIMIT": "1" for bound in ("MIN", "INITIAL", "MAX")}
    environ = {"OBERON_SESSION_STORE": redis_server.url, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path), **limit}
    with start_server("--workers", "2", env=environ) as running, contextlib.ExitStack() as holders:
        # Requests whose announced body never comes, until each worker holds one: a worker whose place is taken
        # sheds the next one at once. They come in bursts of connections opened together: one at a time, the
        # kernel wakes the same idle worker first every time and the other may never get one.
        held = 0
        for _ in range(BURSTS):
            held += hold(running.base_url, holders)
            if held >= 2:
                break
        assert held == 2
        shed = [httpx.get(f"{running.base_url}/e/1", headers={"Connection": "close"}, timeout=10) for _ in range(4)]
        counted = sum(gauge(running.admin_url, "oberon_admission_shed_total", service="gateway", at="server"))
    assert [answer.status_code for answer in shed] == [503] * 4
    assert counted >= 4  # merged from both workers, each shedding before its app


def hold(base: str, holders: contextlib.ExitStack) -> int:
    """Opens a burst of held requests together; how many were held (each of the others is answered 503 at once)."""

    def one(_: int) -> socket.socket:
        sock = socket.create_connection(address(base), timeout=10)
        sock.sendall(HELD_REQUEST)
        return sock

    with ThreadPoolExecutor(max_workers=BURST) as pool:
        burst = [holders.enter_context(sock) for sock in pool.map(one, range(BURST))]
    held = 0
    deadline = time.monotonic() + 2  # a shed answer comes in milliseconds; a held request never
    for sock in burst:
        sock.settimeout(max(deadline - time.monotonic(), 0.05))
        try:
            assert sock.recv(65536).startswith(b"HTTP/1.1 503")
        except TimeoutError:
            held += 1
    return held


def address(base: str) -> tuple[str, int]:
    url = urlsplit(base)
    return url.hostname or "127.0.0.1", url.port or 80


HELD_REQUEST = (
    b"PUT /_backends/events/_faults HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
    b"Authorization: Bearer " + ADMIN_TOKEN.encode() + b"\r\nContent-Length: 100\r\n\r\n"
)
