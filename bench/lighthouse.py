"""A recorded Lighthouse run of the demo's event page: `oberon up` on a free loopback port, then
npm `lighthouse@12.2.3` with Debian's chromium (CHROME_PATH), throttling as Lighthouse defaults
(simulated mobile). Prints the scores and writes them, with the metrics behind them, to a JSON file.

    npm ci                                  # once: installs lighthouse and axe-core (package-lock.json)
    .venv/bin/python bench/lighthouse.py    # about 30 s; writes bench/results/lighthouse-event-page.json

Not part of `make test`: one run takes longer than the test suite should wait.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from bench.servers import service_port

ROOT = Path(__file__).resolve().parents[1]
LIGHTHOUSE = ROOT / "node_modules" / ".bin" / "lighthouse"
CATEGORIES = ("performance", "accessibility", "best-practices", "seo")
METRICS = (
    "first-contentful-paint",
    "largest-contentful-paint",
    "total-blocking-time",
    "cumulative-layout-shift",
    "speed-index",
)
CHROME_FLAGS = "--headless=new --no-sandbox --disable-gpu --disable-background-networking --no-first-run"


def wait_healthy(base: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"oberon up exited with {process.returncode}")
        try:
            if httpx.get(f"{base}/_oberon/health", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit("oberon up did not become healthy in 30 s")


def run(path: str, out: Path) -> dict[str, object]:
    chromium = shutil.which("chromium")
    if chromium is None or not LIGHTHOUSE.exists():
        raise SystemExit("needs Debian's chromium (apt-get install chromium) and `npm ci` for lighthouse")
    port = service_port()  # and the port after it: `oberon up`'s admin listener
    base = f"http://127.0.0.1:{port}"
    environ = {key: value for key, value in os.environ.items() if not key.startswith("OBERON_")}
    with tempfile.TemporaryDirectory() as scratch:
        server = subprocess.Popen(
            [sys.executable, "-m", "oberon", "up", "--workers", "1", "--port", str(port)],
            cwd=ROOT,
            env=environ,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_healthy(base, server)
            httpx.get(base + path, timeout=10)  # one warm-up request: the BFFs' caches are as on a live site
            report_file = Path(scratch) / "report.json"
            subprocess.run(
                [
                    str(LIGHTHOUSE),
                    base + path,
                    "--quiet",
                    "--output=json",
                    f"--output-path={report_file}",
                    f"--only-categories={','.join(CATEGORIES)}",
                    f"--chrome-flags={CHROME_FLAGS}",
                ],
                check=True,
                env={**os.environ, "CHROME_PATH": chromium},
                timeout=180,
            )
            report = json.loads(report_file.read_text())
        finally:
            server.terminate()
            server.wait(timeout=10)
    summary: dict[str, object] = {
        "url": path,
        "recorded": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "lighthouse": report["lighthouseVersion"],
        "chromium": report["environment"]["hostUserAgent"],
        "throttling": report["configSettings"]["throttlingMethod"],
        "form_factor": report["configSettings"]["formFactor"],
        "scores": {name: round(report["categories"][name]["score"] * 100) for name in CATEGORIES},
        "metrics": {name: report["audits"][name]["displayValue"] for name in METRICS},
        "failed_audits": sorted(
            audit_id
            for audit_id, audit in report["audits"].items()
            if audit.get("score") is not None and audit["score"] < 0.9 and audit["scoreDisplayMode"] == "binary"
        ),
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--path", default="/e/1", help="the page to audit (default: an event page)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "lighthouse-event-page.json")
    args = parser.parse_args()
    summary = run(args.path, args.out)
    print(json.dumps(summary, indent=2))
    scores = summary["scores"]
    assert isinstance(scores, dict)
    return 0 if all(scores[name] >= 90 for name in ("performance", "accessibility", "seo")) else 1


if __name__ == "__main__":
    sys.exit(main())
