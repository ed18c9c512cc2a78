"""The pure pieces of bench/ab.py: the verdict over pairs and its report. No wrk, no servers."""

from __future__ import annotations

from bench.ab import Pair, Run, Side, combine, markdown, verdict


def pair(a_rps: float, b_rps: float, a_cpu: float = 1000.0, b_cpu: float = 1000.0) -> Pair:
    return Pair(Side(a_rps, a_cpu, 60.0, 0), Side(b_rps, b_cpu, 55.0, 0), b_first=False)


def test_the_verdict_is_the_median_of_the_pairs_ratios_not_the_ratio_of_sums() -> None:
    pairs = [pair(1000, 1200, 1000, 800), pair(700, 770, 1400, 1300), pair(900, 880, 1100, 1150)]
    result = verdict(pairs)
    assert result["rps_ratio_median"] == 1.1  # 1.2, 1.1, 0.978: the host's slow middle pair weighs no more
    assert result["cpu_ratio_median"] == round(1300 / 1400, 3)
    assert result["b_won"] == 2 and result["pairs"] == 3 and not result["regressed"]


def test_b_regressed_only_when_its_median_is_more_than_10_percent_below_a() -> None:
    assert verdict([pair(1000, 850), pair(1000, 890), pair(1000, 1200)])["regressed"]  # median 0.89
    assert not verdict([pair(1000, 850), pair(1000, 900), pair(1000, 1200)])["regressed"]  # 0.90


def test_a_run_with_no_requests_has_no_ratio_rather_than_a_crash() -> None:
    assert pair(0, 100, 0, 900).rps_ratio == 0.0
    assert pair(0, 100, 0, 900).cpu_ratio == 0.0


def test_a_side_is_its_runs_requests_over_their_time_and_their_cpu_over_their_requests() -> None:
    side = combine([Run(4000, 4.0, 3.2, 60.0, 0), Run(2000, 4.0, 2.0, 80.0, 1), Run(3000, 4.0, 2.7, 70.0, 0)])
    assert side.rps == 750.0  # 9000 requests in 12 s, not the mean of three rates
    assert side.cpu_us_per_request == round(7.9 / 9000 * 1e6, 1)
    assert side.p95_ms == 70.0 and side.errors == 1
    assert combine([Run(0, 0.0, 0.0, 0.0, 0)]).rps == 0.0  # no crash on an empty run


def test_the_report_names_both_checkouts_and_every_pair() -> None:
    pairs = [pair(1000, 1200), pair(800, 1040)]
    report = {
        "date": "2026-11-27T10:00:00+00:00",
        "command": ".venv/bin/python bench/ab.py /tmp/old",
        "a": {"checkout": "/tmp/old", "commit": "9e36eea", "oberon": "/tmp/old/oberon"},
        "b": {"checkout": "/work/main", "commit": "acff041", "oberon": "/work/main/oberon"},
        "delay_ms": 0,
        "seconds": 4,
        "rounds": 2,
        "pairs": [
            {"a": vars(p.a), "b": vars(p.b), "b_first": p.b_first, "rps_ratio": p.rps_ratio, "cpu_ratio": p.cpu_ratio}
            for p in pairs
        ],
        "verdict": verdict(pairs),
    }
    text = markdown(report)
    assert "`/tmp/old` at 9e36eea" in text and "`/work/main` at acff041" in text
    assert "| 1 | A | 1000 | 1200 | 1.20 |" in text and "| 2 | A | 800 | 1040 | 1.30 |" in text
    assert "median of 2 pairs: 1.25" in text and "2 of 2" in text
