"""The `oberon` command: `oberon check` validates the registry, `oberon build` builds the assets,
`oberon up` builds them and runs the site. The registry service's commands (`oberon registry serve`,
`publish`, `ramp`, `promote`, `rollback`, `versions`) live in `registry_commands`.

`oberon serve SERVICE` is internal: it runs one service of the split topology, as `oberon up --split`
starts it, or (`embedded --fd N`) one worker of `oberon up --workers N` on the socket its supervisor bound.

Every service process listens twice, two uvicorn servers in one event loop: the public port, and
the internal admin listener (`--admin-host`, loopback by default; `--admin-port`, by default the
public port + 1) with `/metrics`, the detailed health, the registry and the degradation switch.
The admin server has its own connections and its own loop turns: it is never queued behind pages.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import ipaddress
import logging
import os
import shutil
import signal
import socket
import sys
import tempfile
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Literal

import uvicorn
from jinja2 import Environment
from starlette.types import ASGIApp

from oberon import logs
from oberon.dev.reload import DevServer, Reloader
from oberon.exceptions import AssetError, ConfigError, RegistryError
from oberon.ops.degradation import DegradationController
from oberon.ops.metrics import MULTIPROC_ENV
from oberon.ops.observability import Observability, write_scrape_targets
from oberon.pipeline.assets import ASSET_PATH, build_assets
from oberon.pipeline.registry import Registry, load_registry
from oberon.pipeline.rendering import create_environment
from oberon.runtime import registry_commands, scaffold
from oberon.runtime.cdn import Varnish
from oberon.runtime.following import describe as describe_follower
from oberon.runtime.following import start_follower
from oberon.runtime.server import entrance_protocol
from oberon.runtime.settings import SCRAPE_TARGETS, SECRETS, Settings, secrets_for
from oberon.runtime.supervisor import LOOPBACK, ChildSpec, Supervisor, free_port, serve_command, watch_parent
from oberon.runtime.topology import Embedded, Listeners, Services, build_embedded
from oberon.runtime.workers import Workers, machine_admin, serving_in_thread
from oberon.site import GATEWAY, RENDERER, Site, service_names

logger = logging.getLogger("oberon.cli")  # the name operators' log filters know

# Where `oberon up` writes the admin listeners' addresses for Prometheus (beside the site file).
EMBEDDED = "embedded"  # `oberon serve embedded`: the whole site in one process, a worker of `oberon up --workers N`
SOCKET_BACKLOG = 2048  # connections the entrance queues for the workers (uvicorn's default)
START_TIMEOUT = 60.0  # for every worker to answer on its admin listener
# A young collection runs when the tracked objects alive since the last one outnumber this (CPython counts
# allocations less frees). Pages in flight keep thousands alive each: at 10,000, 64 of them set off a 2 ms
# collection every ~30 pages that freed nothing; at 100,000 steady load sets off none (`bench/page_cpu.py --gc`).
GC_YOUNG_THRESHOLD = 100_000


@dataclass(frozen=True)
class Loaded:
    """What every command but `new` starts from: the settings, the site file and its registry."""

    settings: Settings
    site: Site
    environment: Environment
    registry: Registry


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    """Entry point of the console script: parse the arguments, load the site and run the command; the exit status."""
    args = parser().parse_args(argv)
    environ = os.environ if environ is None else environ
    try:
        settings = Settings.from_environ(environ)
        if args.site:
            settings = replace(settings, site_file=args.site)
        if args.command == "new":
            return scaffold.main(args, settings.site_file)
        if args.command in registry_commands.COMMANDS:  # they never load the site's components
            return registry_commands.main(args, settings)
        if getattr(args, "registry", None):
            settings = replace(settings, registry_url=args.registry)
        site = Site.load(settings.site_file)
        environment = create_environment()
        if args.command in ("up", "serve") and settings.registry_url:
            # The renderer's components come from the registry service (`start_follower`); the others render none.
            registry = Registry(())
            # Its canaries need a bucket per visitor: the gateway gives new visitors one (gateway/visitor.py).
            settings = replace(settings, gateway=replace(settings.gateway, visitor_cookie=True))
        else:
            registry = load_registry(site.components, environment=environment)
    except ConfigError as exc:
        print(f"oberon: {exc}", file=sys.stderr)
        return 2
    except RegistryError as exc:
        print(f"oberon: the registry has {len(exc.errors)} error(s):", file=sys.stderr)
        for error in exc.errors:
            print(f"  {error}", file=sys.stderr)
        return 1

    loaded = Loaded(settings=settings, site=site, environment=environment, registry=registry)
    if args.command == "check":
        return check(loaded)
    if args.command == "build":
        return build(loaded)
    if args.command == "up":
        return up(args, loaded, environ)
    return serve(args, loaded, environ)


def parser() -> argparse.ArgumentParser:
    """The `oberon` command line: `check`, `build`, `up`, `serve` and `new`, with their options."""
    parser = argparse.ArgumentParser(prog="oberon", description="Oberon micro-frontend rendering platform.")
    parser.add_argument("--site", type=Path, help="the site file (default: oberon.toml, or OBERON_SITE_FILE)")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("check", help="validate every component of the registry")
    commands.add_parser("build", help="minify, content-hash and compress every component's JS and CSS")
    up = commands.add_parser("up", help="run the site behind its gateway: renderer, BFFs and stand-in backends")
    up.add_argument("--host", help="interface the entrance binds (default 127.0.0.1)")
    up.add_argument("--port", type=int, help="port of the browser's entrance, the gateway (default 8000)")
    _admin_arguments(up, port="the entrance's port + 1")
    up.add_argument("--split", action="store_true", help="each service its own process on its own loopback port")
    up.add_argument(
        "--dev",
        action="store_true",
        help="development mode: live reload of components and BFF code, the gallery, ?oberon-debug=1",
    )
    up.add_argument("--cdn", action="store_true", help="put Varnish (infra/cdn) in front, on --port; ESI islands on")
    up.add_argument(
        "--workers",
        type=int,
        help="worker processes on the one port, each the whole site (default OBERON_WORKERS, else one per CPU; "
        "more than one needs OBERON_SESSION_STORE)",
    )
    _registry_argument(up)
    serve = commands.add_parser("serve", help="(internal) run one service of the split topology")
    serve.add_argument("service", help="gateway, renderer, bff:<team>, backend:<name> or assets")
    serve.add_argument("--host", default=LOOPBACK)
    serve.add_argument("--port", type=int, required=True)
    _admin_arguments(serve, port="--port + 1")
    serve.add_argument("--upstream", action="append", default=[], metavar="NAME=URL", help="where a service runs")
    serve.add_argument("--parent-pid", type=int, help="stop when this process (the supervisor) is gone")
    serve.add_argument("--stand-ins", action="store_true", help="the gateway routes /_backends/<name> to the stand-ins")
    serve.add_argument("--fd", type=int, help="serve `embedded` on this inherited listening socket (a worker)")
    serve.add_argument("--degradation-shared", type=Path, help="the degradation switch the machine's workers share")
    _registry_argument(serve)
    scaffold.add_commands(commands)
    registry_commands.add_commands(commands)
    return parser


def _admin_arguments(command: argparse.ArgumentParser, *, port: str) -> None:
    command.add_argument(
        "--admin-host", help="interface of the internal admin listener (default 127.0.0.1, or OBERON_ADMIN_HOST)"
    )
    command.add_argument(
        "--admin-port",
        type=int,
        help=f"port of the internal admin listener: /metrics, health, registry, degradation (default {port})",
    )


def _registry_argument(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--registry",
        metavar="URL",
        help="follow this registry service instead of the components/ folders (default OBERON_REGISTRY_URL; "
        "token from OBERON_REGISTRY_TOKEN)",
    )


def _with_admin(settings: Settings, args: argparse.Namespace) -> Settings:
    """The admin listener's address fixed from the arguments and the public port, before anything moves that."""
    admin_host = args.admin_host or settings.admin_host
    admin_port = args.admin_port if args.admin_port is not None else settings.admin_listener_port
    if args.admin_port is None and settings.admin_port is None and _busy(admin_host, admin_port):
        # Only the default (the public port + 1) gives way; a port asked for is refused when busy, below.
        chosen = free_port(taken={settings.port})
        print(f"oberon: the admin port {admin_port} is busy; the admin listener takes {chosen}", flush=True)
        admin_port = chosen
    settings = replace(settings, admin_host=admin_host, admin_port=admin_port)
    if not 0 < admin_port < 65536 or admin_port == settings.port:
        raise ConfigError(f"the admin listener needs a port of its own, not {admin_port}: choose one with --admin-port")
    return settings


def check(loaded: Loaded) -> int:
    """`oberon check`: the registry loaded, so every component is valid."""
    print(f"oberon: {_summary(loaded.registry)}: OK")
    return 0


def build(loaded: Loaded) -> int:
    """`oberon build`: every component's JS and CSS, minified, content-hashed and compressed."""
    settings = loaded.settings
    try:
        built = build_assets(loaded.registry, settings.asset_build_dir)
    except AssetError as exc:
        print(f"oberon: {exc}", file=sys.stderr)
        return 1
    print(f"oberon: built {len(built.assets)} assets into {settings.asset_build_dir}", flush=True)
    return 0


def up(args: argparse.Namespace, loaded: Loaded, environ: Mapping[str, str]) -> int:
    """`oberon up`: build the assets, then run the site in one process, or each service in its own (`--split`).

    Following a registry service, each process that renders builds the assets of what it follows instead.
    """
    following = bool(loaded.settings.registry_url)
    status = 0 if following else build(loaded)
    if status:
        return status
    site = loaded.site
    settings = replace(loaded.settings, host=args.host or loaded.settings.host, port=args.port or loaded.settings.port)
    try:
        settings = _with_admin(settings, args)
        _refuse_unknown_log_format(settings)
        observability = Observability.from_environ(environ, name="oberon", traces=settings.traces_exporter)
        cdn: contextlib.AbstractContextManager[object] = contextlib.nullcontext()
        entrance = (settings.host, settings.port)
        _import_from(site)
        settings = _with_asset_origin(settings)
        # Judged at the entrance the browser reaches: `--cdn` then moves the gateway to loopback behind Varnish.
        _refuse_insecure_secret(settings)
        if args.cdn:
            settings, cdn = _behind_cdn(settings)
        workers = _workers(args, settings)
        if following and args.dev:
            raise ConfigError("--dev reloads the components/ folders; it does not follow a registry: drop one of them")
        if following and not settings.registry_token:
            raise ConfigError(
                f"OBERON_REGISTRY_TOKEN is not set: a renderer needs a token to read {settings.registry_url}"
            )
        if args.split:
            if args.dev:
                raise ConfigError("--dev rebuilds assets in the embedded topology only; drop --split or --dev")
            _refuse_busy_port(*entrance)
            _refuse_busy_port(settings.admin_host, settings.admin_listener_port, option="--admin-port")
            with cdn:
                return _up_split(site, settings, environ)
        if workers > 1:
            _refuse_busy_port(*entrance)
            _refuse_busy_port(settings.admin_host, settings.admin_listener_port, option="--admin-port")
            if following:
                print(f"oberon: registry  {settings.registry_url}, followed by each worker", flush=True)
            else:
                print(f"oberon: {_summary(loaded.registry)}", flush=True)
            _print_entrance(settings, dev=False)
            _print_admin(settings)
            _write_targets(settings, {"embedded": f"{settings.admin_host}:{settings.admin_listener_port}"})
            with cdn:
                return _up_workers(settings, environ, count=workers)
        follower = start_follower(settings, loaded.environment, observability)
        registry = follower.current.registry if follower is not None and follower.current else loaded.registry
        embedded = build_embedded(
            site,
            settings,
            registry=registry,
            environment=loaded.environment,
            observability=observability,
            dev=args.dev,
            follower=follower,
        )
        _refuse_busy_port(*entrance)  # last, so every other problem is reported first
        _refuse_busy_port(settings.admin_host, settings.admin_listener_port, option="--admin-port")
    except (ConfigError, AssetError) as exc:
        print(f"oberon: {exc}", file=sys.stderr)
        return 2

    base = settings.site_url
    print(f"oberon: {_summary(registry)}", flush=True)
    if follower is not None:
        print(f"oberon: registry  {describe_follower(follower)}", flush=True)
    if args.cdn:
        print(
            f"oberon: cdn       {base}/  (Varnish, infra/cdn/oberon.vcl) → gateway on port {settings.port}", flush=True
        )
    _print_entrance(settings, dev=args.dev)
    _print_admin(settings)
    _write_targets(settings, {"embedded": f"{settings.admin_host}:{settings.admin_listener_port}"})
    print(f"oberon: assets    {settings.gateway.asset_origin or base}{ASSET_PATH}", flush=True)
    for name in embedded.bffs:
        print(f"oberon: bff       {base}/bff/{name}/", flush=True)
    for name in embedded.backends:
        print(f"oberon: backend   {base}/_backends/{name}/  (faults: {base}/_backends/{name}/_faults)", flush=True)
    app = embedded.app
    if args.dev:
        app = _dev_server(app, embedded, site, settings, loaded.environment)
    # In development the live reload's long poll (around the entrance) must not hold a place: there the
    # middleware alone sheds, after it.
    admission = None if args.dev else embedded.admission
    with cdn:
        listeners = Listeners(public=app, admin=embedded.admin, admission=admission)
        return _run(listeners, settings, observability, host=settings.host)


def serve(args: argparse.Namespace, loaded: Loaded, environ: Mapping[str, str]) -> int:
    """`oberon serve SERVICE` (internal): one service of the split topology, as `oberon up --split` starts it."""
    settings = replace(loaded.settings, host=args.host or loaded.settings.host, port=args.port or loaded.settings.port)
    try:
        settings = _with_admin(settings, args)
        _refuse_unknown_log_format(settings)
        observability = Observability.from_environ(environ, name=args.service, traces=settings.traces_exporter)
        entrance = (args.host, settings.port)
        _import_from(loaded.site)
        if args.service in (GATEWAY, EMBEDDED):
            _refuse_insecure_secret(settings)
        if args.degradation_shared is not None:
            settings = replace(settings, degradation_shared_file=args.degradation_shared)
        urls = dict(_pair(value) for value in args.upstream)
        follower = None
        if args.service in (RENDERER, EMBEDDED):
            follower = start_follower(settings, loaded.environment, observability)
        registry = follower.current.registry if follower is not None and follower.current else loaded.registry
        services = Services(
            loaded.site,
            settings,
            registry=registry,
            environment=loaded.environment,
            urls=urls,
            observability=observability,
            stand_ins=args.stand_ins,
            follower=follower,
        )
        if args.service == EMBEDDED:
            embedded = build_embedded(
                loaded.site,
                settings,
                registry=registry,
                environment=loaded.environment,
                observability=observability,
                follower=follower,
            )
            listeners = Listeners(public=embedded.app, admin=embedded.admin, admission=embedded.admission)
        else:
            listeners = services.serve(args.service)
        if args.fd is None:
            _refuse_busy_port(*entrance)  # last, so every other problem is reported first
        _refuse_busy_port(settings.admin_host, settings.admin_listener_port, option="--admin-port")
    except (ConfigError, AssetError) as exc:
        print(f"oberon: {exc}", file=sys.stderr)
        return 2

    if follower is not None:
        print(f"oberon: {args.service} {_summary(registry)}; registry {describe_follower(follower)}", flush=True)
    if args.parent_pid:
        watch_parent(args.parent_pid)
    sockets = [socket.socket(fileno=args.fd)] if args.fd is not None else None
    return _run(listeners, settings, observability, host=args.host, sockets=sockets)


def _with_asset_origin(settings: Settings) -> Settings:
    """Serve assets from the other loopback host name unless OBERON_ASSET_ORIGIN says where.

    Cookies are per host name, not per port: pages on `127.0.0.1:PORT` and assets on
    `localhost:PORT` keep apart as two domains would. Other hosts need OBERON_ASSET_ORIGIN
    (without it, pages load their assets from their own origin).
    """
    if settings.gateway.asset_origin:
        return settings
    other = {"127.0.0.1": "localhost", "localhost": "127.0.0.1"}.get(settings.host)
    if other is None:
        return settings
    return replace(settings, gateway=replace(settings.gateway, asset_origin=f"http://{other}:{settings.port}"))


def _behind_cdn(settings: Settings) -> tuple[Settings, contextlib.AbstractContextManager[Varnish]]:
    """Varnish takes the entrance port; the gateway moves to a free loopback port behind it, with ESI islands on."""
    gateway = free_port(taken={settings.port, settings.admin_listener_port})
    varnish = Varnish(port=settings.port, host=settings.host, origin_port=gateway)
    behind = replace(settings, port=gateway, host=LOOPBACK, public_url=settings.site_url, esi=True)
    if not behind.gateway.trusted_proxies:
        # Varnish on this host is the gateway's only caller: its X-Forwarded-For/-Proto (the VCL's) are believed.
        behind = replace(behind, gateway=replace(behind.gateway, trusted_proxies=(LOOPBACK, "::1")))
    return behind, _started(varnish)


@contextlib.contextmanager
def _started(varnish: Varnish) -> Iterator[Varnish]:
    """Varnish runs for the block and is stopped (by its PID) after it, however the block ends."""
    varnish.start()
    try:
        yield varnish
    finally:
        varnish.stop()


def _print_entrance(settings: Settings, *, dev: bool) -> None:
    """The URLs a developer opens first."""
    base = settings.site_url
    print(f"oberon: site      {base}/   (sign in: {base}/auth/sign-in)", flush=True)
    if dev:
        print(f"oberon: gallery   {base}/_oberon/gallery   (and ?oberon-debug=1 on any page)", flush=True)
    print(f"oberon: health    {base}/_oberon/health   (ok or not, for load balancers)", flush=True)


def _print_admin(settings: Settings) -> None:
    """The internal admin listener: never the public entrance."""
    admin = f"http://{settings.admin_host}:{settings.admin_listener_port}"
    print(f"oberon: admin     {admin}/   (internal: health of every upstream, registry, degradation)", flush=True)
    print(f"oberon: metrics   {admin}/metrics", flush=True)


def _dev_server(app: ASGIApp, embedded: Embedded, site: Site, settings: Settings, environment: Environment) -> ASGIApp:
    """`oberon up --dev`: the site reloaded as its components and in-process BFFs change."""
    reloader = Reloader(
        renderer=embedded.renderer,
        build_dir=settings.asset_build_dir,
        roots=site.components,
        environment=environment,
        bffs={name: (app, site.bffs[name]) for name, app in embedded.reloadable.items()},
    )
    watched = ", ".join(str(folder) for folder in reloader.watched())
    print(f"oberon: dev       live reload of {watched}", flush=True)
    return DevServer(app, reloader=reloader)


def _refuse_busy_port(host: str, port: int, *, option: str = "--port") -> None:
    """A clear error, before anything starts, when another process already listens on the port."""
    busy = _busy(host, port)
    if busy is not None:
        raise ConfigError(
            f"cannot listen on {host}:{port}: {busy.strerror or busy} (another `oberon up`?); "
            f"stop it or choose another port with {option}"
        )


def _busy(host: str, port: int) -> OSError | None:
    """Why `port` cannot be listened on (another process has it), or None when it can."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds: TIME_WAIT is no obstacle
        try:
            probe.bind((host, port))
        except OSError as exc:
            return exc
    return None


def _import_from(site: Site) -> None:
    """The site's own packages (its BFFs, named `package.module:factory`) import from the site's folder first,
    as uvicorn's `--app-dir` does, whichever directory `oberon` runs from."""
    folder = str(site.file.parent.resolve())
    if folder not in sys.path:
        sys.path.insert(0, folder)


def _up_split(site: Site, settings: Settings, environ: Mapping[str, str]) -> int:
    """Every service its own process: internal ones on free loopback ports, the gateway on the entrance.

    The gateway's admin listener is on the admin port `oberon up` was given (or the entrance's + 1);
    every other child gets a free one.
    """
    _print_entrance(settings, dev=False)
    names = service_names(site)
    ports = {GATEWAY: settings.port}
    admin_ports = {GATEWAY: settings.admin_listener_port}
    for name in names:
        if name != GATEWAY:
            # Never the entrance's port, nor one given out already (the OS may hand a just-closed port back).
            ports[name] = free_port(taken={*ports.values(), *admin_ports.values()})
            admin_ports[name] = free_port(taken={*ports.values(), *admin_ports.values()})
    hosts = {name: settings.host if name == GATEWAY else LOOPBACK for name in names}
    urls = {name: f"http://{LOOPBACK}:{ports[name]}" for name in names if name != GATEWAY}
    site_file = settings.site_file.resolve()
    children = [
        ChildSpec(
            name=name,
            host=hosts[name],
            port=ports[name],
            admin_host=settings.admin_host,
            admin_port=admin_ports[name],
            withheld=frozenset(SECRETS) - secrets_for(name),  # a renderer or BFF never holds the session secret
            argv=serve_command(
                name,
                port=ports[name],
                host=hosts[name],
                admin_port=admin_ports[name],
                admin_host=settings.admin_host,
                site=site_file,
                upstreams=urls,
                parent_pid=os.getpid(),
                stand_ins=name == GATEWAY,  # this supervisor runs the stand-ins
            ),
        )
        for name in names
    ]
    _write_targets(settings, {name: f"{settings.admin_host}:{admin_ports[name]}" for name in names})
    # The children read the asset origin, the public URL and the build the parent made from here.
    # Each child is one process: a multiprocess metrics directory would merge every service's series into each.
    environ = {
        **{name: value for name, value in environ.items() if name != MULTIPROC_ENV},
        "OBERON_ASSET_ORIGIN": settings.gateway.asset_origin,
        "OBERON_PUBLIC_URL": settings.site_url,
        "OBERON_BUILD_DIR": str(settings.asset_build_dir.resolve()),
        "OBERON_ESI": "true" if settings.esi else "false",
        "OBERON_TRUSTED_PROXIES": " ".join(settings.gateway.trusted_proxies),
        **_registry_environ(settings),
    }
    return Supervisor(children, essential=GATEWAY, environ=environ).run()


def _registry_environ(settings: Settings) -> dict[str, str]:
    """What a child needs to follow the registry `oberon up` was pointed at (`--registry`), sharing one disk copy."""
    if not settings.registry_url:
        return {}
    return {
        "OBERON_REGISTRY_URL": settings.registry_url,
        "OBERON_REGISTRY_CACHE_DIR": str(settings.registry_cache.resolve()),
    }


def _workers(args: argparse.Namespace, settings: Settings) -> int:
    """How many worker processes `oberon up` runs: `--workers`, else OBERON_WORKERS, else one per CPU.

    More than one needs a shared session store: sessions and sign-in failures kept in a worker's memory
    would be seen by that worker only (a user signed in on one would be signed out on the next).
    `--split` and `--dev` run one (a process per service; one process that reloads).
    """
    given = args.workers if args.workers is not None else settings.workers
    if given < 0:
        raise ConfigError(f"--workers must be 1 or more (0: one per CPU), got {given}")
    if args.split or args.dev:
        if args.workers is not None and args.workers > 1:
            raise ConfigError("--workers runs the embedded topology; drop --split or --dev, or use --workers 1")
        return 1
    if given == 0:
        cpus = _cpus()
        if cpus > 1 and not settings.gateway.session_store:
            print(f"oberon: workers   1 ({cpus}, one per CPU, need OBERON_SESSION_STORE: sessions shared between them)")
            return 1
        return cpus
    if given > 1 and not settings.gateway.session_store:
        raise ConfigError(
            f"--workers {given} needs OBERON_SESSION_STORE=redis://…: each worker would keep its own sessions "
            "and sign-in failures; set it, or run --workers 1"
        )
    return given


def _cpus() -> int:
    """The CPUs this process may run on (its affinity: `taskset`, a container's cpuset), else all of them."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _up_workers(settings: Settings, environ: Mapping[str, str], *, count: int) -> int:
    """`count` workers on the entrance, each the embedded site, under a supervisor that restarts a dead one and
    serves the machine's admin listener."""
    # The entrance, bound once here; every worker accepts from it (inherited), and a dead one's queue stays.
    family = socket.AF_INET6 if ":" in settings.host else socket.AF_INET
    entrance = socket.create_server((settings.host, settings.port), family=family, backlog=SOCKET_BACKLOG)
    entrance.set_inheritable(True)
    runtime = Path(tempfile.mkdtemp(prefix="oberon-workers-"))
    given_metrics = environ.get(MULTIPROC_ENV)
    metrics_dir = Path(given_metrics) if given_metrics else runtime / "metrics"
    metrics_dir.mkdir(parents=True, exist_ok=True)
    shared = runtime / "degradation.json"
    site_file = settings.site_file.resolve()

    def command(index: int, admin_port: int) -> tuple[str, ...]:
        argv = [sys.executable, "-m", "oberon", "--site", str(site_file), "serve", EMBEDDED]
        argv += ["--host", settings.host, "--port", str(settings.port), "--fd", str(entrance.fileno())]
        argv += ["--admin-host", LOOPBACK, "--admin-port", str(admin_port)]
        argv += ["--degradation-shared", str(shared), "--parent-pid", str(os.getpid())]
        return tuple(argv)

    children_environ = {
        **environ,
        MULTIPROC_ENV: str(metrics_dir),
        "OBERON_ASSET_ORIGIN": settings.gateway.asset_origin,
        "OBERON_PUBLIC_URL": settings.site_url,
        "OBERON_BUILD_DIR": str(settings.asset_build_dir.resolve()),
        "OBERON_ESI": "true" if settings.esi else "false",
        "OBERON_TRUSTED_PROXIES": " ".join(settings.gateway.trusted_proxies),
        **_registry_environ(settings),
    }
    workers = Workers(
        count=count, command=command, environ=children_environ, pass_fds=[entrance.fileno()], metrics_dir=metrics_dir
    )
    degradation = DegradationController(
        settings=settings.degradation, switch_file=settings.degradation_file, shared_file=shared
    )
    admin = machine_admin(workers, metrics_dir=metrics_dir, degradation=degradation, admin_token=settings.admin_token)
    server = uvicorn.Server(
        _config(
            admin,
            host=settings.admin_host,
            port=settings.admin_listener_port,
            lifespan="off",
            http=entrance_protocol(
                header_timeout=settings.header_timeout, max_header_bytes=settings.gateway.max_header_bytes
            ),
        )
    )
    logs.configure(settings.log_format or None)
    stopping = threading.Event()

    def handle(signum: int, frame: object) -> None:
        stopping.set()

    previous = {signum: signal.signal(signum, handle) for signum in (signal.SIGINT, signal.SIGTERM)}
    print(f"oberon: workers   {count} processes on {settings.site_url}, metrics merged from {metrics_dir}", flush=True)
    try:
        with serving_in_thread(server):
            workers.start()
            if not workers.wait_ready(timeout=START_TIMEOUT, stopping=stopping):
                return 0 if stopping.is_set() else 1
            print(f"oberon: all {count} workers are up; entrance {settings.site_url}", flush=True)
            workers.watch(stopping)
            return 0
    finally:
        workers.stop()
        entrance.close()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        shutil.rmtree(runtime, ignore_errors=True)


def _write_targets(settings: Settings, addresses: Mapping[str, str]) -> None:
    """Where Prometheus scrapes this site: the admin listeners, by service (file-based service discovery)."""
    targets = settings.site_file.parent / SCRAPE_TARGETS
    write_scrape_targets(targets, addresses)
    print(f"oberon: prometheus targets in {targets} (infra/monitoring/prometheus.yml reads them)", flush=True)


def _run(
    listeners: Listeners,
    settings: Settings,
    observability: Observability,
    *,
    host: str,
    sockets: list[socket.socket] | None = None,
) -> int:
    logs.configure(settings.log_format or None)
    # The entrance's limits: a deadline and a size for each request's headers, a number of connections, the
    # admission limit, shed before the app (the admin listener keeps the deadline, and its own connections: it is
    # never queued behind pages nor shed).
    limits = partial(
        entrance_protocol, header_timeout=settings.header_timeout, max_header_bytes=settings.gateway.max_header_bytes
    )
    public = _config(
        listeners.public,
        host=host,
        port=settings.port,
        lifespan="on",
        http=limits(admission=listeners.admission),
        limit_concurrency=settings.max_connections,
    )
    server = uvicorn.Server(public)
    admin = _Companion(
        _config(
            listeners.admin,
            host=settings.admin_host,
            port=settings.admin_listener_port,
            lifespan="off",
            http=limits(),
        )
    )
    # What was built at start lives as long as the process: keep the collector from scanning it again
    # and again, and collect the young generation less often (a page allocates thousands of objects).
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_YOUNG_THRESHOLD, *gc.get_threshold()[1:])
    # uvicorn re-raises the signal it stopped on; with the default SIGTERM action that would end the
    # process before the `finally` blocks that stop what we started (Varnish with --cdn) could run.
    signal.signal(signal.SIGTERM, _exit)
    try:
        with asyncio.Runner(loop_factory=server.config.get_loop_factory()) as runner:
            runner.run(_serve_both(server, admin, sockets=sockets))
    except SystemExit:
        pass
    finally:
        observability.shutdown()
    return 0 if server.started and admin.started else 1


def _config(
    app: ASGIApp,
    *,
    host: str,
    port: int,
    lifespan: Literal["on", "off"],
    http: type[asyncio.Protocol],
    limit_concurrency: int | None = None,
) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        lifespan=lifespan,
        http=http,
        limit_concurrency=limit_concurrency,
        log_config=None,
        access_log=False,  # every service logs its own line per request (oberon.access), with the request id
        # X-Forwarded-* is the gateway's to judge (OBERON_TRUSTED_PROXIES), not uvicorn's.
        proxy_headers=False,
        server_header=False,
    )


class _Companion(uvicorn.Server):
    """The admin listener's server: it leaves signals to the public server and stops when that one stops."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


async def _serve_both(
    public: uvicorn.Server, admin: uvicorn.Server, *, sockets: list[socket.socket] | None = None
) -> None:
    """The admin server first (a process whose internals cannot be watched should not take traffic), then the
    public one, which owns the signals; when it stops, the admin server follows."""
    admin_serving = asyncio.create_task(admin.serve())
    while not admin.started and not admin_serving.done():
        await asyncio.sleep(0.01)
    if admin_serving.done():
        await admin_serving  # it could not start: uvicorn has said why
        return
    try:
        await public.serve(sockets=sockets)  # `sockets`: a worker's, inherited from its supervisor
    finally:
        admin.should_exit = True
        await admin_serving


def _exit(signum: int, frame: object) -> None:
    raise SystemExit(0)


def _refuse_unknown_log_format(settings: Settings) -> None:
    if settings.log_format not in ("", *logs.FORMATS):
        raise ConfigError(f"OBERON_LOG_FORMAT must be one of {', '.join(logs.FORMATS)}")


def _refuse_insecure_secret(settings: Settings) -> None:
    """The demo's published session secret is for loopback only."""
    if not settings.gateway.insecure_secret:
        return
    try:
        loopback = ipaddress.ip_address(settings.host).is_loopback
    except ValueError:
        loopback = settings.host == "localhost"
    if not loopback:
        raise ConfigError(f"set OBERON_SESSION_SECRET before serving on {settings.host}: the default is public")
    logger.warning("OBERON_SESSION_SECRET is not set: sessions use the demo's insecure default secret")


def _pair(value: str) -> tuple[str, str]:
    name, equals, url = value.partition("=")
    if not equals or not name or not url.startswith(("http://", "https://")):
        raise ConfigError(f"--upstream expects NAME=URL, got {value!r}")
    return name, url


def _summary(registry: Registry) -> str:
    apps = len(registry.apps())
    return f"{len(registry)} components ({apps} apps, {len(registry.names()) - apps} others)"


if __name__ == "__main__":
    sys.exit(main())
