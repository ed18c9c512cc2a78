"""Instructions a page of the renderer's whole way in and out: `python -m bench.serve_instructions [--checkout DIR]...`.

What `bench.pipeline_instructions` leaves out: the HTTP server and the ASGI layers around the page. The renderer is
built as `oberon serve renderer` builds it (`Services.serve`: `HideInternal`, the follower, `Admission`,
`Instrumented`, `Closing`, Starlette's stack, `RendererApp`), JSON access logs on (to /dev/null), metrics and the
Server-Timing header on; each request is fed as bytes to its `EntranceProtocol` (uvicorn's httptools protocol, the
admission's shedding check included) over a transport that keeps what is written, so the server's parsing and
`RequestResponseCycle.send` count too. The fragment upstream answers at once with new bytes every time (as
`bench.pipeline_cpu`'s): no socket, no fragment server. Target 1's page (`/page-5/{id}`, a new id every page).

Each checkout runs in its own subprocess under `valgrind --tool=cachegrind --cache-sim=no` (instructions do not move
with the machine's load); the figure is (instructions of a run with N pages − one with N/4 pages) / (3N/4), so
start-up cancels out. `--direct` runs the same child without valgrind and prints µs of CPU a page instead.
The child runs on uvloop, as `oberon serve` does (uvicorn's loop factory picks it); `--loop asyncio` runs it on
asyncio's own loop, as every figure before session 10 did (that loop's Python frames then count as the page's).
`--cache-sim` counts, beside the instructions, the misses cachegrind simulates (L1, and a last level of 1 MB as
this machine's L2 of a core): caches that keep what pages make, and drop it later, cost misses that instruction
counts leave out (issue 19, session 15).
The child's string hashes are seeded alike (`PYTHONHASHSEED=0`): with a random seed each run lays out every dict
and set differently, and the same code counted up to ±0.8 % apart from run to run (issue 19, session 17: 2,489 k
to 2,527 k instructions a page in `oberon up`); with a fixed seed, 0.1 % apart (seeds 0 and 1).
`--topology up` builds the process as `oberon up` does instead (`build_embedded`: the gateway in front, calling the
renderer in the same process), so the two side by side give the embedded gateway's cost (issue 19, target 3).
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.checkout import ROOT
from bench.pipeline_cpu import INSTANT

SITE = ROOT / "bench" / "peers" / "oberon-unique-site"

CHILD = (
    r"""
import asyncio, gc, json, logging, os, random, shutil, sys, tempfile, time
from pathlib import Path
from uvicorn.server import ServerState
from oberon import logs
from oberon.client.transport import Answer
from oberon.ops.observability import Observability
from oberon.pipeline.registry import load_registry
from oberon.pipeline.rendering import create_environment
from oberon.runtime.cli import _config
from oberon.runtime.server import entrance_protocol
from oberon.runtime.settings import Settings
from oberon.site import Site
from oberon.runtime.topology import Services, build_embedded

SITE, PAGES, IN_FLIGHT, BUILD = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), Path(sys.argv[4])
TOPOLOGY, LOOP = sys.argv[5], sys.argv[6]
HTML = "<div>" + "x" * 1000 + "</div>"
# Under valgrind a page takes 30-50 times as long: with the site's own budgets its calls timed out into fallbacks,
# the degradation controller saw a slow p95 and pages streamed (session 10: most fragments were fallbacks, and the
# figure moved with the machine's load). Budgets no page reaches keep every page on the path it takes at full speed;
# `built_site` raises the components' own `timeout_ms` alike.
CLOCKLESS = {"OBERON_UPSTREAM_TIMEOUT": "60", "OBERON_DEGRADATION_P95_MS": "600000", "OBERON_STREAM_AFTER_MS": "60000"}
FALLBACKS = STREAMED = 0  # answers that took another path than a page at full speed does (see CLOCKLESS)

"""
    + INSTANT
    + r"""
class Wire(asyncio.Transport):  # what the server writes, kept; the end of a chunked answer wakes the client
    def __init__(self):
        super().__init__()
        self.done = asyncio.Event()
        self.status = b""
        self.length = None  # of a body with a content-length, the bytes still to come
    def write(self, data):
        global FALLBACKS, STREAMED
        FALLBACKS += data.count(b'data-oberon-outcome="fallback"')
        if not self.status:
            self.status = data[:12]
            head, _, data = data.partition(b"\r\n\r\n")
            for line in head.lower().split(b"\r\n"):
                if line.startswith(b"content-length:"):
                    self.length = int(line[15:])
        if self.length is not None:
            self.length -= len(data)
            if self.length <= 0:
                self.done.set()
        elif data.endswith(b"0\r\n\r\n"):
            STREAMED += 1
            self.done.set()
    def is_closing(self):
        return False
    def get_extra_info(self, name, default=None):
        return {"sockname": ("127.0.0.1", 8000), "peername": ("127.0.0.1", 40000)}.get(name, default)
    def pause_reading(self):
        pass
    def resume_reading(self):
        pass
    def close(self):
        pass
    def set_write_buffer_limits(self, *a, **k):
        pass

async def main():
    os.chdir(SITE)  # the asset build is found where `oberon build` put it
    logs.configure("json", stream=open(os.devnull, "w"))
    settings = Settings.from_environ(CLOCKLESS)
    site = Site.load(SITE / "oberon.toml")
    environment = create_environment()
    registry = load_registry(site.components, environment=environment)
    if TOPOLOGY == "up":  # `oberon up`: the gateway in front of the renderer, in one process
        embedded = build_embedded(site, settings, registry=registry, environment=environment,
                                  observability=Observability())
        public, admission, clients = embedded.app, embedded.admission, [embedded.renderer.upstreams]
    else:
        services = Services(site, settings, registry=registry, environment=environment,
                            observability=Observability())
        listeners = services.serve("renderer")
        public, admission, clients = listeners.public, listeners.admission, services._upstreams
    for upstreams in clients:
        for upstream in upstreams._upstreams.values():
            upstream.transport = Instant()
    protocol_class = entrance_protocol(header_timeout=10.0, max_header_bytes=8192, admission=admission)
    # As `oberon serve` configures uvicorn (its own access log off, no proxy headers, no server header).
    config = _config(public, host="127.0.0.1", port=0, lifespan="off", http=protocol_class,
                     limit_concurrency=settings.max_connections)
    config.load()
    state = ServerState()
    loop = asyncio.get_running_loop()
    gc.collect()
    gc.freeze()
    from oberon.runtime.cli import GC_YOUNG_THRESHOLD
    gc.set_threshold(GC_YOUNG_THRESHOLD, *gc.get_threshold()[1:])

    async def client(pages):  # one keep-alive connection, as wrk's
        protocol = protocol_class(config=config, server_state=state, app_state={}, _loop=loop)
        wire = Wire()
        protocol.connection_made(wire)
        for n in range(pages):
            wire.__init__()
            request = b"GET /page-5/%d HTTP/1.1\r\nhost: 127.0.0.1\r\nuser-agent: wrk\r\n\r\n" % random.randrange(10**9)
            protocol.data_received(request)
            await wire.done.wait()
            assert wire.status == b"HTTP/1.1 200", wire.status
        protocol.connection_lost(None)
    await asyncio.gather(*(client(20) for _ in range(IN_FLIGHT)))  # warm-up
    each = PAGES // IN_FLIGHT
    started = time.process_time()
    await asyncio.gather(*(client(each) for _ in range(IN_FLIGHT)))
    if FALLBACKS or STREAMED:
        sys.exit(f"not a page at full speed: {FALLBACKS} fallbacks, {STREAMED} streamed answers")
    print((time.process_time() - started) / (each * IN_FLIGHT) * 1e6)

if LOOP == "uvloop":  # what `oberon serve` runs on: uvicorn's loop factory, which picks uvloop
    import uvloop
    uvloop.run(main())
else:
    asyncio.run(main())
"""
)


# `--cache-sim`: cachegrind's two levels, the last one modelled as this machine's 1 MB L2 of a core (its L3 is shared
# with other machines' guests): what a change does to the misses that instruction counts do not see.
CACHE_SIM = ["--cache-sim=yes", "--LL=1048576,16,64"]


def run(checkout: Path, build: Path, pages: int, in_flight: int, *, valgrind: bool, topology: str, loop: str) -> float:
    if not valgrind:
        return float(_child(checkout, build, pages, in_flight, topology, loop, []).strip())
    return float(events(checkout, build, pages, in_flight, topology=topology, loop=loop, cache_sim=False)["Ir"])


def events(
    checkout: Path, build: Path, pages: int, in_flight: int, *, topology: str, loop: str, cache_sim: bool
) -> dict[str, int]:
    """cachegrind's totals of a run (`Ir`; with `cache_sim`, the misses at each level too)."""
    with tempfile.TemporaryDirectory() as scratch:
        out = Path(scratch) / "cachegrind.out"
        flags = CACHE_SIM if cache_sim else ["--cache-sim=no"]
        _child(checkout, build, pages, in_flight, topology, loop, ["valgrind", "--tool=cachegrind", *flags,
               f"--cachegrind-out-file={out}"])  # fmt: skip
        text = out.read_text()
        names = re.search(r"^events:\s+(.*)$", text, re.MULTILINE)
        totals = re.search(r"^summary:\s+(.*)$", text, re.MULTILINE)
        assert names is not None and totals is not None
        return dict(zip(names.group(1).split(), map(int, totals.group(1).split()), strict=True))


def _child(
    checkout: Path, build: Path, pages: int, in_flight: int, topology: str, loop: str, wrapper: list[str]
) -> str:
    argv = [*wrapper, sys.executable, "-c", CHILD, str(build), str(pages), str(in_flight), str(build), topology, loop]
    environ = {"PYTHONPATH": str(checkout), "PATH": "/usr/bin:/bin", "PYTHONHASHSEED": "0"}  # see the docstring
    done = subprocess.run(argv, env=environ, cwd=checkout, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"{checkout}: {done.stderr[-3000:]}")
    return done.stdout


def built_site(checkout: Path) -> Path:
    """A copy of the site with its assets built by `checkout`'s `oberon build`."""
    site = Path(tempfile.mkdtemp()) / "site"
    subprocess.run(["cp", "-r", str(SITE), str(site)], check=True)
    subprocess.run(["rm", "-rf", str(site / "build")], check=True)
    for manifest in site.glob("components/*/component.toml"):  # see CLOCKLESS
        manifest.write_text(re.sub(r"(?m)^timeout_ms = \d+$", "timeout_ms = 60000", manifest.read_text()))
    subprocess.run(
        [sys.executable, "-m", "oberon", "--site", str(site / "oberon.toml"), "build"],
        env={"PYTHONPATH": str(checkout), "PATH": "/usr/bin:/bin"}, cwd=checkout, check=True, capture_output=True,
    )  # fmt: skip
    return site


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--checkout", type=Path, action="append", help="code to measure (repeatable; interleaved)")
    parser.add_argument("--pages", type=int, default=1600)
    parser.add_argument("--in-flight", type=int, default=32)
    parser.add_argument("--direct", action="store_true", help="µs of CPU a page, without valgrind")
    parser.add_argument(
        "--cache-sim", action="store_true",
        help="instructions and simulated cache misses a page (L1, and a 1 MB last level); use --pages beyond the "
        "stale copies' fill (16 MB: ~2,500 pages) to count a full cache's evictions",
    )  # fmt: skip
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument(
        "--topology", choices=["renderer", "up"], action="append",
        help="`oberon serve renderer`, or `oberon up` (the gateway in front, one process); repeatable: interleaved",
    )  # fmt: skip
    parser.add_argument(
        "--loop", choices=["uvloop", "asyncio"], default="uvloop",
        help="the event loop: uvloop, as `oberon serve` runs (default), or asyncio's own (figures before session 10)",
    )  # fmt: skip
    args = parser.parse_args()
    checkouts = [path.resolve() for path in args.checkout or [ROOT]]
    sites = {checkout: built_site(checkout) for checkout in checkouts}
    topologies = args.topology or ["renderer"]
    for _ in range(args.rounds):
        for checkout in checkouts:
            for topology in topologies:
                site, label = sites[checkout], f"{checkout} {topology}"
                if args.cache_sim:
                    print(f"{label}: {cache_figures(checkout, site, args.pages, args.in_flight, topology, args.loop)}")
                    continue
                if args.direct:
                    figure = run(
                        checkout, site, args.pages, args.in_flight, valgrind=False, topology=topology, loop=args.loop
                    )
                    print(f"{label}: {figure:.0f} µs of CPU a page", flush=True)
                    continue
                many = run(checkout, site, args.pages, args.in_flight, valgrind=True, topology=topology, loop=args.loop)
                few = run(
                    checkout, site, args.pages // 4, args.in_flight, valgrind=True, topology=topology, loop=args.loop
                )
                pages = (args.pages // args.in_flight - args.pages // 4 // args.in_flight) * args.in_flight
                per_page = (many - few) / pages
                print(f"{label}: {per_page:,.0f} instructions a page", flush=True)


def cache_figures(checkout: Path, site: Path, pages: int, in_flight: int, topology: str, loop: str) -> str:
    """Instructions and misses a page: (a run of `pages` − one of half as many) / the pages between."""
    many = events(checkout, site, pages, in_flight, topology=topology, loop=loop, cache_sim=True)
    few = events(checkout, site, pages // 2, in_flight, topology=topology, loop=loop, cache_sim=True)
    between = (pages // in_flight - pages // 2 // in_flight) * in_flight

    def per_page(*names: str) -> float:
        return sum(many[name] - few[name] for name in names) / between

    return (
        f"{per_page('Ir'):,.0f} instructions, {per_page('D1mr', 'D1mw'):,.0f} L1 data misses, "
        f"{per_page('DLmr', 'DLmw'):,.0f} last-level data misses a page"
    )


if __name__ == "__main__":
    main()
