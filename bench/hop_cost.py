"""The embedded gateway's hop alone: CPU µs per request of the gateway in front of an in-process app.

End to end (`bench.gateway_cost`) the hop is a few hundred µs inside pages of several ms whose CPU time varies
by ±20 % on a shared machine. Here one process calls the ASGI apps directly, one request after another: a
stand-in renderer that streams a 15 KB page in three chunks, alone; behind the gateway calling it directly
(`gateway.direct`); and behind the gateway through the httpx transport it used before. Blocks of each
alternate; the least CPU per request over the blocks is kept (another process's load only ever adds).

    python -m bench.hop_cost [--requests 2000] [--blocks 5]
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import AsyncIterator

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Message

from gateway.app import Gateway
from gateway.proxy import HttpxProxyTransport, Upstream, UpstreamPool
from gateway.settings import GatewaySettings
from gateway.table import default_table
from oberon.client.transport import StreamingASGITransport

CHUNK = b"<div>" + b"x" * 4900 + b"</div>"


async def page(request: Request) -> Response:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(3):
            yield CHUNK

    return StreamingResponse(chunks(), media_type="text/html; charset=utf-8", headers={"Cache-Control": "no-store"})


def renderer() -> ASGIApp:
    return Starlette(routes=[Route("/page-5", page)])


def gateway(*, direct: bool) -> ASGIApp:
    app = renderer()
    if direct:
        upstream = Upstream.create("renderer", app)
    else:
        client = httpx.AsyncClient(base_url="http://renderer", transport=StreamingASGITransport(app))
        upstream = Upstream("renderer", transport=HttpxProxyTransport(client))
    settings = GatewaySettings(session_secret="s" * 40, jwt_key="k" * 64)
    built = Gateway(
        table=default_table(["renderer"]), upstreams=UpstreamPool({"renderer": upstream}), settings=settings
    )
    return built.app()


SCOPE = {
    "type": "http",
    "asgi": {"version": "3.0", "spec_version": "2.3"},
    "http_version": "1.1",
    "method": "GET",
    "scheme": "http",
    "path": "/page-5",
    "raw_path": b"/page-5",
    "query_string": b"",
    "root_path": "",
    "client": ("127.0.0.1", 50000),
    "server": ("127.0.0.1", 8000),
    "headers": [
        (b"host", b"127.0.0.1:8000"),
        (b"user-agent", b"Mozilla/5.0 (X11; Linux x86_64) Firefox/130.0"),
        (b"accept", b"text/html,application/xhtml+xml"),
        (b"accept-language", b"en-GB,en;q=0.8"),
        (b"accept-encoding", b"gzip, deflate, br"),
    ],
}


async def one(app: ASGIApp) -> None:
    done = asyncio.Event()
    size = 0
    asked = False

    async def receive() -> Message:
        nonlocal asked
        if asked:
            await done.wait()
            return {"type": "http.disconnect"}
        asked = True
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        nonlocal size
        if message["type"] == "http.response.start":
            assert message["status"] == 200, message
        elif message["type"] == "http.response.body":
            size += len(message.get("body", b""))
            if not message.get("more_body", False):
                done.set()

    await app(dict(SCOPE), receive, send)
    assert size == 3 * len(CHUNK), size


async def block(app: ASGIApp, requests: int) -> float:
    start = time.process_time()
    for _ in range(requests):
        await one(app)
    return (time.process_time() - start) / requests * 1e6


async def main(requests: int, blocks: int) -> None:
    apps = {
        "renderer alone": renderer(),
        "gateway, direct": gateway(direct=True),
        "gateway, httpx": gateway(direct=False),
    }
    for app in apps.values():
        await block(app, 200)  # warm-up
    results: dict[str, list[float]] = {name: [] for name in apps}
    for _ in range(blocks):
        for name, app in apps.items():
            results[name].append(await block(app, requests))
    alone = min(results["renderer alone"])
    for name, values in results.items():
        least = min(values)
        print(f"{name:15} {least:6.0f} µs/request (blocks: {', '.join(f'{v:.0f}' for v in values)})", end="")
        print("" if name == "renderer alone" else f"; the hop adds {least - alone:.0f} µs")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--blocks", type=int, default=5)
    args = parser.parse_args()
    asyncio.run(main(args.requests, args.blocks))
