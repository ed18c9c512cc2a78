"""Pages that read the request, through a real `oberon up`: declared query parameters and request context.

The site is a copy of the demo with one test-only app, `query-probe` at `/probe`, over a test-only BFF that echoes
what it was asked, so what reaches a data source is visible in the page.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import Running, gauge, start_server
from tests.projects import project_copy

PROBE_APP = """name = "query-probe"
version = "1.0.0"
owner = "platform"
kind = "app"
description = "A test-only page that reads its query"
routes = ["/probe"]
title = "Probe {{ params.q }}"

[query.q]
type = "str"
default = ""
max_length = 40

[query.page]
type = "int"
default = 1
min = 1
max = 50

[query.sort]
type = "str"
default = "date"
max_length = 10
choices = ["date", "name"]
invalid = "default"

[data.probe_results]
bff = "probe"
path = "/results?q={q}&page={page}&sort={sort}"

[data.probe_picks]
bff = "probe"
path = "/picks?device={device}&locale={locale}"
context = ["device", "locale"]
"""
PROBE_TEMPLATE = """<main id="main">
<h1 id="q">{{ params.q }}</h1>
<p id="asked">{{ state.probe_results.asked }}</p>
<p id="picks">{{ state.probe_picks.asked }}</p>
</main>
"""
PROBE_BFF = '''"""A test-only BFF that echoes the query string it was asked with."""

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route


def create_app(upstreams: object) -> Starlette:
    async def echo(request: Request) -> JSONResponse:
        return JSONResponse({"asked": request.url.query}, headers={"Cache-Control": "public, max-age=60"})

    return Starlette(routes=[Route("/results", echo), Route("/picks", echo)])
'''
DESKTOP = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36"
MOBILE = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148"


def probe_project(target: Path, app: str = PROBE_APP) -> Path:
    """A copy of the demo project with the probe app and its BFF; its site file."""
    site_file = project_copy(target)
    folder = target / "components" / "query-probe"
    folder.mkdir()
    (folder / "component.toml").write_text(app)
    (folder / "template.html").write_text(PROBE_TEMPLATE)
    (target / "probe_bff.py").write_text(PROBE_BFF)
    text = site_file.read_text()
    site_file.write_text(text.replace("[bff]\n", '[bff]\nprobe = "probe_bff:create_app"\n', 1))
    return site_file


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    site_file = probe_project(tmp_path_factory.mktemp("query") / "project")
    with start_server(env={"OBERON_SITE_FILE": str(site_file)}, cwd=site_file.parent) as running:
        yield running


def get(running: Running, url: str, agent: str = DESKTOP) -> httpx.Response:
    return httpx.get(running.base_url + url, headers={"User-Agent": agent}, timeout=10)


def page_cache(running: Running, result: str) -> float:
    return sum(gauge(running.admin_url, "oberon_cache_requests_total", service="renderer", cache="page", result=result))


def test_a_declared_query_reaches_the_data_source_and_the_template_escaped(site: Running) -> None:
    response = get(site, "/probe?q=%3Cscript%3Ealert(1)%3C%2Fscript%3E&page=3&utm_source=mail&other=1")
    assert response.status_code == 200, response.text
    assert '<h1 id="q">&lt;script&gt;alert(1)&lt;/script&gt;</h1>' in response.text
    assert '<p id="asked">q=%3Cscript%3Ealert%281%29%3C%2Fscript%3E&amp;page=3&amp;sort=date</p>' in response.text
    assert "<script>alert(1)" not in response.text
    assert "utm_source" not in response.text and "other=1" not in response.text


@pytest.mark.parametrize(
    "query",
    ["page=abc", "page=0", "page=99999999999999999999", "q=%00", "q=" + "x" * 41, "page=2&page=3", "page=%ff"],
)
def test_a_value_out_of_bounds_gets_a_400_never_a_500(site: Running, query: str) -> None:
    response = get(site, f"/probe?{query}")
    assert response.status_code == 400
    assert "<h1>Bad request</h1>" in response.text
    assert response.headers["cache-control"] == "no-store"


def test_a_huge_query_is_refused_never_a_500(site: Running) -> None:
    for url in ("/probe?q=" + "x" * 3000, "/probe?utm_content=" + "y" * 20000):
        assert get(site, url).status_code in (400, 414)


def test_a_value_out_of_bounds_gets_the_default_when_declared_so(site: Running) -> None:
    response = get(site, "/probe?sort=price&q=a")
    assert response.status_code == 200
    assert '<p id="asked">q=a&amp;page=1&amp;sort=date</p>' in response.text


def test_tracking_and_undeclared_parameters_share_one_page_cache_entry(site: Running) -> None:
    hits = page_cache(site, "hit")
    first = get(site, "/probe?utm_source=x&q=jazz")
    again = [get(site, "/probe?q=jazz"), get(site, "/probe?q=jazz&gclid=1&fbclid=2"), get(site, "/probe?page=1&q=jazz")]
    assert first.status_code == 200 and all(response.status_code == 200 for response in again)
    assert [response.headers.get("x-oberon-page-cache") for response in again] == ["hit"] * 3
    assert page_cache(site, "hit") == hits + 3
    other = get(site, "/probe?q=rock")
    assert "x-oberon-page-cache" not in other.headers and '<h1 id="q">rock</h1>' in other.text


def test_the_canonical_link_carries_only_declared_non_default_values(site: Running) -> None:
    response = get(site, "/probe?utm_source=x&sort=name&page=1&q=jazz")
    canonical = [line for line in response.text.splitlines() if 'rel="canonical"' in line]
    assert canonical and canonical[0].strip().endswith('/probe?q=jazz&amp;sort=name">'), canonical


def test_a_source_reading_the_device_varies_the_page_by_it(site: Running) -> None:
    desktop = get(site, "/probe?q=device")
    mobile = get(site, "/probe?q=device", agent=MOBILE)
    assert desktop.headers["vary"] == "Accept-Language, X-Oberon-Device"
    assert '<p id="picks">device=desktop&amp;locale=en</p>' in desktop.text
    assert '<p id="picks">device=mobile&amp;locale=en</p>' in mobile.text
    assert "x-oberon-page-cache" not in mobile.headers  # the page cache keys it by device
    assert get(site, "/probe?q=device", agent=MOBILE).headers.get("x-oberon-page-cache") == "hit"


def test_the_demo_pages_do_not_vary_by_device_nor_read_their_query(site: Running) -> None:
    for path in ("/", "/e/1"):
        plain = get(site, path)
        tracked = get(site, f"{path}?utm_source=x&q=1", agent=MOBILE)
        assert plain.status_code == tracked.status_code == 200
        assert plain.headers["vary"] == tracked.headers["vary"] == "Accept-Language"
        assert plain.headers["cache-control"] == tracked.headers["cache-control"]
        canonical = [line for line in tracked.text.splitlines() if 'rel="canonical"' in line]
        assert canonical and "?" not in canonical[0]


def test_oberon_check_refuses_a_data_source_reading_an_undeclared_parameter(tmp_path: Path) -> None:
    broken = PROBE_APP.replace("/results?q={q}&page={page}", "/results?q={q}&page={pages}")
    site_file = probe_project(tmp_path / "project", broken)
    environ = {key: value for key, value in os.environ.items() if not key.startswith("OBERON_")}
    result = subprocess.run(
        [sys.executable, "-m", "oberon", "check"],
        cwd=site_file.parent,
        env={**environ, "OBERON_SITE_FILE": str(site_file)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "query-probe/component.toml" in result.stderr + result.stdout
    assert "lacks param pages" in result.stderr + result.stdout


def test_behind_varnish_tracking_spellings_are_one_object_and_each_device_class_its_own(tmp_path: Path) -> None:
    site_file = probe_project(tmp_path / "project")
    with start_server("--cdn", env={"OBERON_SITE_FILE": str(site_file)}, cwd=site_file.parent) as running:
        first = get(running, "/probe?utm_source=x&q=cdn&page=2")
        same = [get(running, "/probe?page=2&q=cdn"), get(running, "/probe?q=cdn&gclid=1&page=2")]
        mobile = get(running, "/probe?q=cdn&page=2", agent=MOBILE)
        mobile_again = get(running, "/probe?page=2&q=cdn&utm_medium=mail", agent=MOBILE)
    assert first.headers["x-cache"] == "MISS"
    assert [response.headers["x-cache"] for response in same] == ["HIT", "HIT"]
    assert '<p id="picks">device=desktop' in same[0].text
    assert mobile.headers["x-cache"] == "MISS" and '<p id="picks">device=mobile' in mobile.text
    assert mobile_again.headers["x-cache"] == "HIT" and '<p id="picks">device=mobile' in mobile_again.text
