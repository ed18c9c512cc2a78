"""The site file (`oberon.toml`): where components live, and the services that serve their data."""

from __future__ import annotations

import importlib
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from oberon.exceptions import ConfigError

GATEWAY = "gateway"
RENDERER = "renderer"
ASSETS = "assets"


@dataclass(frozen=True)
class Site:
    """The site file: where components live, and the BFFs and backends that serve their data.

    A service is a base URL (`http://…`) or an in-process factory (`package.module:callable`).
    """

    file: Path
    components: tuple[Path, ...]
    bffs: Mapping[str, str]
    backends: Mapping[str, str]
    gateway_routes: Path | None = None

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
        unknown = sorted(set(raw) - {"components", "bff", "backends", "gateway"})
        if unknown:
            raise ConfigError(f"{file}:{unknown[0]}: unknown field; expected components, bff, backends, gateway")
        roots = raw.get("components", ["components"])
        if not isinstance(roots, list) or not all(isinstance(root, str) for root in roots):
            raise ConfigError(f"{file}:components: expected a list of folder names")
        return cls(
            file=file,
            components=tuple(file.parent / root for root in roots),
            bffs=_services(file, raw, "bff"),
            backends=_services(file, raw, "backends"),
            gateway_routes=_gateway_routes(file, raw),
        )


def _gateway_routes(file: Path, raw: Mapping[str, object]) -> Path | None:
    """`[gateway] routes = "gateway/routes.toml"`: the routing table, relative to the site file."""
    table = raw.get("gateway", {})
    if not isinstance(table, dict):
        raise ConfigError(f'{file}:gateway: expected a table with routes = "path/to/routes.toml"')
    unknown = sorted(set(table) - {"routes"})
    if unknown:
        raise ConfigError(f"{file}:gateway.{unknown[0]}: unknown field; expected routes")
    routes = table.get("routes")
    if routes is None:
        return None
    if not isinstance(routes, str) or not routes:
        raise ConfigError(f"{file}:gateway.routes: expected a file name, got {routes!r}")
    return file.parent / routes


def _services(file: Path, raw: Mapping[str, object], section: str) -> dict[str, str]:
    table = raw.get(section, {})
    if not isinstance(table, dict):
        raise ConfigError(f'{file}:{section}: expected a table of name = "url or module:factory"')
    for name, target in table.items():
        if not isinstance(target, str) or not (target.startswith(("http://", "https://")) or ":" in target):
            raise ConfigError(f'{file}:{section}.{name}: expected a URL or "package.module:factory", got {target!r}')
    return dict(table)


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


def service_names(site: Site) -> list[str]:
    """The services this site runs itself, in start order: backends, BFFs, renderer, gateway."""
    names = [f"backend:{name}" for name, target in site.backends.items() if not is_url(target)]
    names += [f"bff:{name}" for name, target in site.bffs.items() if not is_url(target)]
    return [*names, RENDERER, GATEWAY]
