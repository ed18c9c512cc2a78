"""`resolve_path`: each param URL-quoted, whatever its type (issue 19: ints and plain words skip `quote`)."""

from __future__ import annotations

import enum

import pytest

from oberon.pipeline.loading import resolve_path
from oberon.pipeline.manifest import DataSource


class Size(enum.IntEnum):
    LARGE = 3


@pytest.mark.parametrize(
    ("value", "segment"),
    [
        (42, "42"),
        (-7, "-7"),
        ("abc123", "abc123"),
        ("shoes and socks", "shoes%20and%20socks"),
        ("../admin", "..%2Fadmin"),
        ("a?b=c&d#e", "a%3Fb%3Dc%26d%23e"),
        ("café", "caf%C3%A9"),
        ("é", "%C3%A9"),  # alphanumeric, but not ASCII: quoted
        ("", ""),
        (True, "true"),
        (False, "false"),
        (Size.LARGE, "3"),
        (1.5, "1.5"),
    ],
)
def test_each_param_is_quoted_whatever_its_type(value: object, segment: str) -> None:
    source = DataSource(key="item", bff="shop", path="/items/{item}")
    assert resolve_path(source, {"item": value}) == f"/items/{segment}"


def test_the_context_fills_only_the_names_a_source_declares() -> None:
    params = {"item": 1, "locale": "xx"}
    context = {"locale": "de DE", "device": "mobile"}
    declared = DataSource(key="item", bff="shop", path="/items/{item}?l={locale}", context=("locale",))
    assert resolve_path(declared, params, context) == "/items/1?l=de%20DE"
    undeclared = DataSource(key="item", bff="shop", path="/items/{item}?l={locale}")
    assert resolve_path(undeclared, params, context) == "/items/1?l=xx"  # the route's own param, as it was


def test_a_missing_param_names_itself() -> None:
    source = DataSource(key="item", bff="shop", path="/items/{item}/{size}")
    with pytest.raises(KeyError, match="size"):
        resolve_path(source, {"item": 1})
