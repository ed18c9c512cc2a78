"""The events BFF's listing of every event page, which the renderer's sitemap.xml is made from."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest
from starlette.types import ASGIApp

from bff.events import create_app
from bff.events.app import SITEMAP_CACHE
from infra.local import catalogue
from oberon import Upstreams

pytestmark = pytest.mark.anyio

ClientFor = Callable[[ASGIApp], httpx.AsyncClient]


async def test_events_sitemap_lists_every_event_page_params(stand_ins: Upstreams, client_for: ClientFor) -> None:
    response = await client_for(create_app(stand_ins)).get("/sitemap")
    assert response.status_code == 200
    assert response.headers["cache-control"] == SITEMAP_CACHE
    pages = response.json()["pages"]
    assert [page["params"]["event_id"] for page in pages] == list(range(1, catalogue.EVENT_COUNT + 1))
