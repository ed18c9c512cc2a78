"""The follower: a renderer's registry from the registry service's snapshot, its disk copy, and what it refuses."""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import jinja2
import pytest

from oberon.registry.client import RegistryClient
from oberon.registry.follower import Follower, SyncError
from tests.conftest import FakeClock
from tests.registry_stand_in import TOKEN, StandInRegistry

RES_COMPONENTS = Path(__file__).resolve().parents[2] / "res" / "site" / "components"
URL = "http://registry.test"

FollowerFactory = Callable[..., Follower]


@pytest.fixture
def stand_in(tmp_path: Path) -> StandInRegistry:
    """A registry holding the test site's components, each stable."""
    registry = StandInRegistry(tmp_path / "stand-in")
    registry.publish_site(RES_COMPONENTS)
    return registry


@pytest.fixture
def requests() -> list[httpx.Request]:
    return []


@pytest.fixture
def follower_for(
    tmp_path: Path, environment: jinja2.Environment, stand_in: StandInRegistry, requests: list[httpx.Request]
) -> FollowerFactory:
    """A follower of the stand-in (or of `transport`), with its cache and asset build in the test's folder."""

    def make(
        transport: httpx.BaseTransport | None = None,
        *,
        clock: Callable[[], float] | None = None,
        observers: tuple[Callable[[int, bool], None], ...] = (),
        token: str = TOKEN,
    ) -> Follower:
        client = RegistryClient(url=URL, token=token, transport=transport or stand_in.transport(requests))
        return Follower(
            client=client,
            cache_dir=tmp_path / "cache",
            build_dir=tmp_path / "build",
            environment=environment,
            poll_seconds=1.0,
            observers=observers,
            **({"clock": clock} if clock is not None else {}),
        )

    return make


def down(request: httpx.Request) -> httpx.Response:
    raise httpx.ConnectError("connection refused", request=request)


def new_version(tmp_path: Path, name: str, version: str, *, template: str | None = None) -> Path:
    """A copy of a test site component as another version, with another template when given."""
    edits = tmp_path / "edits"
    edits.mkdir(exist_ok=True)
    folder = Path(tempfile.mkdtemp(dir=edits)) / name
    shutil.copytree(RES_COMPONENTS / name, folder)
    manifest = folder / "component.toml"
    text = manifest.read_text()
    old = next(line for line in text.splitlines() if line.startswith("version = "))
    manifest.write_text(text.replace(old, f'version = "{version}"'))
    if template is not None:
        (folder / "template.html").write_text(template)
    return folder


def test_start_serves_the_snapshots_stable_versions_and_keeps_a_disk_copy(
    follower_for: FollowerFactory, stand_in: StandInRegistry, tmp_path: Path
) -> None:
    follower = follower_for()
    loaded = follower.start()
    assert loaded.registry.names() == ["greeting", "hero-banner", "item-card", "item-price", "shop-page"]
    assert loaded.registry.get("item-card").manifest.folder == tmp_path / "cache" / "components" / "item-card@1.2.0"
    assert "item-card@1.2.0/assets/item.css" in loaded.assets.assets  # the asset build of what it follows
    assert json.loads((tmp_path / "cache" / "snapshot.json").read_text()) == stand_in.snapshot()
    assert (follower.status.revision, follower.status.source, follower.status.last_error) == (1, "registry", None)


def test_an_unchanged_registry_costs_a_304_and_changes_nothing(
    follower_for: FollowerFactory, requests: list[httpx.Request]
) -> None:
    follower = follower_for()
    follower.start()
    asked = len(requests)
    assert follower.sync() is None
    assert [request.url.path for request in requests[asked:]] == ["/registry/v1/snapshot"]
    assert requests[-1].headers["If-None-Match"] == '"1"'
    assert requests[-1].headers["Authorization"] == f"Bearer {TOKEN}"
    assert follower.status.failures == 0


def test_a_new_revision_is_loaded_fetching_only_the_bundles_it_lacks(
    follower_for: FollowerFactory,
    stand_in: StandInRegistry,
    requests: list[httpx.Request],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="oberon.registry")
    follower = follower_for()
    follower.start()
    card = stand_in.publish(new_version(tmp_path, "item-card", "1.3.0", template="<h1>v2 {{ state.item.name }}</h1>"))
    assert stand_in.release(card) == 2
    asked = len(requests)
    loaded = follower.sync()
    assert loaded is not None and loaded.snapshot.revision == 2
    assert loaded.registry.get("item-card").template.render(state={"item": {"name": "Lamp"}}) == "<h1>v2 Lamp</h1>"
    assert [request.url.path for request in requests[asked:]] == [
        "/registry/v1/snapshot",
        f"/registry/v1/bundles/{card.digest}",
    ]
    assert follower.current is loaded and follower.status.revision == 2
    assert f"registry: now serving revision 2 of {URL}: item-card 1.2.0 → 1.3.0" in caplog.messages
    assert json.loads((tmp_path / "cache" / "snapshot.json").read_text())["revision"] == 2


def test_a_bundle_whose_digest_does_not_match_the_snapshot_is_refused_and_the_last_good_kept(
    follower_for: FollowerFactory, stand_in: StandInRegistry, tmp_path: Path
) -> None:
    follower = follower_for()
    before = follower.start()
    card = stand_in.publish(new_version(tmp_path, "item-card", "1.3.0", template="<h1>tampered</h1>"))
    other = stand_in.publish(new_version(tmp_path, "item-card", "1.3.0", template="<h1>what was published</h1>"))
    stand_in.put_bundle(other.digest, card.data)  # the registry names one digest and serves other bytes
    stand_in.release(other)
    assert follower.sync() is None
    assert follower.current is before
    assert follower.status.revision == 1 and follower.status.failures == 1
    assert follower.status.last_error is not None
    assert (
        f"item-card@1.3.0: the registry sent {card.digest} for the bundle {other.digest}: the digests differ"
        in follower.status.last_error
    )
    assert json.loads((tmp_path / "cache" / "snapshot.json").read_text())["revision"] == 1
    assert not (tmp_path / "cache" / "components" / "item-card@1.3.0").exists()


def test_a_revision_that_fails_the_registry_checks_is_refused_naming_file_and_field(
    follower_for: FollowerFactory, stand_in: StandInRegistry, tmp_path: Path
) -> None:
    follower = follower_for()
    before = follower.start()
    broken = stand_in.publish(new_version(tmp_path, "item-card", "1.3.0", template="<h1>{{ state.item.name </h1>"))
    stand_in.release(broken)
    assert follower.sync() is None
    assert follower.current is before
    error = follower.status.last_error or ""
    assert error.startswith("revision 2 is not a valid registry: ")
    assert "item-card@1.3.0/template.html:line 1: template syntax error" in error


@pytest.mark.parametrize(
    ("snapshot", "reason"),
    [
        ("not json", "did not answer JSON"),
        ({"revision": -1, "components": []}, "the registry's snapshot is not valid: revision: expected a whole number"),
        ({"revision": 3, "components": {}}, "components: expected a list"),
        (
            {"revision": 3, "components": [{"name": "../etc", "owner": "x", "stable": None}]},
            "components[0].name: not a component name: '../etc'",
        ),
        (
            {"revision": 3, "components": [{"name": "a", "owner": "x", "stable": {"version": "../1", "digest": ""}}]},
            "components[0].stable.version: not a PEP 440 version: '../1'",
        ),
        (
            {"revision": 3, "components": [{"name": "a", "owner": "x", "stable": {"version": "1.0", "digest": "md5"}}]},
            "components[0].stable.digest: expected sha256:<64 hex digits>",
        ),
    ],
)
def test_an_invalid_snapshot_changes_nothing(
    follower_for: FollowerFactory, stand_in: StandInRegistry, snapshot: Any, reason: str
) -> None:
    follower = follower_for()
    before = follower.start()
    stand_in.write_snapshot(snapshot if isinstance(snapshot, str) else json.dumps(snapshot))
    assert follower.sync() is None
    assert follower.current is before
    assert reason in (follower.status.last_error or "")


def test_a_renderer_starts_from_the_disk_copy_when_the_registry_is_down(follower_for: FollowerFactory) -> None:
    first = follower_for().start()
    follower = follower_for(httpx.MockTransport(down))
    loaded = follower.start()
    assert loaded.snapshot == first.snapshot
    assert loaded.registry.names() == first.registry.names()
    assert (follower.status.source, follower.status.failures) == ("disk", 1)
    assert "ConnectError" in (follower.status.last_error or "")


def test_with_neither_registry_nor_disk_copy_the_follower_refuses_to_start_naming_url_error_and_cache(
    follower_for: FollowerFactory, tmp_path: Path
) -> None:
    with pytest.raises(SyncError) as refused:
        follower_for(httpx.MockTransport(down)).start()
    message = str(refused.value)
    assert f"the registry {URL} cannot be followed" in message
    assert "cannot be reached: connection refused (ConnectError)" in message
    assert f"there is no disk copy to start from at {tmp_path / 'cache' / 'snapshot.json'}" in message


def test_a_disk_copy_whose_files_were_changed_is_not_served(follower_for: FollowerFactory, tmp_path: Path) -> None:
    follower_for().start()
    (tmp_path / "cache" / "components" / "item-card@1.2.0" / "template.html").write_text("<h1>changed on disk</h1>")
    with pytest.raises(SyncError) as refused:
        follower_for(httpx.MockTransport(down)).start()
    assert "item-card@1.2.0 does not hold item-card@1.2.0 as the snapshot names it" in str(refused.value)


def test_a_changed_folder_is_fetched_again_while_the_registry_answers(
    follower_for: FollowerFactory, tmp_path: Path
) -> None:
    follower_for().start()
    template = tmp_path / "cache" / "components" / "item-card@1.2.0" / "template.html"
    original = template.read_text()
    template.write_text("<h1>changed on disk</h1>")
    loaded = follower_for().start()
    assert template.read_text() == original
    assert (
        loaded.registry.get("item-card").template.render(state={"item": {"name": "Lamp"}})
        == '<h1 class="item">Lamp</h1>'
    )


def test_a_refusing_registry_is_reported_with_its_reason(follower_for: FollowerFactory) -> None:
    with pytest.raises(SyncError) as refused:
        follower_for(token="not-the-token").start()
    assert f"{URL}/registry/v1/snapshot answered 401: a valid token is needed" in str(refused.value)


def test_failures_are_counted_observed_and_logged_at_most_once_a_minute(
    follower_for: FollowerFactory, stand_in: StandInRegistry, caplog: pytest.LogCaptureFixture
) -> None:
    clock = FakeClock()
    observed: list[tuple[int, bool]] = []
    transport = stand_in.transport()
    answering = [True]

    def maybe_down(request: httpx.Request) -> httpx.Response:
        return transport.handle_request(request) if answering[0] else down(request)

    follower = follower_for(
        httpx.MockTransport(maybe_down), clock=clock, observers=(lambda *seen: observed.append(seen),)
    )
    follower.start()
    answering[0] = False
    with caplog.at_level(logging.WARNING, logger="oberon.registry"):
        for _ in range(10):
            follower.sync()
            clock.now += 1
        clock.now += 60
        follower.sync()
    lines = [record.getMessage() for record in caplog.records]
    assert len(lines) == 2
    assert lines[0].startswith("registry: still serving revision 1: the registry at http://registry.test cannot be")
    assert lines[1].endswith("(9 more failed syncs since the last line)")
    assert follower.status.failures == 11
    assert observed == [(1, False)] + [(1, True)] * 11
    answering[0] = True
    follower.sync()
    assert follower.status.last_error is None and follower.status.last_sync == clock.now
    assert observed[-1] == (1, False)


def test_an_unexpected_error_while_following_is_counted_and_the_follower_goes_on(
    follower_for: FollowerFactory, caplog: pytest.LogCaptureFixture
) -> None:
    follower = follower_for()
    follower.start()
    stop = threading.Event()
    applied: list[object] = []

    def apply(loaded: object) -> None:
        applied.append(loaded)

    def broken_poll() -> None:
        if follower.status.failures >= 2:
            stop.set()
        raise ValueError("a bug")

    follower.poll = broken_poll  # type: ignore[assignment,method-assign]
    follower.poll_seconds = 0.01
    with caplog.at_level(logging.WARNING, logger="oberon.registry"):
        follower.run(apply, stop)
    assert follower.status.failures == 3 and applied == []
    assert follower.status.last_error == "the sync failed unexpectedly: ValueError: a bug"
    assert len(caplog.records) == 1 and caplog.records[0].exc_info is not None  # once a minute, with the traceback


def test_a_canary_makes_a_registry_per_cohort_and_one_asset_build_of_both_versions(
    follower_for: FollowerFactory, stand_in: StandInRegistry, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="oberon.registry")
    follower = follower_for()
    follower.start()
    card = stand_in.publish(new_version(tmp_path, "item-card", "1.3.0", template="<h1>v2 {{ state.item.name }}</h1>"))
    stand_in.ramp(card, 30)
    loaded = follower.sync()
    assert loaded is not None
    assert loaded.cohorts.names() == ["stable", "item-card@1.3.0"]
    assert loaded.cohorts.of(29) == "item-card@1.3.0" and loaded.cohorts.of(30) == "stable"
    assert loaded.registry is loaded.registries["stable"]
    assert loaded.registries["stable"].get("item-card").manifest.version_text == "1.2.0"
    canary = loaded.registries["item-card@1.3.0"]
    assert canary.get("item-card").template.render(state={"item": {"name": "Lamp"}}) == "<h1>v2 Lamp</h1>"
    assert canary.names() == loaded.registry.names()
    assert {"item-card@1.2.0/assets/item.css", "item-card@1.3.0/assets/item.css"} <= set(loaded.assets.assets)
    assert f"registry: now serving revision 2 of {URL}: item-card canary 1.3.0 at 30 %" in caplog.messages


def test_a_canary_that_fails_the_registry_checks_refuses_the_revision(
    follower_for: FollowerFactory, stand_in: StandInRegistry, tmp_path: Path
) -> None:
    follower = follower_for()
    before = follower.start()
    broken = stand_in.publish(new_version(tmp_path, "item-card", "1.3.0", template="<h1>{{ state.item.name </h1>"))
    stand_in.ramp(broken, 10)
    assert follower.sync() is None and follower.current is before
    error = follower.status.last_error or ""
    assert error.startswith("revision 2 (canary cohort item-card@1.3.0) is not a valid registry: ")


WEEK = 7 * 24 * 3600


def test_a_version_that_left_every_channel_stays_pinnable_for_islands_for_7_days(
    follower_for: FollowerFactory, stand_in: StandInRegistry, tmp_path: Path
) -> None:
    clock = FakeClock()
    follower = follower_for(clock=clock)
    follower.start()
    card = stand_in.publish(new_version(tmp_path, "item-card", "1.3.0", template="<h1>v2</h1>"))
    stand_in.release(card)  # 1.3.0 stable: 1.2.0 leaves every channel now
    loaded = follower.sync()
    assert loaded is not None
    assert loaded.registry.get("item-card").manifest.version_text == "1.3.0"
    assert loaded.pinned.get("item-card", "==1.2.0").manifest.version_text == "1.2.0"
    assert "item-card@1.2.0/assets/item.css" in loaded.assets.assets  # a cached page still loads its files
    recorded = json.loads((tmp_path / "cache" / "retired.json").read_text())["retired"]
    assert [(item["name"], item["version"], item["left"]) for item in recorded] == [("item-card", "1.2.0", clock.now)]

    clock.now += WEEK - 1
    stand_in.release(stand_in.publish(new_version(tmp_path, "greeting", "1.1.0")))
    kept = follower.sync()
    assert kept is not None and kept.pinned.get("item-card", "==1.2.0")
    clock.now += 2
    stand_in.release(stand_in.publish(new_version(tmp_path, "greeting", "1.2.0")))
    later = follower.sync()
    assert later is not None
    assert [c.manifest.ident for c in later.pinned if c.name == "item-card"] == ["item-card@1.3.0"]
    assert sorted(later.retired) == ["greeting@1.0.0", "greeting@1.1.0"]


def test_a_renderer_restarted_keeps_the_retired_versions_of_its_disk_copy_and_a_version_back_is_not_retired(
    follower_for: FollowerFactory, stand_in: StandInRegistry, tmp_path: Path
) -> None:
    follower = follower_for()
    follower.start()
    stand_in.release(stand_in.publish(new_version(tmp_path, "item-card", "1.3.0", template="<h1>v2</h1>")))
    follower.sync()
    restarted = follower_for(httpx.MockTransport(down)).start()  # the registry is down: the disk copy serves
    assert restarted.pinned.get("item-card", "==1.2.0").manifest.version_text == "1.2.0"
    assert sorted(restarted.retired) == ["item-card@1.2.0"]

    rolled_back = stand_in.release(stand_in.publish(RES_COMPONENTS / "item-card"))  # 1.2.0 stable again
    assert rolled_back == 3
    loaded = follower_for().start()  # a renderer started after the rollback: its disk copy says 1.3.0 left
    assert loaded.registry.get("item-card").manifest.version_text == "1.2.0"
    assert sorted(loaded.retired) == ["item-card@1.3.0"]
    assert loaded.pinned.get("item-card", "==1.3.0").template.render(state={}) == "<h1>v2</h1>"


def test_a_retired_version_that_cannot_be_had_is_left_out_and_never_refuses_a_revision(
    follower_for: FollowerFactory, stand_in: StandInRegistry, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    follower = follower_for()
    follower.start()
    stand_in.release(stand_in.publish(new_version(tmp_path, "item-card", "1.3.0")))
    assert follower.sync() is not None
    shutil.rmtree(tmp_path / "cache" / "components" / "item-card@1.2.0")  # a disk cleaned by hand
    with caplog.at_level(logging.WARNING, logger="oberon.registry"):
        restarted = follower_for(httpx.MockTransport(down)).start()  # 1.2.0 cannot be fetched again
    assert restarted.snapshot.revision == 2
    assert [c.manifest.ident for c in restarted.pinned if c.name == "item-card"] == ["item-card@1.3.0"]
    assert any("the retired item-card@1.2.0 is not kept for islands" in line for line in caplog.messages)
