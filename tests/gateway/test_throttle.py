"""Sign-in throttling: free failures, then a doubling block, in-process and on a real redis-server."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from gateway.errors import TooManyAttempts
from gateway.stores import open_stores
from gateway.throttle import Throttle, ThrottlePolicy, address_key, user_key

pytestmark = pytest.mark.anyio

POLICY = ThrottlePolicy(max_failures=5, window_seconds=900, backoff_seconds=5)
KEYS = [address_key("203.0.113.9"), user_key("alice")]


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def test_policy_blocks_from_the_fifth_failure_doubling_up_to_the_window() -> None:
    delays = [POLICY.delay(failures) for failures in range(1, 15)]
    assert delays == [0, 0, 0, 0, 5, 10, 20, 40, 80, 160, 320, 640, 900, 900]
    assert POLICY.delay(10_000) == 900


def test_user_keys_are_short_and_case_blind() -> None:
    assert user_key("Alice ") == user_key("alice")
    assert len(user_key("x" * 1024)) < 64 and "\n" not in user_key("a\nb")


@pytest.fixture(params=["memory", "redis"])
async def throttle(request: pytest.FixtureRequest) -> AsyncIterator[Throttle]:
    url = request.getfixturevalue("redis_server").url if request.param == "redis" else ""
    stores = open_stores(url, clock=Clock())
    yield Throttle(counters=stores.counters, policy=POLICY)
    await stores.aclose()


async def test_throttle_blocks_after_five_failures(throttle: Throttle) -> None:
    for _ in range(4):
        await throttle.check(KEYS)
        await throttle.failed(KEYS)
    await throttle.check(KEYS)  # four failures are free
    await throttle.failed(KEYS)
    with pytest.raises(TooManyAttempts) as caught:
        await throttle.check(KEYS)
    assert caught.value.retry_after == 5
    with pytest.raises(TooManyAttempts):
        await throttle.check([address_key("203.0.113.9"), user_key("bob")])  # the address is blocked for any name
    await throttle.check([address_key("198.51.100.7"), user_key("bob")])  # others are not


async def test_throttle_doubles_the_block_with_each_further_failure(throttle: Throttle) -> None:
    for _ in range(7):
        await throttle.failed(KEYS)
    with pytest.raises(TooManyAttempts) as caught:
        await throttle.check(KEYS)
    assert 15 < caught.value.retry_after <= 20


async def test_a_success_clears_the_user_name_but_not_the_address(throttle: Throttle) -> None:
    for _ in range(5):
        await throttle.failed(KEYS)
    await throttle.succeeded(user_key("alice"))
    await throttle.check([address_key("198.51.100.7"), user_key("alice")])
    with pytest.raises(TooManyAttempts):
        await throttle.check([address_key("203.0.113.9"), user_key("carol")])
