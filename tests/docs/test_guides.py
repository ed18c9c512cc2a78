"""Every command in the guides (docs/*.md, ```sh blocks) runs, in order, on a copy of the project.

A command's trailing `# exits N` is the exit status it must end with (0 otherwise); `oberon up`
runs in the background until the guide ends, on a free port that replaces 8000 everywhere.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import free_port
from tests.projects import ROOT, project_copy

GUIDES = ["component-team.md", "bff-author.md", "app-team.md", "operator.md"]
_EXITS = re.compile(r"\s+#\s*exits\s+(\d+)\b.*$")
_UP = re.compile(r"^(?:[A-Z_][A-Z0-9_]*=\S+\s+)*oberon up\b")
START_TIMEOUT = 60.0


@dataclass(frozen=True)
class Command:
    text: str
    exits: int
    line: int


def commands(markdown: str) -> list[Command]:
    """The commands of every ```sh block, continuation lines joined, comments dropped."""
    found = []
    fence: str | None = None
    pending = ""
    start = 0
    for number, line in enumerate(markdown.splitlines(), start=1):
        stripped = line.strip()
        if fence is None:
            if stripped.startswith("```"):
                fence = stripped[3:].strip().split(" ")[0]
            continue
        if stripped.startswith("```"):
            fence = None
            continue
        if fence != "sh" or (not pending and (not stripped or stripped.startswith("#"))):
            continue
        if not pending:
            start = number
        if stripped.endswith("\\"):
            pending += stripped[:-1].rstrip() + " "
            continue
        text = pending + stripped
        pending = ""
        exits = _EXITS.search(text)
        code = int(exits.group(1)) if exits else 0
        text = _EXITS.sub("", text) if exits else re.sub(r"\s+#\s.*$", "", text)
        found.append(Command(text=text, exits=code, line=start))
    return found


@pytest.mark.parametrize("guide", GUIDES)
def test_guide_has_commands_to_run(guide: str) -> None:
    assert commands((ROOT / "docs" / guide).read_text()), f"docs/{guide} has no ```sh block"


def test_commands_parse_continuations_comments_and_exit_statuses() -> None:
    text = "```sh\n# a comment\noberon check   # exits 1: why\ncurl a \\\n  b\n```\n```toml\nx = 1\n```\n"
    assert commands(text) == [Command("oberon check", 1, 3), Command("curl a b", 0, 4)]


class Background:
    """`oberon up …` of a guide, started and stopped by its PID."""

    def __init__(self) -> None:
        self.process: subprocess.Popen[bytes] | None = None
        self.log = tempfile.NamedTemporaryFile(prefix="guide-up-", suffix=".log")

    def start(self, text: str, *, cwd: Path, env: dict[str, str], port: int, admin_port: int) -> None:
        self.stop()
        words = shlex.split(text)
        environ = dict(env)
        while "=" in words[0] and words[0].split("=")[0].isupper():
            name, _, value = words.pop(0).partition("=")
            environ[name] = value
        if "--port" not in words:
            words += ["--port", str(port)]
        if "--admin-port" not in words:  # the default, the port after the entrance's, may be another test's
            words += ["--admin-port", str(admin_port)]
        self.process = subprocess.Popen(words, cwd=cwd, env=environ, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"{text} exited with {self.process.returncode}:\n{self.output()}")
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/_oberon/health", timeout=2)
                if health.status_code == 200 and health.json().get("status") == "ok":
                    return
            except (httpx.HTTPError, ValueError):
                pass
            time.sleep(0.2)
        pytest.fail(f"{text} did not become healthy:\n{self.output()}")

    def output(self) -> str:
        return Path(self.log.name).read_text(errors="replace")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None


@pytest.fixture
def background() -> Iterator[Background]:
    running = Background()
    yield running
    running.stop()
    running.log.close()


@pytest.mark.e2e
@pytest.mark.parametrize("guide", GUIDES)
def test_guide_commands_run(guide: str, tmp_path: Path, background: Background) -> None:
    project = project_copy(tmp_path / "project").parent
    port = free_port()
    admin_port = free_port(taken={port})  # the guides' admin listener is on 8001
    env = {key: value for key, value in os.environ.items() if not key.startswith("OBERON_")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    # The copy stands in for the project the virtualenv was installed from: its own packages (a new BFF) come first,
    # then this checkout's `oberon` (the virtualenv's editable install may point at another checkout).
    env["PYTHONPATH"] = f"{project}{os.pathsep}{ROOT}"
    for command in commands((ROOT / "docs" / guide).read_text()):
        text = command.text.replace(":8000", f":{port}").replace("--port 8000", f"--port {port}")
        text = text.replace(":8001", f":{admin_port}").replace("--admin-port 8001", f"--admin-port {admin_port}")
        where = f"docs/{guide}:{command.line}: {command.text}"
        if _UP.match(text):
            background.start(text, cwd=project, env=env, port=port, admin_port=admin_port)
            continue
        result = subprocess.run(
            ["bash", "-o", "pipefail", "-c", text],
            cwd=project,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        server = f"\n--- oberon up ---\n{background.output()[-3000:]}" if background.process else ""
        assert result.returncode == command.exits, (
            f"{where}\nexited {result.returncode}, expected {command.exits}\n{result.stdout[-3000:]}"
            f"{result.stderr[-3000:]}{server}"
        )
