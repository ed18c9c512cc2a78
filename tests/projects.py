"""A writable copy of the demo project (site file, components, BFFs, gateway, infra), for tests that change it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def project_copy(target: Path) -> Path:
    """Copy the demo project into `target`; return its site file. Services import from the copy when run there."""
    target.mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "oberon.toml", target / "oberon.toml")
    shutil.copytree(ROOT / "components", target / "components")
    # Whole packages, as in a checkout: run from the copy, a folder holding only some of a package's files
    # would shadow the installed package as a namespace package.
    for package in ("bff", "gateway", "infra"):
        shutil.copytree(ROOT / package, target / package, ignore=shutil.ignore_patterns("__pycache__"))
    return target / "oberon.toml"


def run_pytest(project: Path, *paths: str, env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run pytest on `paths` inside `project`, with the repository's pytest settings (warnings are errors)."""
    environ = {key: value for key, value in os.environ.items() if not key.startswith("OBERON_")}
    environ.update(env or {})
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-c",
            str(ROOT / "pyproject.toml"),
            "--rootdir",
            str(project),
            *paths,
        ],
        cwd=project,
        env=environ,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
