"""Publish checks: a release is refused with the file:field errors of `oberon check` and of each broken contract.

The stable set is the demo site's components, copied as unpacked bundles (`<name>@<version>/`); each
candidate is a copy of one with its manifest edited.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import jinja2
import pytest

from oberon.exceptions import ManifestError
from oberon.registry.checks import check_release

ROOT = Path(__file__).resolve().parents[3]
COMPONENTS = ROOT / "components"

Candidate = Callable[..., Path]


@pytest.fixture
def stable(tmp_path: Path) -> list[Path]:
    """Every demo component at 1.0.0, as the registry service unpacks its stable versions."""
    folders = []
    for source in sorted(COMPONENTS.iterdir()):
        if (source / "component.toml").is_file():
            folders.append(shutil.copytree(source, tmp_path / "stable" / f"{source.name}@1.0.0"))
    return folders


@pytest.fixture
def candidate(tmp_path: Path) -> Candidate:
    """A copy of the demo component `name` at `version`, its manifest edited by (old, new) text replacements."""

    def make(name: str, version: str, *edits: tuple[str, str], template: str | None = None) -> Path:
        folder = shutil.copytree(COMPONENTS / name, tmp_path / "candidates" / f"{name}@{version}")
        manifest = folder / "component.toml"
        text = manifest.read_text().replace('version = "1.0.0"', f'version = "{version}"', 1)
        for old, new in edits:
            assert old in text, f"{old!r} is not in {name}'s manifest"
            text = text.replace(old, new, 1)
        manifest.write_text(text)
        if template is not None:
            (folder / "template.html").write_text(template)
        return folder

    return make


def where(errors: list[ManifestError]) -> list[str]:
    return [f"{error.file}:{error.field}" for error in errors]


def test_the_stable_set_itself_passes(stable: list[Path], environment: jinja2.Environment) -> None:
    assert check_release(stable, [], environment=environment) == []


def test_a_non_breaking_version_is_accepted(
    stable: list[Path], candidate: Candidate, environment: jinja2.Environment
) -> None:
    # A new prop with a default, a new payload field, its own data source moved (nobody else reads `tickets`).
    new = candidate(
        "ticket-selector",
        "1.1.0",
        ("[props.max_quantity]", '[props.compact]\ntype = "bool"\ndefault = false\n\n[props.max_quantity]'),
        ('quantity = "int" }', 'quantity = "int", currency = "str" }'),
        ('path = "/events/{event_id}/tickets"', 'path = "/v2/events/{event_id}/tickets"'),
        template="<form>{{ state.tickets.tiers | length }} tiers</form>",
    )
    assert check_release(stable, [new], environment=environment) == []


def test_an_empty_registry_is_filled_by_a_release_of_every_folder(
    stable: list[Path], environment: jinja2.Environment
) -> None:
    # `oberon publish --all`: components depend on each other, so they are checked together, as `oberon check` does.
    assert check_release([], stable, environment=environment) == []
    (hero,) = [folder for folder in stable if folder.name.startswith("event-hero@")]
    errors = check_release([], [folder for folder in stable if folder != hero], environment=environment)
    assert "ticket-selector@1.0.0/component.toml:subscribes[0]" in where(errors)


def test_a_removed_data_source_others_subscribe_to_is_refused(
    stable: list[Path], candidate: Candidate, environment: jinja2.Environment
) -> None:
    new = candidate("event-hero", "1.1.0", ('[data.event]\nbff = "events"\npath = "/events/{event_id}"\n', ""))
    errors = check_release(stable, [new], environment=environment)
    contract = errors[where(errors).index("event-hero@1.1.0/component.toml:data.event")]
    assert "'event'" in contract.message and "removed" in contract.message
    assert "event-page@1.0.0, ticket-selector@1.0.0" in contract.message  # who depends on it
    assert "raise the major version (2.0.0)" in contract.message
    # ... and the whole-registry check names the subscribers left without a producer.
    assert "ticket-selector@1.0.0/component.toml:subscribes[0]" in where(errors)


def test_a_data_source_others_subscribe_to_loaded_from_elsewhere_is_refused(
    stable: list[Path], candidate: Candidate, environment: jinja2.Environment
) -> None:
    new = candidate("event-hero", "1.0.1", ('path = "/events/{event_id}"', 'path = "/v2/events/{event_id}"'))
    errors = check_release(stable, [new], environment=environment)
    assert where(errors) == ["event-hero@1.0.1/component.toml:data.event"]
    assert "now loads events /v2/events/{event_id} instead of events /events/{event_id}" in errors[0].message
    new_bff = candidate("event-hero", "1.2.0", ('bff = "events"', 'bff = "discovery"'))
    assert where(check_release(stable, [new_bff], environment=environment)) == [
        "event-hero@1.2.0/component.toml:data.event"
    ]


def test_a_removed_action_others_consume_is_refused(
    stable: list[Path], candidate: Candidate, environment: jinja2.Environment
) -> None:
    new = candidate(
        "ticket-selector",
        "1.1.0",
        ('[publishes."cart/quantity-selected"]', '[publishes."cart/tickets-chosen"]'),
    )
    errors = check_release(stable, [new], environment=environment)
    assert 'ticket-selector@1.1.0/component.toml:publishes."cart/quantity-selected"' in where(errors)
    contract = errors[where(errors).index('ticket-selector@1.1.0/component.toml:publishes."cart/quantity-selected"')]
    assert "no longer published" in contract.message and "cart-summary@1.0.0 consume it" in contract.message
    assert "raise the major version (2.0.0)" in contract.message


def test_a_retyped_or_removed_payload_field_others_consume_is_refused(
    stable: list[Path], candidate: Candidate, environment: jinja2.Environment
) -> None:
    # The whole-registry check sees field names only: a retyped field is the contract check's alone.
    retyped = candidate("ticket-selector", "1.1.0", ('quantity = "int"', 'quantity = "str"'))
    errors = check_release(stable, [retyped], environment=environment)
    assert where(errors) == ['ticket-selector@1.1.0/component.toml:publishes."cart/quantity-selected".payload.quantity']
    assert "as str instead of int" in errors[0].message and "cart-summary@1.0.0" in errors[0].message
    removed = candidate("ticket-selector", "1.2.0", (', quantity = "int"', ""))
    assert 'ticket-selector@1.2.0/component.toml:publishes."cart/quantity-selected".payload.quantity' in where(
        check_release(stable, [removed], environment=environment)
    )


def test_a_prop_added_without_a_default_is_refused(
    stable: list[Path], candidate: Candidate, environment: jinja2.Environment
) -> None:
    new = candidate(
        "ticket-selector",
        "1.1.0",
        ("[props.max_quantity]", '[props.currency]\ntype = "str"\nrequired = true\n\n[props.max_quantity]'),
    )
    errors = check_release(stable, [new], environment=environment)
    contract = errors[where(errors).index("ticket-selector@1.1.0/component.toml:props.currency")]
    assert "no default" in contract.message and "event-page@1.0.0" in contract.message
    assert "raise the major version (2.0.0)" in contract.message
    # The app that slots it in without the prop is named by the whole-registry check too.
    assert "event-page@1.0.0/component.toml:slots.main[0].props.currency" in where(errors)


def test_a_prop_whose_type_changes_is_refused(
    stable: list[Path], candidate: Candidate, environment: jinja2.Environment
) -> None:
    new = candidate("ticket-selector", "1.1.0", ('type = "int"\ndefault = 10', 'type = "str"\ndefault = "10"'))
    errors = check_release(stable, [new], environment=environment)
    assert where(errors) == ["ticket-selector@1.1.0/component.toml:props.max_quantity"]
    assert "now str instead of int" in errors[0].message


def test_an_apps_removed_route_is_refused(
    stable: list[Path], candidate: Candidate, environment: jinja2.Environment
) -> None:
    new = candidate("event-page", "1.1.0", ('routes = ["/e/{event_id:int}"]', 'routes = ["/events/{event_id:int}"]'))
    errors = check_release(stable, [new], environment=environment)
    assert where(errors) == ["event-page@1.1.0/component.toml:routes"]
    assert "'/e/{event_id:int}' is removed" in errors[0].message
    assert "raise the major version (2.0.0)" in errors[0].message


def test_a_major_version_may_break_its_contract(
    stable: list[Path], candidate: Candidate, environment: jinja2.Environment
) -> None:
    moved = ('path = "/events/{event_id}"', 'path = "/v2/events/{event_id}"')
    hero = candidate("event-hero", "2.0.0", moved)
    # The app pins `event-hero ~=1.0`: the major version alone leaves it without its hero (as `oberon check` says).
    assert where(check_release(stable, [hero], environment=environment)) == [
        "event-page@1.0.0/component.toml:slots.hero[0].component"
    ]
    # Released with an app that accepts 2.x, the break is accepted.
    page = candidate(
        "event-page",
        "1.1.0",
        ('component = "event-hero"\nversion = "~=1.0"', 'component = "event-hero"\nversion = ">=1.0,<3"'),
    )
    assert check_release(stable, [hero, page], environment=environment) == []


def test_a_candidates_whole_registry_errors_are_reported_with_file_and_field(
    stable: list[Path], candidate: Candidate, environment: jinja2.Environment
) -> None:
    new = candidate("ticket-selector", "1.1.0", ('subscribes = ["event"]', 'subscribes = ["event", "seats"]'))
    errors = check_release(stable, [new], environment=environment)
    assert "ticket-selector@1.1.0/component.toml:subscribes[1]: no component produces state key 'seats'" in [
        str(error) for error in errors
    ]
    assert {error.file for error in errors} == {Path("ticket-selector@1.1.0/component.toml")}
    broken = candidate("venue-info", "1.0.1", template="{% if %}")
    # As in `oberon check`, a component whose template does not compile is missing from the app that slots it in.
    assert where(check_release(stable, [broken], environment=environment)) == [
        "venue-info@1.0.1/template.html:line 1",
        "event-page@1.0.0/component.toml:slots.main[1].component",
    ]


def test_a_new_component_is_added_to_the_set(
    stable: list[Path], candidate: Candidate, environment: jinja2.Environment, tmp_path: Path
) -> None:
    folder = tmp_path / "candidates" / "seat-map@1.0.0"
    folder.mkdir(parents=True)
    (folder / "component.toml").write_text(
        'name = "seat-map"\nversion = "1.0.0"\nowner = "checkout"\nsubscribes = ["tickets", "seats"]\n'
    )
    (folder / "template.html").write_text("<div>{{ state.tickets }}</div>")
    errors = check_release(stable, [folder], environment=environment)
    assert where(errors) == ["seat-map@1.0.0/component.toml:subscribes[1]"]  # `tickets` has its producer


def test_errors_carry_no_path_of_the_services_disk(
    stable: list[Path], candidate: Candidate, environment: jinja2.Environment, tmp_path: Path
) -> None:
    # The same version twice: `oberon check`'s message names the other file, by its path.
    once = candidate("venue-info", "1.0.1")
    twice = [once, shutil.copytree(once, tmp_path / "elsewhere" / once.name)]
    errors = check_release(stable, twice, environment=environment)
    assert [str(error) for error in errors] == [
        "venue-info@1.0.1/component.toml:version: venue-info@1.0.1 is also declared in venue-info@1.0.1/component.toml"
    ]
    assert all(str(tmp_path) not in str(error) for error in errors), errors


def test_a_channel_change_runs_the_whole_registry_checks_without_the_contract(
    stable: list[Path], candidate: Candidate, environment: jinja2.Environment
) -> None:
    # A rollback to a version with an older contract is the point of a rollback; a broken set is still refused.
    older = candidate("ticket-selector", "1.0.1", ('quantity = "int"', 'quantity = "str"'))
    assert check_release(stable, [older], environment=environment) != []
    assert check_release(stable, [older], environment=environment, contracts=False) == []
    orphan = candidate("ticket-selector", "1.0.2", ('subscribes = ["event"]', 'subscribes = ["event", "seats"]'))
    assert "ticket-selector@1.0.2/component.toml:subscribes[1]" in where(
        check_release(stable, [orphan], environment=environment, contracts=False)
    )
