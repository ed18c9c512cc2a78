"""The gateway's own HTML: sign-in, sign-out and password forms, and the page that says which service failed."""

from __future__ import annotations

import jinja2


def create_environment() -> jinja2.Environment:
    """The Jinja environment of the gateway's templates: autoescaped, undefined names are errors."""
    return jinja2.Environment(
        loader=jinja2.PackageLoader("gateway", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )


class Pages:
    """Renders the gateway's pages."""

    def __init__(self, *, environment: jinja2.Environment) -> None:
        self.environment = environment

    def sign_in(self, *, next: str, username: str = "", error: str = "") -> str:
        return self.environment.get_template("sign_in.html").render(next=next, username=username, error=error)

    def sign_out(self, *, user: str | None) -> str:
        return self.environment.get_template("sign_out.html").render(user=user)

    def password(self, *, user: str, error: str = "") -> str:
        return self.environment.get_template("password.html").render(user=user, error=error)

    def password_changed(self, *, user: str) -> str:
        return self.environment.get_template("password_changed.html").render(user=user)

    def error(self, *, title: str, message: str, request_id: str) -> str:
        return self.environment.get_template("error.html").render(title=title, message=message, request_id=request_id)
