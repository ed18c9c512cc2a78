"""A page streams through the real stack: its first bytes reach the browser while a slow component is pending.

`oberon up` (embedded: gateway and renderer in one process) and `oberon up --split` (each its own
process, the gateway proxying over loopback), the recommendations backend slowed down by a fault so
the event page's `related-events` (non-critical) finishes last.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import AbstractContextManager

import httpx
import pytest

Server = Callable[..., AbstractContextManager[str]]
SLOW_MS = 800
RELATED = 'data-oberon-component="related-events"'


def timed_chunks(url: str) -> tuple[httpx.Response, list[tuple[float, bytes]]]:
    """The response and each body chunk with the seconds since the request was sent."""
    started = time.monotonic()
    chunks = []
    with httpx.stream("GET", url, timeout=10) as response:
        for chunk in response.iter_raw():
            chunks.append((time.monotonic() - started, chunk))
    return response, chunks


@pytest.mark.parametrize("topology", [(), ("--split",)], ids=["embedded", "split"])
def test_the_event_page_streams_past_its_slow_related_events(server: Server, topology: tuple[str, ...]) -> None:
    with server(*topology, env={"OBERON_FAULTS": f"recommendations=latency:{SLOW_MS}"}) as base:
        httpx.get(f"{base}/e/2", timeout=10)  # every service warm; /e/3 below is not in any cache yet
        response, chunks = timed_chunks(f"{base}/e/3")
    assert response.status_code == 200
    body = b"".join(chunk for _, chunk in chunks).decode()
    first_at, first = chunks[0]
    # The head, the hero and the tickets are on their way long before the recommendations answer.
    assert first_at < SLOW_MS / 1000 / 2, chunks
    assert b"<title>" in first and b'data-oberon-component="event-hero"' in first and RELATED.encode() not in first
    assert chunks[-1][0] >= SLOW_MS / 1000  # the related events came when the backend answered
    assert f'{RELATED} data-oberon-version="1.0.0" data-oberon-outcome="ok"' in body
    assert (
        body.index('data-oberon-component="event-hero"')
        < body.index(RELATED)
        < body.index('data-oberon-component="site-footer"')
    )
    assert "oberon-later" not in body and body.rstrip().endswith("</html>")
