from __future__ import annotations

import pytest

from oberon.pipeline.routing import Route, Router


def test_route_converts_typed_params() -> None:
    route = Route.compile("/e/{event_id:int}", "event-page")
    assert route.match("/e/42") == {"event_id": 42}


@pytest.mark.parametrize("path", ["/e/abc", "/e/", "/e/1/extra", "/e/-1", "/e/1.5"])
def test_route_param_of_the_wrong_type_does_not_match(path: str) -> None:
    assert Route.compile("/e/{event_id:int}", "event-page").match(path) is None


def test_route_rejects_an_unknown_convertor() -> None:
    with pytest.raises(ValueError, match="Unknown path convertor"):
        Route.compile("/e/{id:colour}", "x")


def test_router_prefers_literal_routes_over_templated_ones() -> None:
    router = Router([Route.compile("/e/{slug}", "by-slug"), Route.compile("/e/new", "new-event")])
    found = router.match("/e/new")
    assert found is not None and found.route.app == "new-event"
    other = router.match("/e/rock")
    assert other is not None and other.params == {"slug": "rock"}


def test_router_returns_none_for_an_unknown_path() -> None:
    assert Router([Route.compile("/", "home")]).match("/nowhere") is None
