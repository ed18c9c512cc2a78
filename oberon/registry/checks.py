"""Publish checks: what the registry service verifies before it accepts a release.

A release is one or more candidate versions. It is refused when

- the registry it would make fails the whole-registry checks of `oberon check`: the current
  stable versions, with each candidate in place of its name's stable version (a new name is
  added), loaded by `check_folders`; or
- a candidate breaks a contract that its name's stable version offered, without raising the
  major version: a data source (state key) other components subscribe to removed or loaded
  from elsewhere; an action others consume removed, or a field of its payload removed or
  retyped; a prop added without a default, made required, or retyped; an app's route removed.

Every problem is a `ManifestError` whose file is relative to the folders' parent
(`ticket-selector@1.1.0/component.toml`), as the folders are unpacked bundles named
`<name>@<version>/` (`bundle.unpack`): the same file:field errors `oberon check` prints,
with no path of the service's disk in them.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import jinja2

from oberon.exceptions import ManifestError
from oberon.pipeline.manifest import Manifest
from oberon.pipeline.manifest_parser import parse_manifest
from oberon.pipeline.registry import check_folders
from oberon.types import Kind


def check_release(
    stable: Sequence[Path], candidates: Sequence[Path], *, environment: jinja2.Environment, contracts: bool = True
) -> list[ManifestError]:
    """Every reason to refuse publishing `candidates` over the `stable` versions (one folder per name); [] if none.

    With `contracts=False`, the whole-registry checks only: for a ramp, promote or rollback of versions
    already published, where going back to an older contract is the point.
    """
    manifests = {folder: parse_manifest(folder)[0] for folder in (*stable, *candidates)}
    replaced = {_name(folder, manifests[folder]) for folder in candidates}
    current = {_name(folder, manifests[folder]): manifests[folder] for folder in stable}
    folders = [folder for folder in stable if _name(folder, manifests[folder]) not in replaced] + list(candidates)
    _, errors = check_folders(folders, environment=environment)
    after = [manifest for folder in folders if (manifest := manifests[folder]) is not None]
    if contracts:
        for folder in candidates:
            new = manifests[folder]
            old = current.get(_name(folder, new))
            if new is not None and old is not None:
                errors.extend(check_contract(old, new, [other for other in after if other.name != new.name]))
    return [_relative(error, [*stable, *candidates]) for error in errors]


def check_contract(old: Manifest, new: Manifest, others: Sequence[Manifest]) -> list[ManifestError]:
    """How `new` breaks what `old` (its name's stable version) offered `others`; [] when its major version is higher."""
    if new.version.major > old.version.major:
        return []
    remedy = f"raise the major version ({old.version.major + 1}.0.0) to publish this change"
    return [
        ManifestError(new.file, field, f"{problem}; {remedy}")
        for field, problem in (
            *_data_sources(old, new, others),
            *_actions(old, new, others),
            *_props(old, new, others),
            *_routes(old, new),
        )
    ]


def _data_sources(old: Manifest, new: Manifest, others: Sequence[Manifest]) -> Iterator[tuple[str, str]]:
    for key, source in old.data.items():
        users = _names(other for other in others if key in other.subscribes)
        if not users:
            continue  # only this component reads it: its own business
        was = f"{source.bff} {source.path}"
        if key not in new.data:
            yield f"data.{key}", f"state key {key!r} ({was}) is removed, but {users} subscribe to it"
        elif (new.data[key].bff, new.data[key].path) != (source.bff, source.path):
            now = f"{new.data[key].bff} {new.data[key].path}"
            yield f"data.{key}", f"state key {key!r} now loads {now} instead of {was}, and {users} subscribe to it"


def _actions(old: Manifest, new: Manifest, others: Sequence[Manifest]) -> Iterator[tuple[str, str]]:
    for action, payload in old.publishes.items():
        users = _names(other for other in others if action in other.consumes)
        if not users:
            continue
        where = f'publishes."{action}"'
        if action not in new.publishes:
            yield where, f"action {action!r} is no longer published, but {users} consume it"
            continue
        for field, kind in payload.items():
            now = new.publishes[action].get(field)
            if now is None:
                yield (
                    f"{where}.payload.{field}",
                    f"{action!r} no longer sends {field!r} ({kind}), and {users} consume it",
                )
            elif now != kind:
                yield (
                    f"{where}.payload.{field}",
                    f"{action!r} sends {field!r} as {now} instead of {kind}, and {users} consume it",
                )


def _props(old: Manifest, new: Manifest, others: Sequence[Manifest]) -> Iterator[tuple[str, str]]:
    # Apps pass props in their slots, and anyone may in a preview's query: a prop's contract holds without users too.
    apps = [other for other in others if other.kind is Kind.APP and _slots(other, new.name)]
    users = f"; apps that slot it in: {_names(apps)}" if apps else ""
    for name, spec in new.props.items():
        before = old.props.get(name)
        if before is None and spec.required:
            yield (
                f"props.{name}",
                f"new prop {name!r} has no default, so every use of {new.name} must now pass it{users}",
            )
        elif before is not None and spec.required and not before.required:
            yield f"props.{name}", f"prop {name!r} lost its default, so every use of {new.name} must now pass it{users}"
        elif before is not None and spec.type != before.type:
            yield f"props.{name}", f"prop {name!r} is now {spec.type} instead of {before.type}{users}"


def _routes(old: Manifest, new: Manifest) -> Iterator[tuple[str, str]]:
    for route in old.routes:
        if route not in new.routes:
            yield "routes", f"route {route!r} is removed: links and bookmarks to it would no longer find a page"


def _slots(app: Manifest, name: str) -> bool:
    return any(entry.component == name for entries in app.slots.values() for entry in entries)


def _names(manifests: Iterable[Manifest]) -> str:
    return ", ".join(sorted(manifest.ident for manifest in manifests))


def _name(folder: Path, manifest: Manifest | None) -> str:
    """The component's name: from its manifest, else from its folder's `<name>@<version>`."""
    if manifest is not None:
        return manifest.name
    return folder.name.rpartition("@")[0] or folder.name


def _relative(error: ManifestError, folders: Sequence[Path]) -> ManifestError:
    """The error with its file relative to the parent of its component's folder, and no such parent in its message."""
    file = error.file
    for folder in folders:
        if file.is_relative_to(folder):
            file = file.relative_to(folder.parent)
            break
    message = error.message
    for parent in {folder.parent for folder in folders}:
        message = message.replace(f"{parent}{os.sep}", "")
    return ManifestError(file, error.field, message)
