"""Deterministic demo data for the stand-in backends: events, venues, ticket tiers.

Every value is a pure function of an id, so two runs (and two processes) serve the same data.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import TypedDict

EVENT_COUNT = 600
VENUE_COUNT = 40
CATEGORIES: tuple[str, ...] = ("concerts", "theatre", "sports", "comedy", "family")
HOSTILE_EVENT_ID = 13
HOSTILE_NAME = 'Les "Misérables" </script><script>alert(1)</script> \u2028 & Co'
CURRENCY = "EUR"

_CET = timezone(timedelta(hours=1), "CET")
_SEASON_START = datetime(2027, 1, 1, tzinfo=_CET)

_PERFORMERS: dict[str, tuple[str, ...]] = {
    "concerts": (
        "The Paper Lanterns",
        "Mira Holm",
        "Northern Static",
        "Los Tres Soles",
        "Ada & the Harbour",
        "Velvet Orchard",
        "Jonas Berg Quartet",
        "Sunday Parade",
    ),
    "theatre": (
        "Cyrano",
        "The Glass Garden",
        "A Winter's Tale",
        "The Lighthouse Keeper",
        "Midsummer Nights",
        "The Clockmaker",
        "Hedda Gabler",
        "The Seagull",
    ),
    "sports": (
        "City Falcons vs Harbour Giants",
        "Rivertown Rovers vs Lakeside United",
        "National Indoor Athletics",
        "Six Days Cycling",
        "City Open Tennis",
        "Basketball Cup",
        "Ice Hockey Derby",
        "Handball Champions League",
    ),
    "comedy": (
        "Nora Quill",
        "Sam Okafor",
        "The Improvables",
        "Lena Fisk",
        "Mo Tanaka",
        "The Late Lunch Club",
        "Pia Lund",
        "Dev Marlowe",
    ),
    "family": (
        "The Gruffalo Live",
        "Circus of Small Wonders",
        "Dinosaur Discovery",
        "The Magic Porridge Pot",
        "Puppets on Parade",
        "Science Show Spectacular",
        "The Snow Queen on Ice",
        "Pirates of the Bathtub",
    ),
}
_TITLES: dict[str, tuple[str, ...]] = {
    "concerts": ("Live", "Acoustic Evening", "Summer Tour", "Album Release Show", "Unplugged", "Farewell Tour"),
    "theatre": ("Premiere", "Evening Performance", "Matinee", "Gala Night", "Closing Night", "Anniversary Staging"),
    "sports": ("Round 1", "Round 2", "Quarter-Final", "Semi-Final", "Final", "Season Opener"),
    "comedy": ("Stand-Up Special", "Work in Progress", "Late Show", "Tour Warm-Up", "Best Of", "New Material"),
    "family": ("Morning Show", "Afternoon Show", "Holiday Special", "Weekend Show", "Premiere", "Encore"),
}
_TAGLINES: dict[str, tuple[str, ...]] = {
    "concerts": ("Doors open an hour before the show.", "Expect new songs alongside the favourites."),
    "theatre": ("Running time is about two and a half hours.", "A new staging praised by critics."),
    "sports": ("Arrive early for the warm-up.", "Every seat has a clear view of the action."),
    "comedy": ("Recommended for ages 16 and up.", "An evening of sharp, warm-hearted jokes."),
    "family": ("Fun for children of all ages.", "Pushchair parking is available at the venue."),
}
_START_HOURS: dict[str, tuple[int, ...]] = {
    "concerts": (19, 20, 21),
    "theatre": (14, 19, 20),
    "sports": (15, 18, 20),
    "comedy": (20, 21, 22),
    "family": (10, 11, 14),
}
_BASE_PRICE_CENTS: dict[str, int] = {"concerts": 3900, "theatre": 4500, "sports": 2900, "comedy": 2500, "family": 1500}
_TIERS: tuple[tuple[str, str, int], ...] = (
    ("standard", "Standard", 100),
    ("reserved", "Reserved seating", 150),
    ("premium", "Premium", 220),
    ("vip", "VIP package", 400),
)

_CITIES: tuple[str, ...] = (
    "Amsterdam",
    "Berlin",
    "Copenhagen",
    "Dublin",
    "Lisbon",
    "Madrid",
    "Paris",
    "Prague",
    "Stockholm",
    "Vienna",
)
_VENUE_PREFIXES: tuple[str, ...] = (
    "Riverside",
    "Grand",
    "Royal",
    "Harbour",
    "Old Town",
    "Parkside",
    "Central",
    "North",
)
_VENUE_KINDS: tuple[str, ...] = ("Hall", "Arena", "Theatre", "Stadium", "Playhouse")
_STREETS: tuple[str, ...] = ("Market Street", "Canal Road", "Station Square", "Linden Avenue", "Harbour Quay")
_CAPACITIES: tuple[int, ...] = (450, 900, 1800, 3200, 6500, 12000, 25000)
# Step multipliers coprime to the 120 events per category, so stepping through a category visits all of it.
_RELATED_STEPS: tuple[int, ...] = (1, 7, 11, 13, 17, 19, 23)
MAX_RELATED = 20
MAX_QUERY_LENGTH = 100


class Venue(TypedDict):
    id: int
    name: str
    city: str
    address: str
    capacity: int


class Event(TypedDict):
    id: int
    name: str
    performer: str
    category: str
    starts_at: str
    venue_id: int
    summary: str
    image_alt: str


class EventSummary(TypedDict):
    id: int
    name: str
    starts_at: str
    category: str
    venue_id: int


class EventPage(TypedDict):
    items: list[Event]
    total: int


class SummaryPage(TypedDict):
    items: list[EventSummary]
    total: int


class TicketTier(TypedDict):
    id: str
    name: str
    price_cents: int
    currency: str
    available: int


def venue(venue_id: int) -> Venue | None:
    """The venue with this id, or None when there is none."""
    if not 1 <= venue_id <= VENUE_COUNT:
        return None
    n = venue_id - 1
    city = _CITIES[n % len(_CITIES)]
    # 8 prefixes x 5 kinds: every venue gets its own name.
    prefix = _VENUE_PREFIXES[n % len(_VENUE_PREFIXES)]
    kind = _VENUE_KINDS[(n + n // len(_VENUE_PREFIXES)) % len(_VENUE_KINDS)]
    street = _STREETS[(n * 2) % len(_STREETS)]
    return {
        "id": venue_id,
        "name": f"{prefix} {kind}",
        "city": city,
        "address": f"{(n * 17) % 180 + 1} {street}, {city}",
        "capacity": _CAPACITIES[(n * 5) % len(_CAPACITIES)],
    }


def _category(event_id: int) -> str:
    # Offset so that event 13, whose name is a musical, is a theatre show.
    return CATEGORIES[(event_id + 3) % len(CATEGORIES)]


def _starts_at(event_id: int) -> datetime:
    hours = _START_HOURS[_category(event_id)]
    day = (event_id * 37) % 365
    return _SEASON_START + timedelta(days=day, hours=hours[event_id % len(hours)], minutes=30 * (event_id % 2))


def _event_venue_id(event_id: int) -> int:
    return (event_id * 7) % VENUE_COUNT + 1


def event(event_id: int) -> Event | None:
    """The event with this id, or None when there is none."""
    if not 1 <= event_id <= EVENT_COUNT:
        return None
    category = _category(event_id)
    rank = (event_id - 1) // len(CATEGORIES)
    performer = _PERFORMERS[category][(rank * 5) % len(_PERFORMERS[category])]
    if event_id == HOSTILE_EVENT_ID:
        performer = "Les Misérables"
    title = _TITLES[category][rank % len(_TITLES[category])]
    tagline = _TAGLINES[category][event_id % len(_TAGLINES[category])]
    place = venue(_event_venue_id(event_id))
    assert place is not None
    name = HOSTILE_NAME if event_id == HOSTILE_EVENT_ID else f"{performer}: {title}"
    return {
        "id": event_id,
        "name": name,
        "performer": performer,
        "category": category,
        "starts_at": _starts_at(event_id).isoformat(),
        "venue_id": place["id"],
        "summary": f"See {performer} at {place['name']} in {place['city']}. {tagline}",
        "image_alt": f"{performer} at {place['name']}",
    }


def summary(item: Event) -> EventSummary:
    """The short form of an event used in listings."""
    return {
        "id": item["id"],
        "name": item["name"],
        "starts_at": item["starts_at"],
        "category": item["category"],
        "venue_id": item["venue_id"],
    }


def _events(ids: list[int]) -> list[Event]:
    found = [event(event_id) for event_id in ids]
    return [item for item in found if item is not None]


def events(offset: int = 0, limit: int = 20, category: str | None = None) -> EventPage:
    """One page of events in id order, optionally of one category, with the total that match."""
    if offset < 0 or limit < 0:
        raise ValueError(f"offset and limit must be non-negative, got offset={offset}, limit={limit}")
    if category is not None and category not in CATEGORIES:
        raise ValueError(f"unknown category {category!r}, expected one of {', '.join(CATEGORIES)}")
    ids = [i for i in range(1, EVENT_COUNT + 1) if category is None or _category(i) == category]
    return {"items": _events(ids[offset : offset + limit]), "total": len(ids)}


def _searched_text(item: Event) -> str:
    place = venue(item["venue_id"])
    assert place is not None
    return " ".join((item["name"], item["performer"], place["name"], place["city"])).casefold()


def search(query: str = "", category: str | None = None, offset: int = 0, limit: int = 20) -> SummaryPage:
    """One page of the events whose name, performer, venue or city hold every word of `query` (any case), in id
    order, optionally of one category, with the total that match; an empty query matches every event."""
    if len(query) > MAX_QUERY_LENGTH:
        raise ValueError(f"query must be at most {MAX_QUERY_LENGTH} characters, got {len(query)}")
    if offset < 0 or limit < 0:
        raise ValueError(f"offset and limit must be non-negative, got offset={offset}, limit={limit}")
    if category is not None and category not in CATEGORIES:
        raise ValueError(f"unknown category {category!r}, expected one of {', '.join(CATEGORIES)}")
    words = query.casefold().split()
    candidates = _events([i for i in range(1, EVENT_COUNT + 1) if category is None or _category(i) == category])
    found = [item for item in candidates if all(word in _searched_text(item) for word in words)]
    return {"items": [summary(item) for item in found[offset : offset + limit]], "total": len(found)}


def tickets(event_id: int) -> list[TicketTier] | None:
    """The ticket tiers (2 to 4) on sale for an event, or None when the event does not exist."""
    item = event(event_id)
    if item is None:
        return None
    base = _BASE_PRICE_CENTS[item["category"]]
    count = 2 + event_id % 3
    tiers: list[TicketTier] = []
    for index, (slug, name, percent) in enumerate(_TIERS[:count]):
        sold_out = (event_id + index) % 5 == 0
        tiers.append(
            {
                "id": f"{event_id}-{slug}",
                "name": name,
                "price_cents": base * percent // 100 + (event_id % 4) * 100,
                "currency": CURRENCY,
                "available": 0 if sold_out else (event_id * 37 + index * 101) % 400 + 1,
            }
        )
    return tiers


def related(event_id: int, limit: int = 4) -> list[EventSummary] | None:
    """Up to `limit` (at most MAX_RELATED) other events of the same category, or None for an unknown event."""
    if event(event_id) is None:
        return None
    if limit < 0:
        raise ValueError(f"limit must be non-negative, got {limit}")
    step = len(CATEGORIES) * _RELATED_STEPS[event_id % len(_RELATED_STEPS)]
    ids = [(event_id - 1 + step * k) % EVENT_COUNT + 1 for k in range(1, min(limit, MAX_RELATED) + 1)]
    return [summary(item) for item in _events(ids)]


def featured(limit: int = 12) -> list[EventSummary]:
    """The first `limit` events by start time (ties by id): the soonest shows of the season."""
    if limit < 0:
        raise ValueError(f"limit must be non-negative, got {limit}")
    ids = sorted(range(1, EVENT_COUNT + 1), key=lambda i: (_starts_at(i), i))
    return [summary(item) for item in _events(ids[:limit])]
