"""The load benchmarks of issue 8: the renderer alone under wrk, pinned to its own core.

    .venv/bin/python bench/run.py                         # every scenario, once
    .venv/bin/python bench/run.py page-5 --runs 3         # one scenario, three times
    .venv/bin/python bench/run.py page-5 --profile        # and one extra run under py-spy
    .venv/bin/python bench/run.py page-5 --renderer-env OBERON_DEGRADED=normal   # a setting for the renderer
    .venv/bin/python bench/run.py page-5 --compare bench/results/bench-<time>.json   # exit 1 on a > 10 % req/s drop

Scenarios (README in this folder says what each measures):

- `page-5`: bench/site's page of five components, five data sources on a stand-in BFF over real
  HTTP (about 1 KB of JSON each, `no-store`), with 0 ms and 20 ms of backend delay; wrk -t1 -c64 -d15s.
- `page-5-cacheable`: the same, the stand-in answering `Cache-Control: max-age=5`.
- `page-5-changing`: page-5 at 0 ms with every answer's bytes different from the last (a counter), so
  nothing decoded or rendered for one page can serve the next: the cost of a page whose data changes.
- `composition-overhead`: one connection, 0 ms: the page's p50 minus a direct call's p50; again with
  changing answers.
- `cdn-hit`: the demo site through `oberon up --cdn` (Varnish), its pages cached.
- `slow-component`: bench/site's `/slow` (the same five cards, the third one's data source answering
  after 500 ms): time to first byte and to last byte over 30 sequential requests, from a raw socket.
- `event-page-split`: the demo's `/e/1` through `oberon up --split` (gateway, renderer, BFFs and stand-ins
  as separate processes, all on core 0); wrk -t1 -c64 -d15s; RSS of the whole process tree.

The renderer is `oberon serve renderer` (the split topology's renderer service: one uvicorn worker,
its observability on, no gateway) pinned to core 0; wrk and the stand-in run on core 1. Every
process this starts is stopped by its PID. Needs Debian's `wrk` (and `varnishd` for cdn-hit).
Results: bench/results/bench-<time>.json and .md; `--compare FILE` then compares req/s and p95 per case
with an earlier results file and exits 1 when a case's req/s fell more than 10 %.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import platform
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"
SITE = BENCH / "site" / "oberon.toml"
LUA = BENCH / "percentiles.lua"
RESULTS = BENCH / "results"
BACKEND_PORT = 18931  # bench/site/oberon.toml names it
SERVER_CPU = "0"
LOAD_CPU = "1"
START_TIMEOUT = 30.0
WARMUP_SECONDS = 3
SLOW_DELAY_MS = 500  # the slow-component scenario's one slow data source (the stand-in's BENCH_SLOW_DELAY_MS)
SLOW_TTFB_TARGET_MS = 20
SLOW_REQUESTS = 30
SLOW_WARMUP = 3
SLOW_MARKER = "card-slow-heading"  # in the slow card's markup: when it arrived, and that it rendered (no fallback)
MAX_DROP = 0.10  # --compare: a case fails when its req/s is more than this fraction below the baseline's
TARGETS = {
    "page-5": "≥ 800 req/s, p95 < 150 ms, 0 errors",
    "page-5-cacheable": "≥ 3000 req/s",
    "composition-overhead": "p50 overhead < 2 ms",
    "slow-component": f"first byte within {SLOW_TTFB_TARGET_MS} ms while the slow component is pending",
}
RSS_TARGET_MB = 200
# `--renderer-env NAME=VALUE`: settings for the renderer under test (e.g. OBERON_DEGRADED=normal), set once in main.
RENDERER_ENV: dict[str, str] = {}


@dataclass
class Result:
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


# ---------------------------------------------------------------- processes


def clean_environ(**overrides: str) -> dict[str, str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("OBERON_") and k != "PROMETHEUS_MULTIPROC_DIR"}
    environ.update(overrides)
    return environ


def pinned(cpu: str, argv: list[str]) -> list[str]:
    return ["taskset", "-c", cpu, *argv]  # taskset execs: the PID is the program's own


@contextlib.contextmanager
def process(argv: list[str], *, env: dict[str, str], log: Path, cwd: Path = ROOT) -> Iterator[subprocess.Popen[bytes]]:
    """`argv` started in the background, stopped by its PID (SIGTERM, then SIGKILL after 10 s)."""
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)


def wait_ready(url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{shlex.join(map(str, proc.args))} exited {proc.returncode}; see {log}")  # type: ignore[arg-type]
        try:
            if httpx.get(url, timeout=1).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"{url} not ready in {START_TIMEOUT:.0f} s; see {log}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def require_free(port: int) -> None:
    with socket.socket() as sock:
        if sock.connect_ex(("127.0.0.1", port)) == 0:
            raise SystemExit(f"port {port} is taken; bench/site/oberon.toml needs it for the stand-in BFF")


def rss_mb(pid: int) -> tuple[float, float]:
    """The process's resident set now and at its peak (VmRSS, VmHWM), in MB."""
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


def cpu_seconds(pids: Sequence[int]) -> float:
    """Time these processes (all their threads) have spent on a CPU (/proc/PID/schedstat, nanoseconds)."""
    total = 0
    for pid in pids:
        with contextlib.suppress(FileNotFoundError, ProcessLookupError):
            total += int(Path(f"/proc/{pid}/schedstat").read_text().split()[0])
    return total / 1e9


def host_ticks() -> tuple[int, int]:
    """The machine's CPU time so far (user … steal, in ticks) and the part of it the hypervisor stole."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    return sum(values), values[7]


def process_tree(pid: int) -> list[int]:
    """`pid` and its descendants, parents first (from /proc/PID/task/TID/children); gone ones are skipped."""
    pids, queue = [], [pid]
    while queue:
        current = queue.pop(0)
        tasks = Path(f"/proc/{current}/task")
        try:
            children = [int(c) for task in tasks.iterdir() for c in (task / "children").read_text().split()]
        except (FileNotFoundError, ProcessLookupError):
            continue
        pids.append(current)
        queue += children
    return pids


def status_kb(text: str, name: str) -> int:
    """A `Name:   123 kB` field of /proc/PID/status (or smaps_rollup) in kB, 0 if absent."""
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == name:
            return int(value.split()[0])
    return 0


def process_name(pid: int) -> str:
    """`serve renderer` → `renderer`; `oberon up` → `supervisor`; else the program's name."""
    argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    if "serve" in argv and argv.index("serve") + 1 < len(argv):
        return argv[argv.index("serve") + 1]
    if "up" in argv:
        return "supervisor"
    return Path(argv[0]).name


def tree_rss(pid: int) -> dict[str, Any]:
    """RSS (VmRSS), peak (VmHWM) and PSS of `pid` and every descendant, in MB, summed and per process.

    The RSS sum counts pages shared between the processes (the interpreter, libraries) once per process;
    PSS divides each shared page among its sharers, so its sum is the tree's real share of memory.
    """
    per: dict[str, float] = {}
    rss = peak = pss = 0
    for child in process_tree(pid):
        try:
            status = Path(f"/proc/{child}/status").read_text()
            rollup = Path(f"/proc/{child}/smaps_rollup").read_text()
            name = process_name(child)
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
        rss += status_kb(status, "VmRSS")
        peak += status_kb(status, "VmHWM")
        pss += status_kb(rollup, "Pss")
        key = name if name not in per else f"{name} ({child})"
        per[key] = round(status_kb(status, "VmRSS") / 1024, 1)
    return {"rss_mb": rss / 1024, "peak_rss_mb": peak / 1024, "pss_mb": pss / 1024, "processes": per}


def stop_leftovers(pids: Sequence[int]) -> list[int]:
    """SIGTERM, by PID, each of `pids` (descendants of a process we started) still running; the ones it was sent to.

    A process that exited and whose PID the OS reused for another program is left alone: only
    `python -m oberon` processes are ended.
    """
    ended = []
    for pid in pids:
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except (FileNotFoundError, ProcessLookupError):
            continue
        if b"oberon" not in argv:
            continue
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
            ended.append(pid)
    return ended


def site_file(checkout: Path = ROOT) -> Path:
    """The bench site's `oberon.toml` in `checkout`."""
    return checkout / SITE.relative_to(ROOT)


def build_site(checkout: Path = ROOT) -> None:
    """`oberon build` of the bench site with `checkout`'s own code (its bundles, which the renderer serves)."""
    build = subprocess.run([sys.executable, "-m", "oberon", "--site", str(site_file(checkout)), "build"],
                           cwd=checkout, env=clean_environ(), capture_output=True, text=True)  # fmt: skip
    if build.returncode != 0:
        raise SystemExit(f"oberon build of the bench site in {checkout} failed:\n{build.stdout}{build.stderr}")


def invocation(script: str) -> str:
    """The command line that ran `script`, relative to the checkout, for the results file."""
    return shlex.join([os.path.relpath(sys.executable, ROOT), os.path.relpath(script, ROOT), *sys.argv[1:]])


@contextlib.contextmanager
def backend(
    scratch: Path, *, delay_ms: int, cache_control: str, changing: bool = False
) -> Iterator[subprocess.Popen[bytes]]:
    require_free(BACKEND_PORT)
    argv = pinned(LOAD_CPU, [
        sys.executable, "-m", "uvicorn", "--app-dir", str(BENCH / "site" / "backend"), "app:app",
        "--host", "127.0.0.1", "--port", str(BACKEND_PORT), "--log-level", "warning", "--no-access-log",
    ])  # fmt: skip
    env = clean_environ(
        BENCH_DELAY_MS=str(delay_ms), BENCH_CACHE_CONTROL=cache_control, BENCH_CHANGING="1" if changing else "0"
    )
    log = scratch / "backend.log"
    with process(argv, env=env, log=log) as proc:
        wait_ready(f"http://127.0.0.1:{BACKEND_PORT}/data/1", proc, log)
        yield proc


@contextlib.contextmanager
def renderer(scratch: Path, checkout: Path = ROOT) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """The bench site's renderer, run from `checkout` (`python -m` imports that checkout's `oberon`)."""
    port = free_port()
    argv = pinned(SERVER_CPU, [
        sys.executable, "-m", "oberon", "--site", str(site_file(checkout)), "serve", "renderer", "--port", str(port),
    ])  # fmt: skip
    log = scratch / f"renderer-{port}.log"
    with process(argv, env=clean_environ(**RENDERER_ENV), log=log, cwd=checkout) as proc:
        wait_ready(f"http://127.0.0.1:{port}/_oberon/health", proc, log)
        yield proc, f"http://127.0.0.1:{port}"


# ---------------------------------------------------------------- load


def wrk(url: str, *, connections: int, seconds: int) -> dict[str, Any]:
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


# ---------------------------------------------------------------- scenarios

RENDERER_NOTE = "oberon serve renderer (no gateway), 1 uvicorn worker on core 0; wrk and the stand-in on core 1"


def page_5(
    scratch: Path, run: int, *, cache_control: str, scenario: str, delays: tuple[int, ...], changing: bool = False
) -> list[Result]:
    results = []
    answers = "; every answer's bytes new (BENCH_CHANGING=1)" if changing else ""
    for delay in delays:
        with (
            backend(scratch, delay_ms=delay, cache_control=cache_control, changing=changing),
            renderer(scratch) as (proc, base),
        ):
            result = measure(scenario, f"{scenario} {delay} ms", run, f"{base}/page", proc.pid, connections=64,
                             seconds=15, notes=f"{RENDERER_NOTE}; backend {delay} ms, Cache-Control: {cache_control}"
                             f"{answers}")  # fmt: skip
            result.extra["streamed_percent"] = streamed_percent(httpx.get(f"{base}/metrics", timeout=10).text)
            print(
                f"{result.case:<28} run {run}: {result.extra['streamed_percent']} % of the pages streamed", flush=True
            )
            results.append(result)
    return results


def streamed_percent(exposition: str) -> float | None:
    """The share of the pages rendered that were sent as a stream, from the renderer's `/metrics`."""
    totals = {"oberon_pages_streamed_total": 0.0, "oberon_page_render_duration_seconds_count": 0.0}
    for family in text_string_to_metric_families(exposition):
        for sample in family.samples:
            if sample.name in totals:
                totals[sample.name] += sample.value
    pages = totals["oberon_page_render_duration_seconds_count"]
    return round(100 * totals["oberon_pages_streamed_total"] / pages, 1) if pages else None


def composition_overhead(scratch: Path, run: int) -> list[Result]:
    """At one connection: the page's p50 minus a direct call's p50, with answers that repeat and that change."""
    results = []
    for changing in (False, True):
        answers = ", answers changing" if changing else ""
        case = "page, 1 connection" + answers
        note = RENDERER_NOTE + "; 5 data sources in parallel" + ("; every answer's bytes new" if changing else "")
        with (
            backend(scratch, delay_ms=0, cache_control="no-store", changing=changing) as be,
            renderer(scratch) as (proc, base),
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


def cdn_hit(scratch: Path, run: int) -> list[Result]:
    if shutil.which("varnishd") is None:
        raise SystemExit("cdn-hit needs Debian's varnishd: apt-get install -y varnish")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = scratch / "oberon-up.log"
    argv = pinned(SERVER_CPU, [sys.executable, "-m", "oberon", "up", "--cdn", "--port", str(port)])
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


# ---------------------------------------------------------------- time to first byte (slow-component)


def message_end(raw: bytes) -> int | None:
    """Where the HTTP/1.1 response in `raw` ends (Content-Length or chunked), None while it is incomplete.

    None also for a response delimited by the end of the connection (neither header): its end is the EOF.
    """
    head_end = raw.find(b"\r\n\r\n")
    if head_end < 0:
        return None
    headers = parse_headers(raw[:head_end])
    start = head_end + 4
    if "chunked" in headers.get("transfer-encoding", "").lower():
        pos = start
        while True:
            line_end = raw.find(b"\r\n", pos)
            if line_end < 0:
                return None
            try:
                size = int(raw[pos:line_end].split(b";")[0].strip(), 16)
            except ValueError:
                return None  # not chunked after all: read to the end of the connection
            if size == 0:  # the last chunk, then trailer lines up to an empty one
                pos = line_end + 2
                while True:
                    trailer_end = raw.find(b"\r\n", pos)
                    if trailer_end < 0:
                        return None
                    if trailer_end == pos:
                        return trailer_end + 2
                    pos = trailer_end + 2
            pos = line_end + 2 + size + 2
            if pos > len(raw):
                return None
    if "content-length" in headers:
        end = start + int(headers["content-length"])
        return end if len(raw) >= end else None
    return None


def parse_headers(head: bytes) -> dict[str, str]:
    """The header block (status line first, no final blank line) → lower-case names; the status line as `:status`."""
    lines = head.decode("latin-1").split("\r\n")
    headers = {":status": lines[0]}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return headers


def timeline(reads: Sequence[tuple[float, bytes]], start: float, marker: bytes = b"") -> dict[str, Any]:
    """One response as it arrived: `reads` are (perf_counter time, bytes) of each recv, `start` before connect.

    Milliseconds from `start` to: the first byte at all (`status_ms`, the status line), the first body byte
    (`body_ms`), the first read that completed `marker` (`marker_ms`) and the last byte (`last_ms`: the read
    that completed the message, else the last read before EOF). None where it never happened.
    """
    raw = b""
    out: dict[str, Any] = {"status": 0, "status_ms": None, "body_ms": None, "marker_ms": None, "last_ms": None,
                           "body_reads": 0, "bytes": 0, "complete": False, "headers": {}}  # fmt: skip
    head_end = -1
    for at, chunk in reads:
        ms = (at - start) * 1000
        before = len(raw)
        raw += chunk
        if out["status_ms"] is None and chunk:
            out["status_ms"] = ms
        if head_end < 0:
            head_end = raw.find(b"\r\n\r\n")
        if head_end >= 0 and len(raw) > head_end + 4:
            if out["body_ms"] is None:
                out["body_ms"] = ms
            if len(raw) - max(before, head_end + 4) > 0:
                out["body_reads"] += 1
        if marker and out["marker_ms"] is None and marker in raw[max(0, before - len(marker)) :]:
            out["marker_ms"] = ms
        out["last_ms"] = ms
        if message_end(raw) is not None:
            out["complete"] = True
            break
    out["bytes"] = len(raw)
    if head_end >= 0:
        headers = parse_headers(raw[:head_end])
        parts = headers[":status"].split()
        out["status"] = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
        out["headers"] = {k: v for k, v in headers.items() if k in ("content-length", "transfer-encoding",
                                                                      "x-oberon-mode", "content-type")}  # fmt: skip
        if "content-length" not in headers and "chunked" not in headers.get("transfer-encoding", ""):
            out["complete"] = bool(reads)  # delimited by EOF: the last read was the end
    return out


def fetch_timed(url: str, *, marker: bytes = b"", timeout: float = 10.0) -> dict[str, Any]:
    """One GET over a fresh raw socket (`Connection: close`, no compression), every recv timed."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    request = (f"GET {parts.path or '/'}{'?' + parts.query if parts.query else ''} HTTP/1.1\r\nHost: {host}:{port}\r\n"
               "User-Agent: oberon-bench\r\nAccept: text/html\r\nConnection: close\r\n\r\n").encode()  # fmt: skip
    reads: list[tuple[float, bytes]] = []
    raw = b""
    start = time.perf_counter()
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(request)
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                reads.append((time.perf_counter(), chunk))
                raw += chunk
                if message_end(raw) is not None:
                    break
        error = ""
    except OSError as exc:
        error = f"{type(exc).__name__}: {exc}"
    result = timeline(reads, start, marker)
    result["error"] = error or ("" if result["complete"] else "incomplete response")
    return result


def ttfb_client(url: str, *, requests: int, warmup: int, marker: str) -> dict[str, Any]:
    """`warmup` then `requests` sequential timed GETs of `url`: what `bench/run.py --ttfb-client` prints."""
    for _ in range(warmup):
        fetch_timed(url, marker=marker.encode())
    began = time.perf_counter()
    samples = [fetch_timed(url, marker=marker.encode()) for _ in range(requests)]
    return {"url": url, "seconds": time.perf_counter() - began, "samples": samples}


def percentile(values: Sequence[float], q: float) -> float | None:
    """The `q`-th percentile (0–100), linear between the closest ranks (numpy's default); None if no values."""
    ordered = sorted(values)
    if not ordered:
        return None
    rank = (len(ordered) - 1) * q / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def summarize_ttfb(samples: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """p50/p95 (and p99 of the last byte) of each timing over the samples that answered 200 in full."""
    good = [s for s in samples if s["status"] == 200 and not s["error"]]
    summary: dict[str, Any] = {"requests": len(samples), "ok": len(good), "errors": len(samples) - len(good)}
    for key, name in (("status_ms", "ttfb_status"), ("body_ms", "ttfb_body"), ("marker_ms", "slow_card"),
                      ("last_ms", "ttlb")):  # fmt: skip
        values = [s[key] for s in good if s[key] is not None]
        for q in (50, 95, 99):
            value = percentile(values, q)
            summary[f"{name}_p{q}_ms"] = None if value is None else round(value, 2)
    summary["marker_found"] = sum(1 for s in good if s["marker_ms"] is not None)
    summary["body_reads_p50"] = percentile([s["body_reads"] for s in good], 50)
    return summary


def slow_component(scratch: Path, run: int) -> list[Result]:
    """bench/site's `/slow`: one of five cards waits 500 ms for its data; when do the first and last bytes arrive?"""
    with backend(scratch, delay_ms=0, cache_control="no-store"), renderer(scratch) as (proc, base):
        url = f"{base}/slow"
        check = httpx.get(url, timeout=10)
        if check.status_code != 200 or SLOW_MARKER not in check.text:
            raise SystemExit(f"GET {url} answered {check.status_code} without the slow card; see {scratch}")
        argv = pinned(LOAD_CPU, [
            os.path.relpath(sys.executable, ROOT), os.path.relpath(__file__, ROOT), "--ttfb-client", url,
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
    fmt = lambda v: "—" if v is None else f"{v:.1f}"  # noqa: E731
    print(
        f"{result.case:<28} run {run}: first byte (status line) p50 {fmt(summary['ttfb_status_p50_ms'])} ms"
        f" p95 {fmt(summary['ttfb_status_p95_ms'])} ms; first body byte p50 {fmt(summary['ttfb_body_p50_ms'])}"
        f" p95 {fmt(summary['ttfb_body_p95_ms'])} ms; slow card p50 {fmt(summary['slow_card_p50_ms'])} ms;"
        f" last byte p50 {fmt(summary['ttlb_p50_ms'])} p95 {fmt(summary['ttlb_p95_ms'])} ms;"
        f" errors {result.errors}; X-Oberon-Mode {first['headers'].get('x-oberon-mode', '-')};"
        f" target {'met' if met else 'NOT met'}",
        flush=True,
    )
    return [result]


# ---------------------------------------------------------------- the split topology (event-page-split)


def event_page_split(scratch: Path, run: int) -> list[Result]:
    """The demo's event page through gateway → renderer → BFF → stand-ins, each its own process, all on core 0."""
    port = free_port()
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


def check_page(url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    """Fail loudly unless `url` answers 200 (retried while the services behind the gateway come up)."""
    deadline = time.monotonic() + START_TIMEOUT
    status, text = 0, ""
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{shlex.join(map(str, proc.args))} exited {proc.returncode}; see {log}")  # type: ignore[arg-type]
        try:
            answer = httpx.get(url, timeout=10)
            status, text = answer.status_code, answer.text
            if status == 200:
                return
        except httpx.HTTPError as exc:
            text = str(exc)
        time.sleep(0.5)
    raise SystemExit(f"GET {url} answered {status}, not 200, for {START_TIMEOUT:.0f} s: {text[:300]!r}; see {log}")


def profiled(scratch: Path, out: Path) -> dict[str, Any]:
    """One page-5 0 ms run with py-spy attached to the renderer: collapsed stacks and the top frames."""
    spy = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which("py-spy")
    if spy is None:
        raise SystemExit("--profile needs py-spy: .venv/bin/pip install py-spy")
    with backend(scratch, delay_ms=0, cache_control="no-store"), renderer(scratch) as (proc, base):
        wrk(f"{base}/page", connections=64, seconds=WARMUP_SECONDS)
        argv = ["taskset", "-c", LOAD_CPU, spy, "record", "--pid", str(proc.pid), "--duration", "15", "--rate", "200",
                "--format", "raw", "--output", str(out), "--nonblocking"]  # fmt: skip
        with process(argv, env=clean_environ(), log=scratch / "py-spy.log") as spy_proc:
            time.sleep(1)
            stats = wrk(f"{base}/page", connections=64, seconds=15)
            spy_proc.wait(timeout=60)
    summary = summarize_stacks(out)
    summary["rps_while_profiled"] = round(stats["rps"], 1)
    return summary


def summarize_stacks(path: Path, top: int = 25) -> dict[str, Any]:
    """Self and inclusive sample shares per function from py-spy's collapsed stacks."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack:
            continue
        count = int(count_text)
        frames = [short_frame(frame) for frame in stack.split(";")]
        frames = [frame for frame in frames if frame]
        total += count
        if frames:
            own[frames[-1]] += count
        for frame in set(frames):
            inclusive[frame] += count
    share = lambda counter: [(name, round(100 * n / total, 1)) for name, n in counter.most_common(top)]  # noqa: E731
    return {"samples": total, "self": share(own), "inclusive": share(inclusive), "buckets": buckets(path, total)}


def short_frame(frame: str) -> str:
    """`function (path/to/module.py:12)` → `module.py:function`, the line number dropped so lines add up."""
    name, _, where = frame.partition(" (")
    file = where.rstrip(")").rpartition(":")[0]
    parts = Path(file).parts
    for marker in ("site-packages", "main", "lib"):
        if marker in parts:
            parts = parts[parts.index(marker) + 1 :]
            break
    return f"{'/'.join(parts[-2:]) if parts else file}:{name}" if file else name


BUCKETS = {
    # the first matching package in a stack (innermost first) takes the sample
    "httpx/httpcore (client, pool, h11)": ("httpx/", "httpcore/", "h11/"),
    "jinja2 + markupsafe (rendering)": ("jinja2/", "markupsafe/"),
    "json (encode/decode)": ("json/",),
    "uvicorn (server, HTTP parsing)": ("uvicorn/",),
    "starlette (routing, responses)": ("starlette/",),
    "anyio/asyncio (event loop, tasks)": ("anyio/", "asyncio/", "selectors.py"),
    "prometheus_client / logging (observability)": ("prometheus_client/", "logging/"),
    "oberon (own code)": ("oberon/", "gateway/"),
}


def buckets(path: Path, total: int) -> list[tuple[str, float]]:
    """Each sample's innermost frame from a package we can name: where the CPU goes, by layer."""
    counts: Counter[str] = Counter()
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack:
            continue
        label = "other (interpreter, stdlib)"
        for frame in reversed(stack.split(";")):
            match = next((b for b, marks in BUCKETS.items() if any(m in frame for m in marks)), None)
            if match:
                label = match
                break
        counts[label] += int(count_text)
    return [(name, round(100 * n / max(total, 1), 1)) for name, n in counts.most_common()]


SCENARIOS = {
    "page-5": lambda s, r: page_5(s, r, cache_control="no-store", scenario="page-5", delays=(0, 20)),
    "page-5-cacheable": lambda s, r: page_5(s, r, cache_control="max-age=5", scenario="page-5-cacheable", delays=(0,)),
    "page-5-changing": lambda s, r: page_5(
        s, r, cache_control="no-store", scenario="page-5-changing", delays=(0,), changing=True
    ),
    "composition-overhead": composition_overhead,
    "cdn-hit": cdn_hit,
    "slow-component": slow_component,
    "event-page-split": event_page_split,
}


# ---------------------------------------------------------------- --compare


@dataclass(frozen=True)
class Comparison:
    """One case of this run against the same case of a baseline results file (medians over runs)."""

    case: str
    rps: float | None
    baseline_rps: float | None
    p95_ms: float | None
    baseline_p95_ms: float | None
    status: str  # "ok", "REGRESSION", "no baseline" (a new case), "missing" (in the baseline, not in this run)

    @property
    def rps_ratio(self) -> float | None:
        return self.rps / self.baseline_rps if self.rps is not None and self.baseline_rps else None

    @property
    def p95_ratio(self) -> float | None:
        return self.p95_ms / self.baseline_p95_ms if self.p95_ms is not None and self.baseline_p95_ms else None


def medians(results: Sequence[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per case (in order of first appearance): its scenario and the median req/s and p95 over its runs."""
    by_case: dict[str, list[dict[str, Any]]] = {}
    for r in results:
        by_case.setdefault(r["case"], []).append(r)
    return {
        case: {"scenario": runs[0].get("scenario", ""), "rps": statistics.median(float(r["rps"]) for r in runs),
               "p95_ms": statistics.median(float(r["p95_ms"]) for r in runs)}
        for case, runs in by_case.items()
    }  # fmt: skip


def compare(current: Sequence[dict[str, Any]], baseline: Sequence[dict[str, Any]], *,
            max_drop: float = MAX_DROP) -> list[Comparison]:  # fmt: skip
    """Each case of `current` against the same case of `baseline` (results as in bench-<time>.json).

    A case is a REGRESSION when its median req/s is more than `max_drop` below the baseline's median.
    A case of this run the baseline lacks is "no baseline"; a baseline case of a scenario this run ran
    but that is absent here is "missing". Baseline cases of scenarios not run are left out.
    """
    now, then = medians(current), medians(baseline)
    rows = []
    for case, stats in now.items():
        base = then.get(case)
        if base is None:
            rows.append(Comparison(case, stats["rps"], None, stats["p95_ms"], None, "no baseline"))
            continue
        slower = base["rps"] > 0 and stats["rps"] < base["rps"] * (1 - max_drop)
        rows.append(Comparison(case, stats["rps"], base["rps"], stats["p95_ms"], base["p95_ms"],
                               "REGRESSION" if slower else "ok"))  # fmt: skip
    scenarios = {stats["scenario"] for stats in now.values()}
    for case, base in then.items():
        if case not in now and base["scenario"] in scenarios:
            rows.append(Comparison(case, None, base["rps"], None, base["p95_ms"], "missing"))
    return rows


def regressed(rows: Sequence[Comparison]) -> bool:
    return any(row.status == "REGRESSION" for row in rows)


def comparison_table(rows: Sequence[Comparison], *, baseline: str, max_drop: float = MAX_DROP) -> str:
    """The comparison as a Markdown table, the regressions named below it."""
    num = lambda v, f: "—" if v is None else format(v, f)  # noqa: E731
    lines = [
        f"Compared with `{baseline}` (median per case; a case fails when its req/s is more than "
        f"{max_drop:.0%} below the baseline's):",
        "",
        "| case | req/s | baseline req/s | ratio | p95 ms | baseline p95 ms | p95 ratio | verdict |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        verdict = f"**{row.status}**" if row.status != "ok" else "ok"
        lines.append(
            f"| {row.case} | {num(row.rps, '.1f')} | {num(row.baseline_rps, '.1f')} | {num(row.rps_ratio, '.2f')}"
            f" | {num(row.p95_ms, '.2f')} | {num(row.baseline_p95_ms, '.2f')} | {num(row.p95_ratio, '.2f')}"
            f" | {verdict} |"
        )
    failed = [row.case for row in rows if row.status == "REGRESSION"]
    lines += ["", f"REGRESSION (req/s down more than {max_drop:.0%}): {', '.join(failed)}" if failed
              else "No case's req/s fell more than " f"{max_drop:.0%}."]  # fmt: skip
    return "\n".join(lines) + "\n"


def load_results(path: Path) -> list[dict[str, Any]]:
    """The `results` of a bench-<time>.json; SystemExit with the reason if it is not one."""
    try:
        data = json.loads(path.read_text())
        results = data["results"]
        if not isinstance(results, list) or not all({"case", "rps", "p95_ms"} <= set(r) for r in results):
            raise ValueError("results must be a list of cases with case, rps and p95_ms")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise SystemExit(f"--compare {path}: not a bench/run.py results file ({type(exc).__name__}: {exc})") from None
    return results


# ---------------------------------------------------------------- report


def machine() -> dict[str, Any]:
    cpu = next(
        (line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
         if line.startswith("model name")), platform.processor(),
    )  # fmt: skip
    wrk_version = subprocess.run(["wrk", "-v"], capture_output=True, text=True).stdout.splitlines()[0]
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "uvicorn": version("uvicorn"),
        "httpx": version("httpx"),
        "httpcore": version("httpcore"),
        "starlette": version("starlette"),
        "jinja2": version("jinja2"),
        "wrk": wrk_version,
    }


def commit(checkout: Path = ROOT) -> str:
    """The checkout's commit, and whether its tracked files differ from it: what code a result measured."""
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=checkout, capture_output=True, text=True)
    changed = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=checkout,
                             capture_output=True, text=True)  # fmt: skip
    return (head.stdout.strip() or "unknown") + (" + changes" if changed.stdout.strip() else "")


def _figure(value: float | None) -> str:
    """A figure of the table; `—` where a run did not measure it (results files from before it existed)."""
    return "—" if value is None else f"{value:g}"


def markdown(report: dict[str, Any]) -> str:
    env = report["machine"]
    lines = [
        f"# Benchmark {report['date']}",
        "",
        f"Command: `{report['command']}`",
        "",
        f"Machine: {env['nproc']} CPUs, {env['cpu']}, kernel {env['kernel']}.  ",
        f"Versions: Python {env['python']}, uvicorn {env['uvicorn']}, httpx {env['httpx']} (httpcore "
        f"{env['httpcore']}), starlette {env['starlette']}, jinja2 {env['jinja2']}, {env['wrk']}.  ",
        f"Code: commit {report.get('commit', 'not recorded')}. "
        f"Renderer environment: {report['renderer_env'] or 'defaults'}.",
        "",
        "| case | run | req/s | p50 ms | p95 ms | p99 ms | errors (non-2xx) | server RSS MB (peak)"
        " | server CPU µs/req | steal % | streamed % | target |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in report["results"]:
        target = TARGETS.get(r["scenario"], "")
        if "overhead_p50_ms" in r["extra"]:
            target += f" — measured {r['extra']['overhead_p50_ms']:.2f} ms"
        lines.append(
            f"| {r['case']} | {r['run']} | {r['rps']:.0f} | {r['p50_ms']:.2f} | {r['p95_ms']:.2f} | {r['p99_ms']:.2f}"
            f" | {r['errors']} ({r['non_2xx']}) | {r['rss_mb']:.0f} ({r['peak_rss_mb']:.0f})"
            f" | {_figure(r['extra'].get('server_cpu_us_per_request'))} | {_figure(r['extra'].get('steal_percent'))}"
            f" | {_figure(r['extra'].get('streamed_percent'))} | {target} |"
        )
    lines += ["", "Medians over runs:", "", "| case | req/s | p50 ms | p95 ms | p99 ms |", "|---|---|---|---|---|"]
    by_case: dict[str, list[dict[str, Any]]] = {}
    for r in report["results"]:
        by_case.setdefault(r["case"], []).append(r)
    for case, runs in by_case.items():
        med = {k: statistics.median(r[k] for r in runs) for k in ("rps", "p50_ms", "p95_ms", "p99_ms")}
        lines.append(f"| {case} | {med['rps']:.0f} | {med['p50_ms']:.2f} | {med['p95_ms']:.2f} | {med['p99_ms']:.2f} |")
    slow = [r for r in report["results"] if r["scenario"] == "slow-component"]
    if slow:
        lines += [
            "", "Slow component (ms from connect; the page's one slow data source answers after "
            f"{slow[0]['extra']['slow_delay_ms']} ms):", "",
            "| case | run | first byte (status line) p50 / p95 | first body byte p50 / p95 | slow card's markup p50"
            " | last byte p50 / p95 | body reads (p50) | ok / requests | target met? |",
            "|---|---|---|---|---|---|---|---|---|",
        ]  # fmt: skip
        ms = lambda v: "—" if v is None else f"{v:.1f}"  # noqa: E731
        for r in slow:
            e = r["extra"]
            lines.append(
                f"| {r['case']} | {r['run']} | {ms(e['ttfb_status_p50_ms'])} / {ms(e['ttfb_status_p95_ms'])}"
                f" | {ms(e['ttfb_body_p50_ms'])} / {ms(e['ttfb_body_p95_ms'])} | {ms(e['slow_card_p50_ms'])}"
                f" | {ms(e['ttlb_p50_ms'])} / {ms(e['ttlb_p95_ms'])} | {e['body_reads_p50']} | {e['ok']} / "
                f"{e['requests']} | {'yes' if e['met'] else '**no**'} |"
            )
    for r in report["results"]:
        if "rss_by_process_mb" in r["extra"]:
            per = ", ".join(f"{name} {mb:.0f}" for name, mb in r["extra"]["rss_by_process_mb"].items())
            lines += ["", f"{r['case']} run {r['run']}: RSS {r['rss_mb']:.0f} MB summed over the process tree"
                      f" (PSS {r['extra']['pss_mb']:.0f} MB): {per}."]  # fmt: skip
    lines += ["", "Setup per case:", ""]
    lines += sorted({f"- {r['case']}: {r['notes']}; `{r['wrk']}`" for r in report["results"]})
    if "comparison" in report:
        lines += ["", "## Comparison", "", report["comparison"]["table"].rstrip("\n")]
    if "profile" in report:
        prof = report["profile"]
        lines += ["", f"## Profile (py-spy, {prof['samples']} samples, {prof['rps_while_profiled']} req/s)", ""]
        lines += ["By layer (innermost named package):", ""] + [f"- {n}: {p} %" for n, p in prof["buckets"]]
        lines += ["", "Self time:", ""] + [f"- {p} % `{n}`" for n, p in prof["self"][:15]]
        lines += ["", "Inclusive:", ""] + [f"- {p} % `{n}`" for n, p in prof["inclusive"][:25]]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("scenarios", nargs="*", metavar="SCENARIO", help=f"{', '.join(SCENARIOS)} (default: all)")
    parser.add_argument("--runs", type=int, default=1, help="times each scenario runs (default 1)")
    parser.add_argument("--profile", action="store_true", help="one more page-5 0 ms run under py-spy")
    parser.add_argument(
        "--compare",
        "--baseline",
        type=Path,
        metavar="RESULTS.json",
        help="after the run, compare req/s and p95 per case with this earlier bench/results file; "
        f"exit 1 if a case's req/s is more than {MAX_DROP * 100:.0f} %% below it",
    )
    parser.add_argument("--ttfb-client", metavar="URL", help="(internal, what slow-component runs on core 1) "
                        "time sequential GETs of URL over a raw socket; print one TTFB_JSON line")  # fmt: skip
    parser.add_argument("--requests", type=int, default=SLOW_REQUESTS, help="--ttfb-client: measured requests")
    parser.add_argument("--warmup", type=int, default=SLOW_WARMUP, help="--ttfb-client: warm-up requests")
    parser.add_argument("--marker", default=SLOW_MARKER, help="--ttfb-client: text whose arrival is timed")
    parser.add_argument(
        "--renderer-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="an environment variable for the renderer (repeatable), e.g. OBERON_DEGRADED=normal",
    )
    args = parser.parse_args()
    if args.ttfb_client:
        client = ttfb_client(args.ttfb_client, requests=args.requests, warmup=args.warmup, marker=args.marker)
        print("TTFB_JSON " + json.dumps(client), flush=True)
        return 0
    baseline = load_results(args.compare) if args.compare else None  # a bad file fails before the run, not after
    RENDERER_ENV.update(pair.split("=", 1) for pair in args.renderer_env)
    if shutil.which("wrk") is None:
        raise SystemExit("needs Debian's wrk: apt-get install -y wrk")
    names = args.scenarios or list(SCENARIOS)
    unknown = [name for name in names if name not in SCENARIOS]
    if unknown:
        parser.error(f"unknown scenario {', '.join(unknown)}; choose from {', '.join(SCENARIOS)}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%SZ")
    scratch = RESULTS / f".scratch-{stamp}"  # process logs, kept only when a run fails
    scratch.mkdir()
    build_site()
    report: dict[str, Any] = {
        "command": invocation(__file__),
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "commit": commit(),
        "renderer_env": RENDERER_ENV,
        "results": [],
    }
    for run in range(1, args.runs + 1):
        for name in names:
            report["results"] += [vars(r) for r in SCENARIOS[name](scratch, run)]
    if args.profile:
        report["profile"] = profiled(scratch, RESULTS / f"profile-page-5-{stamp}.txt")
    shutil.rmtree(scratch)
    rows: list[Comparison] = []
    if baseline is not None:
        rows = compare(report["results"], baseline)
        path = args.compare.resolve()
        against = str(path.relative_to(ROOT) if path.is_relative_to(ROOT) else path)
        report["comparison"] = {
            "baseline": against,
            "max_drop": MAX_DROP,
            "regressed": regressed(rows),
            "rows": [{**vars(row), "rps_ratio": row.rps_ratio, "p95_ratio": row.p95_ratio} for row in rows],
            "table": comparison_table(rows, baseline=against),
        }
    (RESULTS / f"bench-{stamp}.json").write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    text = markdown(report)
    (RESULTS / f"bench-{stamp}.md").write_text(text)
    print("\n" + text)
    print(f"wrote bench/results/bench-{stamp}.json and .md")
    if regressed(rows):
        print(f"bench: REGRESSION: req/s more than {MAX_DROP:.0%} below {args.compare}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
