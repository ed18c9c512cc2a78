"""Trace context: parsing `traceparent` as the W3C spec says, child spans, OpenTelemetry spans when exporting."""

from __future__ import annotations

import asyncio
import random

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from oberon.exceptions import ConfigError
from oberon.tracing import CLIENT, SERVER, Span, TraceContext, Tracer, child, current, recording, tracer_provider

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"
HEADER = f"00-{TRACE}-{PARENT}-01"


def test_traceparent_parses_a_valid_header() -> None:
    assert TraceContext.parse(HEADER) == TraceContext(TRACE, PARENT, 1)
    assert TraceContext.parse(HEADER).header == HEADER  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "garbage",
        f"00-{TRACE}-{PARENT}",  # no flags
        f"00-{TRACE.upper()}-{PARENT}-01",  # upper case is invalid
        f"00-{'0' * 32}-{PARENT}-01",  # all-zero trace id
        f"00-{TRACE}-{'0' * 16}-01",  # all-zero parent id
        f"ff-{TRACE}-{PARENT}-01",  # forbidden version
        f"00-{TRACE}-{PARENT}-01-extra",  # version 00 has nothing after the flags
    ],
)
def test_traceparent_refuses_malformed_headers(header: str | None) -> None:
    assert TraceContext.parse(header) is None


def test_traceparent_of_a_future_version_is_read_for_its_known_fields() -> None:
    assert TraceContext.parse(f"01-{TRACE}-{PARENT}-03-whatever") == TraceContext(TRACE, PARENT, 1)


def test_child_keeps_the_trace_and_makes_a_new_span() -> None:
    parent = TraceContext(TRACE, PARENT)
    child_context = parent.child()
    assert child_context.trace_id == TRACE and child_context.span_id != PARENT and len(child_context.span_id) == 16


def test_a_tracer_without_exporter_still_propagates_the_trace() -> None:
    tracer = Tracer(service="renderer")
    with tracer.span("GET renderer", kind=SERVER, parent=TraceContext(TRACE, PARENT)) as server:
        assert current() is server
        with child("GET events", kind=CLIENT) as call:
            assert call.context.trace_id == TRACE
            assert call.traceparent.startswith(f"00-{TRACE}-") and call.context.span_id != server.context.span_id
    assert current() is None


def test_child_without_a_current_span_makes_ids_only() -> None:
    with child("render x") as span:
        assert len(span.context.trace_id) == 32


def exporting() -> tuple[TracerProvider, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, exporter


def test_spans_are_exported_with_parents_and_outcomes() -> None:
    provider, exporter = exporting()
    tracer = Tracer(service="renderer", provider=provider)
    with tracer.span("GET renderer", kind=SERVER, parent=TraceContext(TRACE, PARENT)) as server:
        with child("render event-hero") as render:
            render.set_outcome("fallback")
        server.set_outcome("ok")
    spans = {span.name: span for span in exporter.get_finished_spans()}
    assert f"{spans['GET renderer'].context.trace_id:032x}" == TRACE
    assert f"{spans['GET renderer'].parent.span_id:016x}" == PARENT  # type: ignore[union-attr]
    assert spans["render event-hero"].parent.span_id == spans["GET renderer"].context.span_id  # type: ignore[union-attr]
    assert spans["render event-hero"].attributes["oberon.outcome"] == "fallback"  # type: ignore[index]
    assert spans["render event-hero"].status.is_ok is False
    assert spans["GET renderer"].attributes["oberon.service"] == "renderer"  # type: ignore[index]
    assert server.traceparent == f"00-{TRACE}-{spans['GET renderer'].context.span_id:016x}-01"


def test_an_exception_marks_the_span_as_an_error() -> None:
    provider, exporter = exporting()
    tracer = Tracer(service="bff:events", provider=provider)
    with pytest.raises(RuntimeError), tracer.span("GET events"):
        raise RuntimeError("boom")
    (span,) = exporter.get_finished_spans()
    assert span.attributes["oberon.outcome"] == "error"  # type: ignore[index]
    assert span.events[0].name == "exception"


def test_tracer_provider_is_off_by_default_and_refuses_unknown_exporters() -> None:
    assert tracer_provider("none", service="oberon") is None
    with pytest.raises(ConfigError, match="OBERON_TRACES_EXPORTER"):
        tracer_provider("zipkin", service="oberon")
    provider = tracer_provider("console", service="oberon")
    assert provider is not None
    provider.shutdown()


def test_recording_says_whether_a_span_opened_now_would_be_exported() -> None:
    assert not recording()  # no span at all
    with Tracer(service="renderer").span("GET /"):
        assert not recording()  # ids only: no exporter
    provider, _ = exporting()
    with Tracer(service="renderer", provider=provider).span("GET /"):
        assert recording()


def test_a_traceparent_and_a_span_id_are_written_as_int_formatting_writes_them(monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 19: the flags' text is looked up and a span id written by `bytes.hex`; the text stays the same."""
    for flags in (*range(300), -1):
        assert TraceContext(TRACE, PARENT, flags).header == f"00-{TRACE}-{PARENT}-{flags:02x}"
    state = random.getstate()
    drawn = [random.getrandbits(64) for _ in range(200)]
    random.setstate(state)
    assert [TraceContext(TRACE, PARENT).child().span_id for _ in drawn] == [f"{n or 1:016x}" for n in drawn]
    monkeypatch.setattr(random, "getrandbits", lambda bits: 0)
    assert TraceContext(TRACE, PARENT).child().span_id == "0000000000000001"


def test_a_span_block_opens_on_entering_and_restores_the_outer_span_however_it_ends() -> None:
    """Issue 19: `Tracer.span` is a class, not a generator; what a block records and leaves stays the same."""
    provider, exporter = exporting()
    tracer = Tracer(service="renderer", provider=provider)
    with tracer.span("GET renderer", kind=SERVER) as server:
        opened = tracer.span("not entered")
        assert current() is server and exporter.get_finished_spans() == ()
        with pytest.raises(asyncio.CancelledError), tracer.span("cancelled", parent=server.context) as cancelled:
            raise asyncio.CancelledError
        assert current() is server and cancelled.outcome == "error"
        with (
            pytest.raises(ValueError),
            tracer.span("kept", parent=server.context, attributes={"oberon.component": "x"}) as kept,
        ):
            kept.set_outcome("timeout")
            raise ValueError("late")
        assert current() is server and kept.outcome == "timeout"
    assert current() is None and opened is not None
    spans = {span.name: span for span in exporter.get_finished_spans()}
    assert list(spans) == ["cancelled", "kept", "GET renderer"]
    assert [event.name for event in spans["cancelled"].events] == []  # not an `Exception`: no event, as before
    assert spans["cancelled"].attributes["oberon.outcome"] == "error"  # type: ignore[index]
    assert [event.name for event in spans["kept"].events] == ["exception"]
    assert dict(spans["kept"].attributes or {}) == {
        "oberon.component": "x", "oberon.service": "renderer", "oberon.outcome": "timeout",
    }  # fmt: skip
    for name in ("cancelled", "kept"):
        assert spans[name].parent.span_id == spans["GET renderer"].context.span_id  # type: ignore[union-attr]
        assert spans[name].status.is_ok is False


@pytest.mark.parametrize("flags", [0, 1, 255, 300])
def test_a_child_of_ids_only_is_the_span_its_parents_context_child_makes(flags: int) -> None:
    """Issue 19: `child` makes a span of ids without `Span`'s and `TraceContext.child`'s frames, and `traceparent`
    writes the header without `header`'s: the same span, the same text, from the same random draws."""
    tracer = Tracer(service="renderer")
    with tracer.span("GET renderer", kind=SERVER, parent=TraceContext(TRACE, PARENT, flags)) as server:
        state = random.getstate()
        with child("GET events", kind=CLIENT) as call:
            random.setstate(state)
            expected = server.context.child()
            assert type(call) is Span and call.context == expected and type(call.context) is TraceContext
            assert call.tracer is tracer and call.outcome is None and current() is server
            assert call.traceparent == expected.header == f"00-{TRACE}-{expected.span_id}-{flags:02x}"
            call.set_outcome("ok")
            call.set_attribute("oberon.key", "x")  # records nothing: there is no exporter
            assert call.outcome == "ok"
