"""What /proc says of the processes under load: CPU time, resident memory, the process tree."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def rss_mb(pid: int) -> tuple[float, float]:
    """The process's resident set now and at its peak (VmRSS, VmHWM), in MB."""
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


def cpu_seconds(pids: Sequence[int]) -> float:
    """Time these processes (all their threads) have spent on a CPU (/proc/PID/schedstat, nanoseconds)."""
    total = 0
    for pid in pids:
        with contextlib.suppress(FileNotFoundError, ProcessLookupError):
            total += int(Path(f"/proc/{pid}/schedstat").read_text().split()[0])
    return total / 1e9


def host_ticks() -> tuple[int, int]:
    """The machine's CPU time so far (user … steal, in ticks) and the part of it the hypervisor stole."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    return sum(values), values[7]


def core_ticks(cpu: int) -> tuple[int, int, int]:
    """One core's CPU time so far (user … steal, in ticks), the part of it idle (idle, iowait), and the part the
    hypervisor stole."""
    for line in Path("/proc/stat").read_text().splitlines():
        name, *values = line.split()
        if name == f"cpu{cpu}":
            ticks = [int(v) for v in values[:8]]
            return sum(ticks), ticks[3] + ticks[4], ticks[7]
    raise ValueError(f"no cpu{cpu} in /proc/stat")


def pid_of(*arguments: str) -> int:
    """The process whose command line holds `arguments` one after another (e.g. `--port`, `8000`)."""
    wanted = "\0".join(arguments).encode()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(FileNotFoundError, ProcessLookupError, PermissionError):
                if b"\0" + wanted + b"\0" in b"\0" + (entry / "cmdline").read_bytes():
                    return int(entry.name)
    raise LookupError(f"no process with {' '.join(arguments)} in its command line")


def process_tree(pid: int) -> list[int]:
    """`pid` and its descendants, parents first (from /proc/PID/task/TID/children); gone ones are skipped."""
    pids, queue = [], [pid]
    while queue:
        current = queue.pop(0)
        tasks = Path(f"/proc/{current}/task")
        try:
            children = [int(c) for task in tasks.iterdir() for c in (task / "children").read_text().split()]
        except (FileNotFoundError, ProcessLookupError):
            continue
        pids.append(current)
        queue += children
    return pids


def status_kb(text: str, name: str) -> int:
    """A `Name:   123 kB` field of /proc/PID/status (or smaps_rollup) in kB, 0 if absent."""
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == name:
            return int(value.split()[0])
    return 0


def process_name(pid: int) -> str:
    """`serve renderer` → `renderer`; `oberon up` → `supervisor`; else the program's name."""
    argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    if "serve" in argv and argv.index("serve") + 1 < len(argv):
        return argv[argv.index("serve") + 1]
    if "up" in argv:
        return "supervisor"
    return Path(argv[0]).name


def tree_rss(pid: int) -> dict[str, Any]:
    """RSS (VmRSS), peak (VmHWM) and PSS of `pid` and every descendant, in MB, summed and per process.

    The RSS sum counts pages shared between the processes (the interpreter, libraries) once per process;
    PSS divides each shared page among its sharers, so its sum is the tree's real share of memory.
    """
    per: dict[str, float] = {}
    rss = peak = pss = 0
    for child in process_tree(pid):
        try:
            status = Path(f"/proc/{child}/status").read_text()
            rollup = Path(f"/proc/{child}/smaps_rollup").read_text()
            name = process_name(child)
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
        rss += status_kb(status, "VmRSS")
        peak += status_kb(status, "VmHWM")
        pss += status_kb(rollup, "Pss")
        key = name if name not in per else f"{name} ({child})"
        per[key] = round(status_kb(status, "VmRSS") / 1024, 1)
    return {"rss_mb": rss / 1024, "peak_rss_mb": peak / 1024, "pss_mb": pss / 1024, "processes": per}
