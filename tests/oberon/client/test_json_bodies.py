"""Decoded JSON bodies shared by identical bytes."""

from __future__ import annotations

import pytest

from oberon.client.json_bodies import JsonBodies


def test_the_same_bytes_give_the_very_same_objects() -> None:
    bodies = JsonBodies()
    first = bodies.decode(b'{"id": 1, "tags": ["a"]}')
    again = bodies.decode(bytes(bytearray(b'{"id": 1, "tags": ["a"]}')))  # equal bytes, another object
    assert again is first and first == {"id": 1, "tags": ["a"]}


def test_different_bytes_give_their_own_value() -> None:
    bodies = JsonBodies()
    assert bodies.decode(b'{"id": 1}') == {"id": 1}
    assert bodies.decode(b'{"id": 2}') == {"id": 2}
    assert bodies.decode(b'{"id": 1 }') is not bodies.decode(b'{"id": 1}')  # bytes, not meaning: no parse to compare


def test_falsy_values_are_kept_too() -> None:
    bodies = JsonBodies()
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
