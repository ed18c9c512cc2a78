"""Settings of a process, read from `OBERON_*` environment variables at the edge (the site file is `oberon.site`).

Every variable is declared once, as a row of `SETTINGS`: its name, the settings field it fills, how
its text is read, its default (from `oberon.defaults`) and what it means. `Settings.from_environ`
reads the rows, and `oberon.runtime.reference` renders them as docs/settings.md.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

from starlette.config import Config

from gateway.settings import MIN_SECRET_LENGTH, GatewaySettings
from oberon.client.breaker import BreakerSettings
from oberon.defaults import (
    DEFAULT_ADMIN_HOST,
    DEFAULT_ADMISSION_INITIAL_LIMIT,
    DEFAULT_ADMISSION_MAX_LIMIT,
    DEFAULT_ADMISSION_MIN_LIMIT,
    DEFAULT_BREAKER_FAILURE_RATIO,
    DEFAULT_BREAKER_MIN_CALLS,
    DEFAULT_BREAKER_OPEN_SECONDS,
    DEFAULT_BREAKER_WINDOW_SECONDS,
    DEFAULT_BUILD_DIR,
    DEFAULT_BULKHEAD_MAX_IN_FLIGHT,
    DEFAULT_CACHE_DEGRADED_MAX_AGE,
    DEFAULT_CACHE_FALLBACK_MAX_AGE,
    DEFAULT_CACHE_SHARED_MAX_AGE,
    DEFAULT_CACHE_STALE_IF_ERROR,
    DEFAULT_CACHE_STALE_WHILE_REVALIDATE,
    DEFAULT_DEGRADATION_ERROR_RATIO,
    DEFAULT_DEGRADATION_HOLD_SECONDS,
    DEFAULT_DEGRADATION_MIN_CALLS,
    DEFAULT_DEGRADATION_OPEN_BREAKERS,
    DEFAULT_DEGRADATION_P95_MS,
    DEFAULT_DEGRADATION_WINDOW_SECONDS,
    DEFAULT_HEADER_TIMEOUT,
    DEFAULT_HOST,
    DEFAULT_JWT_ALGORITHMS,
    DEFAULT_JWT_AUDIENCE,
    DEFAULT_LOCALES,
    DEFAULT_MAX_BODY_BYTES,
    DEFAULT_MAX_CONNECTIONS,
    DEFAULT_MAX_HEADER_BYTES,
    DEFAULT_PAGE_CACHE_SECONDS,
    DEFAULT_PORT,
    DEFAULT_REGISTRY_CACHE_DIR,
    DEFAULT_REGISTRY_CDN_PURGE_AGAIN_SECONDS,
    DEFAULT_REGISTRY_POLL_SECONDS,
    DEFAULT_SESSION_MAX_AGE,
    DEFAULT_SESSION_SECRET,
    DEFAULT_SIGN_IN_BACKOFF_SECONDS,
    DEFAULT_SIGN_IN_MAX_FAILURES,
    DEFAULT_SIGN_IN_WINDOW_SECONDS,
    DEFAULT_SITE_FILE,
    DEFAULT_STREAM_AFTER_MS,
    DEFAULT_TRACES_EXPORTER,
    DEFAULT_UPSTREAM_TIMEOUT,
    DEFAULT_WORKERS,
)
from oberon.exceptions import ConfigError
from oberon.ops.admission import AdmissionSettings
from oberon.ops.degradation import DegradationSettings
from oberon.pipeline.cache_policy import CachePolicy
from oberon.site import GATEWAY, RENDERER
from oberon.types import Mode

T = TypeVar("T")


# Where `oberon up` writes its processes' admin listeners for Prometheus (file_sd), beside the site file; the guard
# of `oberon ramp --guard` reads the renderers from it.
SCRAPE_TARGETS = Path("build/prometheus/targets.json")

# Which service uses which secret (the split topology and infra/k8s give each process only its own).
GATEWAY_SECRETS = ("OBERON_SESSION_SECRET", "OBERON_JWT_KEY", "OBERON_SESSION_STORE")
ADMIN_SECRET = "OBERON_ADMIN_TOKEN"  # the gateway's and the renderer's admin routes check it
REGISTRY_TOKEN = "OBERON_REGISTRY_TOKEN"  # a renderer following the registry service reads with it
# The platform token is only `oberon registry serve`'s: no process of `oberon up` gets it.
REGISTRY_ADMIN_TOKEN = "OBERON_REGISTRY_ADMIN_TOKEN"
SECRETS = (*GATEWAY_SECRETS, ADMIN_SECRET, REGISTRY_TOKEN, REGISTRY_ADMIN_TOKEN)


def secrets_for(service: str) -> frozenset[str]:
    """The secret settings `service` (gateway, renderer, bff:<team>, backend:<name>, assets) needs."""
    if service == GATEWAY:
        return frozenset({*GATEWAY_SECRETS, ADMIN_SECRET})
    if service == RENDERER:
        return frozenset({ADMIN_SECRET, REGISTRY_TOKEN})
    return frozenset()


@dataclass(frozen=True)
class Settings:
    """Process settings; `from_environ` reads them from the `OBERON_*` variables of `SETTINGS`."""

    site_file: Path = DEFAULT_SITE_FILE
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    admin_host: str = DEFAULT_ADMIN_HOST  # the internal admin listener: /metrics, detailed health, registry, mode
    admin_port: int | None = None  # None: the public port + 1
    faults: str = ""
    admin_token: str | None = None
    upstream_timeout: float = DEFAULT_UPSTREAM_TIMEOUT
    cache: CachePolicy = field(default_factory=CachePolicy)
    gateway: GatewaySettings = field(default_factory=GatewaySettings)
    build_dir: Path | None = None  # where `oberon build` writes the assets; beside the site file by default
    public_url: str = ""  # the site's public origin, for canonical URLs and the sitemap
    log_format: str = ""  # `json` or `text`; empty: text on a terminal, JSON elsewhere
    traces_exporter: str = DEFAULT_TRACES_EXPORTER  # `none`, `console` or `otlp` (OpenTelemetry spans)
    breaker: BreakerSettings = field(default_factory=BreakerSettings)
    degradation: DegradationSettings = field(default_factory=DegradationSettings)
    degraded: Mode | None = None  # a mode forced at start (`OBERON_DEGRADED=degraded|normal`); none: automatic
    degradation_file: Path | None = None  # a watched file saying `degraded` or `normal` (a ConfigMap in k8s)
    esi: bool = False  # islands are ESI includes a CDN in front fills (else the browser fills them)
    page_cache_seconds: float = DEFAULT_PAGE_CACHE_SECONDS  # longest a rendered page is kept; 0: no page cache
    stream_after_ms: float | None = (
        DEFAULT_STREAM_AFTER_MS  # an app's wait for non-critical children; None: no streaming
    )
    header_timeout: float = DEFAULT_HEADER_TIMEOUT  # seconds a request's headers may take to arrive
    max_connections: int = DEFAULT_MAX_CONNECTIONS  # past it (connections or requests in flight): 503
    workers: int = DEFAULT_WORKERS  # worker processes of `oberon up` on one port; 0: one per CPU this process may use
    # Where the workers of one machine share the admin endpoint's degradation switch (set by `oberon up`, no variable).
    degradation_shared_file: Path | None = None
    admission: AdmissionSettings = field(default_factory=AdmissionSettings)  # each entrance's adaptive limit
    registry_url: str = ""  # the registry the commands talk to and renderers follow; empty: components/
    registry_token: str | None = None  # the token they send it: a team's, or the platform's
    registry_admin_token: str | None = None  # the platform token `oberon registry serve` accepts (≥ 32 characters)
    registry_cache_dir: Path | None = None  # the followed registry's disk copy; beside the site file by default
    registry_poll_seconds: float = DEFAULT_REGISTRY_POLL_SECONDS  # between two conditional GETs of the snapshot
    registry_cdn_purge: tuple[str, ...] = ()  # the CDNs `oberon registry serve` purges a changed component's pages from
    registry_cdn_purge_again_seconds: float = DEFAULT_REGISTRY_CDN_PURGE_AGAIN_SECONDS  # when it purges once more

    @property
    def asset_build_dir(self) -> Path:
        return self.build_dir if self.build_dir is not None else self.site_file.parent / DEFAULT_BUILD_DIR

    @property
    def registry_cache(self) -> Path:
        """`OBERON_REGISTRY_CACHE_DIR`, else `.oberon/registry-cache` beside the site file."""
        if self.registry_cache_dir is not None:
            return self.registry_cache_dir
        return self.site_file.parent / DEFAULT_REGISTRY_CACHE_DIR

    @property
    def admin_listener_port(self) -> int:
        """`OBERON_ADMIN_PORT`, else the port after the public one."""
        return self.admin_port if self.admin_port is not None else self.port + 1

    @property
    def site_url(self) -> str:
        """`OBERON_PUBLIC_URL`, else the entrance `oberon up` listens on."""
        return self.public_url.rstrip("/") or f"http://{self.host}:{self.port}"

    def __post_init__(self) -> None:
        if self.workers < 0:
            raise ConfigError("OBERON_WORKERS must be 0 (one per CPU) or more")
        if not self.header_timeout > 0 or self.max_connections < 1:
            raise ConfigError("OBERON_HEADER_TIMEOUT must be more than 0 seconds and OBERON_MAX_CONNECTIONS at least 1")
        if not self.registry_poll_seconds > 0:
            raise ConfigError("OBERON_REGISTRY_POLL_SECONDS must be more than 0 seconds")
        if self.registry_cdn_purge_again_seconds < 0:
            raise ConfigError("OBERON_REGISTRY_CDN_PURGE_AGAIN_SECONDS must be 0 or more seconds")
        if self.admin_token is not None and len(self.admin_token) < MIN_SECRET_LENGTH:
            # An empty or short token would be guessed; unset, every admin request is refused (403).
            raise ConfigError(
                f"OBERON_ADMIN_TOKEN must be at least {MIN_SECRET_LENGTH} characters; unset it to refuse admin requests"
            )

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> Settings:
        """Settings from the `OBERON_*` variables of `SETTINGS`; an unset variable leaves its default."""
        values: dict[str, Any] = {}
        try:
            # Row by row, each nested object built as soon as its rows are read: of several bad
            # values, the first in the table is the one reported.
            for section, rows in itertools.groupby(SETTINGS, key=lambda setting: setting.section):
                read = {setting.attribute: setting.read(environ) for setting in rows}
                if section:
                    values[section] = SECTIONS[section](**read)
                else:
                    values.update(read)
            return cls(**values)
        except ValueError as exc:
            raise ConfigError(f"invalid setting: {exc}") from None


@dataclass(frozen=True)
class Setting(Generic[T]):
    """One `OBERON_*` variable: the settings field it fills, how its text is read, its default and its meaning."""

    name: str  # OBERON_…
    field: str  # the field of `Settings` it fills, dotted for a nested one: `gateway.session_secret`
    cast: Callable[[str], T]  # its `__name__` is in the message of a value it refuses
    default: T  # in the variable's own units, as the reference shows it
    meaning: str
    to_field: Callable[[T], object] | None = None  # when the field's units differ from the variable's

    @property
    def section(self) -> str:
        """The nested settings object of `Settings` the field is in (`gateway`); empty for a field of its own."""
        head, dot, _ = self.field.partition(".")
        return head if dot else ""

    @property
    def attribute(self) -> str:
        """The field's name in its settings object."""
        return self.field.rpartition(".")[2]

    def read(self, environ: Mapping[str, str]) -> object:
        """The field's value: the variable's text cast, or the default when the variable is unset."""
        # starlette's Config casts (bools as true/false/1/0) and words the error the user sees.
        value = Config(environ=environ)(self.name, cast=self.cast) if self.name in environ else self.default
        return value if self.to_field is None else self.to_field(value)


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


def words(value: str) -> tuple[str, ...]:
    """`"a, b c"` as `("a", "b", "c")`."""
    return tuple(value.replace(",", " ").split())


def seconds(milliseconds: float) -> float:
    """Milliseconds as seconds."""
    return milliseconds / 1000


# The settings objects nested in `Settings`, by the field that holds each.
SECTIONS: Mapping[str, Callable[..., object]] = {
    "admission": AdmissionSettings,
    "breaker": BreakerSettings,
    "degradation": DegradationSettings,
    "cache": CachePolicy,
    "gateway": GatewaySettings,
}

# Every variable, in the order `from_environ` reads it and the reference lists it; a nested object's rows together.
# One row to a variable, as a table: the formatter would spread each over seven lines.
# fmt: off
SETTINGS: tuple[Setting[Any], ...] = (
    Setting("OBERON_SITE_FILE", "site_file", Path, DEFAULT_SITE_FILE,
            "The site file: component roots, BFFs, backends and the gateway's routing table."),
    Setting("OBERON_HOST", "host", str, DEFAULT_HOST,
            "Interface the entrance binds (`oberon up`); anything but loopback needs `OBERON_SESSION_SECRET`."),
    Setting("OBERON_PORT", "port", int, DEFAULT_PORT,
            "Port of the browser's entrance: the gateway, or Varnish with `--cdn`."),
    Setting("OBERON_ADMIN_HOST", "admin_host", str, DEFAULT_ADMIN_HOST,
            "Interface of the internal admin listener (`/metrics`, detailed health, registry, degradation switch); "
            "loopback unless a scraper must reach it, as Prometheus reaches a pod's IP in k8s."),
    Setting("OBERON_ADMIN_PORT", "admin_port", int, None,
            "Port of the internal admin listener; unset: the public port + 1 (`oberon up`: the entrance's port + 1; "
            "`--split` gives every other service a free loopback one, printed and written for Prometheus)."),
    Setting("OBERON_FAULTS", "faults", str, "",
            "Faults the stand-in backends start with: `name=down`, `name=latency:MS`, `name=error:RATIO`."),
    Setting("OBERON_ADMIN_TOKEN", "admin_token", str, None,
            "Bearer token of the admin endpoints (degradation switch, backend faults), at least 32 characters; "
            "unset: every admin request is refused (403)."),
    Setting("OBERON_UPSTREAM_TIMEOUT", "upstream_timeout", float, DEFAULT_UPSTREAM_TIMEOUT,
            "Seconds a call to a BFF or backend may take before it counts as failed."),
    Setting("OBERON_BUILD_DIR", "build_dir", Path, None,
            "Where `oberon build` writes the hashed assets (default: `build/assets` beside the site file)."),
    Setting("OBERON_PUBLIC_URL", "public_url", str, "",
            "The site's public origin, for canonical URLs and the sitemap (default: the entrance)."),
    Setting("OBERON_LOG_FORMAT", "log_format", str, "",
            "`json` or `text`; empty: text on a terminal, JSON otherwise."),
    Setting("OBERON_TRACES_EXPORTER", "traces_exporter", str, DEFAULT_TRACES_EXPORTER,
            "OpenTelemetry spans: `none`, `console` or `otlp`."),
    Setting("OBERON_HEADER_TIMEOUT", "header_timeout", float, DEFAULT_HEADER_TIMEOUT,
            "Seconds a request's headers may take to arrive (from the connection's opening for its first request); "
            "then 408 and the connection is closed (slowloris)."),
    Setting("OBERON_MAX_CONNECTIONS", "max_connections", int, DEFAULT_MAX_CONNECTIONS,
            "Connections (or requests in flight) each process serves; a request past them is answered 503."),
    Setting("OBERON_WORKERS", "workers", int, DEFAULT_WORKERS,
            "Worker processes `oberon up` runs on the one entrance port, each the whole embedded site; `0`: one per "
            "CPU the process may use when `OBERON_SESSION_STORE` is set (more than one needs it), else one. More than "
            "one: a supervisor restarts a worker that dies and serves the admin listener (metrics merged, degradation "
            "switch shared). `--split` and `--dev` run one."),
    Setting("OBERON_REGISTRY_URL", "registry_url", str, "",
            "The registry service (`oberon registry serve`) that `oberon publish`, `ramp`, `promote`, `rollback`, "
            "`versions` and `registry token` talk to, e.g. `http://127.0.0.1:9000`, and that renderers follow "
            "(`oberon up --registry URL` overrides it): they serve its snapshot and swap in each change without a "
            "restart. Empty: renderers serve the site's `components/` folders."),
    Setting("OBERON_REGISTRY_TOKEN", "registry_token", str, None,
            "The token sent to the registry (`Authorization: Bearer`): a team's (`oberon registry token TEAM`), which "
            "changes only the components that team owns, or the platform token. Every token may read; a renderer "
            "that follows a registry refuses to start without one."),
    Setting("OBERON_REGISTRY_ADMIN_TOKEN", "registry_admin_token", str, None,
            "The platform token of `oberon registry serve`, at least 32 characters: it may change every component and "
            "issue team tokens. Unset or shorter: the registry refuses to start."),
    Setting("OBERON_REGISTRY_CACHE_DIR", "registry_cache_dir", Path, None,
            "Where a renderer keeps the last good snapshot of the registry it follows (`snapshot.json`) and its "
            "unpacked bundles (`components/NAME@VERSION/`), shared by the processes of one machine; a renderer that "
            "starts while the registry is down serves from it (default: `.oberon/registry-cache` beside the site "
            "file)."),
    Setting("OBERON_REGISTRY_POLL_SECONDS", "registry_poll_seconds", float, DEFAULT_REGISTRY_POLL_SECONDS,
            "Seconds between a following renderer's conditional requests for the registry's snapshot "
            "(`If-None-Match`: an unchanged registry costs a 304)."),
    Setting("OBERON_REGISTRY_CDN_PURGE", "registry_cdn_purge", words, (),
            "The site's CDN, for `oberon registry serve` (`--cdn-purge URL` overrides it): after each ramp, promote "
            "and rollback it sends `PURGE URL` with `Surrogate-Key: component:NAME` (infra/cdn's VCL takes it from its "
            "local network), so no cached page keeps a version that left. Several URLs (space- or comma-separated) for "
            "several Varnish servers. A failed purge is logged and shown in the change's answer, never fails it. "
            "Empty: no purge."),
    Setting("OBERON_REGISTRY_CDN_PURGE_AGAIN_SECONDS", "registry_cdn_purge_again_seconds", float,
            DEFAULT_REGISTRY_CDN_PURGE_AGAIN_SECONDS,
            "Seconds after a change's purge when `oberon registry serve` purges once more: the pages the CDN cached "
            "while renderers had not yet taken the change up (they poll every `OBERON_REGISTRY_POLL_SECONDS`). 0: "
            "purge once."),

    Setting("OBERON_ADMISSION", "admission.enabled", bool, True,
            "An adaptive concurrency limit at each entrance (the gateway's and the renderer's; in `oberon up` the "
            "process's): a request beyond it gets the last good copy of an anonymous public page, else a fast 503 with "
            "`Retry-After`; `/_oberon/health` is never shed. `false`: every request is admitted."),
    Setting("OBERON_ADMISSION_MIN_LIMIT", "admission.min_limit", int, DEFAULT_ADMISSION_MIN_LIMIT,
            "Requests in flight the adaptive limit always admits, however slow the answers."),
    Setting("OBERON_ADMISSION_INITIAL_LIMIT", "admission.initial_limit", int, DEFAULT_ADMISSION_INITIAL_LIMIT,
            "The limit at start, before latency has moved it."),
    Setting("OBERON_ADMISSION_MAX_LIMIT", "admission.max_limit", int, DEFAULT_ADMISSION_MAX_LIMIT,
            "Requests in flight the adaptive limit never goes beyond, however fast the answers."),

    Setting("OBERON_BREAKER_FAILURE_RATIO", "breaker.failure_ratio", float, DEFAULT_BREAKER_FAILURE_RATIO,
            "Share of failed calls in the window that opens a breaker: an endpoint's (any failure of a call to that "
            "endpoint template) or an upstream's (connection-level failures only)."),
    Setting("OBERON_BREAKER_WINDOW_SECONDS", "breaker.window_seconds", float, DEFAULT_BREAKER_WINDOW_SECONDS,
            "Sliding window over which a breaker counts calls."),
    Setting("OBERON_BREAKER_MIN_CALLS", "breaker.min_calls", int, DEFAULT_BREAKER_MIN_CALLS,
            "Calls in the window before a breaker may open."),
    Setting("OBERON_BREAKER_OPEN_SECONDS", "breaker.open_seconds", float, DEFAULT_BREAKER_OPEN_SECONDS,
            "How long an open breaker fails calls fast before it lets one through."),
    Setting("OBERON_BULKHEAD_MAX_IN_FLIGHT", "breaker.max_in_flight", int, DEFAULT_BULKHEAD_MAX_IN_FLIGHT,
            "Calls in flight to one upstream at most, per process (pool waits included); a call beyond it fails fast "
            "(the component falls back) instead of queueing."),

    Setting("OBERON_DEGRADATION_WINDOW_SECONDS", "degradation.window_seconds", float,
            DEFAULT_DEGRADATION_WINDOW_SECONDS,
            "Sliding window of the downstream signals that switch to degraded mode."),
    Setting("OBERON_DEGRADATION_MIN_CALLS", "degradation.min_calls", int, DEFAULT_DEGRADATION_MIN_CALLS,
            "Downstream calls in the window before the error ratio and p95 count."),
    Setting("OBERON_DEGRADATION_ERROR_RATIO", "degradation.error_ratio", float, DEFAULT_DEGRADATION_ERROR_RATIO,
            "Downstream error ratio that enters degraded mode."),
    Setting("OBERON_DEGRADATION_P95_MS", "degradation.p95_seconds", float, DEFAULT_DEGRADATION_P95_MS,
            "Downstream p95 latency (ms) that enters degraded mode.", to_field=seconds),
    Setting("OBERON_DEGRADATION_OPEN_BREAKERS", "degradation.open_breakers", int, DEFAULT_DEGRADATION_OPEN_BREAKERS,
            "Open circuit breakers that enter degraded mode."),
    Setting("OBERON_DEGRADATION_HOLD_SECONDS", "degradation.hold_seconds", float, DEFAULT_DEGRADATION_HOLD_SECONDS,
            "How long the signals must stay healthy before degraded mode ends."),

    Setting("OBERON_DEGRADED", "degraded", mode_or_auto, None,
            "Force a mode at start: `degraded` or `normal`; `auto` (or empty) leaves it to the controller."),
    Setting("OBERON_DEGRADATION_FILE", "degradation_file", Path, None,
            "A watched file saying `degraded` or `normal` forces the mode (a ConfigMap in k8s)."),
    Setting("OBERON_ESI", "esi", bool, False,
            "Islands (the private components of public pages) are ESI includes a CDN in front fills; off, the "
            "browser fetches them after the page."),
    Setting("OBERON_PAGE_CACHE_SECONDS", "page_cache_seconds", float, DEFAULT_PAGE_CACHE_SECONDS,
            "Longest the renderer keeps an anonymous public page whose data is all cacheable (never longer than that "
            "data stays fresh); `0` turns the page cache off."),
    Setting("OBERON_STREAM_AFTER_MS", "stream_after_ms", milliseconds_or_off, DEFAULT_STREAM_AFTER_MS,
            "How long an app's page waits for its non-critical components once the critical ones are rendered, before"
            " it starts sending and streams the rest in place as they finish (a process busy for most of that wait "
            "keeps waiting, up to 100 ms in all); `off`: never stream."),

    Setting("OBERON_CACHE_SHARED_MAX_AGE", "cache.shared_max_age", int, DEFAULT_CACHE_SHARED_MAX_AGE,
            "`s-maxage` of a public page in normal mode."),
    Setting("OBERON_CACHE_DEGRADED_MAX_AGE", "cache.degraded_max_age", int, DEFAULT_CACHE_DEGRADED_MAX_AGE,
            "`s-maxage` of a public page in degraded mode: 60 to 300 seconds."),
    Setting("OBERON_CACHE_FALLBACK_MAX_AGE", "cache.fallback_max_age", int, DEFAULT_CACHE_FALLBACK_MAX_AGE,
            "`s-maxage` of a page that shows a fallback."),
    Setting("OBERON_CACHE_STALE_WHILE_REVALIDATE", "cache.stale_while_revalidate", int,
            DEFAULT_CACHE_STALE_WHILE_REVALIDATE,
            "`stale-while-revalidate` of public pages."),
    Setting("OBERON_CACHE_STALE_IF_ERROR", "cache.stale_if_error", int, DEFAULT_CACHE_STALE_IF_ERROR,
            "`stale-if-error` of public pages (Varnish's grace)."),

    Setting("OBERON_SESSION_SECRET", "gateway.session_secret", str, DEFAULT_SESSION_SECRET,
            "Signs the session cookie; at least 32 characters. The default is public: demo only."),
    Setting("OBERON_SESSION_MAX_AGE", "gateway.session_max_age", int, DEFAULT_SESSION_MAX_AGE,
            "Seconds a session lasts."),
    Setting("OBERON_SESSION_STORE", "gateway.session_store", str, "",
            "Where sessions and sign-in failure counts live: empty, in the gateway's process (one gateway); "
            "`redis://host:port/db` (or `rediss://`), in Redis, shared by every gateway replica. Unreachable: "
            "signed-in requests and sign-ins get 503."),
    Setting("OBERON_SIGN_IN_MAX_FAILURES", "gateway.sign_in_max_failures", int, DEFAULT_SIGN_IN_MAX_FAILURES,
            "Failed sign-ins from one client address, or for one user name, within the window that block further "
            "attempts (429 with `Retry-After`) for the backoff; each further failure doubles the block."),
    Setting("OBERON_SIGN_IN_WINDOW_SECONDS", "gateway.sign_in_window_seconds", int, DEFAULT_SIGN_IN_WINDOW_SECONDS,
            "Failed sign-ins count until this long after the last one; also the longest block."),
    Setting("OBERON_SIGN_IN_BACKOFF_SECONDS", "gateway.sign_in_backoff_seconds", int,
            DEFAULT_SIGN_IN_BACKOFF_SECONDS,
            "The first block after too many failures; it doubles with each further failure, up to the window."),
    Setting("OBERON_JWT_KEY", "gateway.jwt_key", str, None,
            "Key that verifies Bearer JWTs; unset: every Bearer token is refused."),
    Setting("OBERON_JWT_ALGORITHMS", "gateway.jwt_algorithms", words, DEFAULT_JWT_ALGORITHMS,
            "Algorithms a JWT may use, one family per key; `none` is never accepted."),
    Setting("OBERON_JWT_AUDIENCE", "gateway.jwt_audience", str, DEFAULT_JWT_AUDIENCE,
            "The `aud` every JWT must carry."),
    Setting("OBERON_JWT_ISSUER", "gateway.jwt_issuer", str, None,
            "The `iss` every JWT must carry, when set."),
    Setting("OBERON_TRUSTED_PROXIES", "gateway.trusted_proxies", words, (),
            "Addresses or networks whose `X-Forwarded-*` headers the gateway believes."),
    Setting("OBERON_MAX_HEADER_BYTES", "gateway.max_header_bytes", int, DEFAULT_MAX_HEADER_BYTES,
            "Largest request headers (431) and URL (414) the gateway accepts."),
    Setting("OBERON_MAX_BODY_BYTES", "gateway.max_body_bytes", int, DEFAULT_MAX_BODY_BYTES,
            "Largest request body the gateway forwards (413)."),
    Setting("OBERON_ASSET_ORIGIN", "gateway.asset_origin", str, "",
            "Origin pages load assets from (a cookieless host); the CSP allows it."),
    Setting("OBERON_LOCALES", "gateway.locales", words, DEFAULT_LOCALES,
            "Locales the gateway negotiates from `Accept-Language`, the first the default."),
    Setting("OBERON_VISITOR_COOKIE", "gateway.visitor_cookie", bool, False,
            "The site follows a registry: a page request without a valid `oberon_visitor` cookie gets one (a canary "
            "bucket 00–99 for good), on an answer made `private, no-store`. Off: no visitor cookie is ever set."),
)
# fmt: on
