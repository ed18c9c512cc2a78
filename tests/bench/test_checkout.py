"""bench/checkout.py: the commit a result measured. No wrk, no servers."""

from __future__ import annotations

import subprocess
from pathlib import Path

from bench.checkout import commit


def test_commit_names_the_code_measured_and_says_when_it_was_changed(tmp_path: Path) -> None:
    assert commit(tmp_path) == "unknown"  # not a git checkout
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com"]
    (tmp_path / "page.py").write_text("a = 1\n")
    for argv in (["init", "-q"], ["add", "page.py"], ["commit", "-qm", "first"]):
        subprocess.run([*git, *argv], cwd=tmp_path, check=True)
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=tmp_path, capture_output=True, text=True)
    assert commit(tmp_path) == head.stdout.strip()
    (tmp_path / "page.py").write_text("a = 2\n")
    assert commit(tmp_path) == head.stdout.strip() + " + changes"
