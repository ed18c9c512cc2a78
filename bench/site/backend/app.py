"""The benchmark's stand-in BFF: `GET /data/N` answers about 1 KB of JSON after a fixed delay.

`GET /slow/N` answers the same body after its own, longer delay (the slow-component scenario's one
slow data source).

A bare ASGI app (no framework) so that its own cost stays small beside the renderer's. Read at start:
`BENCH_DELAY_MS` (default 0, for `/data/N`), `BENCH_SLOW_DELAY_MS` (default 500, for `/slow/N`) and
`BENCH_CACHE_CONTROL` (default `no-store`). With `BENCH_CHANGING=1` every answer's bytes differ from
the last (a `"served"` counter ends the object), so a client cannot reuse anything it decoded before.

    uvicorn --app-dir bench/site/backend app:app --port 18931
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
from typing import Any

DELAY = float(os.environ.get("BENCH_DELAY_MS", "0")) / 1000
SLOW_DELAY = float(os.environ.get("BENCH_SLOW_DELAY_MS", "500")) / 1000
CACHE_CONTROL = os.environ.get("BENCH_CACHE_CONTROL", "no-store").encode()
CHANGING = os.environ.get("BENCH_CHANGING", "") == "1"


def payload(source: str) -> bytes:
    """About 1 KB: twelve items, as a listing endpoint would return them."""
    items = [{"id": n, "name": f"Item {source}-{n}: a reasonably long name", "price": f"{n * 7}.50"} for n in range(12)]
    return json.dumps({"source": source, "items": items}, separators=(",", ":")).encode()


BODIES = {str(n): payload(str(n)) for n in range(1, 6)}
served = itertools.count()


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
        return
    prefix, _, source = scope["path"].rpartition("/")
    body = BODIES.get(source) if prefix in ("/data", "/slow") else None
    delay = SLOW_DELAY if prefix == "/slow" else DELAY
    if delay:
        await asyncio.sleep(delay)
    if body is None:
        body, status = b'{"error":"not found"}', 404
    else:
        status = 200
        if CHANGING:
            body = b'%s,"served":%d}' % (body[:-1], next(served))
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"cache-control", CACHE_CONTROL),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
