"""The default of every `OBERON_*` setting, in one place.

`DEFAULT_X` is the value `OBERON_X` takes when it is unset, in that variable's units (milliseconds
where its name says `_MS`). A variable not listed here is unset by default (empty, or `None`).
The settings table (`oberon.runtime.settings.SETTINGS`) and the settings objects that hold these
values (`BreakerSettings`, `CachePolicy`, `GatewaySettings`…) all read them from here.
"""

from __future__ import annotations

from pathlib import Path

DEFAULT_SITE_FILE = Path("oberon.toml")
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
DEFAULT_ADMIN_HOST = "127.0.0.1"  # the admin listener's port is unset by default: the public port + 1
DEFAULT_UPSTREAM_TIMEOUT = 2.0
DEFAULT_BUILD_DIR = Path("build/assets")  # relative to the site file's folder; OBERON_BUILD_DIR itself is unset
DEFAULT_TRACES_EXPORTER = "none"
DEFAULT_PAGE_CACHE_SECONDS = 10.0
DEFAULT_REGISTRY_CACHE_DIR = Path(".oberon/registry-cache")  # relative to the site file's folder (gitignored)
DEFAULT_REGISTRY_POLL_SECONDS = 1.0  # a promote or rollback reaches every renderer well within 5 s
DEFAULT_REGISTRY_CDN_PURGE_AGAIN_SECONDS = 3.0  # by then renderers polling every second serve the change
DEFAULT_STREAM_AFTER_MS = 10.0

# Requests in flight at an entrance (gateway, renderer): the adaptive limit moves between these bounds.
# 64 at least: 64 clients asking in a closed loop (the peers' benchmark, issue 19) are load, not overload, and
# one core answers 64 pages of five calls in about 150 ms, within the 250 ms objective for admitted pages under
# overload. With 32 the limit fell to 32 there and half the pages were 503s while the core had room for them.
# Measured under 10 x overload (bench/README.md, `overload`, 2026-12-06): a floor of 16 did no better than 32;
# 8 cut the admitted p99 by a third. An operator sizing one core for latency sets 8.
DEFAULT_ADMISSION_MIN_LIMIT = 64
DEFAULT_ADMISSION_INITIAL_LIMIT = 64
DEFAULT_ADMISSION_MAX_LIMIT = 1000

DEFAULT_BREAKER_FAILURE_RATIO = 0.5
DEFAULT_BREAKER_WINDOW_SECONDS = 10.0
DEFAULT_BREAKER_MIN_CALLS = 10
DEFAULT_BREAKER_OPEN_SECONDS = 5.0
# Calls in flight to one upstream (pool waits included; the pool holds as many connections). The admission floor's
# 64 pages of five calls to one BFF (the peers' benchmark, issue 19) are 320: at 256, 5 % of those pages had a
# component fail fast. 512 leaves room for 64 pages of eight calls each.
DEFAULT_BULKHEAD_MAX_IN_FLIGHT = 512

DEFAULT_DEGRADATION_WINDOW_SECONDS = 30.0
DEFAULT_DEGRADATION_MIN_CALLS = 20
DEFAULT_DEGRADATION_ERROR_RATIO = 0.25
DEFAULT_DEGRADATION_P95_MS = 500.0
DEFAULT_DEGRADATION_OPEN_BREAKERS = 1
DEFAULT_DEGRADATION_HOLD_SECONDS = 60.0

DEFAULT_CACHE_SHARED_MAX_AGE = 30
DEFAULT_CACHE_DEGRADED_MAX_AGE = 300
DEFAULT_CACHE_FALLBACK_MAX_AGE = 5
DEFAULT_CACHE_STALE_WHILE_REVALIDATE = 30
DEFAULT_CACHE_STALE_IF_ERROR = 300

# Only for the demo on a developer's machine: anyone who reads this can forge a session.
DEFAULT_SESSION_SECRET = "INSECURE-oberon-demo-session-secret-set-OBERON_SESSION_SECRET"
DEFAULT_SESSION_MAX_AGE = 8 * 3600
DEFAULT_SIGN_IN_MAX_FAILURES = 5  # per client address and per user name, within the window
DEFAULT_SIGN_IN_WINDOW_SECONDS = 15 * 60
DEFAULT_SIGN_IN_BACKOFF_SECONDS = 5  # the first block; it doubles with each further failure, up to the window
DEFAULT_JWT_ALGORITHMS: tuple[str, ...] = ("HS256",)
DEFAULT_JWT_AUDIENCE = "oberon"
DEFAULT_MAX_HEADER_BYTES = 8 * 1024
DEFAULT_HEADER_TIMEOUT = 10.0  # seconds a request's headers may take to arrive (slowloris)
DEFAULT_MAX_CONNECTIONS = 1024  # connections (or requests in flight) a process serves before answering 503
DEFAULT_MAX_BODY_BYTES = 1024 * 1024
DEFAULT_WORKERS = 0  # `oberon up`'s worker processes: 0, one per CPU the process may use
DEFAULT_LOCALES: tuple[str, ...] = ("en",)
