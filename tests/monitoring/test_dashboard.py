"""The Grafana dashboard: parses, has the panels the seed describes, and queries only metrics the code exports;
the canary panels' queries are evaluated by promtool on sample series."""

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
    return expr.replace("$__rate_interval", "1m").replace("$service", ".*").replace("$component", ".*")


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


def variable(name: str) -> dict[str, Any]:
    (found,) = [item for item in json.loads(DASHBOARD.read_text())["templating"]["list"] if item["name"] == name]
    return dict(found)


CANARY = "canary against stable"


def _canary_panel(word: str) -> dict[str, Any]:
    (panel,) = [panel for panel in titled(CANARY) if word in panel["title"].lower()]
    return panel


def test_canary_against_stable_shows_each_versions_fallback_rate_and_p95_side_by_side() -> None:
    rate, p95 = _canary_panel("fallback"), _canary_panel("p95")
    assert rate["gridPos"]["y"] == p95["gridPos"]["y"] and rate["gridPos"]["x"] != p95["gridPos"]["x"]
    assert 'outcome!="ok"' in _exprs(rate) and "by (component, version)" in _exprs(rate)
    assert "histogram_quantile(0.95, sum by (component, version, le)" in _exprs(p95)
    component = variable("component")
    assert "oberon_component_render_duration_seconds_count" in component["definition"]
    for panel in titled(CANARY):
        assert 'component=~"$component"' in _exprs(panel), panel["title"]
        assert "{{version}}" in panel["targets"][0]["legendFormat"], panel["title"]


def test_component_panels_tell_versions_apart() -> None:
    for panel in panels():
        if "oberon_component_render_duration_seconds" in _exprs(panel):
            assert "version" in _exprs(panel), panel["title"]


def _series(labels: str, values: str) -> dict[str, str]:
    return {"series": f"oberon_component_render_duration_seconds_{labels}", "values": values}


def test_the_canary_panels_compute_each_versions_rate_p95_and_share(promtool: str, tmp_path: Path) -> None:
    """Stable 1.0.0: 8 renders per step, all ok, under 1 ms. Canary 1.1.0: 2 per step, one falling back, 1-5 ms."""
    stable = 'service="renderer",component="ticket-selector",version="1.0.0"'
    canary = 'service="renderer",component="ticket-selector",version="1.1.0"'
    series = [_series(f'count{{{stable},outcome="ok"}}', "0+8x40")]
    series += [_series(f'bucket{{{stable},outcome="ok",le="{le}"}}', "0+8x40") for le in ("0.001", "0.005", "+Inf")]
    for outcome in ("ok", "fallback"):
        series.append(_series(f'count{{{canary},outcome="{outcome}"}}', "0+1x40"))
        series.append(_series(f'bucket{{{canary},outcome="{outcome}",le="0.001"}}', "0+0x40"))
        series += [_series(f'bucket{{{canary},outcome="{outcome}",le="{le}"}}', "0+1x40") for le in ("0.005", "+Inf")]

    def expect(panel: dict[str, Any], stable_value: float, canary_value: float) -> dict[str, Any]:
        return {
            # Rounded to a microsecond: promtool compares floats exactly.
            "expr": f'round({_without_variables(panel["targets"][0]["expr"])}, 0.000001)',
            "eval_time": "8m",
            "exp_samples": [
                {"labels": '{component="ticket-selector",version="1.0.0"}', "value": stable_value},
                {"labels": '{component="ticket-selector",version="1.1.0"}', "value": canary_value},
            ],
        }

    checks = [
        expect(_canary_panel("fallback"), 0, 0.5),
        expect(_canary_panel("p95"), 0.00095, 0.0048),  # interpolated in the bucket, as Prometheus does
        expect(_canary_panel("share"), 0.8, 0.2),
    ]
    case = {"interval": "15s", "input_series": series, "promql_expr_test": checks}
    suite = {"evaluation_interval": "15s", "tests": [case]}
    (tmp_path / "canary.yml").write_text(yaml.safe_dump(suite))
    done = run(promtool, "test", "rules", "canary.yml", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
