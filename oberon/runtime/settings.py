"""Settings (read from `OBERON_*` environment variables at the edge) and the site file (`oberon.toml`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from starlette.config import Config

from gateway.settings import (
    DEFAULT_JWT_AUDIENCE,
    DEFAULT_MAX_BODY_BYTES,
    DEFAULT_MAX_HEADER_BYTES,
    DEFAULT_SESSION_MAX_AGE,
    DEV_SESSION_SECRET,
    GatewaySettings,
)
from oberon.client.breaker import (
    DEFAULT_FAILURE_RATIO,
    DEFAULT_MIN_CALLS,
    DEFAULT_OPEN_SECONDS,
    DEFAULT_WINDOW_SECONDS,
    BreakerSettings,
)
from oberon.exceptions import ConfigError
from oberon.ops.degradation import (
    DEFAULT_ERROR_RATIO,
    DEFAULT_HOLD_SECONDS,
    DEFAULT_OPEN_BREAKERS,
    DEFAULT_P95_SECONDS,
    DegradationSettings,
)
from oberon.ops.degradation import DEFAULT_MIN_CALLS as DEGRADATION_MIN_CALLS
from oberon.ops.degradation import DEFAULT_WINDOW_SECONDS as DEGRADATION_WINDOW
from oberon.pipeline.cache_policy import (
    DEFAULT_DEGRADED_MAX_AGE,
    DEFAULT_FALLBACK_MAX_AGE,
    DEFAULT_SHARED_MAX_AGE,
    DEFAULT_STALE_IF_ERROR,
    DEFAULT_STALE_WHILE_REVALIDATE,
    CachePolicy,
)
from oberon.pipeline.page_cache import DEFAULT_MAX_SECONDS as DEFAULT_PAGE_CACHE_SECONDS
from oberon.types import Mode

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
DEFAULT_SITE_FILE = Path("oberon.toml")
DEFAULT_UPSTREAM_TIMEOUT = 2.0
DEFAULT_STREAM_AFTER_MS = 10.0
DEFAULT_BUILD_DIR = Path("build/assets")


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
    gateway: GatewaySettings = field(default_factory=GatewaySettings)
    build_dir: Path | None = None  # where `oberon build` writes the assets; beside the site file by default
    public_url: str = ""  # the site's public origin, for canonical URLs and the sitemap
    log_format: str = ""  # `json` or `text`; empty: text on a terminal, JSON elsewhere
    traces_exporter: str = "none"  # `none`, `console` or `otlp` (OpenTelemetry spans)
    breaker: BreakerSettings = field(default_factory=BreakerSettings)
    degradation: DegradationSettings = field(default_factory=DegradationSettings)
    degraded: Mode | None = None  # a mode forced at start (`OBERON_DEGRADED=degraded|normal`); none: automatic
    degradation_file: Path | None = None  # a watched file saying `degraded` or `normal` (a ConfigMap in k8s)
    esi: bool = False  # private components of public pages become ESI islands (a CDN in front fills them)
    page_cache_seconds: float = DEFAULT_PAGE_CACHE_SECONDS  # longest a rendered page is kept; 0: no page cache
    stream_after_ms: float | None = (
        DEFAULT_STREAM_AFTER_MS  # an app's wait for non-critical children; None: no streaming
    )

    @property
    def asset_build_dir(self) -> Path:
        return self.build_dir if self.build_dir is not None else self.site_file.parent / DEFAULT_BUILD_DIR

    @property
    def site_url(self) -> str:
        """`OBERON_PUBLIC_URL`, else the entrance `oberon up` listens on."""
        return self.public_url.rstrip("/") or f"http://{self.host}:{self.port}"

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
                build_dir=config("BUILD_DIR", cast=Path, default=None),
                public_url=config("PUBLIC_URL", default=""),
                log_format=config("LOG_FORMAT", default=""),
                traces_exporter=config("TRACES_EXPORTER", default="none"),
                breaker=BreakerSettings(
                    failure_ratio=config("BREAKER_FAILURE_RATIO", cast=float, default=DEFAULT_FAILURE_RATIO),
                    window_seconds=config("BREAKER_WINDOW_SECONDS", cast=float, default=DEFAULT_WINDOW_SECONDS),
                    min_calls=config("BREAKER_MIN_CALLS", cast=int, default=DEFAULT_MIN_CALLS),
                    open_seconds=config("BREAKER_OPEN_SECONDS", cast=float, default=DEFAULT_OPEN_SECONDS),
                ),
                degradation=DegradationSettings(
                    window_seconds=config("DEGRADATION_WINDOW_SECONDS", cast=float, default=DEGRADATION_WINDOW),
                    min_calls=config("DEGRADATION_MIN_CALLS", cast=int, default=DEGRADATION_MIN_CALLS),
                    error_ratio=config("DEGRADATION_ERROR_RATIO", cast=float, default=DEFAULT_ERROR_RATIO),
                    p95_seconds=config("DEGRADATION_P95_MS", cast=float, default=DEFAULT_P95_SECONDS * 1000) / 1000,
                    open_breakers=config("DEGRADATION_OPEN_BREAKERS", cast=int, default=DEFAULT_OPEN_BREAKERS),
                    hold_seconds=config("DEGRADATION_HOLD_SECONDS", cast=float, default=DEFAULT_HOLD_SECONDS),
                ),
                degraded=config("DEGRADED", cast=mode_or_auto, default=None),
                degradation_file=config("DEGRADATION_FILE", cast=Path, default=None),
                esi=config("ESI", cast=bool, default=False),
                page_cache_seconds=config("PAGE_CACHE_SECONDS", cast=float, default=DEFAULT_PAGE_CACHE_SECONDS),
                stream_after_ms=config(
                    "STREAM_AFTER_MS", cast=milliseconds_or_off, default=str(DEFAULT_STREAM_AFTER_MS)
                ),
                cache=CachePolicy(
                    shared_max_age=config("CACHE_SHARED_MAX_AGE", cast=int, default=DEFAULT_SHARED_MAX_AGE),
                    degraded_max_age=config("CACHE_DEGRADED_MAX_AGE", cast=int, default=DEFAULT_DEGRADED_MAX_AGE),
                    fallback_max_age=config("CACHE_FALLBACK_MAX_AGE", cast=int, default=DEFAULT_FALLBACK_MAX_AGE),
                    stale_while_revalidate=config(
                        "CACHE_STALE_WHILE_REVALIDATE", cast=int, default=DEFAULT_STALE_WHILE_REVALIDATE
                    ),
                    stale_if_error=config("CACHE_STALE_IF_ERROR", cast=int, default=DEFAULT_STALE_IF_ERROR),
                ),
                gateway=GatewaySettings(
                    session_secret=config("SESSION_SECRET", default=DEV_SESSION_SECRET),
                    session_max_age=config("SESSION_MAX_AGE", cast=int, default=DEFAULT_SESSION_MAX_AGE),
                    jwt_key=config("JWT_KEY", default=None),
                    jwt_algorithms=config("JWT_ALGORITHMS", cast=_words, default="HS256"),
                    jwt_audience=config("JWT_AUDIENCE", default=DEFAULT_JWT_AUDIENCE),
                    jwt_issuer=config("JWT_ISSUER", default=None),
                    trusted_proxies=config("TRUSTED_PROXIES", cast=_words, default=""),
                    max_header_bytes=config("MAX_HEADER_BYTES", cast=int, default=DEFAULT_MAX_HEADER_BYTES),
                    max_body_bytes=config("MAX_BODY_BYTES", cast=int, default=DEFAULT_MAX_BODY_BYTES),
                    asset_origin=config("ASSET_ORIGIN", default=""),
                    locales=config("LOCALES", cast=_words, default="en"),
                ),
            )
        except (KeyError, ValueError) as exc:
            raise ConfigError(f"invalid setting: {exc}") from None


def mode_or_auto(value: str) -> Mode | None:
    """`degraded` or `normal` forces a mode; `auto` or empty leaves it to the controller."""
    if value.strip().lower() in ("", "auto"):
        return None
    try:
        return Mode(value.strip().lower())
    except ValueError:
        raise ValueError(f"OBERON_DEGRADED must be degraded, normal or auto, got {value!r}") from None


def milliseconds_or_off(value: str) -> float | None:
    """`OBERON_STREAM_AFTER_MS`: milliseconds (0 or more), or `off`."""
    if value.strip().lower() == "off":
        return None
    milliseconds = float(value)
    if milliseconds < 0:
        raise ValueError(f"must be 0 or more milliseconds, or off; got {value!r}")
    return milliseconds


def _words(value: str) -> tuple[str, ...]:
    """`"a, b c"` as `("a", "b", "c")`."""
    return tuple(value.replace(",", " ").split())
