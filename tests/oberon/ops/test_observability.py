"""The layer that observes each request: latency by route template, trace propagation, one log line."""

from __future__ import annotations

import datetime
import io
import json
import logging
import random
import time
from collections.abc import AsyncIterator

import httpx
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Mount, Route
from starlette.types import Message, Receive, Scope, Send

from oberon.logs import ACCESS_LOGGER, configure, write_line
from oberon.ops import observability
from oberon.ops.metrics import Metrics
from oberon.ops.observability import Observability, RequestInfo
from oberon.tracing import TraceContext

pytestmark = pytest.mark.anyio

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
HEADER = f"00-{TRACE}-00f067aa0ba902b7-01"


async def echo(request: Request) -> Response:
    return JSONResponse({"traceparent": request.headers.get("traceparent")})


async def page(request: Request) -> Response:
    info = RequestInfo.current()
    info.route = "/e/{event_id:int}"
    info.fallbacks = ("related-events",)
    return PlainTextResponse("page")


async def broken(request: Request) -> Response:
    raise RuntimeError("boom")


def service() -> Starlette:
    inner = Starlette(routes=[Route("/events/{event_id:int}", echo)])
    return Starlette(
        routes=[
            Route("/echo", echo),
            Route("/broken", broken),
            Mount("/bff/events", app=inner),
            Route("/{path:path}", page),
        ]
    )


@pytest.fixture
def metrics() -> Metrics:
    return Metrics()


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
async def client(metrics: Metrics, exporter: InMemorySpanExporter) -> AsyncIterator[httpx.AsyncClient]:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    observability = Observability(metrics=metrics, provider=provider)
    app = observability.instrument(service(), service="renderer")
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://renderer") as client:
        yield client


def count(metrics: Metrics, route: str, status_class: str = "2xx", method: str = "GET") -> float:
    labels = {"service": "renderer", "route": route, "method": method, "status_class": status_class}
    return metrics.registry.get_sample_value("oberon_http_request_duration_seconds_count", labels) or 0.0


async def test_requests_are_counted_by_route_template_never_by_path(
    client: httpx.AsyncClient, metrics: Metrics
) -> None:
    for event_id in (1, 2, 3):
        assert (await client.get(f"/bff/events/events/{event_id}")).status_code == 200
    await client.get("/echo")
    assert count(metrics, "/bff/events/events/{event_id:int}") == 3
    assert count(metrics, "/echo") == 1
    exposition = metrics.exposition().decode()
    assert "/events/1" not in exposition and "/events/2" not in exposition


async def test_an_endpoint_can_name_its_route_more_precisely(client: httpx.AsyncClient, metrics: Metrics) -> None:
    await client.get("/e/42")
    assert count(metrics, "/e/{event_id:int}") == 1


async def test_an_unhandled_error_counts_as_a_5xx(client: httpx.AsyncClient, metrics: Metrics) -> None:
    assert (await client.get("/broken")).status_code == 500
    assert count(metrics, "/broken", "5xx") == 1


async def test_unmatched_requests_share_one_label() -> None:
    metrics = Metrics()
    app = Observability(metrics=metrics).instrument(Starlette(routes=[Route("/echo", echo)]), service="renderer")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://x") as client:
        for path in ("/nope/1", "/nope/2"):
            assert (await client.get(path)).status_code == 404
    assert count(metrics, "unmatched", "4xx") == 2


async def test_the_request_carries_this_service_span_as_traceparent(
    client: httpx.AsyncClient, exporter: InMemorySpanExporter
) -> None:
    forwarded = TraceContext.parse((await client.get("/echo", headers={"traceparent": HEADER})).json()["traceparent"])
    (span,) = exporter.get_finished_spans()
    assert forwarded is not None and forwarded.trace_id == TRACE
    assert forwarded.span_id == f"{span.context.span_id:016x}"
    assert span.attributes["http.route"] == "/echo"  # type: ignore[index]
    assert span.attributes["oberon.outcome"] == "ok"  # type: ignore[index]


async def test_a_malformed_traceparent_starts_a_new_trace(client: httpx.AsyncClient) -> None:
    forwarded = (await client.get("/echo", headers={"traceparent": "00-nonsense"})).json()["traceparent"]
    context = TraceContext.parse(forwarded)
    assert context is not None and context.trace_id != TRACE


async def test_one_access_log_line_per_request_with_id_status_and_fallbacks(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger=ACCESS_LOGGER):
        await client.get("/e/42", headers={"X-Oberon-Request-Id": "req-42"})
    (record,) = [record for record in caplog.records if record.name == ACCESS_LOGGER]
    assert record.request_id == "req-42"  # type: ignore[attr-defined]
    assert record.status == 200  # type: ignore[attr-defined]
    assert record.route == "/e/{event_id:int}"  # type: ignore[attr-defined]
    assert record.fallbacks == ["related-events"]  # type: ignore[attr-defined]
    assert record.duration_ms > 0  # type: ignore[attr-defined]


async def test_a_malformed_request_id_is_not_logged(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger=ACCESS_LOGGER):
        await client.get("/echo", headers={"X-Oberon-Request-Id": "bad id\nforged"})
    (record,) = [record for record in caplog.records if record.name == ACCESS_LOGGER]
    assert record.request_id is None  # type: ignore[attr-defined]


# What one observed request leaves behind, pinned: the access line's bytes, the record a handler gets, the server
# span, the metrics and the headers handed on (issue 19: the layer is made cheaper, none of this may change).


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def _observed_request(
    monkeypatch: pytest.MonkeyPatch,
    headers: list[tuple[bytes, bytes]],
    answer_id: bytes | None,
    *,
    recorded: bool = True,
    log_format: str = "json",
    fields: dict[str, object] | None = None,
    fails: bool = False,
) -> tuple[str, logging.LogRecord | None, list[tuple[bytes, bytes]], Metrics, InMemorySpanExporter]:
    """One GET /e/42 through `Instrumented` (driven by hand: nothing else reads the clocks), the JSON handler and,
    when `recorded`, a recording one on the root logger (then the line is written from a `LogRecord`, else without
    one). The app adds `fields` to the line (`cache=miss` by default) and raises when it `fails`."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    metrics = Metrics()
    handed_on: list[tuple[bytes, bytes]] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        handed_on.extend(scope["headers"])
        info = RequestInfo.current()
        info.route = "/e/{event_id:int}"
        info.fallbacks = ("related-events",)
        info.fields.update({"cache": "miss"} if fields is None else fields)
        if fails:
            raise RuntimeError("boom")
        start_headers = [(b"content-type", b"text/plain")]
        if answer_id is not None:
            start_headers.append((b"X-Oberon-Request-Id", answer_id))
        await send({"type": "http.response.start", "status": 200, "headers": start_headers})
        await send({"type": "http.response.body", "body": b"page"})

    async def receive() -> Message:
        return {"type": "http.request", "body": b""}

    async def send(message: Message) -> None:
        return None

    observed = Observability(metrics=metrics, provider=provider).instrument(app, service="renderer")
    clock = iter([100.0, 100.0123])
    monkeypatch.setattr(time, "perf_counter", lambda: next(clock))
    monkeypatch.setattr(time, "time", lambda: 1_800_000_000.25)
    stream = io.StringIO()
    root = logging.getLogger()
    saved = list(root.handlers), root.level
    configure(log_format, stream=stream)
    recorder = _Records()
    if recorded:
        root.addHandler(recorder)
    state = random.getstate()
    random.seed(19)  # the same trace and span ids every time
    try:
        scope = {"type": "http", "method": "GET", "path": "/e/42", "root_path": "", "query_string": b"t=1",
                 "headers": headers}  # fmt: skip
        coroutine = observed(scope, receive, send)
        with pytest.raises(RuntimeError if fails else StopIteration):
            coroutine.send(None)
    finally:
        random.setstate(state)
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in saved[0]:
            root.addHandler(handler)
        root.setLevel(saved[1])
    records = [record for record in recorder.records if record.name == ACCESS_LOGGER]
    assert len(records) == recorded
    return stream.getvalue(), records[0] if records else None, handed_on, metrics, exporter


def test_an_observed_request_writes_the_same_line_record_span_metrics_and_headers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    headers = [(b"host", b"renderer"), (b"traceparent", HEADER.encode()), (b"x-oberon-request-id", b"req-42"),
               (b"traceparent", b"00-ignored"), (b"accept", b"*/*")]  # fmt: skip
    line, record, handed_on, metrics, exporter = _observed_request(monkeypatch, headers, None)

    (span,) = exporter.get_finished_spans()
    span_id = f"{span.context.span_id:016x}"
    assert span.name == "GET renderer" and span.kind is SpanKind.SERVER
    assert span.parent is not None and f"{span.parent.span_id:016x}" == "00f067aa0ba902b7"
    assert f"{span.context.trace_id:032x}" == TRACE
    assert dict(span.attributes or {}) == {
        "oberon.service": "renderer", "http.route": "/e/{event_id:int}", "http.response.status_code": 200,
        "oberon.outcome": "ok",
    }  # fmt: skip
    assert span.status.status_code is StatusCode.UNSET

    assert line == (
        '{"ts":"2027-01-15T08:00:00.250+00:00","level":"info","logger":"oberon.access",'
        '"message":"GET /e/42 200 12.3ms","service":"renderer","request_id":"req-42",'
        f'"trace_id":"{TRACE}","method":"GET","path":"/e/42","route":"/e/{{event_id:int}}","status":200,'
        '"duration_ms":12.3,"fallbacks":["related-events"],"cache":"miss"}\n'
    )

    reference = logging.LogRecord(ACCESS_LOGGER, logging.INFO, observability.__file__, 0, "%s %s %d %.1fms",
                                  ("GET", "/e/42", 200, (100.0123 - 100.0) * 1000), None, "_log")  # fmt: skip
    extra = {"request_id": "req-42", "method": "GET", "path": "/e/42", "route": "/e/{event_id:int}", "status": 200,
             "duration_ms": 12.3, "fallbacks": ["related-events"], "cache": "miss"}  # fmt: skip
    expected = {**vars(reference), **extra, "_oberon_bound": {"service": "renderer", "request_id": "req-42",
                "trace_id": TRACE}}  # fmt: skip
    assert list(vars(record).items()) == list(expected.items())  # the clock is fixed: `created` and the rest too
    assert type(record) is logging.LogRecord and record.getMessage() == "GET /e/42 200 12.3ms"

    assert handed_on == [(b"host", b"renderer"), (b"x-oberon-request-id", b"req-42"), (b"accept", b"*/*"),
                         (b"traceparent", f"00-{TRACE}-{span_id}-01".encode())]  # fmt: skip

    labels = {"service": "renderer", "route": "/e/{event_id:int}", "method": "GET", "status_class": "2xx"}
    assert metrics.registry.get_sample_value("oberon_http_request_duration_seconds_count", labels) == 1.0
    assert metrics.registry.get_sample_value("oberon_http_request_duration_seconds_sum", labels) == pytest.approx(
        0.0123
    )


def test_without_a_valid_request_id_the_answers_one_is_logged(monkeypatch: pytest.MonkeyPatch) -> None:
    headers = [(b"host", b"gateway"), (b"x-oberon-request-id", b"bad id")]
    line, record, handed_on, _, _ = _observed_request(monkeypatch, headers, b"made-up-1")
    assert record.request_id == "made-up-1"  # type: ignore[attr-defined]
    assert record._oberon_bound["request_id"] is None  # type: ignore[attr-defined]
    # The record's field is the answer's id; it keeps the bound field's place in the line.
    assert '"service":"renderer","request_id":"made-up-1","trace_id":' in line
    assert handed_on[:2] == headers and handed_on[2][0] == b"traceparent"


@pytest.mark.parametrize(
    ("headers", "answer_id", "fields", "fails"),
    [
        ([(b"traceparent", HEADER.encode()), (b"x-oberon-request-id", b"req-42")], None, None, False),
        ([(b"x-oberon-request-id", b"bad id")], b"made-up-1", {"cache": "hit", "_private": 1, "n": 2**70}, False),
        ([], None, {"request_id": "from-the-app", "when": datetime.date(2026, 12, 7), "odd": "\ud800"}, False),
        ([(b"traceparent", HEADER.encode())], None, {}, True),
    ],
)
def test_the_access_line_without_a_record_is_the_line_the_record_writes(
    monkeypatch: pytest.MonkeyPatch,
    headers: list[tuple[bytes, bytes]],
    answer_id: bytes | None,
    fields: dict[str, object] | None,
    fails: bool,
) -> None:
    """Issue 19: when `configure`'s JSON handler alone would get the access record, the line is written without
    one; byte for byte the record's line (bound fields, extra fields, the answer's id, a failed request)."""
    written: list[bool] = []
    write = observability.write_line
    monkeypatch.setattr(observability, "write_line", lambda *args: written.append(write(*args)) or written[-1])
    line, record, *_ = _observed_request(monkeypatch, headers, answer_id, fields=fields, fails=fails)
    direct, none, *_ = _observed_request(monkeypatch, headers, answer_id, fields=fields, fails=fails, recorded=False)
    assert record is not None and none is None
    assert written == [False, True]  # the first with a record (another handler), the second without
    assert direct == line and line.count("\n") == 1


def test_the_text_format_and_a_field_a_record_refuses_still_go_through_logging(monkeypatch: pytest.MonkeyPatch) -> None:
    headers = [(b"x-oberon-request-id", b"req-1")]
    text, *_ = _observed_request(monkeypatch, headers, None, log_format="text")
    unrecorded, *_ = _observed_request(monkeypatch, headers, None, log_format="text", recorded=False)
    assert unrecorded == text and " INFO  [renderer] oberon.access: GET /e/42 200 12.3ms  request_id=req-1 " in text
    for recorded in (True, False):  # as `Logger.makeRecord` refuses it, either way
        with pytest.raises(KeyError, match="overwrite 'name'"):
            _observed_request(monkeypatch, [], None, fields={"name": "x"}, recorded=recorded)


def test_write_line_writes_only_where_configures_json_handler_alone_would(restore_logging: None) -> None:
    stream = io.StringIO()
    configure("json", stream=stream)
    logger = logging.getLogger("oberon.access")
    assert write_line(logger, logging.INFO, "GET / 200 1.0ms", {"status": 200})
    assert not write_line(logger, logging.INFO, "refused", {"msg": "x"})
    root = logging.getLogger()
    root.handlers[0].setLevel(logging.WARNING)
    assert not write_line(logger, logging.INFO, "below the handler's level", {})
    root.handlers[0].setLevel(logging.NOTSET)
    for where in (logger, logging.getLogger("oberon"), root):
        extra = logging.NullHandler()
        where.addHandler(extra)
        assert not write_line(logger, logging.INFO, "another handler", {})
        where.removeHandler(extra)
    logger.propagate = False
    assert not write_line(logger, logging.INFO, "not propagated", {})
    logger.propagate = True
    quiet = logging.Filter("elsewhere")
    for filtered in (logger, root.handlers[0]):
        filtered.addFilter(quiet)
        assert not write_line(logger, logging.INFO, "a filter", {})
        filtered.removeFilter(quiet)
    logging.setLogRecordFactory(lambda *args, **kwargs: logging.LogRecord(*args, **kwargs))
    try:
        assert not write_line(logger, logging.INFO, "a record factory", {})
    finally:
        logging.setLogRecordFactory(logging.LogRecord)
    root.handlers[0].setFormatter(logging.Formatter())
    assert not write_line(logger, logging.INFO, "another format", {})
    (line,) = stream.getvalue().splitlines()
    assert json.loads(line)["message"] == "GET / 200 1.0ms"
