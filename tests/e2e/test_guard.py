"""The canary guard against real renderers: `oberon up` on the demo site serves related-events@1.0.0 (stable), a
second `oberon up` on a copy serves related-events@1.1.0 (the canary); the guard reads both admin listeners'
`/metrics`, as it reads a fleet's renderers, and rolls back a canary that falls back or whose template fails."""

from __future__ import annotations

import contextlib
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from oberon.registry.guard import HELD, WORSE, Guard, GuardSettings
from tests.e2e.conftest import ADMIN, ROOT, Running, start_server
from tests.projects import project_copy

NAME, STABLE, CANARY = "related-events", "1.0.0", "1.1.0"
PAGES = 30  # event pages per renderer: one related-events render each


@pytest.fixture(scope="module")
def stable() -> Iterator[Running]:
    with start_server() as running:
        yield running


def canary_site(tmp_path: Path, template: str | None = None) -> Path:
    """A copy of the demo site whose related-events is version 1.1.0, with `template` when given."""
    site_file = project_copy(tmp_path / "project")
    folder = tmp_path / "project" / "components" / NAME
    manifest = folder / "component.toml"
    manifest.write_text(manifest.read_text().replace(f'version = "{STABLE}"', f'version = "{CANARY}"', 1))
    if template is not None:
        (folder / "template.html").write_text(template)
    return site_file


@contextlib.contextmanager
def run_canary(site_file: Path) -> Iterator[Running]:
    with start_server(env={"OBERON_SITE_FILE": str(site_file)}, cwd=site_file.parent) as running:
        yield running


def guard(*renderers: Running, settings: GuardSettings) -> Guard:
    return Guard(
        component=NAME,
        canary=CANARY,
        stable=STABLE,
        metrics_urls=[renderer.admin_url for renderer in renderers],  # the admin listener's address: /metrics
        settings=settings,
    )


def visit(running: Running, event_ids: range) -> None:
    with httpx.Client(base_url=running.base_url, timeout=10) as site:
        for event_id in event_ids:
            page = site.get(f"/e/{event_id}")
            assert page.status_code == 200, page.text


WATCH = GuardSettings(window_seconds=30, interval_seconds=0.25, min_renders=PAGES)
WORSE_REASON = re.compile(
    r"canary related-events@1\.1\.0: fallback rate 100\.0 % against stable 0\.0 % \(margin 5 points\)"
    rf"(, p95 render time .*)? over {PAGES} renders"
)


def test_the_guard_rolls_back_a_canary_whose_backend_fails(stable: Running, tmp_path: Path) -> None:
    with run_canary(canary_site(tmp_path)) as running:
        watching = guard(stable, running, settings=WATCH)
        watching.start()
        # The canary renderer's recommendations backend goes down: its related-events falls back.
        faults = httpx.put(f"{running.base_url}/_backends/recommendations/_faults", json={"down": True}, headers=ADMIN)
        assert faults.status_code == 200
        visit(stable, range(1, PAGES + 1))
        visit(running, range(1, PAGES + 1))
        reasons: list[str] = []
        verdict = watching.watch(reasons.append)
        assert verdict.outcome == WORSE, verdict.reason
        assert reasons == [verdict.reason]
        assert WORSE_REASON.fullmatch(verdict.reason), verdict.reason
        assert (verdict.stable.renders, verdict.stable.failed) == (PAGES, 0)


def test_the_guard_rolls_back_a_canary_whose_template_fails(stable: Running, tmp_path: Path) -> None:
    broken = "<p>{{ state.related.events | length // 0 }}</p>"  # raises ZeroDivisionError on every render
    with run_canary(canary_site(tmp_path, template=broken)) as running:
        watching = guard(stable, running, settings=WATCH)
        watching.start()
        visit(stable, range(101, 101 + PAGES))
        visit(running, range(101, 101 + PAGES))
        reasons: list[str] = []
        verdict = watching.watch(reasons.append)
        assert verdict.outcome == WORSE, verdict.reason
        assert reasons == [verdict.reason] and WORSE_REASON.fullmatch(verdict.reason), verdict.reason


def test_the_guard_holds_a_canary_as_good_as_stable(stable: Running, tmp_path: Path) -> None:
    with run_canary(canary_site(tmp_path)) as running:
        visit(stable, range(201, 211))  # first renders compile templates and fill pools: not what is compared
        visit(running, range(201, 211))
        # Two processes on two busy cores: a scheduling pause can cost a render milliseconds, which one version
        # against another would not; the p95 rule itself is the unit tests' (tests/oberon/registry/test_guard.py).
        settings = GuardSettings(
            window_seconds=4, interval_seconds=0.5, min_renders=PAGES, p95_ratio=10, p95_min_increase_seconds=0.05
        )
        watching = guard(stable, running, settings=settings)
        watching.start()
        visit(stable, range(211, 211 + PAGES))
        visit(running, range(211, 211 + PAGES))
        reasons: list[str] = []
        verdict = watching.watch(reasons.append)
        assert verdict.outcome == HELD, verdict.reason
        assert reasons == []
        assert verdict.reason.startswith(
            "canary related-events@1.1.0 held: fallback rate 0.0 % against stable 0.0 % (margin 5 points), "
            "p95 render time "
        )
        assert verdict.reason.endswith(f"over {PAGES} renders in 4 s")


def test_oberon_ramp_guard_ends_a_worse_canary_by_itself_and_records_why(
    stable: Running, tmp_path: Path, database_url: str
) -> None:
    """`oberon ramp … --guard` as an operator runs it: against a real registry, reading the two renderers; the
    canary's template fails, so the guard ends the canary (stable stays) and the history says why (action guard)."""
    from tests.e2e.test_registry_cli import ADMIN_TOKEN as REGISTRY_TOKEN
    from tests.e2e.test_registry_cli import environ, oberon, registry_process

    broken = "<p>{{ state.related.events | length // 0 }}</p>"
    canary_file = canary_site(tmp_path, template=broken)
    with registry_process(database_url, tmp_path / "registry") as registry, run_canary(canary_file) as running:
        assert oberon("publish", "--all", registry=registry).returncode == 0
        folder = canary_file.parent / "components" / NAME
        assert oberon("publish", str(folder), registry=registry).returncode == 0
        command = [
            sys.executable, "-m", "oberon", "ramp", NAME, CANARY, "--percent", "10", "--reason", "try it",
            "--guard", "--guard-window", "60", "--guard-min-renders", str(PAGES),
            "--metrics", stable.admin_url, "--metrics", running.admin_url,
        ]  # fmt: skip
        env = environ(OBERON_REGISTRY_URL=registry.url, OBERON_REGISTRY_TOKEN=REGISTRY_TOKEN)
        with subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        ) as ramp:
            assert ramp.stdout is not None
            for line in ramp.stdout:  # the canary is ramped and watched: now the traffic it is judged on
                if line.startswith("oberon: guarding it"):
                    break
            else:
                pytest.fail(f"oberon ramp --guard did not start watching: {ramp.stderr.read() if ramp.stderr else ''}")
            visit(stable, range(301, 301 + PAGES))
            visit(running, range(301, 301 + PAGES))
            out, err = ramp.communicate(timeout=90)
        assert ramp.returncode == 1, out + err
        assert WORSE_REASON.search(err), err
        record = httpx.get(
            f"{registry.url}/registry/v1/components/{NAME}", headers={"Authorization": f"Bearer {REGISTRY_TOKEN}"}
        ).json()
        assert (record["stable"], record["canary"]) == (STABLE, None)
        last = record["history"][-1]
        assert (last["action"], last["version"], last["actor"]) == ("guard", CANARY, "platform")
        assert WORSE_REASON.fullmatch(last["reason"]), last["reason"]
