"""Settings (read from `OBERON_*` environment variables at the edge) and the site file (`oberon.toml`)."""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from starlette.config import Config

from oberon.cache_policy import (
    DEFAULT_DEGRADED_MAX_AGE,
    DEFAULT_FALLBACK_MAX_AGE,
    DEFAULT_SHARED_MAX_AGE,
    DEFAULT_STALE_IF_ERROR,
    DEFAULT_STALE_WHILE_REVALIDATE,
    CachePolicy,
)
from oberon.exceptions import ConfigError

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
DEFAULT_SITE_FILE = Path("oberon.toml")
DEFAULT_UPSTREAM_TIMEOUT = 2.0


@dataclass(frozen=True)
class Settings:
    """Process settings; `from_environ` reads them from `OBERON_*` variables."""

    site_file: Path = DEFAULT_SITE_FILE
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    faults: str = ""
    admin_token: str | None = None
    upstream_timeout: float = DEFAULT_UPSTREAM_TIMEOUT
    cache: CachePolicy = field(default_factory=CachePolicy)

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> Settings:
        """Settings from `OBERON_SITE_FILE`, `OBERON_HOST`, `OBERON_PORT`, `OBERON_FAULTS`, `OBERON_CACHE_*`…"""
        config = Config(environ=environ, env_prefix="OBERON_")
        try:
            return cls(
                site_file=config("SITE_FILE", cast=Path, default=DEFAULT_SITE_FILE),
                host=config("HOST", default=DEFAULT_HOST),
                port=config("PORT", cast=int, default=DEFAULT_PORT),
                faults=config("FAULTS", default=""),
                admin_token=config("ADMIN_TOKEN", default=None),
                upstream_timeout=config("UPSTREAM_TIMEOUT", cast=float, default=DEFAULT_UPSTREAM_TIMEOUT),
                cache=CachePolicy(
                    shared_max_age=config("CACHE_SHARED_MAX_AGE", cast=int, default=DEFAULT_SHARED_MAX_AGE),
                    degraded_max_age=config("CACHE_DEGRADED_MAX_AGE", cast=int, default=DEFAULT_DEGRADED_MAX_AGE),
                    fallback_max_age=config("CACHE_FALLBACK_MAX_AGE", cast=int, default=DEFAULT_FALLBACK_MAX_AGE),
                    stale_while_revalidate=config(
                        "CACHE_STALE_WHILE_REVALIDATE", cast=int, default=DEFAULT_STALE_WHILE_REVALIDATE
                    ),
                    stale_if_error=config("CACHE_STALE_IF_ERROR", cast=int, default=DEFAULT_STALE_IF_ERROR),
                ),
            )
        except (KeyError, ValueError) as exc:
            raise ConfigError(f"invalid setting: {exc}") from None


@dataclass(frozen=True)
class Site:
    """The site file: where components live, and the BFFs and backends that serve their data.

    A service is a base URL (`http://…`) or an in-process factory (`package.module:callable`).
    """

    file: Path
    components: tuple[Path, ...]
    bffs: Mapping[str, str]
    backends: Mapping[str, str]

    @classmethod
    def load(cls, file: Path) -> Site:
        """Read and validate the site file; ConfigError names the file and the field."""
        try:
            raw = tomllib.loads(file.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(
                f"{file}: site file not found (run from the project's root or set OBERON_SITE_FILE)"
            ) from None
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{file}: not valid TOML: {exc}") from None
        unknown = sorted(set(raw) - {"components", "bff", "backends"})
        if unknown:
            raise ConfigError(f"{file}:{unknown[0]}: unknown field; expected components, bff, backends")
        roots = raw.get("components", ["components"])
        if not isinstance(roots, list) or not all(isinstance(root, str) for root in roots):
            raise ConfigError(f"{file}:components: expected a list of folder names")
        return cls(
            file=file,
            components=tuple(file.parent / root for root in roots),
            bffs=_services(file, raw, "bff"),
            backends=_services(file, raw, "backends"),
        )


def _services(file: Path, raw: Mapping[str, object], section: str) -> dict[str, str]:
    table = raw.get(section, {})
    if not isinstance(table, dict):
        raise ConfigError(f'{file}:{section}: expected a table of name = "url or module:factory"')
    for name, target in table.items():
        if not isinstance(target, str) or not (target.startswith(("http://", "https://")) or ":" in target):
            raise ConfigError(f'{file}:{section}.{name}: expected a URL or "package.module:factory", got {target!r}')
    return dict(table)
