"""Query strings as caches key them: tracking parameters stripped, one order for a key."""

from __future__ import annotations

import pytest

from oberon.query_strings import cache_key_query, strip_tracking


@pytest.mark.parametrize(
    ("query", "stripped"),
    [
        (b"", b""),
        (b"q=jazz", b"q=jazz"),
        (b"utm_source=x&q=jazz", b"q=jazz"),
        (b"q=jazz&utm_medium=email&UTM_CONTENT=a&page=2", b"q=jazz&page=2"),
        (b"gclid=1&fbclid=2&msclkid=3&mc_cid=4&mc_eid=5", b""),
        (b"q=utm_source&utm=1&gclidx=2", b"q=utm_source&utm=1&gclidx=2"),  # only those names
        (b"b=2&&a=1", b"b=2&a=1"),
    ],
)
def test_strip_tracking_drops_only_tracking_fields_keeping_the_order(query: bytes, stripped: bytes) -> None:
    assert strip_tracking(query) == stripped


def test_cache_key_query_is_one_spelling_of_the_same_page() -> None:
    assert cache_key_query(b"utm_source=x&q=jazz&page=2") == cache_key_query(b"page=2&q=jazz") == b"page=2&q=jazz"
    assert cache_key_query(b"q=jazz") != cache_key_query(b"q=rock")
