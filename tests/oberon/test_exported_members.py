from __future__ import annotations

import pkgutil

import oberon


def test_exported_members_match_all() -> None:
    modules = {module.name for module in pkgutil.iter_modules(oberon.__path__)}
    public = {name for name in dir(oberon) if not name.startswith("_")}
    assert public - modules == set(oberon.__all__)
    for name in oberon.__all__:
        assert getattr(oberon, name).__module__.startswith("oberon."), name
