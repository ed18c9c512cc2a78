"""Metrics when uvicorn runs several workers: every worker's requests show in whichever worker answers /metrics."""

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


def test_two_uvicorn_workers_share_their_metrics(tmp_path: Path) -> None:
    port = free_port()
    environ = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path), "PYTHONPATH": str(RES)}
    log = tempfile.TemporaryFile(mode="w+")
    argv = [sys.executable, "-m", "uvicorn", "--factory", "workers_app:create", "--workers", "2", "--port", str(port)]
    process = subprocess.Popen(argv, cwd=RES, env=environ, stdout=log, stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}"
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
        scrapes = [httpx.get(f"{base}/metrics", headers={"Connection": "close"}, timeout=5).text for _ in range(4)]
        assert all(counted(exposition) == REQUESTS for exposition in scrapes)
        assert len(list(tmp_path.glob("*.db"))) >= 2  # files of both workers
    finally:
        process.terminate()
        process.wait(timeout=15)
        log.seek(0)
        output = log.read()
        log.close()
    assert "Started parent process" in output or "Uvicorn running" in output, output
