"""Bundles: one folder makes one digest, and bytes that are not a safe bundle are refused with the reason."""

from __future__ import annotations

import gzip
import io
import shutil
import tarfile
from pathlib import Path

import pytest

from oberon.registry.bundle import BundleError, Limits, pack, read, unpack

ROOT = Path(__file__).resolve().parents[3]
TICKETS = ROOT / "components" / "ticket-selector"


def _gzip_tar(entries: list[tarfile.TarInfo], contents: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        for info in entries:
            tar.addfile(info, io.BytesIO(contents.get(info.name, b"")) if info.isreg() else None)
    return gzip.compress(out.getvalue())


def _file(name: str, content: bytes) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size = len(content)
    return info, content


MANIFEST = b'name = "x"\nversion = "1.0.0"\n'


def test_a_folder_packs_with_its_name_version_and_every_file() -> None:
    bundle = pack(TICKETS)
    assert (bundle.name, bundle.version, bundle.ident) == ("ticket-selector", "1.0.0", "ticket-selector@1.0.0")
    assert bundle.files == (
        "assets/ticket-selector.css",
        "assets/ticket-selector.js",
        "component.toml",
        "fallback.html",
        "template.html",
    )
    assert bundle.digest.startswith("sha256:") and len(bundle.digest) == 7 + 64


def test_the_digest_depends_on_the_contents_only(tmp_path: Path) -> None:
    copy = shutil.copytree(TICKETS, tmp_path / "elsewhere", copy_function=shutil.copy)  # new times and inodes
    (copy / ".DS_Store").write_bytes(b"junk")  # hidden files are not part of a component
    (copy / "__pycache__").mkdir()
    (copy / "__pycache__" / "x.pyc").write_bytes(b"junk")
    assert pack(copy).digest == pack(TICKETS).digest
    (copy / "template.html").write_text((copy / "template.html").read_text() + "\n<!-- fixed -->\n")
    assert pack(copy).digest != pack(TICKETS).digest


def test_a_bundle_reads_back_and_unpacks_to_the_same_files(tmp_path: Path) -> None:
    bundle = read(pack(TICKETS).data)
    folder = unpack(bundle, tmp_path)
    assert folder == tmp_path / "ticket-selector@1.0.0"
    for name in bundle.files:
        assert (folder / name).read_bytes() == (TICKETS / name).read_bytes()
    assert unpack(bundle, tmp_path) == folder  # a version is immutable: unpacking again changes nothing
    assert not [path for path in tmp_path.iterdir() if path.name.startswith(".")]  # no staging left behind


def test_a_folder_without_a_manifest_is_not_a_component(tmp_path: Path) -> None:
    with pytest.raises(BundleError, match="no component.toml"):
        pack(tmp_path)


def test_a_link_in_the_folder_is_refused(tmp_path: Path) -> None:
    folder = shutil.copytree(TICKETS, tmp_path / "c")
    (folder / "secret").symlink_to("/etc/passwd")
    with pytest.raises(BundleError, match="a link"):
        pack(folder)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"not gzip at all", "not gzip"),
        (gzip.compress(b"not a tar"), "not a tar"),
        (_gzip_tar([_file("template.html", b"x")[0]], {"template.html": b"x"}), "no component.toml"),
        (_gzip_tar([_file("component.toml", b"name = 1")[0]], {"component.toml": b"name = 1"}), "must be strings"),
        (_gzip_tar([_file("component.toml", b"[")[0]], {"component.toml": b"["}), "not valid TOML"),
        (_gzip_tar([_file("../evil", b"x")[0]], {"../evil": b"x"}), "not a path inside"),
        (_gzip_tar([_file("/etc/cron.d/evil", b"x")[0]], {"/etc/cron.d/evil": b"x"}), "not a path inside"),
    ],
)
def test_bytes_that_are_not_a_safe_bundle_are_refused_with_the_reason(data: bytes, reason: str) -> None:
    with pytest.raises(BundleError, match=reason):
        read(data)


def test_links_and_devices_inside_a_bundle_are_refused() -> None:
    manifest, content = _file("component.toml", MANIFEST)
    link = tarfile.TarInfo("template.html")
    link.type = tarfile.SYMTYPE
    link.linkname = "/etc/passwd"
    with pytest.raises(BundleError, match="only regular files"):
        read(_gzip_tar([manifest, link], {"component.toml": content}))


def test_a_name_that_is_a_path_is_refused() -> None:
    manifest, content = _file("component.toml", b'name = "../x"\nversion = "1.0.0"\n')
    with pytest.raises(BundleError, match="may not hold a path"):
        read(_gzip_tar([manifest], {"component.toml": content}))


def test_a_bundle_past_its_limits_is_refused() -> None:
    manifest, content = _file("component.toml", MANIFEST)
    bomb, zeros = _file("big", bytes(2_000_000))  # compresses to a few kilobytes
    data = _gzip_tar([manifest, bomb], {"component.toml": content, "big": zeros})
    with pytest.raises(BundleError, match="unpacks to more than"):
        read(data, limits=Limits(max_bytes=1_000_000))
    with pytest.raises(BundleError, match="larger than"):
        read(data, limits=Limits(max_compressed_bytes=100))
    with pytest.raises(BundleError, match="more than 1 files"):
        read(data, limits=Limits(max_files=1))
