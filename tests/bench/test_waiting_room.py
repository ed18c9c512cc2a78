"""The waiting-room benchmark's checks: the arrival number read from a cookie, and an order violation caught."""

from __future__ import annotations

from bench.waiting_room import Log, number_in, order_violations
from gateway.pages import create_environment
from gateway.waiting_room import MemoryQueue, WaitingRoom


def test_the_number_is_read_from_a_ticket_and_an_admission() -> None:
    room = WaitingRoom(queues=MemoryQueue(), secret="s" * 32, environment=create_environment())
    assert number_in(room.issue_ticket("/bff/checkout", 17)) == 17
    assert number_in(room.issue_admission("/bff/checkout", 4)) == 4


def test_a_visitor_told_to_wait_after_a_later_one_got_in_is_a_violation() -> None:
    in_order = Log(admitted=[(1.0, 1, 0), (2.0, 2, 1)], waiting=[(0.5, 2), (1.5, 2), (2.5, 3)])
    assert order_violations(in_order) == 0
    out_of_order = Log(admitted=[(1.0, 3, 2)], waiting=[(0.5, 2), (1.5, 2), (1.6, 1)])
    assert order_violations(out_of_order) == 2
