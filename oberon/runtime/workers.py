"""`oberon up --workers N`: N processes serve the embedded site on one port, under a supervisor.

The supervisor binds the entrance once; every worker inherits that listening socket and accepts
from it (the kernel hands each connection to one of them; when a worker dies the socket, and the
connections waiting in its queue, stay with the others). Each worker runs the whole embedded site
(`oberon serve embedded --fd …`) with a private admin listener on a free loopback port.

The supervisor
- restarts a worker that dies, logged and counted (`oberon_worker_restarts_total`); one that keeps
  dying soon after its start is restarted after a growing delay, so a broken worker cannot spin;
- serves the machine's admin listener: `/metrics` merged from every worker's files in
  `PROMETHEUS_MULTIPROC_DIR` (counters summed, state gauges at their live maximum), the health of
  every worker, and `/_oberon/degradation`, whose switch reaches every worker through a shared
  file (each reads it at most a second later, a restarted one at its start).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import httpx
import uvicorn
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from oberon.ops.admin import DEGRADATION_PATH, degradation_routes
from oberon.ops.admin_listener import HEALTH_PATH, METRICS_PATH, NO_STORE
from oberon.ops.degradation import DegradationController
from oberon.ops.metrics import CONTENT_TYPE, mark_process_dead
from oberon.runtime.supervisor import LOOPBACK, POLL_INTERVAL, free_port

DEFAULT_START_TIMEOUT = 30.0
DEFAULT_STOP_GRACE = 10.0
QUICK_EXIT_SECONDS = 10.0  # a worker that dies sooner than this after its start counts as failing to start
MAX_RESTART_DELAY = 30.0
PROBE_TIMEOUT = 2.0

# argv of worker `index` (1…N) whose private admin listener is on `admin_port`.
Command = Callable[[int, int], Sequence[str]]


def restart_delay(quick_exits: int) -> float:
    """Seconds to wait before restarting a worker that died `quick_exits` times in a row soon after its start:
    none for the first death (a crash in the middle of serving), then 1, 2, 4 … up to 30."""
    if quick_exits <= 1:
        return 0.0
    return float(min(MAX_RESTART_DELAY, 2 ** (quick_exits - 2)))


@dataclass
class Worker:
    """One worker process: which of the N it is, its process, its private admin listener."""

    index: int
    process: subprocess.Popen[bytes]
    admin_port: int
    started_at: float
    quick_exits: int = 0  # deaths in a row, each soon after a start
    restart_at: float | None = None  # when it died: when it is started again

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def admin_url(self) -> str:
        return f"http://{LOOPBACK}:{self.admin_port}"


class Workers:
    """Starts N workers, restarts any that dies, and stops them all (by PID)."""

    def __init__(
        self,
        *,
        count: int,
        command: Command,
        environ: Mapping[str, str],
        pass_fds: Sequence[int] = (),
        metrics_dir: Path | None = None,
        out: TextIO | None = None,
        clock: Callable[[], float] = time.monotonic,
        stop_grace: float = DEFAULT_STOP_GRACE,
    ) -> None:
        if count < 1:
            raise ValueError("at least one worker")
        self.count = count
        self.command = command
        self.environ = dict(environ)
        self.pass_fds = tuple(pass_fds)
        self.metrics_dir = metrics_dir
        self.out = out or sys.stdout
        self.clock = clock
        self.stop_grace = stop_grace
        self.workers: dict[int, Worker] = {}
        self.restarts = 0

    def say(self, message: str, *, error: bool = False) -> None:
        print(f"oberon: {message}", file=sys.stderr if error else self.out, flush=True)

    def start(self) -> None:
        for index in range(1, self.count + 1):
            self.workers[index] = self._spawn(index)
            worker = self.workers[index]
            self.say(f"  worker {index}  pid {worker.pid}  admin {worker.admin_url}")

    def running(self) -> list[Worker]:
        return [worker for worker in self.workers.values() if worker.process.poll() is None]

    def check(self) -> list[Worker]:
        """One look at every worker: a dead one is reported and, when its delay is over, started again.

        Returns the workers started again by this look."""
        now = self.clock()
        started: list[Worker] = []
        for index, worker in list(self.workers.items()):
            code = worker.process.poll()
            if code is None:
                continue
            if worker.restart_at is None:
                quick = now - worker.started_at < QUICK_EXIT_SECONDS
                worker.quick_exits = worker.quick_exits + 1 if quick else 1
                delay = restart_delay(worker.quick_exits)
                worker.restart_at = now + delay
                if self.metrics_dir is not None:
                    mark_process_dead(worker.pid, self.metrics_dir)  # its live gauges leave the merged metrics
                when = f"in {delay:g}s" if delay else "now"
                self.say(
                    f"worker {index} (pid {worker.pid}) exited with status {code}; restarting it {when}", error=True
                )
            if now >= worker.restart_at:
                replacement = self._spawn(index, quick_exits=worker.quick_exits)
                self.workers[index] = replacement
                self.restarts += 1
                started.append(replacement)
                self.say(f"worker {index} restarted: pid {replacement.pid} (restarts so far: {self.restarts})")
        return started

    def wait_ready(self, *, timeout: float, stopping: threading.Event) -> bool:
        """Until every worker's admin listener and health answer; False when one exits first (a broken start)."""
        deadline = time.monotonic() + timeout
        waiting = set(self.workers)
        while waiting:
            for index in list(waiting):
                worker = self.workers[index]
                code = worker.process.poll()
                if code is not None:
                    self.say(f"worker {index} (pid {worker.pid}) exited with status {code} at start", error=True)
                    return False
                if _answers(f"{worker.admin_url}{HEALTH_PATH}"):
                    waiting.discard(index)
            if stopping.is_set() or time.monotonic() > deadline:
                if waiting:
                    self.say(f"workers not up within {timeout:g}s: {sorted(waiting)}", error=True)
                return False
            time.sleep(POLL_INTERVAL)
        return True

    def watch(self, stopping: threading.Event) -> None:
        while not stopping.wait(POLL_INTERVAL):
            self.check()

    def stop(self) -> None:
        """SIGTERM to each running worker by its PID; SIGKILL to any still running after the grace period."""
        running = self.running()
        for worker in running:
            with contextlib.suppress(ProcessLookupError):
                worker.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self.stop_grace
        for worker in running:
            try:
                worker.process.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                worker.process.kill()
                worker.process.wait()
        if running:
            self.say(f"stopped {len(running)} workers")

    def _spawn(self, index: int, *, quick_exits: int = 0) -> Worker:
        taken = {worker.admin_port for worker in self.workers.values()}
        admin_port = free_port(taken=taken)
        argv = self.command(index, admin_port)
        # Its own process group: a Ctrl-C reaches the supervisor only, which stops each worker by its PID.
        process = subprocess.Popen(argv, env=self.environ, pass_fds=self.pass_fds, process_group=0)
        return Worker(index, process, admin_port, started_at=self.clock(), quick_exits=quick_exits)


class WorkersCollector:
    """The supervisor's own series: workers running and configured, restarts since the start."""

    def __init__(self, workers: Workers) -> None:
        self.workers = workers

    def collect(self) -> Iterable[Metric]:
        restarts = CounterMetricFamily(
            "oberon_worker_restarts", "Workers restarted by the supervisor after they died, since `oberon up` started."
        )
        restarts.add_metric([], self.workers.restarts)
        yield restarts
        workers = GaugeMetricFamily(
            "oberon_workers",
            "Worker processes of `oberon up --workers N`: running now, and configured.",
            labels=["state"],
        )
        workers.add_metric(["running"], len(self.workers.running()))
        workers.add_metric(["configured"], self.workers.count)
        yield workers


def machine_admin(
    workers: Workers, *, metrics_dir: Path, degradation: DegradationController, admin_token: str | None
) -> Starlette:
    """The machine's admin listener: every worker's metrics merged, their health, and the shared degradation switch."""
    collector = WorkersCollector(workers)

    async def metrics(request: Request) -> Response:
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=str(metrics_dir))  # type: ignore[no-untyped-call]
        registry.register(collector)
        return Response(generate_latest(registry), media_type=CONTENT_TYPE, headers=NO_STORE)

    async def health(request: Request) -> Response:
        states = await _ask_workers(workers, HEALTH_PATH)
        ok = len(states) == workers.count and all(state.get("status") == "ok" for state in states.values())
        body = {
            "status": "ok" if ok else "degraded",
            "service": "workers",
            "workers": {str(pid): state for pid, state in states.items()},
            "restarts": workers.restarts,
        }
        return JSONResponse(body, status_code=200 if ok else 503, headers=NO_STORE)

    async def read_degradation(request: Request) -> Response:
        states = await _ask_workers(workers, DEGRADATION_PATH)
        body = {**degradation.status(), "workers": {str(pid): state for pid, state in states.items()}}
        body.pop("signals")  # the supervisor calls nothing downstream: each worker shows its own signals
        return JSONResponse(body, headers=NO_STORE)

    return Starlette(
        routes=[
            Route(METRICS_PATH, metrics, methods=["GET", "HEAD"]),
            Route(HEALTH_PATH, health, methods=["GET"]),
            Route(DEGRADATION_PATH, read_degradation, methods=["GET"]),  # before the PUT's routes: its GET wins
            *degradation_routes(degradation, admin_token=admin_token),  # PUT writes the switch every worker reads
        ]
    )


async def _ask_workers(workers: Workers, path: str) -> dict[int, dict[str, object]]:
    """`path` on every running worker's admin listener: JSON by PID (an error in place of one that did not answer)."""
    running = workers.running()
    async with httpx.AsyncClient(timeout=PROBE_TIMEOUT) as client:
        answers = await asyncio.gather(
            *(client.get(f"{worker.admin_url}{path}") for worker in running), return_exceptions=True
        )
    states: dict[int, dict[str, object]] = {}
    for worker, answer in zip(running, answers, strict=True):
        if isinstance(answer, httpx.Response):
            try:
                states[worker.pid] = answer.json()
                continue
            except ValueError:
                pass
        states[worker.pid] = {"status": "unreachable"}
    return states


@contextlib.contextmanager
def serving_in_thread(server: uvicorn.Server) -> Iterator[threading.Thread]:
    """`server` in a thread of its own (signals stay with the main thread) for the block; stopped after it."""
    thread = threading.Thread(target=server.run, name="oberon-machine-admin", daemon=True)
    thread.start()
    try:
        yield thread
    finally:
        server.should_exit = True
        thread.join(timeout=DEFAULT_STOP_GRACE)


def _answers(url: str) -> bool:
    try:
        httpx.get(url, timeout=PROBE_TIMEOUT)
    except httpx.HTTPError:
        return False
    return True
