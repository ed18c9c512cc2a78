"""Oberon: a micro-frontend rendering platform. Team code imports from here, `oberon.bff` and `oberon.testing` only."""

from oberon.client.upstream import Upstream as Upstream
from oberon.client.upstream import Upstreams as Upstreams
from oberon.exceptions import ComponentNotFound as ComponentNotFound
from oberon.exceptions import ConfigError as ConfigError
from oberon.exceptions import InvalidResponse as InvalidResponse
from oberon.exceptions import ManifestError as ManifestError
from oberon.exceptions import OberonError as OberonError
from oberon.exceptions import RegistryError as RegistryError
from oberon.exceptions import RenderError as RenderError
from oberon.exceptions import UpstreamError as UpstreamError
from oberon.exceptions import UpstreamStatusError as UpstreamStatusError
from oberon.exceptions import UpstreamTimeout as UpstreamTimeout
from oberon.pipeline.cache_policy import CachePolicy as CachePolicy
from oberon.pipeline.state import Action as Action
from oberon.pipeline.state import Failed as Failed
from oberon.pipeline.state import Store as Store
from oberon.site import Site as Site
from oberon.types import Cacheability as Cacheability
from oberon.types import Mode as Mode

__all__ = [
    "Action",
    "CachePolicy",
    "Cacheability",
    "ComponentNotFound",
    "ConfigError",
    "Failed",
    "InvalidResponse",
    "ManifestError",
    "Mode",
    "OberonError",
    "RegistryError",
    "RenderError",
    "Store",
    "Site",
    "Upstream",
    "UpstreamError",
    "UpstreamStatusError",
    "UpstreamTimeout",
    "Upstreams",
]
