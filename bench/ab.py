"""Interleaved A/B of two checkouts' renderers on page-5: which code is faster, on a noisy host.

Between invocations of `bench/run.py` this host moves the same code's req/s by ±15 % or more, so
two invocations cannot tell a 10 % change from the weather. Here, for each pair, both renderers are
started afresh (one process of some code can be a few per cent faster than another of the same code
for its whole life) and run at once, pinned to core 0 (only the one under load uses it), behind the
same stand-in; wrk on core 1 alternates between them in short runs, A B B A (then B A A B in the
next pair, …), so that the host's drift falls on both alike. Each pair gives B's req/s and server
CPU per request as ratios to A's; the verdict is their median and how many pairs B won. It exits 1
when B's median req/s is more than 10 % below A's: a regression check that the host's drift does
not trip (an A/A run of one commit against itself gave 1.00).

    .venv/bin/python bench/ab.py /path/to/other/checkout            # A = that checkout, B = this one
    .venv/bin/python bench/ab.py /path/to/other/checkout --pairs 8 --delay-ms 20

The other checkout needs `bench/site` (any commit since the benchmarks landed) and uses this
checkout's virtualenv; make one with `git worktree add /tmp/old REV`. Writes
`bench/results/ab-<UTC time>.{json,md}` with the command, both commits and every run.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import shutil
import statistics
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench.checkout import RESULTS, ROOT, build_site, clean_environ, commit, site_file
from bench.compare import MAX_DROP
from bench.load import WARMUP_SECONDS, wrk
from bench.procfs import cpu_seconds
from bench.report import invocation, machine
from bench.servers import backend, renderer

PAIRS = 8
ROUNDS = 2  # runs of each side per pair
SECONDS = 4
CONNECTIONS = 64


@dataclass(frozen=True)
class Run:
    """One wrk run against one of the two renderers."""

    requests: int
    seconds: float
    cpu_seconds: float  # the renderer's, during the run
    p95_ms: float
    errors: int


@dataclass(frozen=True)
class Side:
    """One renderer's runs within a pair, combined."""

    rps: float
    cpu_us_per_request: float
    p95_ms: float
    errors: int


@dataclass(frozen=True)
class Pair:
    a: Side
    b: Side
    b_first: bool

    @property
    def rps_ratio(self) -> float:
        return self.b.rps / self.a.rps if self.a.rps else 0.0

    @property
    def cpu_ratio(self) -> float:
        return self.b.cpu_us_per_request / self.a.cpu_us_per_request if self.a.cpu_us_per_request else 0.0


def verdict(pairs: list[Pair], max_drop: float = MAX_DROP) -> dict[str, Any]:
    """The median of the pairs' ratios (B over A), how many pairs B served more pages in, and whether B regressed:
    its median req/s more than `max_drop` below A's."""
    rps_ratio = statistics.median(pair.rps_ratio for pair in pairs)
    return {
        "rps_ratio_median": round(rps_ratio, 3),
        "cpu_ratio_median": round(statistics.median(pair.cpu_ratio for pair in pairs), 3),
        "b_won": sum(pair.b.rps > pair.a.rps for pair in pairs),
        "pairs": len(pairs),
        "max_drop": max_drop,
        "regressed": rps_ratio < 1 - max_drop,
    }


def markdown(report: dict[str, Any]) -> str:
    a, b, v = report["a"], report["b"], report["verdict"]
    lines = [
        f"# A/B {report['date']}",
        "",
        f"Command: `{report['command']}`",
        "",
        f"- A: `{a['checkout']}` at {a['commit']} (imports `{a['oberon']}`)",
        f"- B: `{b['checkout']}` at {b['commit']} (imports `{b['oberon']}`)",
        f"- page-5, backend {report['delay_ms']} ms, `no-store`; fresh renderers for each pair, both on core 0;"
        f" wrk -t1 -c{CONNECTIONS} -d{report['seconds']}s on core 1, {report['rounds']} runs per side and pair in"
        " the order A B B A (B A A B in the next pair)",
        "",
        "| pair | first | A req/s | B req/s | B/A | A CPU µs/req | B CPU µs/req | B/A | errors A, B |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for index, pair in enumerate(report["pairs"], 1):
        pa, pb = pair["a"], pair["b"]
        lines.append(
            f"| {index} | {'B' if pair['b_first'] else 'A'} | {pa['rps']:.0f} | {pb['rps']:.0f}"
            f" | {pair['rps_ratio']:.2f} | {pa['cpu_us_per_request']:.0f} | {pb['cpu_us_per_request']:.0f}"
            f" | {pair['cpu_ratio']:.2f} | {pa['errors']}, {pb['errors']} |"
        )
    lines += [
        "",
        f"**B/A req/s, median of {v['pairs']} pairs: {v['rps_ratio_median']:.2f}** (B served more pages in"
        f" {v['b_won']} of {v['pairs']}); server CPU per request B/A: {v['cpu_ratio_median']:.2f}."
        + (f" **REGRESSION**: B's req/s more than {v['max_drop']:.0%} below A's." if v["regressed"] else ""),
        "",
    ]
    return "\n".join(lines)


def load(url: str, pid: int, seconds: int) -> Run:
    before = cpu_seconds([pid])
    stats = wrk(url, connections=CONNECTIONS, seconds=seconds)
    return Run(
        requests=stats["requests"],
        seconds=stats["duration_us"] / 1e6,
        cpu_seconds=cpu_seconds([pid]) - before,
        p95_ms=stats["p95_us"] / 1000,
        errors=stats["status"] + stats["socket_errors"],
    )


def combine(runs: list[Run]) -> Side:
    """One side of a pair: its runs' requests over their time, their CPU over their requests."""
    requests = sum(run.requests for run in runs)
    seconds = sum(run.seconds for run in runs)
    return Side(
        rps=round(requests / seconds, 1) if seconds else 0.0,
        cpu_us_per_request=round(sum(run.cpu_seconds for run in runs) / requests * 1e6, 1) if requests else 0.0,
        p95_ms=statistics.median(run.p95_ms for run in runs),
        errors=sum(run.errors for run in runs),
    )


def describe(checkout: Path) -> dict[str, str]:
    """The checkout, its commit, and the `oberon` package `python -m oberon` imports there (proof of which code ran)."""
    imported = subprocess.run([sys.executable, "-c", "import oberon; print(oberon.__file__)"], cwd=checkout,
                              env=clean_environ(), capture_output=True, text=True, check=True)  # fmt: skip
    return {
        "checkout": str(checkout),
        "commit": commit(checkout),
        "oberon": str(Path(imported.stdout.strip()).parent),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("baseline", type=Path, help="the other checkout (A); B is this one")
    parser.add_argument("--pairs", type=int, default=PAIRS, help=f"A/B pairs of runs (default {PAIRS})")
    parser.add_argument("--rounds", type=int, default=ROUNDS, help=f"wrk runs per side and pair (default {ROUNDS})")
    parser.add_argument("--seconds", type=int, default=SECONDS, help=f"seconds per wrk run (default {SECONDS})")
    parser.add_argument("--delay-ms", type=int, default=0, help="the stand-in's delay (default 0)")
    args = parser.parse_args()
    checkouts = {"a": args.baseline.resolve(), "b": ROOT}
    if not site_file(checkouts["a"]).is_file():
        parser.error(f"{checkouts['a']} has no {site_file(Path())}")
    described = {side: describe(path) for side, path in checkouts.items()}
    if described["a"]["oberon"] == described["b"]["oberon"]:
        parser.error(f"both sides would import the same code ({described['a']['oberon']})")
    for path in checkouts.values():
        build_site(path)
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%SZ")
    scratch = RESULTS / f".scratch-ab-{stamp}"
    scratch.mkdir()
    pairs: list[Pair] = []
    with backend(scratch, delay_ms=args.delay_ms, cache_control="no-store"):
        for index in range(args.pairs):
            b_first = index % 2 == 1  # A B, B A, …: a steady drift of the host falls on both sides alike
            order = ("b", "a") if b_first else ("a", "b")
            with contextlib.ExitStack() as stack:
                # Fresh processes for every pair: one process can run a few per cent faster or slower than
                # another of the same code for its whole life (memory layout), which pairs must not inherit.
                servers = {side: stack.enter_context(renderer(scratch, checkouts[side])) for side in order}
                for _, base in servers.values():
                    wrk(f"{base}/page", connections=CONNECTIONS, seconds=WARMUP_SECONDS)
                runs: dict[str, list[Run]] = {"a": [], "b": []}
                for turn in range(2 * args.rounds):  # A B B A A B …: within the pair, too, drift falls on both
                    side = order[0] if turn % 4 in (0, 3) else order[1]
                    proc, base = servers[side]
                    runs[side].append(load(f"{base}/page", proc.pid, args.seconds))
            pair = Pair(combine(runs["a"]), combine(runs["b"]), b_first)
            pairs.append(pair)
            print(f"pair {index + 1}: A {pair.a.rps:.0f} req/s {pair.a.cpu_us_per_request:.0f} µs/req, "
                  f"B {pair.b.rps:.0f} req/s {pair.b.cpu_us_per_request:.0f} µs/req: B/A {pair.rps_ratio:.2f}",
                  flush=True)  # fmt: skip
    report = {
        "command": invocation(__file__),
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "delay_ms": args.delay_ms,
        "seconds": args.seconds,
        "rounds": args.rounds,
        **described,
        "pairs": [asdict(pair) | {"rps_ratio": pair.rps_ratio, "cpu_ratio": pair.cpu_ratio} for pair in pairs],
        "verdict": verdict(pairs),
    }
    (RESULTS / f"ab-{stamp}.json").write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    text = markdown(report)
    (RESULTS / f"ab-{stamp}.md").write_text(text)
    print("\n" + text)
    print(f"wrote bench/results/ab-{stamp}.json and .md")
    shutil.rmtree(scratch)  # the processes' logs, kept only when a run failed
    if report["verdict"]["regressed"]:
        print(f"ab: REGRESSION: B's req/s more than {MAX_DROP:.0%} below A's", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
