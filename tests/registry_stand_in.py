"""A stand-in for the registry service's two GETs a renderer makes (`/registry/v1/snapshot`, `/registry/v1/bundles/…`).

Its state is a folder a test writes (`snapshot.json`, `bundles/<hex>`), read on every request, so a test
publishes, promotes or breaks things by writing files; `python -m tests.registry_stand_in FOLDER --port P`
serves it with a real uvicorn (`run_stand_in` starts it on a free loopback port and stops it by PID, and a
test may stop it mid-way). `StandInRegistry.transport()` answers the same requests in process, for unit tests.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from oberon.registry.bundle import MEDIA_TYPE, Bundle, pack
from oberon.runtime.supervisor import free_port

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "stand-in-registry-token-of-32-characters-or-more"
START_TIMEOUT = 20.0


@dataclass(frozen=True)
class Answer:
    status: int
    headers: Mapping[str, str]
    body: bytes


class StandInRegistry:
    """The state of a stand-in registry, in `folder`: what it serves, changed by writing files."""

    def __init__(self, folder: Path, *, token: str = TOKEN) -> None:
        self.folder = folder
        self.token = token
        (folder / "bundles").mkdir(parents=True, exist_ok=True)
        self.snapshot_file = folder / "snapshot.json"
        if not self.snapshot_file.exists():
            self.write_snapshot({"revision": 0, "components": []})

    # What a test does to it.

    def publish(self, component: Path) -> Bundle:
        """Pack a component folder and keep its bundle (not yet in any channel)."""
        bundle = pack(component)
        self.put_bundle(bundle.digest, bundle.data)
        return bundle

    def put_bundle(self, digest: str, data: bytes) -> None:
        """Serve `data` for `digest`, whatever it holds (a test breaks a bundle this way)."""
        _write_atomic(self.folder / "bundles" / digest.removeprefix("sha256:"), data)

    def release(self, *bundles: Bundle) -> int:
        """Make each bundle its name's stable version (the others stay); the new revision."""
        snapshot = self.snapshot()
        entries = {entry["name"]: entry for entry in snapshot["components"]}
        for bundle in bundles:
            owner = entries.get(bundle.name, {}).get("owner", "platform")
            stable = {"version": bundle.version, "digest": bundle.digest}
            entries[bundle.name] = {"name": bundle.name, "owner": owner, "stable": stable, "canary": None}
        revision = int(snapshot["revision"]) + 1
        self.write_snapshot({"revision": revision, "components": [entries[name] for name in sorted(entries)]})
        return revision

    def ramp(self, bundle: Bundle, percent: int) -> int:
        """Make `bundle` its name's canary at `percent` (replacing any other); the new revision."""
        snapshot = self.snapshot()
        for entry in snapshot["components"]:
            if entry["name"] == bundle.name:
                entry["canary"] = {"version": bundle.version, "digest": bundle.digest, "percent": percent}
        snapshot["revision"] = int(snapshot["revision"]) + 1
        self.write_snapshot(snapshot)
        return int(snapshot["revision"])

    def publish_site(self, components: Path) -> int:
        """Every component folder under `components`, published and stable (`oberon publish --all`)."""
        return self.release(*(self.publish(folder) for folder in sorted(components.iterdir()) if folder.is_dir()))

    def snapshot(self) -> dict[str, Any]:
        loaded: dict[str, Any] = json.loads(self.snapshot_file.read_text())
        return loaded

    def write_snapshot(self, snapshot: Mapping[str, Any] | str) -> None:
        text = snapshot if isinstance(snapshot, str) else json.dumps(snapshot)
        _write_atomic(self.snapshot_file, text.encode("utf-8"))

    # What it answers.

    def answer(self, method: str, path: str, headers: Mapping[str, str]) -> Answer:
        if method != "GET":
            return _error(405, "method not allowed")
        if path == "/registry/v1/health":
            return Answer(200, {"content-type": "application/json"}, b'{"status": "ok"}')
        if headers.get("authorization") != f"Bearer {self.token}":
            return _error(401, "a valid token is needed (Authorization: Bearer …)")
        if path == "/registry/v1/snapshot":
            body = self.snapshot_file.read_bytes()
            try:
                revision = json.loads(body).get("revision")
            except (ValueError, AttributeError):
                revision = "broken"
            etag = f'"{revision}"'
            if headers.get("if-none-match") == etag:
                return Answer(304, {"etag": etag}, b"")
            return Answer(200, {"content-type": "application/json", "etag": etag}, body)
        prefix = "/registry/v1/bundles/sha256:"
        if path.startswith(prefix):
            file = self.folder / "bundles" / path.removeprefix(prefix)
            if "/" not in path.removeprefix(prefix) and file.is_file():
                return Answer(200, {"content-type": MEDIA_TYPE}, file.read_bytes())
            return _error(404, "no such bundle")
        return _error(404, "not found")

    def app(self) -> Starlette:
        async def endpoint(request: Request) -> Response:
            found = self.answer(request.method, request.url.path, request.headers)
            return Response(found.body, status_code=found.status, headers=dict(found.headers))

        return Starlette(routes=[Route("/{path:path}", endpoint, methods=["GET", "POST", "PUT", "DELETE"])])

    def transport(self, requests: list[httpx.Request] | None = None) -> httpx.MockTransport:
        """The same answers in process; each request is appended to `requests` when given."""

        def handle(request: httpx.Request) -> httpx.Response:
            if requests is not None:
                requests.append(request)
            found = self.answer(request.method, request.url.path, request.headers)
            return httpx.Response(found.status, headers=dict(found.headers), content=found.body)

        return httpx.MockTransport(handle)


def _error(status: int, message: str) -> Answer:
    return Answer(status, {"content-type": "application/json"}, json.dumps({"error": message}).encode())


def _write_atomic(target: Path, data: bytes) -> None:
    handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
    with os.fdopen(handle, "wb") as stream:
        stream.write(data)
    os.replace(temporary, target)


@dataclass
class RunningStandIn:
    """A stand-in registry served by its own process; `stop()` ends it (a test may, mid-test), `start()` again."""

    state: StandInRegistry
    port: int
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        argv = [sys.executable, "-m", "tests.registry_stand_in", str(self.state.folder), "--port", str(self.port)]
        environ = {**os.environ, "STAND_IN_TOKEN": self.state.token}
        self.process = subprocess.Popen(argv, cwd=ROOT, env=environ, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            assert self.process.poll() is None, "the stand-in registry exited"
            assert time.monotonic() < deadline, "the stand-in registry did not start"
            try:
                if httpx.get(f"{self.url}/registry/v1/health", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.05)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@contextlib.contextmanager
def run_stand_in(state: StandInRegistry) -> Iterator[RunningStandIn]:
    """Serve `state` on a free loopback port for the block; stopped by its PID afterwards."""
    running = RunningStandIn(state=state, port=free_port())
    running.start()
    try:
        yield running
    finally:
        running.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description="a stand-in for the registry service's GETs")
    parser.add_argument("folder", type=Path)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    state = StandInRegistry(args.folder, token=os.environ.get("STAND_IN_TOKEN", TOKEN))
    uvicorn.run(state.app(), host="127.0.0.1", port=args.port, log_level="warning", lifespan="off")


if __name__ == "__main__":
    main()
