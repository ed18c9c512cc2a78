"""The stand-in backend microservices (events, venues, ticketing, recommendations) as Starlette apps.

Each is a pure function of the catalogue, but for ticketing's carts (`carts.py`), kept in its process's memory."""

from __future__ import annotations

from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from infra.local import catalogue
from infra.local.carts import Carts

BACKENDS: tuple[str, ...] = ("events", "venues", "ticketing", "recommendations")
MAX_PAGE_SIZE = 100
DEFAULT_PAGE_SIZE = 20
DEFAULT_FEATURED = 12
DEFAULT_RELATED = 4
NO_STORE = "no-store"
# How long callers may keep each kind of answer, and keep using it while this service fails.
EVENT_CACHE = "max-age=60, stale-if-error=3600"
VENUE_CACHE = "max-age=300, stale-if-error=86400"
TICKETS_CACHE = "max-age=5, stale-if-error=60"
LISTING_CACHE = "max-age=30, stale-if-error=600"


class QueryError(ValueError):
    """A query parameter has a value the endpoint cannot use."""


def _json(content: Any, status_code: int = 200, *, cache_control: str = NO_STORE) -> JSONResponse:
    if status_code >= 400:
        cache_control = NO_STORE
    return JSONResponse(content, status_code=status_code, headers={"Cache-Control": cache_control})


def _not_found(what: str) -> JSONResponse:
    return _json({"error": f"{what} not found"}, 404)


def _int_param(request: Request, name: str, default: int, *, maximum: int) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    try:
        value = int(raw) if raw.isascii() and raw.isdigit() else -1
    except ValueError:  # more digits than int() accepts
        value = -1
    if value < 0:
        raise QueryError(f"{name} must be a non-negative integer, got {raw!r}")
    return min(value, maximum)


def _category_param(request: Request) -> str | None:
    """The `category` filter; absent or empty means every category."""
    category = request.query_params.get("category") or None
    if category is not None and category not in catalogue.CATEGORIES:
        raise QueryError(f"category must be one of {', '.join(catalogue.CATEGORIES)}, got {category!r}")
    return category


async def list_events(request: Request) -> Response:
    """`GET /events?offset=&limit=&category=`: one page of events and the total that match."""
    offset = _int_param(request, "offset", 0, maximum=catalogue.EVENT_COUNT)
    limit = _int_param(request, "limit", DEFAULT_PAGE_SIZE, maximum=MAX_PAGE_SIZE)
    return _json(catalogue.events(offset, limit, _category_param(request)))


async def search_events(request: Request) -> Response:
    """`GET /events/search?q=&category=&offset=&limit=`: one page of the events matching `q`, and the total."""
    query = request.query_params.get("q", "")
    if len(query) > catalogue.MAX_QUERY_LENGTH:
        raise QueryError(f"q must be at most {catalogue.MAX_QUERY_LENGTH} characters, got {len(query)}")
    offset = _int_param(request, "offset", 0, maximum=catalogue.EVENT_COUNT)
    limit = _int_param(request, "limit", DEFAULT_PAGE_SIZE, maximum=MAX_PAGE_SIZE)
    category = _category_param(request)
    return _json(catalogue.search(query, category, offset, limit), cache_control=LISTING_CACHE)


async def get_event(request: Request) -> Response:
    """`GET /events/{event_id}`: one event."""
    item = catalogue.event(request.path_params["event_id"])
    return _not_found("event") if item is None else _json(item, cache_control=EVENT_CACHE)


async def get_venue(request: Request) -> Response:
    """`GET /venues/{venue_id}`: one venue."""
    item = catalogue.venue(request.path_params["venue_id"])
    return _not_found("venue") if item is None else _json(item, cache_control=VENUE_CACHE)


async def get_tickets(request: Request) -> Response:
    """`GET /events/{event_id}/tickets`: the ticket tiers of an event."""
    event_id: int = request.path_params["event_id"]
    tiers = catalogue.tickets(event_id)
    if tiers is None:
        return _not_found("event")
    return _json({"event_id": event_id, "tiers": tiers}, cache_control=TICKETS_CACHE)


async def get_related(request: Request) -> Response:
    """`GET /events/{event_id}/related?limit=`: other events like this one."""
    event_id: int = request.path_params["event_id"]
    limit = _int_param(request, "limit", DEFAULT_RELATED, maximum=catalogue.MAX_RELATED)
    items = catalogue.related(event_id, limit)
    if items is None:
        return _not_found("event")
    return _json({"event_id": event_id, "items": items}, cache_control=LISTING_CACHE)


async def get_featured(request: Request) -> Response:
    """`GET /featured?limit=`: the events to show first on the home page."""
    limit = _int_param(request, "limit", DEFAULT_FEATURED, maximum=MAX_PAGE_SIZE)
    return _json({"items": catalogue.featured(limit)}, cache_control=LISTING_CACHE)


def _health(name: str) -> Route:
    async def health(request: Request) -> Response:
        return _json({"status": "ok", "service": name})

    return Route("/health", health, methods=["GET"])


def _routes(name: str) -> list[Route]:
    if name == "events":
        return [
            Route("/events", list_events),
            Route("/events/search", search_events),
            Route("/events/{event_id:int}", get_event),
        ]
    if name == "venues":
        return [Route("/venues/{venue_id:int}", get_venue)]
    if name == "ticketing":
        return [Route("/events/{event_id:int}/tickets", get_tickets), *Carts().routes()]
    if name == "recommendations":
        return [Route("/events/{event_id:int}/related", get_related), Route("/featured", get_featured)]
    raise ValueError(f"unknown backend {name!r}, expected one of {', '.join(BACKENDS)}")


async def _query_error(request: Request, exc: Exception) -> Response:
    return _json({"error": str(exc)}, 400)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    response = _json({"error": exc.detail}, exc.status_code)
    response.headers.update(exc.headers or {})
    return response


def create_app(name: str) -> Starlette:
    """The stand-in backend `name`; the topology wraps it in a `FaultInjector` so it can be broken."""
    return Starlette(
        routes=[*_routes(name), _health(name)],
        exception_handlers={QueryError: _query_error, HTTPException: _http_error},
    )
