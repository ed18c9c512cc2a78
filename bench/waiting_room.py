"""The `waiting-room` benchmark of issue 16: an on-sale rush admitted in arrival order, none twice, none lost.

    .venv/bin/python bench/waiting_room.py                                  # 2,000 in 10 s at 300 a minute (~7 min)
    .venv/bin/python bench/waiting_room.py --visitors 300 --capacity 3000   # a quick look (~20 s)

Starts its own `redis-server`, `oberon up --split` with `OBERON_SESSION_STORE` on it, and a second
gateway process (`oberon serve gateway`) over the same services and Redis: two gateways, one line. The
demo's on-sale route is the checkout BFF (`/bff/checkout`, `waiting_room = 300` in gateway/routes.toml);
`--capacity` runs a copy of the table with another figure. Every process is ours, stopped by its PID.

`--visitors` visitors arrive evenly over `--seconds`, alternately at gateway A and B, each with a cookie
jar of its own, as API callers (`Accept: application/json`): a visitor let on gets the cart (200), one
waiting gets 503 with `Retry-After` and `{position, retry_after}` and asks again after `Retry-After`
seconds, at either gateway, until let on (or the deadline). The arrival number each holds is read from its
ticket and admission cookies (signed, not secret). Checked:

- none lost: every visitor let on before the deadline; none twice: each arrival number admitted once,
  and to the visitor whose ticket held it;
- arrival order: no visitor was told it waits (number m, asked at time s) after a visitor with a later
  number n > m had been let on (answered before s) — the frontier admits numbers in order;
- the rate: admissions in the first minute and over the whole run, against the capacity (plus the
  ten seconds' worth a room may admit at once).

Latencies are from before a request is written to its answer read. Writes `bench/results/waiting-room-<time>.json`.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import contextlib
import json
import os
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import itsdangerous

from bench import servers
from gateway.waiting_room import burst, cookie_names
from oberon.runtime.supervisor import free_port

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
ROOM = "/bff/checkout"
BUY = f"{ROOM}/cart"
TICKET, ADMISSION = cookie_names(ROOM, https=False)
START_TIMEOUT = 60.0
SERVICE_LINE = re.compile(r"^oberon:\s+(\S+)\s+(http://\S+)\s+pid (\d+)", re.M)


def number_in(value: str) -> int:
    """The arrival number a ticket or admission holds (its payload is signed, not encrypted)."""
    payload = value.split(".")[0]
    return int(json.loads(itsdangerous.base64_decode(payload))["number"])


@dataclass
class Log:
    """What the visitors saw."""

    admitted: list[tuple[float, int, int]] = field(default_factory=list)  # (answered at, number, visitor)
    waiting: list[tuple[float, int]] = field(default_factory=list)  # (asked at, number)
    ticket_numbers: dict[int, int] = field(default_factory=dict)  # visitor → the number its ticket held
    latencies: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    errors: int = 0


async def visitor(
    index: int, *, session: aiohttp.ClientSession, bases: list[str], arrive_at: float, deadline: float, log: Log
) -> None:
    await asyncio.sleep(max(0.0, arrive_at - time.monotonic()))
    cookies: dict[str, str] = {}
    ask = index
    while time.monotonic() < deadline:
        base = bases[ask % len(bases)]
        ask += 1  # the next ask goes to the other gateway: one line across both
        header = "; ".join(f"{name}={value}" for name, value in cookies.items())
        sent = time.monotonic()
        try:
            headers = {"Accept": "application/json", **({"Cookie": header} if header else {})}
            async with session.get(base + BUY, headers=headers) as response:
                body = await response.json(content_type=None)
                status = response.status
                set_cookies = response.headers.getall("Set-Cookie", [])
        except (TimeoutError, aiohttp.ClientError, ValueError):
            log.errors += 1
            await asyncio.sleep(1)
            continue
        answered = time.monotonic()
        log.latencies.append(answered - sent)
        log.statuses[status] = log.statuses.get(status, 0) + 1
        for cookie in set_cookies:
            name, _, rest = cookie.partition("=")
            value = rest.split(";")[0]
            if value and "Max-Age=0" not in cookie:
                cookies[name] = value
            else:
                cookies.pop(name, None)
        if status == 200:
            log.admitted.append((answered, number_in(cookies[ADMISSION]), index))
            return
        if status != 503 or body.get("position") is None:
            log.errors += 1
            await asyncio.sleep(1)
            continue
        number = number_in(cookies[TICKET])
        log.ticket_numbers.setdefault(index, number)
        log.waiting.append((sent, number))
        await asyncio.sleep(int(body["retry_after"]))


def order_violations(log: Log) -> int:
    """Visitors told to wait after one with a later number had been let on."""
    admitted = sorted(log.admitted)
    times = [answered for answered, _, _ in admitted]
    highest: list[int] = []
    for _, number, _ in admitted:
        highest.append(max(number, highest[-1] if highest else 0))
    violations = 0
    for asked, number in log.waiting:
        before = bisect.bisect_left(times, asked)
        if before and highest[before - 1] > number:
            violations += 1
    return violations


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(share * len(ordered)))] * 1000, 1) if ordered else 0.0


async def rush(bases: list[str], *, visitors: int, seconds: float, capacity: int) -> dict[str, Any]:
    log = Log()
    start = time.monotonic() + 1.0
    # Long enough to admit everyone at the capacity, plus the longest wait between two asks and a margin.
    deadline = start + seconds + visitors / capacity * 60 + 90
    connector = aiohttp.TCPConnector(limit=512)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout, cookie_jar=aiohttp.DummyCookieJar()) as s:
        await asyncio.gather(
            *(
                visitor(
                    index,
                    session=s,
                    bases=bases,
                    arrive_at=start + seconds * index / visitors,
                    deadline=deadline,
                    log=log,
                )
                for index in range(visitors)
            )
        )
    numbers = [number for _, number, _ in log.admitted]
    mismatched = [visitor for _, number, visitor in log.admitted if log.ticket_numbers.get(visitor, number) != number]
    last = max((answered for answered, _, _ in log.admitted), default=start)
    first_minute = sum(1 for answered, _, _ in log.admitted if answered - start < 60)
    return {
        "visitors": visitors,
        "arrival_seconds": seconds,
        "capacity_per_minute": capacity,
        "burst": burst(capacity),
        "admitted": len(numbers),
        "lost": visitors - len(numbers),
        "admitted_twice": len(numbers) - len(set(numbers)),
        "numbers_are_1_to_n": sorted(numbers) == list(range(1, visitors + 1)),
        "admission_not_the_ticket_number": len(mismatched),
        "order_violations": order_violations(log),
        "waiting_answers_checked": len(log.waiting),
        "admitted_in_first_minute": first_minute,
        "seconds_to_admit_all": round(last - start, 1),
        "admitted_per_minute_overall": round(len(numbers) / max(last - start, 1e-9) * 60, 1),
        "requests": len(log.latencies),
        "statuses": log.statuses,
        "errors": log.errors,
        "p50_ms": percentile(log.latencies, 0.50),
        "p95_ms": percentile(log.latencies, 0.95),
        "p99_ms": percentile(log.latencies, 0.99),
    }


@contextlib.contextmanager
def process(argv: list[str], *, env: dict[str, str], name: str) -> Iterator[Path]:
    """A process of ours, its output in a log file; stopped by its PID (SIGTERM, SIGKILL after 10 s)."""
    log = Path(tempfile.mkstemp(prefix=f"waiting-room-{name}-", suffix=".log")[1])
    with servers.process(argv, env=env, log=log):
        yield log
    log.unlink(missing_ok=True)


def wait_for(check: Any, what: str, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while not check():
        if time.monotonic() > deadline:
            raise SystemExit(f"{what} did not start:\n{log.read_text(errors='replace')[-3000:]}")
        time.sleep(0.2)


def answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def site_with_capacity(folder: Path, capacity: int) -> Path:
    """A copy of the demo's site file and routing table with another capacity for the on-sale route."""
    routes = (ROOT / "gateway" / "routes.toml").read_text(encoding="utf-8")
    (folder / "routes.toml").write_text(routes.replace("waiting_room = 300", f"waiting_room = {capacity}"))
    site = (ROOT / "oberon.toml").read_text(encoding="utf-8")
    site = site.replace('components = ["components"]', f'components = ["{ROOT / "components"}"]')
    site = site.replace('routes = "gateway/routes.toml"', f'routes = "{folder / "routes.toml"}"')
    (folder / "oberon.toml").write_text(site)
    return folder / "oberon.toml"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--visitors", type=int, default=2000)
    parser.add_argument("--seconds", type=float, default=10.0, help="over which the visitors arrive")
    parser.add_argument("--capacity", type=int, default=300, help="visitors a minute (the demo's is 300)")
    args = parser.parse_args()
    binary = shutil.which("redis-server")
    if not binary:
        raise SystemExit("redis-server is not installed: run scripts/system-packages test")
    RESULTS.mkdir(exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix="waiting-room-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("OBERON_") and k != "PROMETHEUS_MULTIPROC_DIR"}
    ports: list[int] = []
    for _ in range(5):
        ports.append(free_port(taken=set(ports)))
    redis_port, port, b_port, *admin_ports = ports
    env.update(
        {
            "OBERON_SESSION_STORE": f"redis://127.0.0.1:{redis_port}/0",
            "OBERON_ADMIN_TOKEN": "bench-admin-token-of-at-least-32-characters",
            "OBERON_SITE_FILE": str(site_with_capacity(folder, args.capacity)),
        }
    )
    redis_argv = [binary, "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    up = [sys.executable, "-m", "oberon", "up", "--split", "--port", str(port), "--admin-port", str(admin_ports[0])]
    a, b = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{b_port}"
    started = time.strftime("%FT%TZ", time.gmtime())
    with process(redis_argv, env=env, name="redis"), process(up, env=env, name="up") as up_log:
        wait_for(lambda: "services are up; entrance" in up_log.read_text(errors="replace"), "oberon up --split", up_log)
        services = {name: url for name, url, _ in SERVICE_LINE.findall(up_log.read_text(errors="replace"))}
        upstreams = [
            arg for name, url in services.items() if name != "gateway" for arg in ("--upstream", f"{name}={url}")
        ]
        gateway_b = [sys.executable, "-m", "oberon", "serve", "gateway", "--port", str(b_port)]
        gateway_b += ["--admin-port", str(admin_ports[1]), *upstreams]
        with process(gateway_b, env=env, name="gateway-b") as b_log:
            wait_for(lambda: answers(b + "/_oberon/health"), "gateway B", b_log)
            result = asyncio.run(rush([a, b], visitors=args.visitors, seconds=args.seconds, capacity=args.capacity))
    shutil.rmtree(folder, ignore_errors=True)
    result = {"command": " ".join(["bench/waiting_room.py", *sys.argv[1:]]), "started": started, **result}
    result["load_average_at_end"] = os.getloadavg()
    out = RESULTS / f"waiting-room-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    print(f"written: {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
