"""Who may change what in the registry: the platform token, team tokens, and the ownership rule.

The platform token (`OBERON_REGISTRY_ADMIN_TOKEN`, at least 32 characters) may do everything; it
is compared in constant time and never stored. A team token is issued by the platform
(`POST /registry/v1/tokens`), shown once, and stored only as its SHA-256 hash: a copy of the
database gives no token. Every token reads everything; a team token changes only the components
whose owner is its team.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from oberon.exceptions import ConfigError, OberonError

MIN_TOKEN_LENGTH = 32  # as every other secret of the platform
PLATFORM = "platform"  # the actor the platform token is recorded as
TEAM = re.compile(r"[a-z0-9][a-z0-9_.-]{0,63}")


class Unauthorized(OberonError):
    """No token, or one the registry does not know (401)."""


class Forbidden(OberonError):
    """A known token asking for what its team may not do (403)."""


@dataclass(frozen=True)
class Caller:
    """Who made a request: a team, or the platform (`team` None)."""

    team: str | None = None

    @property
    def actor(self) -> str:
        """The name history records for this caller."""
        return self.team if self.team is not None else PLATFORM

    def may_change(self, name: str, owners: Iterable[str]) -> None:
        """Raise Forbidden unless this caller owns `name`: the platform always, a team when it is every owner."""
        if self.team is None:
            return
        others = sorted({owner for owner in owners if owner != self.team})
        if others:
            raise Forbidden(f"team {self.team!r} does not own {name} (owner: {', '.join(others)})")


class PlatformToken:
    """The platform token, checked at start (at least 32 characters) and compared in constant time."""

    def __init__(self, token: str | None) -> None:
        if not token or len(token) < MIN_TOKEN_LENGTH:
            raise ConfigError(
                f"OBERON_REGISTRY_ADMIN_TOKEN must be set to at least {MIN_TOKEN_LENGTH} characters: it is the "
                "platform's token, which may change every component (e.g. python3 -c 'import secrets; "
                "print(secrets.token_urlsafe(32))')"
            )
        self._token = token.encode()

    def matches(self, presented: str) -> bool:
        return hmac.compare_digest(self._token, presented.encode())


class Authenticator:
    """Tells the caller of a request from its `Authorization` header; Unauthorized when it cannot."""

    def __init__(self, *, platform: PlatformToken, team_of: Callable[[str], str | None]) -> None:
        self._platform = platform
        self._team_of = team_of  # a token's hash → its team, or None

    def caller(self, authorization: str | None) -> Caller:
        token = bearer(authorization)
        if token is None:
            raise Unauthorized("send a token: Authorization: Bearer <OBERON_REGISTRY_TOKEN>")
        if self._platform.matches(token):
            return Caller()
        team = self._team_of(token_hash(token))
        if team is None:
            raise Unauthorized("the token is not one this registry issued")
        return Caller(team=team)


def bearer(authorization: str | None) -> str | None:
    """The token of an `Authorization: Bearer …` header, None when there is none."""
    scheme, _, token = (authorization or "").partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


def new_token() -> str:
    """A fresh team token: 256 random bits, URL-safe."""
    return secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    """What the store keeps of a token: its SHA-256, hex (a token is random, so no salt or stretching is needed)."""
    return hashlib.sha256(token.encode()).hexdigest()


def check_team(team: object) -> str:
    """`team` when it is a team name (lowercase letters, digits, `-`, `_`, `.`); ValueError otherwise."""
    if not isinstance(team, str) or not TEAM.fullmatch(team):
        raise ValueError("team: expected a team name (lowercase letters, digits, '-', '_', '.'; at most 64)")
    if team == PLATFORM:  # the history would not tell that team from the platform token
        raise ValueError(f"team: {PLATFORM!r} names the platform token, not a team")
    return team
