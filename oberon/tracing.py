"""W3C trace context through every hop, and OpenTelemetry spans when an exporter is configured.

Each service opens a server span per request (see `oberon.ops.observability`): the caller's `traceparent`
is its parent, or a new trace starts when there is none or it is malformed. The request's
`traceparent` header is then replaced by the span's own, so whatever hands the request's headers on
(the gateway's proxy, a BFF's `fetch`) continues the trace. Callers open a client span per
downstream call with `child(..., kind=CLIENT)` and send its `traceparent`.

Without an exporter (the default) a span is only a pair of ids: cheap, and the trace still
propagates, so every hop's log lines carry the same trace id. With one (`OBERON_TRACES_EXPORTER`,
see `tracer_provider`), each span is an OpenTelemetry span with its outcome.
"""

from __future__ import annotations

import contextvars
import random
import re
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

from opentelemetry import trace as otel
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter

from oberon.exceptions import ConfigError

TRACEPARENT = "traceparent"
SERVER, CLIENT, INTERNAL = "server", "client", "internal"
EXPORTERS = ("none", "console", "otlp")
OUTCOME_ATTRIBUTE = "oberon.outcome"
SERVICE_ATTRIBUTE = "oberon.service"
# Outcomes that mark a span as failed: the work did not do what was asked.
ERROR_OUTCOMES = frozenset({"error", "timeout", "circuit_open", "fallback", "5xx"})

_TRACEPARENT = re.compile(r"^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$")
_ZERO_TRACE = "0" * 32
_ZERO_SPAN = "0" * 16
# A `traceparent`'s flags, as `f"{flags:02x}"` writes them: formatting an int costs more than the rest of the header.
_FLAGS_TEXT = tuple(f"{flags:02x}" for flags in range(256))
_KINDS = {SERVER: otel.SpanKind.SERVER, CLIENT: otel.SpanKind.CLIENT, INTERNAL: otel.SpanKind.INTERNAL}


class TraceContext(NamedTuple):
    """A `traceparent`: the trace, the span that is the parent of the next hop, and whether it is sampled.

    A named tuple: one is made for every call a page makes, half a frozen dataclass's cost to make (issue 19)."""

    trace_id: str
    span_id: str
    flags: int = 1

    @classmethod
    def parse(cls, header: str | None) -> TraceContext | None:
        """A valid `traceparent`, or None (then the receiver starts a new trace, as the W3C spec asks)."""
        if not header:
            return None
        found = _TRACEPARENT.match(header.strip())
        if found is None:
            return None
        version, trace_id, span_id, flags, rest = found.groups()
        if version == "ff" or (version == "00" and rest) or trace_id == _ZERO_TRACE or span_id == _ZERO_SPAN:
            return None
        return tuple.__new__(cls, (trace_id, span_id, int(flags, 16) & 0x01))  # see `new`

    @classmethod
    def new(cls) -> TraceContext:
        # `bytes.hex` writes the same 32 digits as `f"{n:032x}"`, cheaper; the tuple made as the named tuple's `_make`
        # makes one, without its `__new__` (a Python frame): one a request, and `child`'s one a call (issue 19).
        return tuple.__new__(cls, ((random.getrandbits(128) or 1).to_bytes(16, "big").hex(), _span_id(), 1))

    def child(self) -> TraceContext:
        """The same trace, a new span."""
        return tuple.__new__(TraceContext, (self.trace_id, _span_id(), self.flags))  # see `new`

    @property
    def sampled(self) -> bool:
        return bool(self.flags & 0x01)

    @property
    def header(self) -> str:
        flags = self.flags
        # Looked up, not formatted: formatting the int was most of the header's cost, made once a call (issue 19).
        text = _FLAGS_TEXT[flags] if 0 <= flags < 256 else f"{flags:02x}"
        return f"00-{self.trace_id}-{self.span_id}-{text}"


class Span:
    """One unit of work: its trace context, its OpenTelemetry span when exporting, and its outcome.

    A span of ids only (nothing records it) is its own context manager: `child` hands it out as it is."""

    __slots__ = ("_otel", "context", "outcome", "tracer")

    def __init__(self, context: TraceContext, *, tracer: Tracer | None = None, otel_span: otel.Span | None = None):
        self.context = context
        self.tracer = tracer
        self.outcome: str | None = None
        self._otel = otel_span

    def __enter__(self) -> Span:
        return self

    def __exit__(self, *exc_info: object) -> None:
        return None

    @property
    def traceparent(self) -> str:
        """The header a downstream call made within this span sends."""
        return self.context.header

    def set_outcome(self, outcome: str) -> None:
        """How the work ended: `ok`, `fallback`, `error`, `timeout`, a status class…"""
        self.outcome = outcome
        if self._otel is not None:
            self._otel.set_attribute(OUTCOME_ATTRIBUTE, outcome)
            if outcome in ERROR_OUTCOMES:
                self._otel.set_status(otel.Status(otel.StatusCode.ERROR, outcome))

    def set_attribute(self, name: str, value: str | int | float | bool) -> None:
        if self._otel is not None:
            self._otel.set_attribute(name, value)


def _span_id() -> str:
    # Ids must be unique, not secret: `random` costs no system call per span (os.urandom does) and
    # its module-level generator is reseeded in a forked child.
    # `bytes.hex` writes the same 16 digits as `f"{n:016x}"` in half its time (one a call; issue 19).
    return (random.getrandbits(64) or 1).to_bytes(8, "big").hex()


_current: contextvars.ContextVar[Span | None] = contextvars.ContextVar("oberon_span", default=None)


# `current()`: the span of the work running now (the request's server span, a component's render…), if any. The
# context variable's own `get`, not a function around it: no frame of its own, once a call (issue 19, session 18).
current: Callable[[], Span | None] = _current.get


class Tracer:
    """Opens spans for one service; records them through `provider` when one is given."""

    def __init__(self, *, service: str, provider: TracerProvider | None = None) -> None:
        self.service = service
        self.provider = provider
        self._otel = provider.get_tracer("oberon") if provider is not None else None

    def span(
        self,
        name: str,
        *,
        kind: str = INTERNAL,
        parent: TraceContext | None = None,
        attributes: Mapping[str, str | int | float | bool] | None = None,
    ) -> SpanBlock:
        """A span under `parent` (a new trace when None) that is `current()` inside the block.

        An exception escaping the block marks its outcome `error` unless one was set.
        """
        return SpanBlock(self, name, kind, parent, attributes)


class SpanBlock:
    """`Tracer.span`'s block: the span starts on entering, is `current()` inside, and ends on leaving.

    A class, not a `contextlib.contextmanager` generator: one a request and one a recorded call (issue 19: the
    generator's context manager cost more than the rest of the server span)."""

    __slots__ = ("_attributes", "_kind", "_name", "_parent", "_span", "_token", "_tracer")

    def __init__(
        self,
        tracer: Tracer,
        name: str,
        kind: str,
        parent: TraceContext | None,
        attributes: Mapping[str, str | int | float | bool] | None,
    ) -> None:
        self._tracer = tracer
        self._name = name
        self._kind = kind
        self._parent = parent
        self._attributes = attributes

    def __enter__(self) -> Span:
        tracer, parent = self._tracer, self._parent
        if tracer._otel is None:
            span = Span(parent.child() if parent is not None else TraceContext.new(), tracer=tracer)
        else:
            otel_span = tracer._otel.start_span(
                self._name,
                context=_otel_parent(parent),
                kind=_KINDS[self._kind],
                attributes=dict(self._attributes or {}),
            )
            otel_span.set_attribute(SERVICE_ATTRIBUTE, tracer.service)
            ids = otel_span.get_span_context()
            context = TraceContext(f"{ids.trace_id:032x}", f"{ids.span_id:016x}", int(ids.trace_flags) & 0x01)
            span = Span(context, tracer=tracer, otel_span=otel_span)
        self._span = span
        self._token = _current.set(span)
        return span

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: object) -> None:
        span = self._span
        otel_span = span._otel
        try:
            if exc is not None:
                if span.outcome is None:
                    span.set_outcome("error")
                if otel_span is not None and isinstance(exc, Exception):
                    otel_span.record_exception(exc)
        finally:
            _current.reset(self._token)
            if otel_span is not None:
                otel_span.end()


def recording() -> bool:
    """Whether a span opened now would be recorded (an exporter is configured): when not, work whose span would
    only be a pair of ids nobody sends on (a component's render) opens none."""
    parent = _current.get()
    return parent is not None and parent.tracer is not None and parent.tracer.provider is not None


def child(
    name: str, *, kind: str = INTERNAL, attributes: Mapping[str, str | int | float | bool] | None = None
) -> Span | SpanBlock:
    """A span under the current one, by the current one's tracer; only ids when there is no current span.

    When nothing records spans (no exporter), the child is only a new span id for `traceparent`: it does
    not become `current()`, which stays its parent (same trace, same tracer, so the same service).
    """
    parent = _current.get()
    if parent is None:
        return Span(TraceContext.new())
    tracer = parent.tracer
    if tracer is None or tracer.provider is None:
        # A span of ids, made as `Span(parent.context.child(), tracer=tracer)` makes it without its two frames, and
        # no nullcontext around it (issue 19: one a call).
        trace_id, _, flags = parent.context
        span = object.__new__(Span)
        span.context = tuple.__new__(TraceContext, (trace_id, _span_id(), flags))
        span.tracer = tracer
        span.outcome = None
        span._otel = None
        return span
    return tracer.span(name, kind=kind, parent=parent.context, attributes=attributes)


def _otel_parent(parent: TraceContext | None) -> Any:
    if parent is None:
        return otel.set_span_in_context(otel.INVALID_SPAN)  # a root: not the process's ambient OpenTelemetry span
    remote = otel.SpanContext(
        trace_id=int(parent.trace_id, 16),
        span_id=int(parent.span_id, 16),
        is_remote=True,
        trace_flags=otel.TraceFlags(parent.flags),
    )
    return otel.set_span_in_context(otel.NonRecordingSpan(remote))


def tracer_provider(exporter: str, *, service: str, span_exporter: SpanExporter | None = None) -> TracerProvider | None:
    """The provider for `OBERON_TRACES_EXPORTER`: None for `none` (the default), else spans batched to the exporter.

    `console` prints spans as JSON on stdout; `otlp` sends them to `OTEL_EXPORTER_OTLP_ENDPOINT` and needs
    the `opentelemetry-exporter-otlp-proto-http` package. `span_exporter` overrides either (tests).
    """
    if exporter not in EXPORTERS:
        raise ConfigError(f"OBERON_TRACES_EXPORTER must be one of {', '.join(EXPORTERS)}, got {exporter!r}")
    if exporter == "none" and span_exporter is None:
        return None
    if span_exporter is None:
        span_exporter = ConsoleSpanExporter() if exporter == "console" else _otlp_exporter()
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(BatchSpanProcessor(span_exporter))
    return provider


def _otlp_exporter() -> SpanExporter:
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter  # type: ignore[import-not-found]
    except ImportError:
        raise ConfigError(
            "OBERON_TRACES_EXPORTER=otlp needs the opentelemetry-exporter-otlp-proto-http package"
        ) from None
    exporter: SpanExporter = OTLPSpanExporter()
    return exporter
