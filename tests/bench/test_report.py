"""bench/report.py: the results file's Markdown. No wrk, no servers."""

from __future__ import annotations

from bench.report import figure


def test_a_figure_missing_from_an_older_results_file_shows_as_a_dash() -> None:
    assert figure(None) == "—"
    assert figure(1234.5) == "1234.5" and figure(0.0) == "0"
