"""Alert rules: valid, unit-tested by promtool, each documented, each on a metric the code exports."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.monitoring.conftest import MONITORING, exported_series, referenced, run

RULES = MONITORING / "alerts.yml"
TESTS = MONITORING / "alerts_test.yml"


def alerts() -> list[dict[str, Any]]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


def cases() -> list[dict[str, Any]]:
    return list(yaml.safe_load(TESTS.read_text())["tests"])


def test_promtool_checks_the_rules(promtool: str) -> None:
    done = run(promtool, "check", "rules", RULES.name)
    assert done.returncode == 0, done.stdout + done.stderr


def test_promtool_unit_tests_pass(promtool: str) -> None:
    done = run(promtool, "test", "rules", TESTS.name)
    assert done.returncode == 0, done.stdout + done.stderr


def test_promtool_checks_the_scrape_config(promtool: str) -> None:
    done = run(promtool, "check", "config", "prometheus.yml")
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_seed_alerts_exist() -> None:
    assert {rule["alert"] for rule in alerts()} >= {
        "OberonPageLatencyHigh",
        "OberonErrorRatioHigh",
        "OberonComponentFallingBack",
        "OberonDegradedMode",
        "OberonCircuitBreakerOpen",
    }


@pytest.mark.parametrize("rule", alerts(), ids=lambda rule: rule["alert"])
def test_each_alert_is_sustained_documented_and_on_exported_metrics(rule: dict[str, Any]) -> None:
    assert rule.get("for"), "an alert without `for` pages on a blip"
    assert rule["labels"]["severity"] in {"critical", "warning"}
    assert rule["annotations"]["summary"] and rule["annotations"]["runbook"]
    names = referenced(rule["expr"])
    assert names and names <= exported_series(), names - exported_series()


@pytest.mark.parametrize("rule", alerts(), ids=lambda rule: rule["alert"])
def test_each_alert_has_a_firing_case_and_a_silent_spike_case(rule: dict[str, Any]) -> None:
    name = rule["alert"]
    checks = [check for case in cases() for check in case["alert_rule_test"] if check["alertname"] == name]
    assert any(check["exp_alerts"] for check in checks), f"no test shows {name} firing"
    assert any(_silent_spike(case, name) for case in cases()), f"no test shows {name} silent on a short spike"


def _silent_spike(case: dict[str, Any], name: str) -> bool:
    checks = [check for check in case["alert_rule_test"] if check["alertname"] == name]
    return bool(checks) and all(not check["exp_alerts"] for check in checks)


def test_silent_cases_are_not_vacuous(promtool: str, tmp_path: Path) -> None:
    """With every `for` cut to one evaluation, each short spike does fire: the silence is the `for`'s doing."""
    groups = yaml.safe_load(RULES.read_text())
    for group in groups["groups"]:
        for rule in group["rules"]:
            rule["for"] = "15s"
    (tmp_path / RULES.name).write_text(yaml.safe_dump(groups))
    silent = [case for case in cases() if all(not check["exp_alerts"] for check in case["alert_rule_test"])]
    assert len(silent) >= len(alerts())
    suite = yaml.safe_load(TESTS.read_text())
    for index, case in enumerate(silent):
        test_file = tmp_path / f"case_{index}.yml"
        test_file.write_text(yaml.safe_dump({**suite, "tests": [case]}))
        done = run(promtool, "test", "rules", test_file.name, cwd=tmp_path)
        alertname = case["alert_rule_test"][0]["alertname"]
        assert done.returncode != 0, f"{alertname}'s spike case never makes its condition true"
