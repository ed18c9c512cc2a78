"""`serialize_state` against the ways it could escape, on realistic state: `python -m bench.serialize_micro`.

The states: the peers' page-5 (five fragments of markup, as the page shipped them before issue 19) and the
demo's event page (every demo component's default fixture). Each way must give exactly the current output.
"""

from __future__ import annotations

import timeit
import tomllib
from collections.abc import Callable
from typing import Any

import orjson
from markupsafe import Markup

from bench.checkout import ROOT
from oberon.pipeline.rendering import serialize_state

CONTENT = ROOT.parent / "shared" / "peers" / "common" / "content"
_TABLE = str.maketrans({"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"})


def _dumps(value: Any) -> bytes:
    return orjson.dumps(value, default=str, option=orjson.OPT_NON_STR_KEYS)


def translate(value: Any) -> Markup:
    """Before issue 19: `str.translate` with a dict."""
    return Markup(_dumps(value).decode().translate(_TABLE))


def str_replace(value: Any) -> Markup:
    text = _dumps(value).decode()
    for character, escaped in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"), ("\u2028", "\\u2028"),
                               ("\u2029", "\\u2029")):  # fmt: skip
        text = text.replace(character, escaped)
    return Markup(text)


def dumps_only(value: Any) -> str:
    """orjson alone, unescaped: the floor."""
    return _dumps(value).decode()


def states() -> dict[str, Any]:
    page5 = {f"frag_{n}": {"html": (CONTENT / f"frag-{n}.html").read_text()} for n in range(1, 6)}
    event: dict[str, Any] = {}
    for manifest in sorted((ROOT / "components").glob("*/component.toml")):
        event.update(tomllib.loads(manifest.read_text()).get("fixtures", {}).get("default", {}).get("state", {}))
    return {"page-5": {"state": page5, "failed": []}, "event": {"state": event, "failed": []}}


def main() -> None:
    hostile = {"state": {"x</script>": "</script><!-- <script> & \u2028 \u2029 é – 😀"}, "failed": []}
    ways: list[Callable[[Any], object]] = [dumps_only, translate, str_replace, serialize_state]
    for name, state in {**states(), "hostile": hostile}.items():
        assert str_replace(state) == translate(state) == serialize_state(state), name
        size = len(dumps_only(state).encode())
        for way in ways:
            seconds = min(timeit.repeat(lambda: way(state), number=2000, repeat=5)) / 2000  # noqa: B023
            print(f"{name:8} {size:6} B  {way.__name__:16} {seconds * 1e6:8.1f} µs")


if __name__ == "__main__":
    main()
