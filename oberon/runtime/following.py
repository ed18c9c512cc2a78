"""Wiring a renderer to the registry service it follows (`oberon up --registry URL`, `OBERON_REGISTRY_URL`).

Each process that renders (`oberon up`, each worker of `--workers N`, the renderer of `--split`) starts
its own `Follower` before it serves: from the registry's snapshot, else from the disk copy, else it
refuses to start (fail closed). The processes of one machine share the disk copy.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from jinja2 import Environment

from oberon.exceptions import ConfigError
from oberon.ops.observability import Observability
from oberon.registry.client import RegistryClient
from oberon.registry.follower import Follower, SyncError
from oberon.runtime.settings import Settings
from oberon.site import RENDERER


def start_follower(settings: Settings, environment: Environment, observability: Observability) -> Follower | None:
    """The started follower of `settings.registry_url` (None without one); ConfigError says why it cannot start."""
    url = settings.registry_url
    if not url:
        return None
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(f"the registry URL must be http:// or https://, got {url!r}")
    if not settings.registry_token:
        raise ConfigError(f"OBERON_REGISTRY_TOKEN is not set: a renderer needs a token to read the registry {url}")
    follower = Follower(
        client=RegistryClient(url=url, token=settings.registry_token, trust_env=False),
        cache_dir=settings.registry_cache.resolve(),
        build_dir=settings.asset_build_dir,
        environment=environment,
        poll_seconds=settings.registry_poll_seconds,
        observers=(observability.metrics.registry_observer(RENDERER),),
    )
    try:
        follower.start()
    except SyncError as exc:
        raise ConfigError(f"cannot start: {exc}") from None
    return follower


def describe(follower: Follower) -> str:
    """The line `oberon up` prints: which registry, which revision, and from where."""
    status = follower.status
    line = f"{status.url} revision {status.revision}, polled every {follower.poll_seconds:g} s"
    if status.source == "disk":
        return (
            f"{line} — from the disk copy {follower.snapshot_file} (the registry did not answer: {status.last_error})"
        )
    return line
