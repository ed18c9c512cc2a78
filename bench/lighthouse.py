"""Lighthouse on the demo's pages: the one place that runs npm `lighthouse` and summarizes its report.

`tests/browser/test_lighthouse.py` (in `make test`) and `make lighthouse` (this module as a script) both
call `audit`: one Lighthouse run of one page of a running site, with the pinned `lighthouse@12.2.3`
(package-lock.json) and Debian's chromium (CHROME_PATH), Lighthouse's default settings (simulated
mobile: slow 4G, 4x CPU slowdown) without the full-page screenshot. Each run rewrites
`bench/results/lighthouse-<page>.json`: the scores, the failed audits, the metrics, the versions and
the command; a page falls short when any category scores under 90.

    npm ci                                  # once: installs lighthouse and axe-core (package-lock.json)
    .venv/bin/python bench/lighthouse.py    # `oberon up`, then every page (about 15 s each)
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx

from bench.servers import service_port

ROOT = Path(__file__).resolve().parents[1]
LIGHTHOUSE = ROOT / "node_modules" / ".bin" / "lighthouse"
RESULTS = ROOT / "bench" / "results"
# The pages CI holds, by the name in their results file: `bench/results/lighthouse-<name>.json`.
PAGES = {"home": "/", "event": "/e/1", "category": "/c/concerts"}
CATEGORIES = ("performance", "accessibility", "best-practices", "seo")
THRESHOLD = 90
METRICS = (
    "first-contentful-paint",
    "largest-contentful-paint",
    "total-blocking-time",
    "cumulative-layout-shift",
    "speed-index",
)
# Headless Debian chromium as root (no sandbox), with nothing phoning home during the run.
CHROME_FLAGS = (
    "--headless=new --no-sandbox --disable-gpu --disable-background-networking --disable-component-update"
    " --disable-sync --no-first-run --disable-quic"
)
# Lighthouse's defaults otherwise; the full-page screenshot only illustrates the HTML report (about 1 s).
FLAGS = (
    "--quiet",
    "--output=json",
    f"--only-categories={','.join(CATEGORIES)}",
    "--disable-full-page-screenshot",
    f"--chrome-flags={CHROME_FLAGS}",
)
RUN_TIMEOUT = 180.0
# The audits' ways of scoring that can fail; the others (informative, manual, not applicable) never do.
SCORED = ("binary", "numeric", "metricSavings")


@dataclass(frozen=True, kw_only=True)
class Scorecard:
    """One Lighthouse run of one page, as `bench/results/lighthouse-<page>.json` records it."""

    page: str
    path: str
    scores: dict[str, int | None]  # by category; None when Lighthouse could not load the page
    failed_audits: dict[str, list[dict[str, Any]]]  # by category: id, title, score (0-1) of each under 0.9
    runtime_error: str | None
    metrics: dict[str, str]
    lighthouse: str
    chromium: str
    settings: dict[str, Any]
    command: str
    threshold: int = THRESHOLD

    def shortfalls(self) -> list[str]:
        """One line per category under the threshold: page, category, score and the audits that failed in it."""
        where = f"{self.page} page ({self.path})"
        if self.runtime_error is not None:
            return [f"{where}: no scores, Lighthouse could not audit it: {self.runtime_error}"]
        lines = []
        for category in CATEGORIES:
            score = self.scores.get(category)
            if score is None or score < self.threshold:
                failed = "; ".join(f"{a['id']} ({a['title']})" for a in self.failed_audits.get(category, []))
                lines.append(f"{where}: {category} {score} < {self.threshold}; failed audits: {failed or 'none'}")
        return lines

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, ensure_ascii=False) + "\n"


def chromium() -> str:
    """Debian's chromium, never a downloaded browser; the lighthouse script from `npm ci`."""
    found = shutil.which("chromium")
    if found is None:
        raise RuntimeError("Debian's chromium is missing: apt-get install chromium (scripts/system-packages)")
    if not LIGHTHOUSE.exists():
        raise RuntimeError(f"{LIGHTHOUSE} is missing: run `npm ci` (make setup does)")
    return found


def summarize(report: dict[str, Any], *, page: str, path: str, command: str) -> Scorecard:
    """The scores and failed audits of a Lighthouse JSON report (`lhr`)."""
    audits = report["audits"]
    failed: dict[str, list[dict[str, Any]]] = {}
    for category in CATEGORIES:
        for ref in report["categories"][category]["auditRefs"]:
            audit = audits[ref["id"]]
            if audit["scoreDisplayMode"] in SCORED and audit["score"] is not None and audit["score"] < 0.9:
                entry = {"id": ref["id"], "title": audit["title"], "score": audit["score"]}
                failed.setdefault(category, []).append(entry)
    scores = {name: report["categories"][name]["score"] for name in CATEGORIES}
    error = report.get("runtimeError")
    settings = report["configSettings"]
    return Scorecard(
        page=page,
        path=path,
        scores={name: None if score is None else round(score * 100) for name, score in scores.items()},
        failed_audits=failed,
        runtime_error=None if error is None else f"{error['code']}: {error['message']}",
        metrics={name: audits[name].get("displayValue", "") for name in METRICS if name in audits},
        lighthouse=report["lighthouseVersion"],
        chromium=report["environment"]["hostUserAgent"],
        settings={
            "form_factor": settings["formFactor"],
            "throttling_method": settings["throttlingMethod"],
            "throttling": settings["throttling"],
        },
        command=command,
    )


def audit(base: str, page: str, *, results: Path | None = RESULTS) -> Scorecard:
    """Run Lighthouse once on `page` (a name in PAGES) of the site at `base`; write its scorecard into `results`."""
    browser = chromium()
    path = PAGES[page]
    httpx.get(base + path, timeout=10)  # one warm-up request: the BFFs' caches are as on a live site
    shown = [str(LIGHTHOUSE.relative_to(ROOT)), f"http://127.0.0.1:PORT{path}", *FLAGS, "--output-path=report.json"]
    command = f"CHROME_PATH={browser} {shlex.join(shown)}"
    with tempfile.TemporaryDirectory(prefix="oberon-lighthouse-") as scratch:
        # A file, not stdout: Lighthouse exits before a pipe has taken the whole report.
        report_file = Path(scratch) / "report.json"
        argv = [str(LIGHTHOUSE), base + path, *FLAGS, f"--output-path={report_file}"]
        # Its own session: on a timeout, the Chromium that Lighthouse started goes with it.
        process = subprocess.Popen(
            argv,
            env={**os.environ, "CHROME_PATH": browser},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        try:
            _, err = process.communicate(timeout=RUN_TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
            raise RuntimeError(f"lighthouse took over {RUN_TIMEOUT:.0f} s on {base + path}") from None
        # Exit 1 with a report when the page could not be loaded (a 404, say): the report says why.
        if not report_file.is_file():
            raise RuntimeError(f"lighthouse exited {process.returncode} without a report: {err.strip()[-2000:]}")
        report = json.loads(report_file.read_text(encoding="utf-8"))
    card = summarize(report, page=page, path=path, command=command)
    if results is not None:
        results.mkdir(parents=True, exist_ok=True)
        (results / f"lighthouse-{page}.json").write_text(card.to_json(), encoding="utf-8")
    return card


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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("pages", nargs="*", metavar="PAGE", help=f"of {', '.join(PAGES)} (default: all)")
    args = parser.parse_args()
    if unknown := set(args.pages) - set(PAGES):
        parser.error(f"unknown pages: {', '.join(sorted(unknown))}")
    port = service_port()  # and the port after it: `oberon up`'s admin listener
    base = f"http://127.0.0.1:{port}"
    environ = {key: value for key, value in os.environ.items() if not key.startswith("OBERON_")}
    server = subprocess.Popen(
        [sys.executable, "-m", "oberon", "up", "--workers", "1", "--port", str(port)],
        cwd=ROOT,
        env=environ,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_healthy(base, server)
        cards = [audit(base, page) for page in args.pages or PAGES]
    finally:
        server.terminate()
        server.wait(timeout=10)
    shortfalls = [line for card in cards for line in card.shortfalls()]
    for card in cards:
        print(f"{card.page} ({card.path}): {card.scores}  {card.metrics}")
    print("\n".join(shortfalls or [f"every category of every page at least {THRESHOLD}"]))
    return 1 if shortfalls else 0


if __name__ == "__main__":
    sys.exit(main())
