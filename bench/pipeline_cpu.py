"""CPU per page of the page pipeline and the resilient client alone: `python -m bench.pipeline_cpu [--checkout DIR]...`.

No HTTP server and no network: target 1's page (`bench/peers/oberon-unique-site`, five components each with a
source of its own, a new id every page) rendered by `PageRenderer` over an `Upstream` whose transport answers
at once (two loop turns, as a socket would take) with new bytes every time, so no decoded answer or render is
reused between pages. What is left is Oberon's own per-page work: tasks, the store,
the loaders, the client's policy, rendering, the document. Each checkout runs in a subprocess pinned to core 0
(its own `oberon` imported), checkouts interleaved round by round; process CPU over the measured pages.
The observers count (a list keeping every record grows the heap each full collection scans, ~150 µs a page of
collector time here by the end), and the collector is set as `oberon serve` sets it once built.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
from pathlib import Path

from bench.checkout import ROOT

SITE = ROOT / "bench" / "peers" / "oberon-unique-site"

# The upstream both in-process children answer through (`bench.serve_instructions` uses it too): `HTML`, `asyncio`,
# `json` and `Answer` are the child's own names.
INSTANT = r"""
class Instant:  # answers at once, every answer new bytes (a counter ends it): nothing decoded or rendered is reused
    answered = 0
    # `json.dumps({"html": HTML, "n": n}).encode()`'s bytes, its constant part encoded once: dumping the body on every
    # call was ~290 k instructions of a page's count, the stand-in's work, not Oberon's (issue 19, session 18).
    start = json.dumps({"html": HTML, "n": 0}).encode()[:-2]
    async def send(self, method, path, *, headers, body, timeout, max_body):
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        Instant.answered += 1
        return Answer(200, "application/json", None, b"%s%d}" % (Instant.start, Instant.answered))
    async def aclose(self):
        pass
"""

# Run in the checkout's own interpreter path, so an older checkout (without this file) can be measured too.
CHILD = (
    r"""
import asyncio, gc, json, logging, random, sys, tempfile, time
from pathlib import Path
from oberon.client.transport import Answer
from oberon.client.upstream import Upstream, Upstreams
from oberon.pipeline.assets import Assets, build_assets
from oberon.pipeline.cache_policy import CachePolicy
from oberon.pipeline.page import PageRenderer
from oberon.pipeline.page_cache import PageCache
from oberon.pipeline.page_types import RequestContext
from oberon.pipeline.registry import load_registry
from oberon.pipeline.rendering import create_environment

logging.disable(logging.WARNING)
SITE, PAGES, IN_FLIGHT = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
HTML = "<div>" + "x" * 1000 + "</div>"

"""
    + INSTANT
    + r"""
async def main():
    environment = create_environment()
    registry = load_registry([SITE / "components"], environment=environment)
    assets = Assets(build_assets(registry, Path(tempfile.mkdtemp()) / "assets"))
    counted = {"calls": 0, "pages": 0}
    def count_call(_):
        counted["calls"] += 1
    def count_page(_):
        counted["pages"] += 1
    upstreams = Upstreams({"frags": Upstream("frags", transport=Instant(), observers=[count_call])})
    renderer = PageRenderer(registry=registry, upstreams=upstreams, environment=environment, policy=CachePolicy(),
                            assets=assets, observers=[count_page], page_cache=PageCache(), stream_after=0.010)
    app = registry.get("page-5")
    # As `oberon serve` does once it is built (oberon/runtime/cli.py): what lives as long as the process is
    # frozen out of the collector's scans, and the young generation is collected as `oberon serve` sets it.
    gc.collect()
    gc.freeze()
    from oberon.runtime.cli import GC_YOUNG_THRESHOLD
    gc.set_threshold(GC_YOUNG_THRESHOLD, *gc.get_threshold()[1:])
    async def client(pages):
        for n in range(pages):
            page = await renderer.render(app, params={"id": random.randrange(10**9)},
                                         context=RequestContext(request_id=str(n)))
            if page.rest is not None:
                async for _ in page.rest:
                    pass
    await asyncio.gather(*(client(50) for _ in range(IN_FLIGHT)))  # warm-up
    each = PAGES // IN_FLIGHT
    started = time.process_time()
    await asyncio.gather(*(client(each) for _ in range(IN_FLIGHT)))
    print((time.process_time() - started) / (each * IN_FLIGHT) * 1e6)

asyncio.run(main())
"""
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--checkout", type=Path, action="append", help="code to measure (repeatable; interleaved)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--pages", type=int, default=6400)
    parser.add_argument("--in-flight", type=int, default=48)
    args = parser.parse_args()
    checkouts = [path.resolve() for path in args.checkout or [ROOT]]
    figures: dict[Path, list[float]] = {checkout: [] for checkout in checkouts}
    for _ in range(args.rounds):
        for checkout in checkouts:
            argv = ["taskset", "-c", "0", sys.executable, "-c", CHILD, str(SITE), str(args.pages), str(args.in_flight)]
            done = subprocess.run(argv, env={"PYTHONPATH": str(checkout), "PATH": "/usr/bin:/bin"}, cwd=checkout,
                                  capture_output=True, text=True)  # fmt: skip
            if done.returncode:
                raise SystemExit(f"{checkout}: {done.stderr[-2000:]}")
            figures[checkout].append(float(done.stdout.strip()))
            print(f"{checkout}: {figures[checkout][-1]:.0f} µs of CPU per page", flush=True)
    for checkout, values in figures.items():
        runs = ", ".join(f"{value:.0f}" for value in values)
        print(f"{checkout}: median {statistics.median(values):.0f}, best {min(values):.0f} µs/page ({runs})")


if __name__ == "__main__":
    main()
