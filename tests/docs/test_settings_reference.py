"""docs/settings.md is generated from `Settings.from_environ`: it lists every variable, and cannot drift."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from oberon.runtime.reference import MEANINGS, render, variables
from oberon.runtime.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
REGENERATE = "regenerate it: .venv/bin/python -m oberon.runtime.reference > docs/settings.md"


def test_settings_reference_is_the_generated_one() -> None:
    committed = (ROOT / "docs" / "settings.md").read_text(encoding="utf-8")
    assert committed == render(), f"docs/settings.md is out of date; {REGENERATE}"


def test_every_variable_has_a_meaning_and_every_meaning_a_variable() -> None:
    names = [variable.name for variable in variables()]
    missing = [name for name in names if name not in MEANINGS]
    assert not missing, f"describe {missing} in MEANINGS (oberon/runtime/reference.py), then {REGENERATE}"
    stale = sorted(set(MEANINGS) - set(names))
    assert not stale, f"{stale} are no longer read by Settings.from_environ: drop them from MEANINGS"
    assert len(names) == len(set(names)), "a variable is read twice"


def test_every_variable_fills_a_field_of_the_settings() -> None:
    for variable in variables():
        owner: object = Settings()
        for part in variable.field.split("."):
            assert dataclasses.is_dataclass(owner), f"{variable.name}: {variable.field} is not a settings field"
            assert part in {field.name for field in dataclasses.fields(owner)}, f"{variable.name}: no field {part}"
            owner = getattr(owner, part)


def test_reference_shows_types_defaults_and_fields() -> None:
    text = render()
    assert "| `OBERON_PORT` | integer | `8000` | `port` |" in text
    assert "| `OBERON_CACHE_DEGRADED_MAX_AGE` | integer | `300` | `cache.degraded_max_age` |" in text
    assert "| `OBERON_JWT_ALGORITHMS` | list (comma or space separated) | `HS256` | `gateway.jwt_algorithms` |" in text
