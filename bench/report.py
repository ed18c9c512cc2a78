"""A results file's parts: the command that made it, the machine it ran on, and its Markdown."""

from __future__ import annotations

import os
import platform
import shlex
import statistics
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path
from typing import Any

from bench.checkout import ROOT
from bench.scenarios import TARGETS
from bench.ttfb import ms


def invocation(script: str) -> str:
    """The command line that ran `script`, relative to the checkout, for the results file."""
    return shlex.join([os.path.relpath(sys.executable, ROOT), os.path.relpath(script, ROOT), *sys.argv[1:]])


def machine() -> dict[str, Any]:
    """The CPUs, kernel and versions that a result's figures depend on."""
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


def figure(value: float | None) -> str:
    """A figure of the table; `—` where a run did not measure it (results files from before it existed)."""
    return "—" if value is None else f"{value:g}"


def markdown(report: dict[str, Any]) -> str:
    """bench-<time>.md: every run, the medians, the slow component, the process trees, the comparison, the profile."""
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
            f" | {figure(r['extra'].get('server_cpu_us_per_request'))} | {figure(r['extra'].get('steal_percent'))}"
            f" | {figure(r['extra'].get('streamed_percent'))} | {target} |"
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
