"""The trading page's files as ``alatau serve`` answers them (``gateway.transport.web_page``):
from memory by exact path, with content types, cache headers, ETags, no way outside the
built page, and ``/config.json`` naming the websocket; live beside the HTTP API."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import aiohttp
import pytest

from gateway.app import serve as app
from gateway.transport.web_page import IMMUTABLE, STATIC_DIR, WebPage

from .gateway_harness import ADMIN_KEY, WAIT_TIMEOUT_S, async_test


@pytest.fixture
def built(tmp_path: Path) -> Path:
    """A small built page: index, a hashed bundle, a manifest and a file beside the dir."""
    site = tmp_path / "site"
    (site / "assets").mkdir(parents=True)
    (site / "index.html").write_text("<!doctype html><title>t</title>")
    (site / "assets" / "index-abc123.js").write_text("console.log(1)")
    (site / "assets" / "index-abc123.css").write_text("body{}")
    (site / "manifest.json").write_text("{}")
    (tmp_path / "secret.txt").write_text("not for you")
    return site


def test_index_and_assets_have_their_types_and_cache_rules(built: Path) -> None:
    """``/`` is index.html, revalidated on each load; hashed bundles are cached for a year."""
    page = WebPage.load(websocket_port=8765, directory=built)
    index = page.respond("GET", "/", {})
    assert index.status == 200 and index.body.startswith(b"<!doctype html>")
    headers = dict(index.headers)
    assert headers["Content-Type"] == "text/html; charset=utf-8"
    assert headers["Cache-Control"] == "no-cache"
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]
    assert page.respond("GET", "/index.html", {}).body == index.body
    script = page.respond("GET", "/assets/index-abc123.js", {})
    assert dict(script.headers)["Content-Type"] == "text/javascript; charset=utf-8"
    assert dict(script.headers)["Cache-Control"] == IMMUTABLE
    style = page.respond("GET", "/assets/index-abc123.css", {})
    assert dict(style.headers)["Content-Type"] == "text/css; charset=utf-8"


def test_config_names_the_websocket_port_and_scheme(built: Path) -> None:
    """``/config.json`` tells the page where the websocket is; it is never cached."""
    page = WebPage.load(websocket_port=9001, websocket_scheme="wss", directory=built)
    answer = page.respond("GET", "/config.json", {})
    assert json.loads(answer.body) == {"websocket_port": 9001, "websocket_scheme": "wss"}
    assert dict(answer.headers)["Cache-Control"] == "no-store"


@pytest.mark.parametrize(
    "path",
    [
        "/secret.txt",
        "/../secret.txt",
        "/assets/../../secret.txt",
        "/assets/",
        "/assets",
        "/manifest.json",
        "/index.htm",
        "//index.html",
        "/nope",
    ],
)
def test_unknown_paths_and_paths_outside_the_page_are_404(built: Path, path: str) -> None:
    """Only the built page's own files are answered: anything else is a JSON 404."""
    answer = WebPage.load(websocket_port=1, directory=built).respond("GET", path, {})
    assert answer.status == 404
    assert json.loads(answer.body)["error"]["code"] == "NOT_FOUND"


def test_head_etag_and_methods(built: Path) -> None:
    """HEAD has no body; a matching If-None-Match is 304; other methods are 405 with Allow."""
    page = WebPage.load(websocket_port=1, directory=built)
    head = page.respond("HEAD", "/", {})
    assert head.status == 200 and head.body == b""
    etag = dict(head.headers)["ETag"]
    assert page.respond("GET", "/", {"If-None-Match": etag}).status == 304
    assert page.respond("GET", "/", {"If-None-Match": f'"other", W/{etag}'}).status == 304
    assert page.respond("GET", "/", {"If-None-Match": '"other"'}).status == 200
    post = page.respond("POST", "/", {})
    assert post.status == 405 and dict(post.headers)["Allow"] == "GET, HEAD"


def test_an_unbuilt_page_says_how_to_build_it(tmp_path: Path) -> None:
    """Without a build the server still starts, and ``/`` says to run web/build.sh."""
    answer = WebPage.load(websocket_port=1, directory=tmp_path / "missing").respond("GET", "/", {})
    assert answer.status == 200 and b"web/build.sh" in answer.body


def test_the_packaged_page_is_built() -> None:
    """The package carries the built page: index.html and its bundles, referenced by it."""
    page = WebPage.load(websocket_port=1)
    index = page.respond("GET", "/", {}).body.decode()
    assets = [name for name in page.files if name.startswith("/assets/")]
    assert any(name.endswith(".js") for name in assets)
    assert any(name.endswith(".css") for name in assets)
    for name in assets:
        assert f".{name}" in index or name.endswith(".map"), name
    assert (STATIC_DIR / "manifest.json").is_file()


@async_test
async def test_serve_answers_the_page_and_the_api_on_one_port() -> None:
    """A live ``alatau serve``: the page at ``/``, its bundles, ``/config.json`` with the
    bound websocket port, and the API still at ``/api/v1`` (404s there stay the API's)."""
    loop = asyncio.get_running_loop()
    started: asyncio.Future[tuple[str, int]] = loop.create_future()
    http_started: asyncio.Future[tuple[str, int]] = loop.create_future()
    stop = asyncio.Event()
    options = app.ServeOptions(port=0, http_port=0, quiet=True, admin_key=ADMIN_KEY)
    task = asyncio.create_task(
        app.serve(options, started=started, stop=stop, http_started=http_started)
    )
    _host, ws_port = await asyncio.wait_for(started, WAIT_TIMEOUT_S)
    host, port = await asyncio.wait_for(http_started, WAIT_TIMEOUT_S)
    base = f"http://{host}:{port}"
    try:
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{base}/") as response:
                assert response.status == 200
                assert response.headers["Content-Type"] == "text/html; charset=utf-8"
                index = await response.text()
            script = index.split('src="./', 1)[1].split('"', 1)[0]
            async with http.get(f"{base}/{script}") as response:
                assert response.status == 200
                assert response.headers["Cache-Control"] == IMMUTABLE
                assert len(await response.read()) > 10_000
            async with http.get(f"{base}/config.json") as response:
                assert await response.json() == {
                    "websocket_port": ws_port,
                    "websocket_scheme": "ws",
                }
            async with http.get(f"{base}/%2e%2e/setup.py") as response:
                assert response.status == 404
            async with http.get(f"{base}/api/v1/markets") as response:
                assert response.status == 200
                assert any(m["symbol"] == "BTC-KZT" for m in await response.json())
            async with http.get(f"{base}/api/v1/index.html") as response:
                assert response.status == 404
                assert "no endpoint" in (await response.json())["error"]["message"]
    finally:
        stop.set()
        assert await asyncio.wait_for(task, WAIT_TIMEOUT_S) == 0
