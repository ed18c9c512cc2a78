"""The configuration reference (`docs/settings.md`), generated from the code that reads the settings.

Every `OBERON_*` variable, its type, its default and the settings field it fills are read out of
`Settings.from_environ` itself (each `config("NAME", cast=…, default=…)` call and the field it is
passed to) and the dataclasses it builds, so the reference follows the code. Only the meaning of
each variable is written here, in `MEANINGS`; a test fails when a variable has none, when a
meaning names a variable nobody reads, or when the committed file differs from this output:

    python -m oberon.runtime.reference > docs/settings.md
"""

from __future__ import annotations

import ast
import inspect
import sys
import textwrap
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from oberon.runtime import settings as config
from oberon.runtime.settings import Settings

PREFIX = "OBERON_"
GENERAL = "General"
# The group of each nested settings field, in the order the reference shows them.
GROUPS: Mapping[str, str] = {
    "cache": "Cache lifetimes",
    "gateway": "Gateway",
    "breaker": "Circuit breakers",
    "degradation": "Degradation",
}
# Top-level fields that belong with a group rather than under General.
FIELD_GROUPS: Mapping[str, str] = {"degraded": "Degradation", "degradation_file": "Degradation"}
CASTS: Mapping[str, str] = {
    "str": "text",
    "int": "integer",
    "float": "number",
    "bool": "boolean (`true`/`false`, `1`/`0`)",
    "Path": "path",
    "_words": "list (comma or space separated)",
    "mode_or_auto": "`degraded`, `normal` or `auto`",
}

MEANINGS: Mapping[str, str] = {
    "OBERON_SITE_FILE": "The site file: component roots, BFFs, backends and the gateway's routing table.",
    "OBERON_HOST": "Interface the entrance binds (`oberon up`); anything but loopback needs `OBERON_SESSION_SECRET`.",
    "OBERON_PORT": "Port of the browser's entrance: the gateway, or Varnish with `--cdn`.",
    "OBERON_FAULTS": "Faults the stand-in backends start with: `name=down`, `name=latency:MS`, `name=error:RATIO`.",
    "OBERON_ADMIN_TOKEN": "Bearer token of the admin endpoints (degradation switch, backend faults); unset: open.",
    "OBERON_UPSTREAM_TIMEOUT": "Seconds a call to a BFF or backend may take before it counts as failed.",
    "OBERON_BUILD_DIR": "Where `oberon build` writes the hashed assets (default: `build/assets` beside the site file).",
    "OBERON_PUBLIC_URL": "The site's public origin, for canonical URLs and the sitemap (default: the entrance).",
    "OBERON_LOG_FORMAT": "`json` or `text`; empty: text on a terminal, JSON otherwise.",
    "OBERON_TRACES_EXPORTER": "OpenTelemetry spans: `none`, `console` or `otlp`.",
    "OBERON_DEGRADED": "Force a mode at start: `degraded` or `normal`; `auto` (or empty) leaves it to the controller.",
    "OBERON_DEGRADATION_FILE": "A watched file saying `degraded` or `normal` forces the mode (a ConfigMap in k8s).",
    "OBERON_ESI": "Carve private components out of public pages as ESI islands (a CDN in front fills them).",
    "OBERON_STREAM_AFTER_MS": "How long an app's page waits for its non-critical components once the critical ones "
    "are rendered, before it starts sending and streams the rest in place as they finish (a process busy for most of "
    "that wait keeps waiting, up to 100 ms in all); `off`: never stream.",
    "OBERON_PAGE_CACHE_SECONDS": "Longest the renderer keeps an anonymous public page whose data is all cacheable "
    "(never longer than that data stays fresh); `0` turns the page cache off.",
    "OBERON_CACHE_SHARED_MAX_AGE": "`s-maxage` of a public page in normal mode.",
    "OBERON_CACHE_DEGRADED_MAX_AGE": "`s-maxage` of a public page in degraded mode: 60 to 300 seconds.",
    "OBERON_CACHE_FALLBACK_MAX_AGE": "`s-maxage` of a page that shows a fallback.",
    "OBERON_CACHE_STALE_WHILE_REVALIDATE": "`stale-while-revalidate` of public pages.",
    "OBERON_CACHE_STALE_IF_ERROR": "`stale-if-error` of public pages (Varnish's grace).",
    "OBERON_SESSION_SECRET": "Signs the session cookie; at least 32 characters. The default is public: demo only.",
    "OBERON_SESSION_MAX_AGE": "Seconds a session lasts.",
    "OBERON_JWT_KEY": "Key that verifies Bearer JWTs; unset: every Bearer token is refused.",
    "OBERON_JWT_ALGORITHMS": "Algorithms a JWT may use, one family per key; `none` is never accepted.",
    "OBERON_JWT_AUDIENCE": "The `aud` every JWT must carry.",
    "OBERON_JWT_ISSUER": "The `iss` every JWT must carry, when set.",
    "OBERON_TRUSTED_PROXIES": "Addresses or networks whose `X-Forwarded-*` headers the gateway believes.",
    "OBERON_MAX_HEADER_BYTES": "Largest request headers (431) and URL (414) the gateway accepts.",
    "OBERON_MAX_BODY_BYTES": "Largest request body the gateway forwards (413).",
    "OBERON_ASSET_ORIGIN": "Origin pages load assets from (a cookieless host); the CSP allows it.",
    "OBERON_LOCALES": "Locales the gateway negotiates from `Accept-Language`, the first the default.",
    "OBERON_BREAKER_FAILURE_RATIO": "Share of failed calls in the window that opens an upstream's breaker.",
    "OBERON_BREAKER_WINDOW_SECONDS": "Sliding window over which a breaker counts calls.",
    "OBERON_BREAKER_MIN_CALLS": "Calls in the window before a breaker may open.",
    "OBERON_BREAKER_OPEN_SECONDS": "How long an open breaker fails calls fast before it lets one through.",
    "OBERON_DEGRADATION_WINDOW_SECONDS": "Sliding window of the downstream signals that switch to degraded mode.",
    "OBERON_DEGRADATION_MIN_CALLS": "Downstream calls in the window before the error ratio and p95 count.",
    "OBERON_DEGRADATION_ERROR_RATIO": "Downstream error ratio that enters degraded mode.",
    "OBERON_DEGRADATION_P95_MS": "Downstream p95 latency (ms) that enters degraded mode.",
    "OBERON_DEGRADATION_OPEN_BREAKERS": "Open circuit breakers that enter degraded mode.",
    "OBERON_DEGRADATION_HOLD_SECONDS": "How long the signals must stay healthy before degraded mode ends.",
}


@dataclass(frozen=True)
class Variable:
    """One environment variable as `Settings.from_environ` reads it."""

    name: str  # OBERON_…
    field: str  # the settings field it fills, dotted: `gateway.session_secret`
    kind: str  # what the value is: integer, path, list…
    default: Any

    @property
    def group(self) -> str:
        head, dot, _ = self.field.partition(".")
        if not dot:
            return FIELD_GROUPS.get(head, GENERAL)
        return GROUPS.get(head, head.replace("_", " ").capitalize())


def variables() -> list[Variable]:
    """Every variable `Settings.from_environ` reads, in the order it reads them."""
    source = textwrap.dedent(inspect.getsource(Settings.from_environ))
    function = ast.parse(source).body[0]
    assert isinstance(function, ast.FunctionDef)
    namespace = vars(config)
    return [
        Variable(name=PREFIX + name, field=".".join(path), kind=_kind(cast), default=_value(default, namespace))
        for name, path, cast, default in _calls(function, ())
    ]


def _calls(node: ast.AST, path: tuple[str, ...]) -> Iterator[tuple[str, tuple[str, ...], ast.expr | None, Any]]:
    """`config("NAME", …)` calls under `node`, with the keyword path of constructor arguments leading to each."""
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "config":
        name = node.args[0]
        assert isinstance(name, ast.Constant) and isinstance(name.value, str), ast.unparse(node)
        keywords = {keyword.arg: keyword.value for keyword in node.keywords}
        yield name.value, path, keywords.get("cast"), keywords.get("default")
        return
    if isinstance(node, ast.Call):
        for argument in node.args:
            yield from _calls(argument, path)
        for keyword in node.keywords:
            yield from _calls(keyword.value, (*path, keyword.arg) if keyword.arg else path)
        return
    for child in ast.iter_child_nodes(node):
        yield from _calls(child, path)


def _kind(cast: ast.expr | None) -> str:
    if cast is None:
        return CASTS["str"]
    name = ast.unparse(cast)
    if name in CASTS:
        return CASTS[name]
    function = getattr(config, name, None)
    doc = inspect.getdoc(function) if function is not None else None
    return doc.splitlines()[0] if doc else name


def _value(default: ast.expr | None, namespace: Mapping[str, Any]) -> Any:
    if default is None:
        return None
    return eval(compile(ast.Expression(default), "<default>", "eval"), dict(namespace))  # our own source


def _shown(value: Any) -> str:
    if value is None or value == "":
        return "(unset)"
    if isinstance(value, bool):
        return "`true`" if value else "`false`"
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, Path):
        value = value.as_posix()
    text = str(value)
    if len(text) > 40:
        text = text[:37] + "…"
    return f"`{text}`"


def render() -> str:
    """The reference as Markdown."""
    found = variables()
    lines = [
        "# Configuration reference",
        "",
        "<!-- Generated by `python -m oberon.runtime.reference > docs/settings.md`; do not edit by hand. -->",
        "",
        "Every service reads its settings from `OBERON_*` environment variables when it starts "
        "(`oberon.runtime.settings.Settings.from_environ`); the same variables configure `oberon up`, each process "
        "of `oberon up --split` and each container in Kubernetes (`infra/k8s/`). A bad value stops the "
        "process with a message naming the variable.",
        "",
        "This file is generated from that code, so it cannot drift: `tests/docs/test_settings_reference.py` "
        "fails when a variable is added, renamed or given another default without regenerating it.",
    ]
    groups: dict[str, list[Variable]] = {}
    for variable in found:
        groups.setdefault(variable.group, []).append(variable)
    for group, members in groups.items():
        lines += ["", f"## {group}", "", "| variable | type | default | field | meaning |", "|---|---|---|---|---|"]
        for variable in members:
            meaning = MEANINGS.get(variable.name, "")
            cells = [f"`{variable.name}`", variable.kind, _shown(variable.default), f"`{variable.field}`", meaning]
            lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
    return "\n".join(lines) + "\n"


def main() -> int:
    sys.stdout.write(render())
    return 0


if __name__ == "__main__":
    sys.exit(main())
