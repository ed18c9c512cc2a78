"""The asset build: the client runtime and every component's JS and CSS, minified, content-hashed,
precompressed, and listed in a manifest that maps each logical name to its hashed file.

```
build/assets/
    manifest.json                           {"assets": {"ticket-selector@1.0.0/assets/ticket-selector.js": {...}}}
    ticket-selector.5f0c8e1a9b2d4c6e.js     minified; the name changes whenever the content does
    ticket-selector.5f0c8e1a9b2d4c6e.js.gz  what the asset server sends to `Accept-Encoding: gzip`
    ticket-selector.5f0c8e1a9b2d4c6e.js.br  ... and to `br`
```

The renderer reads only the manifest: a page references the hashed URLs of the components on
it, each file once, with its Subresource Integrity hash. A file that leaves the build stays for
`RETENTION_SECONDS` (7 days) after it left (`retired.json` records when): pages cached by a CDN or
open in a browser tab still name it, also after a rollback took its version out of every channel.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import logging
import os
import re
import tempfile
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Any

import brotli
import rcssmin  # type: ignore[import-untyped]
import rjsmin  # type: ignore[import-untyped]

from oberon.exceptions import AssetError
from oberon.pipeline.manifest import Manifest
from oberon.pipeline.registry import Component, Registry

logger = logging.getLogger("oberon.assets")  # the name operators' log filters know

MANIFEST_FILE = "manifest.json"
RETIRED_FILE = "retired.json"  # hashed file → when it left the build (seconds since the epoch)
RETENTION_SECONDS = 7 * 24 * 3600
MANIFEST_VERSION = 1
# The client runtime: every page with client code loads it before any component's script.
RUNTIME = "oberon/oberon.js"
ASSET_PATH = "/_oberon/assets/"
HASH_CHARS = 16
KINDS = ("css", "js")
# Precompressed variants, best first; the asset server picks one by Accept-Encoding.
ENCODINGS: Mapping[str, str] = {"br": ".br", "gzip": ".gz"}
HASHED_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*(?:\.[a-z0-9_-]+)*\.[0-9a-f]{16}\.(?:css|js)$")


@dataclass(frozen=True)
class BuiltAsset:
    """One hashed file of the build."""

    file: str
    sha256: str
    integrity: str
    size: int
    encodings: tuple[str, ...] = ()

    @property
    def kind(self) -> str:
        return self.file.rsplit(".", 1)[-1]


@dataclass(frozen=True)
class AssetRef:
    """An asset as a page references it; a component's script also names the component and version it belongs to,
    so its client code binds only to boundaries that version rendered (`oberon.js`)."""

    url: str
    integrity: str
    component: str = ""
    version: str = ""


@dataclass(frozen=True)
class PageAssets:
    """What one page loads: stylesheets in the head, scripts deferred at the end, each file once."""

    css: tuple[AssetRef, ...] = ()
    js: tuple[AssetRef, ...] = ()

    def preload_header(self) -> str:
        """A `Link` header that lets the browser fetch the stylesheets before it parses the HTML."""
        return ", ".join(f"<{ref.url}>; rel=preload; as=style; crossorigin" for ref in self.css)


@dataclass(frozen=True)
class AssetManifest:
    """The build's manifest: logical name (`component@version/path`) → hashed file."""

    folder: Path
    assets: Mapping[str, BuiltAsset] = field(default_factory=dict)

    @classmethod
    def load(cls, folder: Path) -> AssetManifest:
        """Read `folder/manifest.json`; AssetError says what is wrong and how to fix it."""
        file = folder / MANIFEST_FILE
        try:
            raw = json.loads(file.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise AssetError(f"{file}: no asset build here; run `oberon build`") from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise AssetError(f"{file}: unreadable asset manifest ({exc}); run `oberon build`") from None
        try:
            if raw["version"] != MANIFEST_VERSION:
                raise ValueError(f"version {raw['version']!r}, expected {MANIFEST_VERSION}")
            assets = {name: _built(entry) for name, entry in raw["assets"].items()}
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise AssetError(f"{file}: not an asset manifest ({exc}); run `oberon build`") from None
        return cls(folder=folder, assets=assets)

    def to_json(self) -> dict[str, Any]:
        return {
            "version": MANIFEST_VERSION,
            "assets": {
                name: {
                    "file": asset.file,
                    "sha256": asset.sha256,
                    "integrity": asset.integrity,
                    "size": asset.size,
                    "encodings": list(asset.encodings),
                }
                for name, asset in sorted(self.assets.items())
            },
        }

    def missing(self, registry: Registry) -> list[str]:
        """A message for every declared asset (and the runtime) that this build lacks."""
        problems = []
        if RUNTIME not in self.assets:
            problems.append(f"{RUNTIME}: the client runtime is not in {self.folder / MANIFEST_FILE}")
        for component in registry:
            for name in _declared(component.manifest):
                if logical_name(component.manifest, name) not in self.assets:
                    problems.append(
                        f"{component.manifest.ident}: {name} is not in {self.folder / MANIFEST_FILE}"
                        " (the build is older than the component)"
                    )
        return problems

    def require(self, registry: Registry) -> None:
        """Raise AssetError unless every component's assets are in this build."""
        problems = self.missing(registry)
        if problems:
            raise AssetError("the asset build is incomplete; run `oberon build`:\n  " + "\n  ".join(problems))


def logical_name(manifest: Manifest, name: str) -> str:
    """The manifest key of one of a component's files: `ticket-selector@1.0.0/assets/ticket-selector.js`."""
    return f"{manifest.name}@{manifest.version}/{name}"


class Assets:
    """One asset build and where it is served from; a renderer swaps in a new one with each new registry."""

    def __init__(self, manifest: AssetManifest, *, base_url: str = ASSET_PATH) -> None:
        if not base_url.endswith("/"):
            raise ValueError(f"the asset base URL must end with '/', got {base_url!r}")
        self.manifest = manifest
        self.base_url = base_url

    def ref(self, logical: str) -> AssetRef:
        try:
            asset = self.manifest.assets[logical]
        except KeyError:
            raise AssetError(f"{logical} is not in the asset build; run `oberon build`") from None
        return AssetRef(url=self.base_url + asset.file, integrity=asset.integrity)

    def url(self, component: Component, name: str) -> str:
        """The hashed URL of one of `component`'s files."""
        return self.ref(logical_name(component.manifest, name)).url

    def for_page(self, components: Iterable[Component]) -> PageAssets:
        """The stylesheets and scripts of exactly these components, each file once, the runtime first."""
        css: dict[str, AssetRef] = {}
        js: dict[str, AssetRef] = {}
        for component in components:
            for name in component.manifest.css:
                ref = self.ref(logical_name(component.manifest, name))
                css.setdefault(ref.url, ref)
            for name in component.manifest.js:
                ref = self.ref(logical_name(component.manifest, name))
                owned = replace(ref, component=component.name, version=component.manifest.version_text)
                js.setdefault(ref.url, owned)
        if js:
            runtime = self.ref(RUNTIME)
            js = {runtime.url: runtime, **js}
        return PageAssets(css=tuple(css.values()), js=tuple(js.values()))


def runtime_source() -> bytes:
    """The client runtime (`oberon.js`) as shipped in this package."""
    return resources.files("oberon").joinpath("static/oberon.js").read_bytes()


def build_assets(
    registry: Registry,
    out: Path,
    *,
    minify: bool = True,
    retention: float = RETENTION_SECONDS,
    now: float | None = None,
) -> AssetManifest:
    """Minify, hash and compress the runtime and every component's assets into `out`; write the manifest last.

    Files of earlier builds are deleted once they have been out of the build for `retention` seconds."""
    out.mkdir(parents=True, exist_ok=True)
    sources: dict[str, tuple[str, bytes]] = {RUNTIME: ("oberon.js", runtime_source())}
    for component in registry:
        for name in _declared(component.manifest):
            path = component.manifest.folder / name
            try:
                sources[logical_name(component.manifest, name)] = (path.name, path.read_bytes())
            except OSError as exc:
                raise AssetError(f"{component.manifest.ident}: cannot read {path}: {exc}") from None
    assets = {}
    for logical, (name, data) in sources.items():
        if minify:
            data = _minify(name, data, logical)
        assets[logical] = _write_hashed(out, name, data)
    manifest = AssetManifest(folder=out, assets=assets)
    _write_atomic(out / MANIFEST_FILE, json.dumps(manifest.to_json(), indent=2).encode("utf-8") + b"\n")
    current = {asset.file for asset in assets.values()}
    _prune(out, current=current, retention=retention, now=time.time() if now is None else now)
    return manifest


def _declared(manifest: Manifest) -> tuple[str, ...]:
    return (*manifest.css, *manifest.js)


def _built(entry: Mapping[str, Any]) -> BuiltAsset:
    file = str(entry["file"])
    if not HASHED_NAME.match(file):
        raise ValueError(f"{file!r} is not a hashed file name")
    return BuiltAsset(
        file=file,
        sha256=str(entry["sha256"]),
        integrity=str(entry["integrity"]),
        size=int(entry["size"]),
        encodings=tuple(str(name) for name in entry.get("encodings", ()) if name in ENCODINGS),
    )


def _minify(name: str, data: bytes, logical: str) -> bytes:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise AssetError(f"{logical}: not UTF-8 text: {exc}") from None
    minified: str = rjsmin.jsmin(text) if name.endswith(".js") else rcssmin.cssmin(text)
    return minified.encode("utf-8")


def hashed_name(name: str, sha256: str) -> str:
    """`ticket-selector.js` with content hash `5f0c…` is `ticket-selector.5f0c8e1a9b2d4c6e.js`."""
    stem, dot, suffix = name.lower().rpartition(".")
    stem = re.sub(r"[^a-z0-9_.-]+", "-", stem).strip("-._") or "asset"
    return f"{stem}.{sha256[:HASH_CHARS]}{dot}{suffix}"


def _write_hashed(out: Path, name: str, data: bytes) -> BuiltAsset:
    sha256 = hashlib.sha256(data).hexdigest()
    integrity = "sha384-" + base64.b64encode(hashlib.sha384(data).digest()).decode("ascii")
    file = hashed_name(name, sha256)
    target = out / file
    if not target.is_file() or target.read_bytes() != data:
        _write_atomic(target, data)
    compressed = {
        "br": brotli.compress(data, quality=11),
        "gzip": gzip.compress(data, compresslevel=9, mtime=0),
    }
    encodings = []
    for encoding, suffix in ENCODINGS.items():
        body = compressed[encoding]
        variant = out / (file + suffix)
        if len(body) < len(data):  # a tiny file can grow when compressed: then it is only sent as is
            if not variant.is_file() or variant.read_bytes() != body:
                _write_atomic(variant, body)
            encodings.append(encoding)
        else:
            variant.unlink(missing_ok=True)
    return BuiltAsset(file=file, sha256=sha256, integrity=integrity, size=len(data), encodings=tuple(encodings))


def _write_atomic(target: Path, data: bytes) -> None:
    """Readers (the asset server, a browser mid-page) see the old file or the new one, never half of one."""
    handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=".tmp-", suffix=target.suffix)
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
        os.chmod(temporary, 0o644)
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _prune(out: Path, *, current: set[str], retention: float, now: float) -> None:
    """Delete the hashed files (and their compressed variants) that left the build more than `retention` ago."""
    retired = _read_retired(out)
    on_disk = {path.name for path in out.iterdir() if path.is_file()}
    still: dict[str, float] = {}
    for name in on_disk:
        base = name
        for suffix in ENCODINGS.values():
            base = base.removesuffix(suffix)
        if not HASHED_NAME.match(base) or base in current:
            continue
        left = still[base] = retired.get(base, now)  # first seen out of the build: it leaves now
        if now - left >= retention:
            (out / name).unlink(missing_ok=True)
    kept = {base: left for base, left in still.items() if now - left < retention}
    _write_atomic(out / RETIRED_FILE, json.dumps({"retired": kept}, indent=2, sort_keys=True).encode("utf-8"))


def _read_retired(out: Path) -> dict[str, float]:
    """When each file left the build; an unreadable record counts every file as leaving now (kept longer)."""
    try:
        raw = json.loads((out / RETIRED_FILE).read_text(encoding="utf-8"))
        return {str(name): float(left) for name, left in raw["retired"].items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return {}
