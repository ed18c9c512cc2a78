"""The routing table (`gateway/routes.toml`): path prefix → upstream, auth requirement, methods, timeout.

```toml
[[route]]
prefix = "/bff/events"      # matches /bff/events and everything below it, whole segments only
upstream = "bff:events"     # renderer | bff:<team> | backend:<name>, as the topology provides them
auth = "optional"           # none | optional | required
methods = ["GET"]           # optional; GET allows HEAD too
timeout = 3.0               # optional, seconds until the upstream's answer starts
strip_prefix = true         # optional; the upstream sees /events/1 for /bff/events/1
admin = false               # optional; true: needs OBERON_ADMIN_TOKEN as a Bearer token (403 when none is set)
forward_authorization = false  # optional; true: the caller's Authorization reaches the upstream (auth = "none" only)
forward_cookies = false     # optional; true: the caller's cookies (never the session's) reach the upstream
waiting_room = 300          # optional; an on-sale: at most this many visitors admitted a minute, first in, first out
```

The longest matching prefix wins. The table is validated as a whole at start; every problem
is reported as `file:line: route.field: message`.
"""

from __future__ import annotations

import enum
import functools
import re
import tomllib
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway.errors import RouteTableError

DEFAULT_TIMEOUT = 10.0
MAX_TIMEOUT = 300.0
MAX_WAITING_ROOM = 1_000_000  # visitors a minute; more is no waiting room at all
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
FIELDS = (
    "prefix",
    "upstream",
    "auth",
    "methods",
    "timeout",
    "strip_prefix",
    "admin",
    "forward_authorization",
    "forward_cookies",
    "waiting_room",
)
_PREFIX = re.compile(r"^/[A-Za-z0-9._~!$&'()*+,;=:@/-]*$")
_ROUTE_HEADER = re.compile(r"^\[\[\s*route\s*\]\]\s*(#.*)?$")
_KEY = re.compile(r"^([A-Za-z0-9_-]+)\s*=")


class Auth(enum.StrEnum):
    """What a route needs from the caller: nothing, a session if there is one, or a session."""

    NONE = "none"
    OPTIONAL = "optional"
    REQUIRED = "required"


@dataclass(frozen=True)
class Route:
    """One row of the table."""

    prefix: str
    upstream: str
    auth: Auth
    methods: frozenset[str] | None = None
    timeout: float = DEFAULT_TIMEOUT
    strip_prefix: bool = False
    admin: bool = False
    forward_authorization: bool = False  # else the caller's credentials stop at the gateway
    forward_cookies: bool = False  # else the caller's Cookie header stops at the gateway
    waiting_room: int | None = None  # visitors admitted a minute (gateway.waiting_room); None: no waiting room

    @functools.cached_property
    def label(self) -> str:
        """The route's label in metrics and logs (`/bff/events/*`, `/*`): one per route, not per request."""
        return self.prefix.rstrip("/") + "/*"

    def matches(self, path: str) -> bool:
        """Whole segments only: `/bff/events` matches `/bff/events/1`, not `/bff/eventsx`."""
        return self.prefix == "/" or path == self.prefix or path.startswith(self.prefix + "/")

    def allows(self, method: str) -> bool:
        return self.methods is None or method in self.methods

    def upstream_path(self, path: str) -> str:
        """The path the upstream sees."""
        if not self.strip_prefix or self.prefix == "/":
            return path
        return path[len(self.prefix) :] or "/"


class RouteTable:
    """Routes by prefix; `match` finds the longest prefix that matches a path."""

    def __init__(self, routes: Iterable[Route]) -> None:
        self.routes = tuple(sorted(routes, key=lambda route: len(route.prefix), reverse=True))

    def match(self, path: str) -> Route | None:
        """The route for a normalised path (see `normalize_path`), or None."""
        for route in self.routes:  # a loop, not a generator's frame (a page's path, every request)
            if route.matches(path):
                return route
        return None

    def adding(self, routes: Iterable[Route]) -> RouteTable:
        """This table with more routes; RouteTableError when one's prefix is taken already."""
        added = list(routes)
        taken = {route.prefix for route in self.routes}
        clashes = [
            f"route.prefix: {route.prefix!r} is the topology's; remove it" for route in added if route.prefix in taken
        ]
        if clashes:
            raise RouteTableError(clashes)
        return RouteTable([*self.routes, *added])

    @property
    def upstreams(self) -> set[str]:
        return {route.upstream for route in self.routes}

    def __len__(self) -> int:
        return len(self.routes)


def normalize_prefix(prefix: str) -> str:
    """`/bff/events/` and `/bff/events` are one prefix."""
    return prefix.rstrip("/") or "/"


def normalize_path(path: str) -> str:
    """Collapse repeated slashes and resolve `.` and `..`, so the path matched is the path forwarded."""
    if path.startswith("/") and "//" not in path and "/." not in path:
        return path  # nothing to resolve (most paths): not split and joined again
    segments: list[str] = []
    for segment in path.split("/"):
        if segment in ("", "."):
            continue
        if segment == "..":
            if segments:
                segments.pop()
            continue
        segments.append(segment)
    trailing = "/" if path.endswith(("/", "/.", "/..")) and segments else ""
    return "/" + "/".join(segments) + trailing


def load_table(file: Path, *, upstreams: Collection[str]) -> RouteTable:
    """Read and validate a routing table; RouteTableError lists every problem with its line."""
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise RouteTableError([f"{file}: cannot read the routing table: {exc.strerror or exc}"]) from None
    return parse_table(text, file=file, upstreams=upstreams)


def parse_table(text: str, *, file: Path | str, upstreams: Collection[str]) -> RouteTable:
    """Validate the text of a routing table against the upstreams the topology provides."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        line = getattr(exc, "lineno", None)
        raise RouteTableError([f"{file}:{line or 1}: not valid TOML: {getattr(exc, 'msg', exc)}"]) from None
    errors: list[str] = []
    unknown = sorted(set(raw) - {"route"})
    for key in unknown:
        errors.append(f"{file}:{_top_level_line(text, key)}: {key}: unknown field; write each route as [[route]]")
    entries = raw.get("route", [])
    lines = _route_lines(text)
    if not isinstance(entries, list) or len(lines) != len(entries):
        raise RouteTableError([*errors, f"{file}:1: route: write each route as its own [[route]] table"])
    routes: list[Route] = []
    seen: dict[str, int] = {}
    for entry, where in zip(entries, lines, strict=True):
        route = _route(entry, where, file=file, upstreams=upstreams, errors=errors)
        if route is None:
            continue
        if route.prefix in seen:
            errors.append(
                f"{file}:{where.get('prefix', where[''])}: route.prefix: duplicate prefix {route.prefix!r}"
                f" (first at line {seen[route.prefix]})"
            )
            continue
        seen[route.prefix] = where.get("prefix", where[""])
        routes.append(route)
    if errors:
        raise RouteTableError(errors)
    return RouteTable(routes)


def default_table(upstreams: Collection[str]) -> RouteTable:
    """Without a table: pages to the renderer, `/bff/<team>` to each team's BFF."""
    routes = [Route(prefix="/", upstream="renderer", auth=Auth.OPTIONAL)]
    for name in sorted(upstreams):
        kind, _, service = name.partition(":")
        if kind == "bff":
            routes.append(Route(prefix=f"/bff/{service}", upstream=name, auth=Auth.OPTIONAL, strip_prefix=True))
    return RouteTable(routes)


def stand_in_routes(backends: Iterable[str]) -> list[Route]:
    """`/_backends/<name>` to each stand-in backend (`backend:<name>`) the site runs itself, for its fault admin.

    Only the topology adds them, and only for stand-ins it runs (`oberon up`): a site's table cannot,
    and production, whose backends are real services, has none. Always behind the admin token.
    """
    return [
        Route(
            prefix=f"/_backends/{name.partition(':')[2]}", upstream=name, auth=Auth.NONE, strip_prefix=True, admin=True
        )
        for name in sorted(backends)
    ]


def _route(
    entry: Any, where: Mapping[str, int], *, file: Path | str, upstreams: Collection[str], errors: list[str]
) -> Route | None:
    """One validated route, or None after appending its errors."""
    before = len(errors)

    def error(field: str, message: str) -> None:
        errors.append(f"{file}:{where.get(field, where[''])}: route.{field}: {message}")

    if not isinstance(entry, dict):
        errors.append(f"{file}:{where['']}: route: expected a table")
        return None
    for key in sorted(set(entry) - set(FIELDS)):
        error(key, f"unknown field; expected {', '.join(FIELDS)}")
    for key in ("prefix", "upstream", "auth"):
        if key not in entry:
            errors.append(f"{file}:{where['']}: route.{key}: missing required field")

    prefix = entry.get("prefix", "/")
    if not isinstance(prefix, str) or not _PREFIX.match(prefix) or "//" in prefix:
        error("prefix", f"expected a path starting with '/', got {prefix!r}")
    elif any(segment in (".", "..") for segment in prefix.split("/")):
        error("prefix", f"'.' and '..' segments are not allowed, got {prefix!r}")
    upstream = entry.get("upstream", "renderer")
    if not isinstance(upstream, str) or upstream not in upstreams:
        error("upstream", f"unknown upstream {upstream!r}; known: {', '.join(sorted(upstreams)) or 'none'}")
    auth = entry.get("auth", Auth.OPTIONAL.value)
    if auth not in {value.value for value in Auth}:
        error("auth", f"expected one of none, optional, required, got {auth!r}")
    methods = entry.get("methods")
    if methods is not None:
        if not isinstance(methods, list) or not methods or not all(isinstance(method, str) for method in methods):
            error("methods", "expected a non-empty list of HTTP methods")
        elif bad := [method for method in methods if method not in METHODS]:
            error("methods", f"unknown method {bad[0]!r}; expected some of {', '.join(sorted(METHODS))}")
    timeout = entry.get("timeout", DEFAULT_TIMEOUT)
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not 0 < timeout <= MAX_TIMEOUT:
        error("timeout", f"expected seconds, more than 0 and at most {MAX_TIMEOUT:g}, got {timeout!r}")
    for flag in ("strip_prefix", "admin", "forward_authorization", "forward_cookies"):
        if not isinstance(entry.get(flag, False), bool):
            error(flag, f"expected true or false, got {entry[flag]!r}")
    waiting_room = entry.get("waiting_room")
    if waiting_room is not None and (
        isinstance(waiting_room, bool) or not isinstance(waiting_room, int) or not 0 < waiting_room <= MAX_WAITING_ROOM
    ):
        error("waiting_room", f"expected visitors a minute, from 1 to {MAX_WAITING_ROOM:,}, got {waiting_room!r}")
    elif waiting_room is not None and entry.get("admin") is True:
        error("waiting_room", "an admin route has no waiting room")
    if entry.get("admin") is True and auth != Auth.NONE.value:
        error("admin", 'an admin route takes the admin token as its Bearer token, so it needs auth = "none"')
    if entry.get("forward_authorization") is True and auth != Auth.NONE.value:
        error("forward_authorization", 'the gateway verifies Authorization here; only auth = "none" forwards it')
    if len(errors) > before:
        return None

    allowed = None
    if methods is not None:
        allowed = frozenset(methods) | ({"HEAD"} if "GET" in methods else set())
    return Route(
        prefix=normalize_prefix(prefix),
        upstream=upstream,
        auth=Auth(auth),
        methods=allowed,
        timeout=float(timeout),
        strip_prefix=entry.get("strip_prefix", False),
        admin=entry.get("admin", False),
        forward_authorization=entry.get("forward_authorization", False),
        forward_cookies=entry.get("forward_cookies", False),
        waiting_room=waiting_room,
    )


def _route_lines(text: str) -> list[dict[str, int]]:
    """For each `[[route]]` table, in order: its header line (key "") and the line of each of its keys."""
    tables: list[dict[str, int]] = []
    inside = False
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if _ROUTE_HEADER.match(stripped):
            tables.append({"": number})
            inside = True
        elif stripped.startswith("["):
            inside = False
        elif inside and (key := _KEY.match(stripped)):
            tables[-1].setdefault(key.group(1), number)
    return tables


def _top_level_line(text: str, key: str) -> int:
    """The line of a top-level key or of the first header of its table."""
    header = re.compile(r"^\[\[?\s*" + re.escape(key) + r"\s*[\].]")
    in_root = True
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if header.match(stripped):
            return number
        if stripped.startswith("["):
            in_root = False
        elif in_root and (match := _KEY.match(stripped)) and match.group(1) == key:
            return number
    return 1
