"""Who is calling: the signed session cookie, a Bearer JWT, and where a sign-in may send the browser back to.

Free of HTTP objects: values in, an `Identity` (or `AuthenticationError` with the reason) out.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import itsdangerous
import jwt

from gateway.errors import AuthenticationError
from oberon.headers import ROLE, USER_ID

SESSION_COOKIE = "oberon_session"
SECURE_SESSION_COOKIE = "__Host-oberon_session"
SESSION_COOKIES = (SESSION_COOKIE, SECURE_SESSION_COOKIE)  # neither ever reaches an upstream
MAX_SESSION_ID_CHARS = 64  # secrets.token_urlsafe(32) is 43
SESSION_SALT = "oberon.session"
SIGN_IN_PATH = "/auth/sign-in"
SIGN_OUT_PATH = "/auth/sign-out"
PASSWORD_PATH = "/auth/password"
DEFAULT_LEEWAY = 30
MAX_NEXT_LENGTH = 2048
MAX_ROLES = 16


class Method(enum.StrEnum):
    """How the caller proved who it is."""

    ANONYMOUS = "anonymous"
    SESSION = "session"
    BEARER = "bearer"


@dataclass(frozen=True)
class Identity:
    """A verified caller, or the anonymous one (`user` is None)."""

    user: str | None = None
    roles: tuple[str, ...] = ()
    method: Method = Method.ANONYMOUS

    @property
    def signed_in(self) -> bool:
        return self.user is not None


ANONYMOUS = Identity()


def identity_from_claims(user: Any, roles: Any, method: Method) -> Identity:
    """An Identity from untrusted claim values, checked to be safe as header values."""
    if not isinstance(user, str) or not USER_ID.match(user):
        raise AuthenticationError("the user id is missing or malformed")
    if roles is None:
        roles = []
    if not isinstance(roles, list) or len(roles) > MAX_ROLES:
        raise AuthenticationError("roles must be a list of role names")
    if not all(isinstance(role, str) and ROLE.match(role) for role in roles):
        raise AuthenticationError("a role name is malformed")
    return Identity(user=user, roles=tuple(roles), method=method)


class SessionCodec:
    """The session cookie: a server-side session's id, signed and timestamped with the session secret.

    Over https the cookie is `__Host-oberon_session` (`Secure`, `Path=/`, no `Domain`: no other
    host, a sibling subdomain included, can set or overwrite it); over plain http, where browsers
    refuse that prefix, `oberon_session`. A request is read under its own scheme's name only.
    """

    def __init__(self, *, secret: str, max_age: int) -> None:
        self.max_age = max_age
        self._serializer = itsdangerous.URLSafeTimedSerializer(secret, salt=SESSION_SALT)

    def issue(self, session_id: str) -> str:
        """A cookie value naming a session."""
        return self._serializer.dumps(session_id)

    def verify(self, value: str) -> str:
        """The session id in a cookie value; AuthenticationError when forged, expired or malformed."""
        try:
            session_id = self._serializer.loads(value, max_age=self.max_age)
        except itsdangerous.SignatureExpired:
            raise AuthenticationError("the session has expired") from None
        except itsdangerous.BadData:
            raise AuthenticationError("the session cookie is not valid") from None
        if not isinstance(session_id, str) or not 0 < len(session_id) <= MAX_SESSION_ID_CHARS:
            raise AuthenticationError("the session cookie is not valid")
        return session_id

    def set_cookie(self, session_id: str, *, https: bool) -> str:
        """The `Set-Cookie` value that starts a session."""
        return _cookie(self.issue(session_id), max_age=self.max_age, https=https)

    def clear_cookie(self, *, https: bool) -> str:
        """The `Set-Cookie` value that ends a session."""
        return _cookie("", max_age=0, https=https)


def session_cookie_name(*, https: bool) -> str:
    """`__Host-oberon_session` over https, `oberon_session` over plain http."""
    return SECURE_SESSION_COOKIE if https else SESSION_COOKIE


def _cookie(value: str, *, max_age: int, https: bool) -> str:
    name = session_cookie_name(https=https)
    attributes = [f"{name}={value}", "Path=/", f"Max-Age={max_age}", "HttpOnly", "SameSite=Lax"]
    if https:
        attributes.append("Secure")
    return "; ".join(attributes)


class BearerVerifier:
    """Verifies `Authorization: Bearer <JWT>` against one key and an explicit allow-list of algorithms.

    `alg: none`, an algorithm outside the list, a wrong signature, an expired token, a token for
    another audience (or issuer) and a token without `exp`, `aud` or `sub` are all rejected.
    """

    def __init__(
        self,
        *,
        key: str | None,
        algorithms: Sequence[str],
        audience: str,
        issuer: str | None = None,
        leeway: int = DEFAULT_LEEWAY,
    ) -> None:
        assert "none" not in {name.lower() for name in algorithms}, "alg none is never allowed"
        self.key = key
        self.algorithms = list(algorithms)
        self.audience = audience
        self.issuer = issuer
        self.leeway = leeway

    def verify(self, token: str) -> Identity:
        if self.key is None:
            raise AuthenticationError("bearer tokens are not accepted here (no OBERON_JWT_KEY)")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.DecodeError:
            raise AuthenticationError("the token is malformed") from None
        if header.get("alg") not in self.algorithms:
            raise AuthenticationError(f"the token's algorithm {header.get('alg')!r} is not allowed")
        required = ["exp", "aud", "sub"] + (["iss"] if self.issuer else [])
        try:
            claims = jwt.decode(
                token,
                self.key,
                algorithms=self.algorithms,
                audience=self.audience,
                issuer=self.issuer,
                leeway=self.leeway,
                options={"require": required},
            )
        except jwt.ExpiredSignatureError:
            raise AuthenticationError("the token has expired") from None
        except jwt.InvalidAudienceError:
            raise AuthenticationError("the token is for another audience") from None
        except jwt.InvalidIssuerError:
            raise AuthenticationError("the token is from another issuer") from None
        except jwt.InvalidSignatureError:
            raise AuthenticationError("the token's signature is not valid") from None
        except jwt.MissingRequiredClaimError as exc:
            raise AuthenticationError(f"the token has no {exc.claim!r} claim") from None
        except jwt.InvalidTokenError:
            raise AuthenticationError("the token is not valid") from None
        return identity_from_claims(claims.get("sub"), claims.get("roles"), Method.BEARER)


def bearer_token(authorization: str) -> str:
    """The token of an `Authorization: Bearer <token>` value; AuthenticationError for any other scheme."""
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthenticationError("expected Authorization: Bearer <token>")
    return token.strip()


def safe_next(value: str | None, default: str = "/") -> str:
    """A same-site path to return to after sign-in; anything else (another host, a scheme, `//`) gives `default`.

    Browsers ignore tabs and newlines in URLs and read `\\` as `/`, so `/\\evil.example` or
    `/\\t/evil.example` would leave the site: those, spaces and non-ASCII make the value unsafe.
    """
    if not value or len(value) > MAX_NEXT_LENGTH:
        return default
    if not value.startswith("/") or value.startswith("//"):
        return default
    if "\\" in value or not all(0x21 <= ord(char) < 0x7F for char in value):
        return default
    parts = urlsplit(value)
    if parts.scheme or parts.netloc:
        return default
    if parts.path in (SIGN_IN_PATH, SIGN_OUT_PATH):
        return default
    return value
