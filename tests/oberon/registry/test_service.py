"""The registry's HTTP API on SQLite and PostgreSQL: auth, publish and its refusals, channels, snapshot, bundles."""

from __future__ import annotations

import asyncio
import base64
import gzip
import hashlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from oberon.pipeline.rendering import create_environment
from oberon.registry import service
from oberon.registry.bundle import MEDIA_TYPE, Bundle
from oberon.registry.service import create_app
from oberon.registry.store import Store, engine_url
from oberon.registry.tokens import PlatformToken
from oberon.runtime.supervisor import free_port
from tests.oberon.registry.conftest import COMPONENTS, SITE, Make

pytestmark = pytest.mark.anyio

ADMIN_TOKEN = "registry-platform-token-of-at-least-32-chars"
PLATFORM = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
API = "/registry/v1"


def _client(store: Store, work_dir: Path) -> httpx.AsyncClient:
    platform = PlatformToken(ADMIN_TOKEN)
    app = create_app(store=store, platform=platform, work_dir=work_dir, environment=create_environment())
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://registry.test")


@pytest.fixture
async def client(store: Store, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    async with _client(store, tmp_path / "work") as client:
        yield client


def encoded(*bundles: Bundle) -> list[str]:
    return [base64.b64encode(bundle.data).decode() for bundle in bundles]


async def release(client: httpx.AsyncClient, *bundles: Bundle, headers: dict[str, str] = PLATFORM,
                  reason: str = "") -> httpx.Response:
    return await client.post(f"{API}/releases", json={"bundles": encoded(*bundles), "reason": reason}, headers=headers)


async def team_headers(client: httpx.AsyncClient, team: str) -> dict[str, str]:
    issued = await client.post(f"{API}/tokens", json={"team": team}, headers=PLATFORM)
    assert issued.status_code == 201, issued.text
    assert issued.json()["team"] == team
    return {"Authorization": f"Bearer {issued.json()['token']}"}


async def site(client: httpx.AsyncClient, make: Make) -> None:
    """The whole test site published at once into an empty registry (its components depend on each other)."""
    answer = await release(client, *(make(name) for name in SITE), reason="fill")
    assert answer.status_code == 201, answer.text


async def test_service_health_needs_no_token_and_says_when_the_database_is_down(
    client: httpx.AsyncClient, tmp_path: Path
) -> None:
    answer = await client.get(f"{API}/health")
    assert (answer.status_code, answer.json()) == (200, {"status": "ok"})
    down = Store.connect(f"postgresql://oberon:pw@127.0.0.1:{free_port()}/none")
    async with _client(down, tmp_path / "down") as unreachable:
        answer = await unreachable.get(f"{API}/health")
        assert answer.status_code == 503 and answer.json()["status"] == "unavailable"
        snapshot = await unreachable.get(f"{API}/snapshot", headers=PLATFORM)
        assert snapshot.status_code == 503 and "cannot be used" in snapshot.json()["error"]
    down.close()


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/components"),
        ("GET", "/components/greeting"),
        ("GET", "/snapshot"),
        ("GET", f"/bundles/sha256:{'0' * 64}"),
        ("POST", "/releases"),
        ("POST", "/tokens"),
        ("POST", "/components/greeting/ramp"),
        ("POST", "/components/greeting/promote"),
        ("POST", "/components/greeting/rollback"),
    ],
)
async def test_service_refuses_every_endpoint_without_a_known_token(
    client: httpx.AsyncClient, method: str, path: str
) -> None:
    for headers in ({}, {"Authorization": "Bearer not-a-token-it-issued"}, {"Authorization": ADMIN_TOKEN}):
        answer = await client.request(method, API + path, headers=headers, json={})
        assert answer.status_code == 401, (headers, answer.text)
        assert answer.headers["www-authenticate"] == "Bearer"
        assert answer.json()["error"]


async def test_service_issues_team_tokens_only_to_the_platform_and_keeps_their_hash(
    client: httpx.AsyncClient, database_url: str
) -> None:
    checkout = await team_headers(client, "checkout")
    answer = await client.post(f"{API}/tokens", json={"team": "events"}, headers=checkout)
    assert answer.status_code == 403 and "only the platform" in answer.json()["error"]
    for team in ("", "Checkout", "a b", None, 7, "x" * 65):
        answer = await client.post(f"{API}/tokens", json={"team": team}, headers=PLATFORM)
        assert answer.status_code == 400 and answer.json()["error"].startswith("team:"), team
    token = checkout["Authorization"].removeprefix("Bearer ")
    engine = sa.create_engine(engine_url(database_url))
    with engine.connect() as conn:
        hashes = conn.execute(sa.text("SELECT hash FROM registry_tokens")).scalars().all()
    engine.dispose()
    assert hashes == [hashlib.sha256(token.encode()).hexdigest()]


async def test_service_publishes_a_release_and_answers_each_versions_channel(
    client: httpx.AsyncClient, make: Make
) -> None:
    await site(client, make)
    newer = make("greeting", "1.1.0", **{"template.html": "<p>Hello!</p>"})
    answer = await release(client, newer, make("hero-banner"), reason="friendlier")
    assert answer.status_code == 201
    assert answer.json() == {
        "published": [
            {"name": "greeting", "version": "1.1.0", "digest": newer.digest, "channel": None, "unchanged": False},
            {
                "name": "hero-banner",
                "version": "1.0.0",
                "digest": make("hero-banner").digest,
                "channel": "stable",
                "unchanged": True,
            },
        ]
    }


async def test_service_refuses_to_change_a_published_version(client: httpx.AsyncClient, make: Make) -> None:
    await site(client, make)
    answer = await release(client, make("greeting", **{"template.html": "<p>sneaky</p>"}))
    assert answer.status_code == 409
    assert answer.json()["error"].startswith(
        f"greeting@1.0.0 is already published with other contents ({make('greeting').digest}); "
    )
    assert answer.json()["error"].endswith("a published version never changes: raise the version")


async def test_service_refuses_a_release_that_breaks_the_registry_with_file_field_errors(
    client: httpx.AsyncClient, make: Make
) -> None:
    await site(client, make)
    broken = make("greeting", "1.1.0", **{"template.html": "<p>{{ oops </p>"})
    answer = await release(client, broken)
    assert answer.status_code == 422
    errors = answer.json()["errors"]
    assert {"file": "greeting@1.1.0/template.html", "field": "line 1", "message": errors[0]["message"]} in errors
    assert "template syntax error" in errors[0]["message"]
    # The app that slots it no longer finds it: the whole-registry check says so, naming the app's own file.
    assert any(error["file"] == "shop-page@1.0.0/component.toml" for error in errors)
    versions = (await client.get(f"{API}/components/greeting", headers=PLATFORM)).json()["versions"]
    assert [version["version"] for version in versions] == ["1.0.0"]
    # A state key nobody produces any more: the subscriber's manifest is named.
    bare = 'name = "item-card"\nversion = "1.3.0"\nowner = "shop"\n'
    no_item = make("item-card", "1.3.0", **{"component.toml": bare})
    answer = await release(client, no_item)
    assert answer.status_code == 422
    assert {(error["file"], error["field"]) for error in answer.json()["errors"]} >= {
        ("item-price@1.0.0/component.toml", "subscribes[0]")
    }


async def test_service_refuses_a_bundle_without_an_owner(client: httpx.AsyncClient, make: Make) -> None:
    ownerless = make("greeting", **{"component.toml": 'name = "greeting"\nversion = "1.0.0"\n'})
    answer = await release(client, ownerless)
    assert answer.status_code == 422
    assert answer.json()["errors"] == [
        {"file": "greeting@1.0.0/component.toml", "field": "owner", "message": answer.json()["errors"][0]["message"]}
    ]


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ({}, "bundles: expected a list of base64 bundles"),
        ({"bundles": []}, "bundles: expected a list of base64 bundles"),
        ({"bundles": "abc"}, "bundles: expected a list of base64 bundles"),
        ({"bundles": ["%%%"]}, "bundles[0]: not base64"),
        ({"bundles": [base64.b64encode(b"not gzip").decode()]}, "bundles[0]: not a valid bundle: not gzip data"),
        ({"bundles": [base64.b64encode(gzip.compress(b"x" * 600)).decode()]}, "bundles[0]: not a valid bundle"),
        ({"bundles": [], "reason": 5}, "reason: expected text"),
    ],
)
async def test_service_refuses_a_release_that_is_not_bundles_with_400(
    client: httpx.AsyncClient, body: dict[str, Any], error: str
) -> None:
    answer = await client.post(f"{API}/releases", json=body, headers=PLATFORM)
    assert answer.status_code == 400, answer.text
    assert error in answer.json()["error"]


async def test_service_names_the_bad_bundle_of_a_release(client: httpx.AsyncClient, make: Make) -> None:
    body = {"bundles": [*encoded(make("greeting")), base64.b64encode(b"junk").decode()]}
    answer = await client.post(f"{API}/releases", json=body, headers=PLATFORM)
    assert answer.status_code == 400 and answer.json()["error"].startswith("bundles[1]: not a valid bundle")
    assert (await client.get(f"{API}/components", headers=PLATFORM)).json() == {"components": []}


@pytest.mark.parametrize("body", [b"{", b"[1, 2]", b"\xff\xfe", b'"text"', b"{" * 100_000])
async def test_service_refuses_malformed_json_with_400(client: httpx.AsyncClient, body: bytes) -> None:
    for path in ("/releases", "/tokens", "/components/greeting/ramp"):
        answer = await client.post(API + path, content=body, headers=PLATFORM)
        assert answer.status_code == (413 if len(body) > 65536 and path != "/releases" else 400), (path, answer.text)
        assert answer.json()["error"]


async def test_service_refuses_an_oversized_body_with_413(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    answer = await client.post(f"{API}/tokens", json={"team": "x" * 70_000}, headers=PLATFORM)
    assert answer.status_code == 413 and "larger than 65536 bytes" in answer.json()["error"]
    monkeypatch.setattr(service, "MAX_RELEASE_BYTES", 1000)
    answer = await client.post(f"{API}/releases", json={"bundles": ["A" * 2000]}, headers=PLATFORM)
    assert answer.status_code == 413

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted as it arrives
        for _ in range(10):
            yield b" " * 200

    answer = await client.post(f"{API}/releases", content=chunks(), headers=PLATFORM)
    assert answer.status_code == 413


async def test_service_lets_a_team_change_only_its_own_components(client: httpx.AsyncClient, make: Make) -> None:
    await site(client, make)
    shop = await team_headers(client, "shop")
    pricing = await team_headers(client, "pricing")
    answer = await release(client, make("item-price", "1.1.0"), headers=shop)
    assert answer.status_code == 403
    assert answer.json() == {"error": "team 'shop' does not own item-price (owner: pricing)"}
    answer = await release(client, make("item-price", "1.1.0"), headers=pricing)
    assert answer.status_code == 201
    before = (await client.get(f"{API}/snapshot", headers=shop)).json()
    for action, body in (
        ("ramp", {"version": "1.1.0", "percent": 10}),
        ("promote", {"version": "1.1.0"}),
        ("rollback", {}),
    ):
        answer = await client.post(f"{API}/components/item-price/{action}", json=body, headers=shop)
        assert answer.status_code == 403, action
        assert "does not own item-price" in answer.json()["error"]
    assert (await client.get(f"{API}/snapshot", headers=shop)).json() == before  # every token reads
    answer = await client.post(
        f"{API}/components/item-price/ramp", json={"version": "1.1.0", "percent": 10}, headers=pricing
    )
    assert answer.status_code == 200
    assert answer.json() == {
        "name": "item-price",
        "owner": "pricing",
        "stable": "1.0.0",
        "canary": {"version": "1.1.0", "percent": 10},
    }


async def test_service_ramps_promotes_and_rolls_back_and_shows_the_history(
    client: httpx.AsyncClient, make: Make
) -> None:
    await site(client, make)
    shop = await team_headers(client, "shop")
    for version in ("1.1.0", "1.2.0"):
        assert (await release(client, make("greeting", version), headers=shop, reason=f"v{version}")).status_code == 201
    ramp = f"{API}/components/greeting/ramp"
    answer = await client.post(ramp, json={"version": "1.1.0", "percent": 10, "reason": "try"}, headers=shop)
    assert answer.json()["canary"] == {"version": "1.1.0", "percent": 10}
    for body in ({"version": "1.1.0", "percent": 0}, {"version": "1.1.0", "percent": 100}):
        assert (await client.post(ramp, json=body, headers=shop)).status_code == 400
    for body in ({"version": "1.1.0"}, {"version": "1.1.0", "percent": "10"}, {"percent": 10}, {"version": 1}):
        answer = await client.post(ramp, json=body, headers=shop)
        assert answer.status_code == 400, body
    answer = await client.post(ramp, json={"version": "7.0.0", "percent": 5}, headers=shop)
    assert answer.status_code == 404 and answer.json()["error"] == "greeting has no published version 7.0.0"
    promote = f"{API}/components/greeting/promote"
    answer = await client.post(promote, json={"reason": "good"}, headers=shop)
    assert (answer.status_code, answer.json()["stable"], answer.json()["canary"]) == (200, "1.1.0", None)
    answer = await client.post(promote, json={}, headers=shop)
    assert answer.status_code == 409 and "no canary to promote" in answer.json()["error"]
    answer = await client.post(promote, json={"version": "1.2.0"}, headers=PLATFORM)
    assert answer.json()["stable"] == "1.2.0"
    rollback = f"{API}/components/greeting/rollback"
    assert (await client.post(rollback, json={"reason": "bad"}, headers=shop)).json()["stable"] == "1.1.0"
    assert (await client.post(rollback, json={"to": "1.2.0"}, headers=shop)).json()["stable"] == "1.2.0"
    assert (await client.post(rollback, json={}, headers=shop)).json()["stable"] == "1.0.0"
    answer = await client.post(rollback, json={}, headers=shop)
    assert answer.status_code == 409 and "no earlier stable version" in answer.json()["error"]
    record = (await client.get(f"{API}/components/greeting", headers=shop)).json()
    assert (record["name"], record["owner"], record["stable"], record["canary"]) == ("greeting", "shop", "1.0.0", None)
    assert [(v["version"], v["published_by"]) for v in record["versions"]] == [
        ("1.0.0", "platform"),
        ("1.1.0", "shop"),
        ("1.2.0", "shop"),
    ]
    assert all(v["published_at"].endswith("Z") and v["digest"].startswith("sha256:") for v in record["versions"])
    assert [(h["actor"], h["action"], h["version"], h["percent"], h["reason"]) for h in record["history"]] == [
        ("platform", "publish", "1.0.0", None, "fill"),
        ("shop", "publish", "1.1.0", None, "v1.1.0"),
        ("shop", "publish", "1.2.0", None, "v1.2.0"),
        ("shop", "ramp", "1.1.0", 10, "try"),
        ("shop", "promote", "1.1.0", None, "good"),
        ("platform", "promote", "1.2.0", None, ""),
        ("shop", "rollback", "1.1.0", None, "bad"),
        ("shop", "rollback", "1.2.0", None, ""),
        ("shop", "rollback", "1.0.0", None, ""),
    ]
    answer = await client.get(f"{API}/components/nothing", headers=shop)
    assert answer.status_code == 404 and answer.json() == {"error": "no component named nothing is published"}
    listed = (await client.get(f"{API}/components", headers=shop)).json()["components"]
    assert [item["name"] for item in listed] == sorted(SITE)


async def test_service_refuses_a_ramp_promote_or_rollback_that_would_break_the_registry(
    client: httpx.AsyncClient, make: Make, store: Store
) -> None:
    await site(client, make)
    # hero-banner 1.1.0 stops reading the action cart/item-added; then item-price 1.1.0 stops publishing it.
    banner = (COMPONENTS / "hero-banner" / "component.toml").read_text()
    quiet_banner = banner.replace('version = "1.0.0"', 'version = "1.1.0"').split("[consumes")[0]
    assert (await release(client, make("hero-banner", **{"component.toml": quiet_banner}))).status_code == 201
    price = (COMPONENTS / "item-price" / "component.toml").read_text()
    quiet_price = price.replace('version = "1.0.0"', 'version = "1.1.0"').split("[publishes")[0]
    quiet_price += '[assets]\ncss = ["assets/price.css"]\n'
    answer = await release(client, make("item-price", **{"component.toml": quiet_price}))
    assert answer.status_code == 422  # hero-banner@1.0.0, stable, still reads it: a broken registry and contract
    assert {e["file"] for e in answer.json()["errors"]} == {
        "hero-banner@1.0.0/component.toml",
        "item-price@1.1.0/component.toml",
    }
    promote = {"version": "1.1.0"}
    assert (await client.post(f"{API}/components/hero-banner/promote", json=promote, headers=PLATFORM)).is_success
    assert (await release(client, make("item-price", **{"component.toml": quiet_price}))).status_code == 201
    assert (await client.post(f"{API}/components/item-price/promote", json=promote, headers=PLATFORM)).is_success
    revision = store.revision()
    # hero-banner 1.0.0 would read an action no stable component publishes any more: as canary or as stable.
    for action, body in (
        ("ramp", {"version": "1.0.0", "percent": 10}),
        ("promote", {"version": "1.0.0"}),
        ("rollback", {}),
    ):
        answer = await client.post(f"{API}/components/hero-banner/{action}", json=body, headers=PLATFORM)
        assert answer.status_code == 422, (action, answer.text)
        assert answer.json()["errors"] == [
            {
                "file": "hero-banner@1.0.0/component.toml",
                "field": "consumes.cart/item-added",
                "message": answer.json()["errors"][0]["message"],
            }
        ]
    assert store.revision() == revision


async def test_service_snapshot_has_an_etag_answers_304_and_long_polls(
    client: httpx.AsyncClient, make: Make, monkeypatch: pytest.MonkeyPatch
) -> None:
    empty = await client.get(f"{API}/snapshot", headers=PLATFORM)
    assert (empty.json(), empty.headers["etag"]) == ({"revision": 0, "components": []}, '"0"')
    await site(client, make)
    answer = await client.get(f"{API}/snapshot", headers=PLATFORM)
    assert answer.headers["etag"] == f'"{answer.json()["revision"]}"' == '"5"'
    assert [item["name"] for item in answer.json()["components"]] == sorted(SITE)
    greeting = answer.json()["components"][0]
    assert greeting == {
        "name": "greeting",
        "owner": "shop",
        "stable": {"version": "1.0.0", "digest": make("greeting").digest},
        "canary": None,
    }
    same = await client.get(f"{API}/snapshot", headers={**PLATFORM, "If-None-Match": '"5"'})
    assert (same.status_code, same.content, same.headers["etag"]) == (304, b"", '"5"')
    weak = await client.get(f"{API}/snapshot", headers={**PLATFORM, "If-None-Match": 'W/"5"'})
    assert weak.status_code == 304
    stale = await client.get(f"{API}/snapshot", headers={**PLATFORM, "If-None-Match": '"4"'})
    assert stale.status_code == 200
    # ?wait= holds the request until the revision moves (here: a ramp published meanwhile)
    monkeypatch.setattr(service, "WAIT_STEP_SECONDS", 0.02)
    assert (await release(client, make("greeting", "1.1.0"))).status_code == 201
    waiting = asyncio.create_task(
        client.get(f"{API}/snapshot", params={"wait": "10"}, headers={**PLATFORM, "If-None-Match": '"6"'})
    )
    await asyncio.sleep(0.2)
    assert not waiting.done()
    ramp = {"version": "1.1.0", "percent": 30}
    assert (await client.post(f"{API}/components/greeting/ramp", json=ramp, headers=PLATFORM)).status_code == 200
    changed = await asyncio.wait_for(waiting, timeout=5)
    assert changed.status_code == 200 and changed.headers["etag"] == '"7"'
    assert changed.json()["components"][0]["canary"]["percent"] == 30
    quiet = await client.get(f"{API}/snapshot", params={"wait": "0.1"}, headers={**PLATFORM, "If-None-Match": '"7"'})
    assert quiet.status_code == 304
    for wait in ("31", "-1", "soon"):
        answer = await client.get(f"{API}/snapshot", params={"wait": wait}, headers=PLATFORM)
        assert answer.status_code == 400 and answer.json()["error"].startswith("wait:")


async def test_service_serves_bundles_by_digest_immutable(client: httpx.AsyncClient, make: Make) -> None:
    await site(client, make)
    greeting = make("greeting")
    answer = await client.get(f"{API}/bundles/{greeting.digest}", headers=PLATFORM)
    assert answer.status_code == 200 and answer.content == greeting.data
    assert answer.headers["content-type"] == MEDIA_TYPE
    assert answer.headers["cache-control"] == "public, max-age=31536000, immutable"
    unknown = await client.get(f"{API}/bundles/sha256:{'a' * 64}", headers=PLATFORM)
    assert unknown.status_code == 404 and "no bundle has the digest" in unknown.json()["error"]
    bad = await client.get(f"{API}/bundles/md5:abc", headers=PLATFORM)
    assert bad.status_code == 400


async def test_service_answers_unknown_paths_and_methods_as_json(client: httpx.AsyncClient) -> None:
    answer = await client.get(f"{API}/nothing", headers=PLATFORM)
    assert answer.status_code == 404 and answer.json() == {"error": "Not Found"}
    answer = await client.delete(f"{API}/components", headers=PLATFORM)
    assert answer.status_code == 405 and answer.json() == {"error": "Method Not Allowed"}
