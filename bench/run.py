"""The load benchmarks of issue 8: the renderer alone under wrk, pinned to its own core.

    .venv/bin/python bench/run.py                         # every scenario, once
    .venv/bin/python bench/run.py page-5 --runs 3         # one scenario, three times
    .venv/bin/python bench/run.py page-5 --profile        # and one extra run under py-spy
    .venv/bin/python bench/run.py page-5 --renderer-env OBERON_DEGRADED=normal   # a setting for the renderer

Scenarios (README in this folder says what each measures):

- `page-5`: bench/site's page of five components, five data sources on a stand-in BFF over real
  HTTP (about 1 KB of JSON each, `no-store`), with 0 ms and 20 ms of backend delay; wrk -t1 -c64 -d15s.
- `page-5-cacheable`: the same, the stand-in answering `Cache-Control: max-age=5`.
- `composition-overhead`: one connection, 0 ms: the page's p50 minus a direct call's p50.
- `cdn-hit`: the demo site through `oberon up --cdn` (Varnish), its pages cached.

The renderer is `oberon serve renderer` (the split topology's renderer service: one uvicorn worker,
its observability on, no gateway) pinned to core 0; wrk and the stand-in run on core 1. Every
process this starts is stopped by its PID. Needs Debian's `wrk` (and `varnishd` for cdn-hit).
Results: bench/results/bench-<time>.json and .md.
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
import socket
import statistics
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Any

import httpx

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
TARGETS = {
    "page-5": "≥ 800 req/s, p95 < 150 ms, 0 errors",
    "page-5-cacheable": "≥ 3000 req/s",
    "composition-overhead": "p50 overhead < 2 ms",
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
def process(argv: list[str], *, env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """`argv` started in the background, stopped by its PID (SIGTERM, then SIGKILL after 10 s)."""
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
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


@contextlib.contextmanager
def backend(scratch: Path, *, delay_ms: int, cache_control: str) -> Iterator[subprocess.Popen[bytes]]:
    require_free(BACKEND_PORT)
    argv = pinned(LOAD_CPU, [
        sys.executable, "-m", "uvicorn", "--app-dir", str(BENCH / "site" / "backend"), "app:app",
        "--host", "127.0.0.1", "--port", str(BACKEND_PORT), "--log-level", "warning", "--no-access-log",
    ])  # fmt: skip
    env = clean_environ(BENCH_DELAY_MS=str(delay_ms), BENCH_CACHE_CONTROL=cache_control)
    log = scratch / "backend.log"
    with process(argv, env=env, log=log) as proc:
        wait_ready(f"http://127.0.0.1:{BACKEND_PORT}/data/1", proc, log)
        yield proc


@contextlib.contextmanager
def renderer(scratch: Path) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    port = free_port()
    argv = pinned(SERVER_CPU, [
        sys.executable, "-m", "oberon", "--site", str(SITE), "serve", "renderer", "--port", str(port),
    ])  # fmt: skip
    log = scratch / "renderer.log"
    with process(argv, env=clean_environ(**RENDERER_ENV), log=log) as proc:
        wait_ready(f"http://127.0.0.1:{port}/_oberon/health", proc, log)
        yield proc, f"http://127.0.0.1:{port}"


# ---------------------------------------------------------------- load


def wrk(url: str, *, connections: int, seconds: int) -> dict[str, Any]:
    argv = ["taskset", "-c", LOAD_CPU, "wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--timeout", "5s",
            "-s", str(LUA), url]  # fmt: skip
    done = subprocess.run(argv, capture_output=True, text=True, check=True, timeout=seconds + 30)
    line = next(line for line in done.stdout.splitlines() if line.startswith("WRK_JSON "))
    stats: dict[str, Any] = json.loads(line.removeprefix("WRK_JSON "))
    stats["command"] = shlex.join(argv)
    stats["rps"] = stats["requests"] / (stats["duration_us"] / 1e6)
    stats["socket_errors"] = stats["connect"] + stats["read"] + stats["write"] + stats["timeout"]
    return stats


def measure(scenario: str, case: str, run: int, url: str, pid: int, *, connections: int, seconds: int,
            notes: str = "") -> Result:  # fmt: skip
    wrk(url, connections=connections, seconds=WARMUP_SECONDS)  # connections, caches and code paths warm
    stats = wrk(url, connections=connections, seconds=seconds)
    rss, peak = rss_mb(pid)
    result = Result(
        scenario=scenario, case=case, run=run, url=url, wrk=stats["command"], rps=round(stats["rps"], 1),
        p50_ms=stats["p50_us"] / 1000, p95_ms=stats["p95_us"] / 1000, p99_ms=stats["p99_us"] / 1000,
        errors=stats["status"] + stats["socket_errors"], non_2xx=stats["status"],
        socket_errors=stats["socket_errors"], requests=stats["requests"], rss_mb=round(rss, 1),
        peak_rss_mb=round(peak, 1), notes=notes,
    )  # fmt: skip
    print(
        f"{case:<28} run {run}: {result.rps:8.1f} req/s  p50 {result.p50_ms:7.2f} ms  p95 {result.p95_ms:7.2f} ms"
        f"  p99 {result.p99_ms:7.2f} ms  errors {result.errors} ({result.non_2xx} non-2xx)  RSS {result.rss_mb} MB"
        f" (peak {result.peak_rss_mb})",
        flush=True,
    )
    return result


# ---------------------------------------------------------------- scenarios

RENDERER_NOTE = "oberon serve renderer (no gateway), 1 uvicorn worker on core 0; wrk and the stand-in on core 1"


def page_5(scratch: Path, run: int, *, cache_control: str, scenario: str, delays: tuple[int, ...]) -> list[Result]:
    results = []
    for delay in delays:
        with backend(scratch, delay_ms=delay, cache_control=cache_control), renderer(scratch) as (proc, base):
            results.append(
                measure(scenario, f"{scenario} {delay} ms", run, f"{base}/page", proc.pid, connections=64, seconds=15,
                        notes=f"{RENDERER_NOTE}; backend {delay} ms, Cache-Control: {cache_control}")
            )  # fmt: skip
    return results


def composition_overhead(scratch: Path, run: int) -> list[Result]:
    with backend(scratch, delay_ms=0, cache_control="no-store") as be, renderer(scratch) as (proc, base):
        page = measure("composition-overhead", "page, 1 connection", run, f"{base}/page", proc.pid,
                       connections=1, seconds=10, notes=RENDERER_NOTE + "; 5 data sources in parallel")  # fmt: skip
        direct = measure("composition-overhead", "backend direct, 1 connection", run,
                         f"http://127.0.0.1:{BACKEND_PORT}/data/1", be.pid, connections=1, seconds=10,
                         notes="one call to the stand-in, no renderer")  # fmt: skip
    overhead = page.p50_ms - direct.p50_ms
    page.extra["overhead_p50_ms"] = round(overhead, 3)
    print(f"{'composition overhead':<28} run {run}: p50 {overhead:.2f} ms (page p50 - direct call p50)", flush=True)
    return [page, direct]


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
    "composition-overhead": composition_overhead,
    "cdn-hit": cdn_hit,
}


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
        f"Renderer environment: {report['renderer_env'] or 'defaults'}.",
        "",
        "| case | run | req/s | p50 ms | p95 ms | p99 ms | errors (non-2xx) | server RSS MB (peak) | target |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in report["results"]:
        target = TARGETS.get(r["scenario"], "")
        if "overhead_p50_ms" in r["extra"]:
            target += f" — measured {r['extra']['overhead_p50_ms']:.2f} ms"
        lines.append(
            f"| {r['case']} | {r['run']} | {r['rps']:.0f} | {r['p50_ms']:.2f} | {r['p95_ms']:.2f} | {r['p99_ms']:.2f}"
            f" | {r['errors']} ({r['non_2xx']}) | {r['rss_mb']:.0f} ({r['peak_rss_mb']:.0f}) | {target} |"
        )
    lines += ["", "Medians over runs:", "", "| case | req/s | p50 ms | p95 ms | p99 ms |", "|---|---|---|---|---|"]
    by_case: dict[str, list[dict[str, Any]]] = {}
    for r in report["results"]:
        by_case.setdefault(r["case"], []).append(r)
    for case, runs in by_case.items():
        med = {k: statistics.median(r[k] for r in runs) for k in ("rps", "p50_ms", "p95_ms", "p99_ms")}
        lines.append(f"| {case} | {med['rps']:.0f} | {med['p50_ms']:.2f} | {med['p95_ms']:.2f} | {med['p99_ms']:.2f} |")
    lines += ["", "Setup per case:", ""]
    lines += sorted({f"- {r['case']}: {r['notes']}; `{r['wrk']}`" for r in report["results"]})
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
        "--renderer-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="an environment variable for the renderer (repeatable), e.g. OBERON_DEGRADED=normal",
    )
    args = parser.parse_args()
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
    build = subprocess.run([sys.executable, "-m", "oberon", "--site", str(SITE), "build"], cwd=ROOT,
                           env=clean_environ(), capture_output=True, text=True)  # fmt: skip
    if build.returncode != 0:
        raise SystemExit(f"oberon build of bench/site failed:\n{build.stdout}{build.stderr}")
    report: dict[str, Any] = {
        "command": shlex.join([os.path.relpath(sys.executable, ROOT), os.path.relpath(__file__, ROOT), *sys.argv[1:]]),
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "renderer_env": RENDERER_ENV,
        "results": [],
    }
    for run in range(1, args.runs + 1):
        for name in names:
            report["results"] += [vars(r) for r in SCENARIOS[name](scratch, run)]
    if args.profile:
        report["profile"] = profiled(scratch, RESULTS / f"profile-page-5-{stamp}.txt")
    shutil.rmtree(scratch)
    (RESULTS / f"bench-{stamp}.json").write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    text = markdown(report)
    (RESULTS / f"bench-{stamp}.md").write_text(text)
    print("\n" + text)
    print(f"wrote bench/results/bench-{stamp}.json and .md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
