"""Under 200 concurrent pages, the renderer's pool keeps its connections to a slow upstream within its limit."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import jinja2
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from oberon.client.upstream import ClientSettings, Upstreams
from oberon.pipeline.assets import Assets, build_assets
from oberon.pipeline.cache_policy import CachePolicy
from oberon.pipeline.page import PageRenderer
from oberon.pipeline.page_types import RequestContext
from oberon.pipeline.registry import load_registry
from oberon.types import Outcome

pytestmark = pytest.mark.anyio

POOL_LIMIT = 16
PAGES = 200
LATENCY = 0.1


async def slow_item(request: Request) -> JSONResponse:
    await asyncio.sleep(LATENCY)
    item_id = request.path_params["item_id"]
    return JSONResponse({"name": f"Item {item_id}", "price": "€1"}, headers={"Cache-Control": "no-store"})


async def banner(request: Request) -> JSONResponse:
    return JSONResponse({"text": "Sale"}, headers={"Cache-Control": "no-store"})


@pytest.fixture
async def slow_upstream() -> AsyncIterator[int]:
    """A real HTTP server on a loopback port whose item answers take 100 ms and are never cacheable."""
    app = Starlette(routes=[Route("/items/{item_id:int}", slow_item), Route("/banner", banner)])
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off", backlog=PAGES))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        await asyncio.sleep(0.01)
    yield int(sock.getsockname()[1])
    server.should_exit = True
    await task
    sock.close()


def established(port: int) -> int:
    """Server-side ESTABLISHED TCP connections on `port`, from /proc/net/tcp."""
    count = 0
    with open("/proc/net/tcp") as table:
        next(table)
        for line in table:
            fields = line.split()
            local_port = int(fields[1].split(":")[1], 16)
            if local_port == port and fields[3] == "01":
                count += 1
    return count


async def test_pool_keeps_connections_to_a_slow_upstream_within_its_limit(
    slow_upstream: int, site: Path, environment: jinja2.Environment, tmp_path: Path
) -> None:
    for name in ("item-card", "item-price"):
        manifest = site / "components" / name / "component.toml"
        manifest.write_text(manifest.read_text().replace("timeout_ms = 300", "timeout_ms = 10000"))
    registry = load_registry([site / "components"], environment=environment)
    assets = Assets(build_assets(registry, tmp_path / "assets"))
    settings = ClientSettings(max_connections=POOL_LIMIT, timeout=10.0)
    upstreams = Upstreams.create({"shop": f"http://127.0.0.1:{slow_upstream}"}, settings=settings)
    renderer = PageRenderer(
        registry=registry, upstreams=upstreams, environment=environment, policy=CachePolicy(), assets=assets
    )
    peak = 0
    done = asyncio.Event()

    async def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, established(slow_upstream))
            await asyncio.sleep(0.005)

    sampler = asyncio.create_task(sample())
    app = registry.get("shop-page")
    try:
        pages = await asyncio.gather(
            *(
                renderer.render(app, params={"item_id": item_id}, context=RequestContext(request_id=str(item_id)))
                for item_id in range(PAGES)
            )
        )
    finally:
        done.set()
        await sampler
        await upstreams.aclose()
    assert [page.status_code for page in pages] == [200] * PAGES
    failures = {f.reason for page in pages for f in page.fragments if f.outcome is not Outcome.OK}
    assert failures == set()  # no pool timeout, nor any other error
    assert 1 < peak <= POOL_LIMIT
