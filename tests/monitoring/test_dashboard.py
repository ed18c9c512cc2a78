"""The Grafana dashboard: parses, has the panels the seed describes, and queries only metrics the code exports."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml

from tests.monitoring.conftest import MONITORING, exported_series, referenced, run

DASHBOARD = MONITORING / "dashboard.json"


def panels() -> list[dict[str, Any]]:
    return [panel for panel in json.loads(DASHBOARD.read_text())["panels"] if panel["type"] != "row"]


def queries() -> list[str]:
    return [target["expr"] for panel in panels() for target in panel["targets"]]


def test_dashboard_parses_and_every_panel_has_a_query() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] and dashboard["title"]
    assert panels()
    for panel in panels():
        assert panel["targets"], panel["title"]
        assert all(target["expr"].strip() for target in panel["targets"]), panel["title"]


def test_every_query_references_a_metric_the_code_exports() -> None:
    exported = exported_series()
    for expr in queries():
        names = referenced(expr)
        assert names, f"no Oberon metric in {expr}"
        assert names <= exported, f"{expr} reads {names - exported}, which no code exports"


def test_every_query_is_valid_promql(promtool: str, tmp_path: Path) -> None:
    """promtool parses each query as a recording rule (Grafana's variables replaced by values)."""
    rules = [
        {"record": f"dashboard:query_{index}", "expr": _without_variables(expr)} for index, expr in enumerate(queries())
    ]
    (tmp_path / "queries.yml").write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    done = run(promtool, "check", "rules", "queries.yml", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr


def _without_variables(expr: str) -> str:
    return expr.replace("$__rate_interval", "1m").replace("$service", ".*")


def titled(word: str) -> list[dict[str, Any]]:
    return [panel for panel in panels() if word.lower() in panel["title"].lower()]


def _exprs(panel: dict[str, Any]) -> str:
    return " ".join(target["expr"] for target in panel["targets"])


def test_latency_panels_show_p50_p95_p99_server_and_client_side() -> None:
    for metric in ("oberon_http_request_duration_seconds_bucket", "oberon_client_request_duration_seconds_bucket"):
        (panel,) = [panel for panel in panels() if metric in _exprs(panel) and "0.99" in _exprs(panel)]
        quantiles = set(re.findall(r"histogram_quantile\((0\.\d+)", _exprs(panel)))
        assert quantiles == {"0.5", "0.95", "0.99"}, panel["title"]


def test_cache_hit_rate_is_compared_with_a_day_and_a_week_earlier() -> None:
    (panel,) = titled("cache hit rate")
    exprs = _exprs(panel)
    assert "oberon_cache_requests_total" in exprs and "offset 1d" in exprs and "offset 1w" in exprs


def test_error_rate_fallbacks_and_degradation_have_panels() -> None:
    assert any('status_class="5xx"' in _exprs(panel) for panel in titled("error rate"))
    assert any('outcome!="ok"' in _exprs(panel) for panel in titled("fallbacks per component"))
    assert any("oberon_degradation_mode" in _exprs(panel) for panel in titled("degradation mode"))
