"""The HTTP server's limits at the entrance: how long a request's headers may take, and how large they may be.

uvicorn bounds idle keep-alive connections (`timeout_keep_alive`) and, with `limit_concurrency`,
answers 503 past a number of connections or tasks; it has no deadline for the headers of a
request, and its httptools parser buffers a header block of any size. A client sending its
headers a byte at a time (slowloris) would hold its connection, and its memory, for ever.

`entrance_protocol` is uvicorn's httptools protocol with both limits: the headers of each request
(the first from the moment the connection opens) must be in within `header_timeout` seconds, else
408 and the connection is closed; a header block past `max_header_bytes` is answered 431 as soon
as that many bytes arrived, without waiting for its end. The gateway's own checks (431 for the
headers, 414 for the URL, each held to `OBERON_MAX_HEADER_BYTES`) still judge what gets through.
"""

from __future__ import annotations

import asyncio
from asyncio import TimerHandle
from typing import Any

from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

# The request line and the headers are each held to the limit by the gateway; this is both, and their framing.
_FRAMING = 64


class EntranceProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a deadline and a size limit for each request's header block."""

    header_timeout: float = 10.0
    max_header_bytes: int = 8 * 1024

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._header_timer: TimerHandle | None = None
        self._reading_headers = False
        self._header_bytes = 0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._reading_headers = True  # a connection that sends nothing is as slow as one that sends slowly
        self._start_header_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_header_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        counted = self._reading_headers
        super().data_received(data)
        if not counted or not self._reading_headers or self.transport.is_closing():
            return
        self._header_bytes += len(data)
        if self._header_bytes > 2 * self.max_header_bytes + _FRAMING:
            self._refuse(431, f"the request's headers are larger than {self.max_header_bytes} bytes")

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._reading_headers = True
        self._header_bytes = 0
        if self._header_timer is None:  # the next request on a kept-alive connection
            self._start_header_timer()

    def on_headers_complete(self) -> None:
        self._reading_headers = False
        self._stop_header_timer()
        super().on_headers_complete()

    def _start_header_timer(self) -> None:
        self._header_timer = self.loop.call_later(self.header_timeout, self._headers_too_slow)

    def _stop_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_too_slow(self) -> None:
        self._header_timer = None
        if self._reading_headers and not self.transport.is_closing():
            self._refuse(408, f"the request's headers did not arrive within {self.header_timeout:g} seconds")

    def _refuse(self, status: int, message: str) -> None:
        """Answer `status` and close the connection, whatever of the request is still to come."""
        self._stop_header_timer()
        self.logger.info("refused a request from %s: %s", self.client and self.client[0], message)
        body = message.encode("ascii")
        head = b"content-type: text/plain; charset=utf-8\r\ncontent-length: %d\r\nconnection: close\r\n\r\n"
        self.transport.write(STATUS_LINE[status] + head % len(body) + body)
        self.transport.close()


def entrance_protocol(*, header_timeout: float, max_header_bytes: int) -> type[asyncio.Protocol]:
    """The protocol class uvicorn runs (`uvicorn.Config(http=…)`), with these limits."""
    return type(
        "EntranceProtocol",
        (EntranceProtocol,),
        {"header_timeout": header_timeout, "max_header_bytes": max_header_bytes},
    )
