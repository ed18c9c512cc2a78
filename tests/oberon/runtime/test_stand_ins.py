"""The stand-in backends' admin routes (`/_backends/<name>`) exist only where the site runs its stand-ins itself."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import httpx
import pytest

from oberon.pipeline.assets import build_assets
from oberon.pipeline.registry import load_registry
from oberon.pipeline.rendering import create_environment
from oberon.runtime.cli import parser
from oberon.runtime.k8s import command
from oberon.runtime.settings import Settings
from oberon.runtime.supervisor import serve_command
from oberon.runtime.topology import Services, build_embedded
from oberon.site import GATEWAY, Site, service_names

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).resolve().parents[3]
TOKEN = "a-stand-in-admin-token-of-32-characters"
DEMO = Site.load(ROOT / "oberon.toml")
STAND_INS = [
    "/_backends/events",
    "/_backends/recommendations",
    "/_backends/ticketing",
    "/_backends/users",
    "/_backends/venues",
]


def services(site: Site, *, stand_ins: bool) -> Services:
    environment = create_environment()
    registry = load_registry(site.components, environment=environment)
    return Services(
        site, Settings(site_file=site.file), registry=registry, environment=environment, stand_ins=stand_ins
    )


def backend_prefixes(service: Services) -> list[str]:
    upstreams = [name for name in service_names(service.site) if name != GATEWAY]
    table = service.table(upstreams, stand_ins=service.stand_in_backends())
    return sorted(route.prefix for route in table.routes if route.prefix.startswith("/_backends"))


async def test_embedded_site_routes_to_its_stand_ins_behind_the_admin_token(tmp_path: Path) -> None:
    environment = create_environment()
    registry = load_registry(DEMO.components, environment=environment)
    build_assets(registry, tmp_path / "assets")
    settings = replace(Settings(site_file=DEMO.file, admin_token=TOKEN), build_dir=tmp_path / "assets")
    embedded = build_embedded(DEMO, settings, registry=registry, environment=environment)
    transport = httpx.ASGITransport(app=embedded.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8000") as client:
        assert (await client.get("/_backends/users/_faults")).status_code == 401
        admin = {"Authorization": f"Bearer {TOKEN}"}
        assert (await client.get("/_backends/users/_faults", headers=admin)).json()["down"] is False


def test_split_gateway_routes_to_the_stand_ins_only_when_its_supervisor_runs_them() -> None:
    assert backend_prefixes(services(DEMO, stand_ins=True)) == STAND_INS
    assert backend_prefixes(services(DEMO, stand_ins=False)) == []


def test_backends_given_by_url_get_no_stand_in_route() -> None:
    site = replace(DEMO, backends={name: f"http://{name}.backends.example" for name in DEMO.backends})
    assert backend_prefixes(services(site, stand_ins=True)) == []


def test_production_gateway_has_no_stand_in_route() -> None:
    # The gateway's container command in infra/k8s, as `oberon` parses it.
    args = parser().parse_args(command(GATEWAY, DEMO)[3:])
    assert (args.command, args.service, args.stand_ins) == ("serve", GATEWAY, False)
    assert backend_prefixes(services(DEMO, stand_ins=args.stand_ins)) == []


def test_oberon_up_split_runs_its_gateway_with_the_stand_ins() -> None:
    argv = serve_command(
        GATEWAY,
        port=1,
        host="127.0.0.1",
        admin_port=2,
        admin_host="127.0.0.1",
        site=DEMO.file,
        upstreams={},
        parent_pid=1,
        stand_ins=True,
    )
    assert parser().parse_args(list(argv[3:])).stand_ins is True
