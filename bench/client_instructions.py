"""Instructions a page of upstream calls through the lean HTTP client, which other work on the machine does not
move: `python -m bench.client_instructions --checkout DIR [--checkout DIR]...` (needs valgrind).

`bench.pipeline_instructions` gives Upstream an instant transport; this covers what it leaves out:
`Upstream.get_fresh_json` over `Http1Transport` against an in-process asyncio server (same loop, same process)
that answers every request at once with new bytes (~1 KB of JSON). A page is five calls (`/frag-N.json?p=<page>`,
the declared template as endpoint, a request id and a traceparent header), 48 pages in flight. Each checkout's
child runs under `valgrind --tool=cachegrind --cache-sim=no` for 960 pages and for 96; the difference over
864 pages leaves start-up out. The server's own work is counted too (the same in every checkout). `--loop`:
uvloop (the default, as the renderer runs) or asyncio's own loop (whose Python-level callbacks then dominate).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from bench.pipeline_instructions import instructions

SHORT, LONG = 96, 960

CHILD = """
import asyncio, json, sys
import uvloop
from oberon.client.upstream import Upstream

PAGES, IN_FLIGHT = int(sys.argv[1]), 48
HTML = "<div>" + "x" * 1000 + "</div>"
TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


class Server(asyncio.Protocol):  # answers every request at once, every answer new bytes
    answered = 0

    def connection_made(self, transport):
        self.transport, self.buffer = transport, b""

    def data_received(self, data):
        self.buffer += data
        while b"\\r\\n\\r\\n" in self.buffer:
            _, self.buffer = self.buffer.split(b"\\r\\n\\r\\n", 1)
            Server.answered += 1
            body = json.dumps({"html": HTML, "n": Server.answered}).encode()
            self.transport.write(b"HTTP/1.1 200 OK\\r\\nContent-Type: application/json\\r\\n"
                                 b"Cache-Control: no-store\\r\\n"
                                 b"Content-Length: %d\\r\\n\\r\\n%s" % (len(body), body))


async def main():
    loop = asyncio.get_running_loop()
    server = await loop.create_server(Server, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    upstream = Upstream.create("frags", f"http://127.0.0.1:{port}", observers=[lambda record: None])
    ids = iter(range(10**9))

    async def client(pages):
        for _ in range(pages):
            page = next(ids)
            headers = {"X-Oberon-Request-Id": str(page), "traceparent": TRACEPARENT}
            calls = (upstream.get_fresh_json(f"/frag-{k}.json?p={page}", headers=headers,
                                             endpoint=f"/frag-{k}.json", timeout=600.0) for k in range(5))
            await asyncio.gather(*calls)

    await asyncio.gather(*(client(3) for _ in range(IN_FLIGHT)))
    await asyncio.gather(*(client(PAGES // IN_FLIGHT) for _ in range(IN_FLIGHT)))
    await upstream.aclose()
    server.close()

if sys.argv[2] == "uvloop":
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(main())
else:
    asyncio.run(main())
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--checkout", type=Path, action="append", required=True, help="code to measure (repeatable)")
    parser.add_argument(
        "--loop", choices=("uvloop", "asyncio"), default="uvloop", help="the event loop (the renderer runs uvloop)"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        child = Path(folder) / "child.py"
        child.write_text(CHILD)
        for checkout in args.checkout:
            short = instructions(checkout.resolve(), child, Path(folder) / "short.out", str(SHORT), args.loop)
            long = instructions(checkout.resolve(), child, Path(folder) / "long.out", str(LONG), args.loop)
            print(f"{checkout}: {(long - short) / (LONG - SHORT) / 1e6:.3f} M instructions a page", flush=True)


if __name__ == "__main__":
    main()
