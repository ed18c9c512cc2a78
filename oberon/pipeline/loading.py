"""Loaders: the page's data sources fetched from BFFs, each once, results dispatched as actions."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from oberon import tracing
from oberon.client.upstream import CallHeaders, Upstreams
from oberon.exceptions import UpstreamError
from oberon.pipeline.manifest import DataSource
from oberon.pipeline.state import Failed, Store, failed

logger = logging.getLogger("oberon.loading")  # the name operators' log filters know


def resolve_path(source: DataSource, params: Mapping[str, Any], context: Mapping[str, str] | None = None) -> str:
    """The source's path with each `{param}` filled in, URL-quoted; KeyError names a missing one.

    `context` (the request's device and locale) fills only the names the source declares it reads."""
    return _resolve(source, quoted_params(params), context)


def quoted_params(params: Mapping[str, Any]) -> dict[str, str]:
    """Each param URL-quoted: once a page, for all of its sources."""
    return {name: _quoted(value) for name, value in params.items()}


def _resolve(source: DataSource, quoted: dict[str, str], context: Mapping[str, str] | None) -> str:
    """`resolve_path` from the page's `quoted_params`."""
    if source.context and context:
        quoted = {**quoted}  # the page's own are the other sources' too
        for name in source.context:
            quoted[name] = _quoted(context[name])
    return source.path.format_map(quoted)


def _quoted(value: Any) -> str:
    # An int or a plain ASCII word needs no quoting: `quote` is several Python calls (issue 19).
    kind = type(value)
    if kind is int:
        return str(value)
    if kind is str and value.isalnum() and value.isascii():
        return value  # type: ignore[no-any-return]
    return quote(("true" if value else "false") if kind is bool else str(value), safe="")


def start_loaders(
    store: Store,
    sources: Mapping[str, DataSource],
    *,
    upstreams: Upstreams,
    params: Mapping[str, Any],
    timeouts: Mapping[str, float],
    headers: Mapping[str, str],
    freshness: dict[str, float] | None = None,
    context: Mapping[str, str] | None = None,
) -> list[asyncio.Task[None]]:
    """One task per distinct source; two keys with the same BFF and path cost one call.

    `context`: the request context (`RequestContext.inputs()`) for the sources that declare they read it.
    `freshness` receives, per key loaded, the seconds its value stays fresh (see `oberon.pipeline.page_cache`).
    """
    by_request: dict[tuple[str, str | None], list[DataSource]] = {}
    quoted = quoted_params(params)
    for source in sources.values():
        try:
            by_request.setdefault((source.bff, _resolve(source, quoted, context)), []).append(source)
        except KeyError:
            by_request[(source.key, None)] = [source]  # alone: `_load_group` dispatches what is missing
    if not by_request:
        return []
    tasks = []
    # The loop's own `create_task`: `asyncio.create_task` is two Python frames and a `getpid()` (in 3.11, each
    # `get_running_loop`) for each of the page's tasks; the store's loop, which its waits use too (issue 19).
    create_task = store.loop.create_task
    page_headers = CallHeaders.of(headers)  # copied and keyed once for all of the page's calls (issue 19)
    for (_, path), group in by_request.items():
        if len(group) == 1:
            timeout = timeouts.get(group[0].key, 1.0)
        else:
            timeout = max(timeouts.get(source.key, 1.0) for source in group)
        load_group = _load_group(store, group, upstreams, params, timeout, page_headers, freshness, context, path)
        tasks.append(create_task(load_group))
    return tasks


async def _load_group(
    store: Store,
    group: list[DataSource],
    upstreams: Upstreams,
    params: Mapping[str, Any],
    timeout: float,
    headers: CallHeaders,
    freshness: dict[str, float] | None,
    context: Mapping[str, str] | None,
    path: str | None,
) -> None:
    """Fetch the group's source once and dispatch its value, or its failure, under each of its keys (`freshness`:
    the seconds it stays fresh). The page's task itself: one coroutine, not one per level (issue 19)."""
    first = group[0]
    if path is None:
        try:
            path = resolve_path(first, params, context)
        except KeyError as exc:
            store.dispatch(failed(first.key, f"missing param {exc.args[0]!r} for {first.path}"))
            if freshness is not None:
                freshness[first.key] = 0.0
            return
    attributes = {"oberon.upstream": first.bff, "oberon.endpoint": first.path, "oberon.key": first.key}
    with tracing.child(f"GET {first.bff} {first.path}", kind=tracing.CLIENT, attributes=attributes) as span:
        try:
            reply = await upstreams[first.bff].get_fresh_json(
                path,
                timeout=timeout,
                headers=headers,
                endpoint=first.path,  # the declared template: the grain of its breaker and metrics
                traceparent=span.traceparent,
            )
        except UpstreamError as exc:
            logger.warning("data source %s failed: %s", first.key, exc)
            span.set_outcome("error")
            span.set_attribute("oberon.error", exc.__class__.__name__)
            error: UpstreamError | None = exc
        else:
            error = None
            span.set_outcome("ok")
    # Dispatched outside the call's span: a component waiting for the key may render in this dispatch. Put straight
    # into the store (`Store.put`, what dispatching `loaded`/`failed` does): no action made per key (issue 19).
    value: Any
    if error is not None:
        value = Failed(str(error), error.status_code)
        fresh_for = 0.0
    else:
        value = reply.value
        fresh_for = reply.fresh_for
    store.put(first.key, value)
    if freshness is not None:
        for source in group:
            freshness[source.key] = fresh_for
    if len(group) > 1:
        value = store.get(first.key)
        for source in group[1:]:
            store.put(source.key, value)
