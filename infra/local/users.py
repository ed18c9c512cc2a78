"""The stand-in users service: the demo users, their profiles, and the check of a user name and password.

The demo users (all passwords are public, in the README):

| user  | password      | roles            |
|-------|---------------|------------------|
| alice | alice-tickets | customer         |
| bob   | bob-tickets   | customer         |
| carol | carol-tickets | customer, staff  |
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

NO_STORE = {"Cache-Control": "no-store"}
MAX_BODY_BYTES = 4096
MIN_PASSWORD_CHARS = 8
MAX_PASSWORD_CHARS = 1024
# Failed checks of one user name before each further one is refused (429) for a doubling time: the
# gateway throttles first (5 by default); this guards the service should anything reach it directly.
MAX_FAILURES = 10
WINDOW_SECONDS = 15 * 60
BACKOFF_SECONDS = 5


@dataclass(frozen=True)
class User:
    id: str
    name: str
    email: str
    roles: tuple[str, ...]
    member_since: str
    password: str
    disabled: bool = False

    def profile(self) -> dict[str, object]:
        return {
            "id": self.id,
            "name": self.name,
            "email": self.email,
            "roles": list(self.roles),
            "member_since": self.member_since,
        }


DEMO_USERS: tuple[User, ...] = (
    User("alice", "Alice Lindqvist", "alice@example.com", ("customer",), "2024-03-01", "alice-tickets"),
    User("bob", "Bob Okafor", "bob@example.com", ("customer",), "2025-06-15", "bob-tickets"),
    User("carol", "Carol Nakamura", "carol@example.com", ("customer", "staff"), "2023-11-20", "carol-tickets"),
)


def _digest(password: str) -> bytes:
    return hashlib.sha256(password.encode("utf-8")).digest()


class Attempts:
    """Failed password checks per user name, in this process: from the `max_failures`-th on, a doubling block."""

    def __init__(
        self,
        *,
        max_failures: int = MAX_FAILURES,
        window: float = WINDOW_SECONDS,
        backoff: float = BACKOFF_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_failures = max_failures
        self.window = window
        self.backoff = backoff
        self.clock = clock
        self._failures: dict[str, tuple[int, float]] = {}  # name → (count, counted until)
        self._blocked: dict[str, float] = {}  # name → until

    def retry_after(self, name: str) -> int:
        """Seconds `name` must wait before its next check; 0 when it may be checked now."""
        remaining = self._blocked.get(name, 0.0) - self.clock()
        return math.ceil(remaining) if remaining > 0 else 0

    def failed(self, name: str) -> None:
        now = self.clock()
        self._forget_expired(now)
        count, until = self._failures.get(name, (0, now))
        count = count + 1 if until > now else 1
        self._failures[name] = (count, now + self.window)
        if count >= self.max_failures:
            self._blocked[name] = now + min(self.backoff * 2 ** min(count - self.max_failures, 32), self.window)

    def succeeded(self, name: str) -> None:
        self._failures.pop(name, None)
        self._blocked.pop(name, None)

    def _forget_expired(self, now: float) -> None:
        if len(self._failures) > 1024:
            self._failures = {name: value for name, value in self._failures.items() if value[1] > now}
            self._blocked = {name: until for name, until in self._blocked.items() if until > now}


def _error(status_code: int, message: str, **headers: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status_code, headers={**NO_STORE, **headers})


async def _json_object(request: Request) -> dict[str, object] | None:
    body = await request.body()
    try:
        data = json.loads(body) if len(body) <= MAX_BODY_BYTES else None
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def create_app(name: str = "users", *, attempts: Attempts | None = None) -> Starlette:
    """The users service: authenticate, profiles, password change and disabling (see the routes below)."""
    users = {user.id: user for user in DEMO_USERS}  # this process's copy: passwords change, users get disabled
    throttle = attempts if attempts is not None else Attempts()
    # Compared in constant time, and against something even for an unknown user name.
    unknown = _digest("no such user")

    def check(user: User | None, password: object) -> bool:
        expected = _digest(user.password) if user else unknown
        given = _digest(password) if isinstance(password, str) else b""
        return hmac.compare_digest(expected, given) and user is not None

    async def authenticate(request: Request) -> Response:
        data = await _json_object(request)
        if data is None or not isinstance(data.get("username"), str):
            return _error(400, "expected {username, password}")
        username = str(data["username"])
        wait = throttle.retry_after(username)
        if wait:
            return _error(429, "too many failed attempts for this user name", **{"Retry-After": str(wait)})
        user = users.get(username)
        if not check(user, data.get("password")):
            throttle.failed(username)
            return _error(401, "unknown user or wrong password")
        assert user is not None
        throttle.succeeded(username)
        if user.disabled:
            return _error(403, "this user is disabled")
        return JSONResponse({"id": user.id, "name": user.name, "roles": list(user.roles)}, headers=NO_STORE)

    async def change_password(request: Request) -> Response:
        user = users.get(request.path_params["user_id"])
        data = await _json_object(request)
        if data is None or not isinstance(data.get("current"), str) or not isinstance(data.get("new"), str):
            return _error(400, "expected {current, new}")
        new = str(data["new"])
        if user is None:
            return _error(404, "user not found")
        wait = throttle.retry_after(user.id)
        if wait:
            return _error(429, "too many failed attempts for this user name", **{"Retry-After": str(wait)})
        if not check(user, data["current"]):
            throttle.failed(user.id)
            return _error(401, "the current password is not right")
        if user.disabled:
            return _error(403, "this user is disabled")
        if not MIN_PASSWORD_CHARS <= len(new) <= MAX_PASSWORD_CHARS:
            return _error(400, f"The new password must have {MIN_PASSWORD_CHARS} to {MAX_PASSWORD_CHARS} characters.")
        users[user.id] = replace(user, password=new)
        return JSONResponse({"id": user.id, "changed": True}, headers=NO_STORE)

    async def disable(request: Request) -> Response:
        user = users.get(request.path_params["user_id"])
        if user is None:
            return _error(404, "user not found")
        users[user.id] = replace(user, disabled=True)
        return JSONResponse({"id": user.id, "disabled": True}, headers=NO_STORE)

    async def profile(request: Request) -> Response:
        user = users.get(request.path_params["user_id"])
        if user is None:
            return _error(404, "user not found")
        return JSONResponse(user.profile(), headers=NO_STORE)

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok", "service": name}, headers=NO_STORE)

    return Starlette(
        routes=[
            # Checks a user name and password: 200 with the user, 401 wrong, 403 disabled, 429 throttled.
            Route("/authenticate", authenticate, methods=["POST"]),
            Route("/users/{user_id}", profile, methods=["GET"]),
            # {current, new}: 200 changed, 401 wrong current password, 400 unacceptable new one, 429 throttled.
            Route("/users/{user_id}/password", change_password, methods=["POST"]),
            # An operator's (through the gateway's admin route /_backends/users): sign-in refused from now on.
            Route("/users/{user_id}/disable", disable, methods=["POST"]),
            Route("/health", health, methods=["GET"]),
        ]
    )
