"""How a site's services are built and wired: all in one process (embedded) or one process each (split).

Either way the gateway is the entrance, and the same service builders are used. A service named
in the site file as `package.module:factory` runs here; one named by URL is called over the
network. Services are named `gateway`, `renderer`, `bff:<team>` and `backend:<name>`; in the
embedded topology each is reached through `httpx.ASGITransport`, in the split topology by URL.

Every service is observed under its name (`Observability.instrument`). Each process has two
listeners (`Listeners`): the public app, which answers 404 for every spelling of the internal
paths (`HideInternal`), and the internal admin app (`admin_app`): `/metrics` for the process, the
detailed health, and the admin routes of the services it runs (`Gateway.admin_routes()`,
`RendererApp.admin_routes()`). In the embedded topology one admin listener shows every service,
told apart by the `service` label; in the split topology each process has its own.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from urllib.parse import urlsplit

import jinja2
from starlette.applications import Starlette
from starlette.routing import BaseRoute, Mount
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.app import Gateway
from gateway.proxy import UpstreamPool
from gateway.table import RouteTable, default_table, load_table, stand_in_routes
from oberon.client.upstream import ClientSettings, Target, Upstreams
from oberon.dev.faults import Fault, FaultInjector, parse_faults
from oberon.dev.reload import Reloadable
from oberon.dev.tools import DevelopmentTools
from oberon.exceptions import ConfigError
from oberon.ops.admin_listener import HideInternal, admin_app, public_health
from oberon.ops.admission import AdaptiveLimit, Admission, StaleCopies
from oberon.ops.degradation import DegradationController
from oberon.ops.observability import Observability
from oberon.pipeline.assets import ASSET_PATH, AssetManifest, Assets
from oberon.pipeline.page import PageRenderer
from oberon.pipeline.page_cache import PageCache
from oberon.pipeline.registry import Registry
from oberon.pipeline.seo import SiteInfo
from oberon.registry.follower import Follower, Following
from oberon.runtime.settings import Settings
from oberon.site import ASSETS, GATEWAY, RENDERER, Site, import_target, is_url, service_names
from oberon.types import Cacheability, Mode
from oberon.web.asset_server import AssetServer, HostDispatch
from oberon.web.renderer import RendererApp

# In the embedded topology the BFFs share one client per backend: its breakers belong to them all.
SHARED_BFF_CLIENTS = "bffs"
Cleanup = Callable[[], Awaitable[None]]


@dataclass(frozen=True)
class Listeners:
    """What one process serves: the public app, and the internal admin app for its admin listener; `admission`,
    the public app's entrance limit, which the HTTP server applies before the app (`runtime/server.py`)."""

    public: ASGIApp
    admin: ASGIApp
    admission: Admission | None = None


class Closing:
    """An ASGI app that runs `cleanups` at lifespan shutdown (an in-process app's own lifespan never runs)."""

    def __init__(self, app: ASGIApp, *, cleanups: Sequence[Cleanup]) -> None:
        self.app = app
        self.cleanups = tuple(cleanups)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "lifespan":
            await self.app(scope, receive, send)
            return
        while True:
            message: Message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                for cleanup in self.cleanups:
                    await cleanup()
                await send({"type": "lifespan.shutdown.complete"})
                return


class Services:
    """Builds each service of a site; `urls` says where the services running elsewhere are."""

    def __init__(
        self,
        site: Site,
        settings: Settings,
        *,
        registry: Registry,
        environment: jinja2.Environment,
        urls: Mapping[str, str] | None = None,
        observability: Observability | None = None,
        stand_ins: bool = False,
        follower: Follower | None = None,
    ) -> None:
        self.site = site
        # The registry service the renderer follows (started: `registry` is its current one); None: `components/`.
        self.follower = follower
        # Whether this site runs its stand-in backends itself (`oberon up`), so the gateway routes to their admin.
        self.stand_ins = stand_ins
        self.settings = settings
        self.registry = registry
        self.environment = environment
        self.urls = dict(urls or {})
        self.observability = observability if observability is not None else Observability()
        self.client_settings = ClientSettings(timeout=settings.upstream_timeout, breaker=settings.breaker)
        self._upstreams: list[Upstreams] = []
        # One controller per process: it sees every downstream call this process makes.
        self.degradation = DegradationController(
            settings=settings.degradation,
            manual=settings.degraded,
            switch_file=settings.degradation_file,
            shared_file=settings.degradation_shared_file,  # the switch of every worker of `oberon up --workers N`
            open_breakers=lambda: sum(upstreams.open_breakers() for upstreams in self._upstreams),
        )
        try:
            self.faults = parse_faults(settings.faults, known=set(site.backends))
        except ValueError as exc:
            raise ConfigError(f"OBERON_FAULTS: {exc}") from None

    def url(self, service: str, declared: str) -> str:
        """Where a service runs elsewhere: its URL in the site file, or the one the topology gave."""
        if is_url(declared):
            return declared
        try:
            return self.urls[service]
        except KeyError:
            raise ConfigError(f"no URL for {service}: pass --upstream {service}=URL") from None

    def observed(self, app: ASGIApp, service: str) -> ASGIApp:
        """`app` timed, traced and logged as `service`."""
        return self.observability.instrument(app, service=service)

    def listeners(
        self,
        public: ASGIApp,
        *,
        service: str,
        admin_routes: Sequence[BaseRoute] = (),
        admission: Admission | None = None,
    ) -> Listeners:
        """`public` with the internal paths hidden, and the admin app: `/metrics` and the services' `admin_routes`;
        `admission`, the entrance within `public` (`entrance`), if it has one."""
        admin = admin_app(service=service, metrics=self.observability.metrics, routes=admin_routes)
        return Listeners(public=HideInternal(public), admin=admin, admission=admission)

    def entrance(self, app: ASGIApp, *, service: str) -> Admission:
        """`app` behind the process's adaptive concurrency limit: a request beyond it gets the last good copy of an
        anonymous public page this entrance answered (the renderer's pages), else a fast 503."""
        limit = AdaptiveLimit(settings=self.settings.admission)
        metrics = self.observability.metrics
        metrics.watch_admission(service, limit)
        return Admission(
            app,
            entrance=service,
            limit=limit,
            stale=StaleCopies(),
            # A stale copy answers for the page as degraded mode would: a CDN keeps it longer, off the process.
            stale_cache_control=self.settings.cache.cache_control(page=Cacheability.PUBLIC, mode=Mode.DEGRADED),
            observers=(metrics.shed_observer(service),),
        )

    def upstreams(self, targets: Mapping[str, Target], *, caller: str) -> Upstreams:
        """Clients of `targets` whose calls, caches and breakers show in the metrics of `caller`."""
        metrics = self.observability.metrics
        observers = [metrics.call_observer(caller), self.degradation.observe]
        upstreams = Upstreams.create(targets, settings=self.client_settings, observers=observers)
        metrics.watch_upstreams(caller, upstreams)
        self._upstreams.append(upstreams)
        return upstreams

    def backend(self, name: str) -> ASGIApp:
        """A stand-in backend, breakable at run time through its `/_faults` endpoint."""
        return FaultInjector(import_target(self.site.backends[name])(name), fault=self.faults.get(name, Fault()))

    def bff(self, name: str, backends: Upstreams) -> ASGIApp:
        app: ASGIApp = import_target(self.site.bffs[name])(backends)
        return app

    def assets(self) -> Assets:
        """The asset build pages reference, from the asset origin; AssetError when it lacks a component's file."""
        if self.follower is not None and self.follower.current is not None:
            manifest = self.follower.current.assets  # built for its registry (another worker may have built since)
        else:
            manifest = AssetManifest.load(self.settings.asset_build_dir)
        manifest.require(self.registry)
        return Assets(manifest, base_url=self.settings.gateway.asset_origin + ASSET_PATH)

    def asset_server(self) -> AssetServer:
        return AssetServer(folder=self.settings.asset_build_dir, allow_origins=[self.settings.site_url])

    def asset_host(self, app: ASGIApp) -> ASGIApp:
        """`app` with the asset origin's host name answered by the asset server (so that host never sees a cookie)."""
        origin = self.settings.gateway.asset_origin
        if not origin:
            return app
        host = urlsplit(origin).netloc
        assets = self.observed(self.asset_server(), ASSETS)
        return HostDispatch(app, assets=assets, hosts=[host], site_origin=self.settings.site_url)

    def renderer(self, bffs: Upstreams, assets: Assets) -> PageRenderer:
        metrics = self.observability.metrics
        stream_after_ms = self.settings.stream_after_ms
        renderer = PageRenderer(
            registry=self.registry,
            upstreams=bffs,
            environment=self.environment,
            policy=self.settings.cache,
            assets=assets,
            site=SiteInfo(url=self.settings.site_url),
            observers=[metrics.page_observer(RENDERER)],
            mode=lambda: self.degradation.mode,
            esi=self.settings.esi,
            page_cache=PageCache(max_seconds=self.settings.page_cache_seconds),
            stream_after=None if stream_after_ms is None else stream_after_ms / 1000,
        )
        metrics.watch_mode(RENDERER, renderer.mode)
        if self.follower is not None and self.follower.current is not None:
            self.follower.current.serve(renderer)  # every canary cohort of the revision it started from
        return renderer

    def renderer_app(self, renderer: PageRenderer, *, dev: bool = False) -> RendererApp:
        return RendererApp(
            renderer=renderer,
            asset_server=self.asset_server(),
            degradation=self.degradation,
            admin_token=self.settings.admin_token,
            dev=DevelopmentTools() if dev else None,
            name_loads=dev,
            health_details=self.registry_health if self.follower is not None else None,
        )

    def registry_health(self) -> dict[str, object]:
        """What the detailed health says of the registry service the renderer follows."""
        assert self.follower is not None
        return {"registry": self.follower.status.to_json(time.time())}

    def following(self, app: ASGIApp, renderer: PageRenderer) -> ASGIApp:
        """`app` with the follower's polling beside it (its lifespan), swapping each new revision into `renderer`."""
        if self.follower is None:
            return app
        return Following(app, follower=self.follower, renderer=renderer)

    def asset_service(self) -> ASGIApp:
        """The asset server on its own (production's asset origin), with the health endpoint its probes ask."""
        return Starlette(routes=[public_health(), Mount("/", self.asset_server())])

    def table(self, upstreams: Sequence[str], *, stand_ins: Sequence[str] = ()) -> RouteTable:
        """The site's routing table (a default one without), and `/_backends/<name>` to the `stand_ins` run here."""
        if self.site.gateway_routes is None:
            table = default_table(upstreams)
        else:
            table = load_table(self.site.gateway_routes, upstreams=upstreams)
        return table.adding(stand_in_routes(stand_ins))

    def stand_in_backends(self) -> list[str]:
        """The stand-in backends (`module:factory` in the site file) when this site runs them itself, else none."""
        if not self.stand_ins:
            return []
        return [f"backend:{name}" for name, target in self.site.backends.items() if not is_url(target)]

    def gateway(
        self, targets: Mapping[str, Target], *, on_shutdown: Sequence[Cleanup] = (), renderer_here: bool = False
    ) -> Gateway:
        """The gateway; `renderer_here`: in this process, so its health (which speaks for the process) tells of the
        registry the renderer follows."""
        return Gateway(
            table=self.table(list(targets), stand_ins=self.stand_in_backends()),
            upstreams=UpstreamPool.create(targets),
            # The public URL tells the gateway the browser's origin and scheme (TLS may end before it).
            settings=replace(self.settings.gateway, public_url=self.settings.public_url),
            admin_token=self.settings.admin_token,
            on_shutdown=on_shutdown,
            observers=[self.observability.metrics.call_observer(GATEWAY, cache=False)],  # it caches nothing
            health_details=self.registry_health if renderer_here and self.follower is not None else None,
        )

    def remote_backends(self, caller: str) -> Upstreams:
        targets: dict[str, Target] = {
            name: self.url(f"backend:{name}", target) for name, target in self.site.backends.items()
        }
        return self.upstreams(targets, caller=caller)

    def remote_bffs(self) -> Upstreams:
        targets: dict[str, Target] = {name: self.url(f"bff:{name}", target) for name, target in self.site.bffs.items()}
        return self.upstreams(targets, caller=RENDERER)

    def serve(self, service: str) -> Listeners:
        """One service of the split topology as its own app with its own admin app; the others by URL."""
        kind, _, name = service.partition(":")
        if kind == "backend" and name in self.site.backends and not is_url(self.site.backends[name]):
            return self.listeners(self.observed(self.backend(name), service), service=service)
        if kind == "bff" and name in self.site.bffs and not is_url(self.site.bffs[name]):
            backends = self.remote_backends(service)
            app = Closing(self.bff(name, backends), cleanups=[backends.aclose])
            return self.listeners(self.observed(app, service), service=service)
        if service == RENDERER:
            bffs = self.remote_bffs()
            renderer = self.renderer(bffs, self.assets())
            renderer_app = self.renderer_app(renderer)
            app = Closing(renderer_app.app(), cleanups=[bffs.aclose])
            admin_routes = renderer_app.admin_routes()
            entrance = self.entrance(self.observed(app, service), service=service)
            public = self.following(entrance, renderer)
            return self.listeners(public, service=service, admin_routes=admin_routes, admission=entrance)
        if service == GATEWAY:
            targets: dict[str, Target] = {
                other: self.url(other, "") for other in service_names(self.site) if other != GATEWAY
            }
            targets.update({f"bff:{n}": t for n, t in self.site.bffs.items() if is_url(t)})
            targets.update({f"backend:{n}": t for n, t in self.site.backends.items() if is_url(t)})
            gateway = self.gateway(targets)
            public = self.asset_host(self.observed(gateway.app(), GATEWAY))
            entrance = self.entrance(public, service=GATEWAY)
            return self.listeners(entrance, service=GATEWAY, admin_routes=gateway.admin_routes(), admission=entrance)
        if service == ASSETS:
            return self.listeners(self.observed(self.asset_service(), ASSETS), service=ASSETS)
        known = ", ".join([*service_names(self.site), ASSETS])
        raise ConfigError(f"unknown service {service!r}; this site runs {known}")


@dataclass(frozen=True)
class Embedded:
    """Every service of a site in this process, behind the gateway: one public app, one admin app."""

    app: ASGIApp
    admin: ASGIApp
    admission: Admission  # the entrance's limit, within `app`
    renderer: PageRenderer
    backends: Mapping[str, ASGIApp]
    bffs: Mapping[str, ASGIApp]
    # The in-process BFFs as built from their factories, rebuilt when their code changes (`oberon up --dev`).
    reloadable: Mapping[str, Reloadable] = field(default_factory=dict)


def build_embedded(
    site: Site,
    settings: Settings,
    *,
    registry: Registry,
    environment: jinja2.Environment,
    observability: Observability | None = None,
    dev: bool = False,
    follower: Follower | None = None,
) -> Embedded:
    """Backends (with `OBERON_FAULTS` applied), BFFs over them, the renderer over the BFFs, the gateway in front;
    with a `follower`, the renderer follows the registry service."""
    services = Services(
        site,
        settings,
        registry=registry,
        environment=environment,
        observability=observability,
        stand_ins=True,
        follower=follower,
    )
    backends = {
        name: services.observed(services.backend(name), f"backend:{name}")
        for name, target in site.backends.items()
        if not is_url(target)
    }
    backend_upstreams = services.upstreams(_targets(site.backends, backends), caller=SHARED_BFF_CLIENTS)
    reloadable = {
        name: Reloadable(partial(services.bff, name, backend_upstreams))
        for name, target in site.bffs.items()
        if not is_url(target)
    }
    bffs = {name: services.observed(app, f"bff:{name}") for name, app in reloadable.items()}
    bff_upstreams = services.upstreams(_targets(site.bffs, bffs), caller=RENDERER)
    assets = services.assets()
    renderer = services.renderer(bff_upstreams, assets)
    renderer_app = services.renderer_app(renderer, dev=dev)
    targets: dict[str, Target] = {RENDERER: services.observed(renderer_app.app(), RENDERER)}
    targets.update({f"bff:{name}": target for name, target in _targets(site.bffs, bffs).items()})
    targets.update({f"backend:{name}": target for name, target in _targets(site.backends, backends).items()})
    gateway = services.gateway(
        targets, on_shutdown=[bff_upstreams.aclose, backend_upstreams.aclose], renderer_here=True
    )
    # The gateway's entrance is the process's: one limit for all it runs, and the renderer's pages as stale copies.
    entrance = services.entrance(services.asset_host(services.observed(gateway.app(), GATEWAY)), service=GATEWAY)
    public = services.following(entrance, renderer)
    # The gateway's health (it probes every other service) speaks for the process; the renderer adds the rest.
    listeners = services.listeners(
        public,
        service=GATEWAY,
        admin_routes=[*gateway.admin_routes(), *renderer_app.admin_routes()],
    )
    return Embedded(
        app=listeners.public,
        admin=listeners.admin,
        admission=entrance,
        renderer=renderer,
        backends=backends,
        bffs=bffs,
        reloadable=reloadable,
    )


def _targets(declared: Mapping[str, str], in_process: Mapping[str, ASGIApp]) -> dict[str, Target]:
    return {name: in_process.get(name, target) for name, target in declared.items()}
