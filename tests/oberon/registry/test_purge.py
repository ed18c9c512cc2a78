"""The registry purges the site's CDN of a component's pages when its channels change: now, and once more when the
renderers serve the change; a failed purge is said, never fails the change."""

from __future__ import annotations

import asyncio
import base64
from pathlib import Path

import httpx
import pytest

from oberon.exceptions import ConfigError
from oberon.pipeline.rendering import create_environment
from oberon.registry.purge import Purged, Purger
from oberon.registry.service import create_app
from oberon.registry.store import Store
from oberon.registry.tokens import PlatformToken
from tests.oberon.registry.conftest import SITE, Make

pytestmark = pytest.mark.anyio

ADMIN_TOKEN = "registry-platform-token-of-at-least-32-chars"
PLATFORM = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
API = "/registry/v1"
CDN = "http://cdn.test/"


class Cdn:
    """A CDN that records the purges it is sent and answers with `status` (or cannot be reached)."""

    def __init__(self, status: int = 200) -> None:
        self.status: int | None = status
        self.purges: list[httpx.Request] = []

    def transport(self) -> httpx.MockTransport:
        def answer(request: httpx.Request) -> httpx.Response:
            self.purges.append(request)
            if self.status is None:
                raise httpx.ConnectError("connection refused", request=request)
            return httpx.Response(self.status, text="Purged")

        return httpx.MockTransport(answer)


async def test_purger_sends_purge_with_the_components_surrogate_key_to_every_cdn() -> None:
    cdn = Cdn()
    purger = Purger(urls=[CDN, "http://cdn-b.test/"], transport=cdn.transport())
    assert await purger.purge("ticket-selector") == [Purged(CDN), Purged("http://cdn-b.test/")]
    assert [(r.method, str(r.url), r.headers["surrogate-key"]) for r in cdn.purges] == [
        ("PURGE", CDN, "component:ticket-selector"),
        ("PURGE", "http://cdn-b.test/", "component:ticket-selector"),
    ]


@pytest.mark.parametrize(("status", "error"), [(403, "answered 403"), (None, "ConnectError: connection refused")])
async def test_purger_says_what_failed_and_logs_it(
    status: int | None, error: str, caplog: pytest.LogCaptureFixture
) -> None:
    cdn = Cdn(status)
    (result,) = await Purger(urls=[CDN], transport=cdn.transport()).purge("badge")
    assert result == Purged(CDN, error)
    assert f"the CDN purge of component:badge at {CDN} failed: {error}" in caplog.text


async def test_purger_purges_again_after_a_while_for_what_was_cached_meanwhile() -> None:
    cdn = Cdn()
    purger = Purger(urls=[CDN], again_after=0.05, transport=cdn.transport())
    again = asyncio.create_task(purger.purge_again("badge"))
    await asyncio.sleep(0.01)
    assert cdn.purges == []
    await again
    assert len(cdn.purges) == 1
    await Purger(urls=[CDN], again_after=0, transport=cdn.transport()).purge_again("badge")
    assert len(cdn.purges) == 1  # 0: once is enough


def test_purger_refuses_what_is_not_a_cdn_url() -> None:
    with pytest.raises(ConfigError, match="http:// or https:// URL"):
        Purger(urls=["cdn.test"])
    with pytest.raises(ConfigError, match="0 or more seconds"):
        Purger(urls=[CDN], again_after=-1)


def _app(store: Store, tmp_path: Path, cdn: Cdn) -> httpx.AsyncClient:
    purger = Purger(urls=[CDN], again_after=0.05, transport=cdn.transport())
    app = create_app(
        store=store,
        platform=PlatformToken(ADMIN_TOKEN),
        work_dir=tmp_path / "work",
        environment=create_environment(),
        purger=purger,
    )
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://registry.test")


@pytest.mark.parametrize("status", [200, 503])
async def test_every_change_of_channels_purges_the_cdn_and_a_failed_purge_never_fails_it(
    store: Store, tmp_path: Path, make: Make, status: int
) -> None:
    cdn = Cdn(status)
    async with _app(store, tmp_path, cdn) as client:
        bundles = [base64.b64encode(make(name).data).decode() for name in SITE]
        newer = base64.b64encode(make("greeting", "1.1.0").data).decode()
        for body in ({"bundles": bundles}, {"bundles": [newer]}):
            assert (await client.post(f"{API}/releases", json=body, headers=PLATFORM)).status_code == 201
        assert cdn.purges == []  # publishing changes no page
        changes = [
            ("ramp", {"version": "1.1.0", "percent": 10}),
            ("promote", {}),
            ("rollback", {}),
        ]
        for action, body in changes:
            answer = await client.post(f"{API}/components/greeting/{action}", json=body, headers=PLATFORM)
            assert answer.status_code == 200, answer.text
            ok = status == 200
            assert answer.json()["purge"] == {
                "key": "component:greeting",
                "cdns": [{"url": CDN, "ok": ok, "error": None if ok else "answered 503"}],
            }
        assert (await client.get(f"{API}/components/greeting", headers=PLATFORM)).json()["stable"] == "1.0.0"
    # Each change purged once at once and once more 0.05 s later (the response's background task).
    assert [request.headers["surrogate-key"] for request in cdn.purges] == ["component:greeting"] * 6
