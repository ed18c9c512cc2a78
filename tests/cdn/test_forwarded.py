"""What Varnish tells the origin about the browser's scheme and address (X-Forwarded-Proto/-For)."""

from __future__ import annotations

import httpx

from oberon.runtime.cdn import Varnish
from oberon.runtime.supervisor import free_port
from tests.cdn.test_vcl import OriginServer, cdn, origin  # noqa: F401  (fixtures)


def test_vcl_keeps_the_scheme_and_client_a_trusted_tls_terminator_sends(
    cdn: httpx.Client,  # noqa: F811
    origin: OriginServer,  # noqa: F811
) -> None:
    cdn.get("/tls/1", headers={"X-Forwarded-Proto": "HTTPS", "X-Forwarded-For": "203.0.113.7"})
    seen = origin.origin.seen_headers["/tls/1"]
    assert seen["x-forwarded-proto"] == "https"
    assert seen["x-forwarded-for"] == "203.0.113.7, 127.0.0.1"


def test_vcl_says_http_when_the_client_sends_no_scheme(cdn: httpx.Client, origin: OriginServer) -> None:  # noqa: F811
    cdn.get("/tls/2")
    assert origin.origin.seen_headers["/tls/2"]["x-forwarded-proto"] == "http"
    cdn.get("/tls/2b", headers=[("X-Forwarded-Proto", "https"), ("X-Forwarded-Proto", "http")])
    assert origin.origin.seen_headers["/tls/2b"]["x-forwarded-proto"] == "http"  # two claims: neither believed


def test_vcl_keeps_pages_fetched_over_https_and_http_apart(cdn: httpx.Client, origin: OriginServer) -> None:  # noqa: F811
    cdn.get("/tls/3", headers={"X-Forwarded-Proto": "https"})
    plain = cdn.get("/tls/3")
    assert plain.headers["x-cache"] == "MISS"
    assert origin.origin.seen_headers["/tls/3"]["x-forwarded-proto"] == "http"
    assert cdn.get("/tls/3", headers={"X-Forwarded-Proto": "https"}).headers["x-cache"] == "HIT"


def test_vcl_replaces_the_scheme_and_client_an_untrusted_caller_claims(origin: OriginServer) -> None:  # noqa: F811
    claims = {"X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.7", "X-Request-Id": "chosen-by-caller"}
    # This caller (loopback) is not the terminator the ACL names.
    with Varnish(port=free_port(), origin_port=origin.origin.port, tls_terminators=("192.0.2.1",)) as varnish:
        httpx.get(f"{varnish.url}/tls/4", headers=claims, timeout=10)
        httpx.get(f"{varnish.url}/tls/5", headers=[("X-Forwarded-Proto", "https"), ("X-Forwarded-Proto", "http")])
    seen = origin.origin.seen_headers["/tls/4"]
    assert (seen["x-forwarded-proto"], seen["x-forwarded-for"]) == ("http", "127.0.0.1")
    assert "x-request-id" not in seen  # the gateway trusts Varnish's request id, and the answer may be shared
    assert origin.origin.seen_headers["/tls/5"]["x-forwarded-proto"] == "http"
