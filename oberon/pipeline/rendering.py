"""Rendering one component inside its boundary, with its fallback when anything fails."""

from __future__ import annotations

import functools
import json
import logging
import time
from collections.abc import Mapping, MutableMapping
from typing import Any, NamedTuple

import jinja2
import orjson
from jinja2.sandbox import ImmutableSandboxedEnvironment
from markupsafe import Markup

from oberon.pipeline.registry import Component
from oberon.pipeline.state import Failed
from oberon.pipeline.template_output import OutputCodeGenerator, escape_output, print_safe, trusted
from oberon.types import Outcome

logger = logging.getLogger("oberon.rendering")  # the name operators' log filters know

DEFAULT_FALLBACK = "fallback.html"
# The outcomes as plain names: reading a member off the enum class is a descriptor call in Python 3.11 (~900
# instructions), and each render and each read of a page's fragments asks (issue 19).
_OK, _FALLBACK = Outcome.OK, Outcome.FALLBACK

# What may not appear literally inside <script>: closing tags, comments, and the line
# separators that older JavaScript parsers treat as newlines. Replaced in the UTF-8 bytes, one
# `bytes.replace` each: C speed, where `str.translate` with a dict took 0.1–0.7 ms a page over
# 2–5 KB of JSON (bench/README.md, issue 19). Outside strings JSON has none of these characters,
# and inside one `\u003c` is `<` again for JSON.parse.
_SCRIPT_ESCAPES = ((b"<", b"\\u003c"), (b">", b"\\u003e"), (b"&", b"\\u0026"))
_LINE_SEPARATORS = (("\u2028".encode(), b"\\u2028"), ("\u2029".encode(), b"\\u2029"))
_SEPARATOR_LEAD = "\u2028".encode()[:2]  # b"\xe2\x80", which both begin with: most JSON has neither


_DICT_ATTRIBUTES = frozenset(dir(dict))
_MAX_SAFE_ATTRIBUTES = 4096


class _Environment(ImmutableSandboxedEnvironment):
    """Jinja's immutable sandbox, with `state.event.name` on plain dicts (JSON data) resolved without raising
    AttributeError first.

    Team templates are not trusted with the renderer's process: the sandbox refuses attributes that lead
    out of the data (`__globals__`, `__class__`, a function's code, …) and methods that change it.

    Jinja tries `getattr(obj, name)` and falls back to `obj[name]`; on a dict that is an exception per
    lookup, and templates look up data on every line. The result is the same: a dict has no attributes
    but its type's, so a name that is not one of them can only be an item.
    """

    code_generator_class = OutputCodeGenerator  # values printed as escaped `str` (oberon.pipeline.template_output)
    escape_output = staticmethod(escape_output)
    print_safe = staticmethod(print_safe)

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        # (type, attribute) pairs the sandbox found safe: its verdict depends on nothing else (`is_safe_attribute`
        # reads the object's type and the name, never the value), so it is asked once per pair, not per lookup.
        self._safe_attributes: set[tuple[type, str]] = set()

    def make_globals(self, d: MutableMapping[str, Any] | None) -> MutableMapping[str, Any]:
        """A template's globals as one plain dict: each render copies them into its context and takes their key
        set, which over Jinja's ChainMap is a walk in Python (8 renders a page). Nothing here changes the
        environment's globals once templates are loaded (a change would not reach those already loaded)."""
        return {**self.globals, **(d or {})}

    def getattr(self, obj: Any, attribute: str) -> Any:
        kind = type(obj)
        if kind is dict and attribute not in _DICT_ATTRIBUTES and attribute in obj:
            return obj[attribute]  # an item of the data: nothing the sandbox guards
        if (kind, attribute) not in self._safe_attributes:
            if not self.is_safe_attribute(obj, attribute, None):
                return super().getattr(obj, attribute)  # refused as before (or an item of that name)
            if len(self._safe_attributes) < _MAX_SAFE_ATTRIBUTES:  # names may come from data (`|attr(name)`)
                self._safe_attributes.add((kind, attribute))
        try:
            value = getattr(obj, attribute)
        except AttributeError:
            return super().getattr(obj, attribute)  # an item, else undefined, as Jinja looks it up
        formatter = self.wrap_str_format(value)  # a str's `format`: the sandbox's own, as Jinja does
        return value if formatter is None else formatter


def create_environment() -> jinja2.Environment:
    """The Jinja environment for components and the platform's own templates: autoescaped, strict."""
    return _Environment(
        loader=jinja2.PackageLoader("oberon", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        auto_reload=False,  # the platform's templates ship with the package; no stat() per page
    )


def serialize_state(state: Mapping[str, Any]) -> Markup:
    """JSON for a `<script type="application/json">` element that no value can break out of."""
    data = _json(state)
    for character, escaped in _SCRIPT_ESCAPES:
        data = data.replace(character, escaped)
    if _SEPARATOR_LEAD in data:
        for character, escaped in _LINE_SEPARATORS:
            data = data.replace(character, escaped)
    return Markup(data.decode("utf-8"))


def _json(value: Any) -> bytes:
    """Compact JSON in UTF-8, non-ASCII kept, anything else as `str`: orjson (7× the standard library's speed
    here), which refuses integers beyond 64 bits; those are left to the standard library."""
    try:
        return orjson.dumps(value, default=str, option=orjson.OPT_NON_STR_KEYS)
    except TypeError:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str).encode("utf-8")


class Fragment(NamedTuple):
    """The rendered HTML of one component, how its render ended, and how long its templates took.

    A named tuple, not a frozen dataclass: a page makes one per component, and a frozen dataclass's `__init__` sets
    each of its seven fields through `object.__setattr__` (1.2 µs against 0.4 µs; issue 19)."""

    component: Component
    html: Markup
    outcome: Outcome
    reason: str = ""
    status_code: int | None = None
    raised: bool = False  # its own template raised (rather than its data failing)
    seconds: float = 0.0

    @property
    def result(self) -> str:
        """`ok`, `fallback` (its data failed or timed out) or `error` (its template raised): the metrics' outcome."""
        if self.outcome is _OK:
            return "ok"
        return "error" if self.raised else "fallback"


def resolve_props(component: Component, given: Mapping[str, Any]) -> dict[str, Any]:
    """The component's defaults overlaid with the props it was given."""
    return {**component.manifest.prop_defaults, **given}


def render_component(
    component: Component,
    *,
    state: Mapping[str, Any],
    props: Mapping[str, Any],
    environment: jinja2.Environment,
    slots: Mapping[str, Markup] | None = None,
    params: Mapping[str, Any] | None = None,
) -> Fragment:
    """Render from the component's state slice and props; a failed key or a raising template gives its fallback.

    `params`: the page's path params and declared query parameters, the templates' `params`."""
    started = time.perf_counter()
    slots = slots or {}
    params = params or {}
    # Plain loops and one frame: a generator or a comprehension is a frame of its own in 3.11, and this runs for
    # every render (issue 19).
    for value in state.values():
        if isinstance(value, Failed):
            reason, status_code = value.reason, value.status_code
            return _fallback(component, state, props, slots, params, environment, started, reason, status_code)
    keys = component.manifest.keys
    for key in keys:
        if key not in state:
            missing = ", ".join(name for name in keys if name not in state)
            reason = f"timed out waiting for {missing}"
            return _fallback(component, state, props, slots, params, environment, started, reason)
    try:
        # `template.render(...)` by Jinja's documented low-level API (`Template.new_context`, `root_render_func`):
        # without `render`'s frame, its copy of the arguments and its traceback rewriting (issue 19). An exception is
        # the template's own, as `render` raises it; only its class and message are logged here. Its context's data
        # made in one dict display, the template's globals first as `new_context` would merge them, and handed over
        # as is (`shared`): not copied once more, with the arguments again as keywords.
        template = component.template
        variables = {**template.globals, "state": state, "props": props, "slots": slots, "params": params}
        body = template.environment.concat(template.root_render_func(template.new_context(variables, shared=True)))
    except Exception as exc:  # any template error is contained to this component
        logger.warning("component %s raised while rendering: %r", component.manifest.ident, exc)
        reason = f"template raised {exc.__class__.__name__}"
        return _fallback(component, state, props, slots, params, environment, started, reason, raised=True)
    seconds = time.perf_counter() - started
    return Fragment(component, _boundary(component, _OK, body), _OK, seconds=seconds)


def _fallback(
    component: Component,
    state: Mapping[str, Any],
    props: Mapping[str, Any],
    slots: Mapping[str, Markup],
    params: Mapping[str, Any],
    environment: jinja2.Environment,
    started: float,
    reason: str,
    status_code: int | None = None,
    *,
    raised: bool = False,
) -> Fragment:
    """The fallback in its boundary, timed from `started` (the component's own render, when it raised, included)."""
    usable = {key: value for key, value in state.items() if not isinstance(value, Failed)}
    body = fallback_body(component, state=usable, props=props, environment=environment, slots=slots, params=params)
    html = _boundary(component, _FALLBACK, body)
    seconds = time.perf_counter() - started
    return Fragment(component, html, _FALLBACK, reason, status_code, raised=raised, seconds=seconds)


def fallback_body(
    component: Component,
    *,
    state: Mapping[str, Any],
    props: Mapping[str, Any],
    environment: jinja2.Environment,
    slots: Mapping[str, Markup] | None = None,
    params: Mapping[str, Any] | None = None,
) -> Markup:
    """The component's fallback (its `fallback.html`, else the platform's), without its boundary."""
    body = ""
    if component.fallback is not None:
        try:
            body = component.fallback.render(state=state, props=props, slots=slots or {}, params=params or {})
        except Exception as exc:  # a broken fallback falls back to the platform's default
            logger.warning("fallback of %s raised: %r", component.manifest.ident, exc)
            body = ""
    if not body and slots:
        # An app whose own layout failed still shows its children: they did not fail.
        body = Markup("").join(slots.values())
    if not body:
        body = environment.get_template(DEFAULT_FALLBACK).render(component=component.manifest)
    return Markup(body)


def _boundary(component: Component, outcome: Outcome, body: str) -> Markup:
    """`body` (already escaped HTML) in the component's boundary element."""
    manifest = component.manifest
    # str.join, not +: adding a str to a Markup would escape the str. `Outcome` is a `StrEnum`, itself the text its
    # `.value` would give.
    return trusted("".join((_opening_tag(manifest.name, manifest.version_text, outcome), body, "</div>")))


@functools.lru_cache(maxsize=4096)
def _opening_tag(name: str, version: str, outcome: Outcome) -> str:
    return str(
        Markup(
            '<div class="oberon-boundary" data-oberon-component="{}" data-oberon-version="{}" data-oberon-outcome="{}">'
        ).format(name, version, outcome)
    )


class RenderedFragments:
    """Components rendered from the very same data objects: concurrent pages share one render.

    Concurrent identical calls are coalesced and fresh answers are cached by the client, so pages in
    flight together often hold the *same* decoded JSON objects. A component is a pure function of its
    state and props; rendered from the same objects (`is`, not `==`: nothing is compared, nothing can be
    stale) it gives the same HTML. Only successful renders of components without slots are kept, a few
    hundred at most, the least recently used dropped first; an entry holds its data objects, so their ids
    cannot be reused while it lives.

    On a page whose data is new every time each render is a miss: `key`, `find` and `keep` let the page work
    the key out once, and a kept render is copied (without its render time) only once it is shared.

    Where no kept render is ever found (every page's data its own), keeping costs each render a key, a look and an
    insert for nothing: once `max_entries` renders in a row were kept and none found, the page path (`looks`) takes
    that way only for one render in `COLD_SAMPLE`, until one of those is found again (data shared once more).
    """

    COLD_SAMPLE = 16

    def __init__(self, max_entries: int = 512) -> None:
        self.max_entries = max_entries
        self._unfound = 0  # renders kept since one was last found
        self._passed = 0  # renders not looked at while cold
        # key → (the data objects rendered from, held so their ids stay theirs; the render), in order of use, the least
        # recent first. A plain tuple each: most are never found again, on pages whose data is their own (issue 19).
        self._entries: dict[tuple[Any, ...], tuple[tuple[Any, ...], Fragment]] = {}

    def get(
        self,
        component: Component,
        state: Mapping[str, Any],
        props: Mapping[str, Any],
        params: Mapping[str, Any] | None = None,
    ) -> Fragment | None:
        return self.find(self.key(component, state, props, params), state)

    def put(
        self,
        component: Component,
        state: Mapping[str, Any],
        props: Mapping[str, Any],
        fragment: Fragment,
        params: Mapping[str, Any] | None = None,
    ) -> None:
        self.keep(self.key(component, state, props, params), state, fragment)

    @staticmethod
    def key(
        component: Component,
        state: Mapping[str, Any],
        props: Mapping[str, Any],
        params: Mapping[str, Any] | None = None,
    ) -> tuple[Any, ...] | None:
        """What a render is kept under: the component, the very data objects and its props; and the page's params
        only when its templates read them (found when compiled), so components that do not lose no shared renders
        between pages. None when it cannot be kept (an unhashable prop)."""
        items = tuple(props.items()) if props else ()
        if items:
            try:
                hash(items)
            except TypeError:  # a list or dict prop: not worth a deep key
                return None
        ident = component.manifest.ident
        if component.reads_params:
            return (ident, tuple(map(id, state.values())), items, tuple(sorted((params or {}).items())))
        return (ident, tuple(map(id, state.values())), items)

    def find(self, key: tuple[Any, ...] | None, state: Mapping[str, Any]) -> Fragment | None:
        """The render kept under `key` from the very objects of `state`, if one is."""
        if key is None:
            return None
        entries = self._entries
        kept = entries.get(key)
        if kept is None:
            return None
        values, fragment = kept
        if len(values) != len(state) or any(a is not b for a, b in zip(values, state.values(), strict=False)):
            return None
        del entries[key]
        self._unfound = 0
        if fragment.seconds:  # handed out with no render time, from its first sharing on: a shared render takes none
            fragment = fragment._replace(seconds=0.0)
            kept = (values, fragment)
        entries[key] = kept  # the most recently used
        return fragment

    def keep(self, key: tuple[Any, ...] | None, state: Mapping[str, Any], fragment: Fragment) -> None:
        """Keep a successful render under `key`, dropping the least recently used beyond `max_entries`."""
        if key is None or fragment.outcome is not _OK:
            return
        entries = self._entries
        if key in entries:
            del entries[key]
        entries[key] = (tuple(state.values()), fragment)
        if len(entries) > self.max_entries:
            del entries[next(iter(entries))]
        self._unfound += 1

    @property
    def cold(self) -> bool:
        """The last `max_entries` renders were kept and none was found since: see `looks`."""
        return self._unfound >= self.max_entries

    def looks(self) -> bool:
        """Whether the next render of a page is worth a look here and keeping: always unless `cold`, then one in
        `COLD_SAMPLE`, so that data pages share again is noticed (issue 19: on pages whose data is all their own, the
        key, the look and the keep were ~14,000 instructions a leaf's render, for nothing)."""
        if self._unfound < self.max_entries:  # not `cold`
            return True
        self._passed += 1
        return self._passed % self.COLD_SAMPLE == 0

    def clear(self) -> None:
        self._entries.clear()
        self._unfound = 0
