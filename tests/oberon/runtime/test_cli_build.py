"""`oberon build`, and the renderer refusing to start on a build that lacks a component's asset."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from oberon.runtime import cli
from oberon.runtime.cli import main
from oberon.runtime.settings import Settings


def test_cli_build_writes_the_manifest_and_hashed_files(
    site: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    assert main(["--site", str(site / "oberon.toml"), "build"], environ={"OBERON_BUILD_DIR": str(out)}) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert "item-card@1.2.0/assets/item.js" in manifest["assets"]
    assert (out / manifest["assets"]["oberon/oberon.js"]["file"]).is_file()
    assert f"into {out}" in capsys.readouterr().out


def test_cli_build_defaults_to_a_folder_beside_the_site_file(site: Path) -> None:
    assert main(["--site", str(site / "oberon.toml"), "build"], environ={}) == 0
    assert (site / "build" / "assets" / "manifest.json").is_file()


def test_cli_renderer_refuses_to_start_when_a_component_asset_is_not_built(
    site: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    environ = {"OBERON_BUILD_DIR": str(out)}
    assert main(["--site", str(site / "oberon.toml"), "build"], environ=environ) == 0
    card = site / "components" / "item-card" / "component.toml"
    card.write_text(card.read_text().replace('js = ["assets/item.js"]', 'js = ["assets/item.js", "assets/late.js"]'))
    (site / "components" / "item-card" / "assets" / "late.js").write_text("1")
    status = main(["--site", str(site / "oberon.toml"), "serve", "renderer", "--port", "1"], environ=environ)
    assert status == 2
    error = capsys.readouterr().err
    assert "item-card@1.2.0: assets/late.js is not in" in error
    assert "run `oberon build`" in error


def test_cli_up_refuses_dev_with_split(site: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    environ = {"OBERON_BUILD_DIR": str(tmp_path / "out")}
    assert main(["--site", str(site / "oberon.toml"), "up", "--split", "--dev"], environ=environ) == 2
    assert "--dev rebuilds assets in the embedded topology only" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "environ", "message"),
    [
        (["--workers", "2"], {}, "--workers 2 needs OBERON_SESSION_STORE"),
        ([], {"OBERON_WORKERS": "3"}, "--workers 3 needs OBERON_SESSION_STORE"),
        (["--workers", "2", "--split"], {"OBERON_SESSION_STORE": "redis://127.0.0.1:1/0"}, "drop --split or --dev"),
        (["--workers", "2", "--dev"], {"OBERON_SESSION_STORE": "redis://127.0.0.1:1/0"}, "drop --split or --dev"),
        (["--workers", "-1"], {}, "--workers must be 1 or more"),
    ],
)
def test_cli_up_refuses_workers_that_could_not_share_what_they_must(
    site: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    environ: dict[str, str],
    message: str,
) -> None:
    environ = {"OBERON_BUILD_DIR": str(tmp_path / "out"), **environ}
    assert main(["--site", str(site / "oberon.toml"), "up", "--port", "1", *argv], environ=environ) == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize(
    ("given", "store", "split", "expected"),
    [
        (None, "", False, 1),  # one per CPU needs a shared store: without, one process as ever
        (None, "redis://127.0.0.1:6379/0", False, 4),  # one per CPU
        (3, "redis://127.0.0.1:6379/0", False, 3),
        (1, "", False, 1),
        (None, "redis://127.0.0.1:6379/0", True, 1),  # --split: one process per service
    ],
)
def test_cli_up_runs_one_worker_per_cpu_when_they_can_share_sessions(
    monkeypatch: pytest.MonkeyPatch, given: int | None, store: str, split: bool, expected: int
) -> None:
    monkeypatch.setattr(cli, "_cpus", lambda: 4)
    settings = Settings.from_environ({"OBERON_SESSION_STORE": store} if store else {})
    assert cli._workers(argparse.Namespace(workers=given, split=split, dev=False), settings) == expected
