"""The floor under `bench.pipeline_cpu`: the same page made with nothing but `asyncio.gather` and Jinja.

Target 1's page (five sources, each answer new bytes) over the same stand-in transport as `bench.pipeline_cpu`
(two loop turns, then a fresh JSON body): per page the five calls gathered, each answer decoded with orjson, the five
fragment templates (`{{ state.frag_N.html|safe }}`, autoescaping on) rendered and joined into a document. No client
policy (breakers, bulkheads, timeouts, coalescing), no store, no boundaries, spans, metrics or Server-Timing: what
`bench.pipeline_cpu` measures above this is what those add. Process CPU over the measured pages, 48 in flight.

    taskset -c 0 python -m bench.minimal_page [--pages 3200] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import random
import time
from typing import Any

import jinja2
import orjson

HTML = "<div>" + "x" * 1000 + "</div>"
SOURCES = range(1, 6)
IN_FLIGHT = 48


class Instant:
    """Answers at once (two loop turns, as `bench.pipeline_cpu`'s), every answer new bytes."""

    answered = 0

    async def send(self, path: str) -> bytes:
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        self.answered += 1
        return json.dumps({"html": HTML, "n": self.answered}).encode()


class MinimalPage:
    def __init__(self) -> None:
        environment = jinja2.Environment(autoescape=True)
        self.templates = [environment.from_string(f"{{{{ state.frag_{n}.html|safe }}}}") for n in SOURCES]
        self.transport = Instant()

    async def fetch(self, n: int, page_id: int) -> Any:
        return orjson.loads(await self.transport.send(f"/frag-{n}.json?p={page_id}"))

    async def render(self, page_id: int) -> str:
        data = await asyncio.gather(*(self.fetch(n, page_id) for n in SOURCES))
        state = {f"frag_{n}": value for n, value in zip(SOURCES, data, strict=True)}
        body = "".join(template.render(state=state) for template in self.templates)
        return f"<!doctype html><html><head><title>page-5</title></head><body>{body}</body></html>"


async def measure(pages: int) -> float:
    """µs of process CPU a page, `pages` pages after a warm-up, `IN_FLIGHT` at a time."""
    page = MinimalPage()
    gc.collect()
    gc.freeze()
    gc.set_threshold(100_000, *gc.get_threshold()[1:])  # as `oberon serve` sets it (oberon/runtime/cli.py)

    async def client(count: int) -> None:
        for _ in range(count):
            await page.render(random.randrange(10**9))

    await asyncio.gather(*(client(50) for _ in range(IN_FLIGHT)))  # warm-up
    each = pages // IN_FLIGHT
    started = time.process_time()
    await asyncio.gather(*(client(each) for _ in range(IN_FLIGHT)))
    return (time.process_time() - started) / (each * IN_FLIGHT) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--pages", type=int, default=3200)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    figures = [asyncio.run(measure(args.pages)) for _ in range(args.rounds)]
    print(f"minimal page: {', '.join(f'{figure:.0f}' for figure in figures)} µs of CPU a page")


if __name__ == "__main__":
    main()
