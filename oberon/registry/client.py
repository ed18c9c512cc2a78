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
from oberon.registry.bundle import Bundle, BundleError, read
from oberon.registry.snapshot import InvalidSnapshot, Snapshot

PREFIX = "/registry/v1"
DEFAULT_TIMEOUT = 10.0
PUBLISH_TIMEOUT = 120.0  # a release's checks compile every stable component's templates


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
    """The registry's whole API, blocking. `url` is the service's base URL; `token` a team's or the platform's."""

    def __init__(
        self,
        *,
        url: str,
        token: str | None,
        timeout: float = DEFAULT_TIMEOUT,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.Client(base_url=self.url, headers=headers, timeout=timeout, transport=transport)

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

    def snapshot(self, etag: str | None = None, *, wait: float | None = None) -> Snapshot | None:
        """The registry's snapshot; None when it is still the one `etag` names (304). `wait`: long-poll seconds."""
        try:
            response = self._http.request(**_snapshot_request(etag, wait))
        except httpx.HTTPError as exc:
            raise RegistryUnreachable(f"the registry at {self.url} cannot be reached: {exc}") from None
        return _snapshot(response)

    def bundle(self, digest: str) -> Bundle:
        """The bundle with this digest, read (validated) and checked to be that digest."""
        try:
            response = self._http.get(f"{PREFIX}/bundles/{digest}")
        except httpx.HTTPError as exc:
            raise RegistryUnreachable(f"the registry at {self.url} cannot be reached: {exc}") from None
        return _bundle(response, digest)

    def _call(self, method: str, path: str, *, json: object = None, timeout: float | None = None) -> Answer:
        try:
            response = self._http.request(
                method,
                PREFIX + path,
                json=json,
                timeout=timeout if timeout is not None else httpx.USE_CLIENT_DEFAULT,
            )
        except httpx.HTTPError as exc:
            raise RegistryUnreachable(f"the registry at {self.url} cannot be reached: {exc}") from None
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

    async def snapshot(self, etag: str | None = None, *, wait: float | None = None) -> Snapshot | None:
        """As `RegistryClient.snapshot`. With `wait`, give the client a timeout longer than the wait."""
        try:
            response = await self._http.request(**_snapshot_request(etag, wait))
        except httpx.HTTPError as exc:
            raise RegistryUnreachable(f"the registry at {self.url} cannot be reached: {exc}") from None
        return _snapshot(response)

    async def bundle(self, digest: str) -> Bundle:
        """As `RegistryClient.bundle`."""
        try:
            response = await self._http.get(f"{PREFIX}/bundles/{digest}")
        except httpx.HTTPError as exc:
            raise RegistryUnreachable(f"the registry at {self.url} cannot be reached: {exc}") from None
        return _bundle(response, digest)


def _snapshot_request(etag: str | None, wait: float | None) -> dict[str, Any]:
    params = {"wait": f"{wait:g}"} if wait else {}
    headers = {"If-None-Match": etag} if etag else {}
    request: dict[str, Any] = {"method": "GET", "url": f"{PREFIX}/snapshot", "params": params, "headers": headers}
    if wait:
        request["timeout"] = wait + DEFAULT_TIMEOUT
    return request


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
        raise RegistryUnreachable(f"the registry sent {bundle.digest} for the bundle {digest}")
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
