"""The processes a benchmark starts: the stand-in BFF and the renderer, pinned to a core, stopped by their PID."""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import httpx

from bench.checkout import BENCH, ROOT, clean_environ, site_file
from oberon.runtime.supervisor import free_port

BACKEND_PORT = 18931  # bench/site/oberon.toml names it
SERVER_CPU = "0"
LOAD_CPU = "1"
START_TIMEOUT = 30.0


def pinned(cpu: str, argv: list[str]) -> list[str]:
    """`argv` run on core `cpu` only."""
    return ["taskset", "-c", cpu, *argv]  # taskset execs: the PID is the program's own


@contextlib.contextmanager
def process(argv: list[str], *, env: dict[str, str], log: Path, cwd: Path = ROOT) -> Iterator[subprocess.Popen[bytes]]:
    """`argv` started in the background, stopped by its PID (SIGTERM, then SIGKILL after 10 s)."""
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)


def wait_ready(url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    """Return once `url` answers below 500; fail loudly if `proc` exits or START_TIMEOUT passes first."""
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{shlex.join(map(str, proc.args))} exited {proc.returncode}; see {log}")  # type: ignore[arg-type]
        try:
            if httpx.get(url, timeout=1).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"{url} not ready in {START_TIMEOUT:.0f} s; see {log}")


def require_free(port: int) -> None:
    """Fail loudly if something already listens on the stand-in's fixed `port`."""
    with socket.socket() as sock:
        if sock.connect_ex(("127.0.0.1", port)) == 0:
            raise SystemExit(f"port {port} is taken; bench/site/oberon.toml needs it for the stand-in BFF")


def check_page(url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    """Fail loudly unless `url` answers 200 (retried while the services behind the gateway come up)."""
    deadline = time.monotonic() + START_TIMEOUT
    status, text = 0, ""
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{shlex.join(map(str, proc.args))} exited {proc.returncode}; see {log}")  # type: ignore[arg-type]
        try:
            answer = httpx.get(url, timeout=10)
            status, text = answer.status_code, answer.text
            if status == 200:
                return
        except httpx.HTTPError as exc:
            text = str(exc)
        time.sleep(0.5)
    raise SystemExit(f"GET {url} answered {status}, not 200, for {START_TIMEOUT:.0f} s: {text[:300]!r}; see {log}")


def stop_leftovers(pids: Sequence[int]) -> list[int]:
    """SIGTERM, by PID, each of `pids` (descendants of a process we started) still running; the ones it was sent to.

    A process that exited and whose PID the OS reused for another program is left alone: only
    `python -m oberon` processes are ended.
    """
    ended = []
    for pid in pids:
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except (FileNotFoundError, ProcessLookupError):
            continue
        if b"oberon" not in argv:
            continue
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
            ended.append(pid)
    return ended


@contextlib.contextmanager
def backend(
    scratch: Path, *, delay_ms: int, cache_control: str, changing: bool = False
) -> Iterator[subprocess.Popen[bytes]]:
    """The stand-in BFF on its fixed port, pinned to the load's core: `delay_ms` before each answer."""
    require_free(BACKEND_PORT)
    argv = pinned(LOAD_CPU, [
        sys.executable, "-m", "uvicorn", "--app-dir", str(BENCH / "site" / "backend"), "app:app",
        "--host", "127.0.0.1", "--port", str(BACKEND_PORT), "--log-level", "warning", "--no-access-log",
    ])  # fmt: skip
    env = clean_environ(
        BENCH_DELAY_MS=str(delay_ms), BENCH_CACHE_CONTROL=cache_control, BENCH_CHANGING="1" if changing else "0"
    )
    log = scratch / "backend.log"
    with process(argv, env=env, log=log) as proc:
        wait_ready(f"http://127.0.0.1:{BACKEND_PORT}/data/1", proc, log)
        yield proc


def service_port() -> int:
    """A free port whose next one is free too: a service started without `--admin-port` listens on both (its
    internal admin listener, `/metrics` included, on the port + 1), and a checkout from before the admin listener
    does not know the flag."""
    while True:
        port = free_port()
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
        return port


def admin_url(base: str) -> str:
    """The admin listener (`/metrics`, detailed health) of the service at `base` started without `--admin-port`."""
    head, _, port = base.rpartition(":")
    return f"{head}:{int(port) + 1}"


@contextlib.contextmanager
def renderer(
    scratch: Path, checkout: Path = ROOT, *, env: Mapping[str, str] | None = None
) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """The bench site's renderer, run from `checkout` (`python -m` imports that checkout's `oberon`), its base URL
    (its metrics at `admin_url(base)`).

    `env`: settings for the renderer under test (`--renderer-env`, e.g. OBERON_DEGRADED=normal).
    """
    port = service_port()
    argv = pinned(SERVER_CPU, [
        sys.executable, "-m", "oberon", "--site", str(site_file(checkout)), "serve", "renderer", "--port", str(port),
    ])  # fmt: skip
    log = scratch / f"renderer-{port}.log"
    with process(argv, env=clean_environ(**(env or {})), log=log, cwd=checkout) as proc:
        wait_ready(f"http://127.0.0.1:{port}/_oberon/health", proc, log)
        yield proc, f"http://127.0.0.1:{port}"
