"""Versions that left every channel, still rendered for islands for 7 days.

A page cached by a CDN, or open in a browser tab, names its islands by version (`/_islands/NAME?version==X`):
after a rollback or a promote it still names the version that left. A renderer following the registry keeps
each version it served for `RETENTION_SECONDS` after it left every channel (stable and canary), in its disk
copy beside `snapshot.json`:

    retired.json    {"retired": [{"name", "version", "digest", "left": <UNIX time it left>}]}

Written atomically; the processes of one machine share it, so a renderer started after the rollback knows
what its siblings retired. A version back in a channel is no longer retired.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from oberon.pipeline.assets import RETENTION_SECONDS
from oberon.registry.snapshot import InvalidSnapshot, Pin, Snapshot, pin_from_json

logger = logging.getLogger("oberon.registry")

RETIRED_FILE = "retired.json"


@dataclass(frozen=True)
class Retired:
    """A version that left every channel at `left` (UNIX time)."""

    pin: Pin
    left: float

    def to_json(self) -> dict[str, object]:
        return {"name": self.pin.name, "version": self.pin.version, "digest": self.pin.digest, "left": self.left}


def in_channels(snapshot: Snapshot) -> dict[str, Pin]:
    """Every version a snapshot serves, stable or canary, by `name@version`."""
    pins = {entry.stable.ident: entry.stable for entry in snapshot.components}
    pins.update({entry.canary.pin.ident: entry.canary.pin for entry in snapshot.components if entry.canary})
    return pins


def retire(
    before: Snapshot | None,
    after: Snapshot,
    known: Mapping[str, Retired],
    *,
    now: float,
    retention: float = RETENTION_SECONDS,
) -> dict[str, Retired]:
    """The versions retired once `after` is served: those `known` still within `retention` and not back in a
    channel, and those in a channel of `before` that are in none of `after` (leaving `now`)."""
    serving = in_channels(after)
    retired = {
        ident: item for ident, item in known.items() if ident not in serving and now - item.left < retention
    }
    if before is not None:
        for ident, pin in in_channels(before).items():
            if ident not in serving and ident not in retired:
                retired[ident] = Retired(pin=pin, left=now)
    return dict(sorted(retired.items()))


def read(file: Path) -> dict[str, Retired]:
    """The retired versions recorded in `file`; none when it is missing, and none (logged) when unreadable."""
    try:
        raw = json.loads(file.read_bytes())
        items = raw["retired"]
        if not isinstance(items, list):
            raise TypeError("retired: expected a list")
        found = {}
        for index, item in enumerate(items):
            pin = pin_from_json(f"retired[{index}]", item.get("name"), item)
            left = item.get("left")
            if isinstance(left, bool) or not isinstance(left, int | float):
                raise TypeError(f"retired[{index}].left: expected a time")
            found[pin.ident] = Retired(pin=pin, left=float(left))
        return found
    except FileNotFoundError:
        return {}
    except (OSError, ValueError, KeyError, TypeError, AttributeError, InvalidSnapshot) as exc:
        logger.warning("registry: %s is unreadable (%s): no retired version is kept for islands", file, exc)
        return {}


def to_json(retired: Mapping[str, Retired]) -> bytes:
    return json.dumps({"retired": [item.to_json() for item in retired.values()]}, indent=1).encode("utf-8")
