from __future__ import annotations

from pathlib import Path

import pytest

from gateway.errors import RouteTableError
from gateway.table import (
    Auth,
    Route,
    RouteTable,
    default_table,
    load_table,
    normalize_path,
    parse_table,
    stand_in_routes,
)

UPSTREAMS = ["renderer", "bff:events", "backend:users"]
ROOT = Path(__file__).resolve().parents[2]


def errors_of(text: str) -> list[str]:
    with pytest.raises(RouteTableError) as caught:
        parse_table(text, file="routes.toml", upstreams=UPSTREAMS)
    return caught.value.errors


def test_table_parses_a_valid_table() -> None:
    table = parse_table(
        '[[route]]\nprefix = "/"\nupstream = "renderer"\nauth = "optional"\n\n'
        '[[route]]\nprefix = "/bff/events/"\nupstream = "bff:events"\nauth = "none"\n'
        'methods = ["GET"]\ntimeout = 2.5\nstrip_prefix = true\n',
        file="routes.toml",
        upstreams=UPSTREAMS,
    )
    route = table.match("/bff/events/1")
    assert route == Route(
        prefix="/bff/events",
        upstream="bff:events",
        auth=Auth.NONE,
        methods=frozenset({"GET", "HEAD"}),
        timeout=2.5,
        strip_prefix=True,
    )
    assert route.upstream_path("/bff/events/1") == "/1"
    assert route.upstream_path("/bff/events") == "/"


def test_table_reports_an_unknown_upstream_with_its_line() -> None:
    errors = errors_of('# routes\n\n[[route]]\nprefix = "/"\nupstream = "bff:shop"\nauth = "none"\n')
    assert errors == [
        "routes.toml:5: route.upstream: unknown upstream 'bff:shop'; known: backend:users, bff:events, renderer"
    ]


def test_table_reports_a_duplicate_prefix_with_both_lines() -> None:
    errors = errors_of(
        '[[route]]\nprefix = "/bff/events"\nupstream = "bff:events"\nauth = "none"\n\n'
        '[[route]]\nprefix = "/bff/events/"\nupstream = "renderer"\nauth = "none"\n'
    )
    assert errors == ["routes.toml:7: route.prefix: duplicate prefix '/bff/events' (first at line 2)"]


def test_table_reports_a_bad_auth_value_with_its_line() -> None:
    errors = errors_of('[[route]]\nprefix = "/"\nupstream = "renderer"\nauth = "maybe"\n')
    assert errors == ["routes.toml:4: route.auth: expected one of none, optional, required, got 'maybe'"]


def test_table_reports_every_error_not_only_the_first() -> None:
    errors = errors_of(
        '[[route]]\nprefix = "nope"\nupstream = "renderer"\nauth = "none"\ncolour = "red"\n\n'
        '[[route]]\nprefix = "/x"\nupstream = "renderer"\nmethods = ["FETCH"]\ntimeout = 0\n\n'
        '[[route]]\nprefix = "/y"\nupstream = "renderer"\nauth = "optional"\nadmin = true\n'
    )
    assert errors == [
        "routes.toml:5: route.colour: unknown field; expected prefix, upstream, auth, methods, timeout, strip_prefix,"
        " admin, forward_authorization, forward_cookies, waiting_room",
        "routes.toml:2: route.prefix: expected a path starting with '/', got 'nope'",
        "routes.toml:7: route.auth: missing required field",
        "routes.toml:10: route.methods: unknown method 'FETCH'; expected some of DELETE, GET, HEAD, OPTIONS, PATCH,"
        " POST, PUT",
        "routes.toml:11: route.timeout: expected seconds, more than 0 and at most 300, got 0",
        "routes.toml:17: route.admin: an admin route takes the admin token as its Bearer token,"
        ' so it needs auth = "none"',
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[[route\n", "routes.toml:1: not valid TOML"),
        ('route = [{prefix = "/", upstream = "renderer", auth = "none"}]\n', "write each route as its own [[route]]"),
        ('[routes]\nprefix = "/"\n', "routes.toml:1: routes: unknown field"),
        ('[[route]]\nprefix = "/a/../b"\nupstream = "renderer"\nauth = "none"\n', "'.' and '..' segments"),
        ('[[route]]\nprefix = "/a"\nupstream = "renderer"\nauth = "none"\nstrip_prefix = "yes"\n', "routes.toml:5:"),
    ],
)
def test_table_rejects_malformed_tables(text: str, message: str) -> None:
    assert any(message in error for error in errors_of(text)), errors_of(text)


def test_table_load_names_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(RouteTableError, match="cannot read the routing table"):
        load_table(tmp_path / "routes.toml", upstreams=UPSTREAMS)


def test_table_longest_prefix_wins() -> None:
    table = RouteTable(
        [
            Route(prefix="/", upstream="renderer", auth=Auth.OPTIONAL),
            Route(prefix="/account", upstream="renderer", auth=Auth.REQUIRED),
            Route(prefix="/account/public", upstream="renderer", auth=Auth.NONE),
        ]
    )
    assert table.match("/account/orders").auth is Auth.REQUIRED  # type: ignore[union-attr]
    assert table.match("/account/public/x").auth is Auth.NONE  # type: ignore[union-attr]
    assert table.match("/e/1").auth is Auth.OPTIONAL  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("path", "matches"),
    [("/account", True), ("/account/", True), ("/account/x", True), ("/accounts", False), ("/acc", False)],
)
def test_table_prefixes_match_whole_segments(path: str, matches: bool) -> None:
    route = Route(prefix="/account", upstream="renderer", auth=Auth.REQUIRED)
    assert route.matches(path) is matches


def test_table_without_a_root_route_matches_nothing_else() -> None:
    table = RouteTable([Route(prefix="/bff/events", upstream="bff:events", auth=Auth.NONE)])
    assert table.match("/") is None


@pytest.mark.parametrize(
    ("raw", "normal"),
    [
        ("/", "/"),
        ("/e/1", "/e/1"),
        ("//account", "/account"),
        ("/_oberon/assets/../../account", "/account"),
        ("/a/./b/", "/a/b/"),
        ("/../../etc/passwd", "/etc/passwd"),
        ("/a/..", "/"),
    ],
)
def test_table_normalize_path_resolves_dots_and_slashes(raw: str, normal: str) -> None:
    assert normalize_path(raw) == normal


def test_table_default_table_routes_pages_and_bffs_but_no_backend() -> None:
    table = default_table(UPSTREAMS)
    assert table.match("/e/1").upstream == "renderer"  # type: ignore[union-attr]
    assert table.match("/bff/events/events/1").upstream == "bff:events"  # type: ignore[union-attr]
    assert table.match("/_backends/users/_faults").upstream == "renderer"  # type: ignore[union-attr]


def test_table_stand_in_routes_are_admin_routes_to_each_stand_in() -> None:
    table = default_table(UPSTREAMS).adding(stand_in_routes(["backend:users"]))
    backend = table.match("/_backends/users/_faults")
    assert backend is not None and backend.admin and backend.auth is Auth.NONE
    assert backend.upstream_path("/_backends/users/_faults") == "/_faults"


def test_table_refuses_a_stand_in_route_the_sites_table_has_already() -> None:
    text = '[[route]]\nprefix = "/_backends/users"\nupstream = "backend:users"\nauth = "none"\n'
    table = parse_table(text, file="routes.toml", upstreams=UPSTREAMS)
    with pytest.raises(RouteTableError, match="'/_backends/users' is the topology's"):
        table.adding(stand_in_routes(["backend:users"]))


def test_table_of_the_demo_site_is_valid() -> None:
    upstreams = ["renderer"] + [f"bff:{name}" for name in ("discovery", "events", "checkout", "account")]
    upstreams += [f"backend:{name}" for name in ("events", "venues", "ticketing", "recommendations", "users")]
    table = load_table(ROOT / "gateway" / "routes.toml", upstreams=upstreams)
    assert table.upstreams == {name for name in upstreams if not name.startswith("backend:")}
    assert not [route for route in table.routes if route.prefix.startswith("/_backends")]  # the topology's to add
    assert table.match("/account").auth is Auth.REQUIRED  # type: ignore[union-attr]
    island = table.match("/_islands/cart-summary")
    assert island is not None and (island.upstream, island.auth) == ("renderer", Auth.OPTIONAL)  # the visitor's own
    assert island.allows("GET") and not island.allows("POST") and not island.strip_prefix
    assert table.match("/_oberon/assets/site-header/1.0.0/assets/site.css").auth is Auth.NONE  # type: ignore[union-attr]
