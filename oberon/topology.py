"""The embedded topology: renderer, team BFFs and backends in one process, on one port.

Services named in the site file as `package.module:factory` run in this process and are
called through `httpx.ASGITransport`; services named by URL are called over the network.
Either way the callers use the same `Upstreams`.
"""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import jinja2
from starlette.applications import Starlette
from starlette.routing import Mount
from starlette.types import ASGIApp

from oberon.app import RendererApp, asset_url
from oberon.client import ClientSettings, Target, Upstreams
from oberon.config import Settings, Site
from oberon.exceptions import ConfigError
from oberon.faults import Fault, FaultInjector, parse_faults
from oberon.page import PageRenderer
from oberon.registry import Registry


def import_target(target: str) -> Callable[..., Any]:
    """The callable named by `package.module:attribute`; ConfigError says what could not be found."""
    module_name, _, attribute = target.partition(":")
    try:
        module = importlib.import_module(module_name)
        return getattr(module, attribute)  # type: ignore[no-any-return]
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"cannot load {target!r}: {exc}") from None


def is_url(target: str) -> bool:
    return target.startswith(("http://", "https://"))


@dataclass(frozen=True)
class Embedded:
    """Every service of a site, wired together, mounted under one Starlette app."""

    app: Starlette
    renderer: PageRenderer
    backends: Mapping[str, ASGIApp]
    bffs: Mapping[str, ASGIApp]


def build_embedded(site: Site, settings: Settings, *, registry: Registry, environment: jinja2.Environment) -> Embedded:
    """Build the backends (with `OBERON_FAULTS` applied), the BFFs over them, and the renderer over the BFFs."""
    try:
        faults = parse_faults(settings.faults, known=set(site.backends))
    except ValueError as exc:
        raise ConfigError(f"OBERON_FAULTS: {exc}") from None
    backends: dict[str, ASGIApp] = {}
    for name, target in site.backends.items():
        if not is_url(target):
            # Every in-process backend can be broken at run time through its /_faults endpoint.
            backends[name] = FaultInjector(import_target(target)(name), fault=faults.get(name, Fault()))
    client_settings = ClientSettings(timeout=settings.upstream_timeout)
    backend_upstreams = Upstreams.create(_targets(site.backends, backends), settings=client_settings)
    bffs: dict[str, ASGIApp] = {
        name: import_target(target)(backend_upstreams) for name, target in site.bffs.items() if not is_url(target)
    }
    bff_upstreams = Upstreams.create(_targets(site.bffs, bffs), settings=client_settings)
    renderer = PageRenderer(
        registry=registry,
        upstreams=bff_upstreams,
        environment=environment,
        policy=settings.cache,
        asset_url=asset_url,
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await bff_upstreams.aclose()
        await backend_upstreams.aclose()

    routes = [Mount(f"/bff/{name}", app=app) for name, app in bffs.items()]
    routes += [Mount(f"/_backends/{name}", app=app) for name, app in backends.items()]
    routes.append(Mount("/", app=RendererApp(renderer=renderer).starlette()))
    return Embedded(app=Starlette(routes=routes, lifespan=lifespan), renderer=renderer, backends=backends, bffs=bffs)


def _targets(declared: Mapping[str, str], in_process: Mapping[str, ASGIApp]) -> dict[str, Target]:
    return {name: in_process.get(name, target) for name, target in declared.items()}
