"""The users service as the gateway sees it: is this user name and password right, who is it, change a password."""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass
from urllib.parse import quote

import httpx

from gateway.auth import Identity, Method, identity_from_claims
from gateway.errors import AuthenticationError, TooManyAttempts, UpstreamUnavailable
from gateway.proxy import Upstream
from oberon.headers import REQUEST_ID_HEADER

AUTHENTICATE_PATH = "/authenticate"
PASSWORD_PATH = "/users/{user}/password"
DEFAULT_TIMEOUT = 2.0
MAX_ANSWER_BYTES = 64 * 1024
MAX_MESSAGE_CHARS = 200
DEFAULT_RETRY_AFTER = 60
MAX_RETRY_AFTER = 24 * 3600


class Outcome(enum.StrEnum):
    """How a password change went."""

    CHANGED = "changed"
    WRONG_PASSWORD = "wrong_password"  # the current password is not right (or the user is gone or disabled)
    REFUSED = "refused"  # the new password is not acceptable; the message says why


@dataclass(frozen=True)
class PasswordChange:
    outcome: Outcome
    message: str = ""


class UserDirectory:
    """Checks credentials with the users service (`POST /authenticate`) and changes passwords there."""

    def __init__(self, *, upstream: Upstream | None, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.upstream = upstream
        self.timeout = timeout

    async def authenticate(self, username: str, password: str, *, request_id: str) -> Identity | None:
        """The user's identity, or None for a wrong user name or password.

        TooManyAttempts when the users service throttles this user name; UpstreamUnavailable when unavailable.
        """
        status, answer = await self._post(AUTHENTICATE_PATH, {"username": username, "password": password}, request_id)
        if status in (401, 403, 404):
            return None
        if status != 200:
            raise self._unexpected(AUTHENTICATE_PATH, f"answered {status}")
        try:
            user = json.loads(answer)
            return identity_from_claims(user.get("id"), user.get("roles"), Method.SESSION)
        except (ValueError, AttributeError, AuthenticationError):
            raise self._unexpected(AUTHENTICATE_PATH, "answered an unexpected body") from None

    async def change_password(self, user: str, current: str, new: str, *, request_id: str) -> PasswordChange:
        """Change `user`'s password from `current` to `new` (`POST /users/{user}/password`)."""
        path = PASSWORD_PATH.format(user=quote(user, safe=""))
        status, answer = await self._post(path, {"current": current, "new": new}, request_id)
        if status == 200:
            return PasswordChange(Outcome.CHANGED)
        if status in (401, 403, 404):
            return PasswordChange(Outcome.WRONG_PASSWORD)
        if status == 400:
            return PasswordChange(Outcome.REFUSED, _message(answer))
        raise self._unexpected(path, f"answered {status}")

    async def _post(self, path: str, payload: dict[str, str], request_id: str) -> tuple[int, bytes]:
        """The status and body of a JSON POST; a 429 becomes TooManyAttempts, as the gateway's own throttle."""
        if self.upstream is None:
            raise UpstreamUnavailable("users", "no users service is configured", status_code=503)
        headers = [
            ("Content-Type", "application/json"),
            ("Accept", "application/json"),
            (REQUEST_ID_HEADER, request_id),
        ]
        body = json.dumps(payload).encode("utf-8")
        response = await self.upstream.send("POST", path, headers=headers, body=body, timeout=self.timeout)
        try:
            answer = await response.aread()
        finally:
            await response.aclose()
        if len(answer) > MAX_ANSWER_BYTES:
            raise self._unexpected(path, "answered too large a body")
        if response.status_code == 429:
            raise TooManyAttempts(_retry_after(response))
        return response.status_code, answer

    def _unexpected(self, path: str, what: str) -> UpstreamUnavailable:
        assert self.upstream is not None
        return UpstreamUnavailable(self.upstream.name, f"POST {path} {what}")


def _retry_after(response: httpx.Response) -> int:
    """The users service's `Retry-After` in seconds (a date or nonsense gives the default), within bounds."""
    value = response.headers.get("retry-after", "")
    seconds = int(value) if value.isdigit() else DEFAULT_RETRY_AFTER
    return min(max(seconds, 1), MAX_RETRY_AFTER)


def _message(answer: bytes) -> str:
    """The users service's reason for refusing a new password, or a general one."""
    try:
        message = json.loads(answer).get("error")
    except (ValueError, AttributeError):
        message = None
    if not isinstance(message, str) or not message.strip():
        return "The new password is not acceptable."
    return message.strip()[:MAX_MESSAGE_CHARS]
