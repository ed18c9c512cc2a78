"""The render pipeline of one page: app → store → loaders → components → layout → document → cache policy.

Free of HTTP objects: it takes plain values (the matched app, params, request context) and
returns a `Page` that the web layer turns into a response. Its stages beside it: `plan.py` (what
a page holds), `islands.py` (private parts filled in per visitor), `streaming.py` (slow children sent
later), `document.py`.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import jinja2
from markupsafe import Markup
from packaging.specifiers import SpecifierSet

from oberon import tracing
from oberon.client.upstream import Upstreams
from oberon.exceptions import ComponentNotFound, RenderError
from oberon.headers import STABLE_COHORT
from oberon.pipeline.assets import AssetManifest, Assets
from oberon.pipeline.cache_policy import NO_STORE, PRIVATE, CachePolicy, entity_keys
from oberon.pipeline.cohorts import Cohorts
from oberon.pipeline.document import render_document, state_script
from oberon.pipeline.islands import client_island, island_include, island_state
from oberon.pipeline.loading import start_loaders
from oberon.pipeline.manifest import SlotEntry
from oberon.pipeline.page_cache import PageCache
from oberon.pipeline.page_types import Page, PageObserver, PageRecord, RequestContext
from oberon.pipeline.plan import PagePlan, key_timeouts, keys_read_by_scripts, plan_page
from oberon.pipeline.registry import ANY_VERSION, Component, Registry
from oberon.pipeline.rendering import Fragment, RenderedFragments, render_component, resolve_props
from oberon.pipeline.seo import SiteInfo
from oberon.pipeline.server_timing import PageClock, Timing
from oberon.pipeline.state import Store
from oberon.pipeline.streaming import PageStream, PendingChildren, stop_render
from oberon.pipeline.template_output import escape_output, trusted
from oberon.types import Cacheability, Mode, Outcome

DEFAULT_SITE = SiteInfo(url="http://127.0.0.1:8000")
_FALLBACK = Outcome.FALLBACK  # a plain name: an enum member read off its class is a descriptor call in 3.11 (issue 19)


@dataclass(frozen=True)
class Served:
    """What a renderer serves at one moment: a registry, the asset build made for it, and what is worked out from
    them once (page plans, resolved slots, shared renders). Swapped whole: a page captures one and is rendered
    wholly by it, however many swaps happen while it renders.

    A renderer following the registry service serves one per canary cohort (`cohort`, the name its pages say in
    `X-Oberon-Cohort`; None for a renderer that serves `components/`), and `pinned` holds the other versions an
    island URL may still name: the other cohorts' and those that left every channel less than 7 days ago.
    """

    registry: Registry
    assets: Assets
    cohort: str | None = None
    pinned: Registry | None = None
    plans: dict[str, PagePlan] = field(default_factory=dict)
    resolved: dict[str, tuple[_Child, ...]] = field(default_factory=dict)
    rendered: RenderedFragments = field(default_factory=RenderedFragments)
    _pinned_served: dict[str, Served] = field(default_factory=dict, init=False, repr=False)
    _apps: dict[str, Component] = field(default_factory=dict, init=False, repr=False)

    def app(self, name: str) -> Component:
        """The app a route names, as `registry.get(name)` finds it (its newest version): looked up once per registry,
        not matched against a version specifier on every page (issue 19). ComponentNotFound when it has none."""
        app = self._apps.get(name)
        if app is None:
            app = self._apps[name] = self.registry.get(name)
        return app

    @functools.cached_property
    def client_keys(self) -> frozenset[str]:
        """The keys any component's script reads: an island is rendered apart from the page it fills, and any of
        them may be on that page."""
        return keys_read_by_scripts(self.registry)

    def island(self, name: str, specifier: SpecifierSet = ANY_VERSION) -> tuple[Component, Served]:
        """The component an island URL names and what renders it: this cohort's version when it is the one pinned,
        else the pinned version among the others (a page cached before a rollback, by a CDN or a browser tab, still
        names it) in this cohort's registry in place of its own; ComponentNotFound when neither has it."""
        try:
            return self.registry.get(name, specifier), self
        except ComponentNotFound:
            if self.pinned is None:
                raise
        component = self.pinned.get(name, specifier)
        ident = component.manifest.ident
        served = self._pinned_served.get(ident)
        if served is None:
            others = (other for other in self.registry if other.name != name)
            served = Served(Registry([component, *others]), self.assets, cohort=self.cohort)
            self._pinned_served[ident] = served
        return component, served


@dataclass(frozen=True)
class Serving:
    """Everything a renderer serves at one moment: one `Served` per cohort (one alone, keyed None, without a
    registry service to follow), and the cohorts that say which one a bucket gets."""

    by_cohort: Mapping[str | None, Served]
    cohorts: Cohorts | None = None

    @classmethod
    def single(cls, served: Served) -> Serving:
        return cls({None: served})

    @property
    def stable(self) -> Served:
        """What a request without a bucket gets: the stable cohort's (or the only one)."""
        return self.by_cohort[STABLE_COHORT if self.cohorts is not None else None]

    def for_bucket(self, bucket: int | None) -> Served:
        if self.cohorts is None:
            return self.by_cohort[None]
        return self.by_cohort[self.cohorts.of(bucket)]

    def __iter__(self) -> Iterator[Served]:
        return iter(self.by_cohort.values())


class _Child(NamedTuple):
    """A slot entry of a component, resolved once per registry: the component it names and its props (the
    component's defaults overlaid with the entry's; read-only, as templates see data, and shared by every page)."""

    slot: str
    entry: SlotEntry
    component: Component
    props: dict[str, Any]


@dataclass
class _Run:
    """One page being rendered: what the steps of `PageRenderer.render` hand on to each other."""

    served: Served
    root: Component
    plan: PagePlan
    store: Store
    clock: PageClock
    loaders: list[asyncio.Task[None]]
    freshness: dict[str, float]  # key → seconds its value stays fresh, as the loaders found
    pending: PendingChildren | None  # streamed: the app's children left pending; None when none are
    page_cache: str | None  # `miss` when the page cache was asked, else None
    fragments: list[Fragment] = field(default_factory=list)
    body: Markup = Markup("")

    # Plain loops, not generator expressions: a generator is resumed once per fragment, and these run on every page
    # (issue 19).
    @property
    def fell_back(self) -> bool:
        """A component fell back, or is pending and may yet."""
        if self.pending is not None:
            return True
        for fragment in self.fragments:
            if fragment.outcome is _FALLBACK:
                return True
        return False

    def critical_fallback(self) -> Fragment | None:
        for fragment in self.fragments:
            if fragment.outcome is _FALLBACK and fragment.component.manifest.critical:
                return fragment
        return None

    def sort_fragments(self) -> None:
        """In page order, not the order they were rendered in."""
        order = self.plan.order
        self.fragments.sort(key=lambda fragment: order[fragment.component.manifest.ident])

    def finish_clock(self) -> Timing:
        rendered = 0.0
        for fragment in self.fragments:
            rendered += fragment.seconds
        return self.clock.finish(rendered=rendered)

    async def stop(self) -> None:
        await stop_render(self.loaders, self.pending)


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
        islands: bool = True,
        page_cache: PageCache[Page] | None = None,
        stream_after: float | None = None,
    ) -> None:
        self.observers = list(observers)
        self.esi = esi  # a CDN in front fills islands in (ESI); else the browser does
        self.islands = islands  # private components of a public page are islands; else they make the page private
        self.page_cache = page_cache
        self.stream_after = stream_after  # seconds an app waits for its non-critical children; None: never streams
        self._serving = Serving.single(Served(registry, assets))
        self.upstreams = upstreams
        self.environment = environment
        self.policy = policy
        self.site = site
        self.mode = mode

    @property
    def served(self) -> Served:
        """The registry and assets of the next page without a bucket (the stable cohort's); capture it once for a
        page rendered wholly by one registry."""
        return self._serving.stable

    def served_for(self, bucket: int | None) -> Served:
        """What renders the next page of a visitor in `bucket` (00–99; None: no visitor id): their cohort's."""
        return self._serving.for_bucket(bucket)

    @property
    def cohorts(self) -> Cohorts | None:
        """The cohorts of the registry service this renderer follows; None when it serves `components/`."""
        return self._serving.cohorts

    @property
    def registry(self) -> Registry:
        return self.served.registry

    @registry.setter
    def registry(self, registry: Registry) -> None:
        self.swap(registry)

    @property
    def assets(self) -> Assets:
        return self.served.assets

    def swap(self, registry: Registry, assets: AssetManifest | None = None) -> None:
        """Serve `registry` with `assets` (its asset build; else the current one) from the next page on, in one step.

        Pages in flight finish on what they captured; the pages kept were rendered by the old components.
        Live reload (`oberon up --dev`) swaps through here.
        """
        current = self.assets
        built = current if assets is None else Assets(assets, base_url=current.base_url)
        self._swap(Serving.single(Served(registry, built)))

    def follow(
        self,
        registries: Mapping[str, Registry],
        assets: AssetManifest,
        *,
        cohorts: Cohorts,
        pinned: Registry | None = None,
    ) -> None:
        """Serve a revision of the registry service in one step: `registries` has one registry for each of the
        `cohorts` (the stable versions with the cohort's canaries in place), `assets` is the one build of them all,
        and `pinned` the versions islands may still name besides a cohort's own."""
        missing = set(cohorts.names()) - set(registries)
        if missing:
            raise ValueError(f"no registry for the cohort(s) {', '.join(sorted(missing))}")
        built = Assets(assets, base_url=self.assets.base_url)
        by_cohort: dict[str | None, Served] = {
            name: Served(registries[name], built, cohort=name, pinned=pinned) for name in cohorts.names()
        }
        self._swap(Serving(by_cohort, cohorts))

    def _swap(self, serving: Serving) -> None:
        self._serving = serving
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
        served: Served | None = None,
    ) -> Page:
        """Render `root` (an app, or one component for a preview) as a whole HTML document.

        `served` is what `root` was looked up in (default: what is served now); the whole page is rendered by it.

        Private components of a public page become islands filled in per user (by the CDN with ESI on, else by
        the browser), so the rest of the page (the shell) stays shared; their data is not loaded for the shell. An
        anonymous page whose data is all fresh in the client's caches comes from the page cache.

        An app's page streams (`stream` and `stream_after` set): once its critical children are rendered,
        the others get `stream_after` seconds more; those still pending then are sent in their place as
        they finish (`Page.rest`). The status and Cache-Control are decided before the first byte, and
        count a pending child as a fallback: a later fallback cannot make the page claim too long a life.
        """
        mode = self.mode()
        served = self.served if served is None else served  # one registry for the page, whatever comes in
        cache_key = self._cache_key(root, params, context, props, mode, served)
        cached = self._cached_copy(root, cache_key)
        if cached is not None:
            return cached
        stream_after = self.stream_after if stream and props is None else None
        run = self._start_loaders(served, root, params, context, stream_after, looked_up=cache_key is not None)
        await self._compose(run, props or {}, params)
        timing = run.finish_clock()
        critical = run.critical_fallback()
        self._observe_unless_streaming(run, timing, critical)
        await self._fail_if_critical(run, critical)
        cache_control = self._cache_control(run, mode=mode, session=context.signed_in)
        page = self._document(run, cache_control, params=params, context=context, mode=mode, timing=timing)
        if run.pending is not None:
            return self._stream(run, run.pending, page)
        self._keep(cache_key, page, run)
        return page

    def _cached_copy(self, root: Component, cache_key: tuple[Any, ...] | None) -> Page | None:
        """The page as the page cache keeps it, if it does (observed as a hit)."""
        if cache_key is None or self.page_cache is None:
            return None
        cached = self.page_cache.get(cache_key)
        if cached is None:
            return None
        self._observe(PageRecord(root, cached.fragments, Timing(), page_cache="hit"))
        return cached._replace(from_cache=True)

    def _start_loaders(
        self,
        served: Served,
        root: Component,
        params: Mapping[str, Any],
        context: RequestContext,
        stream_after: float | None,
        *,
        looked_up: bool,
    ) -> _Run:
        """Load the data of the page's shell (not its islands'), timed by the page's clock."""
        plan = self._plan(served, root)
        store = Store()
        clock = PageClock()
        clock.watch(store, plan.sources)
        freshness: dict[str, float] = {}
        loaders = start_loaders(
            store,
            plan.sources,
            upstreams=self.upstreams,
            params=params,
            timeouts=plan.timeouts,
            headers=context.upstream_headers(),
            freshness=freshness,
            context=context.inputs(),
        )
        pending = PendingChildren(stream_after) if stream_after is not None else None
        page_cache = "miss" if looked_up else None
        return _Run(served, root, plan, store, clock, loaders, freshness, pending, page_cache=page_cache)

    async def _compose(self, run: _Run, props: Mapping[str, Any], params: Mapping[str, Any]) -> None:
        """Render the component tree; the loaders stop, unless children are left pending for the stream."""
        try:
            run.body = await self._render_tree(
                run.served, run.root, props, run.store, run.fragments, run.plan.islands, params, run.pending
            )
        except BaseException:
            await run.stop()
            raise
        if run.pending is None or not run.pending.by_marker:
            await run.stop()
            run.pending = None

    def _observe_unless_streaming(self, run: _Run, timing: Timing, critical: Fragment | None) -> None:
        """Observe a render that is over: whole, or failed by a critical component (a stream is, at its end)."""
        if run.pending is None or critical is not None:
            failed = critical is not None
            self._observe(PageRecord(run.root, tuple(run.fragments), timing, failed=failed, page_cache=run.page_cache))

    async def _fail_if_critical(self, run: _Run, critical: Fragment | None) -> None:
        """Stop the page and raise RenderError (404, else 503) when a critical component fell back."""
        if critical is not None:
            await run.stop()
            status = 404 if critical.status_code == 404 else 503
            raise RenderError(critical.component.name, critical.reason, status_code=status)

    def _cache_control(self, run: _Run, *, mode: Mode, session: bool) -> str:
        return self.policy.cache_control(
            page=run.root.manifest.cache,
            components=run.plan.cacheability,
            fell_back=run.fell_back,
            mode=mode,
            session=session,
        )

    def _document(
        self,
        run: _Run,
        cache_control: str,
        *,
        params: Mapping[str, Any],
        context: RequestContext,
        mode: Mode,
        timing: Timing,
    ) -> Page:
        """The page as a whole HTML document; a streamed one has a marker where its final state goes."""
        state, failed_keys = run.store.split_failed()
        if run.pending is not None:
            script = run.pending.state_marker()
        else:
            script = state_script(state, failed_keys, run.plan.client_keys)
        frame = run.plan.frame(run.served.assets)  # what every page of the plan carries, worked out once
        html = render_document(
            run.root,
            body=run.body,
            state=state,
            state_script=script,
            params=params,
            site=self.site,
            locale=context.locale,
            fell_back=run.fell_back,
            frame=frame,
        )
        run.sort_fragments()
        # The entities of its route, not its query: `?q=…` names nothing a purge could be about.
        query = run.root.manifest.query
        route = {name: value for name, value in params.items() if name not in query} if query else params
        entities = entity_keys(route)
        keys = tuple(dict.fromkeys((*frame.keys, *entities))) if entities else frame.keys
        return Page(
            200,
            html,
            cache_control,
            tuple(run.fragments),
            state,
            preload=frame.preload,
            timing=timing,
            surrogate_keys=keys,
            esi=self.esi and bool(run.plan.islands),
            mode=mode,
            by_device=run.plan.by_device,
        )

    def _stream(self, run: _Run, pending: PendingChildren, page: Page) -> Page:
        """The page up to its first pending child; the rest follows as each child is rendered (`Page.rest`)."""
        first, rest = pending.split(page.html)
        finish = functools.partial(self._finish_stream, run, pending)
        return page._replace(html=first, rest=PageStream(rest, pending, finish, run.loaders))

    def _keep(self, cache_key: tuple[Any, ...] | None, page: Page, run: _Run) -> None:
        """Put the page in the page cache if any visitor may get it: anonymous, public, whole, current components."""
        worth_keeping = (
            cache_key is not None
            and page.cache_control != PRIVATE
            and not page.fallbacks
            and any(run.served is served for served in self._serving)  # not rendered while a new registry came in
        )
        if worth_keeping and self.page_cache is not None:
            fresh_for = (
                self.page_cache.max_seconds
                if not run.plan.sources
                else min([run.freshness.get(key, 0.0) for key in run.plan.sources])
            )
            html = page.html
            size = len(html) if html.isascii() else len(html.encode("utf-8"))  # not encoded only to be measured
            self.page_cache.put(cache_key, page, size=size, fresh_for=fresh_for)

    async def render_island(
        self,
        component: Component,
        *,
        params: Mapping[str, Any],
        props: Mapping[str, Any],
        context: RequestContext,
        served: Served | None = None,
    ) -> Page:
        """One private component for a shared page (the CDN's include, or the browser's fetch): its boundary and its
        state, never shared."""
        served = self.served if served is None else served
        store = Store()
        sources = served.registry.sources_for([component])
        loaders = start_loaders(
            store,
            sources,
            upstreams=self.upstreams,
            params=params,
            timeouts=key_timeouts([component]),
            headers=context.upstream_headers(),
            context=context.inputs(),
        )
        fragments: list[Fragment] = []
        try:
            body = await self._render_tree(served, component, props, store, fragments, frozenset(), params)
        finally:
            await stop_render(loaders, None)
        state, failed_keys = store.split_failed()
        html = body + island_state(component, state, failed_keys, served.client_keys)
        return Page(200, html, PRIVATE, tuple(fragments), state, mode=self.mode())

    def _cache_key(
        self,
        root: Component,
        params: Mapping[str, Any],
        context: RequestContext,
        props: Mapping[str, Any] | None,
        mode: Mode,
        served: Served,
    ) -> tuple[Any, ...] | None:
        """What a page depends on besides its data; None when it must not be kept (signed in, a preview).

        Its cohort too: a page of one canary cohort is never served to another, whatever versions they share."""
        if self.page_cache is None or not self.page_cache.enabled or context.signed_in or props is not None:
            return None
        device = context.device if self._plan(served, root).by_device else None  # only a page that reads it
        return (root.manifest.ident, tuple(sorted(params.items())), context.locale, device, mode, served.cohort)

    def _observe(self, record: PageRecord) -> None:
        for observe in self.observers:
            observe(record)

    def _plan(self, served: Served, root: Component) -> PagePlan:
        """What a page of `root` is made of, worked out once per registry."""
        plan = served.plans.get(root.manifest.ident)
        if plan is None:
            plan = served.plans[root.manifest.ident] = plan_page(served.registry, root, islands=self.islands)
        return plan

    def _children(self, served: Served, component: Component) -> tuple[_Child, ...]:
        """Each slot entry of `component` with the component it resolves to and its props, resolved once per
        registry."""
        children = served.resolved.get(component.manifest.ident)
        if children is None:
            resolved = []
            for slot, entries in component.manifest.slots.items():
                for entry in entries:
                    child = served.registry.get(entry.component, entry.specifier)
                    resolved.append(_Child(slot, entry, child, resolve_props(child, entry.props)))
            children = served.resolved[component.manifest.ident] = tuple(resolved)
        return children

    async def _render_tree(
        self,
        served: Served,
        component: Component,
        given: Mapping[str, Any],
        store: Store,
        fragments: list[Fragment],
        islands: frozenset[str],
        params: Mapping[str, Any],
        pending: PendingChildren | None = None,
    ) -> Markup:
        """Children render concurrently, each as soon as its own keys are ready; the layout waits for them.

        With `pending` (the app of a streamed page), a non-critical child not ready in time becomes a marker.
        """
        if component.manifest.ident in islands:
            if self.esi:
                return island_include(component, params=params, props=given)
            return client_island(component, params=params, props=given, environment=self.environment)
        children = self._children(served, component)
        # The loop looked up once for the tree's leaves: in 3.11 each `get_running_loop()` is a getpid() call.
        loop = asyncio.get_running_loop()
        renders = [
            self._render_leaf(loop, served, child, props, store, fragments, params)
            if not child.manifest.slots and child.manifest.ident not in islands
            else asyncio.create_task(self._render_tree(served, child, entry.props, store, fragments, islands, params))
            for _, entry, child, props in children
        ]
        if pending is not None:
            holding_critical = self._plan(served, component).holding_critical
            critical = (
                [
                    render
                    for render, (_, _, child, _) in zip(renders, children, strict=True)
                    if child.manifest.ident in holding_critical
                ]
                if holding_critical
                else []
            )

            rendered = await pending.render_or_defer(renders, critical, _in_a_task)
        elif all(render.done() for render in renders):
            rendered = [render.result() for render in renders]
        else:
            rendered = list(await asyncio.gather(*renders))
        # Each slot's children joined once (escaped as `Markup.__add__` would: rendered HTML is kept as it is).
        parts: dict[str, list[str]] = {}
        for (slot, _, _, _), html in zip(children, rendered, strict=True):
            # A render is a `Markup` (its own `__html__`): kept as it is without asking `escape_output` (issue 19).
            parts.setdefault(slot, []).append(html if html.__class__ is Markup else escape_output(html))
        slots = {slot: trusted("".join(htmls)) for slot, htmls in parts.items()}
        keys = component.manifest.keys
        await store.wait_for(keys, component.manifest.timeout_ms / 1000)
        return self._render_ready(served, component, resolve_props(component, given), store, fragments, params, slots)

    def _render_leaf(
        self,
        loop: asyncio.AbstractEventLoop,
        served: Served,
        component: Component,
        props: Mapping[str, Any],
        store: Store,
        fragments: list[Fragment],
        params: Mapping[str, Any],
    ) -> asyncio.Future[Markup]:
        """A component without slots (not an island), rendered without a task of its own: at once when its keys
        are in the store, else by the store's callback when they arrive or its timeout passes. `props`: resolved."""
        done: asyncio.Future[Markup] = loop.create_future()

        def render() -> None:
            if done.done():  # the page was stopped
                return
            try:
                html = self._render_ready(served, component, props, store, fragments, params, None)
            except Exception as exc:
                done.set_exception(exc)
            else:
                done.set_result(html)

        store.when_ready(component.manifest.keys, component.manifest.timeout_ms / 1000, render)
        return done

    def _render_ready(
        self,
        served: Served,
        component: Component,
        props: Mapping[str, Any],
        store: Store,
        fragments: list[Fragment],
        params: Mapping[str, Any],
        slots: Mapping[str, Markup] | None,
    ) -> Markup:
        """Render `component` with its resolved `props` from what the store holds now (a render without slots may be
        a shared one)."""
        state = store.slice(component.manifest.keys)
        rendered = served.rendered
        if slots or not rendered.looks():
            fragment = (
                render_component(
                    component, state=state, props=props, environment=self.environment, slots=slots, params=params
                )
                if not tracing.recording()  # no frame of `_render_component`'s on the way (issue 19)
                else self._render_component(component, state, props, slots or {}, params)
            )
        else:
            key = rendered.key(component, state, props, params)
            shared = rendered.find(key, state)
            if shared is None:
                fragment = self._render_component(component, state, props, {}, params)
                rendered.keep(key, state, fragment)
            else:
                fragment = shared
        fragments.append(fragment)
        return fragment.html

    def _render_component(
        self,
        component: Component,
        state: Mapping[str, Any],
        props: Mapping[str, Any],
        slots: Mapping[str, Markup],
        params: Mapping[str, Any],
    ) -> Fragment:
        """One component's render, in a span of its own when spans are recorded (else a span would be only ids)."""
        if not tracing.recording():
            return render_component(
                component, state=state, props=props, environment=self.environment, slots=slots, params=params
            )
        with tracing.child(f"render {component.name}", attributes={"oberon.component": component.name}) as span:
            fragment = render_component(
                component, state=state, props=props, environment=self.environment, slots=slots, params=params
            )
            span.set_outcome(fragment.result)
        return fragment

    async def _finish_stream(self, run: _Run, pending: PendingChildren) -> Markup:
        """Once every pending child is done: stop the loaders, observe the whole render, and give the final state."""
        await asyncio.gather(*pending.by_marker.values())
        await stop_render(run.loaders, pending)
        run.sort_fragments()
        timing = run.finish_clock()
        self._observe(PageRecord(run.root, tuple(run.fragments), timing, page_cache=run.page_cache, streamed=True))
        state, failed_keys = run.store.split_failed()
        return state_script(state, failed_keys, run.plan.client_keys)

    def error_page(self, status_code: int, title: str, message: str, context: RequestContext) -> Page:
        """A platform error page (404, 503…); never cached by shared caches unless it is a 404.

        A cached page is everyone's: a 404 prints no request id (the caller may have chosen it), the
        others print theirs for support (it is also in the `X-Oberon-Request-Id` header).
        """
        cacheable = status_code == 404
        html = self.environment.get_template("error.html").render(
            title=title, message=message, request_id=None if cacheable else context.request_id
        )
        mode = self.mode()
        public = self.policy.cache_control(page=Cacheability.PUBLIC, mode=mode)
        cache_control = public if cacheable else NO_STORE
        return Page(status_code, html, cache_control, (), {}, mode=mode)


def _in_a_task(render: asyncio.Future[Markup]) -> asyncio.Future[Markup]:
    """A child's render left pending by a streamed page, as a task of its own (a leaf's is a bare future, filled
    by the store's callback): what the stream awaits and stopping the page cancels."""
    return render if isinstance(render, asyncio.Task) else asyncio.ensure_future(_deferred_render(render))


async def _deferred_render(render: asyncio.Future[Markup]) -> Markup:
    return await render
