"""The pure pieces of bench/run.py: the --compare verdict, wrk's output, the timed-response parsing, the
py-spy summary. No wrk, no servers: each test is milliseconds."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

RUN_PY = Path(__file__).resolve().parents[2] / "bench" / "run.py"


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_run", RUN_PY)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is made
    spec.loader.exec_module(module)
    return module


bench = _load()


def case(name: str, rps: float, p95: float = 100.0, *, scenario: str = "page-5", run: int = 1) -> dict[str, Any]:
    return {"scenario": scenario, "case": name, "run": run, "rps": rps, "p95_ms": p95}


# ---------------------------------------------------------------- --compare


def test_a_9_percent_drop_passes() -> None:
    rows = bench.compare([case("page-5 0 ms", 91.0)], [case("page-5 0 ms", 100.0)])
    assert [row.status for row in rows] == ["ok"]
    assert rows[0].rps_ratio == pytest.approx(0.91)
    assert not bench.regressed(rows)


def test_an_11_percent_drop_fails() -> None:
    rows = bench.compare([case("page-5 0 ms", 89.0, 130.0)], [case("page-5 0 ms", 100.0, 100.0)])
    assert [row.status for row in rows] == ["REGRESSION"]
    assert rows[0].p95_ratio == pytest.approx(1.3)
    assert bench.regressed(rows)
    table = bench.comparison_table(rows, baseline="bench/results/old.json")
    assert "**REGRESSION**" in table and "REGRESSION (req/s down more than 10%): page-5 0 ms" in table


def test_exactly_10_percent_is_not_more_than_10() -> None:
    assert not bench.regressed(bench.compare([case("c", 90.0)], [case("c", 100.0)]))


def test_faster_is_ok() -> None:
    rows = bench.compare([case("c", 300.0)], [case("c", 100.0)])
    assert rows[0].status == "ok" and rows[0].rps_ratio == pytest.approx(3.0)


def test_missing_cases_are_reported_not_crashed() -> None:
    current = [case("page-5 0 ms", 100.0), case("slow-component /slow", 2.0, scenario="slow-component")]
    baseline = [
        case("page-5 0 ms", 100.0),
        case("page-5 20 ms", 100.0),  # its scenario ran, the case did not: missing
        case("cdn-hit /", 9000.0, scenario="cdn-hit"),  # a scenario not run this time: left out
    ]
    rows = bench.compare(current, baseline)
    assert {row.case: row.status for row in rows} == {
        "page-5 0 ms": "ok",
        "slow-component /slow": "no baseline",
        "page-5 20 ms": "missing",
    }
    assert not bench.regressed(rows)
    table = bench.comparison_table(rows, baseline="b.json")
    assert "| slow-component /slow | 2.0 | — | — |" in table
    assert "No case's req/s fell more than 10%." in table


def test_runs_are_compared_by_their_median() -> None:
    current = [case("c", rps, run=n) for n, rps in enumerate((50.0, 95.0, 99.0), 1)]  # median 95: ok
    baseline = [case("c", rps, run=n) for n, rps in enumerate((100.0, 10.0, 200.0), 1)]  # median 100
    rows = bench.compare(current, baseline)
    assert rows[0].rps == 95.0 and rows[0].baseline_rps == 100.0 and rows[0].status == "ok"


def test_a_zero_baseline_has_no_ratio() -> None:
    rows = bench.compare([case("c", 5.0)], [case("c", 0.0, 0.0)])
    assert rows[0].status == "ok" and rows[0].rps_ratio is None and rows[0].p95_ratio is None


def test_load_results_refuses_a_file_that_is_not_a_results_file(tmp_path: Path) -> None:
    good = tmp_path / "good.json"
    good.write_text(json.dumps({"results": [case("c", 1.0)]}))
    assert bench.load_results(good)[0]["case"] == "c"
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"cases": []}))
    with pytest.raises(SystemExit, match="not a bench/run.py results file"):
        bench.load_results(bad)
    with pytest.raises(SystemExit, match="not a bench/run.py results file"):
        bench.load_results(tmp_path / "absent.json")


# ---------------------------------------------------------------- wrk's output


def test_parse_wrk_reads_the_lua_line() -> None:
    stdout = (
        "Running 15s test @ http://127.0.0.1:1/page\n  1 threads and 64 connections\n"
        'WRK_JSON {"requests":3000,"duration_us":15000000,"bytes":1,"p50_us":1000,"p95_us":2000,"p99_us":3000,'
        '"max_us":4000,"mean_us":1100.5,"connect":0,"read":2,"write":0,"status":5,"timeout":1}\n'
    )
    stats = bench.parse_wrk(stdout)
    assert stats["rps"] == pytest.approx(200.0)
    assert stats["socket_errors"] == 3 and stats["status"] == 5 and stats["p95_us"] == 2000


def test_parse_wrk_without_the_lua_line_says_so() -> None:
    with pytest.raises(ValueError, match="no WRK_JSON line"):
        bench.parse_wrk("Running 15s test @ http://127.0.0.1:1/\n")


# ---------------------------------------------------------------- timed responses (slow-component)

HEAD = b"HTTP/1.1 200 OK\r\ncontent-type: text/html\r\n"


def test_message_end_by_content_length() -> None:
    raw = HEAD + b"content-length: 5\r\n\r\nhello"
    assert bench.message_end(raw) == len(raw)
    assert bench.message_end(raw[:-1]) is None
    assert bench.message_end(b"HTTP/1.1 200 OK\r\ncontent-le") is None


def test_message_end_chunked() -> None:
    raw = HEAD + b"transfer-encoding: chunked\r\n\r\n5\r\nhello\r\n3;ext=1\r\nabc\r\n0\r\n\r\n"
    assert bench.message_end(raw) == len(raw)
    for cut in (1, 3, 8, 20):
        assert bench.message_end(raw[:-cut]) is None
    trailer = HEAD + b"transfer-encoding: chunked\r\n\r\n1\r\nx\r\n0\r\nx-t: 1\r\n\r\n"
    assert bench.message_end(trailer) == len(trailer)


def test_message_end_unknown_until_eof() -> None:
    assert bench.message_end(HEAD + b"\r\nbody") is None


def test_timeline_of_a_streamed_response() -> None:
    """Head and first cards at once, the slow card 500 ms later: first body byte early, last byte late."""
    start = 100.0
    reads = [
        (100.004, HEAD + b"transfer-encoding: chunked\r\n\r\n"),
        (100.006, b"6\r\n<main>\r\n"),
        (100.505, b"19\r\n<h2 id=card-slow-head"),  # 0x19: the 25 bytes of the tag
        (100.506, b"ing>\r\n0\r\n\r\n"),
    ]
    out = bench.timeline(reads, start, b"card-slow-heading")
    assert out["status"] == 200 and out["complete"]
    assert out["status_ms"] == pytest.approx(4.0)
    assert out["body_ms"] == pytest.approx(6.0)
    assert out["marker_ms"] == pytest.approx(506.0)  # completed by the read that brought its last bytes
    assert out["last_ms"] == pytest.approx(506.0)
    assert out["body_reads"] == 3
    assert out["headers"]["transfer-encoding"] == "chunked"
    assert out["bytes"] == sum(len(chunk) for _, chunk in reads)


def test_a_malformed_chunk_size_waits_for_eof() -> None:
    assert bench.message_end(HEAD + b"transfer-encoding: chunked\r\n\r\nzz\r\nhello\r\n") is None


def test_timeline_of_a_buffered_response() -> None:
    """Everything in one read after 500 ms: every time is the same."""
    raw = HEAD + b"content-length: 17\r\n\r\ncard-slow-heading"
    out = bench.timeline([(0.5, raw)], 0.0, b"card-slow-heading")
    assert out["status_ms"] == out["body_ms"] == out["marker_ms"] == out["last_ms"] == pytest.approx(500.0)
    assert out["complete"] and out["body_reads"] == 1


def test_timeline_of_nothing_and_of_a_truncated_response() -> None:
    empty = bench.timeline([], 0.0)
    assert empty["status"] == 0 and empty["status_ms"] is None and not empty["complete"]
    cut = bench.timeline([(0.1, HEAD + b"content-length: 10\r\n\r\nabc")], 0.0)
    assert cut["status"] == 200 and not cut["complete"]


def test_percentile_interpolates_between_ranks() -> None:
    values = [float(n) for n in range(1, 101)]
    assert bench.percentile(values, 50) == pytest.approx(50.5)
    assert bench.percentile(values, 95) == pytest.approx(95.05)
    assert bench.percentile([7.0], 95) == 7.0
    assert bench.percentile([], 50) is None


def test_summarize_ttfb_leaves_failures_out_of_the_percentiles() -> None:
    ok = {"status": 200, "error": "", "status_ms": 1.0, "body_ms": 2.0, "marker_ms": 501.0, "last_ms": 502.0,
          "body_reads": 2}  # fmt: skip
    failed = {**ok, "status": 0, "error": "ConnectionRefusedError", "last_ms": 9999.0}
    summary = bench.summarize_ttfb([ok, ok, failed])
    assert summary["ok"] == 2 and summary["errors"] == 1
    assert summary["ttlb_p95_ms"] == 502.0 and summary["ttfb_body_p50_ms"] == 2.0
    assert summary["marker_found"] == 2


# ---------------------------------------------------------------- py-spy summary


def test_summarize_stacks(tmp_path: Path) -> None:
    stacks = tmp_path / "profile.txt"
    stacks.write_text(
        "run (/work/main/oberon/page.py:10);dumps (/usr/lib/python3.11/json/__init__.py:231) 3\n"
        "run (/work/main/oberon/page.py:10);get (/x/site-packages/httpx/_client.py:5) 1\n"
    )
    summary = bench.summarize_stacks(stacks)
    assert summary["samples"] == 4
    assert summary["self"][0] == ("json/__init__.py:dumps", 75.0)
    assert ("oberon/page.py:run", 100.0) in summary["inclusive"]
    assert dict(summary["buckets"]) == {"json (encode/decode)": 75.0, "httpx/httpcore (client, pool, h11)": 25.0}


def test_status_kb_and_process_names() -> None:
    status = "Name:\tpython\nVmHWM:\t  2048 kB\nVmRSS:\t  1024 kB\n"
    assert bench.status_kb(status, "VmRSS") == 1024 and bench.status_kb(status, "Pss") == 0


def test_server_cpu_counts_this_process_time_on_a_cpu() -> None:
    before = bench.cpu_seconds([os.getpid()])
    deadline = time.process_time() + 0.05
    while time.process_time() < deadline:
        pass
    spent = bench.cpu_seconds([os.getpid(), 2**22 + 1])  # a PID that does not exist counts nothing
    assert 0.04 < spent - before < 5


def test_host_ticks_give_the_stolen_part_of_the_machines_time() -> None:
    total, stolen = bench.host_ticks()
    assert 0 <= stolen <= total and total > 0


def test_a_figure_missing_from_an_older_results_file_shows_as_a_dash() -> None:
    assert bench._figure(None) == "—"
    assert bench._figure(1234.5) == "1234.5" and bench._figure(0.0) == "0"


def test_streamed_percent_is_streamed_pages_over_pages_rendered_summed_over_apps() -> None:
    exposition = "\n".join(
        [
            "# TYPE oberon_pages_streamed_total counter",
            'oberon_pages_streamed_total{service="renderer",app="a"} 3.0',
            'oberon_pages_streamed_total{service="renderer",app="b"} 1.0',
            "# TYPE oberon_page_render_duration_seconds histogram",
            'oberon_page_render_duration_seconds_count{service="renderer",app="a"} 10.0',
            'oberon_page_render_duration_seconds_count{service="renderer",app="b"} 6.0',
            'oberon_page_render_duration_seconds_sum{service="renderer",app="b"} 0.5',
        ]
    )
    assert bench.streamed_percent(exposition + "\n") == 25.0
    assert bench.streamed_percent("") is None  # nothing rendered yet


def test_commit_names_the_code_measured_and_says_when_it_was_changed(tmp_path: Path) -> None:
    assert bench.commit(tmp_path) == "unknown"  # not a git checkout
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com"]
    (tmp_path / "page.py").write_text("a = 1\n")
    for argv in (["init", "-q"], ["add", "page.py"], ["commit", "-qm", "first"]):
        subprocess.run([*git, *argv], cwd=tmp_path, check=True)
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=tmp_path, capture_output=True, text=True)
    assert bench.commit(tmp_path) == head.stdout.strip()
    (tmp_path / "page.py").write_text("a = 2\n")
    assert bench.commit(tmp_path) == head.stdout.strip() + " + changes"
