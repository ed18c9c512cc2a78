"""The gateway's errors.

OberonError (oberon/exceptions.py)
├── ConfigError
│   └── RouteTableError       every problem of the routing table, as file:line
└── GatewayError            the gateway refuses a request, or cannot forward it
    ├── AuthenticationError   credentials were presented and are not valid (401)
    ├── BodyTooLarge          the request body passed the limit (413)
    ├── TooManyAttempts       sign-in is throttled for this address or user name (429)
    ├── StoreUnavailable      the session store cannot be reached: signed-in requests fail closed (503)
    └── UpstreamUnavailable   the upstream is down or broke (502) or too slow (504)
SendFailed                  (internal to the proxy) the connection broke while a request was sent
"""

from __future__ import annotations

from collections.abc import Sequence

from oberon.exceptions import ConfigError, OberonError


class RouteTableError(ConfigError):
    """The routing table is invalid; `errors` lists every problem as `file:line: message`."""

    def __init__(self, errors: Sequence[str]) -> None:
        self.errors = list(errors)
        super().__init__("the routing table has errors:\n" + "\n".join(f"  {error}" for error in self.errors))


class GatewayError(OberonError):
    """The gateway refuses a request, or cannot forward it."""


class AuthenticationError(GatewayError):
    """Credentials were presented and are not valid; `reason` says why (safe to show the caller)."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


class BodyTooLarge(GatewayError):
    """The request body passed the gateway's limit."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        super().__init__(f"the request body is larger than {limit} bytes")


class TooManyAttempts(GatewayError):
    """Too many failed sign-ins from this address or for this user name: wait `retry_after` seconds."""

    def __init__(self, retry_after: int) -> None:
        self.retry_after = retry_after
        super().__init__(f"too many failed attempts; retry after {retry_after} s")


class StoreUnavailable(GatewayError):
    """The session store (Redis) did not answer; `reason` says how (for the log, not the caller)."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(f"the session store is unavailable: {reason}")


class UpstreamUnavailable(GatewayError):
    """The upstream did not answer: 502 when it is unreachable or broke, 504 when it was too slow."""

    def __init__(self, upstream: str, reason: str, *, status_code: int = 502) -> None:
        self.upstream = upstream
        self.reason = reason
        self.status_code = status_code
        super().__init__(f"{upstream}: {reason}")


class SendFailed(Exception):
    """The request could not be sent or its answer not received (refused, reset, malformed…)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
