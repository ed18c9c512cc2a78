"""The waiting room: first in, first out at a route's capacity; a signed ticket holds a place, a forged one does not."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import httpx
import itsdangerous
import pytest
from starlette.responses import Response

from gateway.app import Gateway
from gateway.errors import RouteTableError
from gateway.pages import create_environment
from gateway.stores import Stores, open_stores
from gateway.table import RouteTable, parse_table
from gateway.waiting_room import (
    ADMISSION_SECONDS,
    GO_ON,
    TICKET_SALT,
    TICKET_SECONDS,
    MemoryQueue,
    Passage,
    WaitingRoom,
    burst,
    cookie_names,
)
from tests.conftest import FakeClock
from tests.gateway.conftest import SECRET, TABLE, GatewayFactory, upstream_names
from tests.redis_server import RedisServer

pytestmark = pytest.mark.anyio

ROOM = "/bff/shop"
CAPACITY = 6  # a minute: one every ten seconds, and at most one at once
HTML = {"Accept": "text/html,application/xhtml+xml"}
API = {"Accept": "application/json"}
TICKET, ADMISSION = cookie_names(ROOM, https=False)


def on_sale_table() -> RouteTable:
    limited = f"strip_prefix = true\ntimeout = 0.5\nwaiting_room = {CAPACITY}"
    text = TABLE.replace("strip_prefix = true\ntimeout = 0.5", limited)
    assert f"waiting_room = {CAPACITY}" in text
    return parse_table(text, file="routes.toml", upstreams=upstream_names())


@pytest.fixture
async def stores(clock: FakeClock) -> AsyncIterator[Stores]:
    made = open_stores("", clock=clock)
    yield made
    await made.aclose()


def visitor(gateway: Gateway, *, scheme: str = "http") -> httpx.AsyncClient:
    """A browser (with its own cookie jar) at the gateway."""
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=gateway.app()), base_url=f"{scheme}://site.test")


async def position(client: httpx.AsyncClient) -> int | None:
    """Ask for the on-sale route as an API caller: None when let on, else the place in line."""
    response = await client.get(f"{ROOM}/buy", headers=API)
    if response.status_code == 200:
        assert response.json()["path"] == "/buy", "an admitted visitor reaches the upstream"
        return None
    assert response.status_code == 503 and response.headers["cache-control"] == "no-store"
    body = response.json()
    assert response.headers["retry-after"] == str(body["retry_after"])
    return int(body["position"])


async def admit_in_turn(gateways: list[Gateway], clock: FakeClock, count: int) -> list[int]:
    """`count` visitors arrive at once (alternating between `gateways`), then the clock moves one admission at a time
    and every waiting visitor asks again, the last arrived first; the arrival numbers in the order they got in."""
    visitors = [visitor(gateways[index % len(gateways)]) for index in range(count)]
    places = [await position(client) for client in visitors]
    assert places == [None, *range(1, count)], "the first is let on at once; the others line up in arrival order"
    order, waiting = [1], list(range(2, count + 1))
    admissions = {1: 1}
    frontier = 1
    while waiting:
        clock.now += 60 / CAPACITY
        frontier += 1  # one more let on, whoever asks first
        for number in reversed(waiting):
            place = await position(visitors[number - 1])
            if place is None:
                order.append(number)
                admissions[number] = admissions.get(number, 0) + 1
            else:
                assert place == number - frontier, "a place counts down as those ahead get in"
        waiting = [number for number in waiting if number not in order]
    for client in visitors:
        assert await position(client) is None, "an admitted visitor's next page is not queued"
        assert client.cookies.get(TICKET) is None and client.cookies.get(ADMISSION)
        await client.aclose()
    assert set(admissions.values()) == {1}, "none admitted twice"
    return order


async def test_visitors_are_admitted_in_arrival_order_at_the_capacity(
    make_gateway: GatewayFactory, clock: FakeClock
) -> None:
    assert burst(CAPACITY) == 1
    gateway = make_gateway(routes=on_sale_table())
    assert await admit_in_turn([gateway], clock, 8) == list(range(1, 9))


async def test_an_admitted_visitor_is_not_queued_again_and_does_not_take_a_number(
    make_gateway: GatewayFactory, clock: FakeClock
) -> None:
    gateway = make_gateway(routes=on_sale_table())
    gateway.waiting_room = WaitingRoom(
        queues=gateway.stores.queues, secret=SECRET, environment=gateway.pages.environment, clock=clock
    )
    async with visitor(gateway) as first, visitor(gateway) as second:
        assert await position(first) is None
        assert await position(second) == 1
        for _ in range(5):
            assert await position(first) is None, "no second trip through the line"
            assert (await first.get(f"{ROOM}/page", headers=HTML)).status_code == 200
        async with visitor(gateway) as third:
            assert await position(third) == 2, "the admitted visitor's pages drew no numbers"
        clock.now += ADMISSION_SECONDS + 1
        # Meanwhile the second got in (the frontier moved to 2); the first is number 4 now.
        assert await position(first) == 2, "after its window, an admission is spent: the visitor lines up again"


async def test_the_queue_page_needs_no_script_refreshes_itself_and_holds_the_place_in_a_signed_cookie(
    make_gateway: GatewayFactory,
) -> None:
    gateway = make_gateway(routes=on_sale_table())
    async with visitor(gateway) as first, visitor(gateway, scheme="https") as second:
        first_page = await first.get(f"{ROOM}/buy", headers=HTML)
        assert first_page.status_code == 200 and first_page.json()["path"] == "/buy"
        assert first_page.headers["cache-control"] == "no-store", "the answer that sets an admission is never shared"
        assert "oberon_admit_" in first_page.headers["set-cookie"]
        page = await second.get(f"{ROOM}/buy", headers=HTML)
        assert page.status_code == 200 and "text/html" in page.headers["content-type"]
        assert page.headers["cache-control"] == "no-store" and page.headers["retry-after"] == "10"
        assert '<meta http-equiv="refresh" content="10">' in page.text
        assert "<script" not in page.text and 'role="status"' in page.text
        assert "Your place in line: <strong>1</strong>" in page.text
        set_cookie = page.headers["set-cookie"]
        assert set_cookie.startswith("__Host-oberon_queue_") and "Secure" in set_cookie
        assert "HttpOnly" in set_cookie and "SameSite=Lax" in set_cookie and "Path=/" in set_cookie
        assert "Content-Security-Policy" in page.headers


async def test_a_forged_or_tampered_ticket_goes_to_the_back_of_the_line(
    make_gateway: GatewayFactory, clock: FakeClock
) -> None:
    gateway = make_gateway(routes=on_sale_table())
    clients = [visitor(gateway) for _ in range(4)]
    assert [await position(client) for client in clients] == [None, 1, 2, 3]
    genuine = clients[3].cookies[TICKET]
    payload, _, signature = genuine.partition(".")
    assert json.loads(itsdangerous.base64_decode(payload)) == {"room": ROOM, "number": 4}
    tampered = itsdangerous.base64_encode(json.dumps({"room": ROOM, "number": 2}).encode()).decode()
    forged = itsdangerous.URLSafeTimedSerializer("another-secret", salt=TICKET_SALT).dumps({"room": ROOM, "number": 2})
    other_room = WaitingRoom(queues=MemoryQueue(), secret=SECRET, environment=create_environment())
    foreign = other_room.issue_ticket("/elsewhere", 2)
    fake_admission = itsdangerous.URLSafeTimedSerializer("another-secret", salt="x").dumps({"room": ROOM, "number": 1})
    places = []
    for cookies in (
        {TICKET: f"{tampered}.{signature}"},
        {TICKET: forged},
        {TICKET: foreign},
        {TICKET: "not-a-ticket"},
        {ADMISSION: fake_admission},
        {ADMISSION: genuine},  # a ticket is no admission
    ):
        async with visitor(gateway) as client:
            client.cookies.update(cookies)
            places.append(await position(client))
    assert places == [4, 5, 6, 7, 8, 9], "each is a new arrival at the back, none let on"
    clock.now += 60 / CAPACITY
    assert await position(clients[1]) is None, "the genuine second arrival is next"
    assert await position(clients[2]) == 1
    for client in clients:
        await client.aclose()


async def test_a_ticket_or_admission_past_its_age_is_void(clock: FakeClock) -> None:
    room = WaitingRoom(queues=MemoryQueue(clock=clock), secret=SECRET, environment=create_environment(), clock=clock)
    ticket, admission = room.issue_ticket(ROOM, 3), room.issue_admission(ROOM, 3)
    assert room.ticket(ticket, ROOM) == 3 and room.admission(admission, ROOM) == 3
    assert room.ticket(ticket, "/other") is None and room.admission(ticket, ROOM) is None
    clock.now += ADMISSION_SECONDS + 1
    assert room.ticket(ticket, ROOM) == 3 and room.admission(admission, ROOM) is None
    clock.now += TICKET_SECONDS
    assert room.ticket(ticket, ROOM) is None


async def test_without_a_waiting_room_nobody_queues(make_gateway: GatewayFactory) -> None:
    gateway = make_gateway()  # the same table, no waiting_room
    for _ in range(3):
        async with visitor(gateway) as client:
            assert await position(client) is None


@pytest.fixture
async def redis_stores(redis_server: RedisServer, clock: FakeClock) -> AsyncIterator[list[Stores]]:
    """Two gateways' own connections to one Redis."""
    made = [open_stores(redis_server.url, clock=clock) for _ in range(2)]
    yield made
    for stores in made:
        await stores.aclose()


async def test_two_gateways_on_one_redis_admit_from_one_queue(
    make_gateway: GatewayFactory, redis_stores: list[Stores], clock: FakeClock
) -> None:
    gateways = [make_gateway(routes=on_sale_table(), stores=stores) for stores in redis_stores]
    assert await admit_in_turn(gateways, clock, 8) == list(range(1, 9))


async def test_concurrent_arrivals_on_redis_draw_distinct_numbers(redis_stores: list[Stores]) -> None:
    arrivals = [redis_stores[index % 2].queues.arrive("/rush") for index in range(200)]
    assert sorted(await asyncio.gather(*arrivals)) == list(range(1, 201))


async def test_the_waiting_room_fails_closed_when_its_store_is_down(
    make_gateway: GatewayFactory, redis_server: RedisServer, redis_stores: list[Stores]
) -> None:
    gateway = make_gateway(routes=on_sale_table(), stores=redis_stores[0])
    async with visitor(gateway) as admitted, visitor(gateway) as waiting, visitor(gateway) as newcomer:
        assert await position(admitted) is None
        assert await position(waiting) == 1
        redis_server.stop()
        page = await newcomer.get(f"{ROOM}/buy", headers=HTML)
        api = await waiting.get(f"{ROOM}/buy", headers=API)
        assert page.status_code == 503 and page.headers["retry-after"] == "10" and "Please wait" in page.text
        assert '<meta http-equiv="refresh" content="10">' in page.text and "Traceback" not in page.text
        assert api.status_code == 503 and api.json()["position"] is None and api.json()["retry_after"] == 10
        assert await position(admitted) is None, "an admission granted stands: it needs only its signature"
        assert (await newcomer.get("/page", headers=HTML)).status_code == 200, "routes without a room are served"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("0", "expected visitors a minute, from 1 to 1,000,000, got 0"),
        ('"300"', "got '300'"),
        ("true", "got True"),
        ("2.5", "got 2.5"),
        ("2000000", "got 2000000"),
    ],
)
def test_a_bad_waiting_room_is_named_with_its_file_and_line(value: str, message: str) -> None:
    text = f'[[route]]\nprefix = "/shop"\nupstream = "renderer"\nauth = "none"\nwaiting_room = {value}\n'
    with pytest.raises(RouteTableError) as raised:
        parse_table(text, file="routes.toml", upstreams=["renderer"])
    assert len(raised.value.errors) == 1
    assert (
        raised.value.errors[0].startswith("routes.toml:5: route.waiting_room: ") and message in raised.value.errors[0]
    )


def test_an_admin_route_has_no_waiting_room() -> None:
    text = '[[route]]\nprefix = "/ops"\nupstream = "renderer"\nauth = "none"\nadmin = true\nwaiting_room = 10\n'
    with pytest.raises(RouteTableError) as raised:
        parse_table(text, file="routes.toml", upstreams=["renderer"])
    assert raised.value.errors == ["routes.toml:6: route.waiting_room: an admin route has no waiting room"]


def test_a_route_keeps_its_waiting_room() -> None:
    assert on_sale_table().match(ROOM + "/x").waiting_room == CAPACITY  # type: ignore[union-attr]
    assert on_sale_table().match("/").waiting_room is None  # type: ignore[union-attr]


def test_the_answer_that_admits_is_never_stored_whatever_the_upstream_spelled() -> None:
    response = Response(b"ok")
    response.raw_headers = [(b"Cache-Control", b"public, max-age=60"), (b"content-type", b"text/plain")]
    Passage(cookies=("a=1", "b=; Max-Age=0")).stamp(response)
    assert [value for name, value in response.raw_headers if name.lower() == b"cache-control"] == [b"no-store"]
    assert [value for name, value in response.raw_headers if name == b"set-cookie"] == [b"a=1", b"b=; Max-Age=0"]
    untouched = Response(b"ok", headers={"Cache-Control": "public, max-age=60"})
    assert GO_ON.stamp(untouched).headers["cache-control"] == "public, max-age=60"
