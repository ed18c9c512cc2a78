"""Server CPU per page of the peers' page-5, and the page's weight: `python -m bench.page_cpu [--runs 3]`.

CPU per page is far steadier than throughput on a shared machine: the renderer runs pinned to core 0, the
peers' fragment server (node, every answer new bytes) and wrk on core 1; the renderer's CPU time
(/proc/PID/schedstat) over a wrk run, divided by the pages wrk got, is the figure. The page is issue 19's
target 1 variant (`bench/peers/oberon-unique-site`): wrk asks for `/page-5/<random>` and the id reaches
every source's path, so nothing one page fetched, decoded or rendered serves another. `--page given` measures
the harness's page-5 as given instead (`../shared/peers/oberon-site`, one URL, the same bytes every answer: pages
in flight together share calls, decoded answers and renders). The page's size is set beside the peers' own page
(fragments + head + tail).

`--server` says what serves the page (repeatable, interleaved with the checkouts): `renderer` (`oberon serve
renderer`), `up` (`oberon up`: the gateway in front of the renderer, one process) or `granian` (the renderer's app
under granian, `bench/layers_granian.py`: 1 worker, 1 runtime thread; `--granian-path` adds where granian is
installed). CPU is counted over every thread of every process the server runs (granian's Rust threads, its worker).
`--gc` also counts the server's garbage collections by generation, with their pauses (`bench/gc_probe`).
`--waits` counts how a streamed page's app waits for its children (`bench/wait_probe`; one probe at a time).

Needs ../shared/peers (relative to the project root) and node, wrk, taskset on the path.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from bench.checkout import ROOT, clean_environ
from bench.procfs import process_tree
from bench.servers import LOAD_CPU, SERVER_CPU, pinned, process, wait_ready
from oberon.runtime.supervisor import free_port

PEERS = ROOT.parent / "shared" / "peers"
UNIQUE_SITE = ROOT / "bench" / "peers" / "oberon-unique-site"
RANDOM_PAGES = ROOT / "bench" / "peers" / "random_pages.lua"
# What `--gc` and `--waits` put first on the server's path (a `sitecustomize`), and where each is told to write.
PROBES = {"gc": (ROOT / "bench" / "gc_probe", "GCPROBE_OUT"), "waits": (ROOT / "bench" / "wait_probe", "WAITPROBE_OUT")}
SERVERS = ("renderer", "up", "granian")
GIVEN_SITE = PEERS / "oberon-site"
PAGES = {"unique": (UNIQUE_SITE, "/page-5/1", True), "given": (GIVEN_SITE, "/page-5", False)}  # site, path, changing


def tree_cpu_seconds(pid: int) -> float:
    """CPU time of `pid`, its descendants and all their threads (/proc/PID/task/TID/schedstat)."""
    total = 0
    for member in process_tree(pid):
        tasks = Path(f"/proc/{member}/task")
        try:
            for task in tasks.iterdir():
                total += int((task / "schedstat").read_text().split()[0])
        except (FileNotFoundError, ProcessLookupError):
            continue
    return total / 1e9


def server_argv(server: str, site: Path, port: int) -> list[str]:
    """The command that serves the site's page-5 on `port`."""
    if server == "granian":
        return [sys.executable, "-m", "granian", "--interface", "asgi", "--factory", "--host", "127.0.0.1",
                "--port", str(port), "--workers", "1", "--runtime-threads", "1", "--runtime-mode", "st",
                "--loop", "uvloop", "--log-level", "warning", "--no-access-log",
                "bench.layers_granian:renderer_app"]  # fmt: skip
    command = ["up"] if server == "up" else ["serve", "renderer"]
    return [sys.executable, "-m", "oberon", "--site", str(site), *command, "--host", "127.0.0.1", "--port", str(port)]


def page_weight(html: str) -> str:
    """The page's bytes against the peers' page (fragments + head + tail), and what else it is made of."""
    content = PEERS / "common" / "content"
    parts = ["page-head.html", "page-tail.html", *(f"frag-{n}.html" for n in range(1, 6))]
    reference = sum(len((content / name).read_bytes()) for name in parts)
    size = len(html.encode("utf-8"))
    state = re.search(r'<script type="application/json" id="oberon-state">.*?</script>', html, re.S)
    state_bytes = len(state.group(0).encode("utf-8")) if state else 0
    ratio = size / reference
    return f"document {size} B, fragments + head + tail {reference} B: {ratio:.3f} ×; state script {state_bytes} B"


def run_once(
    site: Path,
    fragments_port: int,
    *,
    page: str,
    checkout: Path,
    server_name: str,
    seconds: int,
    connections: int,
    log_dir: Path,
    renderer_env: dict[str, str],
    granian_path: str,
    probe: tuple[str, Path] | None = None,
    delay_ms: int = 0,
) -> tuple[float, float, str]:
    port = free_port()
    extra = [granian_path] if granian_path else []
    told: dict[str, str] = {}
    if probe is not None:  # (name, where it writes)
        folder, variable = PROBES[probe[0]]
        extra.append(str(folder))
        told[variable] = str(probe[1])
    path = os.pathsep.join([str(checkout), *extra])
    env = clean_environ(OBERON_SITE_FILE=str(site), PYTHONPATH=path, **told, **renderer_env)
    _, path, changing = PAGES[page]
    fragment_env = clean_environ(
        HOST="127.0.0.1",
        PORT=str(fragments_port),
        FRAGMENT_DELAY_MS=str(delay_ms),
        FRAGMENT_CHANGING="1" if changing else "0",
    )
    node = pinned(LOAD_CPU, ["node", str(PEERS / "common" / "fragment-server.js")])
    server = pinned(SERVER_CPU, server_argv(server_name, site, port))
    with (
        process(node, env=fragment_env, log=log_dir / "fragments.log") as fragments,
        process(server, env=env, log=log_dir / "renderer.log", cwd=checkout) as renderer,
    ):
        wait_ready(f"http://127.0.0.1:{fragments_port}/__stats", fragments, log_dir / "fragments.log")
        url = f"http://127.0.0.1:{port}{path}"
        wait_ready(url, renderer, log_dir / "renderer.log")
        html = httpx.get(url).text
        wrk = ["wrk", "-t1", f"-c{connections}", *(["-s", str(RANDOM_PAGES)] if changing else [])]
        subprocess.run(pinned(LOAD_CPU, [*wrk, "-d2s", url]), check=True, capture_output=True)  # warm-up
        time.sleep(1)  # the pages wrk left unread at its end are done (granian finishes them: they hold places)
        before = tree_cpu_seconds(renderer.pid)
        done = subprocess.run(
            pinned(LOAD_CPU, [*wrk, f"-d{seconds}s", url]), check=True, capture_output=True, text=True
        )
        spent = tree_cpu_seconds(renderer.pid) - before
    found = re.search(r"(\d+) requests in", done.stdout)
    assert found is not None, done.stdout
    if "Non-2xx" in done.stdout:
        raise SystemExit(f"errors under load:\n{done.stdout}")
    pages = int(found.group(1))
    return spent / pages * 1e6, pages / seconds, html


def collections(gc_out: Path, pages: int) -> str:
    """The server's collections by generation (count, total and longest pause, objects freed), per 1,000 pages served.

    The pages are the measured rate over the warm-up and the measure: the collections are counted over both."""
    pauses: dict[str, list[tuple[float, int]]] = json.loads(gc_out.read_text())
    described = []
    for generation, each in pauses.items():
        spent, freed = [ms for ms, _ in each], sum(objects for _, objects in each)
        described.append(
            f"gen {generation}: {len(each) * 1000 / pages:.1f} per 1,000 pages, "
            f"{sum(spent) * 1000 / pages:.0f} µs a page, longest {max(spent, default=0):.1f} ms, {freed} objects freed"
        )
    return "; ".join(described)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--page", choices=PAGES, default="unique", help="target 1's variant, or page-5 as given")
    parser.add_argument(
        "--checkout", type=Path, action="append", help="the code to measure (repeatable: runs interleaved)"
    )
    parser.add_argument(
        "--server", action="append", choices=SERVERS, help="what serves the page (repeatable: runs interleaved)"
    )
    parser.add_argument("--granian-path", default="", help="a site-packages folder holding granian")
    parser.add_argument("--renderer-env", action="append", default=[], metavar="NAME=VALUE")
    probes = parser.add_mutually_exclusive_group()  # each puts its own `sitecustomize` first on the server's path
    probes.add_argument("--gc", action="store_true", help="count the server's garbage collections and their pauses")
    probes.add_argument("--waits", action="store_true", help="count how a streamed page's app waits")
    parser.add_argument("--delay", type=int, default=0, help="ms the fragment server waits before each answer")
    args = parser.parse_args()
    probe_name = "gc" if args.gc else "waits" if args.waits else None
    renderer_env = dict(item.split("=", 1) for item in args.renderer_env)
    checkouts: list[Path] = [path.resolve() for path in args.checkout or [ROOT]]
    with tempfile.TemporaryDirectory(prefix="page-cpu-") as tmp:
        folder = Path(tmp)
        site = folder / "site"
        shutil.copytree(PAGES[args.page][0], site, ignore=shutil.ignore_patterns("build"))
        fragments_port = free_port()
        toml = site / "oberon.toml"
        toml.write_text(toml.read_text().replace("127.0.0.1:17101", f"127.0.0.1:{fragments_port}"))
        subprocess.run([sys.executable, "-m", "oberon", "--site", str(toml), "build"], check=True,
                       env=clean_environ(), cwd=ROOT, capture_output=True)  # fmt: skip
        setups = [(checkout, server) for checkout in checkouts for server in args.server or ["renderer"]]
        figures: dict[tuple[Path, str], list[tuple[float, float]]] = {setup: [] for setup in setups}
        pages: dict[tuple[Path, str], str] = {}
        for _ in range(args.runs):
            for setup in setups:  # interleaved: the machine's load moves them all alike
                checkout, server = setup
                probe = (probe_name, folder / f"{probe_name}.json") if probe_name else None
                micros, rate, pages[setup] = run_once(
                    toml, fragments_port, page=args.page, checkout=checkout, server_name=server, seconds=args.seconds,
                    connections=args.connections, log_dir=folder, renderer_env=renderer_env,
                    granian_path=args.granian_path, probe=probe, delay_ms=args.delay,
                )  # fmt: skip
                figures[setup].append((micros, rate))
                print(f"{checkout} {server}: {micros:.0f} µs of server CPU per page, {rate:.0f} pages/s", flush=True)
                served = round(rate * (args.seconds + 2))  # over the warm-up and the measure, as the probes count
                if probe is not None and probe[0] == "waits":
                    print(f"  waits: {json.loads(probe[1].read_text())} for ~{served} pages", flush=True)
                if probe is not None and probe[0] == "gc":  # from the server's own threshold on
                    print(f"  collections: {collections(probe[1], served)}", flush=True)
        for setup in setups:
            runs = ", ".join(f"{micros:.0f}" for micros, _ in figures[setup])
            rates = ", ".join(f"{rate:.0f}" for _, rate in figures[setup])
            print(f"{setup[0]} {setup[1]}: {runs} µs/page ({rates} pages/s); {page_weight(pages[setup])}")


if __name__ == "__main__":
    main()
