"""The registry's commands end to end: a real `oberon registry serve` (SQLite, then PostgreSQL) on a free port, driven
by `oberon registry token`, `publish`, `ramp`, `promote`, `rollback` and `versions` as a team would run them."""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from oberon.runtime.cli import main
from oberon.runtime.supervisor import free_port
from tests.e2e.conftest import ROOT, START_TIMEOUT, stop, wait_healthy

ADMIN_TOKEN = "e2e-registry-platform-token-of-32-chars-or-more"


@dataclass
class Registry:
    url: str
    process: subprocess.Popen[str]

    def snapshot(self) -> dict[str, object]:
        answer = httpx.get(f"{self.url}/registry/v1/snapshot", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
        answer.raise_for_status()
        result: dict[str, object] = answer.json()
        return result


def environ(**extra: str) -> dict[str, str]:
    base = {key: value for key, value in os.environ.items() if not key.startswith("OBERON_")}
    return {**base, **extra}


def oberon(*args: str, registry: Registry | None = None, token: str | None = ADMIN_TOKEN, cwd: Path = ROOT,
           process: bool = False, **env: str) -> subprocess.CompletedProcess[str]:
    """Run `oberon ARGS` against `registry` with `token`: in this process (`cli.main`, as the console script
    calls it; quicker), or with `process=True` as its own process."""
    extra = dict(env)
    if registry is not None:
        extra["OBERON_REGISTRY_URL"] = registry.url
    if token is not None:
        extra["OBERON_REGISTRY_TOKEN"] = token
    if process:
        return subprocess.run(
            [sys.executable, "-m", "oberon", *args],
            cwd=cwd,
            env=environ(**extra),
            capture_output=True,
            text=True,
            timeout=120,
        )
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = main(["--site", str(cwd / "oberon.toml"), *args], environ=environ(**extra))
    return subprocess.CompletedProcess(args, status, out.getvalue(), err.getvalue())


@contextlib.contextmanager
def registry_process(
    database_url: str, work: Path, *extra: str, token: str = ADMIN_TOKEN, taken: frozenset[int] = frozenset()
) -> Iterator[Registry]:
    """`oberon registry serve` on a free port (not one of `taken`) over `database_url`, with `extra` arguments and
    `token` as its platform token; stopped by its PID."""
    port = free_port(taken=taken)
    log = tempfile.NamedTemporaryFile(mode="w+", prefix="oberon-registry-", suffix=".log")
    process = subprocess.Popen(
        [sys.executable, "-m", "oberon", "registry", "serve", "--port", str(port), "--database", database_url,
         "--work-dir", str(work), *extra],
        cwd=ROOT,
        env=environ(OBERON_REGISTRY_ADMIN_TOKEN=token),
        stdout=log,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(process, f"{url}/registry/v1/health", log=Path(log.name), name="the registry")
        yield Registry(url=url, process=process)
    finally:
        stop(process)
        log.close()


@pytest.fixture
def registry(database_url: str, tmp_path: Path) -> Iterator[Registry]:
    """`oberon registry serve` on a free port over the test's database."""
    with registry_process(database_url, tmp_path / "work") as running:
        yield running


def newer(tmp_path: Path, name: str, version: str, *, append: str = "") -> Path:
    """A copy of the demo site's component `name` as another version, its template optionally changed."""
    folder = shutil.copytree(ROOT / "components" / name, tmp_path / f"{name}-{version}")
    manifest = folder / "component.toml"
    manifest.write_text(manifest.read_text().replace('version = "1.0.0"', f'version = "{version}"', 1))
    if append:
        (folder / "template.html").write_text((folder / "template.html").read_text() + append)
    return folder


def test_registry_cli_publishes_ramps_promotes_and_rolls_back_with_the_history(
    registry: Registry, tmp_path: Path
) -> None:
    filled = oberon("publish", "--all", "--reason", "first fill", registry=registry)
    assert filled.returncode == 0, filled.stderr
    assert "oberon: published ticket-selector@1.0.0 (sha256:" in filled.stdout and "): stable" in filled.stdout
    assert len(filled.stdout.splitlines()) == len(list((ROOT / "components").glob("*/component.toml")))
    issued = oberon("registry", "token", "checkout", registry=registry)
    assert issued.returncode == 0, issued.stderr
    (checkout,) = issued.stdout.split()  # the token alone on its line
    assert "not shown again" in issued.stderr

    folder = newer(tmp_path, "ticket-selector", "1.1.0", append="<!-- 1.1.0 -->\n")
    published = oberon("publish", str(folder), "--reason", "clearer tiers", registry=registry, token=checkout)
    assert published.returncode == 0, published.stderr
    assert "published ticket-selector@1.1.0" in published.stdout and "in no channel yet" in published.stdout
    again = oberon("publish", str(folder), registry=registry, token=checkout)
    assert again.returncode == 0 and "unchanged ticket-selector@1.1.0" in again.stdout

    ramp = oberon("ramp", "ticket-selector", "1.1.0", "--percent", "10", "--reason", "try it", registry=registry,
                  token=checkout)
    assert (ramp.returncode, ramp.stdout) == (0, "oberon: ticket-selector: stable 1.0.0, canary 1.1.0 at 10 %\n")
    versions = oberon("versions", "ticket-selector", registry=registry, token=checkout)
    assert versions.returncode == 0, versions.stderr
    lines = versions.stdout.splitlines()
    assert lines[0] == "ticket-selector: stable 1.0.0, canary 1.1.0 at 10 % (owner: checkout)"
    assert lines[2].split() == ["version", "digest", "published", "by", "published", "at", "channel"]
    assert lines[3].split()[0::2] == ["1.0.0", "platform", "stable"]
    assert lines[4].split()[0] == "1.1.0" and lines[4].split()[2] == "checkout"
    assert lines[4].endswith("canary 10 %")

    promote = oberon("promote", "ticket-selector", "--reason", "looks good", registry=registry, token=checkout)
    assert (promote.returncode, promote.stdout) == (0, "oberon: ticket-selector: stable 1.1.0\n")
    rollback = oberon("rollback", "ticket-selector", "--reason", "complaints", registry=registry, token=checkout)
    assert (rollback.returncode, rollback.stdout) == (0, "oberon: ticket-selector: stable 1.0.0\n")
    to = oberon("rollback", "ticket-selector", "--to", "1.1.0", registry=registry, token=checkout)
    assert (to.returncode, to.stdout) == (0, "oberon: ticket-selector: stable 1.1.0\n")
    history = oberon("versions", "ticket-selector", registry=registry).stdout
    rows = history.split("\nhistory\n")[1].splitlines()[1:]
    assert [row.split(None, 3)[1:] for row in rows] == [
        ["platform", "publish", "1.0.0          first fill"],
        ["checkout", "publish", "1.1.0          clearer tiers"],
        ["checkout", "ramp", "1.1.0 at 10 %  try it"],
        ["checkout", "promote", "1.1.0          looks good"],
        ["checkout", "rollback", "1.0.0          complaints"],
        ["checkout", "rollback", "1.1.0"],
    ]
    nothing = oberon("rollback", "ticket-selector", registry=registry, token=checkout)
    assert nothing.returncode == 1
    refusal = "ticket-selector has no earlier stable version to roll back to"
    assert nothing.stderr == f"oberon: the registry refused: {refusal}\n"


def test_registry_cli_refuses_a_wrong_team_with_the_reason_and_changes_nothing(
    registry: Registry, tmp_path: Path
) -> None:
    assert oberon("publish", "--all", registry=registry).returncode == 0
    assert oberon("publish", str(newer(tmp_path, "ticket-selector", "1.1.0")), registry=registry).returncode == 0
    events = oberon("registry", "token", "events", registry=registry).stdout.strip()
    before = registry.snapshot()
    reason = "oberon: the registry refused: team 'events' does not own ticket-selector (owner: checkout)\n"
    for args in (
        ("publish", str(newer(tmp_path, "ticket-selector", "1.2.0"))),
        ("ramp", "ticket-selector", "1.1.0", "--percent", "50"),
        ("promote", "ticket-selector", "1.1.0"),
        ("rollback", "ticket-selector", "--to", "1.1.0"),
    ):
        refused = oberon(*args, registry=registry, token=events, process=True)  # the console script's exit status
        assert (refused.returncode, refused.stderr, refused.stdout) == (1, reason, ""), args
    token = oberon("registry", "token", "hackers", registry=registry, token=events)
    assert token.returncode == 1 and "only the platform token issues team tokens" in token.stderr
    assert registry.snapshot() == before
    unknown = oberon("versions", "ticket-selector", registry=registry, token="a-token-nobody-issued")
    assert unknown.returncode == 1 and "the token is not one this registry issued" in unknown.stderr


def test_registry_cli_refuses_a_changed_version_and_a_broken_one_with_file_field_errors(
    registry: Registry, tmp_path: Path
) -> None:
    assert oberon("publish", "--all", registry=registry).returncode == 0
    changed = newer(tmp_path, "ticket-selector", "1.0.0", append="<!-- sneaky -->\n")
    refused = oberon("publish", str(changed), registry=registry)
    assert refused.returncode == 1
    assert "ticket-selector@1.0.0 is already published with other contents (sha256:" in refused.stderr
    assert refused.stderr.rstrip().endswith("a published version never changes: raise the version")
    broken = newer(tmp_path, "ticket-selector", "1.2.0", append="{% if %}\n")
    refused = oberon("publish", str(broken), registry=registry)
    assert refused.returncode == 1
    lines = refused.stderr.splitlines()
    assert lines[0].startswith("oberon: the registry refused: the release would break the registry")
    assert any(line.startswith("  ticket-selector@1.2.0/template.html:line ") for line in lines[1:]), lines
    missing = oberon("publish", str(tmp_path / "nothing-here"), registry=registry)
    assert missing.returncode == 1 and "not a component folder" in missing.stderr


def test_registry_commands_need_a_registry_and_a_token(tmp_path: Path) -> None:
    nowhere = oberon("versions", "ticket-selector")
    assert nowhere.returncode == 2
    assert nowhere.stderr == "oberon: which registry? pass --registry URL or set OBERON_REGISTRY_URL\n"
    tokenless = oberon("versions", "ticket-selector", "--registry", "http://127.0.0.1:9", token=None)
    assert tokenless.returncode == 2 and "set OBERON_REGISTRY_TOKEN" in tokenless.stderr
    down = oberon("versions", "ticket-selector", "--registry", f"http://127.0.0.1:{free_port()}")
    assert down.returncode == 1 and "cannot be reached" in down.stderr


@pytest.mark.parametrize("token", [None, "", "too-short-a-platform-token"])
def test_registry_serve_refuses_to_start_without_a_platform_token_of_32_characters(
    tmp_path: Path, token: str | None
) -> None:
    env = {} if token is None else {"OBERON_REGISTRY_ADMIN_TOKEN": token}
    started = oberon("registry", "serve", "--port", str(free_port()), "--database",
                     f"sqlite:///{tmp_path / 'r.sqlite3'}", token=None, process=True, **env)
    assert started.returncode == 2
    assert "OBERON_REGISTRY_ADMIN_TOKEN must be set to at least 32 characters" in started.stderr
    assert not (tmp_path / "r.sqlite3").exists()


def test_registry_serve_refuses_to_start_without_its_database(tmp_path: Path) -> None:
    url = f"postgresql://oberon:hunter2-password@127.0.0.1:{free_port()}/registry"
    started = oberon("registry", "serve", "--port", str(free_port()), "--database", url, token=None,
                     process=True, OBERON_REGISTRY_ADMIN_TOKEN=ADMIN_TOKEN)
    assert started.returncode == 2
    assert "the registry does not start without its database" in started.stderr
    assert "hunter2" not in started.stderr
    bad = oberon("registry", "serve", "--database", "mysql://x/y", token=None, OBERON_REGISTRY_ADMIN_TOKEN=ADMIN_TOKEN)
    # (in this process: it stops before it would serve)
    assert bad.returncode == 2 and "sqlite:///PATH or postgresql://" in bad.stderr


def test_registry_commands_never_load_the_sites_components(tmp_path: Path) -> None:
    """A site whose registry does not load still serves its registry (default database under .oberon/) and
    publishes a good folder: these commands read only what they are given."""
    site = tmp_path / "site"
    shutil.copytree(ROOT / "components" / "site-footer", site / "components" / "site-footer")
    (site / "components" / "broken").mkdir()
    (site / "components" / "broken" / "component.toml").write_text("this is not toml")
    (site / "oberon.toml").write_text('components = ["components"]\n')
    assert oberon("check", cwd=site, process=True).returncode == 1
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "oberon", "registry", "serve", "--port", str(port)],
        cwd=site,
        env=environ(OBERON_REGISTRY_ADMIN_TOKEN=ADMIN_TOKEN),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            assert process.poll() is None and time.monotonic() < deadline, "the registry did not start"
            try:
                if httpx.get(f"{url}/registry/v1/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        assert (site / ".oberon" / "registry.sqlite3").is_file()
        published = oberon("publish", "components/site-footer", "--registry", url, cwd=site, process=True)
        assert published.returncode == 0, published.stderr
        assert "published site-footer@1.0.0" in published.stdout
    finally:
        stop(process)
