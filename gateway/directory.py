"""The users service as the gateway's sign-in sees it: is this user name and password right, and who is it?"""

from __future__ import annotations

import json

from gateway.auth import Identity, Method, identity_from_claims
from gateway.errors import AuthenticationError, UpstreamUnavailable
from gateway.proxy import Upstream
from oberon.headers import REQUEST_ID_HEADER

AUTHENTICATE_PATH = "/authenticate"
DEFAULT_TIMEOUT = 2.0
MAX_ANSWER_BYTES = 64 * 1024


class UserDirectory:
    """Checks credentials with the users service (`POST /authenticate`)."""

    def __init__(self, *, upstream: Upstream | None, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.upstream = upstream
        self.timeout = timeout

    async def authenticate(self, username: str, password: str, *, request_id: str) -> Identity | None:
        """The user's identity, or None for a wrong user name or password; UpstreamUnavailable when unavailable."""
        if self.upstream is None:
            raise UpstreamUnavailable("users", "no users service is configured", status_code=503)
        body = json.dumps({"username": username, "password": password}).encode("utf-8")
        headers = [
            ("Content-Type", "application/json"),
            ("Accept", "application/json"),
            (REQUEST_ID_HEADER, request_id),
        ]
        response = await self.upstream.send("POST", AUTHENTICATE_PATH, headers=headers, body=body, timeout=self.timeout)
        try:
            answer = await response.aread()
        finally:
            await response.aclose()
        if response.status_code in (401, 403, 404):
            return None
        if response.status_code != 200 or len(answer) > MAX_ANSWER_BYTES:
            raise UpstreamUnavailable(self.upstream.name, f"POST {AUTHENTICATE_PATH} answered {response.status_code}")
        try:
            user = json.loads(answer)
            return identity_from_claims(user.get("id"), user.get("roles"), Method.SESSION)
        except (ValueError, AttributeError, AuthenticationError):
            raise UpstreamUnavailable(
                self.upstream.name, f"POST {AUTHENTICATE_PATH} answered an unexpected body"
            ) from None
