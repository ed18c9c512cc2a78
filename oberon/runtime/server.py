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

An admitted request's answer is written by an `EntranceCycle`: uvicorn's, the same bytes and errors, but its header
lines checked in two passes over all of them instead of two regex searches a line (issue 19).
"""

from __future__ import annotations

import asyncio
from asyncio import TimerHandle
from typing import Any, cast
from urllib.parse import unquote

import httptools
from uvicorn._types import ASGI3Application, ASGISendEvent
from uvicorn.protocols.http.flow_control import service_unavailable
from uvicorn.protocols.http.httptools_impl import (
    HEADER_RE,
    HEADER_VALUE_RE,
    STATUS_LINE,
    HttpToolsProtocol,
    RequestResponseCycle,
)
from uvicorn.protocols.utils import get_client_addr, get_path_with_query_string

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
        # uvicorn's own (0.55.0), copied only to make the cycle an `EntranceCycle`.
        http_version = self.parser.get_http_version()
        method = self.parser.get_method()
        self.scope["method"] = method.decode("ascii")
        if http_version != "1.1":
            self.scope["http_version"] = http_version
        if self.parser.should_upgrade() and self._should_upgrade():
            return
        parsed_url = httptools.parse_url(self.url)
        raw_path = parsed_url.path
        path = raw_path.decode("ascii")
        if "%" in path:
            path = unquote(path)
        full_path = self.root_path + path
        full_raw_path = self.root_path.encode("ascii") + raw_path
        self.scope["path"] = full_path
        self.scope["raw_path"] = full_raw_path
        self.scope["query_string"] = parsed_url.query or b""

        # Handle 503 responses when 'limit_concurrency' is exceeded.
        if self.limit_concurrency is not None and (
            len(self.connections) >= self.limit_concurrency or len(self.tasks) >= self.limit_concurrency
        ):
            app = service_unavailable
            message = "Exceeded concurrency limit."
            self.logger.warning(message)
        else:
            app = self.app

        existing_cycle = self.cycle
        self.cycle = EntranceCycle(
            scope=self.scope,
            transport=self.transport,
            flow=self.flow,
            logger=self.logger,
            access_logger=self.access_logger,
            access_log=self.access_log,
            default_headers=self.server_state.default_headers,
            message_event=asyncio.Event(),
            expect_100_continue=self.expect_100_continue,
            keep_alive=http_version != "1.0" and self.parser.should_keep_alive(),
            on_response=self.on_response_complete,
        )
        if existing_cycle is None or existing_cycle.response_complete:
            # Standard case - start processing the request.
            self._start_asgi_task(self.cycle, app)
        else:
            # Pipelined HTTP requests need to be queued up.
            self.flow.pause_reading()
            self.pipeline.appendleft((self.cycle, app))

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


# Each byte mapped to 0 where uvicorn's header checks reject it (each pattern is one class of bytes), else to 1.
_NAME_BYTES = bytes(0 if HEADER_RE.search(bytes([byte])) else 1 for byte in range(256))
_VALUE_BYTES = bytes(0 if HEADER_VALUE_RE.search(bytes([byte])) else 1 for byte in range(256))


class EntranceCycle(RequestResponseCycle):
    """uvicorn's request-response cycle, an answer's header lines checked one by one only when one of them is wrong.

    uvicorn's `send` searches each line's name and value with a regex for a byte they may not hold: ~50 k
    instructions for a page of the renderer, over half of its `send`, most of it the regex engine's byte-by-byte scan.
    Here all the names, joined, and all the values, joined, are mapped through a table of those bytes made from the
    same patterns (`bytes.translate`, then one `in`): a join holds such a byte if and only if one of its parts does,
    so only when one does are the lines checked as uvicorn checks them, failing where uvicorn fails, with its errors.
    The rest of `send` is uvicorn's own (0.55.0), copied because its checks sit inside its loop over the lines.
    """

    async def send(self, message: ASGISendEvent) -> None:
        if self.flow.write_paused and not self.disconnected:
            await self.flow.drain()

        if self.disconnected:
            return

        if not self.response_started:
            # Sending response status line and headers
            if message["type"] != "http.response.start":
                raise RuntimeError(f"Expected ASGI message 'http.response.start', but got '{message['type']}'.")

            self.response_started = True
            self.waiting_for_100_continue = False

            status_code = message["status"]
            headers = self.default_headers + list(message.get("headers", []))

            if self.access_log:
                self.access_logger.info(
                    '%s - "%s %s HTTP/%s" %d',
                    get_client_addr(self.scope),
                    self.scope["method"],
                    get_path_with_query_string(self.scope),
                    self.scope["http_version"],
                    status_code,
                )

            try:
                names, values = zip(*headers) if headers else ((), ())  # noqa: B905 (a line not a pair fails below)
                check_each = 0 in b"".join(names).translate(_NAME_BYTES) or (
                    0 in b"".join(values).translate(_VALUE_BYTES)
                )
            except (TypeError, ValueError):  # not pairs of bytes: uvicorn's loop below fails where it fails
                check_each = True

            # Write response status line and headers
            content = [STATUS_LINE[status_code]]
            has_connection_close = False

            for name, value in headers:
                if check_each:
                    if HEADER_RE.search(name):
                        raise RuntimeError("Invalid HTTP header name.")
                    if HEADER_VALUE_RE.search(value):
                        raise RuntimeError("Invalid HTTP header value.")

                name = name.lower()
                if name == b"content-length" and self.chunked_encoding is None:
                    self.expected_content_length = int(value.decode())
                    self.chunked_encoding = False
                elif name == b"transfer-encoding" and value.lower() == b"chunked":
                    self.expected_content_length = 0
                    self.chunked_encoding = True
                elif name == b"connection":
                    connection = [token.lower().strip() for token in value.split(b",")]
                    if b"close" in connection:
                        self.keep_alive = False
                        has_connection_close = True
                content.extend([name, b": ", value, b"\r\n"])

            if not self.keep_alive and not has_connection_close:
                content.append(b"connection: close\r\n")

            if self.chunked_encoding is None and self.scope["method"] != "HEAD" and status_code not in (204, 304):
                # Neither content-length nor transfer-encoding specified
                self.chunked_encoding = True
                content.append(b"transfer-encoding: chunked\r\n")

            content.append(b"\r\n")
            self.transport.write(b"".join(content))

        elif not self.response_complete:
            # Sending response body
            if message["type"] != "http.response.body":
                raise RuntimeError(f"Expected ASGI message 'http.response.body', but got '{message['type']}'.")

            body = message.get("body", b"")
            more_body = message.get("more_body", False)

            # Write response body
            if self.scope["method"] == "HEAD":
                self.expected_content_length = 0
            elif self.chunked_encoding:
                if body:
                    content = [b"%x\r\n" % len(body), body, b"\r\n"]
                else:
                    content = []
                if not more_body:
                    content.append(b"0\r\n\r\n")
                self.transport.write(b"".join(content))
            else:
                num_bytes = len(body)
                if num_bytes > self.expected_content_length:
                    raise RuntimeError("Response content longer than Content-Length")
                else:
                    self.expected_content_length -= num_bytes
                self.transport.write(body)

            # Handle response completion
            if not more_body:
                if self.expected_content_length != 0:
                    raise RuntimeError("Response content shorter than Content-Length")
                self.response_complete = True
                self.message_event.set()
                if not self.keep_alive:
                    self.transport.close()
                self.on_response()

        else:
            # Response already sent
            raise RuntimeError(f"Unexpected ASGI message '{message['type']}' sent, after response already completed.")


def entrance_protocol(
    *, header_timeout: float, max_header_bytes: int, admission: Admission | None = None
) -> type[asyncio.Protocol]:
    """The protocol class uvicorn runs (`uvicorn.Config(http=…)`), with these limits, shedding for `admission`."""
    return type(
        "EntranceProtocol",
        (EntranceProtocol,),
        {"header_timeout": header_timeout, "max_header_bytes": max_header_bytes, "admission": admission},
    )
