"""Registry test helpers: bundles made from the test site's components, a store on each database."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest

from oberon.exceptions import ManifestError
from oberon.registry.bundle import Bundle, pack
from oberon.registry.snapshot import Pin
from oberon.registry.store import Load, Store

COMPONENTS = Path(__file__).resolve().parents[2] / "res" / "site" / "components"
SITE = ("greeting", "hero-banner", "item-card", "item-price", "shop-page")  # owners: shop, except item-price (pricing)

Make = Callable[..., Bundle]


@pytest.fixture
def make(tmp_path: Path) -> Make:
    """`make("greeting", "1.1.0", **{"template.html": "<p>new</p>"}, owner="x")`: a bundle of a test-site component,
    with another version, files replaced, or another owner."""
    count = 0

    def build(name: str, version: str | None = None, *, owner: str | None = None, **files: str) -> Bundle:
        nonlocal count
        count += 1
        folder = shutil.copytree(COMPONENTS / name, tmp_path / "made" / str(count) / name)
        manifest = (folder / "component.toml").read_text()
        if version is not None:
            manifest = manifest.replace('version = "', f'version = "{version}"\n#', 1)
        if owner is not None:
            manifest = manifest.replace('owner = "', f'owner = "{owner}"\n#', 1)
        (folder / "component.toml").write_text(manifest)
        for file, text in files.items():
            (folder / file).write_text(text)
        return pack(folder)

    return build


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    """A store with its tables, on an empty SQLite file, then on an empty PostgreSQL database."""
    store = Store.connect(database_url)
    store.create_tables()
    yield store
    store.close()


class Checks:
    """A stand-in for the publish checks: records what it was asked, answers the errors it is given."""

    def __init__(self) -> None:
        self.calls: list[tuple[list[str], list[str]]] = []
        self.errors: list[ManifestError] = []

    def __call__(self, pins: Sequence[Pin], candidates: Sequence[Bundle], load: Load) -> list[ManifestError]:
        self.calls.append((sorted(pin.ident for pin in pins), [bundle.ident for bundle in candidates]))
        assert all(load(pin.digest) for pin in pins)  # each pinned version's bundle is there to check
        return list(self.errors)


@pytest.fixture
def checks() -> Checks:
    return Checks()
