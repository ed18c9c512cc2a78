"""The `overload` benchmark of issue 16: beyond its capacity, a process sheds fast instead of queueing everything.

    .venv/bin/python bench/overload.py                  # admission on, with lower floors, off (about 4 min)
    .venv/bin/python bench/overload.py on               # one of them only

For each run, `oberon up` on the demo site (the embedded topology, pinned to core 0):

1. **capacity C**: event pages (`/e/1` … `/e/600`) from 16 closed-loop connections for 10 s (after 3 s of
   warm-up): C is their req/s. Since their cart became an island (issue 18) they are public, so a page whose
   data is still fresh comes from the page cache: C mixes kept and rendered pages and moves between runs.
2. **overload**: the same from 160 connections (10 × 16) for 20 s. Reported: goodput (200 answers a second,
   target ≥ 90 % of C), p99 of the admitted pages (target ≤ 250 ms), p99 of the shed answers (503, or
   the stale copy `X-Oberon-Stale`; target ≤ 10 ms), `/_oberon/health`'s p99 (target ≤ 50 ms) and socket
   errors (target 0). Meanwhile two probes, each a process of its own on a connection of its own, ask every
   50 ms: one `/_oberon/health`, one event pages. The load client saturates the core it shares with them, so
   its own latencies include its wait for that core; the probes run at real-time priority, and theirs are
   the server's answer times (health's p99 is the probe's; for pages both are reported).

`on` runs the defaults; `on-min-16` sets the limit's floor to 16 (`OBERON_ADMISSION_MIN_LIMIT=16`),
`on-min-8` to 8 (initial 16); `off` runs the same with `OBERON_ADMISSION=false`: what every request
waiting looks like. The load client (aiohttp, closed loop: each connection asks again as soon as it is
answered, a shed one too) and the probes are pinned to core 1. Latencies are from before a
request is written to its last byte read. Also recorded, for each phase: the server's CPU time
(/proc/PID/schedstat) against the wall time (`server_busy`: below 1 the server was waiting, for its
client or for the core), its core's busy share (`server_core_busy`: well above `server_busy`, other
processes ran there too), the share of it the hypervisor stole (`server_core_steal`), the load core's
busy share (`load_core_busy`: near 1 the client is what limits), and for the overload its CPU
per shed request estimated as (server CPU − goodput × the capacity phase's CPU per page) ÷ shed
requests. Each invocation writes `bench/results/overload-<UTC time>.json`.
"""

from __future__ import annotations

import asyncio
import http.client
import itertools
import json
import multiprocessing
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from bench.bulkhead import EVENT_COUNT, LOAD_CPU, RESULTS, ROOT, SERVER_CPU, oberon_up
from bench.procfs import core_ticks, cpu_seconds, pid_of

BASE_CONNECTIONS = 16
OVERLOAD_FACTOR = 10
WARMUP_SECONDS = 3.0
CAPACITY_SECONDS = 10.0
OVERLOAD_SECONDS = 20.0
PROBE_INTERVAL = 0.05
RUNS = {
    "on": {},
    # The floor at the 16 connections C is measured at.
    "on-min-16": {"OBERON_ADMISSION_MIN_LIMIT": "16"},
    # A floor under the 16 connections C is measured at: the limit may come down to what one core answers in time.
    "on-min-8": {"OBERON_ADMISSION_MIN_LIMIT": "8", "OBERON_ADMISSION_INITIAL_LIMIT": "16"},
    "off": {"OBERON_ADMISSION": "false"},
}


def percentile(values: list[float], p: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))] * 1000, 1)


@dataclass
class Answers:
    """What the load client got: latencies (seconds) of admitted pages and of shed answers, and the rest."""

    admitted: list[float] = field(default_factory=list)
    stale: list[float] = field(default_factory=list)
    rejected: list[float] = field(default_factory=list)
    other: dict[int, int] = field(default_factory=dict)
    socket_errors: int = 0

    def sort(self, status: int, headers: Any, seconds: float) -> None:
        if status == 200 and "X-Oberon-Stale" in headers:
            self.stale.append(seconds)
        elif status == 200:
            self.admitted.append(seconds)
        elif status == 503 and "Retry-After" in headers:
            self.rejected.append(seconds)
        else:
            self.other[status] = self.other.get(status, 0) + 1

    def summary(self, wall: float) -> dict[str, Any]:
        shed = self.stale + self.rejected
        return {
            "seconds": round(wall, 1),
            "goodput_per_s": round(len(self.admitted) / wall, 1),
            "admitted": len(self.admitted),
            "admitted_p50_ms": percentile(self.admitted, 50),
            "admitted_p99_ms": percentile(self.admitted, 99),
            "stale": len(self.stale),
            "rejected": len(self.rejected),
            "shed_per_s": round(len(shed) / wall, 1),
            "shed_p50_ms": percentile(shed, 50),
            "shed_p99_ms": percentile(shed, 99),
            "other_statuses": self.other,
            "socket_errors": self.socket_errors,
        }


async def drive(base: str, path: Callable[[], str], *, connections: int, seconds: float) -> tuple[Answers, float]:
    """`connections` closed-loop connections asking for `path()` for `seconds`; the answers and the wall time."""
    answers = Answers()
    end = time.monotonic() + seconds
    connector = aiohttp.TCPConnector(limit=connections)
    async with aiohttp.ClientSession(base, connector=connector, timeout=aiohttp.ClientTimeout(total=10)) as session:

        async def connection() -> None:
            while time.monotonic() < end:
                started = time.perf_counter()
                try:
                    async with session.get(path(), headers={"Accept": "text/html"}) as response:
                        await response.read()
                except (aiohttp.ClientError, TimeoutError):
                    answers.socket_errors += 1
                    continue
                answers.sort(response.status, response.headers, time.perf_counter() - started)

        started = time.perf_counter()
        await asyncio.gather(*(connection() for _ in range(connections)))
        return answers, time.perf_counter() - started


def probe(base: str, paths: list[str], seconds: float, out: Any) -> None:
    """In a process of its own: each of `paths` in turn every `PROBE_INTERVAL` on one keep-alive connection.

    The load client saturates core 1, which it shares with the probes; at real-time priority (SCHED_FIFO: the probe
    sleeps between requests, so it never starves the core) a probe's latency is the server's answer time, not the
    time it waited for core 1 behind the load client. Answers are sorted as the load client sorts them.
    """
    os.sched_setaffinity(0, {int(LOAD_CPU)})
    os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(10))
    address = urlsplit(base)
    connection = http.client.HTTPConnection(address.hostname or "", address.port, timeout=10)
    answers = Answers()
    end = time.monotonic() + seconds
    for path in itertools.cycle(paths):
        if time.monotonic() >= end:
            break
        started = time.perf_counter()
        try:
            connection.request("GET", path, headers={"Accept": "text/html"})
            response = connection.getresponse()
            response.read()
        except OSError:
            answers.socket_errors += 1
            connection.close()
            continue
        answers.sort(response.status, response.headers, time.perf_counter() - started)
        time.sleep(PROBE_INTERVAL)
    out.send(answers)


def health_summary(answers: Answers) -> dict[str, Any]:
    """The health probe's answers: all of them should be 200 (`admitted`), within 50 ms at p99."""
    latencies = answers.admitted + answers.stale + answers.rejected
    failures = len(answers.stale) + len(answers.rejected) + sum(answers.other.values()) + answers.socket_errors
    return {"probes": len(latencies) + answers.socket_errors, "failures": failures,
            "p50_ms": percentile(latencies, 50), "p99_ms": percentile(latencies, 99),
            "max_ms": percentile(latencies, 100)}  # fmt: skip


class Busy:
    """How busy the server process and the load's core were over a phase, and what the hypervisor took."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.cpu = cpu_seconds([pid])
        self.started = time.perf_counter()
        self.cores = core_ticks(int(SERVER_CPU)), core_ticks(int(LOAD_CPU))

    def summary(self) -> dict[str, float]:
        wall = time.perf_counter() - self.started
        cpu = cpu_seconds([self.pid]) - self.cpu
        server_core, load_core = (
            [now - then for now, then in zip(core_ticks(int(core)), before, strict=True)]
            for core, before in zip((SERVER_CPU, LOAD_CPU), self.cores, strict=True)
        )
        return {"server_cpu_s": round(cpu, 2), "server_busy": round(cpu / wall, 3),
                "server_core_busy": round(1 - server_core[1] / server_core[0], 3) if server_core[0] else 0.0,
                "server_core_steal": round(server_core[2] / server_core[0], 3) if server_core[0] else 0.0,
                "load_core_busy": round(1 - load_core[1] / load_core[0], 3) if load_core[0] else 0.0}  # fmt: skip


def run(name: str, env: dict[str, str]) -> dict[str, Any]:
    ids = itertools.cycle(range(1, EVENT_COUNT + 1))

    def event() -> str:
        return f"/e/{next(ids)}"

    with oberon_up(env=env) as base:
        pid = pid_of("--port", base.rsplit(":", 1)[1])
        asyncio.run(drive(base, event, connections=BASE_CONNECTIONS, seconds=WARMUP_SECONDS))
        busy = Busy(pid)
        capacity, wall = asyncio.run(drive(base, event, connections=BASE_CONNECTIONS, seconds=CAPACITY_SECONDS))
        base_summary = {**capacity.summary(wall), **busy.summary()}
        probes = {"health": ["/_oberon/health"], "page": [f"/e/{n}" for n in range(1, EVENT_COUNT + 1, 7)]}
        pipes = {name: multiprocessing.Pipe(duplex=False) for name in probes}
        probers = [multiprocessing.Process(target=probe, args=(base, paths, OVERLOAD_SECONDS, pipes[name][1]))
                   for name, paths in probes.items()]  # fmt: skip
        for prober in probers:
            prober.start()
        connections = BASE_CONNECTIONS * OVERLOAD_FACTOR
        busy = Busy(pid)
        overload, wall = asyncio.run(drive(base, event, connections=connections, seconds=OVERLOAD_SECONDS))
        overload_busy = busy.summary()
        health = health_summary(pipes["health"][0].recv())
        page_probe = pipes["page"][0].recv().summary(OVERLOAD_SECONDS)
        for prober in probers:
            prober.join()
    summary = {**overload.summary(wall), **overload_busy}
    c = base_summary["goodput_per_s"]
    shed = len(overload.stale) + len(overload.rejected)
    if c and shed:
        page_cpu = base_summary["server_cpu_s"] / base_summary["admitted"]
        shed_cpu = (summary["server_cpu_s"] - len(overload.admitted) * page_cpu) / shed
        summary["shed_cpu_us_estimate"] = round(shed_cpu * 1e6, 1)
    result = {
        "env": env,
        "capacity": {"connections": BASE_CONNECTIONS, **base_summary},
        "overload": {"connections": connections, **summary, "health": health, "page_probe": page_probe},
        "goodput_ratio": round(summary["goodput_per_s"] / c, 3) if c else None,
    }
    print(f"{name}: C = {c} req/s (p99 {base_summary['admitted_p99_ms']} ms) at {BASE_CONNECTIONS} connections; "
          f"at {connections}: goodput {summary['goodput_per_s']} req/s ({result['goodput_ratio']} of C; target ≥ 0.9), "
          f"admitted p99 {summary['admitted_p99_ms']} ms (≤ 250), shed {summary['shed_per_s']}/s p99 "
          f"{summary['shed_p99_ms']} ms (≤ 10; the probe's: admitted p99 {page_probe['admitted_p99_ms']} ms, shed p99 "
          f"{page_probe['shed_p99_ms']} ms of {page_probe['shed_per_s']}/s), "
          f"health p99 {health['p99_ms']} ms max {health['max_ms']} ms (≤ 50), "
          f"socket errors {summary['socket_errors']} (0), other statuses {summary['other_statuses']}; server busy "
          f"{base_summary['server_busy']} then {summary['server_busy']} (its core {base_summary['server_core_busy']} "
          f"then {summary['server_core_busy']}, steal {base_summary['server_core_steal']} then "
          f"{summary['server_core_steal']}), load core "
          f"{base_summary['load_core_busy']} "
          f"then {summary['load_core_busy']}, CPU per shed ≈ {summary.get('shed_cpu_us_estimate')} µs",
          flush=True)  # fmt: skip
    return result


def main(names: list[str]) -> None:
    RESULTS.mkdir(exist_ok=True)
    os.sched_setaffinity(0, {int(LOAD_CPU)})
    result: dict[str, Any] = {
        "command": " ".join(["bench/overload.py", *names]),
        "started": time.strftime("%FT%TZ", time.gmtime()),
    }
    for name in names or list(RUNS):
        result[name] = run(name, RUNS[name])
    result["load_average_at_end"] = os.getloadavg()
    out = RESULTS / f"overload-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"written: {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main(sys.argv[1:])
