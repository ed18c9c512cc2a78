"""Clients of the registry service's API, for the `oberon` commands and for renderers that follow it.

`RegistryClient` (blocking, httpx) speaks the whole API; `AsyncRegistryClient` the part a renderer
needs at run time: `snapshot(etag)` and `bundle(digest)`. Both send the token as
`Authorization: Bearer …` and raise `RegistryRefused` with the server's own reason when it says
no, or `RegistryUnreachable` when it cannot be asked.

    client = RegistryClient(url="http://127.0.0.1:9000", token=os.environ["OBERON_REGISTRY_TOKEN"])
    snapshot = client.snapshot()             # Snapshot
    client.snapshot(etag=snapshot.etag)      # None: nothing changed since (304)
    client.bundle(snapshot.components[0].stable.digest)  # Bundle, its digest checked
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from oberon.exceptions import ManifestError, OberonError
from oberon.registry.bundle import DEFAULT_LIMITS, Bundle, BundleError, read
from oberon.registry.snapshot import InvalidSnapshot, Snapshot

PREFIX = "/registry/v1"
SNAPSHOT_PATH = f"{PREFIX}/snapshot"
DEFAULT_TIMEOUT = 10.0
PUBLISH_TIMEOUT = 120.0  # a release's checks compile every stable component's templates
# A snapshot or a bundle is read only this far: a registry (or what claims to be one) cannot fill a renderer's memory.
MAX_ANSWER_BYTES = 4 * DEFAULT_LIMITS.max_compressed_bytes


class RegistryClientError(OberonError):
    """A request to the registry service that failed (unlike `oberon.exceptions.RegistryError`: bad components)."""


class RegistryUnreachable(RegistryClientError):
    """The registry could not be asked: no connection, a timeout, or an answer that is not the API's."""


class RegistryRefused(RegistryClientError):
    """The registry answered with an error: `status`, its `reason`, and for a failed check its file:field `errors`."""

    def __init__(self, status: int, reason: str, errors: Sequence[ManifestError] = ()) -> None:
        self.status = status
        self.reason = reason
        self.errors = list(errors)
        super().__init__(f"{reason} ({status})")


@dataclass(frozen=True)
class Answer:
    """What the registry answered: the status and the JSON body."""

    status: int
    body: Mapping[str, Any] = field(default_factory=dict)


class RegistryClient:
    """The registry's whole API, blocking. `url` is the service's base URL; `token` a team's or the platform's.

    `trust_env=False` sends the token where the URL says, through no proxy the environment names (a renderer).
    """

    def __init__(
        self,
        *,
        url: str,
        token: str | None,
        timeout: float = DEFAULT_TIMEOUT,
        transport: httpx.BaseTransport | None = None,
        trust_env: bool = True,
    ) -> None:
        self.url = url.rstrip("/")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.Client(
            base_url=self.url, headers=headers, timeout=timeout, transport=transport, trust_env=trust_env
        )

    def __enter__(self) -> RegistryClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def health(self) -> Mapping[str, Any]:
        return self._call("GET", "/health").body

    def issue_token(self, team: str) -> str:
        """A new token for `team` (platform token only); the registry keeps only its hash."""
        return str(self._call("POST", "/tokens", json={"team": team}).body["token"])

    def publish(self, bundles: Sequence[Bundle], *, reason: str = "") -> list[Mapping[str, Any]]:
        """Publish every bundle or none; each result says its channel and whether it was `unchanged`."""
        payload = {"bundles": [base64.b64encode(bundle.data).decode("ascii") for bundle in bundles], "reason": reason}
        return list(self._call("POST", "/releases", json=payload, timeout=PUBLISH_TIMEOUT).body["published"])

    def ramp(self, name: str, version: str, *, percent: int, reason: str = "") -> Mapping[str, Any]:
        payload = {"version": version, "percent": percent, "reason": reason}
        return self._call("POST", f"/components/{name}/ramp", json=payload, timeout=PUBLISH_TIMEOUT).body

    def promote(self, name: str, version: str | None = None, *, reason: str = "") -> Mapping[str, Any]:
        payload = {"version": version, "reason": reason}
        return self._call("POST", f"/components/{name}/promote", json=payload, timeout=PUBLISH_TIMEOUT).body

    def rollback(self, name: str, *, to: str | None = None, reason: str = "") -> Mapping[str, Any]:
        payload = {"to": to, "reason": reason}
        return self._call("POST", f"/components/{name}/rollback", json=payload, timeout=PUBLISH_TIMEOUT).body

    def halt(self, name: str, version: str, *, reason: str = "") -> Mapping[str, Any]:
        """End the canary if it is still `version`; stable stays (the guard's rollback)."""
        payload = {"version": version, "reason": reason}
        return self._call("POST", f"/components/{name}/halt", json=payload, timeout=PUBLISH_TIMEOUT).body

    def components(self) -> list[Mapping[str, Any]]:
        return list(self._call("GET", "/components").body["components"])

    def component(self, name: str) -> Mapping[str, Any]:
        """One component: owner, channels, every version and the channel history."""
        return self._call("GET", f"/components/{name}").body

    def snapshot(
        self, etag: str | None = None, *, wait: float | None = None, timeout: float | None = None
    ) -> Snapshot | None:
        """The registry's snapshot; None when it is still the one `etag` names (304). `wait`: long-poll seconds;
        `timeout`: this request's own (a renderer starting gives up sooner and starts from its disk copy)."""
        return _snapshot(self._bounded(_snapshot_request(etag, wait, timeout)))

    def bundle(self, digest: str) -> Bundle:
        """The bundle with this digest, read (validated) and checked to be that digest."""
        return _bundle(self._bounded({"method": "GET", "url": f"{PREFIX}/bundles/{digest}"}), digest)

    def _bounded(self, request: dict[str, Any]) -> httpx.Response:
        """The answer to `request`, read whole but no further than MAX_ANSWER_BYTES."""
        try:
            with self._http.stream(**request) as response:
                body = bytearray()
                for chunk in response.iter_bytes():
                    body += chunk
                    _refuse_past_limit(body, self.url)
        except httpx.HTTPError as exc:
            raise _unreachable(self.url, exc) from None
        return _whole(response, body)

    def _call(self, method: str, path: str, *, json: object = None, timeout: float | None = None) -> Answer:
        try:
            response = self._http.request(
                method,
                PREFIX + path,
                json=json,
                timeout=timeout if timeout is not None else httpx.USE_CLIENT_DEFAULT,
            )
        except httpx.HTTPError as exc:
            raise _unreachable(self.url, exc) from None
        return _answer(response)


class AsyncRegistryClient:
    """What a renderer asks the registry while it serves: the snapshot and bundles, without blocking its loop."""

    def __init__(
        self,
        *,
        url: str,
        token: str | None,
        timeout: float = DEFAULT_TIMEOUT,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.AsyncClient(base_url=self.url, headers=headers, timeout=timeout, transport=transport)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def snapshot(
        self, etag: str | None = None, *, wait: float | None = None, timeout: float | None = None
    ) -> Snapshot | None:
        """As `RegistryClient.snapshot`."""
        return _snapshot(await self._bounded(_snapshot_request(etag, wait, timeout)))

    async def bundle(self, digest: str) -> Bundle:
        """As `RegistryClient.bundle`."""
        return _bundle(await self._bounded({"method": "GET", "url": f"{PREFIX}/bundles/{digest}"}), digest)

    async def _bounded(self, request: dict[str, Any]) -> httpx.Response:
        try:
            async with self._http.stream(**request) as response:
                body = bytearray()
                async for chunk in response.aiter_bytes():
                    body += chunk
                    _refuse_past_limit(body, self.url)
        except httpx.HTTPError as exc:
            raise _unreachable(self.url, exc) from None
        return _whole(response, body)


def _snapshot_request(etag: str | None, wait: float | None, timeout: float | None) -> dict[str, Any]:
    params = {"wait": f"{wait:g}"} if wait else {}
    headers = {"If-None-Match": etag} if etag else {}
    request: dict[str, Any] = {"method": "GET", "url": SNAPSHOT_PATH, "params": params, "headers": headers}
    if timeout is not None:
        request["timeout"] = timeout + (wait or 0)
    elif wait:
        request["timeout"] = wait + DEFAULT_TIMEOUT
    return request


def _unreachable(url: str, exc: httpx.HTTPError) -> RegistryUnreachable:
    """The registry could not be asked: what went wrong, and its kind (`ConnectError`, `ReadTimeout`)."""
    return RegistryUnreachable(f"the registry at {url} cannot be reached: {exc or 'no answer'} ({type(exc).__name__})")


def _refuse_past_limit(body: bytearray, url: str) -> None:
    if len(body) > MAX_ANSWER_BYTES:
        raise RegistryUnreachable(f"the registry at {url} sent more than {MAX_ANSWER_BYTES} bytes, more than it may")


def _whole(streamed: httpx.Response, body: bytearray) -> httpx.Response:
    """A streamed answer as one read whole (its request kept, for the URL in messages)."""
    return httpx.Response(streamed.status_code, headers=streamed.headers, content=bytes(body), request=streamed.request)


def _snapshot(response: httpx.Response) -> Snapshot | None:
    if response.status_code == 304:
        return None
    try:
        return Snapshot.from_json(_answer(response).body)
    except InvalidSnapshot as exc:
        raise RegistryUnreachable(f"the registry's snapshot is not valid: {exc}") from None


def _bundle(response: httpx.Response, digest: str) -> Bundle:
    if response.status_code != 200:
        _answer(response)  # raises with the server's reason
    try:
        bundle = read(response.content)
    except BundleError as exc:
        raise RegistryUnreachable(f"the registry's bundle {digest} is not valid: {exc}") from None
    if bundle.digest != digest:
        raise RegistryUnreachable(f"the registry sent {bundle.digest} for the bundle {digest}: the digests differ")
    return bundle


def _answer(response: httpx.Response) -> Answer:
    """The JSON answer of a successful request; RegistryRefused with the server's reason otherwise."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        if response.is_success:
            raise RegistryUnreachable(f"{response.url} did not answer JSON (status {response.status_code})")
        raise RegistryRefused(response.status_code, f"{response.url} answered {response.status_code}")
    if response.is_success:
        return Answer(status=response.status_code, body=body)
    errors = [
        ManifestError(str(item.get("file", "")), str(item.get("field", "")), str(item.get("message", "")))
        for item in body.get("errors", [])
        if isinstance(item, dict)
    ]
    raise RegistryRefused(response.status_code, str(body.get("error", f"status {response.status_code}")), errors)
