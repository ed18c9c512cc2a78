"""A request's query string read against an app's declared query parameters (`[query.NAME]`).

Only declared parameters come out, typed, with their defaults filled in: an undeclared one (a tracking
parameter, a typo, a cache-buster) never reaches a data source, a template or a cache key. A value that
does not fit is refused (`InvalidQuery`: the route answers 400) or replaced by the default (`invalid =
"default"`). A declared parameter given twice does not fit either: which one would count depends on who read
the URL on its way (the CDN sorts the query), so none is chosen.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl, urlencode

from oberon.pipeline.manifest import QuerySpec

MAX_QUERY_BYTES = 2048  # a longer query string is refused (414) before it is parsed
MAX_QUERY_FIELDS = 64


class InvalidQuery(ValueError):
    """A declared parameter's value does not fit and the parameter says `invalid = "reject"`."""

    def __init__(self, name: str, problem: str) -> None:
        super().__init__(f"query parameter {name!r}: {problem}")
        self.name = name
        self.problem = problem


class QueryTooLong(ValueError):
    """The raw query string is longer than MAX_QUERY_BYTES."""


def read_query(specs: Mapping[str, QuerySpec], query: str | bytes) -> dict[str, Any]:
    """The declared parameters' values from a raw query string, in declaration order, defaults filled in.

    An empty value (`?page=`, what an empty form field sends) is the parameter not given. Raises QueryTooLong
    and InvalidQuery.
    """
    if len(query) > MAX_QUERY_BYTES:
        raise QueryTooLong(f"the query string is longer than {MAX_QUERY_BYTES} bytes")
    text = query.decode("latin-1") if isinstance(query, bytes) else query
    if not specs:
        return {}
    given: dict[str, list[str]] = {}
    try:
        pairs = parse_qsl(text, keep_blank_values=True, max_num_fields=MAX_QUERY_FIELDS)
    except ValueError:
        raise QueryTooLong(f"the query string has more than {MAX_QUERY_FIELDS} fields") from None
    for name, value in pairs:
        if name in specs:
            given.setdefault(name, []).append(value)
    values: dict[str, Any] = {}
    for name, spec in specs.items():
        raw = given.get(name, [""])
        if raw == [""]:
            values[name] = spec.default
            continue
        try:
            if len(raw) > 1:
                raise ValueError("given more than once")
            values[name] = spec.parse(raw[0])
        except ValueError as exc:
            if spec.invalid != "default":
                raise InvalidQuery(name, str(exc)) from None
            values[name] = spec.default
    return values


def canonical_query(specs: Mapping[str, QuerySpec], values: Mapping[str, Any]) -> str:
    """The declared parameters that differ from their defaults, in declaration order, as a query string ("" for
    none): the one spelling of a page's address."""
    pairs = [
        (name, spec.text(values[name]))
        for name, spec in specs.items()
        if name in values and values[name] != spec.default
    ]
    return urlencode(pairs)
