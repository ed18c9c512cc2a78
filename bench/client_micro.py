"""CPU per upstream call of HTTP clients on the page's hot path: `python -m bench.client_micro [--seconds 5]`.

Issue 19: a page of target 1 makes five GETs to a BFF. This drives each client as pages would: `--pages` (64)
"pages" in flight, each making five concurrent GETs (`asyncio.gather`) of `/frag-N.json?p=<unique>` from the
peers' node fragment server (every answer new bytes, FRAGMENT_CHANGING=1). The client runs in its own
process pinned to core 0 on uvloop (uvicorn's loop), the fragment server on core 1; the figure is the client
process's CPU time (time.process_time: all its threads) over the run divided by the calls made. Runs are
interleaved (`--runs`), one line per run, then the median.

Clients: `aiohttp` (oberon's AiohttpTransport, pooled 256), `minimal` (a bare HTTP/1.1 keep-alive client
on asyncio.Protocol + httptools, below: the floor), `http1` (oberon's Http1Transport), and, when importable
(`--extra-path DIR` with them installed there, e.g. `pip install --target DIR aiosonic pyreqwest`),
`aiosonic` and `pyreqwest`.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httptools

from bench.checkout import ROOT, clean_environ
from bench.servers import LOAD_CPU, SERVER_CPU, pinned, process, wait_ready
from oberon.runtime.supervisor import free_port

FRAGMENT_SERVER = ROOT.parent / "shared" / "peers" / "common" / "fragment-server.js"
CLIENTS = ("aiohttp", "minimal", "http1", "aiosonic", "pyreqwest")
FIGURES = ("cpu_us_per_call", "calls_per_s", "p50_ms", "p99_ms")
Get = Callable[[str], Awaitable[bytes]]


class _MinimalConnection(asyncio.Protocol):
    """One keep-alive connection: a request written, its response parsed by httptools (no checks at all)."""

    def __init__(self) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self.body: list[bytes] = []
        self.done: asyncio.Future[bytes] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.parser.feed_data(data)

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        assert self.done is not None
        self.done.set_result(b"".join(self.body))

    def connection_lost(self, exc: Exception | None) -> None:
        if self.done is not None and not self.done.done():
            self.done.set_exception(ConnectionError("closed"))

    async def get(self, head: bytes) -> bytes:
        assert self.transport is not None
        self.body = []
        self.done = asyncio.get_running_loop().create_future()
        self.transport.write(head)
        return await self.done


def minimal_client(port: int) -> tuple[Get, Callable[[], Awaitable[None]]]:
    idle: list[_MinimalConnection] = []
    loop = asyncio.get_running_loop()

    async def get(path: str) -> bytes:
        if idle:
            connection = idle.pop()
        else:
            _, connection = await loop.create_connection(_MinimalConnection, "127.0.0.1", port)
        head = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nX-Oberon-Budget: 5000\r\n\r\n".encode("latin-1")
        body = await connection.get(head)
        idle.append(connection)
        return body

    async def close() -> None:
        for connection in idle:
            assert connection.transport is not None
            connection.transport.close()

    return get, close


def aiohttp_client(port: int) -> tuple[Get, Callable[[], Awaitable[None]]]:
    from oberon.client.transport import AiohttpTransport

    transport = AiohttpTransport("bff", f"http://127.0.0.1:{port}", max_connections=256)

    async def get(path: str) -> bytes:
        answer = await transport.send(
            "GET", path, headers={"X-Oberon-Budget": "5000"}, body=None, timeout=5.0, max_body=1 << 20
        )
        return answer.body

    return get, transport.aclose


def http1_client(port: int) -> tuple[Get, Callable[[], Awaitable[None]]]:
    from oberon.client.http1 import Http1Transport

    transport = Http1Transport("bff", f"http://127.0.0.1:{port}", max_connections=256)

    async def get(path: str) -> bytes:
        answer = await transport.send(
            "GET", path, headers={"X-Oberon-Budget": "5000"}, body=None, timeout=5.0, max_body=1 << 20
        )
        return answer.body

    return get, transport.aclose


def aiosonic_client(port: int) -> tuple[Get, Callable[[], Awaitable[None]]]:
    import aiosonic  # type: ignore[import-not-found,unused-ignore]
    from aiosonic.connectors import TCPConnector  # type: ignore[import-not-found,unused-ignore]
    from aiosonic.pools import PoolConfig  # type: ignore[import-not-found,unused-ignore]

    client = aiosonic.HTTPClient(TCPConnector(pool_configs={":default": PoolConfig(size=256)}))
    base = f"http://127.0.0.1:{port}"

    async def get(path: str) -> bytes:
        response = await client.get(base + path, headers={"X-Oberon-Budget": "5000"})
        return await response.content()  # type: ignore[no-any-return]

    async def close() -> None:
        await client.connector.cleanup()

    return get, close


def pyreqwest_client(port: int) -> tuple[Get, Callable[[], Awaitable[None]]]:
    from pyreqwest.client import ClientBuilder  # type: ignore[import-not-found,unused-ignore]

    client = ClientBuilder().base_url(f"http://127.0.0.1:{port}").max_connections(256).build()

    async def get(path: str) -> bytes:
        response = await client.get(path).header("X-Oberon-Budget", "5000").build().send()
        return bytes(await response.bytes())

    return get, client.close  # type: ignore[no-any-return,unused-ignore]


async def drive(name: str, port: int, *, pages: int, seconds: float, warmup: float) -> dict[str, Any]:
    """`pages` workers each fetching five fragments at once, again and again; CPU, calls and latencies measured."""
    get, close = globals()[f"{name}_client"](port)
    ids = itertools.count()
    latencies: list[float] = []
    calls = 0
    measuring = False
    stop = False

    async def timed(path: str) -> None:
        nonlocal calls
        start = time.perf_counter()
        body = await get(path)
        if measuring:
            latencies.append(time.perf_counter() - start)
            calls += 1
        if b"html" not in body:
            raise SystemExit(f"{name}: not a fragment: {body[:80]!r}")

    async def page() -> None:
        while not stop:
            unique = next(ids)
            await asyncio.gather(*(timed(f"/frag-{n}.json?p={unique}") for n in range(1, 6)))

    workers = [asyncio.create_task(page()) for _ in range(pages)]
    await asyncio.sleep(warmup)
    measuring = True
    cpu, wall = time.process_time(), time.perf_counter()
    await asyncio.sleep(seconds)
    measuring = False
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    stop = True
    await asyncio.gather(*workers)
    await close()
    latencies.sort()
    return {
        "client": name,
        "calls": calls,
        "cpu_us_per_call": cpu / calls * 1e6,
        "calls_per_s": calls / wall,
        "p50_ms": latencies[len(latencies) // 2] * 1e3,
        "p99_ms": latencies[int(len(latencies) * 0.99)] * 1e3,
    }


def child(args: argparse.Namespace) -> None:
    import uvloop

    result = uvloop.run(drive(args.child, args.port, pages=args.pages, seconds=args.seconds, warmup=args.warmup))
    print(json.dumps(result))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", default="aiohttp,minimal,http1,aiosonic,pyreqwest")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--pages", type=int, default=64)
    parser.add_argument("--extra-path", default="", help="a directory prepended to the clients' PYTHONPATH")
    parser.add_argument("--child", choices=CLIENTS, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    clients = [name for name in args.clients.split(",") if name]
    port = free_port()
    server_env = clean_environ(HOST="127.0.0.1", PORT=str(port), FRAGMENT_DELAY_MS="0", FRAGMENT_CHANGING="1")
    path = os.pathsep.join(p for p in (args.extra_path, str(ROOT)) if p)
    results: dict[str, list[dict[str, Any]]] = {name: [] for name in clients}
    with tempfile.TemporaryDirectory() as logs:
        log = Path(logs) / "fragments.log"
        with process(pinned(LOAD_CPU, ["node", str(FRAGMENT_SERVER)]), env=server_env, log=log) as server:
            wait_ready(f"http://127.0.0.1:{port}/frag-1.json", server, log)
            for run, name in itertools.product(range(args.runs), clients):
                argv = [sys.executable, "-m", "bench.client_micro", "--child", name, "--port", str(port)]
                argv += ["--pages", str(args.pages), "--seconds", str(args.seconds), "--warmup", str(args.warmup)]
                done = subprocess.run(
                    pinned(SERVER_CPU, argv), env=clean_environ(PYTHONPATH=path), capture_output=True, text=True
                )
                if done.returncode != 0:
                    print(f"{name}: failed\n{done.stderr[-2000:]}", file=sys.stderr)
                    continue
                result = json.loads(done.stdout.strip().splitlines()[-1])
                results[name].append(result)
                print(f"run {run + 1} {line(name, [result])}", flush=True)
    print("\nmedian of runs:")
    for name, runs in results.items():
        if runs:
            print(line(name, runs))


def line(name: str, runs: list[dict[str, Any]]) -> str:
    """One client's figures, the median of its runs."""
    cpu, rate, p50, p99 = (statistics.median(r[key] for r in runs) for key in FIGURES)
    return f"{name:10} {cpu:7.1f} µs CPU/call {rate:8.0f} calls/s  p50 {p50:6.2f} ms  p99 {p99:6.2f} ms"


if __name__ == "__main__":
    main()
