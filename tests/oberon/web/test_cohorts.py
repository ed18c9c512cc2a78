"""The renderer's HTTP side of canaries: the trusted `X-Oberon-Bucket` picks the cohort, pages and islands say it in
`X-Oberon-Cohort`, and `GET /_oberon/cohort/NN` tells the CDN which cohort a bucket is in."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
import respx

from oberon.pipeline.page import PageRenderer
from oberon.web.renderer import RendererApp
from tests.conftest import CANARY_COHORT, TEST_BFF, CanarySite

pytestmark = pytest.mark.anyio


@pytest.fixture(autouse=True)
def bff() -> Iterator[respx.MockRouter]:
    with respx.mock(base_url=TEST_BFF, assert_all_called=False) as router:
        router.route(host="renderer").pass_through()
        router.get("/items/1").respond(json={"name": "Lamp", "price": "€10"})
        router.get("/banner").respond(json={"text": "Sale"})
        yield router


async def _client(renderer: PageRenderer) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=RendererApp(renderer=renderer).starlette(), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://renderer") as client:
        yield client


@pytest.fixture
async def following(renderer: PageRenderer, canary_site: CanarySite) -> AsyncIterator[httpx.AsyncClient]:
    """The renderer of a site following a registry: item-card 1.3.0 a canary at 30 %."""
    canary_site.follow(renderer)
    async for client in _client(renderer):
        yield client


@pytest.fixture
async def plain(renderer: PageRenderer) -> AsyncIterator[httpx.AsyncClient]:
    """The renderer of a site serving `components/`: no registry to follow."""
    async for client in _client(renderer):
        yield client


@pytest.mark.parametrize(
    ("bucket", "cohort", "version"),
    [
        ("00", CANARY_COHORT, "1.3.0"),
        ("29", CANARY_COHORT, "1.3.0"),
        ("30", "stable", "1.2.0"),
        ("99", "stable", "1.2.0"),
    ],
)
async def test_a_page_is_rendered_for_the_buckets_cohort_and_says_it(
    following: httpx.AsyncClient, bucket: str, cohort: str, version: str
) -> None:
    page = await following.get("/items/1", headers={"X-Oberon-Bucket": bucket})
    assert page.status_code == 200
    assert page.headers["x-oberon-cohort"] == cohort
    assert f'data-oberon-component="item-card" data-oberon-version="{version}"' in page.text


@pytest.mark.parametrize("bucket", [None, b"", b"7", b"100", b"-1", b"0x", b"07 ", "٠٧".encode()])
async def test_no_bucket_or_a_malformed_one_is_the_stable_cohort(
    following: httpx.AsyncClient, bucket: bytes | None
) -> None:
    headers = {"X-Oberon-Bucket": bucket} if bucket is not None else {}
    page = await following.get("/items/1", headers=headers)
    assert page.status_code == 200 and page.headers["x-oberon-cohort"] == "stable"
    assert 'data-oberon-version="1.2.0"' in page.text


async def test_error_pages_and_previews_say_their_cohort_too(following: httpx.AsyncClient) -> None:
    missing = await following.get("/nowhere", headers={"X-Oberon-Bucket": "05"})
    assert (missing.status_code, missing.headers["x-oberon-cohort"]) == (404, CANARY_COHORT)
    preview = await following.get("/_components/item-card", headers={"X-Oberon-Bucket": "05"}, params={"item_id": 1})
    assert preview.headers["x-oberon-cohort"] == CANARY_COHORT and "v2" in preview.text


async def test_the_cohort_lookup_answers_each_bucket_for_the_cdn(following: httpx.AsyncClient) -> None:
    for bucket, cohort in (("00", CANARY_COHORT), ("29", CANARY_COHORT), ("30", "stable"), ("99", "stable")):
        answer = await following.get(f"/_oberon/cohort/{bucket}")
        assert answer.status_code == 204 and answer.content == b""
        assert answer.headers["x-oberon-cohort"] == cohort
        assert answer.headers["cache-control"] == "public, max-age=1"
    head = await following.head("/_oberon/cohort/05")
    assert (head.status_code, head.headers["x-oberon-cohort"]) == (204, CANARY_COHORT)


@pytest.mark.parametrize("bucket", ["100", "7", "-1", "aa", "%3Cscript%3E", "07x"])
async def test_the_cohort_lookup_refuses_a_bucket_outside_00_to_99(following: httpx.AsyncClient, bucket: str) -> None:
    answer = await following.get(f"/_oberon/cohort/{bucket}")
    assert answer.status_code == 400
    assert answer.headers["cache-control"] == "no-store" and "<script>" not in answer.text


async def test_without_a_registry_the_cohort_lookup_is_any_unknown_paths_404_and_pages_say_no_cohort(
    plain: httpx.AsyncClient,
) -> None:
    lookup = await plain.get("/_oberon/cohort/05")
    unknown = await plain.get("/_oberon/nowhere")
    assert lookup.status_code == unknown.status_code == 404
    assert lookup.text == unknown.text and lookup.headers["cache-control"] == unknown.headers["cache-control"]
    page = await plain.get("/items/1", headers={"X-Oberon-Bucket": "05"})
    assert page.status_code == 200 and "x-oberon-cohort" not in page.headers


async def test_an_island_is_rendered_by_the_version_its_url_pins(following: httpx.AsyncClient) -> None:
    own = await following.get("/_islands/item-card?version===1.3.0&item_id=1", headers={"X-Oberon-Bucket": "05"})
    assert own.status_code == 200 and own.headers["x-oberon-cohort"] == CANARY_COHORT
    assert '<h1 class="item v2">Lamp</h1>' in own.text
    # A page of the canary cohort cached before the visitor's bucket left it (a ramp down) still names 1.3.0.
    other = await following.get("/_islands/item-card?version===1.3.0&item_id=1", headers={"X-Oberon-Bucket": "50"})
    assert other.status_code == 200 and '<h1 class="item v2">Lamp</h1>' in other.text
    assert other.headers["x-oberon-cohort"] == "stable" and other.headers["cache-control"] == "private, no-store"
    gone = await following.get("/_islands/item-card?version===0.9.0&item_id=1", headers={"X-Oberon-Bucket": "50"})
    assert gone.status_code == 404
