"""What one shed request costs the server's CPU: the figure behind the `overload` goodput (issue 16).

    .venv/bin/python bench/shed_cost.py                 # about 30 s
    .venv/bin/python bench/shed_cost.py --profile       # and py-spy's samples of the server meanwhile

`oberon up` on the demo site (the embedded topology, pinned to core 0) with its admission limit pinned
at 1, and that one place held for the whole run by a request that costs nothing: a `PUT` to a stand-in's
fault endpoint whose announced body never comes (the proxy waits for it until its route's timeout; then
another). So nearly every other request is shed (`non_503`: those that took the place between two). wrk
(on core 1, 32 keep-alive connections, `Accept: text/html`) asks for event pages for 10 s after 3 s of
warm-up. Reported: the server's CPU time over the run (/proc/PID/schedstat: user, system, and the
kernel's network work done on its behalf) divided by the requests it shed (its
`oberon_admission_shed_total` before and after): the CPU one shed request costs, in µs, system calls
included. When wrk's one core is the bottleneck the server idles between requests and pays more wake-ups
per request than under a real overload, so this is an upper bound for the shed path's own cost.
Writes `bench/results/shed-cost-<UTC time>.json` (with `--profile`, py-spy's collapsed stacks beside it and
the top frames in the JSON; py-spy's own CPU is on core 1, its pauses of the server add little).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
from prometheus_client.parser import text_string_to_metric_families

from bench.bulkhead import RESULTS, ROOT
from bench.load import LUA, parse_wrk
from bench.procfs import cpu_seconds
from bench.profiling import summarize_stacks
from bench.servers import LOAD_CPU, SERVER_CPU, process, wait_ready
from oberon.runtime.supervisor import free_port

CONNECTIONS = 32
WARMUP_SECONDS = 3
SECONDS = 10
TOKEN = "bench-admin-token-of-at-least-32-characters"
ENV = {
    **{f"OBERON_ADMISSION_{bound}_LIMIT": "1" for bound in ("MIN", "INITIAL", "MAX")},
    "OBERON_ADMIN_TOKEN": TOKEN,
}


@contextlib.contextmanager
def oberon_up() -> Iterator[tuple[int, str, str]]:
    """`oberon up` pinned to core 0 with the limit at 1: its PID, entrance and admin listener; stopped by its PID."""
    port = free_port()
    admin_port = free_port(taken={port})
    environ = {k: v for k, v in os.environ.items() if not k.startswith("OBERON_") and k != "PROMETHEUS_MULTIPROC_DIR"}
    environ.update(ENV)
    environ.setdefault("OBERON_BUILD_DIR", str(ROOT / "build" / "assets"))
    argv = [sys.executable, "-m", "oberon", "up", "--workers", "1", "--port", str(port)]
    argv += ["--admin-port", str(admin_port)]
    log = RESULTS / f"shed-cost-server-{port}.log"
    base, admin = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{admin_port}"
    with process(["taskset", "-c", SERVER_CPU, *argv], env=environ, log=log) as proc:
        wait_ready(base + "/_oberon/health", proc, log)
        yield proc.pid, base, admin
    log.unlink(missing_ok=True)


@contextlib.contextmanager
def place_held(base: str, admin: str) -> Iterator[None]:
    """The limit's one place taken, for the block, by requests whose body never comes: each in turn, as the
    gateway gives up on the one before (its route's timeout)."""
    address = urlsplit(base)
    stop = threading.Event()

    def hold() -> None:
        while not stop.is_set():
            with socket.create_connection((address.hostname or "", address.port or 80), timeout=1) as sock:
                sock.sendall(
                    b"PUT /_backends/events/_faults HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json"
                    b"\r\nAuthorization: Bearer " + TOKEN.encode() + b"\r\nContent-Length: 100\r\n\r\n"
                )
                while not stop.is_set():
                    with contextlib.suppress(TimeoutError):
                        if sock.recv(65536):
                            break  # answered (504, or shed when a request of the load took the place first)

    holder = threading.Thread(target=hold, daemon=True)
    holder.start()
    deadline = time.monotonic() + 10
    while metric(admin, "oberon_admission_in_flight") != 1:
        if time.monotonic() > deadline:
            raise SystemExit("the held request never took the place")
        time.sleep(0.05)
    try:
        yield
    finally:
        stop.set()
        holder.join()


def metric(admin: str, name: str) -> float:
    """The sum of the series of `name` on the admin listener's /metrics."""
    exposition = httpx.get(f"{admin}/metrics", timeout=10).text
    return sum(
        sample.value
        for family in text_string_to_metric_families(exposition)
        for sample in family.samples
        if sample.name == name
    )


def shed_total(admin: str) -> float:
    return metric(admin, "oberon_admission_shed_total")


def wrk(url: str, seconds: int) -> dict[str, Any]:
    argv = ["taskset", "-c", LOAD_CPU, "wrk", "-t1", f"-c{CONNECTIONS}", f"-d{seconds}s", "--timeout", "5s",
            "-H", "Accept: text/html", "-s", str(LUA), url]  # fmt: skip
    done = subprocess.run(argv, capture_output=True, text=True, check=True, timeout=seconds + 30)
    return parse_wrk(done.stdout)


def main(profile: bool) -> None:
    RESULTS.mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    stacks = RESULTS / f"shed-cost-{stamp}.stacks"
    os.sched_setaffinity(0, {int(LOAD_CPU)})
    with oberon_up() as (pid, base, admin), place_held(base, admin):
        wrk(f"{base}/e/1", WARMUP_SECONDS)
        shed_before, cpu_before = shed_total(admin), cpu_seconds([pid])
        with spying(pid, stacks) if profile else contextlib.nullcontext():
            stats = wrk(f"{base}/e/1", SECONDS)
        cpu, shed = cpu_seconds([pid]) - cpu_before, shed_total(admin) - shed_before
    result = {
        "command": "bench/shed_cost.py",
        "started": time.strftime("%FT%TZ", time.gmtime()),
        "connections": CONNECTIONS,
        "seconds": SECONDS,
        "requests": stats["requests"],
        "shed": int(shed),
        "shed_per_s": round(shed / SECONDS, 1),
        "server_cpu_seconds": round(cpu, 3),
        "cpu_us_per_shed": round(cpu / shed * 1e6, 1) if shed else None,
        "p50_ms": stats["p50_us"] / 1000,
        "p99_ms": stats["p99_us"] / 1000,
        "non_503": stats["requests"] - stats["status"],
        "socket_errors": stats["socket_errors"],
        "load_average_at_end": os.getloadavg(),
    }
    if profile:
        result["profile"] = summarize_stacks(stacks, top=15)
    print(json.dumps(result))
    out = RESULTS / f"shed-cost-{stamp}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"written: {out.relative_to(ROOT)}")


@contextlib.contextmanager
def spying(pid: int, out: Path) -> Iterator[None]:
    """py-spy recording `pid` (200 samples a second, on the load's core) for the block."""
    spy = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which("py-spy")
    if spy is None:
        raise SystemExit("--profile needs py-spy: .venv/bin/pip install py-spy")
    argv = ["taskset", "-c", LOAD_CPU, spy, "record", "--pid", str(pid), "--duration", str(SECONDS), "--rate", "200",
            "--format", "raw", "--output", str(out), "--nonblocking"]  # fmt: skip
    with process(argv, env=dict(os.environ), log=out.with_suffix(".log")) as spy_proc:
        time.sleep(0.5)
        yield
        spy_proc.wait(timeout=60)
    out.with_suffix(".log").unlink(missing_ok=True)


if __name__ == "__main__":
    main(profile="--profile" in sys.argv[1:])
