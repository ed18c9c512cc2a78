"""Metrics when uvicorn runs several workers: every worker's requests show on the admin listener's /metrics.

The workers share one public port and write to `PROMETHEUS_MULTIPROC_DIR`; a process of its own serves the
admin app on another port and merges them (the public port answers 404 for /metrics)."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.conftest import free_port

RES = Path(__file__).resolve().parents[1] / "res"
REQUESTS = 40


def counted(exposition: str) -> float:
    return sum(
        sample.value
        for family in text_string_to_metric_families(exposition)
        for sample in family.samples
        if sample.name == "oberon_http_request_duration_seconds_count" and sample.labels["route"] == "/hello/{name}"
    )


def test_two_uvicorn_workers_share_their_metrics_on_the_admin_listener(tmp_path: Path) -> None:
    port = free_port()
    admin_port = free_port(taken={port})
    root = Path(__file__).resolve().parents[2]
    environ = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path), "PYTHONPATH": f"{RES}{os.pathsep}{root}"}
    log = tempfile.TemporaryFile(mode="w+")
    argv = [sys.executable, "-m", "uvicorn", "--factory", "workers_app:create", "--workers", "2", "--port", str(port)]
    process = subprocess.Popen(argv, cwd=RES, env=environ, stdout=log, stderr=subprocess.STDOUT, text=True)
    admin_argv = [sys.executable, "-m", "uvicorn", "--factory", "workers_app:create_admin", "--port", str(admin_port)]
    admin = subprocess.Popen(admin_argv, cwd=RES, env=environ, stdout=log, stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}"
    admin_base = f"http://127.0.0.1:{admin_port}"
    try:
        answered_by: list[str] = []
        deadline = time.monotonic() + 30
        while len(answered_by) < REQUESTS and time.monotonic() < deadline:
            try:
                # A new connection each time, so the kernel spreads them over the workers.
                url = f"{base}/hello/{len(answered_by)}"
                answered_by.append(httpx.get(url, headers={"Connection": "close"}, timeout=5).text)
            except httpx.HTTPError:
                time.sleep(0.1)
        assert len(answered_by) == REQUESTS, "uvicorn did not answer"
        time.sleep(0.2)  # each worker counts a request just after its answer is sent
        assert httpx.get(f"{base}/metrics", timeout=5).status_code == 404  # never on the public port
        deadline = time.monotonic() + 15
        while True:
            try:
                scrapes = [httpx.get(f"{admin_base}/metrics", timeout=5).text for _ in range(4)]
                break
            except httpx.HTTPError:
                assert time.monotonic() < deadline, "the admin listener did not answer"
                time.sleep(0.1)
        assert all(counted(exposition) == REQUESTS for exposition in scrapes)
        assert len(list(tmp_path.glob("*.db"))) >= 2  # files of both workers
    finally:
        for running in (process, admin):
            running.terminate()
            running.wait(timeout=15)
        log.seek(0)
        output = log.read()
        log.close()
    assert "Started parent process" in output or "Uvicorn running" in output, output
