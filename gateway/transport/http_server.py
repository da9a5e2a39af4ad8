"""The HTTP door: ``gateway.sessions.http.HttpApi`` served by aiohttp's low-level server, on
the same event loop as the websocket server and the venue.

A second port (``--http-port``): picows, the websocket transport, answers only the upgrade
request of a connection (one ``GET`` without a body, then ``Connection: close``), so it
cannot carry a REST API with keep-alive, request bodies and the methods the private
endpoints will need; and serving websockets through aiohttp instead would make the websocket
path slower (picows was chosen for that, ``benchmarks/RESULTS.md``).  aiohttp was chosen over
uvicorn with a plain ASGI callable by measurement (``benchmarks/RESULTS.md``, "Issue 14"):
it runs on the loop it is given, without taking over the process's signals.

This module only maps: aiohttp's request to an ``HttpRequest`` (method, path, raw query,
headers, body, peer address) and the ``HttpResponse`` back.  Only the first
``MAX_BODY_BYTES`` of a body are read (``POST /order`` takes one order).  With a ``page``
(``gateway.transport.web_page``), every path outside ``/api/`` is the trading page's.
"""

from __future__ import annotations

import asyncio
from ssl import SSLContext

from aiohttp import web
from aiohttp.web_request import BaseRequest

from gateway.sessions.http import HttpApi, HttpRequest
from gateway.transport.web_page import WebPage

MAX_BODY_BYTES = 64 * 1024
SHUTDOWN_TIMEOUT_S = 2.0


def _peer(request: BaseRequest) -> str | None:
    transport = request.transport
    peer = transport.get_extra_info("peername") if transport is not None else None
    return str(peer[0]) if peer else None


async def run_http_server(
    api: HttpApi,
    host: str,
    port: int,
    *,
    started: asyncio.Future[tuple[str, int]] | None = None,
    stop: asyncio.Event | None = None,
    ssl: SSLContext | None = None,
    page: WebPage | None = None,
) -> None:
    """Serve ``api`` until ``stop`` is set (or forever); ``started`` gets the bound (host,
    port).  ``ssl``: serve ``https://``.  ``page``: serve the trading page outside ``/api/``."""

    async def handle(request: BaseRequest) -> web.StreamResponse:
        if page is not None and not request.path.startswith("/api/"):
            answer = page.respond(request.method, request.path, request.headers)
            return web.Response(status=answer.status, headers=answer.headers, body=answer.body)
        body = await request.content.read(MAX_BODY_BYTES) if request.body_exists else b""
        response = await api.respond(
            HttpRequest(
                method=request.method,
                path=request.path,
                query=request.query_string,
                headers=request.headers,
                body=body,
                remote=_peer(request),
            )
        )
        return web.Response(status=response.status, headers=response.headers, body=response.body)

    server = web.Server(handle, access_log=None)
    runner = web.ServerRunner(server, handle_signals=False, shutdown_timeout=SHUTDOWN_TIMEOUT_S)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port, ssl_context=ssl, reuse_address=True)
        await site.start()
        bound = runner.addresses[0][:2]  # the first listening socket's (host, port)
        if started is not None and not started.done():
            started.set_result((str(bound[0]), int(bound[1])))
        if stop is None:
            await asyncio.Future()
        else:
            await stop.wait()
    finally:
        await runner.cleanup()
