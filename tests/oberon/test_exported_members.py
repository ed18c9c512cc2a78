from __future__ import annotations

import oberon


def test_exported_members_match_all() -> None:
    public = {name for name in dir(oberon) if not name.startswith("_")}
    modules = {"app", "cache_policy", "client", "config", "exceptions", "manifest", "page", "registry", "routing"}
    modules |= {
        "rendering",
        "loading",
        "state",
        "types",
        "cli",
        "topology",
        "faults",
        "bff",
        "breaker",
        "response_cache",
    }
    assert public - modules == set(oberon.__all__)
    for name in oberon.__all__:
        assert getattr(oberon, name).__module__.startswith("oberon."), name
