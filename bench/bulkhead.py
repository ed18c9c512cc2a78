"""The `bulkhead` benchmark of issue 16: a failing or hanging dependency stays at its grain under load.

    .venv/bin/python bench/bulkhead.py                 # both parts (about 2.5 min)
    .venv/bin/python bench/bulkhead.py erroring        # part 1 only
    .venv/bin/python bench/bulkhead.py hanging         # part 2 only

1. `erroring`: `OBERON_FAULTS=venues=error:0.5 oberon up` on the demo site, then 1,000 event pages
   (`/e/1` … `/e/600`, then again from `/e/1`) from 16 connections. Target: 0 answers other than 200.
2. `hanging`: `oberon up` on `bench/bulkhead_site.toml` (the demo site, but the events BFF's
   `/events/{event_id}/venue` can hang: `BENCH_VENUE_HANG_MS`), once normal and once with that endpoint
   hanging (60 s: longer than any budget), both started side by side and driven in turn (8 rounds of
   5 s each, after 3 s of warm-up each), so that whatever else the machine does weighs on both alike:
   16 connections, 8 asking for event pages (which read the venue endpoint) and 8 for the home page
   (which does not). Target: the home page's p99 while the endpoint hangs within 10 % of its p99 in
   the normal run. The page cache is off (`OBERON_PAGE_CACHE_SECONDS=0`) so that every page is rendered.

The server is pinned to core 0 (its services all in one process, the embedded topology), this load
client (aiohttp, closed loop: each connection asks again as soon as it is answered) to core 1.
Latencies are from before a request is written to its last byte read. Each run writes
`bench/results/bulkhead-<UTC time>.json`.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import re
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from starlette.types import ASGIApp, Receive, Scope, Send

from bench.servers import process, wait_ready
from oberon.client.upstream import Upstreams
from oberon.runtime.supervisor import free_port

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
HANGING_SITE = ROOT / "bench" / "bulkhead_site.toml"
SERVER_CPU, LOAD_CPU = "0", "1"
CONNECTIONS = 16
ERRORING_PAGES = 1000
EVENT_COUNT = 600  # the stand-in catalogue's events
WARMUP_SECONDS = 3.0
MEASURE_SECONDS = 40.0  # per server, in ROUNDS turns
ROUNDS = 8
HANG_MS = 60_000
HANG_ENV = "BENCH_VENUE_HANG_MS"
NO_PAGE_CACHE = {"OBERON_PAGE_CACHE_SECONDS": "0"}
FALLBACK = re.compile(r'data-oberon-component="([^"]+)" data-oberon-version="[^"]+" data-oberon-outcome="fallback"')


def hanging_events_bff(upstreams: Upstreams) -> ASGIApp:
    """The events BFF, its venue endpoint held for `BENCH_VENUE_HANG_MS` before it is answered (0: not held)."""
    from bff.events import create_app

    app = create_app(upstreams)
    hang = float(os.environ.get(HANG_ENV, "0")) / 1000

    async def held(scope: Scope, receive: Receive, send: Send) -> None:
        if hang and scope["type"] == "http" and scope["path"].endswith("/venue"):
            await asyncio.sleep(hang)
        await app(scope, receive, send)

    return held


@dataclass
class Sample:
    """The answers of one kind of page: their latencies (seconds), statuses and fallbacks."""

    seconds: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    fallbacks: dict[str, int] = field(default_factory=dict)

    def add(self, seconds: float, status: int, body: str) -> None:
        self.seconds.append(seconds)
        self.statuses[status] = self.statuses.get(status, 0) + 1
        for name in set(FALLBACK.findall(body)):
            self.fallbacks[name] = self.fallbacks.get(name, 0) + 1

    def summary(self, wall: float) -> dict[str, Any]:
        ordered = sorted(self.seconds)

        def percentile(p: float) -> float:
            return round(ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))] * 1000, 1)

        return {
            "requests": len(ordered),
            "req_per_s": round(len(ordered) / wall, 1),
            "p50_ms": percentile(50),
            "p95_ms": percentile(95),
            "p99_ms": percentile(99),
            "max_ms": round(ordered[-1] * 1000, 1),
            "non_200": sum(count for status, count in self.statuses.items() if status != 200),
            "statuses": self.statuses,
            "fallbacks": self.fallbacks,
        }


@contextlib.contextmanager
def oberon_up(*, env: dict[str, str], site: Path | None = None) -> Iterator[str]:
    """`oberon up` on a free port, pinned to core 0; its base URL once its page answers; stopped by its PID."""
    port = free_port()
    environ = {k: v for k, v in os.environ.items() if not k.startswith("OBERON_") and k != "PROMETHEUS_MULTIPROC_DIR"}
    environ.update(env)
    environ.setdefault("OBERON_BUILD_DIR", str(ROOT / "build" / "assets"))
    site_args = ["--site", str(site)] if site else []
    argv = [sys.executable, "-m", "oberon", *site_args, "up", "--workers", "1", "--port", str(port)]
    log = RESULTS / f"bulkhead-server-{port}.log"
    base = f"http://127.0.0.1:{port}"
    with process(["taskset", "-c", SERVER_CPU, *argv], env=environ, log=log) as proc:
        wait_ready(base + "/_oberon/health", proc, log)
        yield base
    log.unlink(missing_ok=True)


async def drive(base: str, paths: dict[str, Callable[[], str]], *, per_kind: dict[str, int], until: Callable[[], bool],
                samples: dict[str, Sample]) -> None:  # fmt: skip
    """Closed-loop connections: `per_kind[kind]` of them ask for `paths[kind]()` until `until()` says stop."""
    connector = aiohttp.TCPConnector(limit=sum(per_kind.values()))
    timeout = aiohttp.ClientTimeout(total=10)
    async with aiohttp.ClientSession(base, connector=connector, timeout=timeout) as session:

        async def connection(kind: str) -> None:
            while not until():
                started = time.perf_counter()
                async with session.get(paths[kind]()) as response:
                    body = await response.text()
                samples[kind].add(time.perf_counter() - started, response.status, body)

        await asyncio.gather(*(connection(kind) for kind, n in per_kind.items() for _ in range(n)))


def erroring() -> dict[str, Any]:
    """Part 1: 1,000 event pages with venues failing half their calls."""
    ids = itertools.cycle(range(1, EVENT_COUNT + 1))
    issued = itertools.count(1)
    with oberon_up(env={"OBERON_FAULTS": "venues=error:0.5"}) as base:
        sample = {"event": Sample()}
        started = time.perf_counter()
        asyncio.run(drive(base, {"event": lambda: f"/e/{next(ids)}"}, per_kind={"event": CONNECTIONS},
                          until=lambda: next(issued) > ERRORING_PAGES, samples=sample))  # fmt: skip
        wall = time.perf_counter() - started
    return {"faults": "venues=error:0.5", "connections": CONNECTIONS, "event": sample["event"].summary(wall)}


def hanging() -> dict[str, Any]:
    """Part 2: the same mixed load against a normal server and one whose venue endpoint hangs, interleaved."""
    ids = itertools.cycle(range(1, EVENT_COUNT + 1))
    paths: dict[str, Callable[[], str]] = {"event": lambda: f"/e/{next(ids)}", "home": lambda: "/"}
    split = {"event": CONNECTIONS // 2, "home": CONNECTIONS // 2}
    runs = {"normal": 0, "hanging": HANG_MS}
    with contextlib.ExitStack() as stack:
        bases = {
            run: stack.enter_context(oberon_up(env={**NO_PAGE_CACHE, HANG_ENV: str(ms)}, site=HANGING_SITE))
            for run, ms in runs.items()
        }
        for base in bases.values():
            load(base, paths, split, WARMUP_SECONDS, {"event": Sample(), "home": Sample()})
        measured = {run: {"event": Sample(), "home": Sample()} for run in runs}
        rounds: dict[str, list[float]] = {run: [] for run in runs}
        wall = dict.fromkeys(runs, 0.0)
        for _ in range(ROUNDS):  # interleaved, so that what else the machine does weighs on both alike
            for run, base in bases.items():
                this_round = {"event": Sample(), "home": Sample()}
                wall[run] += load(base, paths, split, MEASURE_SECONDS / ROUNDS, this_round)
                rounds[run].append(this_round["home"].summary(1.0)["p99_ms"])
                for kind, sample in this_round.items():
                    measured[run][kind].seconds += sample.seconds
                    for status, n in sample.statuses.items():
                        measured[run][kind].statuses[status] = measured[run][kind].statuses.get(status, 0) + n
                    for name, n in sample.fallbacks.items():
                        measured[run][kind].fallbacks[name] = measured[run][kind].fallbacks.get(name, 0) + n
        guards = {run: scrape_guards(base) for run, base in bases.items()}
    return {
        run: {
            "venue_hang_ms": runs[run],
            **{kind: sample.summary(wall[run]) for kind, sample in measured[run].items()},
            "home_p99_ms_by_round": rounds[run],
            "guards": guards[run],
        }
        for run in runs
    }


def load(base: str, paths: dict[str, Callable[[], str]], split: dict[str, int], seconds: float,
         samples: dict[str, Sample]) -> float:  # fmt: skip
    """Drive `base` for `seconds`; the seconds it took."""
    end = time.monotonic() + seconds
    started = time.perf_counter()
    asyncio.run(drive(base, paths, per_kind=split, until=lambda: time.monotonic() > end, samples=samples))
    return time.perf_counter() - started


def scrape_guards(base: str) -> dict[str, str]:
    """The renderer's guard series for the events BFF from `/metrics`, as text lines (empty if not served)."""
    import httpx

    answer = httpx.get(base + "/metrics", timeout=5)
    if answer.status_code != 200:
        return {}
    wanted = ("oberon_bulkhead_", "oberon_endpoint_circuit_breaker_state", "oberon_circuit_breaker_state")
    lines = [
        line
        for line in answer.text.splitlines()
        if line.startswith(wanted) and 'service="renderer"' in line and 'upstream="events"' in line
        and not line.endswith(" 0.0")
    ]  # fmt: skip
    return {line.rsplit(" ", 1)[0]: line.rsplit(" ", 1)[1] for line in lines}


def main(parts: list[str]) -> None:
    RESULTS.mkdir(exist_ok=True)
    os.sched_setaffinity(0, {int(LOAD_CPU)})
    started = time.strftime("%FT%TZ", time.gmtime())
    result: dict[str, Any] = {"command": " ".join(["bench/bulkhead.py", *parts]), "started": started}
    if not parts or "erroring" in parts:
        result["erroring"] = erroring()
        print("erroring:", json.dumps(result["erroring"]))
    if not parts or "hanging" in parts:
        result.update(hanging())
        for run in ("normal", "hanging"):
            print(f"{run}:", json.dumps(result[run]))
        normal, hanging_p99 = result["normal"]["home"]["p99_ms"], result["hanging"]["home"]["p99_ms"]
        result["home_p99_ratio"] = round(hanging_p99 / normal, 3)
        # Each hanging round beside the normal round just before it: the host's swings weigh on both of a pair.
        pairs = zip(result["normal"]["home_p99_ms_by_round"], result["hanging"]["home_p99_ms_by_round"], strict=True)
        ratios = sorted(round(h / n, 2) for n, h in pairs)
        result["home_p99_pair_ratios"] = ratios
        result["home_p99_pair_ratio_median"] = (ratios[(len(ratios) - 1) // 2] + ratios[len(ratios) // 2]) / 2
        print(f"home page p99: {normal} ms normal, {hanging_p99} ms with the venue endpoint hanging "
              f"({result['home_p99_ratio']:.2f}x; target ≤ 1.10x); by round pair {ratios}, "
              f"median {result['home_p99_pair_ratio_median']:.2f}x")  # fmt: skip
    result["load_average_at_end"] = os.getloadavg()
    out = RESULTS / f"bulkhead-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"written: {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main(sys.argv[1:])
