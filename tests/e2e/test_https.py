"""https behind a proxy: a TLS terminator in front of Varnish in front of `oberon up --cdn`, as in production."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager

import httpx

Server = Callable[..., AbstractContextManager[str]]
FORM = {"username": "alice", "password": "alice-tickets", "next": "/account"}


def test_https_sign_in_through_varnish_with_an_https_public_url(server: Server) -> None:
    public = "https://tickets.test"
    with server("--cdn", env={"OBERON_PUBLIC_URL": public}) as base:
        # As a TLS terminator forwards the browser's form: the browser's Origin, and the scheme it used.
        response = httpx.post(
            f"{base}/auth/sign-in", data=FORM, headers={"Origin": public, "X-Forwarded-Proto": "https"}
        )
        assert response.status_code == 303, response.text
        assert "; Secure" in response.headers["set-cookie"]
        assert response.headers["strict-transport-security"].startswith("max-age=")
        assert httpx.get(f"{base}/").headers["strict-transport-security"].startswith("max-age=")
        forged = httpx.post(f"{base}/auth/sign-in", data=FORM, headers={"Origin": "https://evil.example"})
        assert forged.status_code == 403


def test_https_scheme_from_the_tls_terminator_reaches_the_gateway_through_varnish(server: Server) -> None:
    with server("--cdn") as base:
        own = base.replace("http://", "https://")
        response = httpx.post(f"{base}/auth/sign-in", data=FORM, headers={"Origin": own, "X-Forwarded-Proto": "https"})
        assert response.status_code == 303, response.text
        assert "; Secure" in response.headers["set-cookie"]
        assert response.headers["strict-transport-security"].startswith("max-age=")
        plain = httpx.post(f"{base}/auth/sign-in", data=FORM, headers={"Origin": base})
        assert plain.status_code == 303
        assert "Secure" not in plain.headers["set-cookie"]
        assert "strict-transport-security" not in plain.headers
