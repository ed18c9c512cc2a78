from __future__ import annotations

import re

import pytest

from gateway.auth import Identity, Method
from gateway.context import (
    Caller,
    ProxyTrust,
    TrustedContext,
    connection_caller,
    device_class,
    is_untrusted,
    negotiate_locale,
    request_id,
)


@pytest.mark.parametrize(
    "name",
    ["X-Oberon-User", "x-oberon-user", "X-OBERON-ROLES", "x_oberon_user", "X-Oberon-Anything-New", "X-Forwarded-For"],
)
def test_context_never_trusts_oberon_or_forwarded_headers_from_outside(name: str) -> None:
    assert is_untrusted(name)


@pytest.mark.parametrize("name", ["Accept", "Cookie", "X-Oberon", "X-Oberonx-User", "User-Agent"])
def test_context_lets_other_headers_through(name: str) -> None:
    assert not is_untrusted(name)


def test_context_keeps_a_well_formed_request_id() -> None:
    assert request_id("trace-1.a_B") == "trace-1.a_B"


@pytest.mark.parametrize("incoming", [None, "", "has space", "x" * 65, "bad\r\nheader", "é"])
def test_context_replaces_a_malformed_request_id(incoming: str | None) -> None:
    generated = request_id(incoming)
    assert generated != incoming and re.fullmatch(r"[0-9a-f]{32}", generated)
    assert len({request_id(incoming) for _ in range(1000)}) == 1000  # a new one each time


@pytest.mark.parametrize(
    ("accept_language", "locale"),
    [
        ("", "en"),
        ("de-DE,de;q=0.9,en;q=0.5", "de"),
        ("fr;q=0.4, de-AT;q=0.8", "de"),
        ("sv, en-GB;q=0.9", "en-GB"),
        ("*", "en"),
        ("nl;q=0, de;q=0.1", "de"),
        ("x-klingon-really-long-tag-here, en-GB", "en-GB"),
        ("garbage;;;,,", "en"),
    ],
)
def test_context_negotiates_the_locale(accept_language: str, locale: str) -> None:
    assert negotiate_locale(accept_language, ["en", "en-GB", "de"]) == locale


@pytest.mark.parametrize(
    ("user_agent", "device"),
    [
        ("Mozilla/5.0 (X11; Linux x86_64) Chrome/120.0", "desktop"),
        ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) Mobile/15E148", "mobile"),
        ("Mozilla/5.0 (Linux; Android 14; Pixel 8) Mobile Safari/537.36", "mobile"),
        ("Mozilla/5.0 (iPad; CPU OS 17_0 like Mac OS X)", "tablet"),
        ("Mozilla/5.0 (Linux; Android 13; SM-X200) Safari/537.36", "tablet"),
        ("Googlebot/2.1 (+http://www.google.com/bot.html)", "bot"),
        ("", "desktop"),
    ],
)
def test_context_classifies_the_device(user_agent: str, device: str) -> None:
    assert device_class(user_agent) == device


FORWARDED = [
    ("x-forwarded-for", "203.0.113.9, 10.0.0.2"),
    ("x-forwarded-proto", "https"),
    ("x-forwarded-host", "tix.example"),
]


def test_context_ignores_forwarded_headers_from_an_untrusted_peer() -> None:
    caller = ProxyTrust(["10.0.0.0/8"]).resolve(peer="198.51.100.7", scheme="http", host="a:1", headers=FORWARDED)
    assert caller == Caller(ip="198.51.100.7", scheme="http", host="a:1")


def test_context_believes_forwarded_headers_from_a_trusted_proxy() -> None:
    caller = ProxyTrust(["10.0.0.0/8"]).resolve(peer="10.0.0.1", scheme="http", host="a:1", headers=FORWARDED)
    assert caller == Caller(ip="203.0.113.9", scheme="https", host="tix.example")


def test_context_takes_the_nearest_untrusted_hop_as_the_client() -> None:
    # The client can write anything left of what our proxy appended: only the right end is believed.
    headers = [("x-forwarded-for", "1.2.3.4, 203.0.113.9")]
    caller = ProxyTrust(["10.0.0.1"]).resolve(peer="10.0.0.1", scheme="http", host="a", headers=headers)
    assert caller.ip == "203.0.113.9"


def test_context_ignores_a_forged_host_and_proto_even_from_a_proxy() -> None:
    headers = [("x-forwarded-proto", "gopher"), ("x-forwarded-host", "evil.example/path?")]
    caller = ProxyTrust(["10.0.0.1"]).resolve(peer="10.0.0.1", scheme="http", host="a", headers=headers)
    assert caller == Caller(ip="10.0.0.1", scheme="http", host="a")


def test_context_without_trusted_proxies_trusts_no_one() -> None:
    assert not ProxyTrust().trusts("127.0.0.1")


def test_context_headers_carry_the_user_only_when_signed_in() -> None:
    caller = Caller(ip="203.0.113.9", scheme="https", host="tix.example")
    anonymous = TrustedContext(request_id="r1", identity=Identity(), locale="en", device="mobile", caller=caller)
    assert dict(anonymous.headers()) == {
        "X-Oberon-Request-Id": "r1",
        "X-Request-Id": "r1",
        "X-Oberon-Auth": "anonymous",
        "X-Oberon-Locale": "en",
        "X-Oberon-Device": "mobile",
        "X-Forwarded-For": "203.0.113.9",
        "X-Forwarded-Proto": "https",
        "X-Forwarded-Host": "tix.example",
    }
    alice = Identity(user="alice", roles=("customer", "staff"), method=Method.BEARER)
    signed_in = dict(
        TrustedContext(request_id="r1", identity=alice, locale="en", device="bot", caller=caller).headers()
    )
    assert signed_in["X-Oberon-User"] == "alice"
    assert signed_in["X-Oberon-Roles"] == "customer,staff"
    assert signed_in["X-Oberon-Auth"] == "bearer"


@pytest.mark.parametrize(
    "identity",
    [
        Identity(),
        Identity(user="alice", roles=("customer", "staff"), method=Method.BEARER),
        Identity(user="bob", method=Method.SESSION),
    ],
)
def test_context_raw_headers_are_its_headers_as_a_scope_holds_them(identity: Identity) -> None:
    caller = Caller(ip="203.0.113.9", scheme="https", host="tix.example")
    context = TrustedContext(request_id="r1", identity=identity, locale="de-CH", device="mobile", caller=caller)
    expected = [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in context.headers()]
    assert context.raw_headers() == expected
    assert context.raw_headers() == expected  # the caller's, encoded once, the same again


@pytest.mark.parametrize("peer", ["198.51.100.7", None, ""])
def test_connection_caller_is_what_resolve_gives_for_a_peer_it_does_not_trust(peer: str | None) -> None:
    proxies = ProxyTrust(["10.0.0.0/8"])
    forged = [("X-Forwarded-For", "1.2.3.4"), ("X-Forwarded-Proto", "https"), ("X-Forwarded-Host", "evil.test")]
    resolved = proxies.resolve(peer=peer, scheme="http", host="tix.example", headers=forged)
    assert connection_caller(peer, "http", "tix.example") == resolved
