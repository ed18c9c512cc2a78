"""Every command in the guides (docs/*.md, ```sh blocks) runs, in order, on a copy of the project.

A command's trailing `# exits N` is the exit status it must end with (0 otherwise); `oberon up`
runs in the background until the guide ends, on a free port that replaces 8000 everywhere (its admin
listener's replaces 8001), and so does `oberon registry serve` (9000). An `export NAME=VALUE …` line sets
those variables for the commands after it, as in the reader's shell.
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

GUIDES = ["component-team.md", "bff-author.md", "app-team.md", "operator.md", "registry.md"]
_EXITS = re.compile(r"\s+#\s*exits\s+(\d+)\b.*$")
_UP = re.compile(r"^(?:[A-Z_][A-Z0-9_]*=\S+\s+)*oberon up\b")
_REGISTRY = re.compile(r"^(?:[A-Z_][A-Z0-9_]*=\S+\s+)*oberon registry serve\b")
_EXPORT = re.compile(r"^export\s+[A-Z_][A-Z0-9_]*=")
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
    """A long-running command of a guide (`oberon up`, `oberon registry serve`), started and stopped by its PID."""

    def __init__(self) -> None:
        self.process: subprocess.Popen[bytes] | None = None
        self.log = tempfile.NamedTemporaryFile(prefix="guide-up-", suffix=".log")

    def start(self, text: str, *, cwd: Path, env: dict[str, str], extra: list[str], health: str) -> None:
        """Run `text` (with `extra` arguments) until `health` answers 200 with status ok."""
        self.stop()
        words = shlex.split(text)
        environ = dict(env)
        while "=" in words[0] and words[0].split("=")[0].isupper():
            name, _, value = words.pop(0).partition("=")
            environ[name] = value
        for flag, value in zip(extra[::2], extra[1::2], strict=True):
            if flag not in words:
                words += [flag, value]
        self.process = subprocess.Popen(words, cwd=cwd, env=environ, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"{text} exited with {self.process.returncode}:\n{self.output()}")
            try:
                answer = httpx.get(health, timeout=2)
                if answer.status_code == 200 and answer.json().get("status") == "ok":
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


@pytest.fixture
def registry_background() -> Iterator[Background]:
    running = Background()
    yield running
    running.stop()
    running.log.close()


def exported(text: str, *, cwd: Path, env: dict[str, str]) -> dict[str, str]:
    """The environment after an `export …` line ran in bash (its `$(…)` evaluated there)."""
    result = subprocess.run(
        ["bash", "-o", "pipefail", "-c", f"{text} && env -0"],
        cwd=cwd, env=env, capture_output=True, timeout=300, check=False,
    )  # fmt: skip
    assert result.returncode == 0, f"{text}\n{result.stderr.decode(errors='replace')[-3000:]}"
    pairs = (item.partition("=") for item in result.stdout.decode().split("\0") if "=" in item)
    return {name: value for name, _, value in pairs}


@pytest.mark.e2e
@pytest.mark.parametrize("guide", GUIDES)
def test_guide_commands_run(
    guide: str, tmp_path: Path, background: Background, registry_background: Background
) -> None:
    project = project_copy(tmp_path / "project").parent
    port = free_port()
    admin_port = free_port(taken={port})  # the guides' admin listener is on 8001
    registry_port = free_port(taken={port, admin_port})  # and the registry service on 9000
    env = {key: value for key, value in os.environ.items() if not key.startswith("OBERON_")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    # The copy stands in for the project the virtualenv was installed from: its own packages (a new BFF) come first,
    # then this checkout's `oberon` (the virtualenv's editable install may point at another checkout).
    env["PYTHONPATH"] = f"{project}{os.pathsep}{ROOT}"
    for command in commands((ROOT / "docs" / guide).read_text()):
        text = command.text.replace(":8000", f":{port}").replace("--port 8000", f"--port {port}")
        text = text.replace(":8001", f":{admin_port}").replace("--admin-port 8001", f"--admin-port {admin_port}")
        text = text.replace(":9000", f":{registry_port}").replace("--port 9000", f"--port {registry_port}")
        where = f"docs/{guide}:{command.line}: {command.text}"
        if _UP.match(text):
            # The default admin port, the port after the entrance's, may be another test's.
            extra = ["--port", str(port), "--admin-port", str(admin_port)]
            health = f"http://127.0.0.1:{port}/_oberon/health"
            background.start(text, cwd=project, env=env, extra=extra, health=health)
            continue
        if _REGISTRY.match(text):
            health = f"http://127.0.0.1:{registry_port}/registry/v1/health"
            registry_background.start(text, cwd=project, env=env, extra=["--port", str(registry_port)], health=health)
            continue
        if _EXPORT.match(text):
            env = exported(text, cwd=project, env=env)
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
