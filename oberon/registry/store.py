"""The registry's storage: published versions (with their bundles), channels, history and team tokens.

SQLAlchemy Core over SQLite (`sqlite:///path`, the embedded default: one file, no server) or
PostgreSQL (`postgresql://…`, through psycopg 3: one database for a fleet of registry replicas).

Every change is one transaction that writes exactly one history row per component it changes, so
the id of the newest history row is the registry's *revision*: it only grows, and a follower
that has seen revision N has seen everything up to N. Changes are serialised (SQLite's
`BEGIN IMMEDIATE`, PostgreSQL's transaction-level advisory lock): the registry is low-traffic,
and a publish's checks then run against exactly the state it commits onto. Two publishes of one
version at once therefore see each other: the second is "unchanged" (same bytes) or refused (409).

The store knows nothing of HTTP: it raises the errors below, and the service turns them into
statuses in one place.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from packaging.utils import canonicalize_version
from packaging.version import InvalidVersion, Version

from oberon.exceptions import ConfigError, ManifestError, OberonError
from oberon.registry.bundle import Bundle
from oberon.registry.snapshot import Canary, Entry, Pin, Snapshot
from oberon.registry.tokens import Caller

logger = logging.getLogger("oberon.registry")

PUBLISH, RAMP, PROMOTE, ROLLBACK = "publish", "ramp", "promote", "rollback"
GUARD = "guard"  # a canary ended by `oberon ramp --guard`; stable stays
STABLE, CANARY = "stable", "canary"
WRITE_LOCK = 0x0BE120  # PostgreSQL advisory lock key: one change at a time, across every registry replica
PUBLISH_ATTEMPTS = 3  # a unique-key race lost (another process got there first) is retried on the new state

# A digest → its bundle bytes (None when no version has it), read in the change's own transaction.
Load = Callable[[str], bytes | None]
# Checks a change must pass: the pinned versions of the registry it would make, plus the new versions
# (candidates, each in place of its name's pinned one), and how to load a pinned version's bundle;
# every problem found, as `oberon check` words it.
Check = Callable[[Sequence[Pin], Sequence[Bundle], Load], Sequence[ManifestError]]


class StoreError(OberonError):
    """A change the registry refuses, or a question it cannot answer."""


class Unavailable(StoreError):
    """The database cannot be reached (503)."""


class NotFound(StoreError, LookupError):
    """No such component or version (404)."""


class Invalid(StoreError):
    """A request that cannot be carried out as asked: a bad version or percentage (400)."""


class Conflict(StoreError):
    """A change the registry's state contradicts: a published version with other bytes, nothing to promote (409)."""


class CheckFailed(StoreError):
    """The change would break the registry: `errors` are the file:field problems (422)."""

    def __init__(self, message: str, errors: Sequence[ManifestError]) -> None:
        self.errors = list(errors)
        super().__init__(message)


metadata = sa.MetaData()
versions = sa.Table(
    "registry_versions",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("version", sa.String(100), nullable=False),  # as the manifest spells it
    sa.Column("version_key", sa.String(100), nullable=False),  # canonical: 1.0 and 1.0.0 are one version
    sa.Column("digest", sa.String(80), nullable=False, index=True),
    sa.Column("owner", sa.String(100), nullable=False),
    sa.Column("data", sa.LargeBinary, nullable=False),  # the bundle's gzip bytes
    sa.Column("published_by", sa.String(100), nullable=False),
    sa.Column("published_at", sa.DateTime(timezone=True), nullable=False),
    sa.UniqueConstraint("name", "version_key", name="registry_versions_name_version"),
)
channels = sa.Table(
    "registry_channels",
    metadata,
    sa.Column("name", sa.String(200), primary_key=True),
    sa.Column("owner", sa.String(100), nullable=False),  # the owner of the name's newest published version
    sa.Column("stable", sa.String(100), nullable=False),
    sa.Column("canary", sa.String(100), nullable=True),
    sa.Column("canary_percent", sa.Integer, nullable=True),
    sa.Column("previous", sa.JSON, nullable=False),  # earlier stable versions, oldest first: rollback's stack
)
history = sa.Table(
    "registry_history",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("name", sa.String(200), nullable=False, index=True),
    sa.Column("actor", sa.String(100), nullable=False),
    sa.Column("action", sa.String(20), nullable=False),
    sa.Column("version", sa.String(100), nullable=False),
    sa.Column("percent", sa.Integer, nullable=True),
    sa.Column("reason", sa.Text, nullable=False),
    sqlite_autoincrement=True,  # ids never reused: the revision only grows
)
tokens = sa.Table(
    "registry_tokens",
    metadata,
    sa.Column("hash", sa.String(64), primary_key=True),  # SHA-256 of the token; the token itself is never kept
    sa.Column("team", sa.String(100), nullable=False),
    sa.Column("issued_by", sa.String(100), nullable=False),
    sa.Column("issued_at", sa.DateTime(timezone=True), nullable=False),
)


@dataclass(frozen=True)
class Published:
    """One version of a release: where it is now, and whether it was there already (`unchanged`)."""

    name: str
    version: str
    digest: str
    channel: str | None  # stable, canary, or None until ramped or promoted
    unchanged: bool


@dataclass(frozen=True)
class Summary:
    """A component's channels, as the component list shows them."""

    name: str
    owner: str
    stable: str
    canary: str | None
    percent: int | None


@dataclass(frozen=True)
class VersionRecord:
    version: str
    digest: str
    published_by: str
    published_at: datetime


@dataclass(frozen=True)
class Change:
    """One history row: who did what to which version, when and why."""

    id: int
    at: datetime
    actor: str
    action: str
    version: str
    percent: int | None
    reason: str


@dataclass(frozen=True)
class Record:
    """Everything the registry knows of one component: channels, every version, every change."""

    summary: Summary
    versions: tuple[VersionRecord, ...]  # oldest version first (PEP 440 order)
    history: tuple[Change, ...]  # oldest change first


def version_key(version: str) -> str:
    """The version's canonical form (`1.0.0` → `1`); Invalid when it is not a PEP 440 version."""
    try:
        Version(version)
    except InvalidVersion:
        raise Invalid(f"{version!r} is not a version (PEP 440, e.g. 1.2.0)") from None
    return canonicalize_version(version)


def engine_url(url: str) -> sa.URL:
    """The SQLAlchemy URL of `sqlite:///path` or `postgresql://…` (through psycopg 3); ConfigError for others."""
    try:
        parsed = sa.make_url(url)
    except sa.exc.ArgumentError:
        parsed = None
    if parsed is not None and parsed.drivername in ("postgresql", "postgresql+psycopg", "postgres"):
        return parsed.set(drivername="postgresql+psycopg")
    if parsed is not None and parsed.drivername == "sqlite" and parsed.database and parsed.database != ":memory:":
        return parsed
    raise ConfigError(f"the registry database must be sqlite:///PATH or postgresql://…, got {url!r}")


def shown(url: sa.URL) -> str:
    """The URL for messages and logs: its password hidden."""
    return url.render_as_string(hide_password=True)


class Store:
    """The registry's state in one SQL database; every method is one transaction."""

    def __init__(self, *, engine: sa.Engine, now: Callable[[], datetime] | None = None) -> None:
        self._engine = engine
        self._now = now or (lambda: datetime.now(UTC))
        self._postgres = engine.dialect.name == "postgresql"
        if engine.dialect.name == "sqlite":
            _serialise_sqlite_writes(engine)

    @classmethod
    def connect(cls, url: str, *, now: Callable[[], datetime] | None = None) -> Store:
        """A store on `url` (sqlite:///path or postgresql://…); its tables are made by `create_tables()`."""
        parsed = engine_url(url)
        options: dict[str, Any] = {"pool_pre_ping": True}
        if parsed.drivername == "sqlite":
            # Wait for another writer rather than fail at once (changes are serialised).
            options["connect_args"] = {"timeout": 30}
        else:
            options["connect_args"] = {"connect_timeout": 5}
        return cls(engine=sa.create_engine(parsed, **options), now=now)

    @property
    def url(self) -> str:
        return shown(self._engine.url)

    def create_tables(self) -> None:
        """Create the tables that do not exist yet; Unavailable when the database cannot be reached."""
        with self._guard():
            metadata.create_all(self._engine)

    def close(self) -> None:
        self._engine.dispose()

    def ping(self) -> None:
        """Nothing when the database answers; Unavailable with the reason otherwise."""
        with self._guard(), self._engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))

    # Tokens

    def issue_token(self, token_hash: str, *, team: str, caller: Caller) -> None:
        """Keep a new team token (its hash only)."""
        with self._writing() as conn:
            conn.execute(
                tokens.insert().values(hash=token_hash, team=team, issued_by=caller.actor, issued_at=self._now())
            )
        logger.info("registry: %s issued a token for team %s", caller.actor, team)

    def team_of(self, token_hash: str) -> str | None:
        """The team a token was issued to, None for a token the registry never issued."""
        with self._reading() as conn:
            return conn.execute(sa.select(tokens.c.team).where(tokens.c.hash == token_hash)).scalar()

    # Changes

    def publish(
        self, bundles: Sequence[Bundle], *, owners: Mapping[str, str], caller: Caller, reason: str, check: Check
    ) -> list[Published]:
        """Publish every bundle or none: each is new, or unchanged (same version, same bytes).

        `owners` is each bundle's manifest owner. A name's first version becomes stable; a later one
        is in no channel until ramped or promoted. The new versions must pass `check` with each in
        place of its name's stable version.
        """
        names = [bundle.name for bundle in bundles]
        twice = sorted({name for name in names if names.count(name) > 1})
        if twice:
            raise Invalid(f"a release holds one version of a component; {twice[0]} is in it more than once")
        if not bundles:
            raise Invalid("a release holds at least one bundle")
        keys = {bundle.name: version_key(bundle.version) for bundle in bundles}
        for attempt in range(PUBLISH_ATTEMPTS):
            try:
                with self._writing() as conn:
                    return self._publish(conn, bundles, keys, owners=owners, caller=caller, reason=reason, check=check)
            except sa.exc.IntegrityError:
                # Only without the write lock (another process's first publish of a name): the next look sees it.
                if attempt == PUBLISH_ATTEMPTS - 1:
                    raise Conflict("the registry changed while publishing; publish again") from None
        raise AssertionError("unreachable")

    def _publish(
        self,
        conn: sa.Connection,
        bundles: Sequence[Bundle],
        keys: Mapping[str, str],
        *,
        owners: Mapping[str, str],
        caller: Caller,
        reason: str,
        check: Check,
    ) -> list[Published]:
        current = {row.name: row for row in conn.execute(sa.select(channels).where(channels.c.name.in_(list(keys))))}
        for bundle in bundles:
            existing = current.get(bundle.name)
            caller.may_change(bundle.name, [owners[bundle.name], *([existing.owner] if existing else [])])
        results: dict[str, Published] = {}
        fresh: list[Bundle] = []
        for bundle in bundles:
            row = conn.execute(
                sa.select(versions.c.version, versions.c.digest).where(
                    versions.c.name == bundle.name, versions.c.version_key == keys[bundle.name]
                )
            ).first()
            if row is None:
                fresh.append(bundle)
                continue
            if row.digest != bundle.digest:
                spelt = "" if row.version == bundle.version else f" (as {row.version})"
                raise Conflict(
                    f"{bundle.ident} is already published{spelt} with other contents ({row.digest}); "
                    "a published version never changes: raise the version"
                )
            channel = current.get(bundle.name)
            results[bundle.name] = Published(
                name=bundle.name,
                version=row.version,
                digest=row.digest,
                channel=_channel_of(channel, row.version),
                unchanged=True,
            )
        if fresh:
            _checked(check(self._pins(conn), fresh, _loader(conn)), "the release")
        now = self._now()
        for bundle in fresh:
            conn.execute(
                versions.insert().values(
                    name=bundle.name,
                    version=bundle.version,
                    version_key=keys[bundle.name],
                    digest=bundle.digest,
                    owner=owners[bundle.name],
                    data=bundle.data,
                    published_by=caller.actor,
                    published_at=now,
                )
            )
            first = bundle.name not in current
            if first:
                values = {"name": bundle.name, "owner": owners[bundle.name], "stable": bundle.version, "previous": []}
                conn.execute(channels.insert().values(**values))
            else:
                conn.execute(channels.update().where(channels.c.name == bundle.name).values(owner=owners[bundle.name]))
            self._record(conn, bundle.name, caller, PUBLISH, bundle.version, reason=reason)
            results[bundle.name] = Published(
                name=bundle.name,
                version=bundle.version,
                digest=bundle.digest,
                channel=STABLE if first else None,
                unchanged=False,
            )
            logger.info("registry: %s published %s (%s): %s", caller.actor, bundle.ident, bundle.digest, reason)
        return [results[bundle.name] for bundle in bundles]

    def ramp(self, name: str, version: str, percent: int, *, caller: Caller, reason: str, check: Check) -> Summary:
        """`version` becomes the canary at `percent` % (1–99), in place of any other canary."""
        if isinstance(percent, bool) or not isinstance(percent, int) or not 1 <= percent <= 99:
            raise Invalid(f"percent: a canary takes 1 to 99 % of visitors, not {percent!r}")
        with self._writing() as conn:
            channel = self._channel(conn, name, caller)
            target = self._version(conn, name, version)
            if target.version == channel.stable:
                raise Conflict(f"{name}@{target.version} is the stable version; ramp another one")
            canary_view = self._pins(conn, replace=target)  # what a visitor in the canary's share is served
            _checked(check(canary_view, [], _loader(conn)), f"{name}@{target.version} as the canary")
            conn.execute(
                channels.update().where(channels.c.name == name).values(canary=target.version, canary_percent=percent)
            )
            self._record(conn, name, caller, RAMP, target.version, percent=percent, reason=reason)
            logger.info("registry: %s ramped %s@%s to %d%%: %s", caller.actor, name, target.version, percent, reason)
            return self._summary(conn, name)

    def promote(self, name: str, version: str | None, *, caller: Caller, reason: str, check: Check) -> Summary:
        """The canary (or the named version) becomes stable; the canary ends."""
        with self._writing() as conn:
            channel = self._channel(conn, name, caller)
            wanted = version if version is not None else channel.canary
            if wanted is None:
                raise Conflict(f"{name} has no canary to promote; name the version to promote")
            target = self._version(conn, name, wanted)
            if target.version == channel.stable:
                raise Conflict(f"{name}@{target.version} is already the stable version")
            _checked(check(self._pins(conn, replace=target), [], _loader(conn)), f"{name}@{target.version} as stable")
            conn.execute(
                channels.update()
                .where(channels.c.name == name)
                .values(
                    stable=target.version,
                    canary=None,
                    canary_percent=None,
                    previous=[*channel.previous, channel.stable],
                )
            )
            self._record(conn, name, caller, PROMOTE, target.version, reason=reason)
            logger.info("registry: %s promoted %s@%s: %s", caller.actor, name, target.version, reason)
            return self._summary(conn, name)

    def rollback(self, name: str, to: str | None, *, caller: Caller, reason: str, check: Check) -> Summary:
        """Stable goes back to the previous stable version (or to `to`); any canary ends.

        The earlier stable versions are a stack: v1 → v2 → v3, rollback → v2, rollback → v1. The
        version rolled back from leaves the stack, so it is never gone back to.
        """
        with self._writing() as conn:
            channel = self._channel(conn, name, caller)
            stack = list(channel.previous)
            if to is None:
                if not stack:
                    raise Conflict(f"{name} has no earlier stable version to roll back to")
                target = self._version(conn, name, stack.pop())
            else:
                target = self._version(conn, name, to)
                if target.version == channel.stable:
                    raise Conflict(f"{name}@{target.version} is already the stable version")
                if target.version in stack:
                    stack = stack[: stack.index(target.version)]
            _checked(check(self._pins(conn, replace=target), [], _loader(conn)), f"{name}@{target.version} as stable")
            conn.execute(
                channels.update()
                .where(channels.c.name == name)
                .values(stable=target.version, canary=None, canary_percent=None, previous=stack)
            )
            self._record(conn, name, caller, ROLLBACK, target.version, reason=reason)
            logger.info("registry: %s rolled %s back to %s: %s", caller.actor, name, target.version, reason)
            return self._summary(conn, name)

    def halt(self, name: str, version: str, *, caller: Caller, reason: str) -> Summary:
        """End the canary if it is still `version` (the guard's rollback): stable stays as it is.

        Conflict when the canary is another version or gone: someone promoted or replaced it meanwhile.
        """
        with self._writing() as conn:
            channel = self._channel(conn, name, caller)
            if channel.canary != version:
                now = f"its canary is {name}@{channel.canary}" if channel.canary else "it has no canary"
                raise Conflict(f"{name}@{version} is no longer the canary ({now}); nothing changed")
            conn.execute(channels.update().where(channels.c.name == name).values(canary=None, canary_percent=None))
            self._record(conn, name, caller, GUARD, version, reason=reason)
            logger.info("registry: %s ended the canary %s@%s: %s", caller.actor, name, version, reason)
            return self._summary(conn, name)

    # Reading

    def revision(self) -> int:
        """The id of the newest change; 0 for an empty registry."""
        with self._reading() as conn:
            return _revision(conn)

    def snapshot(self) -> Snapshot:
        """Every component's stable version and canary, with the revision they are at."""
        with self._reading() as conn:
            revision = _revision(conn)
            digests = {
                (row.name, row.version): row.digest
                for row in conn.execute(sa.select(versions.c.name, versions.c.version, versions.c.digest))
            }
            entries = []
            for row in conn.execute(sa.select(channels).order_by(channels.c.name)):
                canary = None
                if row.canary is not None:
                    pin = Pin(name=row.name, version=row.canary, digest=digests[(row.name, row.canary)])
                    canary = Canary(pin=pin, percent=row.canary_percent)
                stable = Pin(name=row.name, version=row.stable, digest=digests[(row.name, row.stable)])
                entries.append(Entry(name=row.name, owner=row.owner, stable=stable, canary=canary))
        return Snapshot(revision=revision, components=tuple(entries))

    def summaries(self) -> list[Summary]:
        """Every component's channels, by name."""
        with self._reading() as conn:
            return [_summary(row) for row in conn.execute(sa.select(channels).order_by(channels.c.name))]

    def record(self, name: str) -> Record:
        """One component: its channels, versions and history; NotFound for a name never published."""
        with self._reading() as conn:
            summary = self._summary(conn, name)
            rows = conn.execute(
                sa.select(versions.c.version, versions.c.digest, versions.c.published_by, versions.c.published_at)
                .where(versions.c.name == name)
            ).all()
            changes = conn.execute(sa.select(history).where(history.c.name == name).order_by(history.c.id)).all()
        return Record(
            summary=summary,
            versions=tuple(
                sorted(
                    (
                        VersionRecord(
                            version=row.version,
                            digest=row.digest,
                            published_by=row.published_by,
                            published_at=_utc(row.published_at),
                        )
                        for row in rows
                    ),
                    key=lambda record: Version(record.version),
                )
            ),
            history=tuple(
                Change(
                    id=row.id,
                    at=_utc(row.at),
                    actor=row.actor,
                    action=row.action,
                    version=row.version,
                    percent=row.percent,
                    reason=row.reason,
                )
                for row in changes
            ),
        )

    def bundle(self, digest: str) -> bytes | None:
        """The bundle bytes of the version with this digest, None when no version has it."""
        with self._reading() as conn:
            return _loader(conn)(digest)

    # Helpers, inside a transaction

    def _channel(self, conn: sa.Connection, name: str, caller: Caller) -> sa.Row[Any]:
        row = conn.execute(sa.select(channels).where(channels.c.name == name)).first()
        if row is None:
            raise NotFound(f"no component named {name} is published")
        caller.may_change(name, [row.owner])
        return row

    def _version(self, conn: sa.Connection, name: str, version: str) -> Pin:
        row = conn.execute(
            sa.select(versions.c.version, versions.c.digest).where(
                versions.c.name == name, versions.c.version_key == version_key(version)
            )
        ).first()
        if row is None:
            raise NotFound(f"{name} has no published version {version}")
        return Pin(name=name, version=row.version, digest=row.digest)

    def _pins(self, conn: sa.Connection, *, replace: Pin | None = None) -> list[Pin]:
        """Every component's stable version; `replace` in place of its name's."""
        rows = conn.execute(
            sa.select(channels.c.name, versions.c.version, versions.c.digest)
            .join(versions, sa.and_(versions.c.name == channels.c.name, versions.c.version == channels.c.stable))
            .order_by(channels.c.name)
        )
        pins = [Pin(name=row.name, version=row.version, digest=row.digest) for row in rows]
        if replace is not None:
            pins = [pin for pin in pins if pin.name != replace.name] + [replace]
        return pins

    def _summary(self, conn: sa.Connection, name: str) -> Summary:
        row = conn.execute(sa.select(channels).where(channels.c.name == name)).first()
        if row is None:
            raise NotFound(f"no component named {name} is published")
        return _summary(row)

    def _record(
        self,
        conn: sa.Connection,
        name: str,
        caller: Caller,
        action: str,
        version: str,
        *,
        reason: str,
        percent: int | None = None,
    ) -> None:
        conn.execute(
            history.insert().values(
                at=self._now(), name=name, actor=caller.actor, action=action, version=version, percent=percent,
                reason=reason,
            )
        )

    # Transactions

    @contextlib.contextmanager
    def _guard(self) -> Iterator[None]:
        """Database errors that mean "cannot reach it" as Unavailable, naming the database (never its password)."""
        try:
            yield
        except (sa.exc.OperationalError, sa.exc.InterfaceError) as exc:
            reason = str(exc.orig).strip().splitlines()[0] if exc.orig is not None else str(exc)
            raise Unavailable(f"the registry's database {self.url} cannot be used: {reason}") from None

    @contextlib.contextmanager
    def _writing(self) -> Iterator[sa.Connection]:
        """A write transaction, serialised with every other one."""
        with self._guard(), self._engine.connect() as conn:
            conn.execution_options(registry_write=True)
            with conn.begin():
                if self._postgres:
                    conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": WRITE_LOCK})
                yield conn

    @contextlib.contextmanager
    def _reading(self) -> Iterator[sa.Connection]:
        """A read transaction that sees one state of the registry throughout."""
        with self._guard(), self._engine.connect() as conn:
            if self._postgres:
                conn.execution_options(isolation_level="REPEATABLE READ")
            with conn.begin():
                yield conn


def _serialise_sqlite_writes(engine: sa.Engine) -> None:
    """Let SQLAlchemy, not pysqlite, begin transactions, and begin a writer's as IMMEDIATE: it takes the write
    lock at once, so two writers queue instead of both reading and one failing to upgrade its lock."""

    @sa.event.listens_for(engine, "connect")
    def connect(dbapi_connection: Any, record: object) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")  # readers never wait for the writer
        cursor.close()

    @sa.event.listens_for(engine, "begin")
    def begin(conn: sa.Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get("registry_write") else "BEGIN")


def _loader(conn: sa.Connection) -> Load:
    """Bundles read through `conn`: a change's checks need no second connection while it holds the write lock."""

    def load(digest: str) -> bytes | None:
        data: bytes | None = conn.execute(
            sa.select(versions.c.data).where(versions.c.digest == digest).limit(1)
        ).scalar()
        return data

    return load


def _checked(errors: Sequence[ManifestError], what: str) -> None:
    if errors:
        raise CheckFailed(f"{what} would break the registry: {len(errors)} error(s)", errors)


def _revision(conn: sa.Connection) -> int:
    return int(conn.execute(sa.select(sa.func.max(history.c.id))).scalar() or 0)


def _channel_of(channel: sa.Row[Any] | None, version: str) -> str | None:
    if channel is None:
        return None
    if channel.stable == version:
        return STABLE
    return CANARY if channel.canary == version else None


def _summary(row: sa.Row[Any]) -> Summary:
    return Summary(name=row.name, owner=row.owner, stable=row.stable, canary=row.canary, percent=row.canary_percent)


def _utc(moment: datetime) -> datetime:
    """SQLite hands times back without their zone; the store writes only UTC."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
