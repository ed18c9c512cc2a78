from __future__ import annotations

import pytest

from oberon.exceptions import ConfigError
from oberon.pipeline.cache_policy import PRIVATE, CachePolicy, surrogate_keys
from oberon.types import Cacheability, Mode

PUBLIC, PRIV = Cacheability.PUBLIC, Cacheability.PRIVATE
policy = CachePolicy(shared_max_age=30, degraded_max_age=120, fallback_max_age=5)


def s_maxage(header: str) -> int:
    directives = dict(part.strip().partition("=")[::2] for part in header.split(","))
    return int(directives["s-maxage"])


@pytest.mark.parametrize("mode", list(Mode))
@pytest.mark.parametrize("fell_back", [False, True])
@pytest.mark.parametrize(
    ("page", "components", "session", "sets_cookie"),
    [
        (PRIV, [PUBLIC], False, False),
        (PUBLIC, [PUBLIC, PRIV], False, False),
        (PUBLIC, [PUBLIC], True, False),
        (PUBLIC, [PUBLIC], False, True),
    ],
)
def test_cache_policy_private_in_every_mode(page, components, session, sets_cookie, fell_back, mode) -> None:
    header = policy.cache_control(
        page=page, components=components, fell_back=fell_back, mode=mode, session=session, sets_cookie=sets_cookie
    )
    assert header == PRIVATE


@pytest.mark.parametrize(
    ("fell_back", "mode", "expected"),
    [(False, Mode.NORMAL, 30), (True, Mode.NORMAL, 5), (False, Mode.DEGRADED, 120), (True, Mode.DEGRADED, 120)],
)
def test_cache_policy_public_shared_lifetime(fell_back: bool, mode: Mode, expected: int) -> None:
    header = policy.cache_control(page=PUBLIC, components=[PUBLIC, PUBLIC], fell_back=fell_back, mode=mode)
    assert header.startswith("public, max-age=0, ")
    assert s_maxage(header) == expected
    assert "stale-while-revalidate=" in header and "stale-if-error=" in header


@pytest.mark.parametrize("seconds", [59, 301, 3600])
def test_cache_policy_refuses_a_degraded_lifetime_outside_60_to_300(seconds: int) -> None:
    with pytest.raises(ConfigError, match="60 to 300"):
        CachePolicy(degraded_max_age=seconds)


def test_cache_policy_fallback_never_longer_than_normal() -> None:
    short = CachePolicy(shared_max_age=2, fallback_max_age=5)
    assert s_maxage(short.cache_control(page=PUBLIC, fell_back=True)) == 2


def test_surrogate_keys_name_the_app_its_components_and_route_entities() -> None:
    keys = surrogate_keys(
        app="event-page", components=["event-hero", "event-hero", "venue-info"], params={"event_id": 123}
    )
    assert keys == ["app:event-page", "component:event-hero", "component:venue-info", "event-123"]


def test_surrogate_keys_cannot_carry_separators_from_a_param() -> None:
    keys = surrogate_keys(app="search", components=[], params={"q": "a b|c.*"})
    assert keys[-1] == "q-a_b_c__"
    assert all(" " not in key and "|" not in key for key in keys)


@pytest.mark.parametrize("mode", list(Mode))
@pytest.mark.parametrize("sets_cookie", [False, True])
@pytest.mark.parametrize("session", [False, True])
@pytest.mark.parametrize("fell_back", [False, True])
@pytest.mark.parametrize("private_component", [False, True])
@pytest.mark.parametrize("page", list(Cacheability))
def test_cache_policy_every_combination(
    page: Cacheability, private_component: bool, fell_back: bool, session: bool, sets_cookie: bool, mode: Mode
) -> None:
    components = [PUBLIC, PRIV] if private_component else [PUBLIC]
    header = policy.cache_control(
        page=page, components=components, fell_back=fell_back, session=session, sets_cookie=sets_cookie, mode=mode
    )
    if page is PRIV or private_component or session or sets_cookie:
        assert header == PRIVATE
    elif mode is Mode.DEGRADED:
        assert 60 <= s_maxage(header) == 120 <= 300
    else:
        assert s_maxage(header) == (5 if fell_back else 30)


def test_cache_policy_reads_components_given_as_any_iterable() -> None:
    assert policy.cache_control(page=PUBLIC, components=iter([PUBLIC, PRIV])) == PRIVATE
    assert policy.cache_control(page=PUBLIC, components=(c for c in [PUBLIC, PRIV])) == PRIVATE
    assert policy.cache_control(page=PUBLIC, components=iter([PUBLIC])) == policy.cache_control(page=PUBLIC)
