"""The split topology's supervisor: one child process per service, watched, and stopped by PID.

`oberon up --split` starts each service as `python -m oberon serve SERVICE --port N --admin-port M`
on its own loopback ports (public and internal admin), prints the map of services, ports and PIDs,
reports a child that dies (the gateway then answers 502 for its routes), and on Ctrl-C or SIGTERM
stops every child it started.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import TextIO

LOOPBACK = "127.0.0.1"
DEFAULT_START_TIMEOUT = 30.0
DEFAULT_STOP_GRACE = 10.0
POLL_INTERVAL = 0.2


# Below the kernel's range for the local ends of outgoing connections, above the usual services' ports.
_LOWEST_CHOSEN_PORT = 20000
_EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")


def free_port(host: str = LOOPBACK, *, taken: Collection[int] = ()) -> int:
    """A port that is free now and not in `taken`, for a server of ours to listen on a moment later.

    Chosen below the range the kernel hands outgoing connections their local ports from (`bind(0)` picks one in
    it): a port from there can become the local end of any connection (a Redis client's, a health probe's) before
    our server binds it, which then fails with "address already in use". Another process may still bind it first.
    """
    room = _ephemeral_start() - _LOWEST_CHOSEN_PORT
    for _ in range(100 if room > 0 else 0):
        # The system's randomness: a test seeding `random`, or a forked worker, would pick the same ports again.
        port = _LOWEST_CHOSEN_PORT + secrets.randbelow(room)
        if port not in taken and _bindable(host, port):
            return port
    while True:  # no room below the range (or none free there): where the kernel picks
        with socket.socket() as sock:
            sock.bind((host, 0))
            port = int(sock.getsockname()[1])
        if port not in taken:
            return port


def _ephemeral_start() -> int:
    """The lowest port of outgoing connections (Linux's default 32768 where the kernel does not say)."""
    try:
        return int(_EPHEMERAL_RANGE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def _bindable(host: str, port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


@dataclass(frozen=True)
class ChildSpec:
    """One service to run: its name, where it listens (public and admin), and its command line."""

    name: str
    host: str
    port: int
    argv: tuple[str, ...]
    admin_host: str = LOOPBACK
    admin_port: int | None = None  # None: a child without an admin listener (a test's stand-in)
    withheld: frozenset[str] = frozenset()  # environment variables (secrets) this child is not given

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def admin_url(self) -> str | None:
        return None if self.admin_port is None else f"http://{self.admin_host}:{self.admin_port}"


def serve_command(
    service: str,
    *,
    port: int,
    host: str,
    admin_port: int,
    admin_host: str,
    site: Path,
    upstreams: Mapping[str, str],
    parent_pid: int,
    stand_ins: bool = False,
) -> tuple[str, ...]:
    """`python -m oberon --site SITE serve SERVICE --port N --admin-port M --upstream NAME=URL … [--stand-ins]`.

    `stand_ins`: the supervisor runs the site's stand-in backends, so the gateway routes to their admin.
    """
    argv = [sys.executable, "-m", "oberon", "--site", str(site), "serve", service, "--host", host, "--port", str(port)]
    argv += ["--admin-host", admin_host, "--admin-port", str(admin_port)]
    for name, url in upstreams.items():
        if name != service:
            argv += ["--upstream", f"{name}={url}"]
    if stand_ins:
        argv.append("--stand-ins")
    return (*argv, "--parent-pid", str(parent_pid))


class Supervisor:
    """Starts the children, waits for their ports, watches them, and stops them all on a signal."""

    def __init__(
        self,
        children: Sequence[ChildSpec],
        *,
        essential: str,
        environ: Mapping[str, str] | None = None,
        out: TextIO | None = None,
        start_timeout: float = DEFAULT_START_TIMEOUT,
        stop_grace: float = DEFAULT_STOP_GRACE,
    ) -> None:
        self.children = tuple(children)
        self.essential = essential
        self.environ = dict(os.environ if environ is None else environ)
        self.out = out or sys.stdout
        self.start_timeout = start_timeout
        self.stop_grace = stop_grace
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self._stop = threading.Event()

    def request_stop(self) -> None:
        """Stop the children and return from `run` (what a signal does)."""
        self._stop.set()

    def say(self, message: str, *, error: bool = False) -> None:
        print(f"oberon: {message}", file=sys.stderr if error else self.out, flush=True)

    def run(self) -> int:
        """Run until a signal (exit 0) or the death of the essential child, the gateway (exit 1)."""
        with self._signals():
            try:
                self.start()
                ready = self.wait_ready()
                if self._stop.is_set():
                    return 0  # a signal while starting is a request to stop, not a failure
                return self.watch() if ready else 1
            finally:
                self.stop()

    def start(self) -> None:
        for child in self.children:
            # Its own process group: a Ctrl-C reaches the supervisor only, which stops each child by its PID.
            environ = {name: value for name, value in self.environ.items() if name not in child.withheld}
            self.processes[child.name] = subprocess.Popen(child.argv, env=environ, process_group=0)
        width = max(len(child.name) for child in self.children)
        self.say(f"split topology: {len(self.children)} processes")
        for child in self.children:
            role = "  (the entrance)" if child.name == self.essential else ""
            pid = self.processes[child.name].pid
            admin = f"  admin {child.admin_url}" if child.admin_url else ""
            self.say(f"  {child.name:<{width}}  {child.url}  pid {pid}{admin}{role}")

    def wait_ready(self) -> bool:
        """Wait until every child accepts connections on its ports."""
        deadline = time.monotonic() + self.start_timeout
        waiting = {child.name: child for child in self.children}
        while waiting:
            for name, child in list(waiting.items()):
                code = self.processes[name].poll()
                if code is not None:
                    self.say(f"{name} (pid {self.processes[name].pid}) exited with status {code} at start", error=True)
                    return False
                admin = child.admin_port is None or _accepts(child.admin_host, child.admin_port)
                if admin and _accepts(child.host, child.port):
                    del waiting[name]
            if self._stop.is_set():
                return False
            if time.monotonic() > deadline:
                self.say(f"not up within {self.start_timeout:g}s: {', '.join(sorted(waiting))}", error=True)
                return False
            time.sleep(POLL_INTERVAL)
        self.say(f"all {len(self.children)} services are up; entrance {self._entrance()}")
        return True

    def watch(self) -> int:
        reported: set[str] = set()
        while not self._stop.wait(POLL_INTERVAL):
            for name, process in self.processes.items():
                code = process.poll()
                if code is None or name in reported:
                    continue
                reported.add(name)
                if name == self.essential:
                    self.say(f"{name} (pid {process.pid}) exited with status {code}; stopping", error=True)
                    return 1
                self.say(
                    f"{name} (pid {process.pid}) exited with status {code}; the gateway answers 502 for its routes",
                    error=True,
                )
        return 0

    def stop(self) -> None:
        """SIGTERM to each running child by its PID; SIGKILL to any still running after the grace period."""
        running = [process for process in self.processes.values() if process.poll() is None]
        for process in running:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self.stop_grace
        for process in running:
            try:
                process.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if running:
            self.say(f"stopped {len(running)} processes")

    def _entrance(self) -> str:
        return next(child.url for child in self.children if child.name == self.essential)

    @contextlib.contextmanager
    def _signals(self) -> Iterator[None]:
        def handle(signum: int, frame: FrameType | None) -> None:
            self.request_stop()

        previous = {signum: signal.signal(signum, handle) for signum in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)


def watch_parent(parent_pid: int, *, interval: float = 0.5) -> None:
    """In a child: stop this process (SIGTERM to itself) once its supervisor is gone, so none is left orphaned."""

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(interval)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="oberon-parent-watch", daemon=True).start()


def _accepts(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        try:
            sock.connect((host, port))
        except OSError:
            return False
    return True
