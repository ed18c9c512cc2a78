"""`oberon new`: scaffolds that pass `oberon check` and their own tests as soon as they are written.

```
oberon new component NAME [--team TEAM] [--app APP --slot SLOT]
oberon new app NAME --route ROUTE [--team TEAM]
oberon new bff TEAM
```

Names are checked before anything is written, and an existing one is refused. A scaffold is
written as one change: new files are staged in a temporary folder and moved into place, edited
files (an app's manifest, the site file, the routing table) are replaced whole, and the registry
is checked again afterwards; if any step fails, every file is put back as it was.
"""

from __future__ import annotations

import argparse
import keyword
import os
import re
import shutil
import string
import sys
import tempfile
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path

import jinja2

from oberon.exceptions import ConfigError, ScaffoldError
from oberon.pipeline.manifest import MANIFEST_FILE, NAME_PATTERN, TEMPLATE_FILE
from oberon.pipeline.registry import Component, Registry, check_registry
from oberon.pipeline.rendering import create_environment
from oberon.pipeline.routing import Route
from oberon.runtime import k8s
from oberon.site import Site
from oberon.types import Kind

TEAM_PATTERN = re.compile(r"^[a-z][a-z0-9-]*$")
BFF_PATTERN = re.compile(r"^[a-z][a-z0-9_]*$")  # a Python package name and a URL segment
SLOT_PATTERN = re.compile(r"^[a-z][a-z0-9_]*$")
DEFAULT_TEAM = "unowned"
K8S_FOLDER = "infra/k8s"  # the production manifests (`python -m oberon.runtime.k8s`), kept in step with the BFFs
_SLOT_USE = re.compile(r"slots\s*(?:\.\s*([a-z][a-z0-9_]*)|\[\s*[\"']([a-z][a-z0-9_]*)[\"']\s*\])")
_EXAMPLES = {"int": "1", "float": "1.5", "path": "example/path", "uuid": "00000000-0000-0000-0000-000000000001"}


@dataclass
class Plan:
    """What one scaffold writes: new files, and the new text of existing ones, each under the project root."""

    root: Path
    created: dict[Path, str] = field(default_factory=dict)
    edited: dict[Path, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def create(self, relative: str, text: str) -> None:
        path = self.root / relative
        if path.exists():
            raise ScaffoldError(f"{path} already exists")
        self.created[path] = text

    def edit(self, path: Path, text: str) -> None:
        self.edited[path] = text

    @property
    def files(self) -> list[Path]:
        return sorted([*self.created, *self.edited])


@dataclass(frozen=True)
class Project:
    """Where a scaffold writes: the site file's folder, its site and its registry as it is now."""

    site: Site
    registry: Registry
    environment: jinja2.Environment

    @property
    def root(self) -> Path:
        return self.site.file.parent

    @property
    def components(self) -> Path:
        """The first component root: where new components go."""
        return self.site.components[0]

    @classmethod
    def load(cls, site_file: Path, *, environment: jinja2.Environment) -> Project:
        site = Site.load(site_file)
        registry, errors = check_registry(site.components, environment=environment)
        if errors or registry is None:
            raise ScaffoldError(
                "the registry has errors; fix them first (`oberon check`):\n  " + "\n  ".join(map(str, errors))
            )
        return cls(site=site, registry=registry, environment=environment)


def new_component(project: Project, name: str, *, team: str | None = None, app: str = "", slot: str = "") -> Plan:
    """A component NAME owned by TEAM (the app's team when slotted into one), optionally slotted into APP's SLOT."""
    _check_component_name(project, name)
    if bool(app) != bool(slot):
        raise ScaffoldError("--app and --slot go together: the app to slot the component into, and which slot")
    owner = team
    plan = Plan(project.root)
    if app:
        parent = _app(project, app)
        owner = owner or parent.manifest.owner
        _check_slot(parent.manifest.folder, parent.manifest.slots, app, slot)
        manifest = parent.manifest.file
        plan.edit(manifest, _slotted(manifest.read_text(encoding="utf-8"), slot, name))
    owner = _team(owner or DEFAULT_TEAM)
    values = _values(name, team=owner)
    folder = _relative(project, project.components / name)
    plan.create(f"{folder}/{MANIFEST_FILE}", _render("component/component.toml.tmpl", values))
    plan.create(f"{folder}/{TEMPLATE_FILE}", _render("component/template.html.tmpl", values))
    plan.create(f"{folder}/fallback.html", _render("component/fallback.html.tmpl", values))
    plan.create(f"{folder}/assets/{name}.css", _render("component/style.css.tmpl", values))
    plan.create(f"tests/components/test_{values['test_name']}.py", _render("component/test.py.tmpl", values))
    plan.notes.append(f"see it alone: /_oberon/gallery/{name} (oberon up --dev)")
    if app:
        plan.notes.append(f"slotted into {app}'s {slot!r} slot")
    if owner == DEFAULT_TEAM:
        plan.notes.append("owner is 'unowned': set `owner` in its component.toml (or pass --team)")
    return plan


def new_app(project: Project, name: str, *, route: str, team: str | None = None) -> Plan:
    """An app NAME that owns ROUTE, with a layout whose `main` slot is empty until components are slotted in."""
    _check_component_name(project, name)
    if not route.startswith("/"):
        raise ScaffoldError(f"--route {route!r} must start with '/'")
    try:
        compiled = Route.compile(route, name)
    except ValueError as exc:
        raise ScaffoldError(f"--route {route!r}: {exc}") from None
    for other in project.registry.apps():
        if route in other.manifest.routes:
            raise ScaffoldError(f"route {route!r} is already owned by {other.manifest.ident}")
    example = route_example(route)
    taken = project.registry.router.match(example)
    if taken is not None and taken.route.specificity <= compiled.specificity:
        owner = f"{taken.route.app} ({taken.route.template})"
        raise ScaffoldError(f"route {route!r}: {example} is already answered by {owner}")
    values = _values(name, team=_team(team or DEFAULT_TEAM), route=route, example=example)
    folder = _relative(project, project.components / name)
    plan = Plan(project.root)
    plan.create(f"{folder}/{MANIFEST_FILE}", _render("app/component.toml.tmpl", values))
    plan.create(f"{folder}/{TEMPLATE_FILE}", _render("app/template.html.tmpl", values))
    plan.create(f"{folder}/assets/{name}.css", _render("app/style.css.tmpl", values))
    plan.create(f"tests/components/test_{values['test_name']}.py", _render("app/test.py.tmpl", values))
    plan.notes.append(f"its page: {example}")
    plan.notes.append(f"slot components in: oberon new component NAME --app {name} --slot main")
    return plan


def new_bff(project: Project, team: str) -> Plan:
    """A BFF package for TEAM, registered in the site file (and the routing table, for the browser's calls)."""
    if not BFF_PATTERN.match(team) or keyword.iskeyword(team):
        raise ScaffoldError(f"{team!r} is not a valid BFF name: lowercase letters, digits and '_'")
    if team in project.site.bffs:
        raise ScaffoldError(f"BFF {team!r} already exists in {project.site.file} ({project.site.bffs[team]})")
    values = _values(team, team=team, module=team)
    plan = Plan(project.root)
    if not (project.root / "bff" / "__init__.py").is_file():
        plan.create("bff/__init__.py", '"""One package per team Backend-for-Frontend."""\n')
    plan.create(f"bff/{team}/__init__.py", _render("bff/__init__.py.tmpl", values))
    plan.create(f"bff/{team}/app.py", _render("bff/app.py.tmpl", values))
    plan.create(f"tests/bff/test_{team}.py", _render("bff/test.py.tmpl", values))
    site_text = project.site.file.read_text(encoding="utf-8")
    plan.edit(project.site.file, add_bff(site_text, team, f"bff.{team}:create_app"))
    routes = project.site.gateway_routes
    if routes is not None and routes.is_file():
        plan.edit(routes, add_route(routes.read_text(encoding="utf-8"), team))
        plan.notes.append(f"the browser reaches it at /bff/{team}/… (a route in {_relative(project, routes)})")
    deployment = project.root / K8S_FOLDER
    if deployment.is_dir():
        site = replace(project.site, bffs={**project.site.bffs, team: f"bff.{team}:create_app"})
        for name, text in k8s.manifests(site).items():
            path = deployment / name
            if not path.exists():
                plan.create(f"{K8S_FOLDER}/{name}", text)
            elif path.read_text(encoding="utf-8") != text:
                plan.edit(path, text)
    plan.notes.append(f"components load from it with [data.KEY] bff = \"{team}\"")
    return plan


def apply(plan: Plan, *, check: Project | None = None) -> list[Path]:
    """Write the plan as one change; with `check`, undo it if the registry of that project no longer validates."""
    staging = Path(tempfile.mkdtemp(prefix=".oberon-new-", dir=plan.root))
    moved: list[Path] = []
    originals: dict[Path, str] = {}
    try:
        for path, text in plan.created.items():
            staged = staging / path.relative_to(plan.root)
            staged.parent.mkdir(parents=True, exist_ok=True)
            staged.write_text(text, encoding="utf-8")
        for top in sorted(_tops(plan)):
            target = plan.root / top
            target.parent.mkdir(parents=True, exist_ok=True)
            if target.exists():
                raise ScaffoldError(f"{target} appeared while scaffolding")
            os.replace(staging / top, target)
            moved.append(target)
        for path, text in plan.edited.items():
            originals[path] = path.read_text(encoding="utf-8")
            _replace(path, text)
        if check is not None:
            _, errors = check_registry(check.site.components, environment=check.environment)
            if errors:
                raise ScaffoldError("the scaffold would break the registry:\n  " + "\n  ".join(map(str, errors)))
    except BaseException:
        for path in reversed(moved):
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink(missing_ok=True)
        for path, text in originals.items():
            _replace(path, text)
        raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return plan.files


def _tops(plan: Plan) -> set[Path]:
    """For each new file, its highest folder that does not exist yet (or the file itself): what gets moved."""
    tops = set()
    for path in plan.created:
        relative = path.relative_to(plan.root)
        top = relative
        for parent in reversed(relative.parents[:-1]):
            if not (plan.root / parent).exists():
                top = parent
                break
        tops.add(top)
    return tops


def _replace(path: Path, text: str) -> None:
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=path.suffix)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(text)
        os.chmod(temporary, path.stat().st_mode & 0o777 if path.exists() else 0o644)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _check_component_name(project: Project, name: str) -> None:
    if not NAME_PATTERN.match(name):
        raise ScaffoldError(f"{name!r} is not a valid component name: lowercase words joined by '-' (promo-banner)")
    if name in project.registry.names():
        existing = project.registry.get(name).manifest
        raise ScaffoldError(f"component {name!r} already exists: {existing.file} ({existing.ident})")
    folder = project.components / name
    if folder.exists():
        raise ScaffoldError(f"{folder} already exists")


def _team(team: str) -> str:
    if not TEAM_PATTERN.match(team):
        raise ScaffoldError(f"{team!r} is not a valid team name: lowercase letters, digits and '-'")
    return team


def _app(project: Project, name: str) -> Component:
    try:
        app = project.registry.get(name)
    except LookupError:
        apps = ", ".join(component.name for component in project.registry.apps()) or "none"
        raise ScaffoldError(f"no app {name!r} in the registry; apps: {apps}") from None
    if app.manifest.kind is not Kind.APP:
        raise ScaffoldError(f"{name!r} is a component, not an app: only an app has slots")
    return app


def _check_slot(folder: Path, slots: Mapping[str, object], app: str, slot: str) -> None:
    if not SLOT_PATTERN.match(slot):
        raise ScaffoldError(f"{slot!r} is not a valid slot name: lowercase letters, digits and '_'")
    template = (folder / TEMPLATE_FILE).read_text(encoding="utf-8")
    rendered = {first or second for first, second in _SLOT_USE.findall(template)}
    known = list(dict.fromkeys([*slots, *sorted(rendered)]))
    if slot not in rendered:
        raise ScaffoldError(
            f"app {app!r} has no slot {slot!r} in its layout ({folder / TEMPLATE_FILE}); its slots: {', '.join(known)}"
        )


def _slotted(text: str, slot: str, component: str) -> str:
    """The app manifest `text` with `component` added to `slot`, after the slot's last entry (or at the end)."""
    entry = f'[[slots.{slot}]]\ncomponent = "{component}"\nversion = "~=0.1"\n'
    lines = text.splitlines(keepends=True)
    header = re.compile(rf"^\s*\[\[\s*slots\.{re.escape(slot)}\s*\]\]")
    last = max((index for index, line in enumerate(lines) if header.match(line)), default=None)
    if last is None:
        result = text.rstrip("\n") + "\n\n" + entry
    else:
        end = last + 1
        while end < len(lines) and not lines[end].lstrip().startswith("["):
            end += 1
        while end > last + 1 and not lines[end - 1].strip():
            end -= 1
        result = "".join(lines[:end]) + "\n" + entry + ("\n" if end < len(lines) else "") + "".join(lines[end:])
    _must_parse(result, "the app's manifest")
    return result


def add_bff(text: str, team: str, target: str) -> str:
    """The site file `text` with `team = "target"` in its `[bff]` table (a new table when it has none)."""
    line = f'{team} = "{target}"\n'
    lines = text.splitlines(keepends=True)
    start = next((index for index, value in enumerate(lines) if value.strip() == "[bff]"), None)
    if start is None:
        result = text.rstrip("\n") + "\n\n[bff]\n" + line
    else:
        end = start + 1
        while end < len(lines) and not lines[end].lstrip().startswith("["):
            end += 1
        while end > start + 1 and (not lines[end - 1].strip() or lines[end - 1].lstrip().startswith("#")):
            end -= 1
        result = "".join(lines[:end]) + line + "".join(lines[end:])
    table = _must_parse(result, "the site file").get("bff")
    if not isinstance(table, dict) or table.get(team) != target:
        raise ScaffoldError(f"could not add {team} to the [bff] table of the site file")
    return result


def add_route(text: str, team: str) -> str:
    """The routing table `text` with a route for `/bff/TEAM`, after the other BFFs' routes (or at the end)."""
    block = (
        f'[[route]]\nprefix = "/bff/{team}"\nupstream = "bff:{team}"\nauth = "optional"\n'
        'methods = ["GET"]\ntimeout = 3\nstrip_prefix = true\n'
    )
    lines = text.splitlines(keepends=True)
    starts = [index for index, line in enumerate(lines) if line.strip() == "[[route]]"]
    after = None
    for index, start in enumerate(starts):
        end = starts[index + 1] if index + 1 < len(starts) else len(lines)
        if any(re.match(r'\s*prefix\s*=\s*"/bff/', line) for line in lines[start:end]):
            after = end
    if after is None:
        result = text.rstrip("\n") + "\n\n" + block
    else:
        while after > 0 and (not lines[after - 1].strip() or lines[after - 1].lstrip().startswith("#")):
            after -= 1
        result = "".join(lines[:after]) + "\n" + block + "".join(lines[after:])
    _must_parse(result, "the routing table")
    return result


def route_example(route: str) -> str:
    """A path `route` answers: `/e/{event_id:int}` → `/e/1`."""

    def example(match: re.Match[str]) -> str:
        return _EXAMPLES.get(match.group(2) or "", "example")

    return re.sub(r"{([A-Za-z_][A-Za-z0-9_]*)(?::([a-z]+))?}", example, route)


def _must_parse(text: str, what: str) -> dict[str, object]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:  # the edit would leave a file that does not parse: refuse it
        raise ScaffoldError(f"could not edit {what} safely: {exc}") from None


def _relative(project: Project, path: Path) -> str:
    try:
        return path.resolve().relative_to(project.root.resolve()).as_posix()
    except ValueError:
        raise ConfigError(f"{path} is outside the project folder {project.root}") from None


def _values(name: str, *, team: str, **extra: str) -> dict[str, str]:
    words = name.replace("_", "-").split("-")
    title = " ".join([words[0].capitalize(), *words[1:]])
    return {"name": name, "team": team, "title": title, "test_name": name.replace("-", "_"), **extra}


def _render(template: str, values: Mapping[str, str]) -> str:
    text = resources.files("oberon").joinpath("scaffolds", template).read_text(encoding="utf-8")
    return string.Template(text).substitute(values)


def report(plan: Plan, files: list[Path], kind: str, name: str) -> list[str]:
    """What `oberon new` prints after writing: the files, then what to do next."""
    lines = [f"oberon: new {kind} {name}:"]
    for path in files:
        verb = "edited " if path in plan.edited else "created"
        lines.append(f"  {verb} {_display(plan.root, path)}")
    lines += [f"  next: {note}" for note in plan.notes]
    return lines


def _display(root: Path, path: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return str(path)



def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """`oberon new component|app|bff …` on the CLI's subcommands."""
    new = commands.add_parser("new", help="scaffold a component, an app or a BFF that passes `oberon check`")
    kinds = new.add_subparsers(dest="kind", required=True)
    component = kinds.add_parser("component", help="a component (template, manifest with fixtures, fallback, test)")
    component.add_argument("name", help="lowercase words joined by '-', e.g. promo-banner")
    component.add_argument("--team", help="the owning team (default: the app's team with --app)")
    component.add_argument("--app", default="", help="an app to slot it into")
    component.add_argument("--slot", default="", help="the app's slot (with --app)")
    app = kinds.add_parser("app", help="an app: a route, a layout with slots, a test")
    app.add_argument("name", help="lowercase words joined by '-', e.g. gift-cards")
    app.add_argument("--route", required=True, help="the route it owns, e.g. /gifts or /gifts/{card_id:int}")
    app.add_argument("--team", help="the owning team")
    bff = kinds.add_parser("bff", help="a team's BFF package, registered in the site file and the routing table")
    bff.add_argument("team", help="lowercase letters, digits and '_', e.g. marketing")


def main(args: argparse.Namespace, site_file: Path) -> int:
    """Run `oberon new …`; the exit status (2 when refused: nothing was written)."""
    environment = create_environment()
    try:
        project = Project.load(site_file, environment=environment)
        if args.kind == "component":
            plan = new_component(project, args.name, team=args.team, app=args.app, slot=args.slot)
        elif args.kind == "app":
            plan = new_app(project, args.name, route=args.route, team=args.team)
        else:
            plan = new_bff(project, args.team)
        files = apply(plan, check=project)
    except (ScaffoldError, ConfigError) as exc:
        print(f"oberon: {exc}", file=sys.stderr)
        print("oberon: nothing was written", file=sys.stderr)
        return 2
    name = args.team if args.kind == "bff" else args.name
    print("\n".join(report(plan, files, args.kind, name)), flush=True)
    return 0
