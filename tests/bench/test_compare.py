"""bench/compare.py: `--compare`'s verdict per case, its table, and the results files it reads. No wrk, no servers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bench.compare import compare, comparison_table, load_results, regressed


def case(name: str, rps: float, p95: float = 100.0, *, scenario: str = "page-5", run: int = 1) -> dict[str, Any]:
    return {"scenario": scenario, "case": name, "run": run, "rps": rps, "p95_ms": p95}


def test_a_9_percent_drop_passes() -> None:
    rows = compare([case("page-5 0 ms", 91.0)], [case("page-5 0 ms", 100.0)])
    assert [row.status for row in rows] == ["ok"]
    assert rows[0].rps_ratio == pytest.approx(0.91)
    assert not regressed(rows)


def test_an_11_percent_drop_fails() -> None:
    rows = compare([case("page-5 0 ms", 89.0, 130.0)], [case("page-5 0 ms", 100.0, 100.0)])
    assert [row.status for row in rows] == ["REGRESSION"]
    assert rows[0].p95_ratio == pytest.approx(1.3)
    assert regressed(rows)
    table = comparison_table(rows, baseline="bench/results/old.json")
    assert "**REGRESSION**" in table and "REGRESSION (req/s down more than 10%): page-5 0 ms" in table


def test_exactly_10_percent_is_not_more_than_10() -> None:
    assert not regressed(compare([case("c", 90.0)], [case("c", 100.0)]))


def test_faster_is_ok() -> None:
    rows = compare([case("c", 300.0)], [case("c", 100.0)])
    assert rows[0].status == "ok" and rows[0].rps_ratio == pytest.approx(3.0)


def test_missing_cases_are_reported_not_crashed() -> None:
    current = [case("page-5 0 ms", 100.0), case("slow-component /slow", 2.0, scenario="slow-component")]
    baseline = [
        case("page-5 0 ms", 100.0),
        case("page-5 20 ms", 100.0),  # its scenario ran, the case did not: missing
        case("cdn-hit /", 9000.0, scenario="cdn-hit"),  # a scenario not run this time: left out
    ]
    rows = compare(current, baseline)
    assert {row.case: row.status for row in rows} == {
        "page-5 0 ms": "ok",
        "slow-component /slow": "no baseline",
        "page-5 20 ms": "missing",
    }
    assert not regressed(rows)
    table = comparison_table(rows, baseline="b.json")
    assert "| slow-component /slow | 2.0 | — | — |" in table
    assert "No case's req/s fell more than 10%." in table


def test_runs_are_compared_by_their_median() -> None:
    current = [case("c", rps, run=n) for n, rps in enumerate((50.0, 95.0, 99.0), 1)]  # median 95: ok
    baseline = [case("c", rps, run=n) for n, rps in enumerate((100.0, 10.0, 200.0), 1)]  # median 100
    rows = compare(current, baseline)
    assert rows[0].rps == 95.0 and rows[0].baseline_rps == 100.0 and rows[0].status == "ok"


def test_a_zero_baseline_has_no_ratio() -> None:
    rows = compare([case("c", 5.0)], [case("c", 0.0, 0.0)])
    assert rows[0].status == "ok" and rows[0].rps_ratio is None and rows[0].p95_ratio is None


def test_load_results_refuses_a_file_that_is_not_a_results_file(tmp_path: Path) -> None:
    good = tmp_path / "good.json"
    good.write_text(json.dumps({"results": [case("c", 1.0)]}))
    assert load_results(good)[0]["case"] == "c"
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"cases": []}))
    with pytest.raises(SystemExit, match="not a bench/run.py results file"):
        load_results(bad)
    with pytest.raises(SystemExit, match="not a bench/run.py results file"):
        load_results(tmp_path / "absent.json")
