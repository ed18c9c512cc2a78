"""Per-call CPU of HTTP clients on the renderer's hot path: N pages × 5 concurrent GETs to the bench stand-in.

    .venv/bin/python -m uvicorn --app-dir bench/site/backend app:app --port 18931 &   # the stand-in
    taskset -c 0 .venv/bin/python bench/clients.py httpx 64          # client, pages in flight
    taskset -c 0 .venv/bin/python bench/clients.py aiohttp 64
    taskset -c 0 .venv/bin/python bench/clients.py httpx-aiohttp 64  # needs `pip install httpx-aiohttp`

Prints pages/s and the process's CPU per call. This is what chose aiohttp for network upstreams
(oberon/client/transport.py; numbers in bench/README.md).
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import httpx
import uvloop

URL = "http://127.0.0.1:18931"
PAGES = 2000
LIMIT = 32  # connections, as the resilient client's default


async def run(name: str, call: Callable[[Any, str], Awaitable[Any]], client: Any, in_flight: int) -> None:
    gate = asyncio.Semaphore(in_flight)

    async def page() -> None:
        async with gate:
            await asyncio.gather(*(call(client, f"/data/{n}") for n in range(1, 6)))

    for _ in range(50):
        await page()  # connections open, code paths warm
    cpu, wall = time.process_time(), time.perf_counter()
    await asyncio.gather(*(page() for _ in range(PAGES)))
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    per_call = cpu / (PAGES * 5) * 1e6
    print(f"{name:<14} {in_flight:>3} pages in flight: {PAGES / wall:7.0f} pages/s, {per_call:6.0f} µs CPU/call")


async def httpx_get(client: httpx.AsyncClient, path: str) -> Any:
    async with client.stream("GET", path) as response:  # as the client did: the body read with a limit
        return json.loads(b"".join([chunk async for chunk in response.aiter_bytes()]))


async def aiohttp_get(session: aiohttp.ClientSession, path: str) -> Any:
    async with session.get(URL + path) as response:
        return json.loads(await response.read())


async def main(which: str, in_flight: int) -> None:
    limits = httpx.Limits(max_connections=LIMIT, max_keepalive_connections=LIMIT)
    if which == "httpx":
        async with httpx.AsyncClient(base_url=URL, limits=limits) as client:
            await run(which, httpx_get, client, in_flight)
    elif which == "httpx-aiohttp":
        from httpx_aiohttp import AiohttpTransport  # type: ignore[import-not-found]

        session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=LIMIT))
        async with httpx.AsyncClient(base_url=URL, transport=AiohttpTransport(client=session)) as client:
            await run(which, httpx_get, client, in_flight)
    elif which == "aiohttp":
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=LIMIT)) as session:
            await run(which, aiohttp_get, session, in_flight)
    else:
        raise SystemExit(f"unknown client {which!r}: httpx, httpx-aiohttp or aiohttp")


if __name__ == "__main__":
    uvloop.run(main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 64))
