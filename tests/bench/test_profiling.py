"""bench/profiling.py: py-spy's collapsed stacks summed by function and by layer. No wrk, no servers."""

from __future__ import annotations

from pathlib import Path

from bench.profiling import summarize_stacks


def test_summarize_stacks(tmp_path: Path) -> None:
    stacks = tmp_path / "profile.txt"
    stacks.write_text(
        "run (/work/main/oberon/page.py:10);dumps (/usr/lib/python3.11/json/__init__.py:231) 3\n"
        "run (/work/main/oberon/page.py:10);get (/x/site-packages/httpx/_client.py:5) 1\n"
    )
    summary = summarize_stacks(stacks)
    assert summary["samples"] == 4
    assert summary["self"][0] == ("json/__init__.py:dumps", 75.0)
    assert ("oberon/page.py:run", 100.0) in summary["inclusive"]
    assert dict(summary["buckets"]) == {"json (encode/decode)": 75.0, "httpx/httpcore (client, pool, h11)": 25.0}
