"""A component's published form: its folder packed into one content-addressed bundle.

A bundle is a gzip-compressed tar of every file of a component folder (manifest, templates,
fallback, assets, fixtures), hidden files and caches left out. The tar itself is deterministic
(entries sorted by path, no timestamps, owners or modes), so one folder always makes the same
tar, and its SHA-256 — the *digest*, `sha256:<hex>` — names the bundle: the same component
version packed on two machines has one digest even where their gzip bytes differ.

Reading a bundle never trusts it: it must be a gzip tar of regular files at relative paths
(no `..`, no links, no devices), within `Limits`, with a manifest at its top whose `name` and
`version` are strings. Anything else is a `BundleError` that says what is wrong.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import tarfile
import tempfile
import tomllib
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from oberon.exceptions import OberonError
from oberon.pipeline.manifest import MANIFEST_FILE

MEDIA_TYPE = "application/vnd.oberon.bundle+tar+gzip"
SKIPPED = frozenset({"__pycache__", "node_modules", "build"})  # made from the folder, not part of it


class BundleError(OberonError):
    """A folder that cannot be packed, or bytes that are not a valid bundle."""


@dataclass(frozen=True)
class Limits:
    """Bounds on what a bundle may hold: a component is templates and a few assets, not a site."""

    max_compressed_bytes: int = 5 * 1024 * 1024
    max_bytes: int = 20 * 1024 * 1024
    max_files: int = 500


DEFAULT_LIMITS = Limits()


@dataclass(frozen=True)
class Bundle:
    """One component version, packed: `data` is the gzip bytes, `digest` the SHA-256 of the tar inside."""

    name: str
    version: str
    digest: str
    data: bytes
    files: tuple[str, ...]  # relative POSIX paths, sorted

    @property
    def ident(self) -> str:
        return f"{self.name}@{self.version}"


def pack(folder: Path, *, limits: Limits = DEFAULT_LIMITS) -> Bundle:
    """Pack a component folder; BundleError names what keeps it from being one."""
    if not (folder / MANIFEST_FILE).is_file():
        raise BundleError(f"{folder}: not a component folder (no {MANIFEST_FILE})")
    files: dict[str, bytes] = {}
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder)
        if any(part.startswith(".") or part in SKIPPED for part in relative.parts):
            continue
        if path.is_symlink():
            raise BundleError(f"{path}: a link; a bundle holds only regular files")
        if path.is_file():
            files[relative.as_posix()] = path.read_bytes()
    tar = _tar(files)
    return read(gzip.compress(tar, mtime=0), limits=limits)


def read(data: bytes, *, limits: Limits = DEFAULT_LIMITS) -> Bundle:
    """Check bytes that claim to be a bundle and describe them; BundleError says what is wrong."""
    if len(data) > limits.max_compressed_bytes:
        raise BundleError(f"the bundle is larger than {limits.max_compressed_bytes} bytes")
    tar = _gunzip(data, limit=limits.max_bytes)
    files = _members(tar, limits=limits)
    manifest = files.get(MANIFEST_FILE)
    if manifest is None:
        raise BundleError(f"the bundle has no {MANIFEST_FILE} at its top")
    try:
        raw = tomllib.loads(manifest.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise BundleError(f"{MANIFEST_FILE}: not valid TOML: {exc}") from None
    name, version = raw.get("name"), raw.get("version")
    if not isinstance(name, str) or not isinstance(version, str) or not name or not version:
        raise BundleError(f"{MANIFEST_FILE}: name and version must be strings")
    if "/" in name or name.startswith(".") or "/" in version or version.startswith("."):
        raise BundleError(f"{MANIFEST_FILE}: name and version may not hold a path")
    digest = "sha256:" + hashlib.sha256(tar).hexdigest()
    return Bundle(name=name, version=version, digest=digest, data=data, files=tuple(sorted(files)))


def unpack(bundle: Bundle, into: Path) -> Path:
    """Extract `bundle` to `into/<name>@<version>/` (atomically: a folder is there whole or not at all)."""
    target = into / bundle.ident
    if target.is_dir():
        return target  # versions are immutable: what is there is this bundle
    into.mkdir(parents=True, exist_ok=True)
    files = _members(_gunzip(bundle.data, limit=DEFAULT_LIMITS.max_bytes), limits=DEFAULT_LIMITS)
    staging = Path(tempfile.mkdtemp(prefix=f".{bundle.ident}.", dir=into))
    for name, content in files.items():
        path = staging / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    try:
        os.rename(staging, target)
    except OSError:
        if not target.is_dir():  # not another process's identical copy winning the race
            raise
    return target


def _tar(files: dict[str, bytes]) -> bytes:
    """The deterministic tar of `files`: sorted, no time, owner or mode that differs between machines."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name in sorted(files):
            info = tarfile.TarInfo(name)
            info.size = len(files[name])
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(files[name]))
    return out.getvalue()


def _gunzip(data: bytes, *, limit: int) -> bytes:
    """The tar inside, refusing more than `limit` bytes (a small gzip can unpack to a huge one)."""
    decompressor = zlib.decompressobj(wbits=zlib.MAX_WBITS | 16)
    try:
        tar = decompressor.decompress(data, limit + 1)
    except zlib.error as exc:
        raise BundleError(f"not gzip data: {exc}") from None
    if len(tar) > limit or decompressor.unconsumed_tail:
        raise BundleError(f"the bundle unpacks to more than {limit} bytes")
    if not decompressor.eof:
        raise BundleError("the gzip data is cut short")
    return tar


def _members(tar: bytes, *, limits: Limits) -> dict[str, bytes]:
    """Every file of the tar by its path; only regular files at safe relative paths."""
    files: dict[str, bytes] = {}
    try:
        with tarfile.open(fileobj=io.BytesIO(tar), mode="r:") as archive:
            for member in archive:
                path = PurePosixPath(member.name)
                if path.is_absolute() or ".." in path.parts or not path.parts:
                    raise BundleError(f"{member.name!r}: not a path inside the component")
                if member.isdir():
                    continue
                if not member.isreg():
                    raise BundleError(f"{member.name!r}: a bundle holds only regular files")
                if len(files) >= limits.max_files:
                    raise BundleError(f"the bundle holds more than {limits.max_files} files")
                extracted = archive.extractfile(member)
                files[path.as_posix()] = extracted.read() if extracted is not None else b""
    except tarfile.TarError as exc:
        raise BundleError(f"not a tar archive: {exc}") from None
    return files
