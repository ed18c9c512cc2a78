"""Account BFF: the signed-in user's profile, for the account page.

Who is signed in comes from `X-Oberon-User`, which only the gateway sets (and the renderer
passes on); this BFF never sees a session cookie or a token.
"""

from __future__ import annotations

from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from oberon import Upstreams
from oberon.bff import PRIVATE, USER_HEADER, USER_ID, create_bff, fetch, view_model

PROFILE_FIELDS = ("id", "name", "email", "member_since")


def profile(user: dict[str, Any]) -> dict[str, Any]:
    """The `account-profile` view model: the user's details and roles, with the year they joined."""
    view: dict[str, Any] = {field: str(user[field]) for field in PROFILE_FIELDS}
    view["roles"] = [str(role) for role in user["roles"]]
    view["member_since_year"] = view["member_since"][:4]
    return view


def create_app(upstreams: Upstreams) -> Starlette:
    """The account BFF over the `users` backend."""

    async def me(request: Request) -> Response:
        user = request.headers.get(USER_HEADER, "")
        if not USER_ID.match(user):
            return view_model({"error": "sign in to see your account"}, 401)
        return view_model(
            await fetch(upstreams, "users", f"/users/{user}", request, view=profile), cache_control=PRIVATE
        )

    return create_bff([Route("/me", me, methods=["GET"])], upstreams=upstreams, requires=["users"])
