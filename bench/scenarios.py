"""The scenarios `bench/run.py` names, each run once per `--runs` into a list of `Result`s, and issue 8's targets."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from functools import partial
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from bench.checkout import BENCH, ROOT, clean_environ, site_file
from bench.load import Result, measure
from bench.procfs import process_name, process_tree, rss_mb
from bench.servers import (
    BACKEND_PORT,
    LOAD_CPU,
    SERVER_CPU,
    admin_url,
    backend,
    check_page,
    pinned,
    process,
    renderer,
    service_port,
    stop_leftovers,
    wait_ready,
)
from bench.ttfb import ms, summarize_ttfb
from oberon.runtime.supervisor import free_port

SLOW_DELAY_MS = 500  # the slow-component scenario's one slow data source (the stand-in's BENCH_SLOW_DELAY_MS)
SLOW_TTFB_TARGET_MS = 20
SLOW_REQUESTS = 30
SLOW_WARMUP = 3
SLOW_MARKER = "card-slow-heading"  # in the slow card's markup: when it arrived, and that it rendered (no fallback)
TARGETS = {
    "page-5": "≥ 800 req/s, p95 < 150 ms, 0 errors",
    "page-5-cacheable": "≥ 3000 req/s",
    "composition-overhead": "p50 overhead < 2 ms",
    "slow-component": f"first byte within {SLOW_TTFB_TARGET_MS} ms while the slow component is pending",
}
RSS_TARGET_MB = 200

# A scenario's arguments: the folder for its processes' logs, the run's number, and the environment of the
# renderer under test (`--renderer-env`; the scenarios that run `oberon up` leave it out, as they always did).
Scenario = Callable[[Path, int, Mapping[str, str]], list[Result]]

RENDERER_NOTE = "oberon serve renderer (no gateway), 1 uvicorn worker on core 0; wrk and the stand-in on core 1"


def page_5(
    scratch: Path,
    run: int,
    renderer_env: Mapping[str, str],
    *,
    cache_control: str,
    scenario: str,
    delays: tuple[int, ...],
    changing: bool = False,
) -> list[Result]:
    """bench/site's page of five components under wrk -c64, with each of the stand-in's `delays`."""
    results = []
    answers = "; every answer's bytes new (BENCH_CHANGING=1)" if changing else ""
    for delay in delays:
        with (
            backend(scratch, delay_ms=delay, cache_control=cache_control, changing=changing),
            renderer(scratch, env=renderer_env) as (proc, base),
        ):
            result = measure(scenario, f"{scenario} {delay} ms", run, f"{base}/page", proc.pid, connections=64,
                             seconds=15, notes=f"{RENDERER_NOTE}; backend {delay} ms, Cache-Control: {cache_control}"
                             f"{answers}")  # fmt: skip
            exposition = httpx.get(f"{admin_url(base)}/metrics", timeout=10).text
            result.extra["streamed_percent"] = streamed_percent(exposition)
            print(
                f"{result.case:<28} run {run}: {result.extra['streamed_percent']} % of the pages streamed", flush=True
            )
            results.append(result)
    return results


def streamed_percent(exposition: str) -> float | None:
    """The share of the pages rendered that were sent as a stream, from the renderer's `/metrics` (admin listener)."""
    totals = {"oberon_pages_streamed_total": 0.0, "oberon_page_render_duration_seconds_count": 0.0}
    for family in text_string_to_metric_families(exposition):
        for sample in family.samples:
            if sample.name in totals:
                totals[sample.name] += sample.value
    pages = totals["oberon_page_render_duration_seconds_count"]
    return round(100 * totals["oberon_pages_streamed_total"] / pages, 1) if pages else None


def composition_overhead(scratch: Path, run: int, renderer_env: Mapping[str, str]) -> list[Result]:
    """At one connection: the page's p50 minus a direct call's p50, with answers that repeat and that change."""
    results = []
    for changing in (False, True):
        answers = ", answers changing" if changing else ""
        case = "page, 1 connection" + answers
        note = RENDERER_NOTE + "; 5 data sources in parallel" + ("; every answer's bytes new" if changing else "")
        with (
            backend(scratch, delay_ms=0, cache_control="no-store", changing=changing) as be,
            renderer(scratch, env=renderer_env) as (proc, base),
        ):
            page = measure("composition-overhead", case, run, f"{base}/page", proc.pid, connections=1, seconds=10,
                           notes=note)  # fmt: skip
            direct = measure("composition-overhead", "backend direct, 1 connection" + answers, run,
                             f"http://127.0.0.1:{BACKEND_PORT}/data/1", be.pid, connections=1, seconds=10,
                             notes="one call to the stand-in, no renderer")  # fmt: skip
        overhead = page.p50_ms - direct.p50_ms
        page.extra["overhead_p50_ms"] = round(overhead, 3)
        print(f"{'composition overhead':<28} run {run}: p50 {overhead:.2f} ms ({case}: page p50 - direct call p50)",
              flush=True)  # fmt: skip
        results += [page, direct]
    return results


def cdn_hit(scratch: Path, run: int, renderer_env: Mapping[str, str]) -> list[Result]:
    """The demo's home and event pages through `oberon up --cdn`, once Varnish has cached them."""
    if shutil.which("varnishd") is None:
        raise SystemExit("cdn-hit needs Debian's varnishd: apt-get install -y varnish")
    port = service_port()
    base = f"http://127.0.0.1:{port}"
    log = scratch / "oberon-up.log"
    argv = pinned(SERVER_CPU, [sys.executable, "-m", "oberon", "up", "--cdn", "--workers", "1", "--port", str(port)])
    results = []
    with process(argv, env=clean_environ(), log=log) as proc:
        wait_ready(f"{base}/_oberon/health", proc, log)
        time.sleep(3)  # Varnish's health probe marks the origin healthy
        for path, what in (("/", "home page: every component public"), ("/e/1", "event page: ESI island per visit")):
            for _ in range(3):
                answer = httpx.get(base + path, timeout=10)
            cache = answer.headers.get("x-cache")
            note = f"oberon up --cdn (Varnish + embedded site, all on core 0); {what}; X-Cache {cache}"
            results.append(measure("cdn-hit", f"cdn-hit {path}", run, base + path, proc.pid, connections=64,
                                   seconds=15, notes=note))  # fmt: skip
    return results


def slow_component(scratch: Path, run: int, renderer_env: Mapping[str, str]) -> list[Result]:
    """bench/site's `/slow`: one of five cards waits 500 ms for its data; when do the first and last bytes arrive?"""
    with backend(scratch, delay_ms=0, cache_control="no-store"), renderer(scratch, env=renderer_env) as (proc, base):
        url = f"{base}/slow"
        check = httpx.get(url, timeout=10)
        if check.status_code != 200 or SLOW_MARKER not in check.text:
            raise SystemExit(f"GET {url} answered {check.status_code} without the slow card; see {scratch}")
        argv = pinned(LOAD_CPU, [
            os.path.relpath(sys.executable, ROOT), os.path.relpath(BENCH / "run.py", ROOT), "--ttfb-client", url,
            "--requests", str(SLOW_REQUESTS), "--warmup", str(SLOW_WARMUP), "--marker", SLOW_MARKER,
        ])  # fmt: skip
        done = subprocess.run(argv, cwd=ROOT, env=clean_environ(), capture_output=True, text=True, check=True,
                              timeout=(SLOW_REQUESTS + SLOW_WARMUP) * 12 + 30)  # fmt: skip
        line = next(line for line in done.stdout.splitlines() if line.startswith("TTFB_JSON "))
        client = json.loads(line.removeprefix("TTFB_JSON "))
        rss, peak = rss_mb(proc.pid)
    summary = summarize_ttfb(client["samples"])
    first = next((s for s in client["samples"] if s["status"] == 200), client["samples"][0])
    met = summary["ttfb_body_p95_ms"] is not None and summary["ttfb_body_p95_ms"] < SLOW_TTFB_TARGET_MS
    summary.update(
        target=TARGETS["slow-component"] + " (p95 of the first body byte)",
        met=met,
        headers=first["headers"],
        slow_delay_ms=SLOW_DELAY_MS,
        samples_ms=[[s["status_ms"], s["body_ms"], s["marker_ms"], s["last_ms"]] for s in client["samples"]],
    )
    samples = client["samples"]
    ttlb = [s["last_ms"] for s in samples if s["status"] == 200 and not s["error"]]
    non_200 = sum(1 for s in samples if s["status"] not in (0, 200))  # answered, but not 200
    result = Result(
        scenario="slow-component", case="slow-component /slow", run=run, url=url, wrk=shlex.join(argv),
        rps=round(len(ttlb) / client["seconds"], 1) if client["seconds"] else 0.0,
        p50_ms=summary["ttlb_p50_ms"] or 0.0, p95_ms=summary["ttlb_p95_ms"] or 0.0,
        p99_ms=summary["ttlb_p99_ms"] or 0.0, errors=summary["errors"], non_2xx=non_200,
        socket_errors=summary["errors"] - non_200, requests=len(ttlb),
        rss_mb=round(rss, 1), peak_rss_mb=round(peak, 1),
        notes="oberon serve renderer (no gateway), 1 uvicorn worker on core 0; the client and the stand-in on core 1; "
        f"4 sources 0 ms, card-slow's /slow/3 {SLOW_DELAY_MS} ms (timeout_ms 1500); {SLOW_REQUESTS} sequential "
        f"requests after {SLOW_WARMUP}, a raw socket each (Connection: close); req/s and latencies are the last "
        f"byte's; X-Oberon-Mode {first['headers'].get('x-oberon-mode', '-')}",
        extra=summary,
    )  # fmt: skip
    print(
        f"{result.case:<28} run {run}: first byte (status line) p50 {ms(summary['ttfb_status_p50_ms'])} ms"
        f" p95 {ms(summary['ttfb_status_p95_ms'])} ms; first body byte p50 {ms(summary['ttfb_body_p50_ms'])}"
        f" p95 {ms(summary['ttfb_body_p95_ms'])} ms; slow card p50 {ms(summary['slow_card_p50_ms'])} ms;"
        f" last byte p50 {ms(summary['ttlb_p50_ms'])} p95 {ms(summary['ttlb_p95_ms'])} ms;"
        f" errors {result.errors}; X-Oberon-Mode {first['headers'].get('x-oberon-mode', '-')};"
        f" target {'met' if met else 'NOT met'}",
        flush=True,
    )
    return [result]


def event_page_split(scratch: Path, run: int, renderer_env: Mapping[str, str]) -> list[Result]:
    """The demo's event page through gateway → renderer → BFF → stand-ins, each its own process, all on core 0."""
    port = service_port()
    base = f"http://127.0.0.1:{port}"
    log = scratch / "oberon-up-split.log"
    argv = pinned(SERVER_CPU, [sys.executable, "-m", "oberon", "up", "--split", "--port", str(port)])
    seen: list[int] = []  # the supervisor's descendants, to make sure none outlives it
    try:
        with process(argv, env=clean_environ(), log=log) as proc:
            wait_ready(f"{base}/_oberon/health", proc, log)
            check_page(f"{base}/e/1", proc, log)
            tree = process_tree(proc.pid)
            seen = tree[1:]
            names = sorted(process_name(pid) for pid in tree)
            note = (f"oberon up --split ({len(tree)} processes: {', '.join(names)}), all on core 0; "
                    "RSS = sum of VmRSS over the tree (shared pages once per process; PSS in extra)")  # fmt: skip
            result = measure("event-page-split", "event-page-split /e/1", run, f"{base}/e/1", proc.pid,
                             connections=64, seconds=15, notes=note, tree=True)  # fmt: skip
            seen = sorted(set(seen) | set(process_tree(proc.pid)[1:]))
            print(f"{'':<28} processes (RSS MB): {result.extra['rss_by_process_mb']}; PSS sum "
                  f"{result.extra['pss_mb']} MB", flush=True)  # fmt: skip
    finally:
        time.sleep(1)  # the children watch their supervisor every 0.5 s
        if leftovers := stop_leftovers(seen):
            print(f"stopped leftover processes of oberon up --split: {leftovers}", flush=True)
    return [result]


WORKERS_TARGET = 1.8  # issue 16: req/s of 2 workers on two cores over 1 worker on one


def workers(scratch: Path, run: int, renderer_env: Mapping[str, str]) -> list[Result]:
    """bench/site's page through `oberon up --workers N` (gateway + renderer in each worker): 1 worker pinned to
    core 0, then 2 workers pinned to cores 0 and 1; the stand-in BFF, redis (the session store two workers need;
    these anonymous pages never touch it) and wrk on core 1 for both."""
    if shutil.which("redis-server") is None:
        raise SystemExit("workers needs redis-server: apt-get install -y redis-server")
    results = []
    redis_port = free_port()
    redis_argv = pinned(LOAD_CPU, ["redis-server", "--port", str(redis_port), "--save", "", "--appendonly", "no"])
    with (
        backend(scratch, delay_ms=0, cache_control="no-store"),
        process(redis_argv, env=clean_environ(), log=scratch / "redis.log"),
    ):
        for count, cpus in ((1, SERVER_CPU), (2, f"{SERVER_CPU},{LOAD_CPU}")):
            port = service_port()
            base = f"http://127.0.0.1:{port}"
            argv = pinned(cpus, [
                sys.executable, "-m", "oberon", "--site", str(site_file()), "up", "--workers", str(count),
                "--port", str(port),
            ])  # fmt: skip
            log = scratch / f"oberon-up-workers-{count}.log"
            env = clean_environ(OBERON_SESSION_STORE=f"redis://127.0.0.1:{redis_port}/0")
            with process(argv, env=env, log=log) as proc:
                wait_ready(f"{admin_url(base)}/_oberon/health", proc, log)
                check_page(f"{base}/page", proc, log)
                note = (f"oberon up --workers {count} on core(s) {cpus} (supervisor and workers); wrk, the stand-in "
                        f"and redis on core {LOAD_CPU}")  # fmt: skip
                result = measure("workers", f"workers {count}, core(s) {cpus}", run, f"{base}/page", proc.pid,
                                 connections=64, seconds=15, notes=note, tree=True)  # fmt: skip
            results.append(result)
    one, two = results
    ratio = round(two.rps / one.rps, 2) if one.rps else None
    two.extra["speedup_over_one_worker"] = ratio
    print(f"{'workers':<28} run {run}: 2 workers / 1 worker = {ratio} (target {WORKERS_TARGET})", flush=True)
    return results


SCENARIOS: dict[str, Scenario] = {
    "page-5": partial(page_5, cache_control="no-store", scenario="page-5", delays=(0, 20)),
    "page-5-cacheable": partial(page_5, cache_control="max-age=5", scenario="page-5-cacheable", delays=(0,)),
    "page-5-changing": partial(
        page_5, cache_control="no-store", scenario="page-5-changing", delays=(0,), changing=True
    ),
    "composition-overhead": composition_overhead,
    "cdn-hit": cdn_hit,
    "slow-component": slow_component,
    "event-page-split": event_page_split,
    "workers": workers,
}
