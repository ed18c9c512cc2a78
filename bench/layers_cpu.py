"""Server CPU per page of `oberon serve renderer` on the peers' page-5 site (issue 19, the ASGI layers).

Throughput needs a quiet machine; CPU time per page does not (much): the renderer is pinned to core 0, the
peers' fragment server and wrk to core 1, and the renderer's CPU time (/proc/PID/schedstat) over a wrk run is
divided by the pages wrk got. Every feature stays on (metrics, tracing, access log, admission, Server-Timing).

    python -m bench.layers_cpu [--runs 3] [--seconds 10] [--connections 16] [--profile OUT.txt]

`--profile` records the last run with py-spy (collapsed stacks) and prints the layers' inclusive shares.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.checkout import ROOT, clean_environ, commit
from bench.procfs import cpu_seconds, process_tree
from bench.profiling import summarize_stacks
from bench.servers import LOAD_CPU, SERVER_CPU, process, wait_ready
from oberon.runtime.supervisor import free_port

PEERS = ROOT.parent / "shared" / "peers"
PAGE = "/page-5"
MARKERS = [f"<!--/frag-{n}-->" for n in range(1, 6)]


def site_copy(scratch: Path, fragment_port: int, checkout: Path) -> Path:
    """The peers' page-5 site in `scratch`, its data source on our own fragment server, built."""
    site = scratch / "site"
    shutil.copytree(PEERS / "oberon-site", site, ignore=shutil.ignore_patterns("build", ".oberon"))
    toml = site / "oberon.toml"
    toml.write_text(re.sub(r"http://127\.0\.0\.1:\d+", f"http://127.0.0.1:{fragment_port}", toml.read_text()))
    argv = [sys.executable, "-m", "oberon", "--site", str(toml), "build"]
    subprocess.run(argv, cwd=checkout, env=clean_environ(PYTHONPATH=str(checkout)), check=True, capture_output=True)
    return toml


def drive(url: str, *, seconds: int, connections: int) -> int:
    """wrk on the load's core against `url`; the number of answers it got (fails on any non-2xx or socket error)."""
    argv = ["taskset", "-c", LOAD_CPU, "wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s", url]
    out = subprocess.run(argv, capture_output=True, text=True, check=True, timeout=seconds + 30).stdout
    if "Non-2xx" in out or re.search(r"Socket errors: connect [1-9]|read [1-9]|write [1-9]", out):
        raise SystemExit(f"wrk saw errors:\n{out}")
    found = re.search(r"(\d+) requests in", out)
    if found is None:
        raise SystemExit(f"no request count in wrk's output:\n{out}")
    return int(found.group(1))


def streamed(admin: str) -> float:
    """The pages the renderer has streamed so far (`oberon_pages_streamed_total`, every app)."""
    text = subprocess.run(["curl", "-fsS", admin + "/metrics"], capture_output=True, text=True, check=True).stdout
    lines = [line for line in text.splitlines() if line.startswith("oberon_pages_streamed_total")]
    return sum(float(line.rpartition(" ")[2]) for line in lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--checkout", type=Path, default=ROOT, help="the code the renderer runs (another worktree)")
    parser.add_argument("--profile", type=Path, help="py-spy's collapsed stacks of the last run, to this file")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="layers-cpu-") as tmp:
        scratch = Path(tmp)
        fragment_port = free_port()
        port = free_port(taken={fragment_port})
        admin_port = free_port(taken={fragment_port, port})
        checkout = args.checkout.resolve()
        toml = site_copy(scratch, fragment_port, checkout)
        fragments = ["taskset", "-c", LOAD_CPU, "node", str(PEERS / "common" / "fragment-server.js")]
        fragment_env = clean_environ(HOST="127.0.0.1", PORT=str(fragment_port), FRAGMENT_DELAY_MS="0")
        argv = ["taskset", "-c", SERVER_CPU, sys.executable, "-m", "oberon", "--site", str(toml), "serve", "renderer",
                "--port", str(port), "--admin-port", str(admin_port)]  # fmt: skip
        base, admin = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{admin_port}"
        renderer_env = clean_environ(PYTHONPATH=str(checkout))
        with (
            process(fragments, env=fragment_env, log=scratch / "fragments.log"),
            process(argv, env=renderer_env, log=scratch / "renderer.log", cwd=checkout) as proc,
        ):
            wait_ready(base + "/_oberon/health", proc, scratch / "renderer.log")
            page = subprocess.run(["curl", "-fsS", base + PAGE], capture_output=True, text=True, check=True).stdout
            if not all(marker in page for marker in MARKERS):
                raise SystemExit(f"{PAGE} lacks a fragment marker:\n{page[:2000]}")
            drive(base + PAGE, seconds=3, connections=args.connections)  # warm-up
            results = []
            for run in range(args.runs):
                spy = None
                if args.profile is not None and run == args.runs - 1:
                    spy_argv = [str(Path(sys.executable).parent / "py-spy"), "record", "--pid", str(proc.pid),
                                "--duration", str(args.seconds), "--rate", "200", "--format", "raw",
                                "--output", str(args.profile), "--nonblocking"]  # fmt: skip
                    spy = subprocess.Popen(["taskset", "-c", LOAD_CPU, *spy_argv], stdout=subprocess.DEVNULL)
                    time.sleep(1)
                pids = process_tree(proc.pid)
                before, streamed_before = cpu_seconds(pids), streamed(admin)
                pages = drive(base + PAGE, seconds=args.seconds, connections=args.connections)
                used = cpu_seconds(pids) - before
                share = (streamed(admin) - streamed_before) / pages
                if spy is not None:
                    spy.wait(timeout=60)
                results.append(used / pages * 1e6)
                line = f"{pages} pages, {share:.0%} streamed, {used:.2f} s CPU, {results[-1]:.0f} µs/page"
                print(f"run {run + 1}: {line}", flush=True)
    print(f"{commit(checkout)}: µs of server CPU per page: {', '.join(f'{r:.0f}' for r in results)}")
    if args.profile is not None:
        summary = summarize_stacks(args.profile, top=40)
        for name, share in summary["inclusive"]:
            print(f"  {share:5.1f} %  {name}")


if __name__ == "__main__":
    main()
