"""bench/ttfb.py: a response's timeline from its timed reads, and the percentiles over many. No wrk, no servers."""

from __future__ import annotations

import pytest

from bench.ttfb import message_end, percentile, summarize_ttfb, timeline

HEAD = b"HTTP/1.1 200 OK\r\ncontent-type: text/html\r\n"


def test_message_end_by_content_length() -> None:
    raw = HEAD + b"content-length: 5\r\n\r\nhello"
    assert message_end(raw) == len(raw)
    assert message_end(raw[:-1]) is None
    assert message_end(b"HTTP/1.1 200 OK\r\ncontent-le") is None


def test_message_end_chunked() -> None:
    raw = HEAD + b"transfer-encoding: chunked\r\n\r\n5\r\nhello\r\n3;ext=1\r\nabc\r\n0\r\n\r\n"
    assert message_end(raw) == len(raw)
    for cut in (1, 3, 8, 20):
        assert message_end(raw[:-cut]) is None
    trailer = HEAD + b"transfer-encoding: chunked\r\n\r\n1\r\nx\r\n0\r\nx-t: 1\r\n\r\n"
    assert message_end(trailer) == len(trailer)


def test_message_end_unknown_until_eof() -> None:
    assert message_end(HEAD + b"\r\nbody") is None


def test_timeline_of_a_streamed_response() -> None:
    """Head and first cards at once, the slow card 500 ms later: first body byte early, last byte late."""
    start = 100.0
    reads = [
        (100.004, HEAD + b"transfer-encoding: chunked\r\n\r\n"),
        (100.006, b"6\r\n<main>\r\n"),
        (100.505, b"19\r\n<h2 id=card-slow-head"),  # 0x19: the 25 bytes of the tag
        (100.506, b"ing>\r\n0\r\n\r\n"),
    ]
    out = timeline(reads, start, b"card-slow-heading")
    assert out["status"] == 200 and out["complete"]
    assert out["status_ms"] == pytest.approx(4.0)
    assert out["body_ms"] == pytest.approx(6.0)
    assert out["marker_ms"] == pytest.approx(506.0)  # completed by the read that brought its last bytes
    assert out["last_ms"] == pytest.approx(506.0)
    assert out["body_reads"] == 3
    assert out["headers"]["transfer-encoding"] == "chunked"
    assert out["bytes"] == sum(len(chunk) for _, chunk in reads)


def test_a_malformed_chunk_size_waits_for_eof() -> None:
    assert message_end(HEAD + b"transfer-encoding: chunked\r\n\r\nzz\r\nhello\r\n") is None


def test_timeline_of_a_buffered_response() -> None:
    """Everything in one read after 500 ms: every time is the same."""
    raw = HEAD + b"content-length: 17\r\n\r\ncard-slow-heading"
    out = timeline([(0.5, raw)], 0.0, b"card-slow-heading")
    assert out["status_ms"] == out["body_ms"] == out["marker_ms"] == out["last_ms"] == pytest.approx(500.0)
    assert out["complete"] and out["body_reads"] == 1


def test_timeline_of_nothing_and_of_a_truncated_response() -> None:
    empty = timeline([], 0.0)
    assert empty["status"] == 0 and empty["status_ms"] is None and not empty["complete"]
    cut = timeline([(0.1, HEAD + b"content-length: 10\r\n\r\nabc")], 0.0)
    assert cut["status"] == 200 and not cut["complete"]


def test_percentile_interpolates_between_ranks() -> None:
    values = [float(n) for n in range(1, 101)]
    assert percentile(values, 50) == pytest.approx(50.5)
    assert percentile(values, 95) == pytest.approx(95.05)
    assert percentile([7.0], 95) == 7.0
    assert percentile([], 50) is None


def test_summarize_ttfb_leaves_failures_out_of_the_percentiles() -> None:
    ok = {"status": 200, "error": "", "status_ms": 1.0, "body_ms": 2.0, "marker_ms": 501.0, "last_ms": 502.0,
          "body_reads": 2}  # fmt: skip
    failed = {**ok, "status": 0, "error": "ConnectionRefusedError", "last_ms": 9999.0}
    summary = summarize_ttfb([ok, ok, failed])
    assert summary["ok"] == 2 and summary["errors"] == 1
    assert summary["ttlb_p95_ms"] == 502.0 and summary["ttfb_body_p50_ms"] == 2.0
    assert summary["marker_found"] == 2
