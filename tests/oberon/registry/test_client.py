"""The registry's clients: what a follower asks (snapshot with its ETag, bundles checked by digest) and how a
refusal or an unreachable registry reaches the caller."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from oberon.pipeline.rendering import create_environment
from oberon.registry.client import (
    MAX_ANSWER_BYTES,
    AsyncRegistryClient,
    RegistryClient,
    RegistryRefused,
    RegistryUnreachable,
)
from oberon.registry.service import create_app
from oberon.registry.store import Store
from oberon.registry.tokens import Caller, PlatformToken
from tests.oberon.registry.conftest import Checks, Make

ADMIN_TOKEN = "registry-platform-token-of-at-least-32-chars"
URL = "http://registry.test"


@pytest.fixture
async def follower(tmp_path: Path) -> AsyncIterator[tuple[AsyncRegistryClient, Store]]:
    store = Store.connect(f"sqlite:///{tmp_path / 'registry.sqlite3'}")
    store.create_tables()
    app = create_app(
        store=store, platform=PlatformToken(ADMIN_TOKEN), work_dir=tmp_path / "work", environment=create_environment()
    )
    client = AsyncRegistryClient(url=URL, token=ADMIN_TOKEN, transport=httpx.ASGITransport(app=app))
    yield client, store
    await client.aclose()
    store.close()


@pytest.mark.anyio
async def test_client_follows_the_snapshot_by_etag_and_fetches_bundles_by_digest(
    follower: tuple[AsyncRegistryClient, Store], make: Make
) -> None:
    client, store = follower
    greeting = make("greeting")
    store.publish([greeting], owners={"greeting": "shop"}, caller=Caller(), reason="", check=Checks())
    snapshot = await client.snapshot()
    assert snapshot is not None and snapshot.revision == 1
    assert snapshot.components[0].stable.digest == greeting.digest
    assert await client.snapshot(snapshot.etag) is None  # 304: nothing changed
    assert await client.snapshot(snapshot.etag, wait=0.1) is None
    bundle = await client.bundle(greeting.digest)
    assert (bundle.ident, bundle.data) == ("greeting@1.0.0", greeting.data)
    with pytest.raises(RegistryRefused) as refused:
        await client.bundle("sha256:" + "0" * 64)
    assert refused.value.status == 404 and "no bundle has the digest" in refused.value.reason


def _client(handler: httpx.MockTransport) -> RegistryClient:
    return RegistryClient(url=URL, token="t", transport=handler)


def test_client_refuses_a_bundle_that_is_not_the_digest_it_asked_for(make: Make) -> None:
    greeting = make("greeting")
    client = _client(httpx.MockTransport(lambda request: httpx.Response(200, content=greeting.data)))
    with pytest.raises(RegistryUnreachable, match=f"the registry sent {greeting.digest} for the bundle sha256:0"):
        client.bundle("sha256:" + "0" * 64)
    assert client.bundle(greeting.digest).digest == greeting.digest
    broken = _client(httpx.MockTransport(lambda request: httpx.Response(200, content=b"junk")))
    with pytest.raises(RegistryUnreachable, match="is not valid: not gzip data"):
        broken.bundle(greeting.digest)


def test_client_refuses_a_snapshot_that_is_not_whole() -> None:
    client = _client(httpx.MockTransport(lambda request: httpx.Response(200, json={"revision": "x"})))
    with pytest.raises(RegistryUnreachable, match="the registry's snapshot is not valid: revision"):
        client.snapshot()


def test_client_sends_its_token_and_etag_and_reads_a_304_as_no_change() -> None:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(304)

    assert _client(httpx.MockTransport(answer)).snapshot('"7"', wait=5) is None
    (request,) = seen
    assert request.headers["authorization"] == "Bearer t" and request.headers["if-none-match"] == '"7"'
    assert request.url.path == "/registry/v1/snapshot" and request.url.params["wait"] == "5"


def test_client_raises_the_servers_reason_and_its_file_field_errors() -> None:
    body = {"error": "the release would break the registry: 1 error(s)",
            "errors": [{"file": "x@1.1.0/template.html", "field": "line 2", "message": "syntax error"}]}
    client = _client(httpx.MockTransport(lambda request: httpx.Response(422, content=json.dumps(body))))
    with pytest.raises(RegistryRefused) as refused:
        client.publish([])
    assert refused.value.status == 422 and refused.value.reason == body["error"]
    assert [str(error) for error in refused.value.errors] == ["x@1.1.0/template.html:line 2: syntax error"]
    proxy = _client(httpx.MockTransport(lambda request: httpx.Response(502, content=b"<html>bad gateway</html>")))
    with pytest.raises(RegistryRefused, match="answered 502"):
        proxy.components()


def test_client_says_when_the_registry_cannot_be_reached() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    client = _client(httpx.MockTransport(refuse))
    for call in (client.health, client.snapshot, lambda: client.bundle("sha256:" + "0" * 64)):
        with pytest.raises(RegistryUnreachable, match=f"the registry at {URL} cannot be reached: connection refused"):
            call()


def test_client_reads_no_answer_past_its_bound() -> None:
    huge = httpx.MockTransport(lambda request: httpx.Response(200, content=b"x" * (MAX_ANSWER_BYTES + 1)))
    with pytest.raises(RegistryUnreachable, match="more than it may"):
        _client(huge).bundle("sha256:" + "0" * 64)
    with pytest.raises(RegistryUnreachable, match="more than it may"):
        _client(huge).snapshot()
