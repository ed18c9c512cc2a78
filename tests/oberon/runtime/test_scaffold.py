"""`oberon new`: scaffold → check → render → test for each kind, names validated, nothing half-written."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from gateway.table import load_table
from oberon.pipeline.rendering import create_environment
from oberon.runtime import k8s, scaffold
from oberon.runtime.cli import main
from oberon.runtime.scaffold import Plan, Project, ScaffoldError, apply, new_app, new_bff, new_component, route_example
from oberon.site import Site
from oberon.testing import load_registry_of, render_alone
from tests.projects import project_copy, run_pytest


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A copy of the demo project; its site file."""
    return project_copy(tmp_path / "project")


def new(site_file: Path, *argv: str) -> int:
    return main(["--site", str(site_file), "new", *argv], environ={})


def snapshot(root: Path) -> dict[str, bytes]:
    return {
        str(path.relative_to(root)): path.read_bytes()
        for path in sorted(root.rglob("*"))
        if path.is_file() and "__pycache__" not in path.parts
    }


def load(site_file: Path) -> Project:
    return Project.load(site_file, environment=create_environment())


@pytest.mark.anyio
async def test_new_component_round_trip_slotted_into_an_app(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = project.parent
    assert new(project, "component", "promo-banner", "--team", "marketing", "--app", "home-page", "--slot", "main") == 0
    out = capsys.readouterr().out
    assert "oberon: new component promo-banner:" in out
    assert "  created components/promo-banner/component.toml" in out
    assert "  created tests/components/test_promo_banner.py" in out
    assert "  edited  components/home-page/component.toml" in out
    assert "next: see it alone: /_oberon/gallery/promo-banner" in out

    assert main(["--site", str(project), "check"], environ={}) == 0
    manifest = tomllib.loads((root / "components" / "promo-banner" / "component.toml").read_text())
    assert manifest["owner"] == "marketing"
    home = tomllib.loads((root / "components" / "home-page" / "component.toml").read_text())
    assert home["slots"]["main"][-1] == {"component": "promo-banner", "version": "~=0.1"}

    alone = await render_alone("promo-banner", site=project)
    assert alone.outcome("promo-banner") == "ok"
    assert '<h2 id="promo-banner-heading" class="promo-banner__heading">Promo banner</h2>' in alone.html
    page = await render_alone("home-page", site=project)
    assert page.outcome("promo-banner") == "ok"

    result = run_pytest(root, "tests/components/test_promo_banner.py")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 passed" in result.stdout


@pytest.mark.anyio
async def test_new_component_alone_is_owned_by_the_apps_team_or_unowned(project: Path) -> None:
    assert new(project, "component", "gift-note", "--app", "event-page", "--slot", "aside") == 0
    registry = load_registry_of(project)
    assert registry.get("gift-note").manifest.owner == "events"
    assert new(project, "component", "loose-end") == 0
    assert load_registry_of(project).get("loose-end").manifest.owner == "unowned"


@pytest.mark.anyio
async def test_new_app_round_trip(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = project.parent
    assert new(project, "app", "gift-cards", "--route", "/gifts/{card_id:int}", "--team", "marketing") == 0
    assert "next: its page: /gifts/1" in capsys.readouterr().out
    assert main(["--site", str(project), "check"], environ={}) == 0
    registry = load_registry_of(project)
    match = registry.router.match("/gifts/7")
    assert match is not None and match.route.app == "gift-cards"

    rendered = await render_alone("gift-cards", site=project)
    assert rendered.status_code == 200
    assert "<title>Gift cards</title>" in rendered.html

    assert new(project, "component", "gift-card-list", "--app", "gift-cards", "--slot", "main") == 0
    rendered = await render_alone("gift-cards", site=project)
    assert rendered.outcomes == {"gift-cards": "ok", "gift-card-list": "ok"}

    result = run_pytest(root, "tests/components/test_gift_cards.py", "tests/components/test_gift_card_list.py")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "5 passed" in result.stdout


def test_new_bff_round_trip(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = project.parent
    assert new(project, "bff", "marketing") == 0
    out = capsys.readouterr().out
    assert "  created bff/marketing/app.py" in out
    assert "  edited  oberon.toml" in out
    assert "  edited  gateway/routes.toml" in out
    assert "  created infra/k8s/bff-marketing.yaml" in out
    assert "  edited  infra/k8s/gateway.yaml" in out and "  edited  infra/k8s/renderer.yaml" in out
    assert k8s.manifests(Site.load(project)) == {path.name: path.read_text() for path in (root / "infra/k8s").glob("*")}
    site = Site.load(project)
    assert site.bffs["marketing"] == "bff.marketing:create_app"
    assert list(site.bffs)[-1] == "marketing", "added at the end of the [bff] table"
    upstreams = [f"bff:{name}" for name in site.bffs] + [f"backend:{name}" for name in site.backends] + ["renderer"]
    table = load_table(root / "gateway" / "routes.toml", upstreams=upstreams)
    route = table.match("/bff/marketing/hello/world")
    assert route is not None and route.upstream == "bff:marketing"
    assert main(["--site", str(project), "check"], environ={}) == 0

    result = run_pytest(root, "tests/bff/test_marketing.py")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 passed" in result.stdout


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["component", "Promo"], "'Promo' is not a valid component name"),
        (["component", "promo_banner"], "'promo_banner' is not a valid component name"),
        (["component", "event-hero"], "component 'event-hero' already exists:"),
        (["component", "promo", "--team", "Marketing"], "'Marketing' is not a valid team name"),
        (["component", "promo", "--app", "home-page"], "--app and --slot go together"),
        (["component", "promo", "--app", "nowhere", "--slot", "main"], "no app 'nowhere' in the registry"),
        (["component", "promo", "--app", "event-hero", "--slot", "main"], "'event-hero' is a component, not an app"),
        (["component", "promo", "--app", "home-page", "--slot", "sidebar"], "app 'home-page' has no slot 'sidebar'"),
        (["app", "home-page", "--route", "/home"], "component 'home-page' already exists"),
        (["app", "gifts", "--route", "gifts"], "--route 'gifts' must start with '/'"),
        (["app", "gifts", "--route", "/g/{id:nope}"], "--route '/g/{id:nope}':"),
        (["app", "gifts", "--route", "/"], "route '/' is already owned by home-page@1.0.0"),
        (["app", "gifts", "--route", "/e/{id:int}"], "/e/1 is already answered by event-page (/e/{event_id:int})"),
        (["bff", "events"], "BFF 'events' already exists"),
        (["bff", "Marketing"], "'Marketing' is not a valid BFF name"),
        (["bff", "my-team"], "'my-team' is not a valid BFF name"),
        (["bff", "class"], "'class' is not a valid BFF name"),
    ],
)
def test_new_refuses_bad_or_taken_names_and_writes_nothing(
    project: Path, argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    before = snapshot(project.parent)
    assert new(project, *argv) == 2
    err = capsys.readouterr().err
    assert message in err
    assert "oberon: nothing was written" in err
    assert snapshot(project.parent) == before


def test_new_lists_the_slots_an_app_has(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert new(project, "component", "promo", "--app", "event-page", "--slot", "sidebar") == 2
    assert "its slots: header, hero, main, aside, related, footer" in capsys.readouterr().err


def test_new_refuses_to_scaffold_into_a_broken_registry(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    manifest = project.parent / "components" / "site-footer" / "component.toml"
    manifest.write_text(manifest.read_text().replace('version = "1.0.0"', 'version = "one"'))
    assert new(project, "component", "promo") == 2
    assert "the registry has errors; fix them first" in capsys.readouterr().err
    assert not (project.parent / "components" / "promo").exists()


def test_apply_undoes_everything_when_a_step_fails(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = project.parent
    before = snapshot(root)
    plan = new_bff(load(project), "marketing")
    calls = []

    def failing(path: Path, text: str) -> None:
        calls.append(path)
        if len(calls) == 2:  # the site file was replaced; the routing table fails
            raise OSError("disk full")
        original(path, text)

    original = scaffold._replace
    monkeypatch.setattr(scaffold, "_replace", failing)
    with pytest.raises(OSError, match="disk full"):
        apply(plan)
    assert snapshot(root) == before
    assert not (root / "bff" / "marketing").exists()
    assert not list(root.glob(".oberon-new-*")), "the staging folder is gone"


def test_apply_undoes_a_scaffold_that_would_break_the_registry(project: Path) -> None:
    root = project.parent
    before = snapshot(root)
    current = load(project)
    plan = new_component(current, "promo")
    plan.created[root / "components" / "promo" / "template.html"] = "{% if %}"
    with pytest.raises(ScaffoldError, match="the scaffold would break the registry"):
        apply(plan, check=current)
    assert snapshot(root) == before


def test_apply_refuses_a_file_that_exists(project: Path) -> None:
    plan = Plan(project.parent)
    with pytest.raises(ScaffoldError, match="already exists"):
        plan.create("oberon.toml", "")


@pytest.mark.parametrize(
    ("route", "example"),
    [("/gifts", "/gifts"), ("/g/{id:int}", "/g/1"), ("/g/{slug}", "/g/example"), ("/f/{p:path}", "/f/example/path")],
)
def test_route_example_fills_each_param_with_a_value_of_its_type(route: str, example: str) -> None:
    assert route_example(route) == example


def test_new_app_route_is_checked_for_the_apps_own_param_names(project: Path) -> None:
    plan = new_app(load(project), "gift-shop", route="/gift-shop/{slug}")
    manifest = next(text for path, text in plan.created.items() if path.name == "component.toml")
    assert 'routes = ["/gift-shop/{slug}"]' in manifest
