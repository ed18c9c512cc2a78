"""Load from wrk (pinned to the load's core, bench/percentiles.lua printing one JSON line) and one measured case."""

from __future__ import annotations

import json
import shlex
import subprocess
from dataclasses import dataclass, field
from typing import Any

from bench.checkout import BENCH
from bench.procfs import cpu_seconds, host_ticks, process_tree, rss_mb, tree_rss
from bench.servers import LOAD_CPU

LUA = BENCH / "percentiles.lua"
WARMUP_SECONDS = 3


@dataclass
class Result:
    """One case of one run: a row of the results file."""

    scenario: str
    case: str
    run: int
    url: str
    wrk: str
    rps: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    errors: int
    non_2xx: int
    socket_errors: int
    requests: int
    rss_mb: float
    peak_rss_mb: float
    notes: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def wrk(url: str, *, connections: int, seconds: int) -> dict[str, Any]:
    """One wrk run against `url` on the load's core: `parse_wrk`'s figures and the command line."""
    argv = ["taskset", "-c", LOAD_CPU, "wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--timeout", "5s",
            "-s", str(LUA), url]  # fmt: skip
    done = subprocess.run(argv, capture_output=True, text=True, check=True, timeout=seconds + 30)
    stats = parse_wrk(done.stdout)
    stats["command"] = shlex.join(argv)
    return stats


def parse_wrk(stdout: str) -> dict[str, Any]:
    """wrk's output → the JSON line of bench/percentiles.lua, plus req/s and the socket errors summed."""
    line = next((line for line in stdout.splitlines() if line.startswith("WRK_JSON ")), None)
    if line is None:
        raise ValueError(f"no WRK_JSON line in wrk's output (is bench/percentiles.lua loaded?):\n{stdout}")
    stats: dict[str, Any] = json.loads(line.removeprefix("WRK_JSON "))
    stats["rps"] = stats["requests"] / (stats["duration_us"] / 1e6) if stats["duration_us"] else 0.0
    stats["socket_errors"] = stats["connect"] + stats["read"] + stats["write"] + stats["timeout"]
    return stats


def measure(scenario: str, case: str, run: int, url: str, pid: int, *, connections: int, seconds: int,
            notes: str = "", tree: bool = False) -> Result:  # fmt: skip
    """wrk against `url` after a warm-up; RSS of `pid` (with `tree`: summed over `pid` and its descendants)."""
    wrk(url, connections=connections, seconds=WARMUP_SECONDS)  # connections, caches and code paths warm
    pids = process_tree(pid) if tree else [pid]
    cpu_before, (ticks_before, stolen_before) = cpu_seconds(pids), host_ticks()
    stats = wrk(url, connections=connections, seconds=seconds)
    cpu = cpu_seconds(pids) - cpu_before
    ticks, stolen = host_ticks()
    ticks, stolen = ticks - ticks_before, stolen - stolen_before
    # The server's CPU per request (its processes' whole tree with `tree`), and how much of the machine's CPU
    # time the hypervisor gave to others meanwhile: a run with a high steal figure measured the host, too.
    extra: dict[str, Any] = {
        "server_cpu_us_per_request": round(cpu / stats["requests"] * 1e6, 1) if stats["requests"] else None,
        "steal_percent": round(100 * stolen / ticks, 1) if ticks else 0.0,
    }
    if tree:
        memory = tree_rss(pid)
        rss, peak = memory["rss_mb"], memory["peak_rss_mb"]
        extra |= {"pss_mb": round(memory["pss_mb"], 1), "rss_by_process_mb": memory["processes"]}
    else:
        rss, peak = rss_mb(pid)
    result = Result(
        scenario=scenario, case=case, run=run, url=url, wrk=stats["command"], rps=round(stats["rps"], 1),
        p50_ms=stats["p50_us"] / 1000, p95_ms=stats["p95_us"] / 1000, p99_ms=stats["p99_us"] / 1000,
        errors=stats["status"] + stats["socket_errors"], non_2xx=stats["status"],
        socket_errors=stats["socket_errors"], requests=stats["requests"], rss_mb=round(rss, 1),
        peak_rss_mb=round(peak, 1), notes=notes, extra=extra,
    )  # fmt: skip
    print(
        f"{case:<28} run {run}: {result.rps:8.1f} req/s  p50 {result.p50_ms:7.2f} ms  p95 {result.p95_ms:7.2f} ms"
        f"  p99 {result.p99_ms:7.2f} ms  errors {result.errors} ({result.non_2xx} non-2xx)  RSS {result.rss_mb} MB"
        f" (peak {result.peak_rss_mb})  server CPU {extra['server_cpu_us_per_request']} µs/req"
        f"  steal {extra['steal_percent']} %",
        flush=True,
    )
    return result
