"""A page-5 run with py-spy attached to the renderer, and where its samples went: by function and by layer."""

from __future__ import annotations

import shutil
import sys
import time
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from bench.checkout import clean_environ
from bench.load import WARMUP_SECONDS, wrk
from bench.servers import LOAD_CPU, backend, process, renderer


def profiled(scratch: Path, out: Path, *, renderer_env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """One page-5 0 ms run with py-spy attached to the renderer: collapsed stacks and the top frames."""
    spy = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which("py-spy")
    if spy is None:
        raise SystemExit("--profile needs py-spy: .venv/bin/pip install py-spy")
    with backend(scratch, delay_ms=0, cache_control="no-store"), renderer(scratch, env=renderer_env) as (proc, base):
        wrk(f"{base}/page", connections=64, seconds=WARMUP_SECONDS)
        argv = ["taskset", "-c", LOAD_CPU, spy, "record", "--pid", str(proc.pid), "--duration", "15", "--rate", "200",
                "--format", "raw", "--output", str(out), "--nonblocking"]  # fmt: skip
        with process(argv, env=clean_environ(), log=scratch / "py-spy.log") as spy_proc:
            time.sleep(1)
            stats = wrk(f"{base}/page", connections=64, seconds=15)
            spy_proc.wait(timeout=60)
    summary = summarize_stacks(out)
    summary["rps_while_profiled"] = round(stats["rps"], 1)
    return summary


def summarize_stacks(path: Path, top: int = 25) -> dict[str, Any]:
    """Self and inclusive sample shares per function from py-spy's collapsed stacks."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack:
            continue
        count = int(count_text)
        frames = [short_frame(frame) for frame in stack.split(";")]
        frames = [frame for frame in frames if frame]
        total += count
        if frames:
            own[frames[-1]] += count
        for frame in set(frames):
            inclusive[frame] += count

    def share(counter: Counter[str]) -> list[tuple[str, float]]:
        return [(name, round(100 * n / total, 1)) for name, n in counter.most_common(top)]

    return {"samples": total, "self": share(own), "inclusive": share(inclusive), "buckets": buckets(path, total)}


def short_frame(frame: str) -> str:
    """`function (path/to/module.py:12)` → `module.py:function`, the line number dropped so lines add up."""
    name, _, where = frame.partition(" (")
    file = where.rstrip(")").rpartition(":")[0]
    parts = Path(file).parts
    for marker in ("site-packages", "main", "lib"):
        if marker in parts:
            parts = parts[parts.index(marker) + 1 :]
            break
    return f"{'/'.join(parts[-2:]) if parts else file}:{name}" if file else name


BUCKETS = {
    # the first matching package in a stack (innermost first) takes the sample
    "httpx/httpcore (client, pool, h11)": ("httpx/", "httpcore/", "h11/"),
    "jinja2 + markupsafe (rendering)": ("jinja2/", "markupsafe/"),
    "json (encode/decode)": ("json/",),
    "uvicorn (server, HTTP parsing)": ("uvicorn/",),
    "starlette (routing, responses)": ("starlette/",),
    "anyio/asyncio (event loop, tasks)": ("anyio/", "asyncio/", "selectors.py"),
    "prometheus_client / logging (observability)": ("prometheus_client/", "logging/"),
    "oberon (own code)": ("oberon/", "gateway/"),
}


def buckets(path: Path, total: int) -> list[tuple[str, float]]:
    """Each sample's innermost frame from a package we can name: where the CPU goes, by layer."""
    counts: Counter[str] = Counter()
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack:
            continue
        label = "other (interpreter, stdlib)"
        for frame in reversed(stack.split(";")):
            match = next((b for b, marks in BUCKETS.items() if any(m in frame for m in marks)), None)
            if match:
                label = match
                break
        counts[label] += int(count_text)
    return [(name, round(100 * n / max(total, 1), 1)) for name, n in counts.most_common()]
