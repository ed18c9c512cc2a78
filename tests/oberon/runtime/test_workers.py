"""The workers' supervisor over small stand-in workers (sleeping, or exiting at once): restarts, backoff, admin."""

from __future__ import annotations

import io
import os
import signal
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

import httpx
import pytest

from oberon.ops.degradation import DegradationController, read_shared_switch
from oberon.runtime.workers import Workers, machine_admin, restart_delay
from oberon.types import Mode
from tests.conftest import FakeClock

SLEEP = "import time; time.sleep(60)"
EXIT = "raise SystemExit(3)"
TOKEN = "a-worker-test-admin-token-of-32-characters"


def command(code: str) -> object:
    def argv(index: int, admin_port: int) -> Sequence[str]:
        return (sys.executable, "-c", code)

    return argv


@pytest.fixture
def out() -> io.StringIO:
    return io.StringIO()


def workers_of(code: str, *, count: int, clock: FakeClock, out: io.StringIO) -> Workers:
    return Workers(count=count, command=command(code), environ=os.environ, out=out, clock=clock, stop_grace=5)  # type: ignore[arg-type]


@pytest.fixture
def sleeping(clock: FakeClock, out: io.StringIO) -> Iterator[Workers]:
    workers = workers_of(SLEEP, count=2, clock=clock, out=out)
    workers.start()
    yield workers
    workers.stop()


def test_a_worker_killed_by_its_pid_is_replaced_and_counted(
    sleeping: Workers, clock: FakeClock, out: io.StringIO, capsys: pytest.CaptureFixture[str]
) -> None:
    first, second = sleeping.workers[1], sleeping.workers[2]
    assert sleeping.check() == []  # all running: nothing to do
    clock.now += 60  # a worker that served a while, then died
    os.kill(first.pid, signal.SIGKILL)
    first.process.wait()
    [replacement] = sleeping.check()
    assert replacement.index == 1 and replacement.pid != first.pid
    assert sleeping.workers[1] is replacement and sleeping.workers[2] is second
    assert replacement.process.poll() is None and sleeping.restarts == 1
    assert f"worker 1 (pid {first.pid}) exited with status -9; restarting it now" in capsys.readouterr().err
    assert f"worker 1 restarted: pid {replacement.pid}" in out.getvalue()
    assert len(sleeping.running()) == 2


def test_a_worker_that_keeps_dying_at_start_is_restarted_later_and_later(clock: FakeClock, out: io.StringIO) -> None:
    workers = workers_of(EXIT, count=1, clock=clock, out=out)
    workers.start()
    try:
        workers.workers[1].process.wait()
        assert len(workers.check()) == 1  # the first death: at once (a crash while serving looks the same)
        workers.workers[1].process.wait()
        assert workers.check() == []  # the second in a row soon after its start: after a delay
        assert workers.restarts == 1
        clock.now += restart_delay(2)
        assert len(workers.check()) == 1
        assert workers.restarts == 2 and workers.workers[1].quick_exits == 2
    finally:
        workers.stop()


def test_restart_delays_grow_and_are_bounded() -> None:
    assert [restart_delay(n) for n in range(1, 6)] == [0, 1, 2, 4, 8]
    assert restart_delay(100) == 30


def test_stop_ends_every_worker(clock: FakeClock, out: io.StringIO) -> None:
    workers = workers_of(SLEEP, count=3, clock=clock, out=out)
    workers.start()
    processes = [worker.process for worker in workers.workers.values()]
    workers.stop()
    assert all(process.poll() is not None for process in processes)
    assert "stopped 3 workers" in out.getvalue()


@pytest.mark.anyio
async def test_the_machine_admin_shows_the_workers_and_shares_the_switch(sleeping: Workers, tmp_path: Path) -> None:
    metrics = tmp_path / "metrics"
    metrics.mkdir()
    shared = tmp_path / "degradation.json"
    controller = DegradationController(shared_file=shared)
    admin = machine_admin(sleeping, metrics_dir=metrics, degradation=controller, admin_token=TOKEN)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=admin), base_url="http://admin") as client:
        await ask(client, sleeping, shared)


async def ask(client: httpx.AsyncClient, sleeping: Workers, shared: Path) -> None:
    exposition = (await client.get("/metrics")).text
    assert 'oberon_workers{state="running"} 2.0' in exposition
    assert "oberon_worker_restarts_total 0.0" in exposition
    health = await client.get("/_oberon/health")  # these stand-ins have no admin listener: not ok
    assert health.status_code == 503
    assert set(health.json()["workers"]) == {str(worker.pid) for worker in sleeping.workers.values()}
    switch = {"mode": "degraded", "reason": "incident 42"}
    assert (await client.put("/_oberon/degradation", json=switch)).status_code == 401  # the admin token, as ever
    assert not shared.exists()
    assert (
        await client.put("/_oberon/degradation", json=switch, headers={"Authorization": f"Bearer {TOKEN}"})
    ).is_success
    assert read_shared_switch(shared) == (Mode.DEGRADED, "incident 42")  # what every worker reads
    assert (await client.get("/_oberon/degradation")).json()["mode"] == "degraded"
