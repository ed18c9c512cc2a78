"""A renderer following the registry service: the snapshot's stable versions, swapped in without a restart.

```
<cache dir>/                        OBERON_REGISTRY_CACHE_DIR, shared by the processes of one machine
    snapshot.json                   the last good snapshot (written atomically, once it loaded and built)
    components/NAME@VERSION/        each bundle unpacked (atomically), its files checked against the digest
```

At start the follower asks for the snapshot (a short timeout); when the registry cannot be reached or
its snapshot cannot be loaded, it starts from the disk copy (a warning says so), and with neither it
refuses to start, naming the URL, the error and the cache path: it never serves a registry it could
not check. Then it asks again every `poll_seconds` with `If-None-Match` (an unchanged registry is a
304). A new revision has its missing bundles fetched (each digest compared with the snapshot's),
is loaded as `oberon check` loads a registry, has its assets built, and is handed over to be swapped
into the renderer in one step. A failed fetch, a bundle that does not match, an invalid registry:
nothing changes, the last good keeps serving, the failure is counted and logged (at most once a
minute, with a count).

It asks through `oberon.registry.client.RegistryClient` (`snapshot(etag)`, `bundle(digest)`: two GETs)
and reads what it gets as `oberon.registry.snapshot.Snapshot`; `Following` runs the follower beside an
app, for as long as its lifespan.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import jinja2
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from oberon.exceptions import AssetError, ManifestError, OberonError
from oberon.headers import STABLE_COHORT
from oberon.pipeline.assets import AssetManifest, build_assets
from oberon.pipeline.cohorts import Canary, Cohorts
from oberon.pipeline.page import PageRenderer
from oberon.pipeline.registry import Component, Registry, check_folders
from oberon.registry import bundle, retired
from oberon.registry.client import SNAPSHOT_PATH, RegistryClient, RegistryClientError, RegistryRefused
from oberon.registry.retired import RETIRED_FILE, Retired
from oberon.registry.snapshot import InvalidSnapshot, Pin, Snapshot

logger = logging.getLogger("oberon.registry")  # the name operators' log filters know

SNAPSHOT_FILE = "snapshot.json"
COMPONENTS = "components"
START_TIMEOUT = 3.0  # at start: a registry slower than this is treated as down (the disk copy serves)
LOG_EVERY_SECONDS = 60.0  # a registry down for an hour logs sixty lines, not three thousand


class SyncError(OberonError):
    """A snapshot that could not be fetched, read, checked or loaded; the last good one keeps serving."""


@dataclass(frozen=True)
class Loaded:
    """A snapshot ready to serve: a checked registry for each canary cohort (the stable versions with the cohort's
    canaries in their place), the versions islands may still pin (every cohort's, and the retired ones), and one
    asset build of them all."""

    snapshot: Snapshot
    cohorts: Cohorts
    registries: Mapping[str, Registry]
    pinned: Registry
    assets: AssetManifest
    retired: Mapping[str, Retired] = field(default_factory=dict)

    @property
    def registry(self) -> Registry:
        """The stable versions: what a visitor without a bucket, or outside every canary, is served."""
        return self.registries[STABLE_COHORT]

    def serve(self, renderer: PageRenderer) -> None:
        """Swap this revision into `renderer`, every cohort in one step."""
        renderer.follow(self.registries, self.assets, cohorts=self.cohorts, pinned=self.pinned)


@dataclass(frozen=True)
class SyncStatus:
    """What a following renderer reports in its health: the revision it serves and how its last syncs went."""

    url: str
    revision: int | None = None
    source: str = ""  # `registry`, or `disk` until the registry has answered once
    last_sync: float | None = None  # UNIX time the registry last answered (a change or a 304)
    last_error: str | None = None  # why the last sync failed; None once one succeeds
    failures: int = 0  # failed syncs since the process started

    def to_json(self, now: float) -> dict[str, Any]:
        return {
            "url": self.url,
            "revision": self.revision,
            "source": self.source,
            "last_sync": self.last_sync,
            "seconds_since_sync": None if self.last_sync is None else round(now - self.last_sync, 3),
            "last_error": self.last_error,
            "failures": self.failures,
        }


SyncObserver = Callable[[int, bool], None]  # (the revision served, whether this sync failed): metrics


class Follower:
    """Keeps a renderer's registry in step with the registry service, through the disk copy when it is down."""

    def __init__(
        self,
        *,
        client: RegistryClient,
        cache_dir: Path,
        build_dir: Path,
        environment: jinja2.Environment,
        poll_seconds: float,
        observers: tuple[SyncObserver, ...] = (),
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.client = client
        self.cache_dir = cache_dir
        self.build_dir = build_dir
        self.environment = environment
        self.poll_seconds = poll_seconds
        self.observers = observers
        self.clock = clock
        self.status = SyncStatus(url=client.url)
        self.current: Loaded | None = None
        self._verified: set[tuple[str, str, str]] = set()  # (name, version, digest) whose folder was checked
        self._retired_components: dict[Pin, Component] = {}  # compiled once, while they stay retired
        self._last_logged = float("-inf")
        self._unlogged = 0

    @property
    def snapshot_file(self) -> Path:
        return self.cache_dir / SNAPSHOT_FILE

    @property
    def retired_file(self) -> Path:
        return self.cache_dir / RETIRED_FILE

    def start(self) -> Loaded:
        """The registry's snapshot, else the disk copy's; SyncError (naming URL, error and cache) with neither."""
        try:
            snapshot = self._snapshot(timeout=START_TIMEOUT)
            assert snapshot is not None  # asked without an ETag: never a 304
            loaded = self._take(snapshot, online=True)
        except SyncError as exc:
            loaded = self._start_from_disk(exc)
            revision, failures = loaded.snapshot.revision, self.status.failures + 1
            self.status = replace(self.status, revision=revision, source="disk", last_error=str(exc), failures=failures)
        else:
            revision, now = loaded.snapshot.revision, self.clock()
            self.status = replace(self.status, revision=revision, source="registry", last_sync=now)
        self._observe(failed=self.status.source == "disk")
        return loaded

    def poll(self) -> Loaded | None:
        """The registry's new revision, loaded; None when it has not changed; SyncError when it cannot be had."""
        if self.current is None:
            raise RuntimeError("start() the follower first")
        snapshot = self._snapshot(etag=self.current.snapshot.etag)
        if snapshot is None or snapshot == self.current.snapshot:
            return None
        return self._take(snapshot, online=True)

    def sync(self) -> Loaded | None:
        """`poll`, with its outcome in the status and the metrics and a failure logged (at a bounded rate)."""
        before = self.current.snapshot if self.current is not None else None
        try:
            loaded = self.poll()
        except SyncError as exc:
            self._failed(str(exc))
            return None
        recovered = self.status.last_error is not None
        revision = loaded.snapshot.revision if loaded is not None else self.status.revision
        now = self.clock()
        self.status = replace(self.status, revision=revision, source="registry", last_sync=now, last_error=None)
        self._observe(failed=False)
        if loaded is not None:
            changes = _changes(before, loaded.snapshot)
            logger.info("registry: now serving revision %d of %s: %s", revision, self.client.url, changes)
        elif recovered:
            logger.info("registry: %s answers again; serving revision %s", self.client.url, revision)
        return loaded

    def run(self, apply: Callable[[Loaded], None], stop: threading.Event) -> None:
        """Sync every `poll_seconds` until `stop` is set; `apply` gets each new revision (a thread's body)."""
        while not stop.wait(self.poll_seconds):
            try:
                loaded = self.sync()
                if loaded is not None:
                    apply(loaded)
            except Exception as exc:  # the follower outlives any one bad sync; the last good keeps serving
                self._failed(f"the sync failed unexpectedly: {type(exc).__name__}: {exc}", exc_info=True)

    def _snapshot(self, *, etag: str | None = None, timeout: float | None = None) -> Snapshot | None:
        """The registry's snapshot (None: still `etag`'s); SyncError says why it cannot be had."""
        try:
            return self.client.snapshot(etag, timeout=timeout)
        except RegistryRefused as exc:
            raise SyncError(f"{self.client.url}{SNAPSHOT_PATH} answered {exc.status}: {exc.reason}") from None
        except RegistryClientError as exc:
            raise SyncError(str(exc)) from None

    def _take(self, snapshot: Snapshot, *, online: bool) -> Loaded:
        """Load `snapshot`, keep it as the disk copy when it came from the registry, and make it current."""
        try:
            before = self.current.snapshot if self.current is not None else self._disk_snapshot()
            now = self.clock()
            retiring = retired.retire(before, snapshot, retired.read(self.retired_file), now=now)
            loaded = self._load(snapshot, retiring, online=online)
            if online:
                _write_atomic(self.retired_file, retired.to_json(retiring))
                _write_atomic(self.snapshot_file, json.dumps(snapshot.to_json(), indent=1).encode("utf-8"))
        except OSError as exc:  # a full or read-only disk: this revision cannot be kept, so it is not served
            raise SyncError(f"revision {snapshot.revision}: cannot write under {self.cache_dir}: {exc}") from None
        self.current = loaded
        return loaded

    def _disk_snapshot(self) -> Snapshot | None:
        """The disk copy's snapshot (what this machine served last), to know what left the channels since; None
        when there is none to read."""
        try:
            return Snapshot.from_json(json.loads(self.snapshot_file.read_bytes()))
        except (OSError, ValueError, InvalidSnapshot):
            return None

    def _start_from_disk(self, why: SyncError) -> Loaded:
        where = f"the registry {self.client.url} cannot be followed ({why})"
        try:
            raw = json.loads(self.snapshot_file.read_bytes())
        except FileNotFoundError:
            raise SyncError(f"{where}, and there is no disk copy to start from at {self.snapshot_file}") from None
        except (OSError, ValueError) as exc:
            raise SyncError(f"{where}, and the disk copy {self.snapshot_file} is unreadable: {exc}") from None
        try:
            loaded = self._take(_parse(raw), online=False)
        except SyncError as exc:
            raise SyncError(f"{where}, and the disk copy {self.snapshot_file} cannot serve: {exc}") from None
        logger.warning(
            "registry: %s; serving revision %d from the disk copy %s",
            where,
            loaded.snapshot.revision,
            self.snapshot_file,
        )
        return loaded

    def _load(self, snapshot: Snapshot, retiring: Mapping[str, Retired], *, online: bool) -> Loaded:
        """A checked registry per cohort, the retired versions, and the asset build of them all; SyncError says
        why not (a retired version that cannot be had is left out, never a reason to refuse a revision)."""
        canaries = {entry.name: entry.canary for entry in snapshot.components if entry.canary is not None}
        cohorts = Cohorts(Canary(name, canary.pin.version, canary.percent) for name, canary in canaries.items())
        registries: dict[str, Registry] = {}
        for cohort in cohorts.names():
            pins = {pin.name: pin for pin in snapshot.stable()}
            pins.update({canary.name: canaries[canary.name].pin for canary in cohorts.members(cohort)})
            where = f"revision {snapshot.revision}" + ("" if cohort == STABLE_COHORT else f" (canary cohort {cohort})")
            registries[cohort] = self._registry(where, [self._folder(pin, online=online) for pin in pins.values()])
        serving = _unique(component for registry in registries.values() for component in registry)
        kept = [self._retired(item.pin, online=online) for item in retiring.values()]
        still = {item.pin for item in retiring.values()}
        self._retired_components = {pin: c for pin, c in self._retired_components.items() if pin in still}
        pinned = Registry([*serving, *(component for component in kept if component is not None)])
        try:
            assets = build_assets(pinned, self.build_dir)  # a cached page still loads a retired version's files
        except AssetError as exc:
            raise SyncError(f"revision {snapshot.revision}: {exc}") from None
        return Loaded(
            snapshot=snapshot,
            cohorts=cohorts,
            registries=registries,
            pinned=pinned,
            assets=assets,
            retired=retiring,
        )

    def _registry(self, where: str, folders: list[Path]) -> Registry:
        registry, errors = check_folders(folders, environment=self.environment)
        if errors or registry is None:
            raise SyncError(f"{where} is not a valid registry: {_shown(errors)}")
        return registry

    def _retired(self, pin: Pin, *, online: bool) -> Component | None:
        """A retired version, compiled on its own (the registry it was checked in is gone); None when it cannot be
        had (not in the disk copy while the registry is down, or its templates no longer compile)."""
        component = self._retired_components.get(pin)
        if component is not None:
            return component
        try:
            registry, _ = check_folders([self._folder(pin, online=online)], environment=self.environment)
        except SyncError as exc:
            logger.warning("registry: the retired %s is not kept for islands: %s", pin.ident, exc)
            return None
        found = list(registry or ())
        if len(found) != 1:
            logger.warning("registry: the retired %s is not kept for islands: it does not load", pin.ident)
            return None
        self._retired_components[pin] = found[0]
        return found[0]

    def _folder(self, pin: Pin, *, online: bool) -> Path:
        """`components/NAME@VERSION/`, holding exactly the bundle the snapshot names, fetched if need be."""
        components = self.cache_dir / COMPONENTS
        target = components / pin.ident
        key = (pin.name, pin.version, pin.digest)
        if key in self._verified and target.is_dir():
            return target
        if target.is_dir():
            if _digest_of(target) == pin.digest:
                self._verified.add(key)
                return target
            if not online:
                raise SyncError(f"{target} does not hold {pin.ident} as the snapshot names it ({pin.digest})")
            _remove(target)  # not what this version is (a registry rebuilt elsewhere, a damaged disk): fetch it again
        elif not online:
            raise SyncError(f"{pin.ident} is not in the disk copy ({target})")
        try:
            found = self.client.bundle(pin.digest)  # read, and refused unless it is this digest
        except RegistryClientError as exc:
            raise SyncError(f"{pin.ident}: {exc}") from None
        if (found.name, found.version) != (pin.name, pin.version):
            raise SyncError(f"{pin.ident}: the bundle {pin.digest} holds {found.ident}")
        path = bundle.unpack(found, components)
        self._verified.add(key)
        return path

    def _observe(self, *, failed: bool) -> None:
        if self.status.revision is None:
            return
        for observe in self.observers:
            observe(self.status.revision, failed)

    def _failed(self, reason: str, *, exc_info: bool = False) -> None:
        """A sync that changed nothing: in the status and the metrics, and logged at most once a minute."""
        self.status = replace(self.status, last_error=reason, failures=self.status.failures + 1)
        self._observe(failed=True)
        now = self.clock()
        if now - self._last_logged < LOG_EVERY_SECONDS:
            self._unlogged += 1
            return
        more = f" ({self._unlogged} more failed syncs since the last line)" if self._unlogged else ""
        revision = self.status.revision
        logger.warning("registry: still serving revision %s: %s%s", revision, reason, more, exc_info=exc_info)
        self._last_logged, self._unlogged = now, 0


class Following:
    """`app` with a follower beside it for as long as its lifespan: each new revision is swapped into `renderer`.

    The follower syncs in a thread of its own (fetching, unpacking and building assets block); the swap
    itself happens on the event loop, between two pages.
    """

    def __init__(self, app: ASGIApp, *, follower: Follower, renderer: PageRenderer) -> None:
        self.app = app
        self.follower = follower
        self.renderer = renderer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "lifespan":
            await self.app(scope, receive, send)
            return
        loop = asyncio.get_running_loop()
        stop = threading.Event()

        def apply(loaded: Loaded) -> None:
            if not stop.is_set():
                loop.call_soon_threadsafe(loaded.serve, self.renderer)

        async def receive_and_follow() -> Message:
            message = await receive()
            if message["type"] == "lifespan.startup":
                thread = threading.Thread(
                    target=self.follower.run, args=(apply, stop), name="oberon-registry-follower", daemon=True
                )
                thread.start()
            elif message["type"] == "lifespan.shutdown":
                stop.set()  # a sync under way ends on its own (a daemon thread never holds the process)
            return message

        await self.app(scope, receive_and_follow, send)


def _unique(components: Iterable[Component]) -> list[Component]:
    """Each version once (the stable ones are in every cohort's registry)."""
    return list({component.manifest.ident: component for component in components}.values())


def _shown(errors: list[ManifestError]) -> str:
    shown = "; ".join(str(error) for error in errors[:5])
    more = f"; and {len(errors) - 5} more" if len(errors) > 5 else ""
    return f"{shown or 'unusable'}{more}"


def _parse(raw: object) -> Snapshot:
    try:
        return Snapshot.from_json(raw)
    except InvalidSnapshot as exc:
        raise SyncError(f"the snapshot is not valid: {exc}") from None


def _digest_of(folder: Path) -> str | None:
    """The digest of the bundle `folder` packs into (the tar is deterministic); None when it is not a component."""
    try:
        return bundle.pack(folder).digest
    except (bundle.BundleError, OSError):
        return None


def _remove(folder: Path) -> None:
    """Move `folder` out of the way at once (another process may be reading it), then delete it."""
    aside = Path(tempfile.mkdtemp(prefix=f".{folder.name}.replaced.", dir=folder.parent))
    try:
        os.rename(folder, aside / folder.name)
    except OSError:
        if folder.is_dir():
            raise
    shutil.rmtree(aside, ignore_errors=True)


def _write_atomic(target: Path, data: bytes) -> None:
    """Another process reads the old file or the new one, never half of one."""
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=".tmp-", suffix=target.suffix)
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _changes(before: Snapshot | None, after: Snapshot) -> str:
    """What a new revision changes in the channels: `ticket-selector 1.0.0 → 1.1.0, badge (new)`, and its canaries:
    `ticket-selector canary 1.2.0 at 10 %`, `ticket-selector canary ended`."""
    old = {pin.name: pin.version for pin in before.stable()} if before else {}
    new = {pin.name: pin.version for pin in after.stable()}
    changes = [
        f"{name} {old[name]} → {version}" if name in old else f"{name} {version} (new)"
        for name, version in sorted(new.items())
        if old.get(name) != version
    ]
    changes += [f"{name} (gone)" for name in sorted(old.keys() - new.keys())]
    old_canaries = _canaries(before) if before else {}
    new_canaries = _canaries(after)
    for name in sorted(old_canaries.keys() | new_canaries.keys()):
        if old_canaries.get(name) == new_canaries.get(name):
            continue
        if name in new_canaries:
            version, percent = new_canaries[name]
            changes.append(f"{name} canary {version} at {percent} %")
        elif name in new:
            changes.append(f"{name} canary ended")
    return ", ".join(changes) or "no channel changed"


def _canaries(snapshot: Snapshot) -> dict[str, tuple[str, int]]:
    return {
        entry.name: (entry.canary.pin.version, entry.canary.percent) for entry in snapshot.components if entry.canary
    }
