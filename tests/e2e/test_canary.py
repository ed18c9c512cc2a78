"""Canaries end to end (issue 17, items 6 and 8): `oberon up --registry` with ticket-selector and cart-summary 1.1.0
ramped to 30 %, embedded and split, then through a real Varnish (`oberon up --cdn`) in front of a real
`oberon registry serve` that purges it.

A visitor's bucket is fixed by their `oberon_visitor` cookie (minted by the gateway, or by the VCL in front of it);
the buckets below 30 see both canaries on every page and every island, the others never see them.
"""

from __future__ import annotations

import re
import shutil
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from html import unescape
from pathlib import Path

import httpx
import pytest

from oberon.defaults import DEFAULT_REGISTRY_CDN_PURGE_AGAIN_SECONDS
from oberon.runtime.supervisor import free_port
from tests.e2e.conftest import ROOT, Running, start_server
from tests.e2e.test_registry_cli import Registry as RegistryService
from tests.e2e.test_registry_cli import oberon, registry_process
from tests.registry_stand_in import TOKEN, RunningStandIn, StandInRegistry, run_stand_in

PERCENT = 30
CANARY = "1.1.0"
STABLE = "1.0.0"
VISITORS = 200
FOLLOW_SECONDS = 5.0
COOKIE = re.compile(r"oberon_visitor=(v1\.([0-9]{2})\.[A-Za-z0-9_-]{22,64});")
TICKETS = re.compile(r'data-oberon-component="ticket-selector" data-oberon-version="([^"]+)"')
CART = re.compile(r'data-oberon-component="cart-summary" data-oberon-version="([^"]+)"')
ISLAND = re.compile(r'<esi:include src="(/_islands/cart-summary\?[^"]+)"/>')
PLATFORM_TOKEN = "e2e-canary-platform-token-of-32-characters-or-more"


def new_version(tmp_path: Path, name: str, heading: str) -> Path:
    """`name` 1.1.0: its version raised and its heading changed, as its team would publish it."""
    folder = shutil.copytree(ROOT / "components" / name, tmp_path / "edits" / name)
    manifest = folder / "component.toml"
    manifest.write_text(manifest.read_text().replace(f'version = "{STABLE}"', f'version = "{CANARY}"', 1))
    template = folder / "template.html"
    text = template.read_text()
    template.write_text(re.sub(r"(<h2 id=\"[a-z-]+-heading\">)[^<]*(</h2>)", rf"\g<1>{heading}\g<2>", text, count=1))
    return folder


@dataclass
class Visitor:
    """A browser with its visitor id only (no other cookie), and what it was shown."""

    cookie: str
    bucket: int
    seen: Counter[str]

    @property
    def in_canary(self) -> bool:
        return self.bucket < PERCENT

    def headers(self) -> dict[str, str]:
        return {"Cookie": f"oberon_visitor={self.cookie}", "Connection": "close"}


def first_visit(base: str, path: str) -> tuple[Visitor, httpx.Response]:
    """A new visitor's first page: the entrance gives them an id, on an answer no shared cache keeps."""
    response = httpx.get(f"{base}{path}", headers={"Connection": "close"}, timeout=20)
    assert response.status_code == 200, response.text[:500]
    found = COOKIE.search(response.headers.get("set-cookie", ""))
    assert found is not None, response.headers
    assert response.headers["cache-control"] == "private, no-store"
    return Visitor(cookie=found.group(1), bucket=int(found.group(2)), seen=Counter()), response


def versions(html: str) -> set[str]:
    return {*TICKETS.findall(html), *CART.findall(html)}


def browse(base: str) -> Visitor:
    """A visitor's two event pages and the cart island of the first, each version noted."""
    visitor, first = first_visit(base, "/e/1")
    second = httpx.get(f"{base}/e/2", headers=visitor.headers(), timeout=20)
    assert second.status_code == 200
    island = ISLAND.search(first.text)
    assert island is not None, first.text[:3000]
    cart = httpx.get(base + unescape(island.group(1)), headers=visitor.headers(), timeout=20)
    assert cart.status_code == 200 and cart.headers["cache-control"] == "private, no-store"
    for response in (first, second):
        assert TICKETS.findall(response.text), response.text[:2000]
        visitor.seen.update(TICKETS.findall(response.text))
        visitor.seen[f"cohort {response.headers['x-oberon-cohort']}"] += 1
    visitor.seen.update(CART.findall(cart.text))
    return visitor


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[RunningStandIn]:
    """The demo site, each component stable at 1.0.0; ticket-selector and cart-summary 1.1.0 canaries at 30 %."""
    state = StandInRegistry(tmp_path / "registry")
    state.publish_site(ROOT / "components")
    state.ramp(state.publish(new_version(tmp_path / "t", "ticket-selector", "Get your tickets")), PERCENT)
    state.ramp(state.publish(new_version(tmp_path / "c", "cart-summary", "Your basket")), PERCENT)
    with run_stand_in(state) as running:
        yield running


@pytest.mark.parametrize("topology", [(), ("--split",)], ids=["embedded", "split"])
def test_a_30_percent_canary_holds_for_each_visitor_on_every_page_and_island(
    registry: RunningStandIn, tmp_path: Path, topology: tuple[str, ...]
) -> None:
    environ = {
        "OBERON_REGISTRY_TOKEN": TOKEN,
        "OBERON_REGISTRY_CACHE_DIR": str(tmp_path / "cache"),
        "OBERON_BUILD_DIR": str(tmp_path / "build"),
        "OBERON_ESI": "true",  # cart-summary is private: an island of its own URL, as a CDN would fill it
    }
    with start_server(*topology, "--registry", registry.url, env=environ) as running:
        with ThreadPoolExecutor(max_workers=8) as pool:
            visitors = list(pool.map(lambda _: browse(running.base_url), range(VISITORS)))
    cohort = f"cart-summary@{CANARY} ticket-selector@{CANARY}"
    for visitor in visitors:
        expected = CANARY if visitor.in_canary else STABLE
        said = cohort if visitor.in_canary else "stable"
        assert visitor.seen == Counter({expected: 3, f"cohort {said}": 2}), (visitor.bucket, visitor.seen)
    share = sum(visitor.in_canary for visitor in visitors) / VISITORS
    assert 0.15 <= share <= 0.45, share
    assert len({visitor.cookie for visitor in visitors}) == VISITORS


@pytest.fixture
def cdn_port() -> int:
    return free_port()


@pytest.fixture
def registry_service(tmp_path: Path, cdn_port: int) -> Iterator[RegistryService]:
    """`oberon registry serve` on SQLite, purging the CDN `oberon up --cdn` will run on `cdn_port`."""
    database = f"sqlite:///{tmp_path / 'registry.sqlite3'}"
    purge = ("--cdn-purge", f"http://127.0.0.1:{cdn_port}/")
    with registry_process(database, tmp_path / "work", *purge, token=PLATFORM_TOKEN, taken=frozenset({cdn_port})) as r:
        yield r


def lifecycle(registry: RegistryService, *args: str) -> str:
    """`oberon ARGS` against the registry with the platform token; its output."""
    done = oberon(*args, registry=registry, token=PLATFORM_TOKEN)
    assert done.returncode == 0, done.stderr
    return done.stdout


def page(client: httpx.Client, running: Running, visitor: Visitor, path: str = "/e/5") -> httpx.Response:
    response = client.get(f"{running.base_url}{path}", headers=visitor.headers())
    assert response.status_code == 200, response.text[:500]
    return response


def test_through_varnish_each_cohort_is_cached_once_none_leaks_and_changes_are_purged(
    registry_service: RegistryService, tmp_path: Path, cdn_port: int
) -> None:
    lifecycle(registry_service, "publish", "--all")
    tickets = new_version(tmp_path / "t", "ticket-selector", "Get your tickets")
    cart = new_version(tmp_path / "c", "cart-summary", "Your basket")
    lifecycle(registry_service, "publish", str(tickets), str(cart))
    for name in ("ticket-selector", "cart-summary"):
        lifecycle(registry_service, "ramp", name, CANARY, "--percent", str(PERCENT))
    ramped = time.monotonic()
    environ = {
        "OBERON_REGISTRY_TOKEN": PLATFORM_TOKEN,
        "OBERON_REGISTRY_CACHE_DIR": str(tmp_path / "cache"),
        "OBERON_BUILD_DIR": str(tmp_path / "build"),
    }
    # One client for the pages: a new one per request (`httpx.get`) costs ~40 ms, and `everyone_sees` must look
    # at all 40 visitors' pages well within its 5 s.
    with (
        start_server("--cdn", "--registry", registry_service.url, env=environ, port=cdn_port) as running,
        httpx.Client(timeout=20, trust_env=False) as client,
    ):
        # 40 visitors get their id from the VCL on the home page (no ticket selector there).
        visitors = [first_visit(running.base_url, "/")[0] for _ in range(40)]
        assert {visitor.in_canary for visitor in visitors} == {True, False}, [v.bucket for v in visitors]

        # One copy of the event page per cohort: the first visitor of each is a MISS, every other a HIT. Counted
        # once the ramps' second purges have come (a purge is sent again 3 s after the change): mid-count they
        # would empty the cache and a cohort would MISS again.
        time.sleep(max(ramped + DEFAULT_REGISTRY_CDN_PURGE_AGAIN_SECONDS + 0.5 - time.monotonic(), 0))
        caches = Counter()
        for visitor in visitors * 2:
            response = page(client, running, visitor)
            caches[response.headers["x-cache"]] += 1
            expected = CANARY if visitor.in_canary else STABLE
            assert versions(response.text) == {expected}, (visitor.bucket, versions(response.text))
            assert "set-cookie" not in response.headers and response.headers["cache-control"].startswith("public")
        assert caches == Counter({"MISS": 2, "HIT": 78}), caches

        # Promote: purged at once (and again), every visitor sees 1.1.0 within 5 s, s-maxage 30 notwithstanding.
        promoted = lifecycle(registry_service, "promote", "ticket-selector")
        assert f"oberon: purged component:ticket-selector from http://127.0.0.1:{cdn_port}/" in promoted
        everyone_sees(client, running, visitors, tickets=CANARY)
        # Rollback: the same, back to 1.0.0.
        lifecycle(registry_service, "rollback", "ticket-selector")
        everyone_sees(client, running, visitors, tickets=STABLE)

        # cart-summary 1.1.0 promoted: 1.0.0 left every channel, yet a page cached before still names its island.
        lifecycle(registry_service, "promote", "cart-summary")
        retired = f"/_islands/cart-summary?version=%3D%3D{STABLE}&event_id=5"
        deadline = time.monotonic() + FOLLOW_SECONDS
        while CART.findall(page(client, running, visitors[0]).text) != [CANARY]:
            assert time.monotonic() < deadline, "cart-summary 1.1.0 not served within 5 s"
            time.sleep(0.2)
        for visitor in (visitors[0], visitors[-1]):
            island = page(client, running, visitor, retired)
            assert CART.findall(island.text) == [STABLE] and "Your cart" in island.text


def everyone_sees(client: httpx.Client, running: Running, visitors: list[Visitor], *, tickets: str) -> None:
    """Within 5 s every visitor's event page (through Varnish) holds ticket-selector `tickets`."""
    start = time.monotonic()
    while True:
        seen = {TICKETS.findall(page(client, running, visitor).text)[0] for visitor in visitors}
        if seen == {tickets}:
            return
        assert time.monotonic() - start < FOLLOW_SECONDS, f"not within {FOLLOW_SECONDS:g} s: {seen}"
        time.sleep(0.2)
