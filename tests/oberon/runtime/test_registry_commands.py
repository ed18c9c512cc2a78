"""The registry's commands cost the other `oberon` commands nothing: the storage library loads only to serve."""

from __future__ import annotations

import subprocess
import sys

from tests.e2e.conftest import ROOT


def test_registry_commands_leave_sqlalchemy_to_registry_serve() -> None:
    # Every process of `oberon up --split` imports the CLI; SQLAlchemy alone would add about 0.3 s to each.
    probe = "import sys, oberon.runtime.cli; print('sqlalchemy' in sys.modules)"
    answer = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True)
    assert answer.stdout.strip() == "False"
