"""Publish checks: the whole-registry checks of `oberon check` over the registry a change would make.

(Interim version: the whole-registry checks only. The contract checks — a state key, action, prop
or route others rely on removed or retyped without a new major version — come with issue 17's
checks work, behind this same function.)
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path

import jinja2

from oberon.exceptions import ManifestError
from oberon.pipeline.registry import check_registry


def check_release(
    stable: Sequence[Path], candidates: Sequence[Path], *, environment: jinja2.Environment
) -> list[ManifestError]:
    """Every problem of the registry made of `stable` with each candidate in place of its name's version.

    Folders are unpacked bundles, `<name>@<version>/`; the files errors name are relative to the folder's
    parent (`ticket-selector@1.1.0/component.toml`), as in the bundle.
    """
    replaced = {_name(folder) for folder in candidates}
    folders = [folder for folder in stable if _name(folder) not in replaced] + list(candidates)
    with tempfile.TemporaryDirectory(prefix="oberon-check-") as scratch:
        root = Path(scratch)
        for folder in folders:
            (root / folder.name).symlink_to(folder.resolve(), target_is_directory=True)
        _, errors = check_registry([root], environment=environment)
        bases = [root, *(folder.resolve().parent for folder in folders)]
        return [_relative(error, bases) for error in errors]


def _name(folder: Path) -> str:
    return folder.name.partition("@")[0]


def _relative(error: ManifestError, bases: Sequence[Path]) -> ManifestError:
    """The error with its file relative to the folders' parent (an asset check may name the real path)."""
    for base in bases:
        if error.file.is_relative_to(base):
            return ManifestError(error.file.relative_to(base), error.field, error.message)
    return error
