"""Session stores, in-process and on a real redis-server: create, look up, expire, revoke one or all of a user's."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import pytest

from gateway.auth import Identity, Method
from gateway.errors import StoreUnavailable
from gateway.settings import GatewaySettings
from gateway.stores import Stores, open_stores
from oberon.exceptions import ConfigError
from tests.gateway.conftest import SECRET
from tests.redis_server import RedisServer

pytestmark = pytest.mark.anyio

ALICE = Identity(user="alice", roles=("customer",), method=Method.SESSION)
BOB = Identity(user="bob", roles=("customer", "staff"), method=Method.SESSION)


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture(params=["memory", "redis"])
async def stores(request: pytest.FixtureRequest, clock: Clock) -> AsyncIterator[Stores]:
    url = request.getfixturevalue("redis_server").url if request.param == "redis" else ""
    made = open_stores(url, clock=clock)
    yield made
    await made.aclose()


async def test_store_keeps_a_session_until_it_expires(stores: Stores, clock: Clock) -> None:
    session = await stores.sessions.create(ALICE, max_age=60)
    assert len(session.id) == 43  # secrets.token_urlsafe(32)
    found = await stores.sessions.get(session.id)
    assert found is not None and found.identity == ALICE
    assert (found.created, found.expires) == (clock.now, clock.now + 60)
    clock.now += 61
    assert await stores.sessions.get(session.id) is None


async def test_store_gives_each_session_its_own_random_id(stores: Stores) -> None:
    ids = {(await stores.sessions.create(ALICE, max_age=60)).id for _ in range(20)}
    assert len(ids) == 20
    assert await stores.sessions.get("no-such-session") is None


async def test_store_revokes_one_session(stores: Stores) -> None:
    first = await stores.sessions.create(ALICE, max_age=60)
    second = await stores.sessions.create(ALICE, max_age=60)
    await stores.sessions.revoke(first.id)
    await stores.sessions.revoke("no-such-session")
    assert await stores.sessions.get(first.id) is None
    assert await stores.sessions.get(second.id) is not None


async def test_store_revokes_every_session_of_one_user(stores: Stores) -> None:
    alices = [await stores.sessions.create(ALICE, max_age=60) for _ in range(3)]
    bobs = await stores.sessions.create(BOB, max_age=60)
    await stores.sessions.revoke(alices[0].id)
    assert await stores.sessions.revoke_user("alice") == 2
    assert all([await stores.sessions.get(session.id) is None for session in alices])
    assert await stores.sessions.get(bobs.id) is not None
    assert await stores.sessions.revoke_user("alice") == 0
    assert await stores.sessions.revoke_user("nobody") == 0
    again = await stores.sessions.create(ALICE, max_age=60)  # a new sign-in after the revocation stands
    assert await stores.sessions.get(again.id) is not None


async def test_redis_store_expires_the_record_with_the_session(redis_server: RedisServer, clock: Clock) -> None:
    import redis.asyncio as redis

    stores = open_stores(redis_server.url, clock=clock)
    session = await stores.sessions.create(ALICE, max_age=90)
    client = redis.Redis.from_url(redis_server.url)
    try:
        assert 85 <= await client.ttl(f"oberon:session:{session.id}") <= 90
        assert 85 <= await client.ttl("oberon:user-sessions:alice") <= 90
    finally:
        await client.aclose()
        await stores.aclose()


async def test_redis_store_fails_closed_when_redis_is_gone(
    redis_server: RedisServer, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    stores = open_stores(redis_server.url, clock=clock)
    session = await stores.sessions.create(ALICE, max_age=60)
    redis_server.stop()
    with caplog.at_level(logging.WARNING, logger="oberon.gateway"):
        for _ in range(3):
            with pytest.raises(StoreUnavailable):
                await stores.sessions.get(session.id)
        with pytest.raises(StoreUnavailable):
            await stores.sessions.revoke_user("alice")
        with pytest.raises(StoreUnavailable):
            await stores.counters.blocked_for(["address:127.0.0.1"])
    warnings = [record for record in caplog.records if "unreachable" in record.getMessage()]
    assert len(warnings) == 1  # once per outage, not once per request
    await stores.aclose()


@pytest.mark.parametrize("url", ["memcached://127.0.0.1:11211", "http://127.0.0.1:6379", "redis://", "localhost:6379"])
def test_settings_refuse_a_store_that_is_not_redis(url: str) -> None:
    with pytest.raises(ConfigError, match="OBERON_SESSION_STORE"):
        GatewaySettings(session_secret=SECRET, session_store=url)


def test_settings_accept_redis_and_the_in_process_store() -> None:
    for url in ["", "redis://127.0.0.1:6379/0", "rediss://redis.internal:6380/1"]:
        assert GatewaySettings(session_secret=SECRET, session_store=url).session_store == url
