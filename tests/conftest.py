from __future__ import annotations

import logging
import os
import shutil
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import jinja2
import pytest

from oberon.client.upstream import Upstreams
from oberon.exceptions import ManifestError
from oberon.pipeline.assets import AssetManifest, Assets, build_assets
from oberon.pipeline.cache_policy import CachePolicy
from oberon.pipeline.cohorts import Canary, Cohorts
from oberon.pipeline.page import PageRenderer
from oberon.pipeline.registry import Registry, check_folders, check_registry, load_registry
from oberon.pipeline.rendering import create_environment
from tests.postgres_server import PostgresServer, run_postgres
from tests.redis_server import RedisServer, run_redis


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(autouse=True)
def clean_environ() -> Iterator[None]:
    """Keep OBERON_* variables of the developer's shell out of the tests."""
    saved = {key: value for key, value in os.environ.items() if key.startswith("OBERON_")}
    for key in saved:
        del os.environ[key]
    yield
    for key in [key for key in os.environ if key.startswith("OBERON_")]:
        del os.environ[key]
    os.environ.update(saved)


RES = Path(__file__).parent / "res"
TEST_BFF = "http://shop.test"  # the test site's BFF (tests/res/site/oberon.toml)


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    """A `redis-server` of this test's own (free loopback port, no persistence), stopped by PID at the end."""
    with run_redis() as server:
        yield server


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A PostgreSQL of the test session's own (temporary data directory, free loopback port), stopped at the end."""
    with run_postgres() as server:
        yield server


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database for one test: an SQLite file, then a fresh database on the session's PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'registry.sqlite3'}"
    server: PostgresServer = request.getfixturevalue("postgres_server")
    return server.database()


@pytest.fixture
def environment() -> jinja2.Environment:
    return create_environment()


@pytest.fixture
def site(tmp_path: Path) -> Path:
    """A writable copy of the test site; its components live in `site / "components"`."""
    target = tmp_path / "site"
    shutil.copytree(RES / "site", target)
    return target


ComponentWriter = Callable[..., Path]


@pytest.fixture
def write_component(site: Path) -> ComponentWriter:
    """Write (or overwrite) a component folder in the test site."""

    def write(folder: str, manifest: str, template: str | None = "<p>ok</p>", **files: str) -> Path:
        path = site / "components" / folder
        path.mkdir(parents=True, exist_ok=True)
        (path / "component.toml").write_text(manifest)
        if template is not None:
            (path / "template.html").write_text(template)
        for name, text in files.items():
            (path / name.replace("__", "/")).parent.mkdir(parents=True, exist_ok=True)
            (path / name.replace("__", "/")).write_text(text)
        return path

    return write


@pytest.fixture
def registry_errors(site: Path, environment: jinja2.Environment) -> Callable[[], list[ManifestError]]:
    def errors() -> list[ManifestError]:
        return check_registry([site / "components"], environment=environment)[1]

    return errors


@pytest.fixture
def registry(site: Path, environment: jinja2.Environment) -> Registry:
    return load_registry([site / "components"], environment=environment)


@pytest.fixture
def assets(registry: Registry, tmp_path: Path) -> Assets:
    """The test site's assets, built into a temporary folder and referenced from the page's own origin."""
    return Assets(build_assets(registry, tmp_path / "build" / "assets"))


class FakeClock:
    """A clock that moves only when a test says so: `clock.now += 5`."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def upstreams() -> AsyncIterator[Upstreams]:
    """Clients of the test site's BFF (`shop`), which the tests answer with respx."""
    upstreams = Upstreams.create({"shop": httpx.AsyncClient(base_url=TEST_BFF)})
    yield upstreams
    await upstreams.aclose()


@pytest.fixture
def demo_renderer(environment: jinja2.Environment, tmp_path: Path) -> PageRenderer:
    """A renderer of the demo site's components (`components/`), no upstreams: pages from fixtures or fallbacks."""
    demo = load_registry([Path(__file__).resolve().parents[1] / "components"], environment=environment)
    return PageRenderer(
        registry=demo,
        upstreams=Upstreams({}),
        environment=environment,
        policy=CachePolicy(),
        assets=Assets(build_assets(demo, tmp_path / "assets")),
    )


@pytest.fixture
def renderer(registry: Registry, upstreams: Upstreams, environment: jinja2.Environment, assets: Assets) -> PageRenderer:
    """The test site's renderer over those clients."""
    return PageRenderer(
        registry=registry, upstreams=upstreams, environment=environment, policy=CachePolicy(), assets=assets
    )


@dataclass(frozen=True)
class CanarySite:
    """The test site as a renderer following the registry serves it with item-card 1.3.0 as a canary at `percent`:
    a registry per cohort, the pinned versions and one asset build of them all; `follow` swaps it into a renderer."""

    cohorts: Cohorts
    registries: dict[str, Registry]
    pinned: Registry
    assets: AssetManifest

    def follow(self, renderer: PageRenderer) -> None:
        renderer.follow(self.registries, self.assets, cohorts=self.cohorts, pinned=self.pinned)


CANARY_COHORT = "item-card@1.3.0"


def item_card_v2(site: Path, target: Path) -> Path:
    """item-card 1.3.0: another template (`class="item v2"`) and script, in a folder of its own under `target`."""
    folder = shutil.copytree(site / "components" / "item-card", target / "item-card")
    manifest = folder / "component.toml"
    manifest.write_text(manifest.read_text().replace('version = "1.2.0"', 'version = "1.3.0"'))
    (folder / "template.html").write_text('<h1 class="item v2">{{ state.item.name }}</h1>')
    (folder / "assets" / "item.js").write_text('console.log("item v2")')
    return folder


@pytest.fixture
def canary_site(site: Path, tmp_path: Path, environment: jinja2.Environment, assets: Assets) -> CanarySite:
    """item-card 1.3.0 a canary at 30 % over the test site (buckets 00–29 see it)."""
    stable = load_registry([site / "components"], environment=environment)
    others = [folder for folder in sorted((site / "components").iterdir()) if folder.name != "item-card"]
    canary, errors = check_folders([*others, item_card_v2(site, tmp_path / "canary")], environment=environment)
    assert canary is not None and not errors, errors
    pinned = Registry(list({c.manifest.ident: c for c in [*stable, *canary]}.values()))
    manifest = build_assets(pinned, assets.manifest.folder)
    return CanarySite(
        cohorts=Cohorts([Canary("item-card", "1.3.0", 30)]),
        registries={"stable": stable, CANARY_COHORT: canary},
        pinned=pinned,
        assets=manifest,
    )


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """The root logger's handlers and level as they were before the test (for tests that call `configure`)."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)
