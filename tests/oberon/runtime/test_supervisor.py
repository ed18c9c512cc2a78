"""The split topology's supervisor over small stand-in children (a socket listening, then sleeping)."""

from __future__ import annotations

import io
import os
import signal
import socket
import sys
import threading
from pathlib import Path

import pytest

from oberon.runtime.supervisor import ChildSpec, Supervisor, free_port, serve_command

LISTEN = (
    "import socket, sys, time; s = socket.socket(); s.bind(('127.0.0.1', int(sys.argv[1]))); s.listen(); time.sleep(60)"
)


def child(name: str, *, code: str = LISTEN) -> ChildSpec:
    port = free_port()
    return ChildSpec(name=name, host="127.0.0.1", port=port, argv=(sys.executable, "-c", code, str(port)))


def after(seconds: float, action: object) -> threading.Timer:
    assert callable(action)
    timer = threading.Timer(seconds, action)
    timer.start()
    return timer


def test_supervisor_prints_the_map_and_stops_every_child_when_asked() -> None:
    out = io.StringIO()
    supervisor = Supervisor([child("backend:a"), child("gateway")], essential="gateway", out=out, stop_grace=5)
    timer = after(1.0, supervisor.request_stop)
    assert supervisor.run() == 0
    timer.cancel()
    printed = out.getvalue()
    assert "split topology: 2 processes" in printed
    assert f"backend:a  http://127.0.0.1:{supervisor.children[0].port}  pid " in printed
    assert "(the entrance)" in printed and "all 2 services are up" in printed and "stopped 2 processes" in printed
    assert all(process.poll() is not None for process in supervisor.processes.values())


def test_supervisor_reports_a_child_that_dies_and_keeps_the_rest(capsys: pytest.CaptureFixture[str]) -> None:
    out = io.StringIO()
    supervisor = Supervisor([child("bff:a"), child("gateway")], essential="gateway", out=out, stop_grace=5)
    kill = after(1.0, lambda: os.kill(supervisor.processes["bff:a"].pid, signal.SIGKILL))
    stop = after(2.0, supervisor.request_stop)
    assert supervisor.run() == 0
    kill.cancel()
    stop.cancel()
    assert "bff:a (pid" in capsys.readouterr().err
    assert "stopped 1 processes" in out.getvalue()


def test_supervisor_stops_everything_when_the_essential_child_dies(capsys: pytest.CaptureFixture[str]) -> None:
    supervisor = Supervisor([child("bff:a"), child("gateway")], essential="gateway", out=io.StringIO(), stop_grace=5)
    kill = after(1.0, lambda: os.kill(supervisor.processes["gateway"].pid, signal.SIGKILL))
    assert supervisor.run() == 1
    kill.cancel()
    assert "gateway (pid" in capsys.readouterr().err
    assert all(process.poll() is not None for process in supervisor.processes.values())


def test_supervisor_fails_when_a_child_exits_at_start(capsys: pytest.CaptureFixture[str]) -> None:
    failing = child("renderer", code="import sys; sys.exit(3)")
    supervisor = Supervisor([failing, child("gateway")], essential="gateway", out=io.StringIO(), stop_grace=5)
    assert supervisor.run() == 1
    assert "renderer (pid" in capsys.readouterr().err
    assert all(process.poll() is not None for process in supervisor.processes.values())


def test_supervisor_serve_command_names_the_other_services() -> None:
    argv = serve_command(
        "renderer",
        port=8001,
        host="127.0.0.1",
        admin_port=9001,
        admin_host="127.0.0.1",
        site=Path("/srv/oberon.toml"),
        upstreams={"renderer": "http://127.0.0.1:8001", "bff:a": "http://127.0.0.1:8002"},
        parent_pid=42,
    )
    assert argv[1:] == (
        "-m", "oberon", "--site", "/srv/oberon.toml", "serve", "renderer", "--host", "127.0.0.1", "--port", "8001",
        "--admin-host", "127.0.0.1", "--admin-port", "9001",
        "--upstream", "bff:a=http://127.0.0.1:8002", "--parent-pid", "42",
    )  # fmt: skip


def test_free_ports_are_below_the_range_of_outgoing_connections_and_free() -> None:
    """A port `bind(0)` picks may become an outgoing connection's local end before a server binds it."""
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    taken: set[int] = set()
    for _ in range(50):
        port = free_port(taken=taken)
        assert port not in taken and 20000 <= port < low
        with socket.socket() as server:  # a server can listen on it
            server.bind(("127.0.0.1", port))
            server.listen()
        taken.add(port)
