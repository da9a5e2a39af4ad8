"""The socket transports: accept websocket connections and feed their frames to sessions.

Two transports implement the same ``Connection`` interface: picows (``server_picows``,
the default, chosen by measurement) and ``websockets`` (this module).  ``run_server``
picks one.

This is the only module of the gateway that touches sockets, and it is thin on purpose:
all protocol logic lives in ``gateway.sessions.session`` behind the small ``Connection`` interface
(``send``, ``buffered``, ``close``), so the transport can be swapped by measurement.

Each connection gets an outbound queue drained by one writer task; ``buffered()`` reports
the bytes waiting there, so a session can disconnect a slow reader before it grows the
server's memory.  The library answers pings and pings idle peers, closing dead ones
(then the session's cancel-on-disconnect acts).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections import deque
from ssl import SSLContext

from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from gateway.sessions.session import CLOSE_POLICY, TOO_MANY_FROM_ADDRESS, Gateway

log = logging.getLogger("alatau.server")

MAX_FRAME_BYTES = 256 * 1024
PING_INTERVAL_S = 20.0
PING_TIMEOUT_S = 20.0
CLOSE_TIMEOUT_S = 2.0


class WebsocketsConnection:
    """``Connection`` over a ``websockets`` server connection."""

    def __init__(self, websocket: ServerConnection) -> None:
        self.websocket = websocket
        self._queue: deque[bytes] = deque()
        self._queued_bytes = 0
        self._wakeup = asyncio.Event()
        self._closing: tuple[int, str] | None = None
        self.writer: asyncio.Task[None] | None = None

    def send(self, data: bytes) -> None:
        if self._closing is not None:
            return
        self._queue.append(data)
        self._queued_bytes += len(data)
        self._wakeup.set()

    def buffered(self) -> int:
        return self._queued_bytes

    @property
    def asyncio_transport(self) -> asyncio.BaseTransport:
        """The TCP transport underneath (peer address, socket options)."""
        return self.websocket.transport

    def close(self, code: int, reason: str) -> None:
        """Drop what is queued and close.  The writer may be stuck sending to a reader that
        does not read: it is cancelled, and the close handshake gets ``CLOSE_TIMEOUT_S``
        before the library aborts the TCP connection."""
        if self._closing is None:
            self._closing = (code, reason)
            self._queue.clear()
            self._queued_bytes = 0
            if self.writer is not None:
                self.writer.cancel()
            asyncio.get_running_loop().create_task(self._close(code, reason))

    async def _close(self, code: int, reason: str) -> None:
        try:
            await asyncio.wait_for(self.websocket.close(code, reason), CLOSE_TIMEOUT_S)
        except (TimeoutError, ConnectionClosed):
            pass
        finally:
            if not self.websocket.transport.is_closing():
                self.websocket.transport.abort()

    async def write_loop(self) -> None:
        """Send queued messages in order; close when asked to."""
        websocket = self.websocket
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._queue:
                if len(self._queue) == 1:
                    data = self._queue.popleft()
                    self._queued_bytes -= len(data)
                    await websocket.send(data, text=True)
                else:
                    # Several messages waiting: hand them over in one call (one drain).
                    batch = list(self._queue)
                    self._queue.clear()
                    self._queued_bytes = 0
                    for data in batch:
                        await websocket.send(data, text=True)
                if self._closing is not None:
                    break


async def handle_connection(gateway: Gateway, websocket: ServerConnection) -> None:
    connection = WebsocketsConnection(websocket)
    peer = websocket.remote_address
    session = gateway.open_session(connection, peer[0] if peer else None)
    if session is None:  # over the per-address cap
        with contextlib.suppress(ConnectionClosed):
            await websocket.close(CLOSE_POLICY, TOO_MANY_FROM_ADDRESS)
        return
    writer = connection.writer = asyncio.create_task(connection.write_loop())
    try:
        async for frame in websocket:
            if isinstance(frame, bytes):
                session.send(
                    b'{"id":null,"ok":false,"error":{"code":"INVALID_REQUEST",'
                    b'"message":"send JSON text frames, not binary"}}'
                )
                continue
            session.on_frame(frame)
    except ConnectionClosed:
        pass
    finally:
        session.on_close()
        writer.cancel()
        with contextlib.suppress(asyncio.CancelledError, ConnectionClosed):
            await writer


TRANSPORTS = ("picows", "websockets")
DEFAULT_TRANSPORT = "picows"  # faster on the echo benchmark; see benchmarks/RESULTS.md


async def run_server(
    gateway: Gateway,
    host: str,
    port: int,
    *,
    transport: str | None = None,
    started: asyncio.Future[tuple[str, int]] | None = None,
    stop: asyncio.Event | None = None,
    ssl: SSLContext | None = None,
) -> None:
    """Serve on ``transport`` (default: ``$ALATAU_TRANSPORT`` or ``DEFAULT_TRANSPORT``)
    until ``stop`` is set (or forever); ``started`` gets the bound (host, port).  With
    ``ssl`` (a server ``SSLContext``), both transports serve ``wss://``."""
    transport = transport or os.environ.get("ALATAU_TRANSPORT") or DEFAULT_TRANSPORT
    if transport == "picows":
        from gateway.transport.picows_server import run_picows_server

        await run_picows_server(gateway, host, port, started=started, stop=stop, ssl=ssl)
    elif transport == "websockets":
        await run_websockets_server(gateway, host, port, started=started, stop=stop, ssl=ssl)
    else:
        raise ValueError(f"transport {transport!r}: use one of {', '.join(TRANSPORTS)}")


async def run_websockets_server(
    gateway: Gateway,
    host: str,
    port: int,
    *,
    started: asyncio.Future[tuple[str, int]] | None = None,
    stop: asyncio.Event | None = None,
    ssl: SSLContext | None = None,
) -> None:
    """The ``websockets`` transport (see ``run_server``)."""

    async def handler(websocket: ServerConnection) -> None:
        await handle_connection(gateway, websocket)

    async with serve(
        handler,
        host,
        port,
        max_size=MAX_FRAME_BYTES,
        ping_interval=PING_INTERVAL_S,
        ping_timeout=PING_TIMEOUT_S,
        close_timeout=CLOSE_TIMEOUT_S,
        compression=None,
        ssl=ssl,
    ) as server:
        bound = server.sockets[0].getsockname()[:2]
        if started is not None and not started.done():
            started.set_result(bound)
        if stop is None:
            await asyncio.Future()
        else:
            await stop.wait()
