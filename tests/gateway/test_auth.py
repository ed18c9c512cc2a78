from __future__ import annotations

import base64
import json
import time

import itsdangerous
import jwt
import pytest

from gateway.auth import (
    BearerVerifier,
    Identity,
    Method,
    SessionCodec,
    bearer_token,
    safe_next,
)
from gateway.errors import AuthenticationError
from tests.gateway.conftest import AUDIENCE, JWT_KEY, SECRET, make_token


@pytest.fixture
def codec() -> SessionCodec:
    return SessionCodec(secret=SECRET, max_age=3600)


@pytest.fixture
def verifier() -> BearerVerifier:
    return BearerVerifier(key=JWT_KEY, algorithms=["HS256"], audience=AUDIENCE)


def rejected(verify: object, value: str) -> str:
    assert callable(verify)
    with pytest.raises(AuthenticationError) as caught:
        verify(value)
    return caught.value.reason


SESSION_ID = "s3ss10n-1d-0f-43-characters-xxxxxxxxxxxxxx"


def test_session_round_trips_the_session_id(codec: SessionCodec) -> None:
    assert codec.verify(codec.issue(SESSION_ID)) == SESSION_ID


def test_session_cookie_carries_no_user_or_roles(codec: SessionCodec) -> None:
    # The record lives server-side: the cookie names it, and can be revoked with it.
    payload = codec.issue(SESSION_ID).partition(".")[0]
    assert "alice" not in base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)).decode()


def test_session_rejects_a_tampered_cookie(codec: SessionCodec) -> None:
    payload, _, rest = codec.issue(SESSION_ID).partition(".")
    forged = base64.urlsafe_b64encode(json.dumps("another-session-id").encode()).decode().rstrip("=")
    assert rejected(codec.verify, f"{forged}.{rest}") == "the session cookie is not valid"


def test_session_rejects_a_cookie_signed_with_another_secret(codec: SessionCodec) -> None:
    other = SessionCodec(secret="another-secret-that-is-also-long-enough", max_age=3600)
    assert rejected(codec.verify, other.issue(SESSION_ID)) == "the session cookie is not valid"


def test_session_rejects_an_expired_cookie(codec: SessionCodec, monkeypatch: pytest.MonkeyPatch) -> None:
    issued_at = time.time() - 3601
    monkeypatch.setattr(itsdangerous.timed.time, "time", lambda: issued_at)
    value = codec.issue(SESSION_ID)
    monkeypatch.undo()
    assert rejected(codec.verify, value) == "the session has expired"


@pytest.mark.parametrize("value", ["", "garbage", "a.b.c", "." * 40])
def test_session_rejects_malformed_cookies(codec: SessionCodec, value: str) -> None:
    rejected(codec.verify, value)


@pytest.mark.parametrize("payload", [{"u": "alice", "r": []}, "", "x" * 65, 42])
def test_session_rejects_a_signed_value_that_is_not_a_session_id(codec: SessionCodec, payload: object) -> None:
    serializer = itsdangerous.URLSafeTimedSerializer(SECRET, salt="oberon.session")
    assert rejected(codec.verify, serializer.dumps(payload)) == "the session cookie is not valid"


def test_session_cookie_attributes_over_http(codec: SessionCodec) -> None:
    cookie = codec.set_cookie(SESSION_ID, https=False)
    assert cookie.startswith("oberon_session=")
    assert "; HttpOnly" in cookie and "; SameSite=Lax" in cookie and "; Path=/" in cookie
    assert "Max-Age=3600" in cookie and "Secure" not in cookie
    assert codec.clear_cookie(https=False).startswith("oberon_session=;")
    assert "Max-Age=0" in codec.clear_cookie(https=False)


def test_session_cookie_over_https_is_a_host_cookie(codec: SessionCodec) -> None:
    # `__Host-`: Secure, Path=/ and no Domain, so no other host (a sibling subdomain included) can plant one.
    cookie = codec.set_cookie(SESSION_ID, https=True)
    assert cookie.startswith("__Host-oberon_session=")
    assert cookie.endswith("; Secure") and "; Path=/" in cookie and "domain" not in cookie.lower()
    assert codec.clear_cookie(https=True).startswith("__Host-oberon_session=;")


def test_bearer_accepts_a_valid_token(verifier: BearerVerifier) -> None:
    assert verifier.verify(make_token()) == Identity(user="alice", roles=("customer",), method=Method.BEARER)


def test_bearer_rejects_alg_none(verifier: BearerVerifier) -> None:
    header = base64.urlsafe_b64encode(b'{"alg":"none","typ":"JWT"}').decode().rstrip("=")
    claims = {"sub": "admin", "aud": AUDIENCE, "exp": int(time.time()) + 60}
    body = base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")
    assert rejected(verifier.verify, f"{header}.{body}.") == "the token's algorithm 'none' is not allowed"


def test_bearer_rejects_a_wrong_signature(verifier: BearerVerifier) -> None:
    token = make_token(key="another-key-that-is-long-enough-for-hs256!")
    assert rejected(verifier.verify, token) == "the token's signature is not valid"


def test_bearer_rejects_an_expired_token(verifier: BearerVerifier) -> None:
    assert rejected(verifier.verify, make_token(exp=int(time.time()) - 120)) == "the token has expired"


def test_bearer_rejects_a_token_for_another_audience(verifier: BearerVerifier) -> None:
    assert rejected(verifier.verify, make_token(aud="billing")) == "the token is for another audience"


@pytest.mark.parametrize("claim", ["exp", "aud", "sub"])
def test_bearer_rejects_a_token_without_a_required_claim(verifier: BearerVerifier, claim: str) -> None:
    assert rejected(verifier.verify, make_token(**{claim: None})) == f"the token has no {claim!r} claim"


def test_bearer_rejects_an_algorithm_outside_the_allow_list(verifier: BearerVerifier) -> None:
    token = make_token(algorithm="HS512")
    assert rejected(verifier.verify, token) == "the token's algorithm 'HS512' is not allowed"


def test_bearer_rejects_a_token_from_another_issuer() -> None:
    verifier = BearerVerifier(key=JWT_KEY, algorithms=["HS256"], audience=AUDIENCE, issuer="https://id.example")
    assert rejected(verifier.verify, make_token(iss="https://evil.example")) == "the token is from another issuer"
    assert verifier.verify(make_token(iss="https://id.example")).user == "alice"


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"sub": "alice smith"}, "the user id is missing or malformed"),
        ({"roles": "admin"}, "roles must be a list of role names"),
        ({"roles": ["Admin\n"]}, "a role name is malformed"),
    ],
)
def test_bearer_rejects_claims_unsafe_for_headers(
    verifier: BearerVerifier, overrides: dict[str, object], reason: str
) -> None:
    assert rejected(verifier.verify, make_token(**overrides)) == reason


def test_bearer_rejects_every_token_without_a_key() -> None:
    verifier = BearerVerifier(key=None, algorithms=["HS256"], audience=AUDIENCE)
    assert "no OBERON_JWT_KEY" in rejected(verifier.verify, make_token())


@pytest.mark.parametrize("token", ["", "abc", "a.b", jwt.encode({"sub": "x"}, "k" * 32)[:-3] + "!!!"])
def test_bearer_rejects_malformed_tokens(verifier: BearerVerifier, token: str) -> None:
    rejected(verifier.verify, token)


def test_bearer_token_reads_only_the_bearer_scheme() -> None:
    assert bearer_token("Bearer abc.def.ghi") == "abc.def.ghi"
    assert bearer_token("bearer   abc") == "abc"
    for value in ("Basic dXNlcjpwYXNz", "Bearer", "Bearer ", "abc"):
        rejected(bearer_token, value)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("/account", "/account"),
        ("/e/1?tab=tickets#top", "/e/1?tab=tickets#top"),
        (None, "/"),
        ("", "/"),
        ("https://evil.example/", "/"),
        ("//evil.example/", "/"),
        ("/\\evil.example", "/"),
        ("\\\\evil.example", "/"),
        ("/\t/evil.example", "/"),
        ("/\n/evil.example", "/"),
        (" /account", "/"),
        ("javascript:alert(1)", "/"),
        ("account", "/"),
        ("/auth/sign-in?next=/account", "/"),
        ("/caf\u00e9", "/"),
        ("/" + "a" * 3000, "/"),
    ],
)
def test_safe_next_allows_only_same_site_paths(value: str | None, expected: str) -> None:
    assert safe_next(value) == expected
