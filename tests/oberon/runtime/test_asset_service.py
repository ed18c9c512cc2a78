"""`oberon serve assets`: the asset server on its own, as production's asset origin runs it."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import httpx
import jinja2
import pytest

from oberon.pipeline.assets import ASSET_PATH, build_assets
from oberon.pipeline.registry import Registry
from oberon.runtime.settings import Settings
from oberon.runtime.topology import Services
from oberon.site import Site

pytestmark = pytest.mark.anyio


async def test_asset_service_answers_its_health_and_the_hashed_files(
    site: Path, registry: Registry, environment: jinja2.Environment, tmp_path: Path
) -> None:
    out = tmp_path / "assets"
    built = build_assets(registry, out)
    settings = replace(Settings(site_file=site / "oberon.toml"), build_dir=out)
    services = Services(Site.load(site / "oberon.toml"), settings, registry=registry, environment=environment)
    listeners = services.serve("assets")
    some = next(iter(built.assets.values()))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=listeners.public), base_url="http://a") as client:
        health = await client.get("/_oberon/health")
        found = await client.get(ASSET_PATH + some.file)
        missing = await client.get(ASSET_PATH + "nothing.0123456789abcdef.js")
        public_metrics = await client.get("/metrics")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=listeners.admin), base_url="http://a") as admin:
        admin_health = await admin.get("/_oberon/health")
        metrics = await admin.get("/metrics")
    assert health.status_code == 200 and health.json() == {"status": "ok"}
    assert found.status_code == 200
    assert found.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert missing.status_code == 404
    assert public_metrics.status_code == 404
    assert admin_health.json() == {"status": "ok", "service": "assets"}
    assert metrics.status_code == 200 and "oberon_http_request_duration_seconds" in metrics.text
