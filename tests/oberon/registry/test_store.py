"""The registry's store on SQLite and PostgreSQL: immutable versions, channels, rollback's stack, history, owners."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
import sqlalchemy as sa

from oberon.exceptions import ConfigError, ManifestError
from oberon.registry.bundle import Bundle
from oberon.registry.snapshot import Snapshot
from oberon.registry.store import (
    CheckFailed,
    Conflict,
    Invalid,
    NotFound,
    Published,
    Store,
    Unavailable,
    engine_url,
)
from oberon.registry.tokens import Caller, Forbidden, token_hash
from oberon.runtime.supervisor import free_port
from tests.oberon.registry.conftest import Checks, Make

PLATFORM = Caller()
SHOP = Caller(team="shop")
PRICING = Caller(team="pricing")


def publish(store: Store, *bundles: Bundle, caller: Caller = PLATFORM, checks: Checks | None = None,
            reason: str = "") -> list[Published]:
    owners = {bundle.name: _owner(bundle) for bundle in bundles}
    return store.publish(bundles, owners=owners, caller=caller, reason=reason, check=checks or Checks())


def _owner(bundle: Bundle) -> str:
    return "pricing" if bundle.name == "item-price" else "shop"


def test_store_makes_a_names_first_version_stable_and_leaves_later_ones_in_no_channel(
    store: Store, make: Make, checks: Checks
) -> None:
    (first,) = publish(store, make("greeting"), reason="launch")
    assert (first.version, first.channel, first.unchanged) == ("1.0.0", "stable", False)
    (later,) = publish(store, make("greeting", "1.1.0", **{"template.html": "<p>hi</p>"}), checks=checks)
    assert (later.version, later.channel, later.unchanged) == ("1.1.0", None, False)
    assert checks.calls == [(["greeting@1.0.0"], ["greeting@1.1.0"])]  # checked in place of the stable version
    summary = store.summaries()[0]
    assert (summary.stable, summary.canary) == ("1.0.0", None)


def test_store_answers_the_same_version_with_the_same_bytes_as_unchanged(store: Store, make: Make) -> None:
    publish(store, make("greeting"))
    revision = store.revision()
    (again,) = publish(store, make("greeting"))
    assert (again.unchanged, again.channel) == (True, "stable")
    assert store.revision() == revision  # nothing changed, nothing recorded


def test_store_refuses_a_published_version_with_other_bytes(store: Store, make: Make) -> None:
    original = make("greeting")
    publish(store, original)
    revision = store.revision()
    with pytest.raises(Conflict, match=r"greeting@1.0.0 is already published with other contents \(sha256:"):
        publish(store, make("greeting", **{"template.html": "<p>changed</p>"}))
    # 1.0 is the same version as 1.0.0: no second copy under another spelling
    with pytest.raises(Conflict, match=r"greeting@1.0 is already published \(as 1.0.0\)"):
        publish(store, make("greeting", "1.0"))
    assert store.revision() == revision
    assert store.bundle(original.digest) == original.data


def test_store_publishes_a_release_whole_or_not_at_all(store: Store, make: Make, checks: Checks) -> None:
    publish(store, make("greeting"))
    with pytest.raises(Conflict):
        publish(store, make("hero-banner"), make("greeting", **{"template.html": "<p>changed</p>"}))
    assert [summary.name for summary in store.summaries()] == ["greeting"]
    checks.errors = [ManifestError("hero-banner@1.0.0/component.toml", "data.banner", "broken")]
    with pytest.raises(CheckFailed) as refused:
        publish(store, make("hero-banner"), make("item-card"), checks=checks)
    assert refused.value.errors == checks.errors
    assert [summary.name for summary in store.summaries()] == ["greeting"]


def test_store_refuses_a_release_holding_two_versions_of_one_name(store: Store, make: Make) -> None:
    with pytest.raises(Invalid, match="greeting is in it more than once"):
        publish(store, make("greeting"), make("greeting", "1.1.0"))
    with pytest.raises(Invalid, match="not a version"):
        publish(store, make("greeting", "one"))


def test_store_ramps_a_published_version_as_the_one_canary(store: Store, make: Make, checks: Checks) -> None:
    publish(store, make("greeting"))
    publish(store, make("greeting", "1.1.0"))
    publish(store, make("greeting", "1.2.0"))
    summary = store.ramp("greeting", "1.1.0", 10, caller=PLATFORM, reason="try it", check=checks)
    assert (summary.stable, summary.canary, summary.percent) == ("1.0.0", "1.1.0", 10)
    assert checks.calls[-1] == (["greeting@1.1.0"], [])  # the registry canary visitors see
    summary = store.ramp("greeting", "1.2.0", 30, caller=PLATFORM, reason="", check=checks)
    assert (summary.canary, summary.percent) == ("1.2.0", 30)  # it replaced the other canary
    (entry,) = store.snapshot().components
    assert entry.canary is not None and (entry.canary.pin.version, entry.canary.percent) == ("1.2.0", 30)
    with pytest.raises(Conflict, match="is the stable version"):
        store.ramp("greeting", "1.0.0", 10, caller=PLATFORM, reason="", check=checks)
    with pytest.raises(NotFound, match="greeting has no published version 9.0.0"):
        store.ramp("greeting", "9.0.0", 10, caller=PLATFORM, reason="", check=checks)
    with pytest.raises(NotFound, match="no component named nothing"):
        store.ramp("nothing", "1.0.0", 10, caller=PLATFORM, reason="", check=checks)
    for percent in (0, 100, -5):
        with pytest.raises(Invalid, match="1 to 99"):
            store.ramp("greeting", "1.1.0", percent, caller=PLATFORM, reason="", check=checks)


def test_store_halts_only_the_canary_it_was_asked_to_and_keeps_stable(store: Store, make: Make, checks: Checks) -> None:
    publish(store, make("greeting"))
    publish(store, make("greeting", "1.1.0"))
    publish(store, make("greeting", "1.2.0"))
    with pytest.raises(Conflict, match="greeting@1.1.0 is no longer the canary \\(it has no canary\\)"):
        store.halt("greeting", "1.1.0", caller=PLATFORM, reason="worse")
    store.ramp("greeting", "1.2.0", 10, caller=PLATFORM, reason="", check=checks)
    # The guard watched 1.1.0, but someone ramped 1.2.0 meanwhile: that canary is not the guard's to end.
    with pytest.raises(Conflict, match="its canary is greeting@1.2.0"):
        store.halt("greeting", "1.1.0", caller=PLATFORM, reason="worse")
    with pytest.raises(Forbidden):
        store.halt("greeting", "1.2.0", caller=Caller(team="pricing"), reason="worse")
    summary = store.halt("greeting", "1.2.0", caller=PLATFORM, reason="fallback rate 40 %")
    assert (summary.stable, summary.canary, summary.percent) == ("1.0.0", None, None)
    last = store.record("greeting").history[-1]
    assert (last.action, last.version, last.reason) == ("guard", "1.2.0", "fallback rate 40 %")


def test_store_promotes_the_canary_or_a_named_version_and_ends_the_canary(
    store: Store, make: Make, checks: Checks
) -> None:
    publish(store, make("greeting"))
    publish(store, make("greeting", "1.1.0"))
    publish(store, make("greeting", "1.2.0"))
    with pytest.raises(Conflict, match="greeting has no canary to promote"):
        store.promote("greeting", None, caller=PLATFORM, reason="", check=checks)
    store.ramp("greeting", "1.1.0", 10, caller=PLATFORM, reason="", check=checks)
    summary = store.promote("greeting", None, caller=PLATFORM, reason="good", check=checks)
    assert (summary.stable, summary.canary, summary.percent) == ("1.1.0", None, None)
    store.ramp("greeting", "1.2.0", 10, caller=PLATFORM, reason="", check=checks)
    summary = store.promote("greeting", "1.0.0", caller=PLATFORM, reason="named", check=checks)
    assert (summary.stable, summary.canary) == ("1.0.0", None)
    with pytest.raises(Conflict, match="already the stable version"):
        store.promote("greeting", "1.0", caller=PLATFORM, reason="", check=checks)


def test_store_rolls_back_through_the_earlier_stable_versions_skipping_those_rolled_back_from(
    store: Store, make: Make, checks: Checks
) -> None:
    for version in ("1.0.0", "2.0.0", "3.0.0", "4.0.0"):
        publish(store, make("greeting", version))
    store.promote("greeting", "2.0.0", caller=PLATFORM, reason="", check=checks)
    store.promote("greeting", "3.0.0", caller=PLATFORM, reason="", check=checks)
    assert store.rollback("greeting", None, caller=PLATFORM, reason="", check=checks).stable == "2.0.0"
    store.promote("greeting", "4.0.0", caller=PLATFORM, reason="", check=checks)
    # 3.0.0 was rolled back from: the stack is 1.0.0, 2.0.0 under 4.0.0
    assert store.rollback("greeting", None, caller=PLATFORM, reason="", check=checks).stable == "2.0.0"
    assert store.rollback("greeting", None, caller=PLATFORM, reason="", check=checks).stable == "1.0.0"
    with pytest.raises(Conflict, match="no earlier stable version to roll back to"):
        store.rollback("greeting", None, caller=PLATFORM, reason="", check=checks)


def test_store_rolls_back_to_a_named_version_and_ends_any_canary(store: Store, make: Make, checks: Checks) -> None:
    for version in ("1.0.0", "2.0.0", "3.0.0", "4.0.0"):
        publish(store, make("greeting", version))
    store.promote("greeting", "2.0.0", caller=PLATFORM, reason="", check=checks)
    store.promote("greeting", "3.0.0", caller=PLATFORM, reason="", check=checks)
    store.ramp("greeting", "4.0.0", 50, caller=PLATFORM, reason="", check=checks)
    summary = store.rollback("greeting", "1.0.0", caller=PLATFORM, reason="", check=checks)
    assert (summary.stable, summary.canary) == ("1.0.0", None)
    with pytest.raises(Conflict, match="no earlier stable version"):  # 2.0.0 and 3.0.0 were above it
        store.rollback("greeting", None, caller=PLATFORM, reason="", check=checks)
    with pytest.raises(Conflict, match="already the stable version"):
        store.rollback("greeting", "1.0.0", caller=PLATFORM, reason="", check=checks)


def test_store_records_who_did_what_and_why_one_revision_per_change(store: Store, make: Make, checks: Checks) -> None:
    assert store.revision() == 0
    publish(store, make("greeting"), make("hero-banner"), caller=SHOP, reason="launch")
    assert store.revision() == 2  # one row per component the release changed
    publish(store, make("greeting", "1.1.0"), caller=SHOP, reason="friendlier")
    store.ramp("greeting", "1.1.0", 10, caller=SHOP, reason="try it", check=checks)
    store.promote("greeting", None, caller=PLATFORM, reason="looks good", check=checks)
    store.rollback("greeting", None, caller=SHOP, reason="complaints", check=checks)
    assert store.revision() == 6
    record = store.record("greeting")
    assert [(c.actor, c.action, c.version, c.percent, c.reason) for c in record.history] == [
        ("shop", "publish", "1.0.0", None, "launch"),
        ("shop", "publish", "1.1.0", None, "friendlier"),
        ("shop", "ramp", "1.1.0", 10, "try it"),
        ("platform", "promote", "1.1.0", None, "looks good"),
        ("shop", "rollback", "1.0.0", None, "complaints"),
    ]
    assert [change.id for change in record.history] == sorted(change.id for change in record.history)
    assert [(v.version, v.published_by) for v in record.versions] == [("1.0.0", "shop"), ("1.1.0", "shop")]
    assert all(v.published_at.tzinfo is not None for v in record.versions)
    with pytest.raises(NotFound):
        store.record("nothing")


def test_store_lists_versions_in_version_order(store: Store, make: Make) -> None:
    for version in ("1.10.0", "1.9.0", "1.2.0"):
        publish(store, make("greeting", version))
    assert [v.version for v in store.record("greeting").versions] == ["1.2.0", "1.9.0", "1.10.0"]


def test_store_lets_a_team_change_only_what_it_owns(store: Store, make: Make, checks: Checks) -> None:
    with pytest.raises(Forbidden, match=r"team 'shop' does not own item-price \(owner: pricing\)"):
        publish(store, make("greeting"), make("item-price"), caller=SHOP)
    assert store.summaries() == []  # all or nothing
    publish(store, make("greeting"), caller=SHOP)
    publish(store, make("item-price"), caller=PRICING)
    publish(store, make("item-price", "1.1.0"), caller=PRICING)
    revision = store.revision()
    with pytest.raises(Forbidden, match=r"team 'shop' does not own item-price \(owner: pricing\)"):
        store.ramp("item-price", "1.1.0", 10, caller=SHOP, reason="", check=checks)
    with pytest.raises(Forbidden):
        store.promote("item-price", "1.1.0", caller=SHOP, reason="", check=checks)
    with pytest.raises(Forbidden):
        store.rollback("item-price", None, caller=SHOP, reason="", check=checks)
    # A team cannot take a component over by publishing a version that names itself the owner.
    taken = make("item-price", "2.0.0", owner="shop")
    with pytest.raises(Forbidden, match=r"\(owner: pricing\)"):
        store.publish([taken], owners={"item-price": "shop"}, caller=SHOP, reason="", check=checks)
    assert store.revision() == revision
    # The platform hands it over; from then on the new owner changes it, the old one cannot.
    store.publish([taken], owners={"item-price": "shop"}, caller=PLATFORM, reason="handover", check=checks)
    assert store.snapshot().components[1].owner == "shop"
    store.ramp("item-price", "2.0.0", 5, caller=SHOP, reason="", check=checks)
    with pytest.raises(Forbidden):
        store.promote("item-price", None, caller=PRICING, reason="", check=checks)


def test_store_refuses_a_change_its_checks_refuse_and_keeps_the_state(
    store: Store, make: Make, checks: Checks
) -> None:
    publish(store, make("greeting"), make("hero-banner"))
    publish(store, make("greeting", "1.1.0"))
    checks.errors = [ManifestError("greeting@1.1.0/component.toml", "props.who", "breaks shop-page")]
    revision = store.revision()
    for change in (
        lambda: store.ramp("greeting", "1.1.0", 10, caller=PLATFORM, reason="", check=checks),
        lambda: store.promote("greeting", "1.1.0", caller=PLATFORM, reason="", check=checks),
    ):
        with pytest.raises(CheckFailed) as refused:
            change()
        assert refused.value.errors == checks.errors
    assert store.revision() == revision
    assert store.summaries()[0].stable == "1.0.0"


def test_store_snapshot_pins_each_channel_by_digest(store: Store, make: Make, checks: Checks) -> None:
    greeting, banner, newer = make("greeting"), make("hero-banner"), make("greeting", "1.1.0")
    publish(store, greeting, banner)
    publish(store, newer)
    store.ramp("greeting", "1.1.0", 25, caller=PLATFORM, reason="", check=checks)
    snapshot = store.snapshot()
    assert snapshot.revision == store.revision() == 4
    assert [entry.name for entry in snapshot.components] == ["greeting", "hero-banner"]
    first = snapshot.components[0]
    assert (first.owner, first.stable.digest) == ("shop", greeting.digest)
    assert first.canary is not None and (first.canary.pin.digest, first.canary.percent) == (newer.digest, 25)
    assert Snapshot.from_json(snapshot.to_json()) == snapshot


def test_store_keeps_only_a_tokens_hash(store: Store, database_url: str) -> None:
    token = "a-team-token-that-is-long-and-random-0123456789"
    store.issue_token(token_hash(token), team="shop", caller=PLATFORM)
    assert store.team_of(token_hash(token)) == "shop"
    assert store.team_of(token_hash("another")) is None
    engine = sa.create_engine(engine_url(database_url))
    with engine.connect() as conn:
        stored = [tuple(row) for row in conn.execute(sa.text("SELECT hash, team FROM registry_tokens"))]
    engine.dispose()
    assert stored == [(token_hash(token), "shop")]
    assert token not in repr(stored)


def test_store_concurrent_publishes_of_one_version_one_wins_the_others_see_it(
    store: Store, make: Make, checks: Checks
) -> None:
    publish(store, make("greeting"))
    same = [make("greeting", "1.1.0") for _ in range(4)]
    other = make("greeting", "1.1.0", **{"template.html": "<p>other</p>"})
    results: list[object] = []
    start = threading.Barrier(len(same) + 1)

    def attempt(bundle: Bundle) -> None:
        start.wait()
        try:
            results.append(publish(store, bundle)[0])
        except Exception as exc:
            results.append(exc)

    threads = [threading.Thread(target=attempt, args=(bundle,)) for bundle in [*same, other]]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    published = [r for r in results if isinstance(r, Published) and not r.unchanged]
    unchanged = [r for r in results if isinstance(r, Published) and r.unchanged]
    refused = [r for r in results if isinstance(r, Conflict)]
    assert len(results) == 5 and len(published) == 1, results
    assert len(unchanged) + len(refused) == 4, results  # the losers: unchanged (same bytes) or 409, never an error
    winner = published[0].digest
    assert all(r.digest == winner for r in unchanged)
    assert len(store.record("greeting").versions) == 2


def test_store_says_the_database_is_unavailable_without_its_password() -> None:
    store = Store.connect(f"postgresql://oberon:s3cret-password@127.0.0.1:{free_port()}/registry")
    with pytest.raises(Unavailable, match="cannot be used") as failed:
        store.create_tables()
    assert "s3cret-password" not in str(failed.value) and "***" in str(failed.value)
    with pytest.raises(Unavailable):
        store.ping()
    store.close()


@pytest.mark.parametrize("url", ["mysql://x/y", "sqlite://", "sqlite:///:memory:", "not a url", "redis://x"])
def test_store_takes_only_an_sqlite_file_or_postgresql(url: str) -> None:
    with pytest.raises(ConfigError, match=r"sqlite:///PATH or postgresql://"):
        engine_url(url)


def test_store_reads_postgresql_through_psycopg_3(tmp_path: Path) -> None:
    assert engine_url("postgresql://u@h/db").drivername == "postgresql+psycopg"
    assert engine_url(f"sqlite:///{tmp_path}/r.db").database == f"{tmp_path}/r.db"
