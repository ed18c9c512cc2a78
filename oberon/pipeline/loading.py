"""Loaders: the page's data sources fetched from BFFs, each once, results dispatched as actions."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from oberon import tracing
from oberon.client.upstream import Upstreams
from oberon.exceptions import UpstreamError
from oberon.pipeline.manifest import DataSource
from oberon.pipeline.state import Failed, Store, failed, loaded

logger = logging.getLogger("oberon.loading")  # the name operators' log filters know


def resolve_path(source: DataSource, params: Mapping[str, Any], context: Mapping[str, str] | None = None) -> str:
    """The source's path with each `{param}` filled in, URL-quoted; KeyError names a missing one.

    `context` (the request's device and locale) fills only the names the source declares it reads."""
    values = {**params, **{name: context[name] for name in source.context}} if source.context and context else params
    return source.path.format_map({name: quote(_text(value), safe="") for name, value in values.items()})


def _text(value: Any) -> str:
    return ("true" if value else "false") if isinstance(value, bool) else str(value)


async def load(
    store: Store,
    source: DataSource,
    *,
    upstreams: Upstreams,
    params: Mapping[str, Any],
    timeout: float,
    headers: Mapping[str, str],
    context: Mapping[str, str] | None = None,
    path: str | None = None,
) -> float:
    """Fetch one source and dispatch its value, or its failure, into the store; the seconds the value stays fresh.

    `path`: the source's path as `resolve_path` gives it, when the caller has it already."""
    if path is None:
        try:
            path = resolve_path(source, params, context)
        except KeyError as exc:
            store.dispatch(failed(source.key, f"missing param {exc.args[0]!r} for {source.path}"))
            return 0.0
    attributes = {"oberon.upstream": source.bff, "oberon.endpoint": source.path, "oberon.key": source.key}
    with tracing.child(f"GET {source.bff} {source.path}", kind=tracing.CLIENT, attributes=attributes) as span:
        try:
            reply = await upstreams[source.bff].get_fresh_json(
                path,
                timeout=timeout,
                headers={**headers, tracing.TRACEPARENT: span.traceparent},
                endpoint=source.path,  # the declared template: the grain of its breaker and metrics
            )
        except UpstreamError as exc:
            logger.warning("data source %s failed: %s", source.key, exc)
            span.set_outcome("error")
            span.set_attribute("oberon.error", exc.__class__.__name__)
            error: UpstreamError | None = exc
        else:
            error = None
            span.set_outcome("ok")
    # Dispatched outside the call's span: a component waiting for the key may render in this dispatch.
    if error is not None:
        store.dispatch(failed(source.key, str(error), error.status_code))
        return 0.0
    store.dispatch(loaded(source.key, reply.value))
    return reply.fresh_for


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
    for source in sources.values():
        try:
            by_request.setdefault((source.bff, resolve_path(source, params, context)), []).append(source)
        except KeyError:
            by_request[(source.key, None)] = [source]  # alone: `load` dispatches what is missing
    tasks = []
    for (_, path), group in by_request.items():
        timeout = max(timeouts.get(source.key, 1.0) for source in group)
        load_group = _load_group(store, group, upstreams, params, timeout, headers, freshness, context, path)
        tasks.append(asyncio.create_task(load_group))
    return tasks


async def _load_group(
    store: Store,
    group: list[DataSource],
    upstreams: Upstreams,
    params: Mapping[str, Any],
    timeout: float,
    headers: Mapping[str, str],
    freshness: dict[str, float] | None,
    context: Mapping[str, str] | None,
    path: str | None,
) -> None:
    first, *others = group
    fresh_for = await load(
        store, first, upstreams=upstreams, params=params, timeout=timeout, headers=headers, context=context, path=path
    )
    if freshness is not None:
        freshness.update((source.key, fresh_for) for source in group)
    value = store.get(first.key)
    for source in others:
        if isinstance(value, Failed):
            store.dispatch(failed(source.key, value.reason, value.status_code))
        else:
            store.dispatch(loaded(source.key, value))
