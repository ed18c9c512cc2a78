"""`--compare`: each case of this run against the same case of an earlier results file, by their medians."""

from __future__ import annotations

import json
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MAX_DROP = 0.10  # a case fails when its req/s is more than this fraction below the baseline's


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


def _num(value: float | None, spec: str) -> str:
    """A figure of the table; `—` for a case one side lacks."""
    return "—" if value is None else format(value, spec)


def comparison_table(rows: Sequence[Comparison], *, baseline: str, max_drop: float = MAX_DROP) -> str:
    """The comparison as a Markdown table, the regressions named below it."""
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
            f"| {row.case} | {_num(row.rps, '.1f')} | {_num(row.baseline_rps, '.1f')} | {_num(row.rps_ratio, '.2f')}"
            f" | {_num(row.p95_ms, '.2f')} | {_num(row.baseline_p95_ms, '.2f')} | {_num(row.p95_ratio, '.2f')}"
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
