"""Time to first and last byte of a streamed page, each GET over a raw socket with every read timed (slow-component).

`bench/run.py --ttfb-client URL` runs `ttfb_client` on the load's core and prints its samples as one line.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit


def message_end(raw: bytes) -> int | None:
    """Where the HTTP/1.1 response in `raw` ends (Content-Length or chunked), None while it is incomplete.

    None also for a response delimited by the end of the connection (neither header): its end is the EOF.
    """
    head_end = raw.find(b"\r\n\r\n")
    if head_end < 0:
        return None
    headers = parse_headers(raw[:head_end])
    start = head_end + 4
    if "chunked" in headers.get("transfer-encoding", "").lower():
        pos = start
        while True:
            line_end = raw.find(b"\r\n", pos)
            if line_end < 0:
                return None
            try:
                size = int(raw[pos:line_end].split(b";")[0].strip(), 16)
            except ValueError:
                return None  # not chunked after all: read to the end of the connection
            if size == 0:  # the last chunk, then trailer lines up to an empty one
                pos = line_end + 2
                while True:
                    trailer_end = raw.find(b"\r\n", pos)
                    if trailer_end < 0:
                        return None
                    if trailer_end == pos:
                        return trailer_end + 2
                    pos = trailer_end + 2
            pos = line_end + 2 + size + 2
            if pos > len(raw):
                return None
    if "content-length" in headers:
        end = start + int(headers["content-length"])
        return end if len(raw) >= end else None
    return None


def parse_headers(head: bytes) -> dict[str, str]:
    """The header block (status line first, no final blank line) → lower-case names; the status line as `:status`."""
    lines = head.decode("latin-1").split("\r\n")
    headers = {":status": lines[0]}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return headers


def timeline(reads: Sequence[tuple[float, bytes]], start: float, marker: bytes = b"") -> dict[str, Any]:
    """One response as it arrived: `reads` are (perf_counter time, bytes) of each recv, `start` before connect.

    Milliseconds from `start` to: the first byte at all (`status_ms`, the status line), the first body byte
    (`body_ms`), the first read that completed `marker` (`marker_ms`) and the last byte (`last_ms`: the read
    that completed the message, else the last read before EOF). None where it never happened.
    """
    raw = b""
    out: dict[str, Any] = {"status": 0, "status_ms": None, "body_ms": None, "marker_ms": None, "last_ms": None,
                           "body_reads": 0, "bytes": 0, "complete": False, "headers": {}}  # fmt: skip
    head_end = -1
    for at, chunk in reads:
        ms = (at - start) * 1000
        before = len(raw)
        raw += chunk
        if out["status_ms"] is None and chunk:
            out["status_ms"] = ms
        if head_end < 0:
            head_end = raw.find(b"\r\n\r\n")
        if head_end >= 0 and len(raw) > head_end + 4:
            if out["body_ms"] is None:
                out["body_ms"] = ms
            if len(raw) - max(before, head_end + 4) > 0:
                out["body_reads"] += 1
        if marker and out["marker_ms"] is None and marker in raw[max(0, before - len(marker)) :]:
            out["marker_ms"] = ms
        out["last_ms"] = ms
        if message_end(raw) is not None:
            out["complete"] = True
            break
    out["bytes"] = len(raw)
    if head_end >= 0:
        headers = parse_headers(raw[:head_end])
        parts = headers[":status"].split()
        out["status"] = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
        out["headers"] = {k: v for k, v in headers.items() if k in ("content-length", "transfer-encoding",
                                                                      "x-oberon-mode", "content-type")}  # fmt: skip
        if "content-length" not in headers and "chunked" not in headers.get("transfer-encoding", ""):
            out["complete"] = bool(reads)  # delimited by EOF: the last read was the end
    return out


def fetch_timed(url: str, *, marker: bytes = b"", timeout: float = 10.0) -> dict[str, Any]:
    """One GET over a fresh raw socket (`Connection: close`, no compression), every recv timed."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    request = (f"GET {parts.path or '/'}{'?' + parts.query if parts.query else ''} HTTP/1.1\r\nHost: {host}:{port}\r\n"
               "User-Agent: oberon-bench\r\nAccept: text/html\r\nConnection: close\r\n\r\n").encode()  # fmt: skip
    reads: list[tuple[float, bytes]] = []
    raw = b""
    start = time.perf_counter()
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(request)
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                reads.append((time.perf_counter(), chunk))
                raw += chunk
                if message_end(raw) is not None:
                    break
        error = ""
    except OSError as exc:
        error = f"{type(exc).__name__}: {exc}"
    result = timeline(reads, start, marker)
    result["error"] = error or ("" if result["complete"] else "incomplete response")
    return result


def ttfb_client(url: str, *, requests: int, warmup: int, marker: str) -> dict[str, Any]:
    """`warmup` then `requests` sequential timed GETs of `url`: what `bench/run.py --ttfb-client` prints."""
    for _ in range(warmup):
        fetch_timed(url, marker=marker.encode())
    began = time.perf_counter()
    samples = [fetch_timed(url, marker=marker.encode()) for _ in range(requests)]
    return {"url": url, "seconds": time.perf_counter() - began, "samples": samples}


def percentile(values: Sequence[float], q: float) -> float | None:
    """The `q`-th percentile (0–100), linear between the closest ranks (numpy's default); None if no values."""
    ordered = sorted(values)
    if not ordered:
        return None
    rank = (len(ordered) - 1) * q / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def ms(value: float | None) -> str:
    """A time of the summary to a tenth of a millisecond; `—` where none was measured."""
    return "—" if value is None else f"{value:.1f}"


def summarize_ttfb(samples: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """p50/p95 (and p99 of the last byte) of each timing over the samples that answered 200 in full."""
    good = [s for s in samples if s["status"] == 200 and not s["error"]]
    summary: dict[str, Any] = {"requests": len(samples), "ok": len(good), "errors": len(samples) - len(good)}
    for key, name in (("status_ms", "ttfb_status"), ("body_ms", "ttfb_body"), ("marker_ms", "slow_card"),
                      ("last_ms", "ttlb")):  # fmt: skip
        values = [s[key] for s in good if s[key] is not None]
        for q in (50, 95, 99):
            value = percentile(values, q)
            summary[f"{name}_p{q}_ms"] = None if value is None else round(value, 2)
    summary["marker_found"] = sum(1 for s in good if s["marker_ms"] is not None)
    summary["body_reads_p50"] = percentile([s["body_reads"] for s in good], 50)
    return summary
