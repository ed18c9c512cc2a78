"""The component manifest (`component.toml`) as values: its fields, props, data sources, slots, fixtures.

`manifest_parser.py` reads and validates the file into these.
"""

from __future__ import annotations

import functools
import re
import string
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from packaging.specifiers import SpecifierSet
from packaging.version import Version

from oberon.types import Cacheability, Kind

MANIFEST_FILE = "component.toml"
TEMPLATE_FILE = "template.html"
FALLBACK_FILE = "fallback.html"
PLACEHOLDER_FILE = "placeholder.html"  # what a client island shows until it arrives (else its fallback)
DEFAULT_TIMEOUT_MS = 1000
MAX_TIMEOUT_MS = 60_000

NAME_PATTERN = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$")
KEY_PATTERN = re.compile(r"^[a-z][a-z0-9_]*$")
ACTION_PATTERN = re.compile(r"^[a-z][a-z0-9-]*/[a-z][a-z0-9-]*$")
FIXTURE_PATTERN = re.compile(r"^[a-z][a-z0-9_-]*$")
DEFAULT_FIXTURE = "default"

PROP_TYPES: Mapping[str, tuple[type, ...]] = {"str": (str,), "int": (int,), "float": (int, float), "bool": (bool,)}


@dataclass(frozen=True)
class PropSpec:
    """One declared prop: its type and either a default or `required = true`."""

    name: str
    type: str
    default: Any = None
    required: bool = False
    description: str = ""

    def accepts(self, value: Any) -> bool:
        """Whether `value` is of this prop's type (bool is not an int here)."""
        if isinstance(value, bool) and self.type != "bool":
            return False
        return isinstance(value, PROP_TYPES[self.type])

    def coerce(self, text: str) -> Any:
        """Convert a query-string value to this prop's type; ValueError if it does not fit."""
        if self.type == "str":
            return text
        if self.type == "bool":
            lowered = text.lower()
            if lowered in {"1", "true", "yes", "on"}:
                return True
            if lowered in {"0", "false", "no", "off"}:
                return False
            raise ValueError(f"expected a boolean, got {text!r}")
        return int(text) if self.type == "int" else float(text)


CONTEXT_NAMES = ("device", "locale")  # the request context a data source may read (`context = [...]`)
QUERY_TYPES = ("str", "int", "bool")
QUERY_INVALID = ("reject", "default")
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})
_INTEGER = re.compile(r"^-?[0-9]{1,18}$")  # no `+`, `_` or spaces, and never a huge number to convert
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True)
class QuerySpec:
    """One declared query parameter of an app (`[query.NAME]`): its type, default and bounds."""

    name: str
    type: str
    default: Any
    min: int | None = None  # int: both bounds
    max: int | None = None
    max_length: int = 0  # str: the most characters
    choices: tuple[Any, ...] = ()  # when given, the only values allowed (besides the default)
    invalid: str = "reject"  # an out-of-bounds value: "reject" (400) or "default" (replaced by the default)
    description: str = ""

    def parse(self, text: str) -> Any:
        """The typed value of `text`; ValueError saying what was expected when it does not fit."""
        value: Any
        if self.type == "int":
            if not _INTEGER.match(text):
                raise ValueError(f"expected a whole number from {self.min} to {self.max}")
            value = int(text)
        elif self.type == "bool":
            lowered = text.lower()
            if lowered not in _TRUE | _FALSE:
                raise ValueError("expected true or false")
            value = lowered in _TRUE
        else:
            value = text
        problem = self.problem(value)
        if problem:
            raise ValueError(problem)
        return value

    def problem(self, value: Any) -> str:
        """What is wrong with a typed `value` for this parameter; "" when it fits."""
        if self.type == "int":
            if isinstance(value, bool) or not isinstance(value, int):
                return "expected a whole number"
            if self.min is not None and self.max is not None and not self.min <= value <= self.max:
                return f"expected a whole number from {self.min} to {self.max}"
        elif self.type == "bool":
            if not isinstance(value, bool):
                return "expected true or false"
        else:
            if not isinstance(value, str):
                return "expected a string"
            if len(value) > self.max_length:
                return f"expected at most {self.max_length} characters"
            if _CONTROL.search(value):
                return "expected no control characters"
        if self.choices and value not in self.choices and value != "":  # "": a str parameter not given
            return "expected one of " + ", ".join(map(str, self.choices))
        return ""

    def text(self, value: Any) -> str:
        """`value` as a query string writes it (the canonical URL)."""
        return ("true" if value else "false") if isinstance(value, bool) else str(value)


@dataclass(frozen=True)
class DataSource:
    """Where the value of one state key comes from: a BFF, a path template, and the request context it reads."""

    key: str
    bff: str
    path: str
    context: tuple[str, ...] = ()  # of CONTEXT_NAMES: `{device}`, `{locale}` in the path

    @property
    def params(self) -> frozenset[str]:
        """The names of the `{param}` placeholders in the path."""
        return frozenset(name for _, name, _, _ in string.Formatter().parse(self.path) if name)


@dataclass(frozen=True)
class SlotEntry:
    """One child in an app's slot: a component, a version specifier and its props."""

    component: str
    specifier: SpecifierSet
    props: Mapping[str, Any]


@dataclass(frozen=True)
class Fixture:
    """Sample state and props to render a component alone (`[fixtures.NAME]`): the gallery and its tests use them."""

    name: str
    state: Mapping[str, Any] = field(default_factory=dict)
    props: Mapping[str, Any] = field(default_factory=dict)
    description: str = ""


ROBOTS = ("index", "noindex")


@dataclass(frozen=True)
class Meta:
    """What an app's pages tell search engines: `[meta]` in its manifest."""

    description: str = ""  # a Jinja template over the page's state, like `title`
    robots: str = "index"  # "noindex" keeps every page of the app out of search results
    structured_data: str = ""  # a Jinja template file in the app's folder that renders JSON-LD
    sitemap: DataSource | None = None  # for routes with params: a BFF listing them as {"pages": [{"params": …}]}


@dataclass(frozen=True)
class Manifest:
    """A validated `component.toml`."""

    name: str
    version: Version
    owner: str
    kind: Kind
    folder: Path
    description: str = ""
    props: Mapping[str, PropSpec] = field(default_factory=dict)
    subscribes: tuple[str, ...] = ()
    data: Mapping[str, DataSource] = field(default_factory=dict)
    publishes: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    consumes: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    js: tuple[str, ...] = ()
    css: tuple[str, ...] = ()
    cache: Cacheability = Cacheability.PUBLIC
    timeout_ms: int = DEFAULT_TIMEOUT_MS
    critical: bool = False
    routes: tuple[str, ...] = ()
    slots: Mapping[str, tuple[SlotEntry, ...]] = field(default_factory=dict)
    title: str = ""
    meta: Meta = field(default_factory=Meta)
    fixtures: Mapping[str, Fixture] = field(default_factory=dict)
    query: Mapping[str, QuerySpec] = field(default_factory=dict)  # an app's declared query parameters, in order

    @property
    def file(self) -> Path:
        return self.folder / MANIFEST_FILE

    # Read on every render: computed once (a frozen dataclass still has an instance __dict__).
    @functools.cached_property
    def keys(self) -> tuple[str, ...]:
        """Every state key the component reads: its own data sources, then its subscriptions."""
        return tuple(dict.fromkeys([*self.data, *self.subscribes]))

    @functools.cached_property
    def prop_defaults(self) -> Mapping[str, Any]:
        """The default of each optional prop: what a render starts its props from."""
        return {name: spec.default for name, spec in self.props.items() if not spec.required}

    @functools.cached_property
    def ident(self) -> str:
        return f"{self.name}@{self.version}"

    @functools.cached_property
    def version_text(self) -> str:
        return str(self.version)
