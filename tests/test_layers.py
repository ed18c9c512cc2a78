"""The layers of the code base: every import points down, and team code imports only the public facade.

    base ← client ← pipeline ← ops ← web, gateway, registry ← dev ← facade ← runtime

The imports are read with `ast` (nothing is imported), so a module's import-time side effects cannot
hide or cause a failure. The README's "How a request becomes a page" shows the same order.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Lower ranks are imported by higher ones, never the other way. Web, gateway and registry share a rank but
# stay apart: each is an entrance of its own, wired together only by the runtime.
RANKS = {
    "base": 0,
    "client": 1,
    "pipeline": 2,
    "ops": 3,
    "web": 4,
    "gateway": 4,
    "registry": 4,
    "dev": 5,
    "facade": 6,
    "runtime": 7,
}
BASE = {"types", "exceptions", "headers", "tracing", "logs", "site", "defaults", "query_strings"}
# The public facade: what components/ and bff/ may import. It re-exports from the layers below it.
FACADE = {"oberon", "oberon.bff", "oberon.testing"}
SUBPACKAGES = {"client", "pipeline", "ops", "web", "registry", "dev", "runtime"}
OWN = ("oberon", "gateway")


@dataclass(frozen=True)
class Import:
    file: str  # relative to the checked root
    line: int
    module: str  # the module the statement reaches: `from oberon import tracing` reaches oberon.tracing

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: imports {self.module}"


def layer(module: str) -> str:
    """The layer a module of oberon/ or gateway/ belongs to; ValueError for one the layout does not place."""
    parts = module.split(".")
    if parts[0] == "gateway":
        return "gateway"
    if module in FACADE:
        return "facade"
    if len(parts) == 1 or parts[1] == "__main__":
        return "runtime" if parts[-1] == "__main__" else "facade"
    if parts[1] in SUBPACKAGES:
        return parts[1]
    if parts[1] in BASE:
        return "base"
    raise ValueError(f"{module} is in no layer: add it to a subpackage, or to BASE in tests/test_layers.py")


def module_name(file: Path, root: Path = ROOT) -> str:
    parts = list(file.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(file: Path, root: Path = ROOT) -> Iterator[Import]:
    """Every module an `import` or `from … import` in the file reaches (relative imports resolved)."""
    name = module_name(file, root)
    where = str(file.relative_to(root))
    package = name if file.name == "__init__.py" else name.rpartition(".")[0]
    tree = ast.parse(file.read_text(encoding="utf-8"), filename=str(file))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Import(where, node.lineno, alias.name)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            for alias in node.names:
                submodule = f"{base}.{alias.name}"
                reached = submodule if _is_module(submodule, root) else base
                yield Import(where, node.lineno, reached)


def _is_module(module: str, root: Path) -> bool:
    path = root.joinpath(*module.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def violations(root: Path = ROOT) -> list[str]:
    """Each import that points up a layer, across web and gateway, or from team code past the facade."""
    found: list[str] = []
    for package in OWN:
        for file in sorted((root / package).rglob("*.py")):
            importer = module_name(file, root)
            try:
                own = layer(importer)
            except ValueError as exc:
                found.append(f"{file.relative_to(root)}: {exc}")
                continue
            for statement in imports(file, root):
                if not statement.module.startswith(tuple(f"{name}." for name in OWN) + OWN):
                    continue
                if statement.module.split(".")[0] == importer.split(".")[0] == "gateway":
                    continue  # the gateway's own modules
                target = layer(statement.module)
                upward = RANKS[target] > RANKS[own] or (RANKS[target] == RANKS[own] and target != own)
                if upward or (own == "facade" and target == "gateway"):  # team code never reaches the edge
                    found.append(f"{statement} ({own} may not import {target})")
    for team in ("components", "bff"):
        for file in sorted((root / team).rglob("*.py")):
            for statement in imports(file, root):
                top = statement.module.split(".")[0]
                if top in OWN and statement.module not in FACADE:
                    facade = ", ".join(sorted(FACADE))
                    found.append(f"{statement} (team code imports only the public facade: {facade})")
    return found


def test_layers_imports_point_one_way() -> None:
    assert violations() == []


@pytest.mark.parametrize(
    ("file", "source", "expected"),
    [
        ("oberon/pipeline/page.py", "import oberon.runtime.cli\n", "pipeline may not import runtime"),
        ("oberon/pipeline/page.py", "from oberon.ops import metrics\n", "pipeline may not import ops"),
        ("oberon/client/upstream.py", "from ..pipeline.state import Store\n", "client may not import pipeline"),
        ("oberon/web/renderer.py", "from gateway.app import Gateway\n", "web may not import gateway"),
        ("oberon/web/renderer.py", "from oberon.dev import gallery\n", "web may not import dev"),
        ("oberon/ops/metrics.py", "from oberon import Upstreams\n", "ops may not import facade"),
        ("gateway/app.py", "from oberon.runtime import topology\n", "gateway may not import runtime"),
        ("bff/events/app.py", "from oberon.client.upstream import Upstreams\n", "team code imports only"),
        ("oberon/newthing.py", "", "is in no layer"),
        ("oberon/testing.py", "import gateway.app\n", "facade may not import gateway"),
    ],
)
def test_layers_name_the_file_and_import_that_break_them(tmp_path: Path, file: str, source: str, expected: str) -> None:
    for name in ("oberon", "gateway", "components", "bff"):
        (tmp_path / name).mkdir()
    for package in ("oberon", *(f"oberon/{sub}" for sub in SUBPACKAGES), "gateway", "bff", "bff/events"):
        (tmp_path / package).mkdir(exist_ok=True)
        (tmp_path / package / "__init__.py").write_text("")
    for module in ("oberon/pipeline/state.py", "oberon/ops/metrics.py", "oberon/runtime/cli.py", "gateway/app.py"):
        (tmp_path / module).write_text("")
    (tmp_path / "oberon/dev/gallery.py").write_text("")
    (tmp_path / "oberon/runtime/topology.py").write_text("")
    (tmp_path / "oberon/client/upstream.py").write_text("")
    (tmp_path / file).write_text(source)
    assert any(expected in line and file in line for line in violations(tmp_path)), violations(tmp_path)


def test_layers_allow_what_the_order_allows(tmp_path: Path) -> None:
    for package in ("oberon", "oberon/pipeline", "oberon/client", "oberon/runtime", "gateway", "bff"):
        (tmp_path / package).mkdir(parents=True, exist_ok=True)
        (tmp_path / package / "__init__.py").write_text("")
    (tmp_path / "components").mkdir()
    (tmp_path / "oberon/types.py").write_text("")
    (tmp_path / "oberon/bff.py").write_text("")
    (tmp_path / "oberon/client/upstream.py").write_text("from oberon import types\n")
    (tmp_path / "oberon/pipeline/page.py").write_text("from oberon.client.upstream import Upstreams\nfrom . import x\n")
    (tmp_path / "oberon/runtime/cli.py").write_text("import gateway\nfrom oberon.pipeline import page\n")
    (tmp_path / "bff/app.py").write_text("from oberon import Upstreams\nfrom oberon.bff import create_bff\n")
    assert violations(tmp_path) == []
