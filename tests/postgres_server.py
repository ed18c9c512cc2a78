"""A real PostgreSQL for tests: Debian's server as our own process, in a temporary data directory on a free
loopback port, stopped through `pg_ctl` (by the PID it wrote) at the end.

PostgreSQL refuses to run as root: as root, the data directory is given to the `postgres` user and every
command runs through `runuser -u postgres --`.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg

from oberon.runtime.supervisor import free_port

START_TIMEOUT = 30.0
USER = "oberon"
SYSTEM_USER = "postgres"


@dataclass
class PostgresServer:
    """A running PostgreSQL: where it listens; `database()` makes a fresh, empty database on it."""

    port: int
    data: Path
    pg_ctl: str
    as_user: tuple[str, ...]

    @property
    def url(self) -> str:
        return f"postgresql://{USER}@127.0.0.1:{self.port}/postgres"

    def database(self) -> str:
        """A new database of its own (for one test), as a `postgresql://` URL."""
        name = f"test_{uuid.uuid4().hex[:16]}"
        with psycopg.connect(f"host=127.0.0.1 port={self.port} user={USER} dbname=postgres", autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}" STRATEGY = FILE_COPY')  # faster than WAL_LOG for small ones
        return f"postgresql://{USER}@127.0.0.1:{self.port}/{name}"

    def ready(self) -> bool:
        try:
            with psycopg.connect(
                f"host=127.0.0.1 port={self.port} user={USER} dbname=postgres", connect_timeout=1
            ) as conn:
                conn.execute("SELECT 1")
            return True
        except psycopg.Error:
            return False

    @property
    def pid(self) -> int | None:
        """The postmaster's PID, from the file it writes in its data directory."""
        try:
            return int((self.data / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def stop(self) -> None:
        pid = self.pid
        if pid is None:
            return
        try:
            subprocess.run(
                [*self.as_user, self.pg_ctl, "-D", str(self.data), "-m", "fast", "-w", "stop"],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.STDOUT,
                check=False,
                timeout=START_TIMEOUT,
            )
        except subprocess.TimeoutExpired:
            pass
        if self.pid == pid:  # pg_ctl could not stop it: end our postmaster by its PID
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def binaries() -> tuple[str, str]:
    """Debian's `initdb` and `pg_ctl` (not on PATH: under /usr/lib/postgresql/<major>/bin), newest major first."""
    for folder in sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=_major, reverse=True):
        initdb, pg_ctl = Path(folder) / "initdb", Path(folder) / "pg_ctl"
        if initdb.is_file() and pg_ctl.is_file():
            return str(initdb), str(pg_ctl)
    initdb_on_path, pg_ctl_on_path = shutil.which("initdb"), shutil.which("pg_ctl")
    assert initdb_on_path and pg_ctl_on_path, "PostgreSQL is not installed: run scripts/system-packages test"
    return initdb_on_path, pg_ctl_on_path


def _in_memory() -> str | None:
    """`/dev/shm` (a tmpfs) where there is one, else the default temporary folder. A session's databases are
    thousands of files: removing them took 30 s or more on a disk mounted with `discard`, and no time in memory."""
    shm = Path("/dev/shm")
    return str(shm) if shm.is_dir() and os.access(shm, os.W_OK | os.X_OK) else None


def _major(folder: str) -> int:
    version = Path(folder).parent.name
    return int(version) if version.isdigit() else 0


@contextmanager
def run_postgres() -> Iterator[PostgresServer]:
    """Start PostgreSQL (trust auth on loopback only, no fsync) on a free port; stop it and remove its data after."""
    initdb, pg_ctl = binaries()
    as_user: tuple[str, ...] = ()
    root = Path(tempfile.mkdtemp(prefix="oberon-postgres-", dir=_in_memory()))
    if os.geteuid() == 0:
        runuser = shutil.which("runuser")
        assert runuser, "runuser is missing: PostgreSQL will not run as root"
        as_user = (runuser, "-u", SYSTEM_USER, "--")
        shutil.chown(root, user=SYSTEM_USER)
    data = root / "data"
    port = free_port()
    server = PostgresServer(port=port, data=data, pg_ctl=pg_ctl, as_user=as_user)
    try:
        subprocess.run(
            [*as_user, initdb, "-D", str(data), "-A", "trust", "-U", USER, "--no-sync"],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            timeout=120,
        )
        options = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off"
        subprocess.run(
            [*as_user, pg_ctl, "-D", str(data), "-o", options, "-l", str(root / "log"), "-w", "start"],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            timeout=START_TIMEOUT,
        )
        deadline = time.monotonic() + START_TIMEOUT
        while not server.ready():
            if time.monotonic() > deadline:
                log = (root / "log").read_text(errors="replace") if (root / "log").exists() else ""
                raise RuntimeError(f"PostgreSQL did not answer on port {port}:\n{log}")
            time.sleep(0.05)
        yield server
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)
