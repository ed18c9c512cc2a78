"""The registry's commands: `oberon registry serve|token`, `publish`, `ramp`, `promote`, `rollback`, `versions`.

None of them loads the site's component registry: `publish` packs the folders it is given (or, with
`--all`, every component folder of the site), `registry serve` uses the site's folder only for its
default database, and the others speak to the registry service alone. A refusal prints the
registry's reason (and the file:field errors of a failed check) to stderr and exits 1; a command
that cannot start (no registry URL, no token, a short platform token) exits 2.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from oberon.exceptions import ConfigError
from oberon.pipeline.registry import discover
from oberon.registry.bundle import BundleError, pack
from oberon.registry.client import PREFIX, RegistryClient, RegistryClientError, RegistryRefused
from oberon.registry.guard import (
    DEFAULT_FALLBACK_MARGIN_POINTS,
    DEFAULT_INTERVAL_SECONDS,
    DEFAULT_MIN_RENDERS,
    DEFAULT_P95_RATIO,
    DEFAULT_WINDOW_SECONDS,
    HELD,
    WORSE,
    GuardError,
    GuardSettings,
    metrics_url,
    renderer_metrics_urls,
    run_guard,
)
from oberon.registry.tokens import PlatformToken
from oberon.runtime.settings import SCRAPE_TARGETS, Settings
from oberon.site import Site

COMMANDS = frozenset({"registry", "publish", "ramp", "promote", "rollback", "versions"})
DEFAULT_PORT = 9000
DATABASE_FILE = Path(".oberon/registry.sqlite3")  # beside the site file; .oberon/ is never committed
WORK_DIR = "registry-work"  # beside an SQLite database: unpacked versions the checks read, by digest


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The registry's commands on the CLI's subcommands."""
    registry = commands.add_parser("registry", help="the registry service: run it, issue team tokens")
    actions = registry.add_subparsers(dest="registry_command", required=True)
    serve = actions.add_parser("serve", help="run the registry service (needs OBERON_REGISTRY_ADMIN_TOKEN)")
    serve.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port to listen on (default {DEFAULT_PORT})")
    serve.add_argument(
        "--database",
        help=f"sqlite:///PATH or postgresql://… (default sqlite:///<site folder>/{DATABASE_FILE.as_posix()})",
    )
    serve.add_argument(
        "--work-dir", type=Path, help=f"where the checks unpack versions (default {WORK_DIR}/ beside an SQLite file)"
    )
    serve.add_argument(
        "--cdn-purge",
        action="append",
        metavar="URL",
        help="the site's CDN, purged of a component's pages when its channels change (repeat it for several; "
        "default OBERON_REGISTRY_CDN_PURGE)",
    )
    token = actions.add_parser("token", help="issue a token for a team (run with the platform token); printed once")
    token.add_argument("team")
    _registry_argument(token)

    publish = commands.add_parser("publish", help="publish component folders to the registry as immutable versions")
    publish.add_argument("folders", nargs="*", type=Path, help="component folders, e.g. components/ticket-selector")
    publish.add_argument("--all", action="store_true", help="every component folder of the site, in one release")
    _change_arguments(publish)

    ramp = commands.add_parser("ramp", help="serve a published version to a percentage of visitors (the canary)")
    ramp.add_argument("name")
    ramp.add_argument("version")
    ramp.add_argument("--percent", type=int, required=True, help="visitors who see it, 1 to 99")
    _change_arguments(ramp)
    guard = ramp.add_argument_group("guard", "watch the canary against stable and end it by itself when it is worse")
    guard.add_argument("--guard", action="store_true", help="watch the canary after the ramp (README: the guard)")
    guard.add_argument(
        "--guard-window", type=float, default=DEFAULT_WINDOW_SECONDS, metavar="SECONDS", help="how long it watches"
    )
    guard.add_argument(
        "--guard-min-renders", type=int, default=DEFAULT_MIN_RENDERS, metavar="N", help="canary renders before judging"
    )
    guard.add_argument(
        "--guard-fallback-margin",
        type=float,
        default=DEFAULT_FALLBACK_MARGIN_POINTS,
        metavar="POINTS",
        help="percentage points of fallback rate above stable's that count as worse",
    )
    guard.add_argument(
        "--guard-p95-ratio", type=float, default=DEFAULT_P95_RATIO, metavar="R", help="p95 above R x stable's"
    )
    guard.add_argument(
        "--metrics",
        action="append",
        default=[],
        metavar="URL",
        help="a renderer's admin listener or its /metrics (repeat it; default: the renderers oberon up wrote to "
        f"{SCRAPE_TARGETS})",
    )

    promote = commands.add_parser("promote", help="make the canary (or the named version) stable")
    promote.add_argument("name")
    promote.add_argument("version", nargs="?")
    _change_arguments(promote)

    rollback = commands.add_parser("rollback", help="put the previous stable version (or --to VERSION) back")
    rollback.add_argument("name")
    rollback.add_argument("--to", help="the published version to go back to (default: the previous stable one)")
    _change_arguments(rollback)

    versions = commands.add_parser("versions", help="a component's versions, channels and history")
    versions.add_argument("name")
    _registry_argument(versions)


def _registry_argument(command: argparse.ArgumentParser) -> None:
    command.add_argument("--registry", help="the registry service's URL (default OBERON_REGISTRY_URL)")


def _change_arguments(command: argparse.ArgumentParser) -> None:
    command.add_argument("--reason", default="", help="why: recorded in the component's history")
    _registry_argument(command)


def main(args: argparse.Namespace, settings: Settings) -> int:
    """Run one registry command; the exit status."""
    try:
        if args.command == "registry" and args.registry_command == "serve":
            return serve(args, settings)
        folders = _folders(args, settings) if args.command == "publish" else []
        with _client(args, settings) as client:
            return _run(args, client, folders, settings)
    except ConfigError as exc:
        print(f"oberon: {exc}", file=sys.stderr)
        return 2
    except RegistryRefused as exc:
        print(f"oberon: the registry refused: {exc.reason}", file=sys.stderr)
        for error in exc.errors:
            print(f"  {error}", file=sys.stderr)
        return 1
    except GuardError as exc:
        print(f"oberon: the guard: {exc}", file=sys.stderr)
        return 2
    except (RegistryClientError, BundleError) as exc:
        print(f"oberon: {exc}", file=sys.stderr)
        return 1


def serve(args: argparse.Namespace, settings: Settings) -> int:
    """`oberon registry serve`: the API on --port over --database, after checking the platform token and database."""
    # Imported here, not with the module: SQLAlchemy alone adds about 0.3 s to every other `oberon` process.
    import uvicorn

    from oberon import logs
    from oberon.pipeline.rendering import create_environment
    from oberon.registry.purge import Purger
    from oberon.registry.service import create_app
    from oberon.registry.store import Store, Unavailable, engine_url

    platform = PlatformToken(settings.registry_admin_token)  # ConfigError: refuse to start
    cdns = tuple(args.cdn_purge or settings.registry_cdn_purge)
    purger = Purger(urls=cdns, again_after=settings.registry_cdn_purge_again_seconds) if cdns else None
    database = args.database or f"sqlite:///{(settings.site_file.parent / DATABASE_FILE).resolve()}"
    url = engine_url(database)
    temporary = None
    if url.drivername == "sqlite":
        assert url.database is not None
        Path(url.database).parent.mkdir(parents=True, exist_ok=True)
        work_dir = args.work_dir or Path(url.database).parent / WORK_DIR
    else:
        work_dir = args.work_dir or Path(temporary := tempfile.mkdtemp(prefix="oberon-registry-"))
    store = Store.connect(database)
    try:
        store.create_tables()
    except Unavailable as exc:
        store.close()
        raise ConfigError(f"{exc}; the registry does not start without its database") from None
    app = create_app(
        store=store, platform=platform, work_dir=work_dir, environment=create_environment(), purger=purger
    )
    logs.configure(settings.log_format or None)
    print(f"oberon: registry  http://{args.host}:{args.port}{PREFIX}/  (database {store.url})", flush=True)
    if purger is not None:
        print(f"oberon: purges    {' '.join(purger.urls)} (Surrogate-Key: component:NAME) on each change", flush=True)
    config = uvicorn.Config(
        app,
        host=args.host,
        port=args.port,
        lifespan="off",
        log_config=None,
        access_log=False,
        proxy_headers=False,
        server_header=False,
    )
    server = uvicorn.Server(config)
    try:
        server.run()
    finally:
        store.close()
        if temporary is not None:
            shutil.rmtree(temporary, ignore_errors=True)
    return 0 if server.started else 1


def _client(args: argparse.Namespace, settings: Settings) -> RegistryClient:
    url = args.registry or settings.registry_url
    if not url:
        raise ConfigError("which registry? pass --registry URL or set OBERON_REGISTRY_URL")
    if not url.startswith(("http://", "https://")):
        raise ConfigError(f"the registry's URL must start with http:// or https://, got {url!r}")
    if not settings.registry_token:
        raise ConfigError(
            "set OBERON_REGISTRY_TOKEN: a team's token (`oberon registry token TEAM`), or the platform token"
        )
    return RegistryClient(url=url, token=settings.registry_token)


def _folders(args: argparse.Namespace, settings: Settings) -> list[Path]:
    if args.all and args.folders:
        raise ConfigError("publish either folders or --all, not both")
    if args.all:
        folders = discover(Site.load(settings.site_file).components)
        if not folders:
            raise ConfigError(f"{settings.site_file}: the site has no component folders to publish")
        return folders
    if not args.folders:
        raise ConfigError("name the component folders to publish (e.g. components/ticket-selector), or --all")
    return list(args.folders)


def _run(args: argparse.Namespace, client: RegistryClient, folders: Sequence[Path], settings: Settings) -> int:
    if args.command == "registry":
        print(client.issue_token(args.team))  # alone on its line, for `$(oberon registry token TEAM)`
        print(f"oberon: a token for team {args.team}; it is not shown again", file=sys.stderr)
        return 0
    if args.command == "publish":
        bundles = [pack(folder) for folder in folders]
        for item in client.publish(bundles, reason=args.reason):
            print(_published(item), flush=True)
        return 0
    if args.command == "ramp" and args.guard:
        return _guarded_ramp(args, client, targets=settings.site_file.parent / SCRAPE_TARGETS)
    if args.command == "ramp":
        summary = client.ramp(args.name, args.version, percent=args.percent, reason=args.reason)
    elif args.command == "promote":
        summary = client.promote(args.name, args.version, reason=args.reason)
    elif args.command == "rollback":
        summary = client.rollback(args.name, to=args.to, reason=args.reason)
    else:
        print(versions_table(client.component(args.name)))
        return 0
    print(f"oberon: {_channels(summary)}")
    _print_purge(summary.get("purge"))
    return 0


def _guarded_ramp(args: argparse.Namespace, client: RegistryClient, *, targets: Path) -> int:
    """Ramp, watch the canary against stable, end it (stable stays) if worse: exits 0 held, 1 worse, 3 inconclusive."""
    settings = GuardSettings(
        window_seconds=args.guard_window,
        interval_seconds=min(DEFAULT_INTERVAL_SECONDS, args.guard_window),
        min_renders=args.guard_min_renders,
        fallback_margin_points=args.guard_fallback_margin,
        p95_ratio=args.guard_p95_ratio,
    )
    urls = [metrics_url(url) for url in args.metrics] or renderer_metrics_urls(targets)
    stable = str(client.component(args.name)["stable"])

    def ramp() -> None:
        summary = client.ramp(args.name, args.version, percent=args.percent, reason=args.reason)
        print(f"oberon: {_channels(summary)}")
        _print_purge(summary.get("purge"))
        print(f"oberon: guarding it for {settings.window_seconds:g} s on {len(urls)} renderer(s)", flush=True)

    def rollback(reason: str) -> None:
        summary = client.halt(args.name, args.version, reason=reason)
        print(f"oberon: {_channels(summary)}", flush=True)
        _print_purge(summary.get("purge"))

    verdict = run_guard(
        component=args.name,
        canary=args.version,
        stable=stable,
        metrics_urls=urls,
        rollback=rollback,
        ramp=ramp,
        settings=settings,
    )
    print(f"oberon: {verdict.outcome}: {verdict.reason}", file=sys.stdout if verdict.outcome == HELD else sys.stderr)
    return {HELD: 0, WORSE: 1}.get(verdict.outcome, 3)


def _print_purge(purge: object) -> None:
    """How the registry's purge of the CDN went: a line on stdout, or a warning on stderr (the change stands)."""
    if not isinstance(purge, Mapping):
        return
    for cdn in purge.get("cdns", []):
        if cdn.get("ok"):
            print(f"oberon: purged {purge.get('key')} from {cdn.get('url')}")
        else:
            failed = f"the CDN purge of {purge.get('key')} at {cdn.get('url')} failed: {cdn.get('error')}"
            stands = "the change stands; cached pages may keep the old version"
            print(f"oberon: warning: {failed}; {stands}", file=sys.stderr)


def _published(item: Mapping[str, Any]) -> str:
    ident = f"{item['name']}@{item['version']}"
    verb = "unchanged" if item["unchanged"] else "published"
    if item["channel"]:
        where = item["channel"]
    else:
        where = (
            f"in no channel yet: `oberon ramp {item['name']} {item['version']} --percent 10` "
            f"or `oberon promote {item['name']} {item['version']}`"
        )
    return f"oberon: {verb} {ident} ({item['digest']}): {where}"


def _channels(summary: Mapping[str, Any]) -> str:
    canary = summary.get("canary")
    text = f"{summary['name']}: stable {summary['stable']}"
    if canary:
        text += f", canary {canary['version']} at {canary['percent']} %"
    return text


def versions_table(record: Mapping[str, Any]) -> str:
    """`oberon versions NAME`: the versions with digest, who, when and channel; then the channel history."""
    canary = record.get("canary") or {}
    rows = [("version", "digest", "published by", "published at", "channel")]
    for item in record["versions"]:
        if item["version"] == record["stable"]:
            channel = "stable"
        elif item["version"] == canary.get("version"):
            channel = f"canary {canary['percent']} %"
        else:
            channel = ""
        rows.append((item["version"], item["digest"], item["published_by"], item["published_at"], channel))
    history = [("at", "by", "action", "version", "reason")]
    for change in record["history"]:
        version = change["version"] + (f" at {change['percent']} %" if change.get("percent") is not None else "")
        history.append((change["at"], change["actor"], change["action"], version, change["reason"]))
    lines = [f"{_channels(record)} (owner: {record['owner']})", "", *_table(rows), "", "history", *_table(history)]
    return "\n".join(lines)


def _table(rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(str(row[column])) for row in rows) for column in range(len(rows[0]))]
    return ["  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in rows]
