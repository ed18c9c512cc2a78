"""The registry service: the HTTP API (`/registry/v1/…`) over a `Store`.

Every endpoint but the health check needs `Authorization: Bearer <token>` (`tokens`). Bodies are
JSON objects of bounded size; every error is `{"error": "<what is wrong>"}` with a 4xx status (a
refused publish adds the file:field `errors` `oberon check` prints), never a stack trace. The
store's work is blocking SQL: each request hands it to Starlette's thread pool.

Before a change is stored, `Checker` runs the publish checks (`checks.check_release`) over the
versions it would pin, unpacked once by digest into a work directory.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
import tempfile
import time
import tomllib
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import jinja2
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from oberon.exceptions import ManifestError, OberonError
from oberon.pipeline.manifest import MANIFEST_FILE
from oberon.registry.bundle import MEDIA_TYPE, Bundle, BundleError, read, unpack
from oberon.registry.checks import check_release
from oberon.registry.purge import Purger, surrogate_key
from oberon.registry.snapshot import Pin, is_digest
from oberon.registry.store import (
    Check,
    CheckFailed,
    Conflict,
    Invalid,
    Load,
    NotFound,
    Published,
    Record,
    Store,
    Summary,
    Unavailable,
)
from oberon.registry.tokens import Authenticator, Caller, Forbidden, PlatformToken, Unauthorized, check_team, new_token
from oberon.registry.tokens import token_hash as hash_of

logger = logging.getLogger("oberon.registry")

PREFIX = "/registry/v1"
MAX_RELEASE_BYTES = 64 * 1024 * 1024  # every bundle of a site, base64
MAX_BODY_BYTES = 64 * 1024
MAX_WAIT_SECONDS = 30.0  # a long poll of the snapshot holds at most this long
WAIT_STEP_SECONDS = 0.2  # how often a long poll looks at the revision (any replica may have changed it)
MAX_REASON = 2000
IMMUTABLE = "public, max-age=31536000, immutable"


class BadRequest(OberonError):
    """A body or parameter that is not what the endpoint takes (400)."""


class TooLarge(OberonError):
    """A body over the endpoint's bound (413)."""


class Checker:
    """The publish checks of a change: `check_release` over the versions it pins, each unpacked once by digest."""

    def __init__(self, *, work_dir: Path, environment: jinja2.Environment) -> None:
        self._work_dir = work_dir
        self._environment = environment

    def __call__(self, pins: Sequence[Pin], candidates: Sequence[Bundle], load: Load) -> list[ManifestError]:
        stable = [self._folder(pin, load) for pin in pins]
        self._work_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix=".candidates-", dir=self._work_dir) as scratch:
            # Candidates may be refused: they stay out of the cache until stored.
            folders = [unpack(bundle, Path(scratch) / _hex(bundle.digest)) for bundle in candidates]
            return check_release(stable, folders, environment=self._environment)

    def _folder(self, pin: Pin, load: Load) -> Path:
        into = self._work_dir / _hex(pin.digest)
        folder = into / pin.ident
        if folder.is_dir():
            return folder
        data = load(pin.digest)
        if data is None:
            raise Unavailable(f"the bundle of {pin.ident} ({pin.digest}) is missing from the database")
        bundle = read(data)
        if bundle.digest != pin.digest or bundle.ident != pin.ident:
            raise Unavailable(f"the bundle stored for {pin.ident} is not {pin.digest}")
        return unpack(bundle, into)


def create_app(
    *,
    store: Store,
    platform: PlatformToken,
    checker: Check | None = None,
    work_dir: Path | None = None,
    environment: jinja2.Environment | None = None,
    purger: Purger | None = None,
) -> Starlette:
    """The registry's ASGI app over `store`; `checker` (else a `Checker` over `work_dir` and `environment`)
    checks every change; `purger` purges the site's CDN of a component whose channels changed."""
    if checker is None:
        if work_dir is None or environment is None:
            raise ValueError("create_app needs a checker, or a work_dir and an environment to make one")
        checker = Checker(work_dir=work_dir, environment=environment)
    auth = Authenticator(platform=platform, team_of=store.team_of)
    api = _Api(store=store, checker=checker, auth=auth, purger=purger)
    routes = [
        Route(f"{PREFIX}/health", api.health, methods=["GET"]),
        Route(f"{PREFIX}/tokens", api.issue_token, methods=["POST"]),
        Route(f"{PREFIX}/releases", api.publish, methods=["POST"]),
        Route(f"{PREFIX}/components", api.components, methods=["GET"]),
        Route(f"{PREFIX}/components/{{name}}", api.component, methods=["GET"]),
        Route(f"{PREFIX}/components/{{name}}/ramp", api.ramp, methods=["POST"]),
        Route(f"{PREFIX}/components/{{name}}/promote", api.promote, methods=["POST"]),
        Route(f"{PREFIX}/components/{{name}}/rollback", api.rollback, methods=["POST"]),
        Route(f"{PREFIX}/components/{{name}}/halt", api.halt, methods=["POST"]),
        Route(f"{PREFIX}/snapshot", api.snapshot, methods=["GET"]),
        Route(f"{PREFIX}/bundles/{{digest}}", api.bundle, methods=["GET"]),
    ]
    handlers: Mapping[Any, Callable[[Request, Exception], Any]] = {
        HTTPException: _http_error,
        OberonError: _error,
        Exception: _server_error,
    }
    return Starlette(routes=routes, exception_handlers=dict(handlers))


class _Api:
    """The endpoints; each authenticates, reads its body, and hands the store's work to the thread pool."""

    def __init__(self, *, store: Store, checker: Check, auth: Authenticator, purger: Purger | None = None) -> None:
        self.store = store
        self.checker = checker
        self.auth = auth
        self.purger = purger

    async def caller(self, request: Request) -> Caller:
        return await run_in_threadpool(self.auth.caller, request.headers.get("authorization"))

    async def health(self, request: Request) -> Response:
        try:
            await run_in_threadpool(self.store.ping)
        except Unavailable as exc:
            logger.warning("registry health: %s", exc)  # the details for operators, not for anyone who asks
            return JSONResponse({"status": "unavailable", "error": "the database cannot be reached"}, status_code=503)
        return JSONResponse({"status": "ok"})

    async def issue_token(self, request: Request) -> Response:
        caller = await self.caller(request)
        body = await _body(request, limit=MAX_BODY_BYTES)
        if caller.team is not None:
            raise Forbidden("only the platform token issues team tokens")
        try:
            team = check_team(body.get("team"))
        except ValueError as exc:
            raise BadRequest(str(exc)) from None
        token = new_token()
        await run_in_threadpool(self.store.issue_token, hash_of(token), team=team, caller=caller)
        return JSONResponse({"team": team, "token": token}, status_code=201)

    async def publish(self, request: Request) -> Response:
        caller = await self.caller(request)
        body = await _body(request, limit=MAX_RELEASE_BYTES)
        reason = _reason(body)
        published = await run_in_threadpool(self._publish, body.get("bundles"), caller, reason)
        return JSONResponse({"published": [_published(item) for item in published]}, status_code=201)

    def _publish(self, raw: object, caller: Caller, reason: str) -> list[Published]:
        bundles = _bundles(raw)
        owners = {bundle.name: _owner(bundle) for bundle in bundles}
        return self.store.publish(bundles, owners=owners, caller=caller, reason=reason, check=self.checker)

    async def ramp(self, request: Request) -> Response:
        caller = await self.caller(request)
        body = await _body(request, limit=MAX_BODY_BYTES)
        version = _version(body, "version")
        percent = body.get("percent")
        if isinstance(percent, bool) or not isinstance(percent, int):
            raise BadRequest("percent: expected a whole number from 1 to 99")
        summary = await run_in_threadpool(
            lambda: self.store.ramp(
                request.path_params["name"], version, percent, caller=caller, reason=_reason(body), check=self.checker
            )
        )
        return await self._changed(summary)

    async def promote(self, request: Request) -> Response:
        caller = await self.caller(request)
        body = await _body(request, limit=MAX_BODY_BYTES)
        version = _optional_version(body, "version")
        summary = await run_in_threadpool(
            lambda: self.store.promote(
                request.path_params["name"], version, caller=caller, reason=_reason(body), check=self.checker
            )
        )
        return await self._changed(summary)

    async def rollback(self, request: Request) -> Response:
        caller = await self.caller(request)
        body = await _body(request, limit=MAX_BODY_BYTES)
        to = _optional_version(body, "to")
        summary = await run_in_threadpool(
            lambda: self.store.rollback(
                request.path_params["name"], to, caller=caller, reason=_reason(body), check=self.checker
            )
        )
        return await self._changed(summary)

    async def _changed(self, summary: Summary) -> Response:
        """A change's answer: the component's channels, and (with a CDN to purge) how the purge of its pages went.
        The purge is sent again a little later, once renderers serve the change."""
        if self.purger is None:
            return JSONResponse(_summary(summary))
        purged = await self.purger.purge(summary.name)
        purge = {"key": surrogate_key(summary.name), "cdns": [result.to_json() for result in purged]}
        again = BackgroundTask(self.purger.purge_again, summary.name)
        return JSONResponse({**_summary(summary), "purge": purge}, background=again)

    async def halt(self, request: Request) -> Response:
        """End the canary if it is still `version`, stable unchanged: the guard's rollback (history action `guard`)."""
        caller = await self.caller(request)
        body = await _body(request, limit=MAX_BODY_BYTES)
        version = _version(body, "version")
        summary = await run_in_threadpool(
            lambda: self.store.halt(request.path_params["name"], version, caller=caller, reason=_reason(body))
        )
        return await self._changed(summary)

    async def components(self, request: Request) -> Response:
        await self.caller(request)
        summaries = await run_in_threadpool(self.store.summaries)
        return JSONResponse({"components": [_summary(summary) for summary in summaries]})

    async def component(self, request: Request) -> Response:
        await self.caller(request)
        record = await run_in_threadpool(self.store.record, request.path_params["name"])
        return JSONResponse(_record(record))

    async def snapshot(self, request: Request) -> Response:
        """The snapshot, `ETag: "<revision>"`; 304 for the one the client has. `?wait=S` holds until it changes."""
        await self.caller(request)
        wait = _wait(request.query_params.get("wait"))
        seen = _revision_of(request.headers.get("if-none-match"))
        if wait > 0 and seen is not None:
            deadline = time.monotonic() + wait
            while await run_in_threadpool(self.store.revision) == seen and time.monotonic() < deadline:
                if await request.is_disconnected():
                    return Response(status_code=204)
                await asyncio.sleep(WAIT_STEP_SECONDS)
        snapshot = await run_in_threadpool(self.store.snapshot)
        headers = {"ETag": snapshot.etag, "Cache-Control": "no-cache"}
        if seen == snapshot.revision:
            return Response(status_code=304, headers=headers)
        return JSONResponse(snapshot.to_json(), headers=headers)

    async def bundle(self, request: Request) -> Response:
        await self.caller(request)
        digest = request.path_params["digest"]
        if not is_digest(digest):
            raise BadRequest(f"{digest!r} is not a bundle digest (sha256:<64 hex digits>)")
        data = await run_in_threadpool(self.store.bundle, digest)
        if data is None:
            raise NotFound(f"no bundle has the digest {digest}")
        return Response(data, media_type=MEDIA_TYPE, headers={"Cache-Control": IMMUTABLE, "ETag": f'"{digest}"'})


async def _body(request: Request, *, limit: int) -> dict[str, Any]:
    """The request's JSON object, read up to `limit` bytes: TooLarge past it, BadRequest when it is not JSON."""
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > limit:
        raise TooLarge(f"the body is larger than {limit} bytes")
    chunks = bytearray()
    async for chunk in request.stream():
        chunks += chunk
        if len(chunks) > limit:
            raise TooLarge(f"the body is larger than {limit} bytes")
    if not chunks:
        return {}
    try:
        data = json.loads(chunks)
    except (ValueError, RecursionError) as exc:
        raise BadRequest(f"the body is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise BadRequest("the body must be a JSON object")
    return data


def _version(body: Mapping[str, Any], key: str) -> str:
    value = body.get(key)
    if not isinstance(value, str) or not value or len(value) > 100:
        raise BadRequest(f"{key}: expected a version, e.g. 1.1.0")
    return value


def _optional_version(body: Mapping[str, Any], key: str) -> str | None:
    return None if body.get(key) is None else _version(body, key)


def _reason(body: Mapping[str, Any]) -> str:
    reason = body.get("reason", "")
    if reason is None:
        return ""
    if not isinstance(reason, str) or len(reason) > MAX_REASON:
        raise BadRequest(f"reason: expected text of at most {MAX_REASON} characters")
    return reason


def _wait(text: str | None) -> float:
    if text is None:
        return 0.0
    try:
        seconds = float(text)
    except ValueError:
        seconds = -1.0
    if not 0 <= seconds <= MAX_WAIT_SECONDS:
        raise BadRequest(f"wait: expected seconds from 0 to {MAX_WAIT_SECONDS:g}")
    return seconds


def _revision_of(etag: str | None) -> int | None:
    """The revision an `If-None-Match` names (`"42"`, or W/"42"), None for anything else."""
    if not etag:
        return None
    text = etag.strip().removeprefix("W/").strip('"')
    return int(text) if text.isdigit() else None


def _bundles(raw: object) -> list[Bundle]:
    """Each base64 bundle of a release, read and checked; BadRequest names the one that is not a bundle."""
    if not isinstance(raw, list) or not raw or not all(isinstance(item, str) for item in raw):
        raise BadRequest("bundles: expected a list of base64 bundles, at least one")
    bundles = []
    for index, text in enumerate(raw):
        try:
            data = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            raise BadRequest(f"bundles[{index}]: not base64") from None
        try:
            bundles.append(read(data))
        except BundleError as exc:
            raise BadRequest(f"bundles[{index}]: not a valid bundle: {exc}") from None
    return bundles


def _owner(bundle: Bundle) -> str:
    """The team a bundle's manifest names as its owner; CheckFailed (as `oberon check` says it) when none."""
    with tempfile.TemporaryDirectory(prefix="oberon-release-") as scratch:
        folder = unpack(bundle, Path(scratch))
        owner = tomllib.loads((folder / MANIFEST_FILE).read_text(encoding="utf-8")).get("owner")
    if isinstance(owner, str) and owner:
        return owner
    error = ManifestError(f"{bundle.ident}/{MANIFEST_FILE}", "owner", "required: the team that owns the component")
    raise CheckFailed(f"{bundle.ident} names no owner", [error])


def _published(item: Published) -> dict[str, Any]:
    return {
        "name": item.name,
        "version": item.version,
        "digest": item.digest,
        "channel": item.channel,
        "unchanged": item.unchanged,
    }


def _summary(summary: Summary) -> dict[str, Any]:
    canary = None if summary.canary is None else {"version": summary.canary, "percent": summary.percent}
    return {"name": summary.name, "owner": summary.owner, "stable": summary.stable, "canary": canary}


def _record(record: Record) -> dict[str, Any]:
    return {
        **_summary(record.summary),
        "versions": [
            {
                "version": version.version,
                "digest": version.digest,
                "published_by": version.published_by,
                "published_at": _time(version.published_at),
            }
            for version in record.versions
        ],
        "history": [
            {
                "at": _time(change.at),
                "actor": change.actor,
                "action": change.action,
                "version": change.version,
                "percent": change.percent,
                "reason": change.reason,
            }
            for change in record.history
        ],
    }


def _time(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")


def _hex(digest: str) -> str:
    return digest.removeprefix("sha256:")


STATUS: Mapping[type[OberonError], int] = {
    BadRequest: 400,
    Invalid: 400,
    Unauthorized: 401,
    Forbidden: 403,
    NotFound: 404,
    Conflict: 409,
    TooLarge: 413,
    CheckFailed: 422,
    Unavailable: 503,
}


async def _error(request: Request, exc: Exception) -> Response:
    """A refusal as `{"error": …}` with its status; the errors of a failed check as file, field, message."""
    status = next((code for kind, code in STATUS.items() if isinstance(exc, kind)), None)
    if status is None:
        return await _server_error(request, exc)
    body: dict[str, Any] = {"error": str(exc)}
    if isinstance(exc, CheckFailed):
        body["errors"] = [
            {"file": error.file.as_posix(), "field": error.field, "message": error.message} for error in exc.errors
        ]
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    if status == 503:
        logger.warning("registry: %s", exc)
    return JSONResponse(body, status_code=status, headers=headers)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return JSONResponse({"error": exc.detail}, status_code=exc.status_code, headers=exc.headers)


async def _server_error(request: Request, exc: Exception) -> Response:
    logger.exception("registry: %s %s failed", request.method, request.url.path, exc_info=exc)
    return JSONResponse({"error": "the registry failed to answer; its log says why"}, status_code=500)
