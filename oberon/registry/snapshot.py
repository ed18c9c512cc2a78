"""What renderers follow: every component's stable version and canary, at one revision of the registry.

The service builds a `Snapshot` from its store and sends it as JSON (`GET /registry/v1/snapshot`);
clients read it back with `Snapshot.from_json`, which refuses anything not of this shape, so a
follower never swaps in half a registry.

    {"revision": 42, "components": [{"name": "ticket-selector", "owner": "checkout",
      "stable": {"version": "1.0.0", "digest": "sha256:…"},
      "canary": {"version": "1.1.0", "digest": "sha256:…", "percent": 10} | null}]}
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from packaging.version import InvalidVersion, Version

from oberon.pipeline.manifest import NAME_PATTERN

DIGEST_PREFIX = "sha256:"


class InvalidSnapshot(ValueError):
    """JSON that is not a snapshot: the message says which part."""


@dataclass(frozen=True)
class Pin:
    """One published version of a component, named by its version and its bundle's digest."""

    name: str
    version: str
    digest: str

    @property
    def ident(self) -> str:
        return f"{self.name}@{self.version}"


@dataclass(frozen=True)
class Canary:
    """A version served to `percent` % of visitors instead of the stable one."""

    pin: Pin
    percent: int


@dataclass(frozen=True)
class Entry:
    """A component's channels: its stable version and at most one canary."""

    name: str
    owner: str
    stable: Pin
    canary: Canary | None = None


@dataclass(frozen=True)
class Snapshot:
    """Every component's channels at `revision` (the id of the registry's newest change), sorted by name."""

    revision: int
    components: tuple[Entry, ...]

    @property
    def etag(self) -> str:
        return f'"{self.revision}"'

    def stable(self) -> list[Pin]:
        """Every component's stable version."""
        return [entry.stable for entry in self.components]

    def to_json(self) -> dict[str, Any]:
        return {
            "revision": self.revision,
            "components": [
                {
                    "name": entry.name,
                    "owner": entry.owner,
                    "stable": {"version": entry.stable.version, "digest": entry.stable.digest},
                    "canary": None
                    if entry.canary is None
                    else {
                        "version": entry.canary.pin.version,
                        "digest": entry.canary.pin.digest,
                        "percent": entry.canary.percent,
                    },
                }
                for entry in self.components
            ],
        }

    @classmethod
    def from_json(cls, data: object) -> Snapshot:
        """The snapshot `data` describes; InvalidSnapshot says what is wrong with it."""
        if not isinstance(data, Mapping):
            raise InvalidSnapshot("a snapshot is a JSON object")
        revision = data.get("revision")
        components = data.get("components")
        if not isinstance(revision, int) or isinstance(revision, bool) or revision < 0:
            raise InvalidSnapshot("revision: expected a whole number, 0 or more")
        if not isinstance(components, list):
            raise InvalidSnapshot("components: expected a list")
        entries = tuple(_entry(index, item) for index, item in enumerate(components))
        names = [entry.name for entry in entries]
        if len(set(names)) != len(names):
            raise InvalidSnapshot("components: a name is listed twice")
        return cls(revision=revision, components=tuple(sorted(entries, key=lambda entry: entry.name)))


def _entry(index: int, item: object) -> Entry:
    where = f"components[{index}]"
    if not isinstance(item, Mapping):
        raise InvalidSnapshot(f"{where}: expected an object")
    name, owner = item.get("name"), item.get("owner")
    if not isinstance(name, str) or not name or not isinstance(owner, str):
        raise InvalidSnapshot(f"{where}: name and owner must be strings")
    if not NAME_PATTERN.match(name):  # a follower makes folders of it: never a path
        raise InvalidSnapshot(f"{where}.name: not a component name: {name!r}")
    stable = _pin(f"{where}.stable", name, item.get("stable"))
    raw_canary = item.get("canary")
    canary = None
    if raw_canary is not None:
        pin = _pin(f"{where}.canary", name, raw_canary)
        percent = raw_canary.get("percent") if isinstance(raw_canary, Mapping) else None
        if not isinstance(percent, int) or isinstance(percent, bool) or not 1 <= percent <= 99:
            raise InvalidSnapshot(f"{where}.canary.percent: expected a whole number from 1 to 99")
        canary = Canary(pin=pin, percent=percent)
    return Entry(name=name, owner=owner, stable=stable, canary=canary)


def _pin(where: str, name: str, raw: object) -> Pin:
    if not isinstance(raw, Mapping):
        raise InvalidSnapshot(f"{where}: expected an object with version and digest")
    version, digest = raw.get("version"), raw.get("digest")
    if not isinstance(version, str) or not version:
        raise InvalidSnapshot(f"{where}.version: expected a string")
    if not _is_version(version):
        raise InvalidSnapshot(f"{where}.version: not a PEP 440 version: {version!r}")
    if not isinstance(digest, str) or not is_digest(digest):
        raise InvalidSnapshot(f"{where}.digest: expected sha256:<64 hex digits>")
    return Pin(name=name, version=version, digest=digest)


def pin_from_json(where: str, name: object, raw: object) -> Pin:
    """The version `raw` (`{"version", "digest"}`) of the component `name`; InvalidSnapshot says what is wrong."""
    if not isinstance(name, str) or not NAME_PATTERN.match(name):
        raise InvalidSnapshot(f"{where}.name: not a component name: {name!r}")
    return _pin(where, name, raw)


def _is_version(text: str) -> bool:
    """A PEP 440 version that is no path (a follower names a folder `NAME@VERSION`)."""
    if "/" in text or "\\" in text or text.startswith("."):
        return False
    try:
        Version(text)
    except InvalidVersion:
        return False
    return True


def is_digest(text: str) -> bool:
    """`sha256:` and 64 lowercase hex digits: the only digests a bundle has."""
    hexdigits = text.removeprefix(DIGEST_PREFIX)
    return text.startswith(DIGEST_PREFIX) and len(hexdigits) == 64 and all(c in "0123456789abcdef" for c in hexdigits)
