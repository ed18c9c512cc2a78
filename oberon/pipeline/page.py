"""The render pipeline of one page: app → store → loaders → components → layout → document → cache policy.

Free of HTTP objects: it takes plain values (the matched app, params, request context) and
returns a `Page` that the web layer turns into a response.
"""

from __future__ import annotations

import asyncio
import re
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import urlencode, urlsplit

import jinja2
from markupsafe import Markup

from oberon import tracing
from oberon.client.upstream import Upstreams
from oberon.exceptions import RenderError
from oberon.headers import REQUEST_ID_HEADER, ROLES_HEADER, USER_HEADER
from oberon.pipeline.assets import Assets
from oberon.pipeline.cache_policy import NO_STORE, PRIVATE, CachePolicy, surrogate_keys
from oberon.pipeline.loading import start_loaders
from oberon.pipeline.manifest import DataSource, SlotEntry
from oberon.pipeline.page_cache import PageCache
from oberon.pipeline.registry import Component, Registry, page_components
from oberon.pipeline.rendering import Fragment, RenderedFragments, render_component, resolve_props, serialize_state
from oberon.pipeline.seo import SiteInfo, page_head
from oberon.pipeline.server_timing import PageClock, Timing
from oberon.pipeline.state import Failed, Store
from oberon.types import Cacheability, Mode, Outcome

DOCUMENT_TEMPLATE = "document.html"
DEFAULT_SITE = SiteInfo(url="http://127.0.0.1:8000")
# A streamed page's app waits longer for its pending children while this process is busy (see wait_unless_idle).
BUSY_SHARE = 0.5  # of the wait's wall time spent on this thread's CPU
BUSY_LIMIT = 0.1  # seconds, in all, that a busy process waits before it streams anyway


@dataclass(frozen=True)
class RequestContext:
    """What the page may know about the request, as verified by the gateway."""

    request_id: str
    locale: str = "en"
    headers: Mapping[str, str] = field(default_factory=dict)
    user: str | None = None
    roles: tuple[str, ...] = ()

    @property
    def signed_in(self) -> bool:
        return self.user is not None

    def upstream_headers(self) -> dict[str, str]:
        """What a BFF learns about the request: its id, the locale and the verified user."""
        headers = {REQUEST_ID_HEADER: self.request_id, "Accept-Language": self.locale}
        if self.user is not None:
            headers[USER_HEADER] = self.user
            headers[ROLES_HEADER] = ",".join(self.roles)
        return headers


@dataclass(frozen=True)
class Page:
    """A rendered page: status, HTML, Cache-Control and what happened to each component."""

    status_code: int
    html: str
    cache_control: str
    fragments: tuple[Fragment, ...]
    state: Mapping[str, Any]
    preload: str = ""  # a `Link` header value: the page's stylesheets, to fetch before the HTML is parsed
    timing: Timing = field(default_factory=Timing)
    surrogate_keys: tuple[str, ...] = ()
    esi: bool = False  # the HTML holds <esi:include> islands for the CDN to fill in
    mode: Mode = Mode.NORMAL  # the renderer's mode its Cache-Control was decided in
    from_cache: bool = False  # served from the page cache, not rendered for this request
    rest: PageStream | None = None  # streamed: the HTML after `html`, as slow components finish

    @property
    def fallbacks(self) -> list[str]:
        return [fragment.component.name for fragment in self.fragments if fragment.outcome is Outcome.FALLBACK]


@dataclass(frozen=True)
class PageRecord:
    """One render of a page (or a preview) as the renderer saw it, also when a critical component failed it."""

    root: Component
    fragments: tuple[Fragment, ...]
    timing: Timing
    failed: bool = False
    page_cache: str | None = None  # `hit` or `miss` when the page cache was asked, else None
    streamed: bool = False  # its first bytes left while a child was still pending


PageObserver = Callable[[PageRecord], None]


@dataclass(frozen=True)
class _Plan:
    """A page of one app, as the registry defines it: which components, which data, in what order."""

    components: tuple[Component, ...]
    islands: frozenset[str]  # idents of the components the CDN fills in (ESI)
    sources: dict[str, DataSource]
    timeouts: dict[str, float]
    cacheability: tuple[Cacheability, ...]  # of the components rendered here (not islands)
    order: dict[str, int]  # ident → place in the page
    holding_critical: frozenset[str]  # idents of the components that are, or hold, a critical one


class PageRenderer:
    """Composes pages from the registry's components and their data."""

    def __init__(
        self,
        *,
        registry: Registry,
        upstreams: Upstreams,
        environment: jinja2.Environment,
        policy: CachePolicy,
        assets: Assets,
        site: SiteInfo = DEFAULT_SITE,
        mode: Callable[[], Mode] = lambda: Mode.NORMAL,
        observers: Sequence[PageObserver] = (),
        esi: bool = False,
        page_cache: PageCache[Page] | None = None,
        stream_after: float | None = None,
    ) -> None:
        self.observers = list(observers)
        self.esi = esi
        self.page_cache = page_cache
        self.stream_after = stream_after  # seconds an app waits for its non-critical children; None: never streams
        self._registry = registry
        self._plans: dict[str, _Plan] = {}
        self._resolved: dict[str, tuple[tuple[str, SlotEntry, Component], ...]] = {}
        self._rendered = RenderedFragments()
        self.upstreams = upstreams
        self.environment = environment
        self.policy = policy
        self.assets = assets
        self.site = site
        self.mode = mode

    @property
    def registry(self) -> Registry:
        return self._registry

    @registry.setter
    def registry(self, registry: Registry) -> None:
        """A new registry (live reload): the pages kept were rendered by the old one's components."""
        self._registry = registry
        self._plans.clear()
        self._resolved.clear()
        self._rendered.clear()
        if self.page_cache is not None:
            self.page_cache.clear()

    async def render(
        self,
        root: Component,
        *,
        params: Mapping[str, Any],
        context: RequestContext,
        props: Mapping[str, Any] | None = None,
        stream: bool = True,
    ) -> Page:
        """Render `root` (an app, or one component for a preview) as a whole HTML document.

        With ESI on, private components of a public page become islands the CDN fills in per user, so
        the rest of the page (the shell) stays shared; their data is not loaded for the shell. An
        anonymous page whose data is all fresh in the client's caches comes from the page cache.

        An app's page streams (`stream` and `stream_after` set): once its critical children are rendered,
        the others get `stream_after` seconds more; those still pending then are sent in their place as
        they finish (`Page.rest`). The status and Cache-Control are decided before the first byte, and
        count a pending child as a fallback: a later fallback cannot make the page claim too long a life.
        """
        mode = self.mode()
        registry = self.registry  # a page rendered while a new registry came in is not kept
        cache_key = self._cache_key(root, params, context, props, mode)
        if cache_key is not None and self.page_cache is not None:
            kept = self.page_cache.get(cache_key)
            if kept is not None:
                self._observe(PageRecord(root, kept.fragments, Timing(), page_cache="hit"))
                return replace(kept, from_cache=True)
        plan = self._plan(root)
        components, islands, sources = plan.components, plan.islands, plan.sources
        store = Store()
        clock = PageClock()
        clock.watch(store, sources)
        headers = context.upstream_headers()
        freshness: dict[str, float] = {}
        loaders = start_loaders(
            store,
            sources,
            upstreams=self.upstreams,
            params=params,
            timeouts=plan.timeouts,
            headers=headers,
            freshness=freshness,
        )
        fragments: list[Fragment] = []
        later = _Later(self.stream_after) if stream and self.stream_after is not None and props is None else None
        try:
            body = await self._render_tree(root, props or {}, store, fragments, islands, params, later)
        except BaseException:
            await _stop(loaders, later)
            raise
        if later is None or not later.pending:
            await _stop(loaders, later)
            later = None

        critical = next((f for f in fragments if f.outcome is Outcome.FALLBACK and f.component.manifest.critical), None)
        timing = clock.finish(rendered=sum(fragment.seconds for fragment in fragments))
        looked_up = "miss" if cache_key is not None else None
        if later is None or critical is not None:
            self._observe(PageRecord(root, tuple(fragments), timing, failed=critical is not None, page_cache=looked_up))
        if critical is not None:
            await _stop(loaders, later)
            status = 404 if critical.status_code == 404 else 503
            raise RenderError(critical.component.name, critical.reason, status_code=status)

        state = {key: value for key, value in store.state.items() if not isinstance(value, Failed)}
        failed_keys = sorted(key for key, value in store.state.items() if isinstance(value, Failed))
        fell_back = later is not None or any(fragment.outcome is Outcome.FALLBACK for fragment in fragments)
        private = Cacheability.PRIVATE in plan.cacheability
        head = page_head(
            root,
            title=self._title(root, state),
            state=state,
            params=params,
            site=self.site,
            locale=context.locale,
            cacheability=Cacheability.PRIVATE if private else Cacheability.PUBLIC,
            fell_back=fell_back,
        )
        assets = self.assets.for_page(components)
        html = self.environment.get_template(DOCUMENT_TEMPLATE).render(
            lang=context.locale,
            head=head,
            body=body,
            state=later.marker(_STATE) if later else serialize_state({"state": state, "failed": failed_keys}),
            assets=assets,
            asset_origin=_origin(self.assets.base_url),
        )
        cache_control = self.policy.cache_control(
            page=root.manifest.cache,
            components=plan.cacheability,
            fell_back=fell_back,
            mode=mode,
            session=context.signed_in,
        )
        order = plan.order
        fragments.sort(key=lambda fragment: order[fragment.component.manifest.ident])
        keys = surrogate_keys(app=root.name, components=(c.name for c in components), params=params)
        page = Page(
            200,
            html,
            cache_control,
            tuple(fragments),
            state,
            preload=assets.preload_header(),
            timing=timing,
            surrogate_keys=tuple(keys),
            esi=bool(islands),
            mode=mode,
        )
        if later is not None:
            first, rest = later.split(html)

            def finish() -> Awaitable[Markup]:
                return self._finish_stream(root, store, fragments, order, loaders, later, clock, looked_up)

            return replace(page, html=first, rest=PageStream(rest, later, finish, loaders))
        keep = cache_key is not None and cache_control != PRIVATE and not page.fallbacks and registry is self.registry
        if keep and self.page_cache is not None:
            fresh_for = min((freshness.get(key, 0.0) for key in sources), default=self.page_cache.max_seconds)
            self.page_cache.put(cache_key, page, size=len(html.encode("utf-8")), fresh_for=fresh_for)
        return page

    async def render_island(
        self, component: Component, *, params: Mapping[str, Any], props: Mapping[str, Any], context: RequestContext
    ) -> Page:
        """One private component for the CDN to include in a shared page: its boundary and its state, never shared."""
        store = Store()
        sources = self.registry.sources_for([component])
        loaders = start_loaders(
            store,
            sources,
            upstreams=self.upstreams,
            params=params,
            timeouts=_timeouts([component]),
            headers=context.upstream_headers(),
        )
        fragments: list[Fragment] = []
        try:
            body = await self._render_tree(component, props, store, fragments, frozenset(), params)
        finally:
            for task in loaders:
                task.cancel()
            await asyncio.gather(*loaders, return_exceptions=True)
        state = {key: value for key, value in store.state.items() if not isinstance(value, Failed)}
        failed_keys = sorted(key for key, value in store.state.items() if isinstance(value, Failed))
        script = Markup('<script type="application/json" data-oberon-island="{}">{}</script>').format(
            component.name, serialize_state({"state": state, "failed": failed_keys})
        )
        return Page(200, body + script, PRIVATE, tuple(fragments), state, mode=self.mode())

    def _cache_key(
        self,
        root: Component,
        params: Mapping[str, Any],
        context: RequestContext,
        props: Mapping[str, Any] | None,
        mode: Mode,
    ) -> tuple[Any, ...] | None:
        """What a page depends on besides its data; None when it must not be kept (signed in, a preview)."""
        if self.page_cache is None or not self.page_cache.enabled or context.signed_in or props is not None:
            return None
        return (root.manifest.ident, tuple(sorted(params.items())), context.locale, mode)

    def _observe(self, record: PageRecord) -> None:
        for observe in self.observers:
            observe(record)

    def _plan(self, root: Component) -> _Plan:
        """What a page of `root` is made of, worked out once per registry."""
        plan = self._plans.get(root.manifest.ident)
        if plan is None:
            components = page_components(self.registry, root)
            islands = self._islands(root, components)
            shell = tuple(component for component in components if component.manifest.ident not in islands)
            plan = _Plan(
                components=tuple(components),
                islands=islands,
                sources=self.registry.sources_for(shell),
                timeouts=_timeouts(shell),
                cacheability=tuple(component.manifest.cache for component in shell),
                order={component.manifest.ident: index for index, component in enumerate(components)},
                holding_critical=frozenset(
                    component.manifest.ident
                    for component in components
                    if any(held.manifest.critical for held in page_components(self.registry, component))
                ),
            )
            self._plans[root.manifest.ident] = plan
        return plan

    def _children(self, component: Component) -> tuple[tuple[str, SlotEntry, Component], ...]:
        """Each slot entry of `component` with the component it resolves to, resolved once per registry."""
        children = self._resolved.get(component.manifest.ident)
        if children is None:
            children = tuple(
                (slot, entry, self.registry.get(entry.component, entry.specifier))
                for slot, entries in component.manifest.slots.items()
                for entry in entries
            )
            self._resolved[component.manifest.ident] = children
        return children

    def _islands(self, root: Component, components: Sequence[Component]) -> frozenset[str]:
        """The private components (and what they hold) that become ESI islands of a public page."""
        if not self.esi or root.manifest.cache is Cacheability.PRIVATE:
            return frozenset()
        islands: set[str] = set()
        for component in components:
            if component is not root and component.manifest.cache is Cacheability.PRIVATE:
                islands.update(held.manifest.ident for held in page_components(self.registry, component))
        return frozenset(islands)

    async def _render_tree(
        self,
        component: Component,
        given: Mapping[str, Any],
        store: Store,
        fragments: list[Fragment],
        islands: frozenset[str],
        params: Mapping[str, Any],
        later: _Later | None = None,
    ) -> Markup:
        """Children render concurrently, each as soon as its own keys are ready; the layout waits for them.

        With `later` (the app of a streamed page), a non-critical child not ready in time becomes a marker.
        """
        if component.manifest.ident in islands:
            return island_include(component, params=params, props=given)
        slots: dict[str, Markup] = {}
        children = self._children(component)
        tasks = [
            asyncio.create_task(self._render_tree(child, entry.props, store, fragments, islands, params))
            for _, entry, child in children
        ]
        if later is not None:
            later.tasks.extend(tasks)
            critical = self._plan(component).holding_critical
            held = [
                task for task, (_, _, child) in zip(tasks, children, strict=True) if child.manifest.ident in critical
            ]
            if held:
                await asyncio.wait(held)
            if any(not task.done() for task in tasks):
                await wait_unless_idle(tasks, later.after)
            rendered = [task.result() if task.done() else later.defer(task) for task in tasks]
        elif tasks:
            rendered = list(await asyncio.gather(*tasks))
        else:
            rendered = []
        for (slot, _, _), html in zip(children, rendered, strict=True):
            slots[slot] = slots.get(slot, Markup("")) + html
        keys = component.manifest.keys
        await _wait_for(store, keys, component.manifest.timeout_ms / 1000)
        state = store.slice(keys)
        props = resolve_props(component, given)
        fragment = self._rendered.get(component, state, props) if not slots else None
        if fragment is None:
            with tracing.child(f"render {component.name}", attributes={"oberon.component": component.name}) as span:
                fragment = render_component(
                    component, state=state, props=props, environment=self.environment, slots=slots
                )
                span.set_outcome(fragment.result)
            if not slots:
                self._rendered.put(component, state, props, fragment)
        fragments.append(fragment)
        return fragment.html

    async def _finish_stream(
        self,
        root: Component,
        store: Store,
        fragments: list[Fragment],
        order: Mapping[str, int],
        loaders: list[asyncio.Task[None]],
        later: _Later,
        clock: PageClock,
        page_cache: str | None,
    ) -> Markup:
        """Once every pending child is done: stop the loaders, observe the whole render, and give the final state."""
        await asyncio.gather(*later.pending.values())
        await _stop(loaders, later)
        fragments.sort(key=lambda fragment: order[fragment.component.manifest.ident])
        timing = clock.finish(rendered=sum(fragment.seconds for fragment in fragments))
        self._observe(PageRecord(root, tuple(fragments), timing, page_cache=page_cache, streamed=True))
        state = {key: value for key, value in store.state.items() if not isinstance(value, Failed)}
        failed_keys = sorted(key for key, value in store.state.items() if isinstance(value, Failed))
        return serialize_state({"state": state, "failed": failed_keys})

    def _title(self, root: Component, state: Mapping[str, Any]) -> str:
        if root.title is not None:
            try:
                return Markup(root.title.render(state=state))  # already escaped by the autoescaping environment
            except Exception:  # a title needing failed data falls back to the app's name
                pass
        return root.manifest.description or root.name

    def error_page(self, status_code: int, title: str, message: str, context: RequestContext) -> Page:
        """A platform error page (404, 503…); never cached by shared caches unless it is a 404."""
        html = self.environment.get_template("error.html").render(
            title=title, message=message, request_id=context.request_id
        )
        mode = self.mode()
        public = self.policy.cache_control(page=Cacheability.PUBLIC, mode=mode)
        cache_control = public if status_code == 404 else NO_STORE
        return Page(status_code, html, cache_control, (), {}, mode=mode)


ISLAND_PREFIX = "/_islands"
_STATE = "state"
# A streamed page's markers are comments with this process's random token: data is escaped, so only the
# renderer writes one.
_MARKER_TOKEN = secrets.token_hex(8)
_MARKER = re.compile(f"<!--oberon-later:{_MARKER_TOKEN}:([a-z0-9]+)-->")


class _Later:
    """The children of a streamed page's app left pending, each marked where its HTML goes."""

    def __init__(self, after: float) -> None:
        self.after = after
        self.tasks: list[asyncio.Task[Markup]] = []  # every child's render, to cancel if the page is abandoned
        self.pending: dict[str, asyncio.Task[Markup]] = {}

    def marker(self, name: str) -> Markup:
        return Markup(f"<!--oberon-later:{_MARKER_TOKEN}:{name}-->")

    def defer(self, task: asyncio.Task[Markup]) -> Markup:
        name = f"c{len(self.pending)}"
        self.pending[name] = task
        return self.marker(name)

    def split(self, html: str) -> tuple[str, list[tuple[str, str]]]:
        """The HTML before the first marker, then each marker's name with the HTML that follows it."""
        first, *parts = _MARKER.split(html)
        return first, list(zip(parts[::2], parts[1::2], strict=True))


class PageStream:
    """The rest of a streamed page: each pending child's HTML in its place once rendered, then the final state.

    What is ready goes out as one chunk: a chunk ends only where the stream must wait for a child.
    `aclose()` stops what is still running of the page (the visitor went away); it may be called at any time.
    """

    def __init__(
        self,
        parts: list[tuple[str, str]],
        later: _Later,
        finish: Callable[[], Awaitable[Markup]],
        loaders: Sequence[asyncio.Task[None]],
    ) -> None:
        self._parts = parts
        self._later = later
        self._finish = finish
        self._loaders = loaders

    async def __aiter__(self) -> AsyncIterator[str]:
        pending = self._later.pending
        ready: list[str] = []
        for name, html in self._parts:
            task = pending.get(name)
            waits = not task.done() if task is not None else not all(t.done() for t in pending.values())
            if ready and waits:
                yield "".join(ready)
                ready.clear()
            ready.append(await task if task is not None else await self._finish())
            ready.append(html)
        yield "".join(ready)

    async def aclose(self) -> None:
        await _stop(self._loaders, self._later)


async def _stop(loaders: Sequence[asyncio.Task[None]], later: _Later | None) -> None:
    """Cancel what is still running of a page and wait for it to end."""
    tasks: list[asyncio.Task[Any]] = [*loaders, *(later.tasks if later is not None else ())]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def island_include(component: Component, *, params: Mapping[str, Any], props: Mapping[str, Any]) -> Markup:
    """The `<esi:include>` the CDN replaces with the component rendered for the visitor."""
    query = urlencode(
        {"version": f"=={component.manifest.version}", **{k: _query_value(v) for k, v in {**params, **props}.items()}}
    )
    return Markup('<esi:include src="{}"/>').format(f"{ISLAND_PREFIX}/{component.name}?{query}")


def _query_value(value: Any) -> str:
    return ("true" if value else "false") if isinstance(value, bool) else str(value)


def _origin(url: str) -> str:
    """`http://localhost:8000/_oberon/assets/` → `http://localhost:8000`; "" for a same-origin path."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else ""


def _timeouts(components: Iterable[Component]) -> dict[str, float]:
    """Each key's budget: the longest `timeout_ms` among the components that read it."""
    timeouts: dict[str, float] = {}
    for component in components:
        for key in component.manifest.keys:
            timeouts[key] = max(timeouts.get(key, 0.0), component.manifest.timeout_ms / 1000)
    return timeouts


async def wait_unless_idle(
    tasks: Iterable[asyncio.Task[Any]], after: float, *, cpu_time: Callable[[], float] = time.thread_time
) -> None:
    """Wait up to `after` seconds for `tasks`; then keep waiting while this thread was busy for most of the wait.

    A child still pending while the process sat idle waits for a slow backend: the page streams it. One
    pending while the process was busy waits for the CPU, behind other pages: streaming would add work
    (chunks, a longer-lived response) and not bring the page sooner, and the CDN would keep the page for
    the fallback lifetime only. So the page goes on waiting, up to `BUSY_LIMIT` in all. With `after` 0
    whatever is pending streams at once.
    """
    loop = asyncio.get_running_loop()
    asked, spent = loop.time(), cpu_time()
    _, pending = await asyncio.wait(tasks, timeout=after)
    if after <= 0:
        return
    while pending:
        waited = loop.time() - asked
        if cpu_time() - spent < BUSY_SHARE * waited or waited >= BUSY_LIMIT:
            return
        _, pending = await asyncio.wait(pending, timeout=min(after, BUSY_LIMIT - waited))


async def _wait_for(store: Store, keys: Iterable[str], timeout: float) -> None:
    """Return once every key is in the store (loaded or failed), or when `timeout` passes."""
    wanted = set(keys)
    if wanted <= store.state.keys():
        return
    loop = asyncio.get_running_loop()
    ready = loop.create_future()  # a bare future and timer: this runs for every component of every page

    def settle(_: object = None) -> None:
        if not ready.done():
            ready.set_result(None)

    unsubscribe = store.subscribe(wanted, lambda state: settle() if wanted <= state.keys() else None)
    timer = loop.call_later(timeout, settle)
    try:
        await ready
    finally:
        timer.cancel()
        unsubscribe()
