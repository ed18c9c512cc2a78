"""A page's whole answer (status, every header, every byte of the document) as main's code gave it (issue 19).

The reference (`page_answers_reference.json`) was written by this test run against main's code before the page's
own steps were made leaner (the head from its frame, named tuples for a page's values): a page whose head reads
nothing, rendered whole, then from the page cache, in another locale, another page, one with a component fallen
back, and a page's 404.
Server-Timing's durations differ from run to run: its entries are compared, not their numbers.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jinja2
import pytest
import respx

from oberon.client.upstream import Upstreams
from oberon.pipeline.assets import Assets, build_assets
from oberon.pipeline.cache_policy import CachePolicy
from oberon.pipeline.page import PageRenderer
from oberon.pipeline.page_cache import PageCache
from oberon.pipeline.registry import load_registry
from oberon.pipeline.seo import SiteInfo
from oberon.web.renderer import RendererApp
from tests.conftest import TEST_BFF, ComponentWriter
from tests.oberon.web.test_page_dispatch import call, scope_of

pytestmark = pytest.mark.anyio

REFERENCE = Path(__file__).parent / "page_answers_reference.json"
WRITE = "PAGE_ANSWER_REFERENCE"  # set to `write` to write the reference from the code under test

FIXED_PAGE = """
name = "fixed-page"
version = "1.0.0"
owner = "shop"
kind = "app"
description = "Fixed & <more>"
routes = ["/fixed/{item_id:int}"]
title = "Fixed & <b>title</b>"

[meta]
description = "Everything  for the   home & garden: <today>"

[[slots.main]]
component = "greeting"
props = { who = "shopper" }

[[slots.main]]
component = "item-card"

[[slots.main]]
component = "item-price"

[[slots.side]]
component = "hero-banner"
"""
FRESH = {"Cache-Control": "max-age=60"}  # the client keeps the answers: the page cache may keep the page
_DURATION = re.compile(r"dur=\d+\.\d")


@pytest.fixture(autouse=True)
def bff() -> Iterator[respx.MockRouter]:
    with respx.mock(base_url=TEST_BFF, assert_all_called=False) as router:
        router.get("/items/1").respond(json={"name": "Lamp & <Shade>", "price": "€10"}, headers=FRESH)
        router.get("/items/2").respond(json={"name": "Chair", "price": "€20"}, headers=FRESH)
        router.get("/items/3").respond(500)
        router.get("/banner").respond(json={"text": "Sale"}, headers=FRESH)
        yield router


async def test_a_page_answer_is_what_mains_code_gave(
    site: Path,
    tmp_path: Path,
    write_component: ComponentWriter,
    environment: jinja2.Environment,
    upstreams: Upstreams,
) -> None:
    write_component("fixed-page", FIXED_PAGE, "<main>{{ slots.main }}</main><aside>{{ slots.side }}</aside>")
    registry = load_registry([site / "components"], environment=environment)
    assets = Assets(build_assets(registry, tmp_path / "assets"), base_url="https://cdn.example/_oberon/assets/")
    renderer = PageRenderer(
        registry=registry,
        upstreams=upstreams,
        environment=environment,
        policy=CachePolicy(),
        assets=assets,
        site=SiteInfo(url="https://shop.example", name="Shop <&> Co"),
        page_cache=PageCache(),
    )
    app = RendererApp(renderer=renderer).app()
    answers = {
        "whole": await _answer(app, "/fixed/1"),
        "from the page cache": await _answer(app, "/fixed/1"),
        "another locale": await _answer(app, "/fixed/1", locale=b"de-CH"),
    }
    answers["another page"] = await _answer(app, "/fixed/2")
    answers["a fallback"] = await _answer(app, "/fixed/3")
    answers["no such page"] = await _answer(app, "/fixed/x")
    if os.environ.get(WRITE) == "write":
        REFERENCE.write_text(json.dumps(answers, indent=1, ensure_ascii=False) + "\n")
    assert answers == json.loads(REFERENCE.read_text())
    assert "page-cache: hit" in json.dumps(answers["from the page cache"]["headers"])


async def _answer(app: Any, path: str, *, locale: bytes = b"en") -> dict[str, Any]:
    scope = scope_of("GET", path)
    scope["headers"] = [*scope["headers"], (b"x-oberon-locale", locale)]
    sent, raised = await call(app, scope)
    assert raised is None
    start, *bodies = sent
    headers = [f"{name.decode()}: {_DURATION.sub('dur=N', value.decode())}" for name, value in start["headers"]]
    body = b"".join(message.get("body", b"") for message in bodies)
    return {"status": start["status"], "headers": headers, "body": body.decode("utf-8")}
