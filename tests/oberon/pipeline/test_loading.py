"""`resolve_path`: each param URL-quoted, whatever its type (issue 19: ints and plain words skip `quote`); a source's
call as it reaches the upstream."""

from __future__ import annotations

import asyncio
import enum
import re

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from oberon.client.upstream import CallRecord, Reply, Upstream, Upstreams
from oberon.pipeline.loading import resolve_path, start_loaders
from oberon.pipeline.manifest import DataSource
from oberon.pipeline.state import Store
from oberon.tracing import SERVER, TraceContext, Tracer


class Size(enum.IntEnum):
    LARGE = 3


@pytest.mark.parametrize(
    ("value", "segment"),
    [
        (42, "42"),
        (-7, "-7"),
        ("abc123", "abc123"),
        ("shoes and socks", "shoes%20and%20socks"),
        ("../admin", "..%2Fadmin"),
        ("a?b=c&d#e", "a%3Fb%3Dc%26d%23e"),
        ("café", "caf%C3%A9"),
        ("é", "%C3%A9"),  # alphanumeric, but not ASCII: quoted
        ("", ""),
        (True, "true"),
        (False, "false"),
        (Size.LARGE, "3"),
        (1.5, "1.5"),
    ],
)
def test_each_param_is_quoted_whatever_its_type(value: object, segment: str) -> None:
    source = DataSource(key="item", bff="shop", path="/items/{item}")
    assert resolve_path(source, {"item": value}) == f"/items/{segment}"


def test_the_context_fills_only_the_names_a_source_declares() -> None:
    params = {"item": 1, "locale": "xx"}
    context = {"locale": "de DE", "device": "mobile"}
    declared = DataSource(key="item", bff="shop", path="/items/{item}?l={locale}", context=("locale",))
    assert resolve_path(declared, params, context) == "/items/1?l=de%20DE"
    undeclared = DataSource(key="item", bff="shop", path="/items/{item}?l={locale}")
    assert resolve_path(undeclared, params, context) == "/items/1?l=xx"  # the route's own param, as it was


def test_a_missing_param_names_itself() -> None:
    source = DataSource(key="item", bff="shop", path="/items/{item}/{size}")
    with pytest.raises(KeyError, match="size"):
        resolve_path(source, {"item": 1})


TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"


@pytest.mark.anyio
@pytest.mark.parametrize("exporting", [False, True])
async def test_a_sources_call_sends_keys_records_and_traces_what_a_plain_get_would(exporting: bool) -> None:
    """Issue 19: a page's headers are copied and keyed once for its calls (`CallHeaders`) and the call's
    `traceparent` added by the client. The request's bytes, the cache key, the call's record and its span stay
    what they were when each loader merged `traceparent` into the headers and the client keyed them per call."""
    heads: list[bytes] = []
    handlers: list[asyncio.Task[object]] = []

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        handlers.append(asyncio.current_task())  # type: ignore[arg-type]
        try:
            while True:
                heads.append(await reader.readuntil(b"\r\n\r\n"))
                body = b'{"n":%d}' % len(heads)
                writer.write(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nCache-Control: max-age=60\r\n"
                    b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
                )
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass  # the client closed, or the test is over
        finally:
            writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    records: list[CallRecord] = []
    upstream = Upstream.create("shop", f"http://127.0.0.1:{port}", observers=[records.append])
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = Tracer(service="renderer", provider=provider if exporting else None)
    # A `traceparent` among the page's headers is replaced by the call's own, in its place.
    headers = {"X-Oberon-Request-Id": "r-1", "traceparent": f"00-{TRACE}-{PARENT}-01", "Accept-Language": "de"}
    headers["X-Oberon-User"] = "u-1"
    store = Store()
    source = DataSource(key="item", bff="shop", path="/items/{id}")
    try:
        with tracer.span("GET /p", kind=SERVER, parent=TraceContext(TRACE, PARENT)) as page:
            loaders = start_loaders(
                store,
                {"item": source},
                upstreams=Upstreams({"shop": upstream}),
                params={"id": 7},
                timeouts={"item": 1.0},
                headers=headers,
            )
            await asyncio.gather(*loaders)
            # The same GET, its headers in another order and case: the same key, so the answer kept.
            again = {"x-oberon-user": "u-1", "accept-language": "de", "X-Oberon-Request-Id": "r-2"}
            kept = await upstream.get_fresh_json("/items/7", headers=again, endpoint="/items/{id}")
            other = {"Accept-Language": "fr", "X-Oberon-User": "u-1"}
            called = await upstream.get_fresh_json("/items/7", headers=other, endpoint="/items/{id}")
    finally:
        await upstream.aclose()
        for handler in handlers:
            handler.cancel()
        await asyncio.gather(*handlers, return_exceptions=True)
        server.close()
        await server.wait_closed()
    assert store.get("item") == {"n": 1} and kept.value == {"n": 1} and called.value == {"n": 2}
    assert len(heads) == 2
    budget = re.search(rb"\r\nX-Oberon-Budget-Ms: ([0-9]+)\r\n", heads[0])
    sent = re.search(rb"\r\ntraceparent: (\S+)\r\n", heads[0])
    assert budget is not None and 0 < int(budget[1]) <= 1000 and sent is not None
    traceparent = sent[1].decode()
    assert (
        heads[0]
        == (
            f"GET /items/7 HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUser-Agent: oberon\r\nAccept: */*\r\n"
            f"X-Oberon-Request-Id: r-1\r\ntraceparent: {traceparent}\r\nAccept-Language: de\r\nX-Oberon-User: u-1\r\n"
            f"X-Oberon-Budget-Ms: {budget[1].decode()}\r\n\r\n"
        ).encode()
    )
    assert [record[:4] + record[5:] for record in records] == [
        ("shop", "GET", "/items/{id}", "ok", None),
        ("shop", "GET", "/items/{id}", "cached", None),
        ("shop", "GET", "/items/{id}", "ok", None),
    ]
    assert all(record.seconds >= 0 for record in records)
    call = TraceContext.parse(traceparent)
    assert call is not None and call.trace_id == TRACE and call.flags == 1
    assert call.span_id not in (PARENT, page.context.span_id)
    if exporting:
        spans = {span.name: span for span in exporter.get_finished_spans()}
        span = spans["GET shop /items/{id}"]
        assert span.kind is SpanKind.CLIENT
        assert f"{span.context.span_id:016x}" == call.span_id
        assert span.parent is not None and f"{span.parent.span_id:016x}" == page.context.span_id
        assert dict(span.attributes or {}) == {
            "oberon.upstream": "shop",
            "oberon.endpoint": "/items/{id}",
            "oberon.key": "item",
            "oberon.service": "renderer",
            "oberon.outcome": "ok",
        }
    else:
        assert not exporter.get_finished_spans()


@pytest.mark.anyio
async def test_a_pages_sources_are_called_at_the_paths_resolve_path_gives_each() -> None:
    """Issue 19: a page's params are quoted once for all of its sources; a source that reads the request context
    fills its own names without changing what the others read."""
    called: list[str] = []

    class Recording:
        async def get_fresh_json(self, path: str, **_: object) -> Reply:
            called.append(path)
            return Reply({"path": path})

    sources = {
        "item": DataSource(key="item", bff="shop", path="/items/{item}?l={locale}", context=("locale",)),
        "same": DataSource(key="same", bff="shop", path="/items/{item}?l={locale}"),
        "other": DataSource(key="other", bff="shop", path="/other/{item}/{locale}"),
        "missing": DataSource(key="missing", bff="shop", path="/items/{size}"),
    }
    params = {"item": "shoes and socks", "locale": "xx"}
    context = {"locale": "de DE", "device": "mobile"}
    store = Store()
    loaders = start_loaders(
        store,
        sources,
        upstreams=Upstreams({"shop": Recording()}),  # type: ignore[dict-item]
        params=params,
        timeouts={},
        headers={},
        context=context,
    )
    await asyncio.gather(*loaders)
    expected = [resolve_path(source, params, context) for key, source in sources.items() if key != "missing"]
    assert (
        called
        == expected
        == ["/items/shoes%20and%20socks?l=de%20DE", "/items/shoes%20and%20socks?l=xx", "/other/shoes%20and%20socks/xx"]
    )
    assert store.get("same") == {"path": "/items/shoes%20and%20socks?l=xx"}
    assert store.get("missing").reason == "missing param 'size' for /items/{size}"


def test_a_page_without_sources_starts_no_loader_and_needs_no_running_loop() -> None:
    """Issue 19: the tasks are made by the running loop's own `create_task`, asked only when there is one to make."""
    assert start_loaders(Store(), {}, upstreams=Upstreams({}), params={}, timeouts={}, headers={}) == []
