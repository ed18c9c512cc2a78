"""A real `redis-server` for tests: our own process on a free loopback port, stopped by its PID."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from oberon.runtime.supervisor import free_port

START_TIMEOUT = 10.0
STOP_TIMEOUT = 10.0


@dataclass
class RedisServer:
    """A running `redis-server`: where it listens and its process; `stop()` ends it (a test may, mid-test)."""

    port: int
    process: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def pid(self) -> int:
        return self.process.pid

    def ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as conn:
                conn.sendall(b"PING\r\n")
                return conn.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@contextmanager
def run_redis() -> Iterator[RedisServer]:
    """Start `redis-server` (no persistence) on a free port, wait for PING, and stop it by PID afterwards."""
    binary = shutil.which("redis-server")
    assert binary, "redis-server is not installed: run scripts/system-packages test"
    port = free_port()
    argv = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    process = subprocess.Popen([*argv, "--daemonize", "no"], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    server = RedisServer(port=port, process=process)
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while not server.ping():
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"redis-server did not answer PING on port {port} (exit {process.poll()})")
            time.sleep(0.02)
        yield server
    finally:
        server.stop()
