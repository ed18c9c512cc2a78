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

Given the entrance's `Admission`, it also sheds: as soon as a request's headers are in, it takes the
request's place under the adaptive limit (`Admission.admit`), or writes the shed answer `admit` decided
(the stale copy or the 503, prebuilt) and creates no ASGI scope, cycle or task; a body that follows is
read and dropped, and the connection stays open unless the client asked to close it. A shed request
under overload is mostly what a core does (a client that is shed asks again at once), so here it costs
the parser's callbacks and one write instead of a task and the middleware chain (bench/shed_cost.py).
An admitted request is marked `HELD` (the middleware does not count it again) and its place is given
back with the last part of its answer (`Admission.holding`). A request pipelined behind one still being
answered, or sent while the client is not reading its answers, goes the usual way: the middleware decides
when its turn comes.
"""

from __future__ import annotations

import asyncio
from asyncio import TimerHandle
from typing import Any, cast
from urllib.parse import unquote

import httptools
from uvicorn._types import ASGI3Application
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol, RequestResponseCycle

from oberon.ops.admission import HELD, SERVER, Admission, ShedAnswer

# The request line and the headers are each held to the limit by the gateway; this is both, and their framing.
_FRAMING = 64


class EntranceProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a deadline and a size limit for each request's header block, and shedding
    for the entrance's `admission` before any ASGI work."""

    header_timeout: float = 10.0
    max_header_bytes: int = 8 * 1024
    admission: Admission | None = None  # the entrance's; None: every request goes to the app

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # The deadlines of a connection are watched by one timer at a time, moved on when it fires: a request
        # sets a number, not a timer set and cancelled (measured: several µs of a shed request's cost).
        self._timer: TimerHandle | None = None
        self._headers_due = 0.0  # when the headers being read must all be in (while `_reading_headers`)
        self._idle_due: float | None = None  # when a connection idle since a shed answer is closed
        self._reading_headers = False
        self._header_bytes = 0
        self._discarding = False  # the request was shed here: its body, if any, is read and dropped

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        # A connection that sends nothing is as slow as one that sends slowly.
        self._expect_headers()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_timer()
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
        self._discarding = False
        self._expect_headers()

    def on_headers_complete(self) -> None:
        self._reading_headers = False
        if self.admission is not None and self._shed(self.admission):
            return
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        if not self._discarding:
            super().on_body(body)

    def on_message_complete(self) -> None:
        if not self._discarding:
            super().on_message_complete()
            return
        if self.transport.is_closing():
            return
        # The shed request is all read: the connection may idle as long as uvicorn keeps one alive.
        self._idle_due = self.loop.time() + self.timeout_keep_alive
        if self._timer is not None and self._timer.when() > self._idle_due:
            self._stop_timer()
        self._watch(self._idle_due)

    def _start_asgi_task(self, cycle: RequestResponseCycle, app: ASGI3Application) -> None:
        if self.admission is not None and cycle.scope.get(HELD):
            app = cast(ASGI3Application, self.admission.holding(cast(Any, app)))
        super()._start_asgi_task(cycle, app)

    def _shed(self, admission: Admission) -> bool:
        """Take this request's place, or answer it here with the shed answer: True when it was answered."""
        if self.transport.is_closing():  # sent after a request that closed the connection: nobody to answer
            self._discarding = True
            return True
        if self.cycle is not None and not self.cycle.response_complete:
            return False  # behind an answer still being written: answers go in order, the middleware decides
        if self.flow.write_paused or self.parser.should_upgrade():
            return False  # a client that does not read (its answers must not pile up here), or a websocket
        try:
            url = httptools.parse_url(self.url)
            path = url.path.decode("ascii")
        except (httptools.HttpParserInvalidURLError, UnicodeDecodeError):
            return False  # uvicorn answers it as it does any bad request line
        if "%" in path:
            path = unquote(path)
        path = self.root_path + path  # as uvicorn's scope has it
        if not admission.counts(path):
            return False
        method = self.parser.get_method().decode("ascii")
        answer = admission.admit(method, path, url.query or b"", self.headers, at=SERVER)
        if answer is None:
            cast(dict[str, Any], self.scope)[HELD] = True  # the task gives the place back (_start_asgi_task)
            return False
        # As uvicorn's cycle would: HTTP/1.0 closes; and a client waiting for `100 Continue` may never send the
        # body it announced, so that connection cannot carry another request.
        keep_alive = (
            self.parser.get_http_version() != "1.0" and self.parser.should_keep_alive() and not self.expect_100_continue
        )
        self.transport.write(self._wire(answer, close=not keep_alive))
        self.server_state.total_requests += 1
        self._discarding = True  # what follows of this request is nobody's (even in the data being parsed now)
        if not keep_alive:
            self.transport.close()
        return True

    def _wire(self, answer: ShedAnswer, *, close: bool) -> bytes:
        """The answer as uvicorn writes one: status line, the server's default headers (`date`), the answer's
        headers, `connection: close` when the connection ends, the body."""
        parts = [STATUS_LINE[answer.status]]
        for name, value in self.server_state.default_headers:
            parts += [name, b": ", value, b"\r\n"]
        parts.append(answer.head)
        if close:
            parts.append(b"connection: close\r\n")
        parts += [b"\r\n", answer.body]
        return b"".join(parts)

    def _expect_headers(self) -> None:
        """A request's headers are due within `header_timeout` from now."""
        self._reading_headers = True
        self._header_bytes = 0
        self._idle_due = None
        self._headers_due = self.loop.time() + self.header_timeout
        self._watch(self._headers_due)

    def _watch(self, due: float) -> None:
        """Make sure the timer fires by `due` (a pending one fires earlier than any deadline set after it)."""
        if self._timer is None:
            self._timer = self.loop.call_at(due, self._deadline)

    def _stop_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _deadline(self) -> None:
        """The timer fired: act on a deadline that has passed, else wait for the one still ahead, if any."""
        self._timer = None
        if self.transport.is_closing():
            return
        now = self.loop.time()
        if self._reading_headers:
            if now >= self._headers_due:
                self._refuse(408, f"the request's headers did not arrive within {self.header_timeout:g} seconds")
            else:
                self._watch(self._headers_due)
        elif self._idle_due is not None:
            if now >= self._idle_due:
                self.transport.close()
            else:
                self._watch(self._idle_due)
        # Else a request is being answered: uvicorn's own keep-alive timer watches the connection after it.

    def _refuse(self, status: int, message: str) -> None:
        """Answer `status` and close the connection, whatever of the request is still to come."""
        self._stop_timer()
        self.logger.info("refused a request from %s: %s", self.client and self.client[0], message)
        body = message.encode("ascii")
        head = b"content-type: text/plain; charset=utf-8\r\ncontent-length: %d\r\nconnection: close\r\n\r\n"
        self.transport.write(STATUS_LINE[status] + head % len(body) + body)
        self.transport.close()


def entrance_protocol(
    *, header_timeout: float, max_header_bytes: int, admission: Admission | None = None
) -> type[asyncio.Protocol]:
    """The protocol class uvicorn runs (`uvicorn.Config(http=…)`), with these limits, shedding for `admission`."""
    return type(
        "EntranceProtocol",
        (EntranceProtocol,),
        {"header_timeout": header_timeout, "max_header_bytes": max_header_bytes, "admission": admission},
    )
