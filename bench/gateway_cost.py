"""What the embedded gateway costs: server CPU µs per page of `oberon up` against `oberon serve renderer`.

The peers' page-5 site (five components, each fetching its own fragment over HTTP) is copied to a
scratch folder with the fragment server on a port of its own; the Oberon process is pinned to core 0,
the fragment server and wrk to core 1. For each run the server's CPU time (its whole process tree,
/proc/PID/schedstat) is read around a wrk run after a warm-up: CPU per page is far steadier than req/s on
a shared machine. The systems alternate, run after run, so drift in the machine's load touches both.

    python -m bench.gateway_cost [--runs 3] [--seconds 8] [--connections 1] [--before PATH]

One connection by default: then no two pages share a fragment call (concurrent identical calls collapse,
and how many do changes with the machine's load), so each page does the same work on every run.
`--before PATH` measures another copy of the project too (e.g. a worktree of the commit before a change),
interleaved with this one run by run.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from bench.procfs import cpu_seconds, process_tree

ROOT = Path(__file__).resolve().parent.parent
PEERS = ROOT.parent / "shared" / "peers"
SYSTEMS = {"renderer": ["serve", "renderer"], "up": ["up"]}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def site_copy(folder: Path, fragment_port: int) -> Path:
    site = folder / "site"
    shutil.copytree(PEERS / "oberon-site", site)
    toml = site / "oberon.toml"
    toml.write_text(toml.read_text().replace("127.0.0.1:17101", f"127.0.0.1:{fragment_port}"))
    return toml


def wait_ok(url: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as answer:
                if answer.status == 200:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{url} did not answer 200 within {timeout:g}s")
        time.sleep(0.2)


def wrk(url: str, *, seconds: float, connections: int) -> int:
    """Pages answered 2xx in a wrk run on core 1 (a run with any other answer or error is refused)."""
    out = subprocess.run(
        ["taskset", "-c", "1", "wrk", "-t1", f"-c{connections}", f"-d{seconds:g}s", url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    if "Non-2xx" in out or "Socket errors" in out:
        raise RuntimeError(f"wrk saw errors:\n{out}")
    match = re.search(r"(\d+) requests in", out)
    assert match, out
    return int(match.group(1))


def measure(system: str, toml: Path, *, seconds: float, connections: int, checkout: Path) -> float:
    """µs of server CPU per page for one run of `system`."""
    port, admin = free_port(), free_port()
    command = [sys.executable, "-m", "oberon", "--site", str(toml), *SYSTEMS[system]]
    command += ["--host", "127.0.0.1", "--port", str(port), "--admin-port", str(admin)]
    env = {k: v for k, v in os.environ.items() if k not in ("OBERON_DEGRADED", "OBERON_FAULTS")}
    env["PYTHONPATH"] = str(checkout)
    server = subprocess.Popen(
        ["taskset", "-c", "0", *command], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        url = f"http://127.0.0.1:{port}/page-5"
        wait_ok(url)
        wrk(url, seconds=3, connections=connections)  # warm-up
        pids = process_tree(server.pid)
        before = cpu_seconds(pids)
        pages = wrk(url, seconds=seconds, connections=connections)
        used = cpu_seconds(pids) - before
        return used / pages * 1e6
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=8)
    parser.add_argument("--connections", type=int, default=1)
    parser.add_argument("--before", type=Path, help="another copy of the project to measure alongside this one")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        fragment_port = free_port()
        toml = site_copy(Path(scratch), fragment_port)
        fragments = subprocess.Popen(
            ["taskset", "-c", "1", "node", str(PEERS / "common" / "fragment-server.js")],
            env={**os.environ, "HOST": "127.0.0.1", "PORT": str(fragment_port), "FRAGMENT_DELAY_MS": "0"},
        )
        try:
            subprocess.run(
                [sys.executable, "-m", "oberon", "--site", str(toml), "build"], check=True, stdout=subprocess.DEVNULL
            )
            checkouts = {"before": args.before, "after": ROOT} if args.before else {"": ROOT}
            results: dict[tuple[str, str], list[float]] = {(c, name): [] for c in checkouts for name in SYSTEMS}
            for run in range(args.runs):
                for label, checkout in checkouts.items():
                    for system in SYSTEMS:
                        cost = measure(
                            system, toml, seconds=args.seconds, connections=args.connections, checkout=checkout
                        )
                        results[label, system].append(cost)
                        print(f"run {run + 1} {label:6} {system:8} {cost:7.0f} µs/page", flush=True)
        finally:
            fragments.terminate()
            fragments.wait()
    for label in checkouts:
        runs = ", ".join(f"{r:.0f}/{u:.0f}" for r, u in zip(*(results[label, n] for n in SYSTEMS), strict=True))
        print(f"{label or 'runs'} (renderer/up µs per page): {runs}")
        # Another process's load only ever adds to a run's CPU per page: the least is the steadiest figure.
        for name, pick in (("median", statistics.median), ("least", min)):
            renderer, up = (pick(results[label, system]) for system in SYSTEMS)
            print(f"  {name}: renderer {renderer:.0f}, up {up:.0f}; the gateway adds {up / renderer - 1:.0%}")


if __name__ == "__main__":
    main()
