"""Helpers for the monitoring tests: promtool, and the metric names the code exports."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from oberon.ops.metrics import Metrics

MONITORING = Path(__file__).resolve().parents[2] / "infra" / "monitoring"
METRIC_NAME = re.compile(r"\b(oberon_[a-z0-9_]+)\b")
_SUFFIXES = {"histogram": ("_bucket", "_count", "_sum"), "counter": ("_total",), "gauge": ("",)}


def exported_series() -> set[str]:
    """Every series name an Oberon process exposes (histograms as `_bucket`, `_count`, `_sum`; counters `_total`)."""
    families = [family for family in Metrics().registry.collect() if family.name.startswith("oberon_")]
    return {family.name + suffix for family in families for suffix in _SUFFIXES[family.type]}


def referenced(expr: str) -> set[str]:
    return set(METRIC_NAME.findall(expr))


@pytest.fixture(scope="session")
def promtool() -> str:
    """The promtool binary; CI installs it (`.ci/run`: Debian's prometheus package)."""
    found = shutil.which("promtool")
    if found is None:
        pytest.fail("promtool is missing: apt-get install prometheus (scripts/system-packages)")
    return found


def run(*argv: str, cwd: Path = MONITORING) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=120)
