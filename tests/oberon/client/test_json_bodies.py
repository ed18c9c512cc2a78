"""Decoded JSON bodies shared by identical bytes."""

from __future__ import annotations

import json

import pytest

from oberon.client.json_bodies import JsonBodies, loads


def test_the_same_bytes_give_the_very_same_objects_from_their_second_sight() -> None:
    bodies = JsonBodies()
    seen_once = bodies.decode(b'{"id": 1, "tags": ["a"]}')
    assert len(bodies) == 0  # bytes seen once are not kept: most never come again
    kept = bodies.decode(bytes(bytearray(b'{"id": 1, "tags": ["a"]}')))  # equal bytes, another object
    again = bodies.decode(b'{"id": 1, "tags": ["a"]}')
    assert again is kept and kept is not seen_once and kept == seen_once == {"id": 1, "tags": ["a"]}
    assert len(bodies) == 1


def test_bytes_seen_once_are_never_kept_however_many_come() -> None:
    bodies = JsonBodies()
    for n in range(5_000):  # every page its own data
        bodies.decode(b'{"n": %d}' % n)
    assert len(bodies) < 5_000 // 16  # but for a few bytes that share a doorkeeper's slot with earlier ones
    assert bodies.decode(b'{"n": 1}') is bodies.decode(b'{"n": 1}')  # asked for again lately: kept now


def test_different_bytes_give_their_own_value() -> None:
    bodies = JsonBodies()
    assert bodies.decode(b'{"id": 1}') == {"id": 1}
    assert bodies.decode(b'{"id": 2}') == {"id": 2}
    assert bodies.decode(b'{"id": 1 }') is not bodies.decode(b'{"id": 1}')  # bytes, not meaning: no parse to compare


def test_falsy_values_are_kept_too() -> None:
    bodies = JsonBodies()
    bodies.decode(b"null"), bodies.decode(b"[]")  # seen once
    assert bodies.decode(b"null") is None and bodies.decode(b"[]") is bodies.decode(b"[]")
    assert len(bodies) == 2


def test_large_bodies_are_parsed_each_time_and_never_kept() -> None:
    bodies = JsonBodies(max_body_bytes=16)
    body = b'{"text": "' + b"x" * 32 + b'"}'
    assert bodies.decode(body) == {"text": "x" * 32}
    assert bodies.decode(body) is not bodies.decode(body)
    assert len(bodies) == 0


def test_only_the_most_recent_bodies_are_kept_within_a_byte_bound() -> None:
    bodies = JsonBodies(max_bytes=8)  # room for two 3-byte bodies
    for body in (b"[1]", b"[2]", b"[3]", b'"1234567"'):
        bodies.decode(body)  # each seen once: kept from the next time on
    first = bodies.decode(b"[1]")
    bodies.decode(b"[2]")
    assert bodies.decode(b"[1]") is first  # used again: now the most recent
    bodies.decode(b"[3]")  # evicts [2], the least recently used
    assert len(bodies) == 2 and bodies.bytes == 6 and bodies.decode(b"[1]") is first
    bodies.decode(b'"1234567"')  # 9 bytes: more than the whole bound, so never kept
    assert len(bodies) == 2


def test_malformed_json_raises_and_is_not_kept() -> None:
    bodies = JsonBodies()
    with pytest.raises(ValueError):
        bodies.decode(b'{"id": ')
    assert len(bodies) == 0


@pytest.mark.parametrize(
    "body",
    [
        b'{"price": NaN, "low": -Infinity, "high": Infinity}',  # beyond RFC 8259: orjson refuses, json.loads reads
        b"[1e400, -1e400]",  # out of a float's range: inf
        b"123456789012345678901234567890",  # an integer beyond 64 bits: exact, never a float
        b'{"id": -9223372036854775809}',  # one below the smallest 64-bit integer
        b'{"id": 18446744073709551616}',  # one above the largest unsigned one
        b'{"ids": [9223372036854775807, -9223372036854775808]}',  # the 64-bit bounds themselves
        b'"\\ud800"',  # a lone surrogate, escaped
        b'"\xed\xa0\x80"',  # a lone surrogate, encoded
        b'\xef\xbb\xbf{"id": 1}',  # a UTF-8 byte-order mark
        '{"id": 1}'.encode("utf-16"),  # UTF-16, detected as json.loads detects it
        b'{"id": 1, "id": 2}',  # the last of a repeated key
        b'{"text": "caf\\u00e9 \xe2\x82\xac", "n": 0.1, "z": -0.0, "e": 1.5e-7}',
    ],
)
def test_bodies_decode_exactly_as_json_loads_does(body: bytes) -> None:
    expected = json.loads(body)
    value = loads(body)
    assert repr(value) == repr(expected)  # repr: NaN is not equal to itself, 1 == 1.0
    assert repr(JsonBodies().decode(body)) == repr(expected)


@pytest.mark.parametrize("body", [b'{"id": ', b"[1,]", b'"\t"', b"", b"nan", b"{'id': 1}", b"[" * 100_000])
def test_bodies_refused_by_json_loads_are_refused(body: bytes) -> None:
    with pytest.raises((ValueError, RecursionError)):
        json.loads(body)
    with pytest.raises((ValueError, RecursionError)):
        loads(body)


@pytest.mark.parametrize("offset", range(20))
def test_an_integer_beyond_64_bits_is_exact_wherever_it_starts(offset: int) -> None:
    """Issue 19: only every ninth byte is looked at first; a run of 19 digits is found wherever it lies."""
    for digits in ("9223372036854775809", "9" * 19, "9" * 20, "18446744073709551616", "123456789012345678901"):
        for sign in ("", "-"):
            body = f'{{"{"x" * offset}": [1, {sign}{digits}, "{"7" * offset}"]}}'.encode()
            assert repr(loads(body)) == repr(json.loads(body))
            assert repr(JsonBodies().decode(body)) == repr(json.loads(body))
