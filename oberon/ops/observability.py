"""Observing every request of a service: latency metrics, a server span, one log line.

`Observability` holds what one process shares between the services it runs (the metrics
registry, the trace provider); `instrument(app, service=...)` wraps one service's ASGI app. An
endpoint can tell the layer more than the router knows through `RequestInfo.current()`: the
renderer names the app route a page matched (its Starlette route is a catch-all) and the
components that fell back. `/metrics` is served by the process's admin listener
(`oberon.ops.admin_listener`), never by the app observed here.
"""

from __future__ import annotations

import contextvars
import json
import logging
import time
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from opentelemetry.sdk.trace import TracerProvider
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from oberon.headers import REQUEST_ID, REQUEST_ID_HEADER
from oberon.logs import ACCESS_LOGGER, bind, unbind, write_line
from oberon.ops.metrics import Metrics, Observes, status_class
from oberon.tracing import SERVER, TRACEPARENT, TraceContext, Tracer, tracer_provider

UNMATCHED = "unmatched"

_REQUEST_ID_KEY = REQUEST_ID_HEADER.lower().encode("latin-1")
_TRACEPARENT_KEY = TRACEPARENT.encode("latin-1")
access_logger = logging.getLogger(ACCESS_LOGGER)
_ACCESS_MESSAGE = "%s %s %d %.1fms"  # method, path, status, milliseconds
_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


@dataclass
class RequestInfo:
    """What an endpoint tells the layer observing its request: its route template, fallbacks, more log fields."""

    route: str | None = None
    fallbacks: tuple[str, ...] = ()
    request_id: str | None = None
    fields: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def current(cls) -> RequestInfo:
        """The info of the request being served (a throwaway one when nothing observes it)."""
        return _current.get() or cls()


_current: contextvars.ContextVar[RequestInfo | None] = contextvars.ContextVar("oberon_request", default=None)


class Observability:
    """Metrics, tracing and access logs of one process, for every service it runs."""

    def __init__(
        self, *, metrics: Metrics | None = None, provider: TracerProvider | None = None, access_log: bool = True
    ) -> None:
        self.metrics = metrics if metrics is not None else Metrics()
        self.provider = provider
        self.access_log = access_log

    @classmethod
    def from_environ(cls, environ: Mapping[str, str], *, name: str, traces: str = "none") -> Observability:
        """Multiprocess metrics when `PROMETHEUS_MULTIPROC_DIR` is set; spans to the `traces` exporter, as `name`."""
        return cls(metrics=Metrics.from_environ(environ), provider=tracer_provider(traces or "none", service=name))

    def tracer(self, service: str) -> Tracer:
        return Tracer(service=service, provider=self.provider)

    def instrument(self, app: ASGIApp, *, service: str) -> Instrumented:
        """`app` observed as `service`."""
        return Instrumented(app, service=service, observability=self)

    def shutdown(self) -> None:
        """Send the spans still batched (at the end of the process)."""
        if self.provider is not None:
            self.provider.shutdown()


class Instrumented:
    """One service's ASGI app, observed: each HTTP request is timed, traced and logged in one line."""

    def __init__(self, app: ASGIApp, *, service: str, observability: Observability) -> None:
        self.app = app
        self.service = service
        self.metrics = observability.metrics
        self.tracer = observability.tracer(service)
        self._recording = observability.provider is not None
        self.access_log = observability.access_log
        # The server span's name by method, made once (any other method's is made as it comes).
        self._span_names = {method: f"{method} {service}" for method in _METHODS}
        # The request histogram's series by route, method and status, kept here: one frame fewer a request.
        self._requests: dict[tuple[str, str, int], Observes] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        method: str = scope["method"]
        root_path: str = scope.get("root_path", "")
        # One pass over the headers: the request id, the caller's `traceparent`, and the others to hand on. Names are
        # compared as the ASGI server gives them, in lower case (as Starlette reads them): lower-casing each cost
        # ~0.5 k instructions a header, and the renderer behind the embedded gateway gets 14 (issue 19).
        request_id = traceparent = None
        forwarded: list[tuple[bytes, bytes]] = []
        for header in scope["headers"]:
            key = header[0]
            if key == _TRACEPARENT_KEY:
                if traceparent is None:
                    traceparent = header[1].decode("latin-1")
                continue
            if key == _REQUEST_ID_KEY and request_id is None:
                request_id = header[1].decode("latin-1")
            forwarded.append(header)
        info = RequestInfo(request_id=request_id if request_id and REQUEST_ID.match(request_id) else None)
        status = 500
        name = self._span_names.get(method) or f"{method} {self.service}"
        with self.tracer.span(name, kind=SERVER, parent=TraceContext.parse(traceparent)) as span:
            # Whatever hands this request's headers on now continues this span, not the caller's.
            forwarded.append((_TRACEPARENT_KEY, span.context.header.encode("latin-1")))  # `traceparent`, a frame less
            scope = {**scope, "headers": forwarded}

            def send_observed(message: Message) -> Awaitable[None]:
                """`send`, noting the answer's status: a plain function handing on `send`'s awaitable (no coroutine
                of its own a message; issue 19)."""
                nonlocal status
                if message["type"] == "http.response.start":
                    status = message["status"]
                    if info.request_id is None:  # the gateway makes one up and answers with it
                        info.request_id = _header(message.get("headers", []), _REQUEST_ID_KEY)
                return send(message)

            token = _current.set(info)
            fields = bind({"service": self.service, "request_id": info.request_id, "trace_id": span.context.trace_id})
            try:
                try:
                    await self.app(scope, receive, send_observed)
                finally:
                    _current.reset(token)
                    seconds = time.perf_counter() - started
                    route = info.route or _route_template(scope, root_path) or UNMATCHED
                    if self._recording:  # a span of ids only records no attribute
                        span.set_attribute("http.route", route)
                        span.set_attribute("http.response.status_code", status)
                    span.set_outcome("ok" if status < 500 else status_class(status))
                    series = self._requests.get((route, method, status))
                    if series is None:
                        series = self._requests[route, method, status] = self.metrics.request_series(
                            self.service, route, method, status
                        )
                    series.observe(seconds)
                    self.metrics.refresh_now_and_then()
                    if self.access_log and access_logger.isEnabledFor(logging.INFO):
                        self._log(scope, route, status, seconds, info)
            finally:
                unbind(fields)  # as `bound` would, without its context manager's generator

    def _log(self, scope: Scope, route: str, status: int, seconds: float, info: RequestInfo) -> None:
        path = scope["path"]  # the query is left out: it may carry tokens
        method = scope["method"]
        milliseconds = seconds * 1000
        extra = {
            "request_id": info.request_id,
            "method": method,
            "path": path,
            "route": route,
            "status": status,
            "duration_ms": round(milliseconds, 2),
            "fallbacks": list(info.fallbacks),
            **info.fields,
        }
        # `_ACCESS_MESSAGE % args`, as the record's `getMessage` makes it, without the tuple and the format's parsing.
        if write_line(access_logger, logging.INFO, f"{method} {path} {status:d} {milliseconds:.1f}ms", extra):
            return  # configure's JSON handler alone would get the record: its line, without the record (issue 19)
        args = (method, path, status, milliseconds)
        # `Logger.info` less its look for the caller's source line (a walk up the stack on every request): the
        # access log's caller is always this line, and no format here prints it.
        record = access_logger.makeRecord(
            ACCESS_LOGGER, logging.INFO, __file__, 0, _ACCESS_MESSAGE, args, None, "_log", extra
        )
        access_logger.handle(record)


def write_scrape_targets(path: Path, addresses: Mapping[str, str]) -> None:
    """Prometheus file-based service discovery: each service's `host:port`, labelled `oberon_service`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    groups = [{"targets": [address], "labels": {"oberon_service": name}} for name, address in addresses.items()]
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(groups, indent=2) + "\n", encoding="utf-8")
    temporary.replace(path)  # Prometheus never reads a half-written file


def _header(headers: Any, key: bytes) -> str | None:
    size = len(key)
    for name, value in headers:
        if len(name) == size and name.lower() == key:  # a length first: most names are not lowered at all
            return str(value.decode("latin-1"))
    return None


def _route_template(scope: Scope, root_path: str) -> str | None:
    """The template of the route Starlette matched, with the prefixes of the mounts it went through."""
    route = scope.get("route")
    template = getattr(route, "path", None)
    if not isinstance(template, str):
        return None
    mounted = scope.get("root_path", "")
    prefix = mounted[len(root_path) :] if mounted.startswith(root_path) else ""
    return prefix + template
