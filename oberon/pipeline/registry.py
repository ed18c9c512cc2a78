"""The registry: discovers component folders, validates them, and indexes them by name and version.

`load_registry` reports every problem at once as a `RegistryError`; each problem names the
file and the field. Besides each manifest on its own, it checks what only the whole
registry can show: duplicates, producers of subscribed keys, the action contract, slots
and their props, cycles of apps, routes and the params their data sources need.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
import jinja2.meta
from packaging.specifiers import SpecifierSet

from oberon.exceptions import ComponentNotFound, ManifestError, RegistryError
from oberon.pipeline.manifest import (
    FALLBACK_FILE,
    MANIFEST_FILE,
    PLACEHOLDER_FILE,
    TEMPLATE_FILE,
    DataSource,
    Manifest,
)
from oberon.pipeline.manifest_parser import parse_manifest
from oberon.pipeline.routing import Route, Router
from oberon.pipeline.sandbox import unsafe_attributes
from oberon.types import Kind

ANY_VERSION = SpecifierSet("")


@dataclass(frozen=True)
class Component:
    """A validated manifest with its templates compiled once."""

    manifest: Manifest
    template: jinja2.Template
    fallback: jinja2.Template | None = None
    placeholder: jinja2.Template | None = None  # a client island's box until it arrives (`placeholder.html`)
    title: jinja2.Template | None = None
    description: jinja2.Template | None = None  # an app's `meta.description`
    structured_data: jinja2.Template | None = None  # an app's `meta.structured_data` file
    # Its template or fallback reads `params` (found when compiled): only then do params key its shared renders.
    reads_params: bool = False

    @property
    def name(self) -> str:
        return self.manifest.name


class Registry:
    """Components indexed by name, each name's versions newest first."""

    def __init__(self, components: Iterable[Component]) -> None:
        index: dict[str, list[Component]] = {}
        for component in components:
            index.setdefault(component.name, []).append(component)
        for versions in index.values():
            versions.sort(key=lambda component: component.manifest.version, reverse=True)
        self._index = index
        self.producers = _producers(self)
        self.router = Router(
            Route.compile(template, app.name) for app in self.apps() for template in app.manifest.routes
        )

    def __iter__(self) -> Iterator[Component]:
        for name in sorted(self._index):
            yield from self._index[name]

    def __len__(self) -> int:
        return sum(len(versions) for versions in self._index.values())

    def names(self) -> list[str]:
        return sorted(self._index)

    def get(self, name: str, specifier: SpecifierSet | str = ANY_VERSION) -> Component:
        """The newest version of `name` that satisfies `specifier`; raises ComponentNotFound."""
        wanted = SpecifierSet(specifier) if isinstance(specifier, str) else specifier
        for component in self._index.get(name, ()):
            if wanted.contains(component.manifest.version, prereleases=True):
                return component
        raise ComponentNotFound(name, str(wanted))

    def apps(self) -> list[Component]:
        return [component for component in self if component.manifest.kind is Kind.APP]

    def children(self, app: Component) -> Iterator[Component]:
        """The components slotted into `app`, in slot order (not recursive)."""
        for entries in app.manifest.slots.values():
            for entry in entries:
                yield self.get(entry.component, entry.specifier)

    def sources_for(self, components: Iterable[Component]) -> dict[str, DataSource]:
        """The data source of every key the components read, each key once."""
        return {
            key: self.producers[key]
            for component in components
            for key in component.manifest.keys
            if key in self.producers
        }


def discover(roots: Sequence[Path]) -> list[Path]:
    """Every folder directly under the roots that holds a manifest, in a stable order."""
    folders = []
    for root in roots:
        if not root.is_dir():
            continue
        folders.extend(sorted(path.parent for path in root.glob(f"*/{MANIFEST_FILE}")))
    return folders


def load_registry(roots: Sequence[Path], *, environment: jinja2.Environment) -> Registry:
    """Discover, validate and index the components under `roots`; raises RegistryError."""
    registry, errors = check_registry(roots, environment=environment)
    if errors or registry is None:
        raise RegistryError(errors or [ManifestError(Path(str(roots)), "", "no usable registry")])
    return registry


def check_registry(
    roots: Sequence[Path], *, environment: jinja2.Environment
) -> tuple[Registry | None, list[ManifestError]]:
    """Load the registry and return it with every error found (the registry is None if unusable)."""
    folders = discover(roots)
    if not folders:
        where = ", ".join(str(root) for root in roots)
        return None, [ManifestError(where, "", f"no components found (no */{MANIFEST_FILE})")]
    return check_folders(folders, environment=environment)


def check_folders(
    folders: Sequence[Path], *, environment: jinja2.Environment
) -> tuple[Registry | None, list[ManifestError]]:
    """The registry of exactly these component folders, with every error found: a registry snapshot's versions (a
    renderer following the registry service), or a release's stable versions with its candidates in place."""
    errors: list[ManifestError] = []
    components: list[Component] = []
    seen: dict[tuple[str, str], Path] = {}
    for folder in folders:
        manifest, problems = parse_manifest(folder)
        errors.extend(problems)
        if manifest is None:
            continue
        key = (manifest.name, str(manifest.version))
        if key in seen:
            errors.append(ManifestError(manifest.file, "version", f"{manifest.ident} is also declared in {seen[key]}"))
            continue
        seen[key] = manifest.file
        component = _compile(manifest, environment, errors)
        if component is not None:
            components.append(component)
    errors.extend(_check_routes(components))
    if any(error.field.startswith("routes") for error in errors):
        return None, errors
    registry = Registry(components)
    errors.extend(_check_producers(registry))
    errors.extend(_check_actions(registry))
    errors.extend(_check_slots(registry))
    return registry, errors


def _compile(manifest: Manifest, environment: jinja2.Environment, errors: list[ManifestError]) -> Component | None:
    reading: set[str] = set()  # the files whose templates read `params`

    def compiled(text: str, file: Path, field: str | None) -> jinja2.Template | None:
        """The template, or None after its errors: at `field`, or at its line when field is None (a file)."""
        try:
            parsed = environment.parse(text)
        except jinja2.TemplateSyntaxError as exc:
            errors.append(ManifestError(file, field or f"line {exc.lineno}", f"template syntax error: {exc.message}"))
            return None
        unsafe = list(unsafe_attributes(parsed))
        errors.extend(ManifestError(file, field or f"line {line}", problem) for line, problem in unsafe)
        if field is None and "params" in jinja2.meta.find_undeclared_variables(parsed):
            reading.add(file.name)
        return None if unsafe else environment.from_string(parsed)

    def template(name: str) -> jinja2.Template | None:
        path = manifest.folder / name
        try:
            return compiled(path.read_text(encoding="utf-8"), path, None)
        except (OSError, UnicodeDecodeError) as exc:
            errors.append(ManifestError(path, "", f"cannot read template: {exc}"))
        return None

    main = template(TEMPLATE_FILE) if (manifest.folder / TEMPLATE_FILE).is_file() else None
    fallback = template(FALLBACK_FILE) if (manifest.folder / FALLBACK_FILE).is_file() else None
    placeholder = template(PLACEHOLDER_FILE) if (manifest.folder / PLACEHOLDER_FILE).is_file() else None

    def inline(field: str, text: str) -> jinja2.Template | None:
        return compiled(text, manifest.file, field) if text else None

    title = inline("title", manifest.title)
    description = inline("meta.description", manifest.meta.description)
    structured_data = template(manifest.meta.structured_data) if manifest.meta.structured_data else None
    if main is None:
        return None
    return Component(
        manifest=manifest,
        template=main,
        fallback=fallback,
        placeholder=placeholder,
        title=title,
        description=description,
        structured_data=structured_data,
        reads_params=bool(reading & {TEMPLATE_FILE, FALLBACK_FILE}),
    )


def _producers(registry: Registry) -> dict[str, DataSource]:
    producers: dict[str, DataSource] = {}
    for component in registry:
        for key, source in component.manifest.data.items():
            producers.setdefault(key, source)
    return producers


def _producer_files(registry: Registry) -> dict[str, Path]:
    """The manifest file that declares each state key's data source (the first, as `_producers`)."""
    files: dict[str, Path] = {}
    for component in registry:
        for key in component.manifest.data:
            files.setdefault(key, component.manifest.file)
    return files


def _check_producers(registry: Registry) -> Iterator[ManifestError]:
    """Every subscribed key has a producer, and a key has only one source."""
    for component in registry:
        manifest = component.manifest
        for key, source in manifest.data.items():
            first = registry.producers[key]
            if first != source:
                yield ManifestError(
                    manifest.file,
                    f"data.{key}",
                    f"state key {key!r} is already loaded differently ({first.bff} {first.path})",
                )
        for index, key in enumerate(manifest.subscribes):
            if key not in registry.producers:
                yield ManifestError(manifest.file, f"subscribes[{index}]", f"no component produces state key {key!r}")


def _check_actions(registry: Registry) -> Iterator[ManifestError]:
    """Every consumed action has a publisher, and every publisher sends the fields consumers need."""
    publishers: dict[str, list[Manifest]] = {}
    for component in registry:
        for action in component.manifest.publishes:
            publishers.setdefault(action, []).append(component.manifest)
    for component in registry:
        manifest = component.manifest
        for action, fields in manifest.consumes.items():
            if action not in publishers:
                yield ManifestError(manifest.file, f"consumes.{action}", f"no component publishes action {action!r}")
                continue
            for publisher in publishers[action]:
                missing = [name for name in fields if name not in publisher.publishes[action]]
                if missing:
                    yield ManifestError(
                        manifest.file,
                        f"consumes.{action}.fields",
                        f"{publisher.ident} publishes {action!r} without field(s) {', '.join(missing)}",
                    )


def _check_routes(components: Sequence[Component]) -> Iterator[ManifestError]:
    owners: dict[str, Manifest] = {}
    for component in components:
        manifest = component.manifest
        for index, template in enumerate(manifest.routes):
            try:
                Route.compile(template, manifest.name)
            except ValueError as exc:
                yield ManifestError(manifest.file, f"routes[{index}]", f"{template!r}: {exc}")
                continue
            if template in owners:
                yield ManifestError(
                    manifest.file, f"routes[{index}]", f"{template!r} is also owned by {owners[template].ident}"
                )
            owners[template] = manifest


def _check_slots(registry: Registry) -> Iterator[ManifestError]:
    """Slots name existing components with valid props; apps do not slot each other in a cycle;
    every data source on an app's page gets the params it needs from each of the app's routes."""
    for app in registry.apps():
        manifest = app.manifest
        for slot, entries in manifest.slots.items():
            for index, entry in enumerate(entries):
                where = f"slots.{slot}[{index}]"
                try:
                    child = registry.get(entry.component, entry.specifier)
                except ComponentNotFound as exc:
                    yield ManifestError(manifest.file, f"{where}.component", str(exc))
                    continue
                yield from _check_props(manifest.file, f"{where}.props", child.manifest, entry.props)
        cycle = _find_cycle(registry, app, ())
        if cycle:
            yield ManifestError(manifest.file, "slots", "apps slot each other in a cycle: " + " -> ".join(cycle))
            continue
        declared = set(manifest.query)
        producers = _producer_files(registry)
        for index, template in enumerate(manifest.routes):
            params = Route.compile(template, manifest.name).params
            for key, source in sorted(registry.sources_for(page_components(registry, app)).items()):
                # A source's `{name}`: a path param of every route, a declared query parameter, or context it reads.
                missing = sorted(source.params - params - declared - set(source.context))
                if missing:
                    where = f"{producers.get(key, '?')}: data.{key}.path"
                    yield ManifestError(
                        manifest.file,
                        f"routes[{index}]",
                        f"{template!r} lacks param {', '.join(missing)} that state key {key!r} needs ({where} "
                        f"{source.path!r}): not a path param of the route, a declared [query.NAME] of the app, nor "
                        "context the data source declares (context = [\"device\", \"locale\"])",
                    )


def check_props(manifest: Manifest, props: Mapping[str, Any]) -> list[str]:
    """Problems with `props` for this component: unknown names, wrong types, missing required ones."""
    problems = []
    for name, value in props.items():
        spec = manifest.props.get(name)
        if spec is None:
            problems.append(f"{name}: {manifest.name} has no prop {name!r}")
        elif not spec.accepts(value):
            problems.append(f"{name}: expected {spec.type}, got {value!r}")
    for name, spec in manifest.props.items():
        if spec.required and name not in props:
            problems.append(f"{name}: required prop of {manifest.name} is missing")
    return problems


def _check_props(file: Path, field: str, child: Manifest, props: Mapping[str, Any]) -> Iterator[ManifestError]:
    for problem in check_props(child, props):
        name, _, message = problem.partition(": ")
        yield ManifestError(file, f"{field}.{name}", message)


def _find_cycle(registry: Registry, app: Component, path: tuple[str, ...]) -> tuple[str, ...]:
    if app.name in path:
        return (*path[path.index(app.name) :], app.name)
    for child in _resolvable_children(registry, app):
        if child.manifest.kind is Kind.APP:
            cycle = _find_cycle(registry, child, (*path, app.name))
            if cycle:
                return cycle
    return ()


def _resolvable_children(registry: Registry, app: Component) -> Iterator[Component]:
    for entries in app.manifest.slots.values():
        for entry in entries:
            try:
                yield registry.get(entry.component, entry.specifier)
            except ComponentNotFound:
                continue


def page_components(registry: Registry, app: Component) -> list[Component]:
    """The app and every component under it, depth first, each once."""
    seen: dict[str, Component] = {}
    stack = [app]
    while stack:
        component = stack.pop()
        if component.manifest.ident in seen:
            continue
        seen[component.manifest.ident] = component
        if component.manifest.kind is Kind.APP:
            stack.extend(reversed(list(_resolvable_children(registry, component))))
    return list(seen.values())
