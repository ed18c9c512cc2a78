"""The shipped Prometheus config scrapes the services' admin listeners, never their public ports."""

from __future__ import annotations

import yaml

from tests.monitoring.conftest import MONITORING


def test_the_local_config_reads_the_admin_listeners_oberon_up_writes() -> None:
    text = (MONITORING / "prometheus.yml").read_text()
    (job,) = yaml.safe_load(text)["scrape_configs"]
    assert job["metrics_path"] == "/metrics"
    assert job["file_sd_configs"][0]["files"] == ["../../build/prometheus/targets.json"]
    assert "--admin-port" in text and "never the public entrance" in text
