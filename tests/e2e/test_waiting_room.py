"""The demo's on-sale route behind a waiting room, on real processes: two gateways on one Redis keep one line."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import httpx
import pytest

from gateway.waiting_room import cookie_names
from tests.e2e.conftest import ROOT, gateway_replica, start_server
from tests.redis_server import RedisServer

ROOM = "/bff/checkout"
BUY = f"{ROOM}/cart"
API = {"Accept": "application/json"}
HTML = {"Accept": "text/html"}
TICKET, ADMISSION = cookie_names(ROOM, https=False)


class Gateways(NamedTuple):
    a: str
    b: str


def one_a_minute_site(folder: Path) -> Path:
    """The demo site, its on-sale route letting one visitor on a minute: the line stands still while the test runs."""
    routes = (ROOT / "gateway" / "routes.toml").read_text(encoding="utf-8")
    assert "waiting_room = 300" in routes, "the demo marks its on-sale route"
    (folder / "routes.toml").write_text(routes.replace("waiting_room = 300", "waiting_room = 1"), encoding="utf-8")
    site = (ROOT / "oberon.toml").read_text(encoding="utf-8")
    site = site.replace('components = ["components"]', f'components = ["{ROOT / "components"}"]')
    site = site.replace('routes = "gateway/routes.toml"', f'routes = "{folder / "routes.toml"}"')
    (folder / "oberon.toml").write_text(site, encoding="utf-8")
    return folder / "oberon.toml"


@pytest.fixture
def gateways(redis_server: RedisServer, tmp_path: Path) -> Iterator[Gateways]:
    """`oberon up --split` on Redis, and a second `oberon serve gateway` over its services and the same Redis."""
    site = one_a_minute_site(tmp_path)
    env = {"OBERON_SESSION_STORE": redis_server.url, "OBERON_SITE_FILE": str(site)}
    with start_server("--split", env=env) as running:
        with gateway_replica(running, env) as replica:
            yield Gateways(running.base_url, replica.base_url)


def place(client: httpx.Client, base: str) -> int | None:
    """None when let on (the checkout BFF answers), else the place in line the API answer gives."""
    response = client.get(f"{base}{BUY}", headers=API)
    if response.status_code == 200:
        assert "items" in response.json(), response.text
        return None
    assert response.status_code == 503, response.text
    assert int(response.headers["retry-after"]) == response.json()["retry_after"] > 0
    return int(response.json()["position"])


def test_split_two_gateways_on_one_redis_keep_one_line(gateways: Gateways) -> None:
    visitors = [httpx.Client(timeout=10) for _ in range(5)]
    try:
        bases = [gateways.a, gateways.b] * 3
        assert [place(client, base) for client, base in zip(visitors, bases, strict=False)] == [None, 1, 2, 3, 4]
        assert place(visitors[1], gateways.b) == 1, "a ticket from gateway A holds its place at gateway B"
        assert place(visitors[2], gateways.a) == 2, "and one from B at A"
        assert place(visitors[0], gateways.b) is None, "an admission from A lets the visitor on at B, unqueued"
        assert visitors[0].cookies.get(ADMISSION) and not visitors[0].cookies.get(TICKET)

        with httpx.Client(timeout=10) as browser:
            page = browser.get(f"{gateways.b}{BUY}", headers=HTML)
            assert page.status_code == 200 and page.headers["cache-control"] == "no-store"
            assert "Your place in line: <strong>5</strong>" in page.text
            assert '<meta http-equiv="refresh"' in page.text and "<script" not in page.text
            assert browser.cookies.get(TICKET)

        with httpx.Client(timeout=10, cookies={TICKET: "forged." + "x" * 40}) as forger:
            assert place(forger, gateways.a) == 6, "a forged ticket is a new arrival at the back"
    finally:
        for client in visitors:
            client.close()
