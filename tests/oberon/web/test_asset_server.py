"""The asset server as ASGI, driven with the scopes a server builds from raw request lines."""

from __future__ import annotations

import gzip
import os
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote

import brotli
import pytest

from oberon.pipeline.assets import RUNTIME, AssetManifest, build_assets
from oberon.pipeline.registry import Registry
from oberon.web.asset_server import IMMUTABLE, AssetServer, HostDispatch

pytestmark = pytest.mark.anyio

PAGE_ORIGIN = "http://127.0.0.1:8000"


@dataclass
class Answer:
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    header_names: list[str] = field(default_factory=list)


async def call(app: object, raw_path: str, *, method: str = "GET", headers: dict[str, str] | None = None) -> Answer:
    """What a server such as uvicorn passes on: the path percent-decoded once, the raw bytes beside it."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": unquote(raw_path),
        "raw_path": raw_path.encode("latin-1"),
        "query_string": b"",
        "root_path": "",
        "headers": [(key.lower().encode(), value.encode()) for key, value in (headers or {}).items()],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }
    answer = Answer(status=0)

    async def receive() -> dict[str, object]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, object]) -> None:
        if message["type"] == "http.response.start":
            answer.status = int(message["status"])  # type: ignore[call-overload]
            for key, value in message["headers"]:  # type: ignore[attr-defined]
                answer.header_names.append(key.decode().lower())
                answer.headers[key.decode().lower()] = value.decode()
        elif message["type"] == "http.response.body":
            answer.body += message.get("body", b"")  # type: ignore[operator]

    await app(scope, receive, send)  # type: ignore[operator]
    return answer


@pytest.fixture
def build(registry: Registry, tmp_path: Path) -> AssetManifest:
    return build_assets(registry, tmp_path / "assets")


@pytest.fixture
def server(build: AssetManifest) -> AssetServer:
    return AssetServer(folder=build.folder, allow_origins=[PAGE_ORIGIN])


@pytest.fixture
def runtime(build: AssetManifest) -> str:
    return "/_oberon/assets/" + build.assets[RUNTIME].file


async def test_asset_server_serves_a_hashed_file_as_immutable(
    server: AssetServer, build: AssetManifest, runtime: str
) -> None:
    answer = await call(server, runtime)
    assert answer.status == 200
    assert answer.body == (build.folder / build.assets[RUNTIME].file).read_bytes()
    assert answer.headers["cache-control"] == "public, max-age=31536000, immutable" == IMMUTABLE
    assert answer.headers["content-type"] == "text/javascript; charset=utf-8"
    assert answer.headers["etag"].startswith('"') and not answer.headers["etag"].startswith("W/")
    assert answer.headers["vary"] == "Accept-Encoding"
    assert answer.headers["access-control-allow-origin"] == PAGE_ORIGIN
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert "content-encoding" not in answer.headers
    assert "set-cookie" not in answer.header_names


async def test_asset_server_serves_css_with_its_content_type(server: AssetServer, build: AssetManifest) -> None:
    css = build.assets["item-card@1.2.0/assets/item.css"].file
    answer = await call(server, f"/_oberon/assets/{css}")
    assert answer.status == 200
    assert answer.headers["content-type"] == "text/css; charset=utf-8"


async def test_asset_server_answers_304_to_a_matching_etag(server: AssetServer, runtime: str) -> None:
    first = await call(server, runtime, headers={"Accept-Encoding": "gzip"})
    again = await call(server, runtime, headers={"Accept-Encoding": "gzip", "If-None-Match": first.headers["etag"]})
    assert again.status == 304
    assert again.body == b""
    assert again.headers["etag"] == first.headers["etag"]
    assert again.headers["cache-control"] == IMMUTABLE
    assert again.headers["vary"] == "Accept-Encoding"
    weak = await call(
        server, runtime, headers={"Accept-Encoding": "gzip", "If-None-Match": f'"x", W/{first.headers["etag"]}'}
    )
    assert weak.status == 304
    other = await call(server, runtime, headers={"If-None-Match": '"something-else"'})
    assert other.status == 200 and other.body


async def test_asset_server_gives_each_encoding_its_own_etag(server: AssetServer, runtime: str) -> None:
    plain = await call(server, runtime)
    zipped = await call(server, runtime, headers={"Accept-Encoding": "gzip"})
    assert plain.headers["etag"] != zipped.headers["etag"]
    stale = await call(server, runtime, headers={"Accept-Encoding": "gzip", "If-None-Match": plain.headers["etag"]})
    assert stale.status == 200, "the identity variant's ETag does not validate the gzip variant"


async def test_asset_server_sends_brotli_then_gzip_by_accept_encoding(server: AssetServer, runtime: str) -> None:
    plain = (await call(server, runtime)).body
    br = await call(server, runtime, headers={"Accept-Encoding": "gzip, deflate, br"})
    assert br.headers["content-encoding"] == "br"
    assert brotli.decompress(br.body) == plain
    assert int(br.headers["content-length"]) == len(br.body) < len(plain)
    gz = await call(server, runtime, headers={"Accept-Encoding": "gzip, br;q=0"})
    assert gz.headers["content-encoding"] == "gzip"
    assert gzip.decompress(gz.body) == plain
    assert gz.headers["vary"] == "Accept-Encoding"
    star = await call(server, runtime, headers={"Accept-Encoding": "*"})
    assert star.headers["content-encoding"] == "br"
    none = await call(server, runtime, headers={"Accept-Encoding": "identity"})
    assert "content-encoding" not in none.headers and none.body == plain


async def test_asset_server_answers_head_without_a_body(server: AssetServer, runtime: str) -> None:
    full = await call(server, runtime)
    head = await call(server, runtime, method="HEAD")
    assert head.status == 200
    assert head.body == b""
    assert head.headers["content-length"] == str(len(full.body))
    assert head.headers["etag"] == full.headers["etag"]


async def test_asset_server_refuses_other_methods(server: AssetServer, runtime: str) -> None:
    answer = await call(server, runtime, method="POST")
    assert answer.status == 405
    assert answer.headers["allow"] == "GET, HEAD"


async def test_asset_server_answers_404_for_unknown_files(server: AssetServer, build: AssetManifest) -> None:
    for path in [
        "/_oberon/assets/item.0123456789abcdef.js",
        "/_oberon/assets/",
        "/_oberon/assets/manifest.json",
        "/_oberon/assets/" + build.assets[RUNTIME].file + ".br",
        "/_oberon/assets/" + build.assets[RUNTIME].file.upper(),
        "/elsewhere/" + build.assets[RUNTIME].file,
        "/",
    ]:
        answer = await call(server, path)
        assert answer.status == 404, path
        assert answer.headers["cache-control"] == "no-store", path
        assert "set-cookie" not in answer.header_names


TRAVERSALS = [
    "/_oberon/assets/../manifest.json",
    "/_oberon/assets/../../../../etc/passwd",
    "/_oberon/assets/..%2f..%2f..%2fetc%2fpasswd",
    "/_oberon/assets/%2e%2e/%2e%2e/secret.0123456789abcdef.js",
    "/_oberon/assets/%2e%2e%2fsecret.0123456789abcdef.js",
    "/_oberon/assets/%252e%252e%252fsecret.0123456789abcdef.js",
    "/_oberon/assets/..%5csecret.0123456789abcdef.js",
    "/_oberon/assets/..\\secret.0123456789abcdef.js",
    "/_oberon/assets//etc/passwd",
    "/_oberon/assets/%2fetc%2fpasswd",
    "/_oberon/assets/C:%5cWindows%5cwin.ini",
    "/_oberon/assets/secret.0123456789abcdef.js%00.css",
    "/_oberon/assets/secret.0123456789abcdef.js\x00",
    "/_oberon/assets/link.0123456789abcdef.js",
    "/_oberon/assets/dirlink.0123456789abcdef.js",
]


@pytest.mark.parametrize("path", TRAVERSALS)
async def test_asset_server_keeps_every_path_inside_its_folder(
    server: AssetServer, build: AssetManifest, tmp_path: Path, path: str
) -> None:
    outside = tmp_path / "secret.0123456789abcdef.js"
    outside.write_text("secret")
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "passwd").write_text("secret")
    os.symlink(outside, build.folder / "link.0123456789abcdef.js")
    os.symlink(tmp_path, build.folder / "dirlink.0123456789abcdef.js")
    answer = await call(server, path)
    assert answer.status == 404
    assert b"secret" not in answer.body


async def test_asset_server_follows_a_symlink_that_stays_inside(server: AssetServer, build: AssetManifest) -> None:
    os.symlink(build.folder / build.assets[RUNTIME].file, build.folder / "alias.0123456789abcdef.js")
    assert (await call(server, "/_oberon/assets/alias.0123456789abcdef.js")).status == 200


async def test_asset_server_echoes_one_of_several_allowed_origins(build: AssetManifest, runtime: str) -> None:
    server = AssetServer(folder=build.folder, allow_origins=[PAGE_ORIGIN, "https://tickets.example"])
    answer = await call(server, runtime, headers={"Origin": "https://tickets.example"})
    assert answer.headers["access-control-allow-origin"] == "https://tickets.example"
    assert "Origin" in answer.headers["vary"]
    stranger = await call(server, runtime, headers={"Origin": "https://evil.example"})
    assert stranger.headers["access-control-allow-origin"] == PAGE_ORIGIN


async def test_asset_server_keeps_serving_a_file_it_has_read_after_a_rebuild_prunes_it(
    server: AssetServer, build: AssetManifest, runtime: str
) -> None:
    assert (await call(server, runtime)).status == 200
    (build.folder / build.assets[RUNTIME].file).unlink()
    assert (await call(server, runtime)).status == 200


async def test_host_dispatch_sends_the_asset_host_to_the_asset_server(server: AssetServer, runtime: str) -> None:
    seen: list[str] = []

    async def site(scope: dict[str, object], receive: object, send: object) -> None:
        seen.append(str(scope["path"]))

    app = HostDispatch(site, assets=server, hosts=["localhost:8000"], site_origin=PAGE_ORIGIN)
    asset = await call(app, runtime, headers={"Host": "localhost:8000", "Cookie": "session=x"})
    assert asset.status == 200 and "set-cookie" not in asset.header_names
    home = await call(app, "/", headers={"Host": "localhost:8000"})
    assert home.status == 307 and home.headers["location"] == PAGE_ORIGIN + "/"
    assert (await call(app, "/e/1", headers={"Host": "localhost:8000"})).status == 404
    await call(app, runtime, headers={"Host": "127.0.0.1:8000"})
    assert seen == [runtime], "the page host never reaches the asset server"
