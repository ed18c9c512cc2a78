"""Aliases and small enums shared across Oberon's modules."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Any

JSON = Any
State = Mapping[str, Any]
Params = Mapping[str, Any]


class Cacheability(enum.StrEnum):
    """Whether a component's or page's output may be shared between users."""

    PUBLIC = "public"
    PRIVATE = "private"


class Kind(enum.StrEnum):
    """A component renders a fragment; an app owns routes and a layout with slots."""

    COMPONENT = "component"
    APP = "app"


class Mode(enum.StrEnum):
    """The site's degradation mode, which lengthens shared cache lifetimes."""

    NORMAL = "normal"
    DEGRADED = "degraded"


class Outcome(enum.StrEnum):
    """How one component's render ended."""

    OK = "ok"
    FALLBACK = "fallback"
