"""Reading `component.toml` into a `Manifest`, validating every field.

Every problem is reported as a `ManifestError` naming the file and the dotted field, and
all problems of a file are collected rather than stopping at the first.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import InvalidVersion, Version

from oberon.exceptions import ManifestError
from oberon.pipeline.manifest import (
    ACTION_PATTERN,
    CONTEXT_NAMES,
    DEFAULT_TIMEOUT_MS,
    FIXTURE_PATTERN,
    KEY_PATTERN,
    MANIFEST_FILE,
    MAX_TIMEOUT_MS,
    NAME_PATTERN,
    PROP_TYPES,
    QUERY_INVALID,
    QUERY_TYPES,
    ROBOTS,
    TEMPLATE_FILE,
    DataSource,
    Fixture,
    Manifest,
    Meta,
    PropSpec,
    QuerySpec,
    SlotEntry,
)
from oberon.types import Cacheability, Kind


class _Reader:
    """Reads typed fields out of a TOML table, collecting errors instead of raising."""

    def __init__(self, file: Path) -> None:
        self.file = file
        self.errors: list[ManifestError] = []

    def error(self, field: str, message: str) -> None:
        self.errors.append(ManifestError(self.file, field, message))

    def table(self, raw: Mapping[str, Any], field: str, allowed: set[str]) -> Mapping[str, Any]:
        for unknown in sorted(set(raw) - allowed):
            where = f"{field}.{unknown}" if field else unknown
            self.error(where, f"unknown field; expected one of: {', '.join(sorted(allowed))}")
        return raw

    def get(self, raw: Mapping[str, Any], field: str, key: str, expected: type | tuple[type, ...], default: Any) -> Any:
        where = f"{field}.{key}" if field else key
        if key not in raw:
            return default
        value = raw[key]
        types = expected if isinstance(expected, tuple) else (expected,)
        if isinstance(value, bool) and bool not in types or not isinstance(value, types):
            names = " or ".join(_TYPE_NAMES.get(t, t.__name__) for t in types)
            self.error(where, f"expected {names}, got {_TYPE_NAMES.get(type(value), type(value).__name__)}")
            return default
        return value

    def required(self, raw: Mapping[str, Any], key: str, expected: type) -> Any:
        if key not in raw:
            self.error(key, "missing required field")
            return None
        return self.get(raw, "", key, expected, None)

    def strings(self, raw: Mapping[str, Any], field: str, key: str) -> tuple[str, ...]:
        where = f"{field}.{key}" if field else key
        values = self.get(raw, field, key, list, [])
        if not all(isinstance(value, str) for value in values):
            self.error(where, "expected a list of strings")
            return ()
        return tuple(values)


_TYPE_NAMES: Mapping[type, str] = {
    str: "a string",
    int: "an integer",
    float: "a number",
    bool: "a boolean",
    list: "a list",
    dict: "a table",
}

_TOP_FIELDS = {
    "name", "version", "owner", "kind", "description", "props", "subscribes", "data", "publishes",
    "consumes", "assets", "cache", "timeout_ms", "critical", "routes", "slots", "title", "meta", "fixtures",
    "query",
}  # fmt: skip
_APP_FIELDS = {"routes", "slots", "title", "meta", "query"}
_QUERY_FIELDS = {"type", "default", "max_length", "min", "max", "choices", "invalid", "description"}
RESERVED_QUERY = frozenset({"version"})
MAX_QUERY_LENGTH = 1000  # a str parameter's longest max_length: the whole query string is bounded too
_ROUTE_PARAM = re.compile(r"{([a-zA-Z_][a-zA-Z0-9_]*)(?::[a-z]+)?}")


def load_manifest(folder: Path) -> Manifest:
    """Read and validate `folder/component.toml`; raises the first ManifestError found.

    Use `parse_manifest` to collect every error.
    """
    manifest, errors = parse_manifest(folder)
    if errors or manifest is None:
        raise errors[0]
    return manifest


def parse_manifest(folder: Path) -> tuple[Manifest | None, list[ManifestError]]:
    """Read `folder/component.toml`; return the manifest (None if unusable) and all its errors."""
    file = folder / MANIFEST_FILE
    reader = _Reader(file)
    try:
        raw = tomllib.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None, [ManifestError(file, "", "missing manifest file")]
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        return None, [ManifestError(file, "", f"not valid TOML: {exc}")]

    reader.table(raw, "", _TOP_FIELDS)
    name = reader.required(raw, "name", str)
    if name is not None and not NAME_PATTERN.match(name):
        reader.error("name", f"{name!r} is not a valid name; expected lowercase words joined by '-'")
    version = _version(reader, raw)
    owner = reader.required(raw, "owner", str)
    kind = _choice(reader, raw, "kind", Kind, Kind.COMPONENT)
    cache = _choice(reader, raw, "cache", Cacheability, Cacheability.PUBLIC)
    timeout_ms = reader.get(raw, "", "timeout_ms", int, DEFAULT_TIMEOUT_MS)
    if not 0 < timeout_ms <= MAX_TIMEOUT_MS:
        reader.error("timeout_ms", f"expected 1 to {MAX_TIMEOUT_MS} milliseconds, got {timeout_ms}")
        timeout_ms = DEFAULT_TIMEOUT_MS
    if kind is not Kind.APP:
        for key in sorted(_APP_FIELDS & set(raw)):
            reader.error(key, 'only an app (kind = "app") may declare this field')

    subscribes = reader.strings(raw, "", "subscribes")
    for index, key in enumerate(subscribes):
        if not KEY_PATTERN.match(key):
            reader.error(f"subscribes[{index}]", f"{key!r} is not a valid state key (lowercase, digits, '_')")
    assets = reader.table(reader.get(raw, "", "assets", dict, {}), "assets", {"js", "css"})
    props = _props(reader, reader.get(raw, "", "props", dict, {}))
    data = _data(reader, reader.get(raw, "", "data", dict, {}))
    routes = _routes(reader, raw, kind)
    query = _query(reader, reader.get(raw, "", "query", dict, {}), routes) if kind is Kind.APP else {}
    reads = tuple(dict.fromkeys([*data, *subscribes]))
    manifest = Manifest(
        name=name or folder.name,
        version=version or Version("0"),
        owner=owner or "",
        kind=kind,
        folder=folder,
        description=reader.get(raw, "", "description", str, ""),
        props=props,
        subscribes=subscribes,
        data=data,
        publishes=_publishes(reader, reader.get(raw, "", "publishes", dict, {})),
        consumes=_consumes(reader, reader.get(raw, "", "consumes", dict, {})),
        js=_assets(reader, folder, assets, "js"),
        css=_assets(reader, folder, assets, "css"),
        cache=cache,
        timeout_ms=timeout_ms,
        critical=reader.get(raw, "", "critical", bool, False),
        routes=routes,
        slots=_slots(reader, reader.get(raw, "", "slots", dict, {})),
        title=reader.get(raw, "", "title", str, ""),
        meta=_meta(reader, folder, reader.get(raw, "", "meta", dict, {})),
        fixtures=_fixtures(reader, reader.get(raw, "", "fixtures", dict, {}), props=props, reads=reads, kind=kind),
        query=query,
    )
    for template in (TEMPLATE_FILE,):
        if not (folder / template).is_file():
            reader.errors.append(ManifestError(folder / template, "", "missing template file"))
    usable = name is not None  # still cross-checked, so every error shows at once
    return (manifest if usable else None), reader.errors


def _version(reader: _Reader, raw: Mapping[str, Any]) -> Version | None:
    text = reader.required(raw, "version", str)
    if text is None:
        return None
    try:
        return Version(text)
    except InvalidVersion:
        reader.error("version", f'{text!r} is not a PEP 440 version (e.g. "1.2.0")')
        return None


def _choice(reader: _Reader, raw: Mapping[str, Any], key: str, enum: Any, default: Any) -> Any:
    value = reader.get(raw, "", key, str, default.value)
    try:
        return enum(value)
    except ValueError:
        allowed = ", ".join(repr(member.value) for member in enum)
        reader.error(key, f"{value!r} is not one of {allowed}")
        return default


def _props(reader: _Reader, raw: Mapping[str, Any]) -> dict[str, PropSpec]:
    props = {}
    for name, spec in raw.items():
        where = f"props.{name}"
        if not KEY_PATTERN.match(name):
            reader.error(where, "a prop name is lowercase letters, digits and '_'")
        if not isinstance(spec, dict):
            reader.error(where, "expected a table with 'type' and 'default' or 'required'")
            continue
        reader.table(spec, where, {"type", "default", "required", "description"})
        type_name = reader.get(spec, where, "type", str, "str")
        if type_name not in PROP_TYPES:
            reader.error(f"{where}.type", f"{type_name!r} is not one of {', '.join(PROP_TYPES)}")
            continue
        required = reader.get(spec, where, "required", bool, False)
        prop = PropSpec(
            name=name,
            type=type_name,
            default=spec.get("default"),
            required=required,
            description=reader.get(spec, where, "description", str, ""),
        )
        if "default" in spec and not prop.accepts(prop.default):
            reader.error(f"{where}.default", f"default {prop.default!r} is not of type {type_name}")
        elif "default" not in spec and not required:
            reader.error(where, "give a 'default' or set 'required = true'")
        props[name] = prop
    return props


def _data(reader: _Reader, raw: Mapping[str, Any]) -> dict[str, DataSource]:
    sources = {}
    for key, spec in raw.items():
        where = f"data.{key}"
        if not KEY_PATTERN.match(key):
            reader.error(where, f"{key!r} is not a valid state key (lowercase, digits, '_')")
        if not isinstance(spec, dict):
            reader.error(where, "expected a table with 'bff' and 'path'")
            continue
        reader.table(spec, where, {"bff", "path", "context"})
        bff = reader.get(spec, where, "bff", str, None)
        path = reader.get(spec, where, "path", str, None)
        context = reader.strings(spec, where, "context")
        for index, name in enumerate(context):
            if name not in CONTEXT_NAMES:
                reader.error(f"{where}.context[{index}]", f"{name!r} is not one of {', '.join(CONTEXT_NAMES)}")
        context = tuple(dict.fromkeys(name for name in context if name in CONTEXT_NAMES))
        if bff is None or path is None:
            if "bff" not in spec or "path" not in spec:
                reader.error(where, "expected both 'bff' and 'path'")
            continue
        if not path.startswith("/"):
            reader.error(f"{where}.path", f"{path!r} must start with '/'")
            continue
        source = DataSource(key=key, bff=bff, path=path, context=context)
        try:
            bad = [name for name in source.params if not name.isidentifier()]
        except ValueError as exc:
            reader.error(f"{where}.path", f"bad placeholder in {path!r}: {exc}")
            continue
        if bad:
            reader.error(f"{where}.path", f"placeholders must be plain names, got {bad}")
            continue
        sources[key] = source
    return sources


def _query(reader: _Reader, raw: Mapping[str, Any], routes: tuple[str, ...]) -> dict[str, QuerySpec]:
    """`[query.NAME]`: an app's declared query parameters, typed and bounded, each with a default that fits."""
    path_params = {name for route in routes for name in _ROUTE_PARAM.findall(route)}
    specs = {}
    for name, spec in raw.items():
        where = f"query.{name}"
        if not KEY_PATTERN.match(name):
            reader.error(where, "a query parameter's name is lowercase letters, digits and '_'")
            continue
        if name in RESERVED_QUERY:
            reader.error(where, f"{name!r} is reserved: island and preview URLs pin a component's version with it")
            continue
        if name in path_params:
            reader.error(where, f"{name!r} is also a path param of a route; a page's params have one meaning each")
            continue
        if not isinstance(spec, dict):
            reader.error(where, "expected a table with 'type' and 'default'")
            continue
        reader.table(spec, where, _QUERY_FIELDS)
        type_name = reader.get(spec, where, "type", str, None)
        if type_name not in QUERY_TYPES:
            reader.error(f"{where}.type", f"expected one of {', '.join(map(repr, QUERY_TYPES))}")
            continue
        if "default" not in spec:
            reader.error(f"{where}.default", "missing required field: the value used when the parameter is absent")
            continue
        invalid = reader.get(spec, where, "invalid", str, "reject")
        if invalid not in QUERY_INVALID:
            reader.error(f"{where}.invalid", f"{invalid!r} is not one of {', '.join(map(repr, QUERY_INVALID))}")
            continue
        bounds = _query_bounds(reader, spec, where, type_name)
        if bounds is None:
            continue
        choices = reader.get(spec, where, "choices", list, [])
        item_type = {"str": str, "int": int}.get(type_name)
        if choices and (item_type is None or not all(type(choice) is item_type for choice in choices)):
            reader.error(f"{where}.choices", f"expected a list of {type_name} values (a bool takes no choices)")
            continue
        declared = QuerySpec(
            name=name,
            type=type_name,
            default=spec["default"],
            choices=tuple(choices),
            invalid=invalid,
            description=reader.get(spec, where, "description", str, ""),
            **bounds,
        )
        problem = declared.problem(declared.default)
        bad_choice = next((choice for choice in choices if declared.problem(choice)), None)
        if problem:
            reader.error(f"{where}.default", f"default {declared.default!r} does not fit: {problem}")
        elif bad_choice is not None:
            reader.error(f"{where}.choices", f"{bad_choice!r} does not fit: {declared.problem(bad_choice)}")
        else:
            specs[name] = declared
    return specs


def _query_bounds(reader: _Reader, spec: Mapping[str, Any], where: str, type_name: str) -> dict[str, Any] | None:
    """The bounds a query parameter's type requires (str: `max_length`; int: `min` and `max`); None after errors."""
    wanted = {"str": ("max_length",), "int": ("min", "max"), "bool": ()}[type_name]
    refused = [key for key in ("max_length", "min", "max") if key in spec and key not in wanted]
    for key in refused:
        reader.error(f"{where}.{key}", f"a {type_name} parameter takes no {key}")
    missing = [key for key in wanted if key not in spec]
    for key in missing:
        reader.error(f"{where}.{key}", f"missing required field: a {type_name} parameter is bounded")
    if refused or missing:
        return None
    bounds = {key: reader.get(spec, where, key, int, None) for key in wanted}
    if any(value is None for value in bounds.values()):
        return None
    if type_name == "str" and not 0 < bounds["max_length"] <= MAX_QUERY_LENGTH:
        reader.error(f"{where}.max_length", f"expected 1 to {MAX_QUERY_LENGTH} characters")
        return None
    if type_name == "int" and bounds["min"] > bounds["max"]:
        reader.error(f"{where}.min", f"min {bounds['min']} is above max {bounds['max']}")
        return None
    return bounds


def _publishes(reader: _Reader, raw: Mapping[str, Any]) -> dict[str, dict[str, str]]:
    actions = {}
    for action, spec in raw.items():
        where = f"publishes.{action}"
        if not ACTION_PATTERN.match(action):
            reader.error(where, f'{action!r} is not an action type like "cart/item-added"')
        if not isinstance(spec, dict):
            reader.error(where, "expected a table with 'payload'")
            continue
        reader.table(spec, where, {"payload", "description"})
        payload = reader.get(spec, where, "payload", dict, {})
        fields = {}
        for name, type_name in payload.items():
            if type_name not in PROP_TYPES:
                reader.error(f"{where}.payload.{name}", f"{type_name!r} is not one of {', '.join(PROP_TYPES)}")
                continue
            fields[name] = type_name
        actions[action] = fields
    return actions


def _consumes(reader: _Reader, raw: Mapping[str, Any]) -> dict[str, tuple[str, ...]]:
    actions = {}
    for action, spec in raw.items():
        where = f"consumes.{action}"
        if not isinstance(spec, dict):
            reader.error(where, "expected a table with 'fields'")
            continue
        reader.table(spec, where, {"fields"})
        actions[action] = reader.strings(spec, where, "fields")
    return actions


def _assets(reader: _Reader, folder: Path, raw: Mapping[str, Any], kind: str) -> tuple[str, ...]:
    files = reader.strings(raw, "assets", kind)
    root = folder.resolve()
    for index, name in enumerate(files):
        where = f"assets.{kind}[{index}]"
        path = (folder / name).resolve()
        if not path.is_relative_to(root):
            reader.error(where, f"{name!r} points outside the component folder")
        elif not path.is_file():
            reader.error(where, f"{name!r} does not exist")
        elif path.suffix != f".{kind}":
            reader.error(where, f"{name!r} is not a .{kind} file")
    return files


def _meta(reader: _Reader, folder: Path, raw: Mapping[str, Any]) -> Meta:
    reader.table(raw, "meta", {"description", "robots", "structured_data", "sitemap"})
    robots = reader.get(raw, "meta", "robots", str, "index")
    if robots not in ROBOTS:
        reader.error("meta.robots", f"{robots!r} is not one of {', '.join(map(repr, ROBOTS))}")
        robots = "index"
    structured_data = reader.get(raw, "meta", "structured_data", str, "")
    if structured_data:
        path = (folder / structured_data).resolve()
        if not path.is_relative_to(folder.resolve()) or not path.is_file():
            reader.error("meta.structured_data", f"{structured_data!r} is not a file in the component folder")
            structured_data = ""
    sitemap = None
    spec = reader.get(raw, "meta", "sitemap", dict, None)
    if spec is not None:
        reader.table(spec, "meta.sitemap", {"bff", "path"})
        bff = reader.get(spec, "meta.sitemap", "bff", str, None)
        path_template = reader.get(spec, "meta.sitemap", "path", str, None)
        if bff is None or path_template is None or not path_template.startswith("/"):
            reader.error("meta.sitemap", "expected 'bff' and a 'path' starting with '/'")
        else:
            sitemap = DataSource(key="sitemap", bff=bff, path=path_template)
    return Meta(
        description=reader.get(raw, "meta", "description", str, ""),
        robots=robots,
        structured_data=structured_data,
        sitemap=sitemap,
    )


def _fixtures(
    reader: _Reader, raw: Mapping[str, Any], *, props: Mapping[str, PropSpec], reads: tuple[str, ...], kind: Kind
) -> dict[str, Fixture]:
    """`[fixtures.NAME]`: `state` for the keys the component reads, `props` of its own, a `description`.

    A component's fixture gives every key it reads (a missing one would only show its fallback); an
    app's may give none, as its children's fixtures fill the page.
    """
    fixtures = {}
    for name, spec in raw.items():
        where = f"fixtures.{name}"
        if not FIXTURE_PATTERN.match(name):
            reader.error(where, "a fixture name is lowercase letters, digits, '-' and '_'")
        if not isinstance(spec, dict):
            reader.error(where, "expected a table with 'state', 'props' or 'description'")
            continue
        reader.table(spec, where, {"state", "props", "description"})
        state = reader.get(spec, where, "state", dict, {})
        for key in state:
            if key not in reads:
                known = ", ".join(reads) or "no keys"
                reader.error(f"{where}.state.{key}", f"{key!r} is not a state key this component reads ({known})")
        if kind is not Kind.APP:
            for key in reads:
                if key not in state:
                    reader.error(f"{where}.state", f"missing state key {key!r} that the component reads")
        given = reader.get(spec, where, "props", dict, {})
        for prop, value in given.items():
            declared = props.get(prop)
            if declared is None:
                reader.error(f"{where}.props.{prop}", f"the component has no prop {prop!r}")
            elif not declared.accepts(value):
                reader.error(f"{where}.props.{prop}", f"expected {declared.type}, got {value!r}")
        for prop, declared in props.items():
            if declared.required and prop not in given:
                reader.error(f"{where}.props", f"missing required prop {prop!r}")
        description = reader.get(spec, where, "description", str, "")
        fixtures[name] = Fixture(name=name, state=state, props=given, description=description)
    return fixtures


def _routes(reader: _Reader, raw: Mapping[str, Any], kind: Kind) -> tuple[str, ...]:
    routes: tuple[str, ...] = reader.strings(raw, "", "routes") if kind is Kind.APP else ()
    for index, route in enumerate(routes):
        if not route.startswith("/"):
            reader.error(f"routes[{index}]", f"{route!r} must start with '/'")
    return routes


def _slots(reader: _Reader, raw: Mapping[str, Any]) -> dict[str, tuple[SlotEntry, ...]]:
    slots = {}
    for slot, entries in raw.items():
        where = f"slots.{slot}"
        if not KEY_PATTERN.match(slot):
            reader.error(where, "a slot name is lowercase letters, digits and '_'")
        if not isinstance(entries, list):
            reader.error(where, "expected a list of tables: [[slots.NAME]]")
            continue
        children = []
        for index, entry in enumerate(entries):
            here = f"{where}[{index}]"
            if not isinstance(entry, dict):
                reader.error(here, "expected a table with 'component'")
                continue
            reader.table(entry, here, {"component", "version", "props"})
            component = reader.get(entry, here, "component", str, None)
            if component is None:
                if "component" not in entry:
                    reader.error(f"{here}.component", "missing required field")
                continue
            text = reader.get(entry, here, "version", str, "")
            try:
                specifier = SpecifierSet(text)
            except InvalidSpecifier:
                reader.error(f"{here}.version", f'{text!r} is not a version specifier (e.g. "~=1.2")')
                continue
            props = reader.get(entry, here, "props", dict, {})
            children.append(SlotEntry(component=component, specifier=specifier, props=props))
        slots[slot] = tuple(children)
    return slots
