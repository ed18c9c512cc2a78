"""Tokens: the platform token's bound and comparison, team tokens kept as hashes, and who may change what."""

from __future__ import annotations

import hashlib

import pytest

from oberon.exceptions import ConfigError
from oberon.registry.tokens import (
    Authenticator,
    Caller,
    Forbidden,
    PlatformToken,
    Unauthorized,
    bearer,
    check_team,
    new_token,
    token_hash,
)

PLATFORM_TOKEN = "p" * 32


@pytest.mark.parametrize("token", [None, "", "p" * 31])
def test_tokens_refuse_a_platform_token_under_32_characters(token: str | None) -> None:
    with pytest.raises(ConfigError, match="OBERON_REGISTRY_ADMIN_TOKEN must be set to at least 32 characters"):
        PlatformToken(token)


def test_tokens_tell_the_platform_a_team_and_a_stranger_apart() -> None:
    team_token = new_token()
    teams = {token_hash(team_token): "checkout"}
    auth = Authenticator(platform=PlatformToken(PLATFORM_TOKEN), team_of=teams.get)
    assert auth.caller(f"Bearer {PLATFORM_TOKEN}") == Caller()
    assert auth.caller(f"bearer {team_token}") == Caller(team="checkout")
    for header in (None, "", "Bearer", f"Basic {PLATFORM_TOKEN}", PLATFORM_TOKEN, "Bearer " + "p" * 33, "Bearer x"):
        with pytest.raises(Unauthorized):
            auth.caller(header)


def test_tokens_are_random_and_kept_only_as_their_sha256() -> None:
    first, second = new_token(), new_token()
    assert first != second and len(first) >= 43
    assert token_hash(first) == hashlib.sha256(first.encode()).hexdigest() != first
    assert bearer("Bearer  abc ") == "abc" and bearer("Token abc") is None


def test_tokens_let_a_team_change_only_what_it_alone_owns() -> None:
    Caller().may_change("ticket-selector", ["checkout"])  # the platform: everything
    Caller(team="checkout").may_change("ticket-selector", ["checkout", "checkout"])
    with pytest.raises(Forbidden, match=r"^team 'events' does not own ticket-selector \(owner: checkout\)$"):
        Caller(team="events").may_change("ticket-selector", ["checkout"])
    with pytest.raises(Forbidden, match=r"\(owner: events\)"):  # a version naming another owner is not a takeover
        Caller(team="checkout").may_change("ticket-selector", ["checkout", "events"])
    assert (Caller().actor, Caller(team="checkout").actor) == ("platform", "checkout")


@pytest.mark.parametrize("team", ["checkout", "team-2", "a.b_c"])
def test_tokens_take_team_names(team: str) -> None:
    assert check_team(team) == team


@pytest.mark.parametrize("team", ["", "Checkout", "has space", "-x", None, 3, "x" * 65])
def test_tokens_refuse_what_is_not_a_team_name(team: object) -> None:
    with pytest.raises(ValueError, match="team: expected a team name"):
        check_team(team)


def test_tokens_refuse_a_team_named_like_the_platform() -> None:
    with pytest.raises(ValueError, match="'platform' names the platform token"):
        check_team("platform")
