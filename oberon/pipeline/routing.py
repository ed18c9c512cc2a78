"""Route templates of apps (`/e/{event_id:int}`) and matching a path to an app."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

from starlette.convertors import Convertor
from starlette.routing import compile_path


@dataclass(frozen=True)
class Route:
    """One route template owned by an app, compiled with Starlette's path convertors."""

    template: str
    app: str
    regex: re.Pattern[str]
    convertors: Mapping[str, Convertor[Any]]

    @classmethod
    def compile(cls, template: str, app: str) -> Route:
        """Compile `template`; ValueError names what is wrong with it."""
        try:
            regex, _, convertors = compile_path(template)
        except (AssertionError, ValueError) as exc:  # Starlette asserts on unknown convertors
            raise ValueError(str(exc) or f"invalid route template {template!r}") from None
        return cls(template=template, app=app, regex=regex, convertors=convertors)

    @property
    def params(self) -> frozenset[str]:
        return frozenset(self.convertors)

    def match(self, path: str) -> dict[str, Any] | None:
        """The converted params if `path` matches, else None (a param of the wrong type does not match)."""
        found = self.regex.match(path)
        if found is None:
            return None
        return {name: self.convertors[name].convert(value) for name, value in found.groupdict().items()}

    @property
    def specificity(self) -> tuple[int, int]:
        """Literal routes sort before templated ones, so `/e/new` wins over `/e/{id}`."""
        literal = re.sub(r"{[^}]*}", "", self.template)
        return (len(self.params), -len(literal))


class RouteMatch(NamedTuple):
    """The route a path matched and its converted params (a named tuple: one a page)."""

    route: Route
    params: Mapping[str, Any]


class Router:
    """Maps a request path to the app that owns it."""

    def __init__(self, routes: Iterable[Route]) -> None:
        self.routes = sorted(routes, key=lambda route: route.specificity)

    def match(self, path: str) -> RouteMatch | None:
        for route in self.routes:
            params = route.match(path)
            if params is not None:
                return RouteMatch(route=route, params=params)
        return None
