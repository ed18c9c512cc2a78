"""What the caller gets of an upstream's answer headers (`Gateway._relay_headers`), pinned header for header as the
gateway relayed them before they were read in one pass (issue 19, session 10): hop-by-hop ones and those a
`Connection` header lists dropped, cookies, `Server` and `Date` dropped, `Cache-Control` private for a signed-in caller,
the request id added when the answer has none, names spelled and ordered as the upstream gave them."""

from __future__ import annotations

import logging

import pytest

from gateway.auth import ANONYMOUS, Identity, Method
from gateway.context import Caller, TrustedContext
from gateway.table import Auth, Route
from tests.gateway.conftest import fake_upstream
from tests.gateway.test_direct import gateway

RawHeaders = list[tuple[bytes, bytes]]
CALLER = Caller(ip="127.0.0.1", scheme="http", host="site.test")
ANONYMOUS_CONTEXT = TrustedContext(
    request_id="a" * 32, identity=ANONYMOUS, locale="en", device="desktop", caller=CALLER
)
SIGNED_IN_CONTEXT = TrustedContext(
    request_id="b" * 32,
    identity=Identity(user="u-1", roles=("fan",), method=Method.SESSION),
    locale="en",
    device="desktop",
    caller=CALLER,
)
PAGE: RawHeaders = [
    (b"cache-control", b"public, max-age=0, s-maxage=30"),
    (b"x-oberon-request-id", b"c" * 32),
    (b"vary", b"Accept-Language"),
    (b"content-length", b"12"),
    (b"content-type", b"text/html; charset=utf-8"),
]
HOP: RawHeaders = [
    (b"Connection", b"close, X-Hop , x-oberon-request-id"),
    (b"X-Hop", b"1"),
    (b"x-oberon-request-id", b"c" * 32),
    (b"Keep-Alive", b"timeout=5"),
    (b"Transfer-Encoding", b"chunked"),
    (b"Set-Cookie", b"a=1"),
    (b"Server", b"up"),
    (b"Date", b"today"),
    (b"X-Kept", b"1"),
    (b"x-kept", b"2"),
    (b"connection", b"x-other"),
    (b"X-Other", b"o"),
    (b"Cache-Control", b"public"),
    (b"cache-control", b"private, max-age=9"),
]
ANSWERS = {"page": PAGE, "hop": HOP, "bare": []}
# From the code before (4ebbdb4).
RELAYED: dict[tuple[str, str], RawHeaders] = {
    ("page", "anonymous"): PAGE,
    ("page", "signed_in"): [(b"cache-control", b"private, no-store"), *PAGE[1:]],
    ("hop", "anonymous"): [
        (b"X-Kept", b"1"),
        (b"x-kept", b"2"),
        (b"Cache-Control", b"public"),
        (b"cache-control", b"private, max-age=9"),
        (b"X-Oberon-Request-Id", b"a" * 32),
    ],
    ("hop", "signed_in"): [
        (b"X-Kept", b"1"),
        (b"x-kept", b"2"),
        (b"Cache-Control", b"private, no-store"),
        (b"cache-control", b"private, max-age=9"),
        (b"X-Oberon-Request-Id", b"b" * 32),
    ],
    ("bare", "anonymous"): [(b"X-Oberon-Request-Id", b"a" * 32)],
    ("bare", "signed_in"): [(b"X-Oberon-Request-Id", b"b" * 32)],
}


@pytest.mark.parametrize(("answer", "caller"), sorted(RELAYED))
def test_the_caller_gets_the_answer_s_headers_it_got_before(
    answer: str, caller: str, caplog: pytest.LogCaptureFixture
) -> None:
    context = ANONYMOUS_CONTEXT if caller == "anonymous" else SIGNED_IN_CONTEXT
    with caplog.at_level(logging.WARNING, logger="oberon.gateway"):
        relayed = gateway(fake_upstream())._relay_headers(list(ANSWERS[answer]), context=context, upstream="renderer")
    assert relayed == RELAYED[answer, caller]
    dropped = [record.getMessage() for record in caplog.records if "Set-Cookie" in record.getMessage()]
    assert dropped == (
        [f"dropped a Set-Cookie from renderer (request {context.request_id})"] if answer == "hop" else []
    )


def test_a_route_s_label_is_its_prefix_with_a_star() -> None:
    assert Route(prefix="/", upstream="renderer", auth=Auth.OPTIONAL).label == "/*"
    assert Route(prefix="/bff/events", upstream="bff:events", auth=Auth.NONE).label == "/bff/events/*"
