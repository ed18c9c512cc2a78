from __future__ import annotations

import base64
import gzip
import hashlib
import json
from pathlib import Path

import brotli
import jinja2
import pytest

from oberon.exceptions import AssetError
from oberon.pipeline.assets import (
    MANIFEST_FILE,
    RETIRED_FILE,
    RUNTIME,
    AssetManifest,
    Assets,
    build_assets,
    hashed_name,
    logical_name,
)
from oberon.pipeline.registry import Registry, load_registry
from tests.conftest import ComponentWriter

CARD = "item-card@1.2.0/assets/item.js"


def manifest_text(name: str, *, css: str = "[]", js: str = "[]") -> str:
    return f'name = "{name}"\nversion = "1.0.0"\nowner = "web"\nkind = "component"\n[assets]\ncss = {css}\njs = {js}\n'


def test_build_assets_hashes_minifies_and_compresses_every_declared_file(registry: Registry, tmp_path: Path) -> None:
    out = tmp_path / "build"
    manifest = build_assets(registry, out)

    card = manifest.assets[CARD]
    data = (out / card.file).read_bytes()
    assert data == b'console.log("item")'
    assert card.file == f"item.{hashlib.sha256(data).hexdigest()[:16]}.js"
    assert card.sha256 == hashlib.sha256(data).hexdigest()
    assert card.integrity == "sha384-" + base64.b64encode(hashlib.sha384(data).digest()).decode()
    assert {RUNTIME, CARD, "item-card@1.2.0/assets/item.css", "greeting@1.0.0/assets/shared.css"} <= set(
        manifest.assets
    )
    runtime = manifest.assets[RUNTIME]
    assert runtime.encodings == ("br", "gzip")
    body = (out / runtime.file).read_bytes()
    assert brotli.decompress((out / f"{runtime.file}.br").read_bytes()) == body
    assert gzip.decompress((out / f"{runtime.file}.gz").read_bytes()) == body
    assert b"/*" not in body and len(body) < len((Path("oberon/static/oberon.js")).read_bytes())


def test_build_assets_skips_compressed_variants_that_do_not_shrink(registry: Registry, tmp_path: Path) -> None:
    manifest = build_assets(registry, tmp_path)
    tiny = manifest.assets["item-price@1.0.0/assets/price.css"]
    assert tiny.encodings == ()
    assert not (tmp_path / f"{tiny.file}.gz").exists()


def test_build_assets_writes_a_manifest_that_loads_back(registry: Registry, tmp_path: Path) -> None:
    built = build_assets(registry, tmp_path)
    loaded = AssetManifest.load(tmp_path)
    assert loaded == built
    raw = json.loads((tmp_path / MANIFEST_FILE).read_text())
    assert raw["version"] == 1
    assert raw["assets"][CARD]["file"] == built.assets[CARD].file


def test_build_assets_renames_a_file_when_its_content_changes(
    site: Path, write_component: ComponentWriter, environment: jinja2.Environment, tmp_path: Path
) -> None:
    registry = load_registry([site / "components"], environment=environment)
    day = 24 * 3600.0
    before = build_assets(registry, tmp_path, now=0).assets[CARD].file
    (site / "components/item-card/assets/item.js").write_text('console.log("changed")')
    after = build_assets(registry, tmp_path, now=1 * day).assets[CARD].file
    assert before != after
    (site / "components/item-card/assets/item.js").write_text('console.log("third")')
    third = build_assets(registry, tmp_path, now=7.5 * day).assets[CARD].file
    assert (tmp_path / before).exists(), "a page cached on day 1 (or a tab left open) may still name the old file"
    build_assets(registry, tmp_path, now=8 * day)
    assert not (tmp_path / before).exists(), "7 days after it left the build, a file is deleted"
    assert (tmp_path / after).exists() and (tmp_path / third).exists(), "after left on day 7.5: kept until 14.5"
    build_assets(registry, tmp_path, now=14.6 * day)
    assert not (tmp_path / after).exists() and (tmp_path / third).exists()


def test_a_lost_record_of_retired_files_keeps_them_rather_than_deleting_them(
    site: Path, environment: jinja2.Environment, tmp_path: Path
) -> None:
    registry = load_registry([site / "components"], environment=environment)
    before = build_assets(registry, tmp_path, now=0).assets[CARD].file
    (site / "components/item-card/assets/item.js").write_text('console.log("changed")')
    build_assets(registry, tmp_path, now=1.0)
    (tmp_path / RETIRED_FILE).write_text("not json")
    build_assets(registry, tmp_path, now=30 * 24 * 3600.0)
    assert (tmp_path / before).exists(), "it is counted as leaving now: kept 7 more days"


def test_assets_for_page_deduplicates_and_puts_the_runtime_first(registry: Registry, tmp_path: Path) -> None:
    assets = Assets(build_assets(registry, tmp_path), base_url="http://localhost:8000/_oberon/assets/")
    card = registry.get("item-card")
    page = assets.for_page([card, registry.get("item-price"), card])
    assert [ref.url.rsplit("/", 1)[-1].split(".")[0] for ref in page.css] == ["item", "price"]
    assert [ref.url.rsplit("/", 1)[-1].split(".")[0] for ref in page.js] == ["oberon", "item"]
    assert all(ref.url.startswith("http://localhost:8000/_oberon/assets/") for ref in (*page.css, *page.js))
    assert page.js[1].integrity == assets.manifest.assets[CARD].integrity
    assert page.preload_header().count("rel=preload; as=style") == 2


def test_assets_for_page_without_scripts_loads_no_runtime(registry: Registry, tmp_path: Path) -> None:
    assets = Assets(build_assets(registry, tmp_path))
    page = assets.for_page([registry.get("item-price")])
    assert page.js == ()
    assert page.css[0].url.startswith("/_oberon/assets/price.")


def test_assets_shared_by_content_are_loaded_once(
    site: Path, write_component: ComponentWriter, environment: jinja2.Environment, tmp_path: Path
) -> None:
    shared = (site / "components/greeting/assets/shared.css").read_text()
    write_component("twin", manifest_text("twin", css='["assets/shared.css"]'), **{"assets__shared.css": shared})
    registry = load_registry([site / "components"], environment=environment)
    assets = Assets(build_assets(registry, tmp_path))
    page = assets.for_page([registry.get("greeting"), registry.get("twin")])
    assert len(page.css) == 1


def test_asset_manifest_require_names_each_component_file_missing_from_the_build(
    site: Path, write_component: ComponentWriter, environment: jinja2.Environment, tmp_path: Path
) -> None:
    registry = load_registry([site / "components"], environment=environment)
    build_assets(registry, tmp_path)
    write_component("late", manifest_text("late", js='["assets/late.js"]'), **{"assets__late.js": "1"})
    newer = load_registry([site / "components"], environment=environment)
    with pytest.raises(AssetError) as caught:
        AssetManifest.load(tmp_path).require(newer)
    assert f"late@1.0.0: assets/late.js is not in {tmp_path / MANIFEST_FILE}" in str(caught.value)
    assert "run `oberon build`" in str(caught.value)
    AssetManifest.load(tmp_path).require(registry)


def test_asset_manifest_load_explains_a_missing_or_broken_build(tmp_path: Path) -> None:
    with pytest.raises(AssetError, match="no asset build here; run `oberon build`"):
        AssetManifest.load(tmp_path)
    (tmp_path / MANIFEST_FILE).write_text("{not json")
    with pytest.raises(AssetError, match="unreadable asset manifest"):
        AssetManifest.load(tmp_path)
    (tmp_path / MANIFEST_FILE).write_text(json.dumps({"version": 1, "assets": {"x": {"file": "../etc/passwd"}}}))
    with pytest.raises(AssetError, match="not an asset manifest"):
        AssetManifest.load(tmp_path)


def test_assets_url_of_an_unbuilt_file_is_an_asset_error(registry: Registry, tmp_path: Path) -> None:
    assets = Assets(AssetManifest(folder=tmp_path))
    with pytest.raises(AssetError, match="item-card@1.2.0/assets/item.js is not in the asset build"):
        assets.url(registry.get("item-card"), "assets/item.js")


def test_hashed_name_keeps_a_readable_stem() -> None:
    digest = "0123456789abcdef" * 4
    assert hashed_name("Site Header.CSS", digest) == "site-header.0123456789abcdef.css"
    assert hashed_name("vendor.min.js", digest) == "vendor.min.0123456789abcdef.js"


def test_logical_name_names_component_version_and_path(registry: Registry) -> None:
    assert logical_name(registry.get("item-card").manifest, "assets/item.js") == CARD
