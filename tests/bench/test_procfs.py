"""bench/procfs.py: what /proc says of this process and of the machine. No wrk, no servers."""

from __future__ import annotations

import os
import time

from bench.procfs import cpu_seconds, host_ticks, status_kb


def test_status_kb_and_process_names() -> None:
    status = "Name:\tpython\nVmHWM:\t  2048 kB\nVmRSS:\t  1024 kB\n"
    assert status_kb(status, "VmRSS") == 1024 and status_kb(status, "Pss") == 0


def test_server_cpu_counts_this_process_time_on_a_cpu() -> None:
    before = cpu_seconds([os.getpid()])
    deadline = time.process_time() + 0.05
    while time.process_time() < deadline:
        pass
    spent = cpu_seconds([os.getpid(), 2**22 + 1])  # a PID that does not exist counts nothing
    assert 0.04 < spent - before < 5


def test_host_ticks_give_the_stolen_part_of_the_machines_time() -> None:
    total, stolen = host_ticks()
    assert 0 <= stolen <= total and total > 0
