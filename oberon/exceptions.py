"""Oberon's exceptions.

OberonError
├── ConfigError             bad settings or site configuration
├── ManifestError           one problem in one file, at one field
├── RegistryError           every ManifestError found while loading a registry
├── ComponentNotFound       (also a LookupError) no component matches a name and version
├── RenderError             a critical component failed, so the page fails
├── AssetError              the asset build lacks a file a component declares, or is unreadable
├── ScaffoldError           `oberon new` refused a name, or undid a scaffold that would break the registry
└── UpstreamError           a downstream call failed
    ├── UpstreamTimeout
    ├── CircuitOpen           a breaker (the upstream's or the endpoint's) is open: not called
    ├── BulkheadFull          the upstream has as many calls in flight as it may: not called
    ├── UpstreamStatusError   the upstream answered with an error status
    │   └── DependencyFailed    …saying that its own dependency failed (not the upstream's fault)
    └── InvalidResponse       the body is not what was expected

The gateway's own errors live in `gateway/errors.py`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path


class OberonError(Exception):
    """Base class of every error Oberon raises on purpose."""


class ConfigError(OberonError):
    """Settings or the site configuration are invalid."""


class ManifestError(OberonError):
    """One problem found in one file, at one field (dotted path, empty for the whole file)."""

    def __init__(self, file: Path | str, field: str, message: str) -> None:
        self.file = Path(file)
        self.field = field
        self.message = message
        super().__init__(str(self))

    def __str__(self) -> str:
        where = f"{self.file}:{self.field}" if self.field else str(self.file)
        return f"{where}: {self.message}"


class RegistryError(OberonError):
    """The registry is invalid; `errors` lists every problem found, not only the first."""

    def __init__(self, errors: Sequence[ManifestError]) -> None:
        self.errors = list(errors)
        super().__init__("\n".join(str(error) for error in self.errors))


class ComponentNotFound(OberonError, LookupError):
    """No registered component matches the name and version specifier."""

    def __init__(self, name: str, specifier: str = "") -> None:
        self.name = name
        self.specifier = specifier
        wanted = f"{name} {specifier}".strip()
        super().__init__(f"no component matches {wanted!r}")


class RenderError(OberonError):
    """A critical component failed, so the whole page fails."""

    def __init__(self, component: str, reason: str, *, status_code: int = 503) -> None:
        self.component = component
        self.reason = reason
        self.status_code = status_code
        super().__init__(f"critical component {component!r} failed: {reason}")


class AssetError(OberonError):
    """The asset build is missing, unreadable, or lacks a file a component declares (run `oberon build`)."""


class ScaffoldError(OberonError):
    """`oberon new` refused (a bad or taken name) or undid a scaffold (it would break the registry): nothing written."""


class UpstreamError(OberonError):
    """A call to a downstream service failed."""

    def __init__(self, upstream: str, message: str, *, status_code: int | None = None) -> None:
        self.upstream = upstream
        self.status_code = status_code
        super().__init__(f"{upstream}: {message}")


class UpstreamTimeout(UpstreamError):
    """The downstream call did not complete within its budget."""


class BudgetExhausted(UpstreamTimeout):
    """The caller's time budget ran out before the call could be made."""


class CircuitOpen(UpstreamError):
    """The upstream's circuit breaker (or its endpoint's) is open, so the call fails fast without going out."""


class BulkheadFull(UpstreamError):
    """The upstream already has as many calls in flight as its bulkhead allows, so the call fails fast."""


class UpstreamStatusError(UpstreamError):
    """The upstream answered with a 4xx or 5xx status."""


class DependencyFailed(UpstreamStatusError):
    """The upstream answered an error marked `X-Oberon-Dependency-Failed`: a service *it* calls failed."""

    def __init__(self, upstream: str, message: str, *, status_code: int, dependency: str) -> None:
        self.dependency = dependency
        super().__init__(upstream, message, status_code=status_code)


class InvalidResponse(UpstreamError):
    """The upstream's body is not JSON of the expected shape."""
