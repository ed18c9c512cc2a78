"""The page's request context, read from the gateway's headers in one pass (issue 19), as `request.headers` would."""

from __future__ import annotations

from starlette.requests import Request

from oberon.headers import DEFAULT_DEVICE, REQUEST_ID
from oberon.pipeline.page_types import RequestContext
from oberon.web.renderer import request_context


def context(*headers: tuple[str, str]) -> RequestContext:
    raw = [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in headers]
    return request_context(Request({"type": "http", "method": "GET", "path": "/", "headers": raw}))


def test_the_gateways_headers_make_the_context() -> None:
    read = context(
        ("Host", "shop.example"),
        ("X-Oberon-Request-Id", "req-1"),
        ("X-Oberon-Locale", "de-CH"),
        ("X-Oberon-User", "ada@example"),
        ("X-Oberon-Roles", "customer, staff,Bad Role"),
        ("X-Oberon-Device", "mobile"),
    )
    assert read == RequestContext(
        request_id="req-1", locale="de-CH", user="ada@example", roles=("customer", "staff"), device="mobile"
    )


def test_the_first_of_a_repeated_header_counts_as_request_headers_would_read_it() -> None:
    read = context(("X-Oberon-Locale", "fr"), ("X-Oberon-Locale", "de"), ("x-oberon-device", "tablet"))
    assert (read.locale, read.device) == ("fr", "tablet")


def test_missing_or_malformed_headers_give_safe_defaults() -> None:
    for read in (
        context(),
        context(
            ("X-Oberon-Request-Id", "<script>"),
            ("X-Oberon-Locale", "english please"),
            ("X-Oberon-User", "ada smith"),
            ("X-Oberon-Roles", "staff"),
            ("X-Oberon-Device", "toaster"),
        ),
    ):
        assert REQUEST_ID.match(read.request_id) and read.request_id != "<script>"
        assert (read.locale, read.user, read.roles, read.device) == ("en", None, (), DEFAULT_DEVICE)
        assert not read.signed_in
