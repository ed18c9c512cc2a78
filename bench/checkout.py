"""The code under test: the repository's paths, the bench site's build, and the commit a result measured."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"
SITE = BENCH / "site" / "oberon.toml"
RESULTS = BENCH / "results"


def clean_environ(**overrides: str) -> dict[str, str]:
    """This process's environment without the developer's `OBERON_*` settings, plus `overrides`."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("OBERON_") and k != "PROMETHEUS_MULTIPROC_DIR"}
    environ.update(overrides)
    return environ


def site_file(checkout: Path = ROOT) -> Path:
    """The bench site's `oberon.toml` in `checkout`."""
    return checkout / SITE.relative_to(ROOT)


def build_site(checkout: Path = ROOT) -> None:
    """`oberon build` of the bench site with `checkout`'s own code (its bundles, which the renderer serves)."""
    build = subprocess.run([sys.executable, "-m", "oberon", "--site", str(site_file(checkout)), "build"],
                           cwd=checkout, env=clean_environ(), capture_output=True, text=True)  # fmt: skip
    if build.returncode != 0:
        raise SystemExit(f"oberon build of the bench site in {checkout} failed:\n{build.stdout}{build.stderr}")


def commit(checkout: Path = ROOT) -> str:
    """The checkout's commit, and whether its tracked files differ from it: what code a result measured."""
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=checkout, capture_output=True, text=True)
    changed = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=checkout,
                             capture_output=True, text=True)  # fmt: skip
    return (head.stdout.strip() or "unknown") + (" + changes" if changed.stdout.strip() else "")
