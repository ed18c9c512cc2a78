"""The trusted context the gateway hands to upstreams, and the incoming headers it never lets through.

Every incoming `X-Oberon-*` header is deleted (in any case, repeated, or spelled with `_`), as are
`X-Forwarded-*`, `Forwarded`, `X-Real-IP` and `X-Request-Id`; then the gateway sets its own, from
what it verified. `X-Forwarded-*` from the caller is believed only when the caller's address is
one of the configured trusted proxies.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from gateway.auth import Identity
from oberon.headers import (
    AUTH_HEADER,
    DEVICE_HEADER,
    LOCALE_HEADER,
    REQUEST_ID,
    REQUEST_ID_HEADER,
    ROLES_HEADER,
    TRUSTED_PREFIX,
    USER_HEADER,
    new_request_id,
)

Headers = Sequence[tuple[str, str]]

_UNTRUSTED_NAMES = frozenset({"forwarded", "x-real-ip", "x-request-id"})
_HOST = re.compile(r"^[A-Za-z0-9.-]{1,253}(:[0-9]{1,5})?$|^\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?$")
_LANGUAGE = re.compile(r"^([A-Za-z]{1,8})(-[A-Za-z0-9]{1,8})*$|^\*$")
_BOT = re.compile(r"bot|crawl|spider|slurp|facebookexternalhit|preview", re.I)
_TABLET = re.compile(r"ipad|tablet|kindle|silk|playbook|android(?!.*mobile)", re.I)
_MOBILE = re.compile(r"mobi|iphone|ipod|android|blackberry|opera mini|iemobile|windows phone", re.I)
MAX_LANGUAGES = 16


def is_untrusted(name: str) -> bool:
    """Whether an incoming header is one only the gateway may set (or a proxy header it must not believe)."""
    lowered = name.lower().replace("_", "-")
    return lowered.startswith((TRUSTED_PREFIX, "x-forwarded-")) or lowered in _UNTRUSTED_NAMES


def request_id(incoming: str | None) -> str:
    """A well-formed incoming `X-Request-Id` is kept (so a trace crosses the gateway); otherwise a new one."""
    if incoming is not None and REQUEST_ID.match(incoming):
        return incoming
    return new_request_id()


# Browsers send few distinct Accept-Language and User-Agent values: each is worked out once (tens of µs a page).
_SEEN_HEADERS = 512


def negotiate_locale(accept_language: str, supported: Sequence[str]) -> str:
    """The supported locale the caller prefers most (`Accept-Language` with q-values), else the first supported."""
    return _negotiate_locale(accept_language, tuple(supported))


@functools.lru_cache(maxsize=_SEEN_HEADERS)
def _negotiate_locale(accept_language: str, supported: tuple[str, ...]) -> str:
    default = supported[0]
    by_tag = {locale.lower(): locale for locale in supported}
    by_language = {locale.lower().split("-")[0]: locale for locale in reversed(supported)}
    ranked: list[tuple[float, int, str]] = []
    for index, item in enumerate(accept_language.split(",")[:MAX_LANGUAGES]):
        tag, _, params = item.strip().partition(";")
        tag = tag.strip()
        if not _LANGUAGE.match(tag):
            continue
        quality = 1.0
        for param in params.split(";"):
            name, _, value = param.strip().partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        if 0 < quality <= 1:
            ranked.append((-quality, index, tag.lower()))
    for _, _, tag in sorted(ranked):
        if tag == "*":
            return default
        if tag in by_tag:
            return by_tag[tag]
        if tag.split("-")[0] in by_language:
            return by_language[tag.split("-")[0]]
    return default


@functools.lru_cache(maxsize=_SEEN_HEADERS)
def device_class(user_agent: str) -> str:
    """`bot`, `tablet`, `mobile` or `desktop`, from the User-Agent (a hint for layout, never for security)."""
    if _BOT.search(user_agent):
        return "bot"
    if _TABLET.search(user_agent):
        return "tablet"
    if _MOBILE.search(user_agent):
        return "mobile"
    return "desktop"


@dataclass(frozen=True)
class Caller:
    """Where the request came from, as far as the gateway can tell."""

    ip: str
    scheme: str
    host: str

    @functools.cached_property
    def raw_headers(self) -> tuple[tuple[bytes, bytes], ...]:
        """`X-Forwarded-For`, `-Proto` and `-Host` as the in-process hop's scope holds them: encoded once a caller
        (a connection's own `Caller` is one object, `_caller`)."""
        return (
            (_RAW_FORWARDED_FOR, self.ip.encode("latin-1")),
            (_RAW_FORWARDED_PROTO, self.scheme.encode("latin-1")),
            (_RAW_FORWARDED_HOST, self.host.encode("latin-1")),
        )


@functools.lru_cache(maxsize=_SEEN_HEADERS)
def _caller(ip: str, scheme: str, host: str) -> Caller:
    """The connection's own account of a caller: the same few values on every request of a connection."""
    return Caller(ip=ip, scheme=scheme, host=host)


def connection_caller(peer: str | None, scheme: str, host: str) -> Caller:
    """The caller as the connection tells it (what `ProxyTrust.resolve` gives for a peer it does not trust)."""
    return _caller(peer or "unknown", scheme, host)


class ProxyTrust:
    """Believes `X-Forwarded-For/-Proto/-Host` only when the direct peer is a configured proxy."""

    def __init__(self, networks: Iterable[str] = ()) -> None:
        self.networks = tuple(ipaddress.ip_network(network, strict=False) for network in networks)

    def trusts(self, address: str | None) -> bool:
        if not address or not self.networks:
            return False
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in network for network in self.networks)

    def resolve(self, *, peer: str | None, scheme: str, host: str, headers: Headers) -> Caller:
        """The caller's address, scheme and host: the connection's, or the trusted proxies' account of them."""
        direct = connection_caller(peer, scheme, host)
        if not self.trusts(peer):
            return direct
        chain = [part.strip() for value in _values(headers, "x-forwarded-for") for part in value.split(",")]
        ip = direct.ip
        # Walk back from the nearest hop: the first address that is not one of ours is the client.
        for hop in reversed(chain):
            if not _is_ip(hop):
                break
            ip = hop
            if not self.trusts(hop):
                break
        proto = (_values(headers, "x-forwarded-proto") or [""])[-1].strip().lower()
        forwarded_host = (_values(headers, "x-forwarded-host") or [""])[-1].strip()
        return Caller(
            ip=ip,
            scheme=proto if proto in ("http", "https") else scheme,
            host=forwarded_host if _HOST.match(forwarded_host) else host,
        )


@dataclass(frozen=True)
class TrustedContext:
    """What the gateway verified about one request; upstreams believe these headers and nothing else."""

    request_id: str
    identity: Identity
    locale: str
    device: str
    caller: Caller

    def headers(self) -> list[tuple[str, str]]:
        """The headers set on the request to the upstream."""
        return [(_NAMES[index], value) for index, value in enumerate(self._header_values())]

    def raw_headers(self) -> list[tuple[bytes, bytes]]:
        """`headers()` as an ASGI scope holds them: lower-case names, latin-1 bytes (the in-process hop's)."""
        request_id = self.request_id.encode("latin-1")
        identity = self.identity
        raw = [
            (_RAW_REQUEST_ID, request_id),
            (_RAW_X_REQUEST_ID, request_id),
            *_raw_traits(identity.method, self.locale, self.device),
            *self.caller.raw_headers,
        ]
        if identity.user is not None:
            raw += [
                (_RAW_USER, identity.user.encode("latin-1")),
                (_RAW_ROLES, ",".join(identity.roles).encode("latin-1")),
            ]
        return raw

    def _header_values(self) -> list[str]:
        """The values of `_NAMES`, in order; the user and roles only for a signed-in caller."""
        values = [self.request_id, self.request_id, self.identity.method.value, self.locale, self.device]
        values += [self.caller.ip, self.caller.scheme, self.caller.host]
        if self.identity.user is not None:
            values += [self.identity.user, ",".join(self.identity.roles)]
        return values


@functools.lru_cache(maxsize=_SEEN_HEADERS)
def _raw_traits(method: str, locale: str, device: str) -> tuple[tuple[bytes, bytes], ...]:
    """The hop's authentication method, locale and device headers (`TrustedContext.raw_headers`): encoded once for
    each of the few combinations (`method` a `StrEnum`: the member is its value)."""
    return (
        (_RAW_AUTH, method.encode("latin-1")),
        (_RAW_LOCALE, locale.encode("latin-1")),
        (_RAW_DEVICE, device.encode("latin-1")),
    )


# The names of `TrustedContext.headers()`, in order: as sent to a remote upstream, and as the in-process hop's scope.
_NAMES = (
    REQUEST_ID_HEADER,
    "X-Request-Id",
    AUTH_HEADER,
    LOCALE_HEADER,
    DEVICE_HEADER,
    "X-Forwarded-For",
    "X-Forwarded-Proto",
    "X-Forwarded-Host",
    USER_HEADER,
    ROLES_HEADER,
)
_RAW_NAMES = tuple(name.lower().encode("latin-1") for name in _NAMES)
(
    _RAW_REQUEST_ID,
    _RAW_X_REQUEST_ID,
    _RAW_AUTH,
    _RAW_LOCALE,
    _RAW_DEVICE,
    _RAW_FORWARDED_FOR,
    _RAW_FORWARDED_PROTO,
    _RAW_FORWARDED_HOST,
    _RAW_USER,
    _RAW_ROLES,
) = _RAW_NAMES


def _values(headers: Headers, name: str) -> list[str]:
    return [value for key, value in headers if key.lower() == name]


def _is_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True
