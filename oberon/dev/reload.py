"""Live reload for `oberon up --dev`: edits show up without a restart, and a broken edit never takes the site down.

One watcher follows the component roots and the code of the BFFs that run in this process:

- a change under a component root (manifest, template, fallback, script, stylesheet, fixture)
  validates the whole registry again, as `oberon check` does. A valid registry has its assets
  rebuilt (`oberon.pipeline.assets.build_assets`) and replaces the one the renderer serves; an invalid one
  is reported — in the terminal and at the top of every page — and the last good registry keeps
  serving until the next edit fixes it;
- a change to a BFF's module reloads that BFF's package and rebuilds its app (a `Reloadable`); an
  import error is reported the same way and the previous app keeps answering.

Pages opened in development mode carry a small script (`/_oberon/dev/reload.js`) that reloads them
whenever something was swapped in or a new error was found.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import logging
import sys
import traceback
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from types import ModuleType
from urllib.parse import parse_qs

import jinja2
import watchfiles
from markupsafe import Markup
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from oberon.exceptions import AssetError
from oberon.pipeline.assets import build_assets
from oberon.pipeline.page import PageRenderer
from oberon.pipeline.registry import Registry, check_registry

logger = logging.getLogger("oberon.reload")  # the name operators' log filters know

DEV_PATH = "/_oberon/dev/"
CHANGES_PATH = DEV_PATH + "changes"
SCRIPT_PATH = DEV_PATH + "reload.js"
STYLESHEET_PATH = DEV_PATH + "dev.css"
# How long `GET /_oberon/dev/changes?since=N` waits for something to change before it answers anyway.
LONG_POLL_SECONDS = 20.0
REGISTRY = "registry"
_IGNORED_PARTS = frozenset({"__pycache__", ".git", "node_modules"})


class Reloadable:
    """An ASGI app built by `build`, built again on `rebuild()` (a BFF whose code changed).

    Requests already in flight finish on the app they started on.
    """

    def __init__(self, build: Callable[[], ASGIApp]) -> None:
        self.build = build
        self.app = build()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)

    def rebuild(self) -> None:
        self.app = self.build()


@dataclass
class DevState:
    """What development mode shows: a generation that moves on every swap or new error, and the current errors.

    The reloader changes it from a worker thread; pages read it from the event loop (an int and a dict
    replaced whole, so either side sees a consistent value).
    """

    generation: int = 0
    errors: dict[str, list[str]] = field(default_factory=dict)  # source (`registry`, `bff:events`) → messages

    def report(self, source: str, errors: Sequence[str]) -> None:
        """Set (or, with none, clear) the errors of one source; a change moves the generation on."""
        if list(errors) == self.errors.get(source, []):
            return
        updated = {name: messages for name, messages in self.errors.items() if name != source}
        if errors:
            updated[source] = list(errors)
        self.errors = updated
        self.bump()

    def bump(self) -> None:
        self.generation += 1

    async def wait(self, since: int, timeout: float, *, interval: float = 0.2) -> int:
        """The generation once it differs from `since`, or after `timeout` seconds."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self.generation == since and loop.time() < deadline:
            await asyncio.sleep(interval)
        return self.generation

    @property
    def messages(self) -> list[str]:
        return [message for errors in self.errors.values() for message in errors]


class Reloader:
    """Applies changed files: the registry (with its assets) of the renderer, and the in-process BFFs."""

    def __init__(
        self,
        *,
        renderer: PageRenderer,
        build_dir: Path,
        roots: Sequence[Path],
        environment: jinja2.Environment,
        bffs: Mapping[str, tuple[Reloadable, str]] | None = None,
        state: DevState | None = None,
        out: Callable[[str], None] | None = None,
    ) -> None:
        self.renderer = renderer
        self.build_dir = build_dir
        self.roots = tuple(root.resolve() for root in roots)
        self.environment = environment
        self.bffs = dict(bffs or {})  # team → (its app, the module its factory lives in)
        self.state = state or DevState()
        self.out = out or _stderr

    def watched(self) -> list[Path]:
        """The folders to watch: the component roots, and the package of every in-process BFF."""
        folders = [root for root in self.roots if root.is_dir()]
        for _, module in self.bffs.values():
            folder = package_folder(module)
            if folder is not None and folder not in folders:
                folders.append(folder)
        return folders

    def apply(self, paths: Iterable[Path]) -> None:
        """React to changed files: reload the registry and/or the BFFs they belong to."""
        paths = [path.resolve() for path in paths]
        for team, (app, module) in self.bffs.items():
            folder = package_folder(module)
            if folder is not None and any(path.is_relative_to(folder) and path.suffix == ".py" for path in paths):
                self.reload_bff(team, app, module)
        if any(path.is_relative_to(root) for path in paths for root in self.roots):
            self.reload_registry()

    def reload_registry(self) -> bool:
        """Check the registry again; swap it in with its assets rebuilt, or report its errors and keep the last good."""
        registry, errors = check_registry(self.roots, environment=self.environment)
        messages = [str(error) for error in errors]
        if registry is not None and not errors:
            try:
                manifest = build_assets(registry, self.build_dir)
            except AssetError as exc:
                messages = [str(exc)]
            else:
                self.renderer.swap(registry, manifest)  # the registry and its assets in one step
                self.state.report(REGISTRY, [])
                self.state.bump()
                self.out(f"oberon: reloaded the registry: {_summary(registry)}")
                return True
        self.state.report(REGISTRY, messages)
        lines = [f"oberon: the registry has {len(messages)} error(s); still serving the last good one:"]
        self.out("\n".join(lines + [f"  {message}" for message in messages]))
        return False

    def reload_bff(self, team: str, app: Reloadable, module: str) -> bool:
        """Reload the BFF's package and build its app again; on an error keep the running one."""
        source = f"bff:{team}"
        try:
            for loaded in modules_under(module):
                importlib.reload(loaded)
            app.rebuild()
        except Exception as exc:  # a syntax or import error in team code must not stop the dev server
            detail = traceback.format_exception_only(type(exc), exc)[-1].strip()
            self.state.report(source, [f"{source}: {detail}"])
            self.out(f"oberon: {source} did not reload, still serving the previous code: {detail}")
            return False
        self.state.report(source, [])
        self.state.bump()
        self.out(f"oberon: reloaded {source}")
        return True

    async def watch(self, stop: asyncio.Event) -> None:
        """Apply every batch of changes until `stop` is set."""
        folders = self.watched()
        if not folders:
            return
        async for changes in watchfiles.awatch(*folders, watch_filter=_relevant, stop_event=stop):
            paths = sorted({Path(path) for _, path in changes})
            try:
                await asyncio.to_thread(self.apply, paths)
            except Exception:  # the watcher outlives any one bad reload
                logger.exception("reload failed")


def package_folder(module: str) -> Path | None:
    """The folder of the package `module` belongs to (`bff.events:create_app` → `bff/events/`)."""
    name = module.partition(":")[0]
    loaded = sys.modules.get(name)
    file = getattr(loaded, "__file__", None)
    if file is None:
        return None
    path = Path(file).resolve()
    return path.parent


def modules_under(module: str) -> list[ModuleType]:
    """The loaded modules of `module`'s package, submodules before the package that imports them."""
    folder = package_folder(module)
    if folder is None:
        return []
    found = []
    for loaded in list(sys.modules.values()):
        file = getattr(loaded, "__file__", None)
        if file and Path(file).resolve().is_relative_to(folder):
            found.append(loaded)
    return sorted(found, key=lambda loaded: (-loaded.__name__.count("."), loaded.__name__))


def _relevant(change: watchfiles.Change, path: str) -> bool:
    parts = Path(path).parts
    name = parts[-1] if parts else ""
    return not (name.startswith((".", "#")) or name.endswith(("~", ".pyc", ".swp")) or _IGNORED_PARTS & set(parts))


def _summary(registry: Registry) -> str:
    return f"{len(registry)} components"


def _stderr(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


class DevServer:
    """`oberon up --dev` around the site's app: runs the `Reloader` while the app runs, serves the reload
    script and its long poll, and puts the current errors and the script into every HTML page."""

    def __init__(self, app: ASGIApp, *, reloader: Reloader) -> None:
        self.app = app
        self.reloader = reloader
        self.state = reloader.state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(scope, receive, send)
            return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        if path == CHANGES_PATH:
            await self._changes(scope, send)
        elif path in STATIC:
            await _static(send, path)
        else:
            await self.app(scope, receive, _Injecting(send, self.state).send)

    async def _lifespan(self, scope: Scope, receive: Receive, send: Send) -> None:
        stop = asyncio.Event()
        tasks: list[asyncio.Task[None]] = []

        async def receive_and_watch() -> Message:
            message = await receive()
            if message["type"] == "lifespan.startup":
                tasks.append(asyncio.create_task(self.reloader.watch(stop)))
            elif message["type"] == "lifespan.shutdown":
                stop.set()
                await asyncio.gather(*tasks, return_exceptions=True)
            return message

        await self.app(scope, receive_and_watch, send)

    async def _changes(self, scope: Scope, send: Send) -> None:
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        since = query.get("since", [""])[-1]
        generation = await self.state.wait(int(since) if since.isdigit() else -1, LONG_POLL_SECONDS)
        body = json.dumps({"generation": generation, "errors": self.state.messages}).encode("utf-8")
        await _send(send, 200, body, b"application/json")


STATIC: Mapping[str, tuple[str, bytes]] = {
    SCRIPT_PATH: ("dev-reload.js", b"text/javascript; charset=utf-8"),
    STYLESHEET_PATH: ("dev.css", b"text/css; charset=utf-8"),
}


async def _static(send: Send, path: str) -> None:
    name, media = STATIC[path]
    await _send(send, 200, resources.files("oberon").joinpath("static", name).read_bytes(), media)


async def _send(send: Send, status: int, body: bytes, media: bytes) -> None:
    headers = [(b"content-type", media), (b"content-length", str(len(body)).encode()), (b"cache-control", b"no-store")]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def dev_markup(state: DevState) -> tuple[Markup, Markup]:
    """What goes into a page in development mode: in the head, the dev stylesheet and the reload script;
    at the top of the body, the current errors (nothing when there are none)."""
    head = Markup(
        '<link rel="stylesheet" href="{}">\n<script src="{}" data-generation="{}" defer></script>\n'
    ).format(STYLESHEET_PATH, SCRIPT_PATH, state.generation)
    messages = state.messages
    if not messages:
        return head, Markup("")
    items = Markup("").join(Markup("<li><code>{}</code></li>").format(message) for message in messages)
    body = Markup(
        '<aside class="oberon-dev-errors" role="alert"><h2>oberon check: {} error(s)</h2>'
        "<p>The site still serves the last good version. Fix these and save: the page reloads.</p><ul>{}</ul></aside>"
    ).format(len(messages), items)
    return head, body


class _Injecting:
    """A `send` that puts the dev markup into an HTML response (whose body it buffers) and fixes its length."""

    def __init__(self, send: Send, state: DevState) -> None:
        self._send = send
        self.state = state
        self.start: Message | None = None
        self.chunks: list[bytes] = []

    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = {name.lower(): value for name, value in message.get("headers", [])}
            html = headers.get(b"content-type", b"").startswith(b"text/html")
            if html and b"content-encoding" not in headers:
                self.start = message
                return
        elif message["type"] == "http.response.body" and self.start is not None:
            self.chunks.append(message.get("body", b""))
            if message.get("more_body", False):
                return
            await self._flush()
            return
        await self._send(message)

    async def _flush(self) -> None:
        assert self.start is not None
        body = inject(b"".join(self.chunks), self.state)
        headers = [(name, value) for name, value in self.start.get("headers", []) if name.lower() != b"content-length"]
        headers.append((b"content-length", str(len(body)).encode()))
        await self._send({**self.start, "headers": headers})
        await self._send({"type": "http.response.body", "body": body})


def inject(body: bytes, state: DevState) -> bytes:
    """`body` (an HTML document) with the dev markup in its head and at the top of its body."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return body
    head, errors = (str(markup) for markup in dev_markup(state))
    lower = text.lower()
    at = lower.find("</head>")
    if at >= 0:
        text = text[:at] + head + text[at:]
        lower = text.lower()
    start = lower.find("<body")
    if errors and start >= 0:
        end = text.find(">", start) + 1
        text = text[:end] + errors + text[end:]
    return text.encode("utf-8")
