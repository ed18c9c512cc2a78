from __future__ import annotations

from datetime import datetime

import pytest

from infra.local import catalogue


def test_catalogue_is_deterministic() -> None:
    first = [catalogue.event(i) for i in range(1, 601)], [catalogue.venue(i) for i in range(1, 41)]
    second = [catalogue.event(i) for i in range(1, 601)], [catalogue.venue(i) for i in range(1, 41)]
    assert first == second
    assert [catalogue.tickets(i) for i in range(1, 601)] == [catalogue.tickets(i) for i in range(1, 601)]
    assert catalogue.featured(12) == catalogue.featured(12)


def test_catalogue_has_600_events_and_40_venues() -> None:
    assert all(catalogue.event(i) is not None for i in range(1, 601))
    assert catalogue.event(0) is None
    assert catalogue.event(601) is None
    assert all(catalogue.venue(i) is not None for i in range(1, 41))
    assert catalogue.venue(0) is None
    assert catalogue.venue(41) is None
    assert catalogue.events(0, 1000)["total"] == 600


def test_event_fields_are_well_formed() -> None:
    for event_id in range(1, 601):
        item = catalogue.event(event_id)
        assert item is not None
        assert item["id"] == event_id
        assert item["category"] in catalogue.CATEGORIES
        starts_at = datetime.fromisoformat(item["starts_at"])
        assert starts_at.year == 2027
        assert starts_at.utcoffset() is not None
        assert catalogue.venue(item["venue_id"]) is not None
        assert item["name"] and item["performer"] and item["summary"] and item["image_alt"]


def test_event_13_has_the_hostile_name() -> None:
    item = catalogue.event(13)
    assert item is not None
    assert item["name"] == 'Les "Misérables" </script><script>alert(1)</script> \u2028 & Co'
    assert "<" not in item["summary"]


def test_event_names_elsewhere_are_plain_text() -> None:
    for event_id in range(1, 601):
        item = catalogue.event(event_id)
        assert item is not None
        if event_id != 13:
            assert not set('<>"\u2028') & set(item["name"] + item["summary"] + item["image_alt"])


def test_venue_fields_are_well_formed() -> None:
    venues = [catalogue.venue(i) for i in range(1, 41)]
    assert all(v is not None and v["capacity"] > 0 and v["city"] in v["address"] for v in venues)
    assert len({v["name"] for v in venues if v is not None}) == 40


def test_events_pages_through_every_event_in_id_order() -> None:
    ids = [item["id"] for offset in range(0, 600, 100) for item in catalogue.events(offset, 100)["items"]]
    assert ids == list(range(1, 601))
    assert catalogue.events(590, 20)["items"][-1]["id"] == 600
    assert catalogue.events(600, 20)["items"] == []


def test_events_filters_by_category() -> None:
    page = catalogue.events(0, 200, "sports")
    assert page["total"] == 120
    assert len(page["items"]) == 120
    assert {item["category"] for item in page["items"]} == {"sports"}


@pytest.mark.parametrize(("offset", "limit", "category"), [(-1, 10, None), (0, -1, None), (0, 10, "opera")])
def test_events_rejects_bad_arguments(offset: int, limit: int, category: str | None) -> None:
    with pytest.raises(ValueError):
        catalogue.events(offset, limit, category)


def test_tickets_have_two_to_four_tiers_and_some_sold_out() -> None:
    sold_out = 0
    for event_id in range(1, 601):
        tiers = catalogue.tickets(event_id)
        assert tiers is not None
        assert 2 <= len(tiers) <= 4
        assert len({tier["id"] for tier in tiers}) == len(tiers)
        assert all(tier["currency"] == "EUR" and tier["price_cents"] > 0 and tier["available"] >= 0 for tier in tiers)
        sold_out += sum(tier["available"] == 0 for tier in tiers)
    assert sold_out > 0
    assert catalogue.tickets(601) is None


def test_related_never_includes_the_event_itself() -> None:
    for event_id in range(1, 601):
        related = catalogue.related(event_id)
        assert related is not None
        ids = [item["id"] for item in related]
        assert len(ids) == 4
        assert len(set(ids)) == 4
        assert event_id not in ids
        assert all(1 <= i <= 600 for i in ids)


def test_related_honours_the_limit_up_to_its_maximum() -> None:
    related = catalogue.related(7, 1000)
    assert related is not None
    assert len(related) == catalogue.MAX_RELATED
    assert 7 not in [item["id"] for item in related]
    assert catalogue.related(7, 0) == []
    assert catalogue.related(601) is None


def test_featured_is_the_soonest_events_first() -> None:
    featured = catalogue.featured(12)
    assert len(featured) == 12
    starts = [datetime.fromisoformat(item["starts_at"]) for item in featured]
    assert starts == sorted(starts)
    assert set(featured[0]) == {"id", "name", "starts_at", "category", "venue_id"}


def test_search_matches_every_word_in_name_performer_venue_or_city_in_any_case() -> None:
    found = catalogue.search("PAPER lanterns", None, 0, 600)
    assert found["total"] == len(found["items"]) > 0
    assert all("the paper lanterns" in item["name"].casefold() for item in found["items"])
    venues = [catalogue.venue(item["venue_id"]) for item in catalogue.search("paris", None, 0, 600)["items"]]
    assert venues and all(place is not None and place["city"] == "Paris" for place in venues)
    venues = [catalogue.venue(item["venue_id"]) for item in catalogue.search("riverside hall", None, 0, 600)["items"]]
    assert venues and all(place is not None and place["name"] == "Riverside Hall" for place in venues)
    assert [item["id"] for item in catalogue.search("</SCRIPT>", None, 0, 10)["items"]] == [catalogue.HOSTILE_EVENT_ID]
    assert catalogue.search("lanterns nowhere", None, 0, 10) == {"items": [], "total": 0}


def test_search_pages_in_id_order_and_filters_by_category() -> None:
    whole = catalogue.search("the", None, 0, 600)["items"]
    ids = [item["id"] for item in whole]
    assert ids == sorted(ids)
    assert [item["id"] for item in catalogue.search("the", None, 10, 5)["items"]] == ids[10:15]
    family = catalogue.search("the", "family", 0, 600)
    assert family["total"] == len(family["items"]) > 0
    assert {item["category"] for item in family["items"]} == {"family"}
    assert set(family["items"][0]) == {"id", "name", "starts_at", "category", "venue_id"}


def test_search_without_words_matches_every_event_of_the_category() -> None:
    assert catalogue.search("", None, 0, 5)["total"] == 600
    assert catalogue.search("   ", "comedy", 0, 5)["total"] == 120


@pytest.mark.parametrize(
    ("query", "offset", "limit", "category"),
    [("x" * 101, 0, 10, None), ("", -1, 10, None), ("", 0, -1, None), ("", 0, 10, "opera")],
)
def test_search_rejects_bad_arguments(query: str, offset: int, limit: int, category: str | None) -> None:
    with pytest.raises(ValueError):
        catalogue.search(query, category, offset, limit)
