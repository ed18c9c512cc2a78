"""The renderer's public ASGI app as `oberon serve renderer` builds it, for another HTTP server (issue 19: granian).

    OBERON_SITE_FILE=site/oberon.toml granian --interface asgi --factory bench.layers_granian:renderer_app …

`bench.page_cpu --server granian` runs it so. Every layer is the one `oberon serve renderer` runs (HideInternal,
Admission, Instrumented, Starlette, RendererApp), but uvicorn's `EntranceProtocol` is not there: admission sheds
in its middleware (`at="app"`), after the server made a scope and a task for the request.
"""

from __future__ import annotations

import gc
import os

from starlette.types import ASGIApp

from oberon import logs
from oberon.ops.observability import Observability
from oberon.pipeline.registry import load_registry
from oberon.pipeline.rendering import create_environment
from oberon.runtime.cli import GC_YOUNG_THRESHOLD
from oberon.runtime.settings import Settings
from oberon.runtime.topology import Services
from oberon.site import RENDERER, Site


def renderer_app() -> ASGIApp:
    """The renderer's public app for the site of `OBERON_SITE_FILE`, its BFFs by the URLs the site file gives."""
    settings = Settings.from_environ(os.environ)
    site = Site.load(settings.site_file)
    environment = create_environment()
    registry = load_registry(site.components, environment=environment)
    observability = Observability.from_environ(os.environ, name=RENDERER, traces=settings.traces_exporter)
    logs.configure(settings.log_format or None)
    services = Services(site, settings, registry=registry, environment=environment, observability=observability)
    public = services.serve(RENDERER).public
    gc.collect()  # as `oberon serve` does before it serves
    gc.freeze()
    gc.set_threshold(GC_YOUNG_THRESHOLD, *gc.get_threshold()[1:])
    return public
