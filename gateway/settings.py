"""The gateway's settings: how it authenticates requests and what it lets through."""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from gateway.stores import check_store_url
from oberon.defaults import (
    DEFAULT_JWT_ALGORITHMS,
    DEFAULT_JWT_AUDIENCE,
    DEFAULT_LOCALES,
    DEFAULT_MAX_BODY_BYTES,
    DEFAULT_MAX_HEADER_BYTES,
    DEFAULT_SESSION_MAX_AGE,
    DEFAULT_SIGN_IN_BACKOFF_SECONDS,
    DEFAULT_SIGN_IN_MAX_FAILURES,
    DEFAULT_SIGN_IN_WINDOW_SECONDS,
)
from oberon.defaults import DEFAULT_SESSION_SECRET as DEV_SESSION_SECRET
from oberon.exceptions import ConfigError

MIN_SECRET_LENGTH = 32
# One family per key, so a public key can never be used as an HMAC secret (algorithm confusion).
JWT_ALGORITHM_FAMILIES: Mapping[str, tuple[str, ...]] = {
    "HMAC": ("HS256", "HS384", "HS512"),
    "RSA": ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512"),
    "EC": ("ES256", "ES384", "ES512"),
    "OKP": ("EdDSA",),
}


@dataclass(frozen=True)
class GatewaySettings:
    """How the gateway authenticates requests and what it lets through."""

    session_secret: str = DEV_SESSION_SECRET
    session_max_age: int = DEFAULT_SESSION_MAX_AGE
    session_store: str = ""  # empty: in this process; redis://host:port/db: shared by every replica
    sign_in_max_failures: int = DEFAULT_SIGN_IN_MAX_FAILURES
    sign_in_window_seconds: int = DEFAULT_SIGN_IN_WINDOW_SECONDS
    sign_in_backoff_seconds: int = DEFAULT_SIGN_IN_BACKOFF_SECONDS
    jwt_key: str | None = None
    jwt_algorithms: tuple[str, ...] = DEFAULT_JWT_ALGORITHMS
    jwt_audience: str = DEFAULT_JWT_AUDIENCE
    jwt_issuer: str | None = None
    trusted_proxies: tuple[str, ...] = ()
    max_header_bytes: int = DEFAULT_MAX_HEADER_BYTES
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    asset_origin: str = ""
    locales: tuple[str, ...] = DEFAULT_LOCALES
    public_url: str = ""  # OBERON_PUBLIC_URL: the origin browsers use; `https://…` means every caller is on https
    visitor_cookie: bool = False  # the site follows a registry: give new visitors a canary bucket (gateway.visitor)


    def __post_init__(self) -> None:
        if len(self.session_secret) < MIN_SECRET_LENGTH:
            raise ConfigError(f"OBERON_SESSION_SECRET must be at least {MIN_SECRET_LENGTH} characters")
        if self.session_max_age <= 0:
            raise ConfigError("OBERON_SESSION_MAX_AGE must be a positive number of seconds")
        check_store_url(self.session_store)
        if min(self.sign_in_max_failures, self.sign_in_window_seconds, self.sign_in_backoff_seconds) < 1:
            raise ConfigError(
                "OBERON_SIGN_IN_MAX_FAILURES, OBERON_SIGN_IN_WINDOW_SECONDS and OBERON_SIGN_IN_BACKOFF_SECONDS "
                "must be at least 1"
            )
        families = {family for family, names in JWT_ALGORITHM_FAMILIES.items() if set(self.jwt_algorithms) & set(names)}
        known = [name for names in JWT_ALGORITHM_FAMILIES.values() for name in names]
        unknown = [name for name in self.jwt_algorithms if name not in known]
        if unknown or not self.jwt_algorithms:
            raise ConfigError(f"OBERON_JWT_ALGORITHMS: {unknown or 'none'} not allowed; choose from {', '.join(known)}")
        if len(families) > 1:
            mixed = " and ".join(sorted(families))
            raise ConfigError(f"OBERON_JWT_ALGORITHMS: one key cannot serve both {mixed} algorithms")
        if self.jwt_key is not None and "HMAC" in families and len(self.jwt_key) < MIN_SECRET_LENGTH:
            raise ConfigError(f"OBERON_JWT_KEY must be at least {MIN_SECRET_LENGTH} characters for HMAC algorithms")
        for proxy in self.trusted_proxies:
            try:
                ipaddress.ip_network(proxy, strict=False)
            except ValueError:
                raise ConfigError(f"OBERON_TRUSTED_PROXIES: {proxy!r} is not an IP address or network") from None
        if self.max_header_bytes < 1024 or self.max_body_bytes < 0:
            raise ConfigError("OBERON_MAX_HEADER_BYTES must be at least 1024 and OBERON_MAX_BODY_BYTES not negative")
        if self.asset_origin:
            parts = urlsplit(self.asset_origin)
            if parts.scheme not in ("http", "https") or not parts.netloc or parts.path or parts.query:
                raise ConfigError(f"OBERON_ASSET_ORIGIN must be scheme://host[:port], got {self.asset_origin!r}")
        if self.public_url:
            parts = urlsplit(self.public_url)
            if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
                raise ConfigError(f"OBERON_PUBLIC_URL must be http(s)://host[:port][/path], got {self.public_url!r}")
        if not self.locales or not all(locale.replace("-", "").isalnum() for locale in self.locales):
            raise ConfigError(f"OBERON_LOCALES must list language tags, got {self.locales!r}")

    @property
    def public_origin(self) -> str:
        """`scheme://host[:port]` of the public URL (what a browser sends as `Origin`); empty without one."""
        parts = urlsplit(self.public_url)
        return f"{parts.scheme}://{parts.netloc}".lower() if self.public_url else ""

    @functools.cached_property  # asked on every proxied request; the settings are frozen
    def public_https(self) -> bool:
        """Browsers reach the site over https, whatever the hop to the gateway was (TLS ends before it)."""
        return self.public_origin.startswith("https://")

    @property
    def insecure_secret(self) -> bool:
        """True while the session secret is the published demo default."""
        return self.session_secret == DEV_SESSION_SECRET
