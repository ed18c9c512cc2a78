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
import datetime
import json
import shutil
import sys
from pathlib import Path
from typing import Any

from bench.checkout import RESULTS, ROOT, build_site, commit
from bench.compare import MAX_DROP, Comparison, compare, comparison_table, load_results, regressed
from bench.profiling import profiled
from bench.report import invocation, machine, markdown
from bench.scenarios import SCENARIOS, SLOW_MARKER, SLOW_REQUESTS, SLOW_WARMUP
from bench.ttfb import ttfb_client


def main() -> int:
    """Run the scenarios named on the command line and write their results; 1 if `--compare` found a regression."""
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
    renderer_env = dict(pair.split("=", 1) for pair in args.renderer_env)
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
        "renderer_env": renderer_env,
        "results": [],
    }
    for run in range(1, args.runs + 1):
        for name in names:
            report["results"] += [vars(r) for r in SCENARIOS[name](scratch, run, renderer_env)]
    if args.profile:
        report["profile"] = profiled(scratch, RESULTS / f"profile-page-5-{stamp}.txt", renderer_env=renderer_env)
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
