"""bench/load.py: wrk's output as bench/percentiles.lua prints it. No wrk, no servers."""

from __future__ import annotations

import pytest

from bench.load import parse_wrk


def test_parse_wrk_reads_the_lua_line() -> None:
    stdout = (
        "Running 15s test @ http://127.0.0.1:1/page\n  1 threads and 64 connections\n"
        'WRK_JSON {"requests":3000,"duration_us":15000000,"bytes":1,"p50_us":1000,"p95_us":2000,"p99_us":3000,'
        '"max_us":4000,"mean_us":1100.5,"connect":0,"read":2,"write":0,"status":5,"timeout":1}\n'
    )
    stats = parse_wrk(stdout)
    assert stats["rps"] == pytest.approx(200.0)
    assert stats["socket_errors"] == 3 and stats["status"] == 5 and stats["p95_us"] == 2000


def test_parse_wrk_without_the_lua_line_says_so() -> None:
    with pytest.raises(ValueError, match="no WRK_JSON line"):
        parse_wrk("Running 15s test @ http://127.0.0.1:1/\n")
