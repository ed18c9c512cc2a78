"""Live reload: the registry swapped in when valid and kept when not, BFF code reloaded, the dev markup in pages."""

from __future__ import annotations

import asyncio
import sys
import textwrap
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import jinja2
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse
from starlette.routing import Route

from oberon.client.upstream import Upstreams
from oberon.dev.reload import DevServer, DevState, Reloadable, Reloader, inject
from oberon.pipeline.assets import Assets
from oberon.pipeline.cache_policy import CachePolicy
from oberon.pipeline.page import PageRenderer
from oberon.pipeline.registry import Registry
from oberon.site import import_target


@pytest.fixture
def renderer(registry: Registry, environment: jinja2.Environment, assets: Assets) -> PageRenderer:
    return PageRenderer(
        registry=registry, upstreams=Upstreams({}), environment=environment, policy=CachePolicy(), assets=assets
    )


@pytest.fixture
def printed() -> list[str]:
    return []


@pytest.fixture
def reloader(
    renderer: PageRenderer, assets: Assets, site: Path, environment: jinja2.Environment, printed: list[str]
) -> Reloader:
    return Reloader(
        renderer=renderer,
        build_dir=assets.manifest.folder,
        roots=[site / "components"],
        environment=environment,
        out=printed.append,
    )


def test_reload_swaps_in_a_changed_template(reloader: Reloader, renderer: PageRenderer, site: Path) -> None:
    before = renderer.registry
    (site / "components" / "greeting" / "template.html").write_text("<p>Howdy {{ props.who }}</p>")
    reloader.apply([site / "components" / "greeting" / "template.html"])
    assert renderer.registry is not before
    assert renderer.registry.get("greeting").template.render(props={"who": "you"}) == "<p>Howdy you</p>"
    assert reloader.state.generation == 1
    assert reloader.state.messages == []


def test_reload_keeps_the_last_good_registry_and_reports_every_error(
    reloader: Reloader, renderer: PageRenderer, site: Path, printed: list[str]
) -> None:
    before = renderer.registry
    manifest = site / "components" / "greeting" / "component.toml"
    manifest.write_text(manifest.read_text().replace('version = "1.0.0"', 'version = "one"'))
    (site / "components" / "item-card" / "template.html").write_text("{% if %}")
    reloader.apply([manifest])
    assert renderer.registry is before
    messages = reloader.state.messages
    assert any(message.startswith(f"{manifest}:version: 'one' is not a PEP 440 version") for message in messages)
    assert any("item-card/template.html:line 1: template syntax error" in message for message in messages)
    assert f"the registry has {len(messages)} error(s); still serving the last good one:" in printed[-1]
    assert all(f"\n  {message}" in printed[-1] for message in messages)
    assert reloader.state.generation == 1

    manifest.write_text(manifest.read_text().replace('version = "one"', 'version = "1.0.0"'))
    (site / "components" / "item-card" / "template.html").write_text("<h1>{{ state.item.name }}</h1>")
    reloader.apply([manifest])
    assert renderer.registry is not before
    assert reloader.state.messages == []
    assert reloader.state.generation == 3  # the errors cleared, then the swap


def test_reload_rebuilds_the_assets_of_a_new_component(
    reloader: Reloader, renderer: PageRenderer, assets: Assets, site: Path, write_component
) -> None:
    folder = write_component("badge", 'name = "badge"\nversion = "1.0"\nowner = "t"\n[assets]\ncss = ["badge.css"]\n')
    (folder / "badge.css").write_text(".badge { color: red; }")
    reloader.apply([site / "components" / "badge" / "component.toml"])
    badge = renderer.registry.get("badge")
    assert renderer.assets.url(badge, "badge.css").startswith("/_oberon/assets/badge.")


def test_reload_ignores_files_outside_what_it_watches(
    reloader: Reloader, renderer: PageRenderer, tmp_path: Path
) -> None:
    before = renderer.registry
    reloader.apply([tmp_path / "notes.txt"])
    assert renderer.registry is before
    assert reloader.state.generation == 0


APP_V1 = '''
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route


def create_app(upstreams):
    async def hello(request):
        return PlainTextResponse("{greeting}")

    return Starlette(routes=[Route("/hello", hello)])
'''


@pytest.fixture
def team_package(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A BFF package `devteam_<n>` importable from a temporary folder."""
    name = f"devteam_{abs(hash(tmp_path)) % 10**8}"
    folder = tmp_path / "code" / name
    folder.mkdir(parents=True)
    (folder / "__init__.py").write_text(f"from {name}.app import create_app as create_app\n")
    (folder / "app.py").write_text(APP_V1.format(greeting="v1"))
    sys.path.insert(0, str(tmp_path / "code"))
    yield name, folder
    sys.path.remove(str(tmp_path / "code"))
    for module in [module for module in sys.modules if module.split(".")[0] == name]:
        del sys.modules[module]


async def hello(app: Reloadable) -> str:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://bff") as client:
        return (await client.get("/hello")).text


@pytest.mark.anyio
async def test_reload_rebuilds_a_bff_whose_code_changed_and_keeps_it_when_broken(
    reloader: Reloader, team_package: tuple[str, Path], printed: list[str]
) -> None:
    name, folder = team_package
    target = f"{name}:create_app"
    app = Reloadable(lambda: import_target(target)(None))
    reloader.bffs["team"] = (app, target)
    assert folder in reloader.watched()
    assert await hello(app) == "v1"

    (folder / "app.py").write_text(APP_V1.format(greeting="v2"))
    reloader.apply([folder / "app.py"])
    assert await hello(app) == "v2"
    assert printed[-1] == "oberon: reloaded bff:team"

    (folder / "app.py").write_text("def create_app(upstreams):\n    return (\n")
    reloader.apply([folder / "app.py"])
    assert await hello(app) == "v2", "the previous code keeps answering"
    assert reloader.state.messages[0].startswith("bff:team: SyntaxError")
    assert "did not reload, still serving the previous code" in printed[-1]

    (folder / "app.py").write_text(APP_V1.format(greeting="v3"))
    reloader.apply([folder / "app.py"])
    assert await hello(app) == "v3"
    assert reloader.state.messages == []


def test_dev_markup_goes_into_the_head_and_errors_to_the_top_of_the_body() -> None:
    state = DevState(generation=4)
    page = b"<!doctype html><html><head><title>t</title></head><body class=x><p>page</p></body></html>"
    assert inject(page, state) == (
        b'<!doctype html><html><head><title>t</title><link rel="stylesheet" href="/_oberon/dev/dev.css">\n'
        b'<script src="/_oberon/dev/reload.js" data-generation="4" defer></script>\n'
        b"</head><body class=x><p>page</p></body></html>"
    )
    state.report("registry", ["components/x/component.toml:version: '<one>' is not a PEP 440 version"])
    html = inject(page, state).decode()
    assert '<body class=x><aside class="oberon-dev-errors" role="alert"><h2>oberon check: 1 error(s)</h2>' in html
    assert "<code>components/x/component.toml:version: &#39;&lt;one&gt;&#39; is not a PEP 440 version</code>" in html
    assert 'data-generation="5"' in html


@pytest.fixture
async def dev_client(reloader: Reloader) -> AsyncIterator[httpx.AsyncClient]:
    async def page(request: Request) -> HTMLResponse:
        return HTMLResponse("<html><head></head><body><p>page</p></body></html>")

    async def data(request: Request) -> JSONResponse:
        return JSONResponse({"html": "<head></head>"})

    async def stream(request: Request) -> PlainTextResponse:
        return PlainTextResponse("<head></head>")

    app = Starlette(routes=[Route("/", page), Route("/data", data), Route("/text", stream)])
    server = DevServer(app, reloader=reloader)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=server), base_url="http://dev") as client:
        yield client


@pytest.mark.anyio
async def test_dev_server_puts_the_markup_into_html_only(dev_client: httpx.AsyncClient) -> None:
    page = await dev_client.get("/")
    assert '<script src="/_oberon/dev/reload.js" data-generation="0" defer></script>' in page.text
    assert int(page.headers["content-length"]) == len(page.content)
    assert (await dev_client.get("/data")).json() == {"html": "<head></head>"}
    assert (await dev_client.get("/text")).text == "<head></head>"


@pytest.mark.anyio
async def test_dev_server_serves_its_script_and_stylesheet(dev_client: httpx.AsyncClient) -> None:
    script = await dev_client.get("/_oberon/dev/reload.js")
    assert script.headers["content-type"].startswith("text/javascript")
    assert "/_oberon/dev/changes?since=" in script.text
    css = await dev_client.get("/_oberon/dev/dev.css")
    assert css.headers["content-type"].startswith("text/css")


@pytest.mark.anyio
async def test_dev_server_long_poll_answers_when_the_generation_moves(
    dev_client: httpx.AsyncClient, reloader: Reloader
) -> None:
    assert (await dev_client.get("/_oberon/dev/changes?since=7")).json() == {"generation": 0, "errors": []}

    async def later() -> None:
        await asyncio.sleep(0.3)
        reloader.state.report("registry", ["broken"])

    task = asyncio.create_task(later())
    answer = await dev_client.get("/_oberon/dev/changes?since=0")
    await task
    assert answer.json() == {"generation": 1, "errors": ["broken"]}


def test_reload_script_is_plain_es5_without_inline_code() -> None:
    source = (Path(__file__).resolve().parents[3] / "oberon" / "static" / "dev-reload.js").read_text()
    assert "=>" not in source and "let " not in source
    assert textwrap.dedent(source).startswith("// oberon up --dev")


@pytest.mark.anyio
async def test_watcher_swaps_in_a_new_build_when_a_script_changes(
    reloader: Reloader, renderer: PageRenderer, assets: Assets, site: Path
) -> None:
    before = renderer.assets.url(renderer.registry.get("item-card"), "assets/item.js")
    stop = asyncio.Event()
    watcher = asyncio.create_task(reloader.watch(stop))
    try:
        await asyncio.sleep(0.3)  # let the watcher start
        (site / "components/item-card/assets/item.js").write_text('console.log("edited")')
        async with asyncio.timeout(10):
            while renderer.assets.url(renderer.registry.get("item-card"), "assets/item.js") == before:
                await asyncio.sleep(0.05)
    finally:
        stop.set()
        await watcher
    after = renderer.assets.manifest.assets["item-card@1.2.0/assets/item.js"].file
    assert (assets.manifest.folder / after).read_bytes() == b'console.log("edited")'
    assert (assets.manifest.folder / before.rsplit("/", 1)[-1]).is_file(), "the previous build stays for open pages"
