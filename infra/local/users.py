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
from dataclasses import dataclass

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

NO_STORE = {"Cache-Control": "no-store"}
MAX_BODY_BYTES = 4096


@dataclass(frozen=True)
class User:
    id: str
    name: str
    email: str
    roles: tuple[str, ...]
    member_since: str
    password: str

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


def create_app(name: str = "users") -> Starlette:
    """The users service: `POST /authenticate`, `GET /users/{user_id}`, `GET /health`."""
    users = {user.id: user for user in DEMO_USERS}
    # Compared in constant time, and against something even for an unknown user name.
    unknown = _digest("no such user")

    async def authenticate(request: Request) -> Response:
        body = await request.body()
        try:
            data = json.loads(body) if len(body) <= MAX_BODY_BYTES else None
        except ValueError:
            data = None
        if not isinstance(data, dict) or not isinstance(data.get("username"), str):
            return JSONResponse({"error": "expected {username, password}"}, status_code=400, headers=NO_STORE)
        password = data.get("password")
        user = users.get(data["username"])
        expected = _digest(user.password) if user else unknown
        given = _digest(password) if isinstance(password, str) else b""
        if user is None or not hmac.compare_digest(expected, given):
            return JSONResponse({"error": "unknown user or wrong password"}, status_code=401, headers=NO_STORE)
        return JSONResponse({"id": user.id, "name": user.name, "roles": list(user.roles)}, headers=NO_STORE)

    async def profile(request: Request) -> Response:
        user = users.get(request.path_params["user_id"])
        if user is None:
            return JSONResponse({"error": "user not found"}, status_code=404, headers=NO_STORE)
        return JSONResponse(user.profile(), headers=NO_STORE)

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok", "service": name}, headers=NO_STORE)

    return Starlette(
        routes=[
            Route("/authenticate", authenticate, methods=["POST"]),
            Route("/users/{user_id}", profile, methods=["GET"]),
            Route("/health", health, methods=["GET"]),
        ]
    )
