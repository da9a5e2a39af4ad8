"""The workers' websocket client, on picows: ``Connection`` (a listener; the close
handshake, set-up messages queued for ``recv``), ``open_connection``, and the client framing
the bots do themselves (``text_frame``, ``mask_key``).

The workers' client costs CPU on the machine the server runs on, so it is made cheap per
message: picows parses the server's frames in C and hands each to ``on_ws_frame`` (no
coroutine, no queue, no Python frame parser per message), the payload is decoded straight
from picows' read buffer by a typed msgspec decoder that keeps only the fields read
(``benchmarks.gateway.messages``), and the bots frame their requests themselves, so that all
the requests a read buffer's responses let go leave in one write (one system call) instead
of one each.
"""

from __future__ import annotations

import asyncio
import random
from typing import Any

from picows import WSCloseCode, WSListener, WSMsgType, ws_connect

STARTUP_TIMEOUT = 60.0
"""Seconds the server, or every worker, may take to be ready."""


try:
    from websockets.speedups import apply_mask as _apply_mask  # C
except ImportError:  # a pure-Python install of websockets
    from websockets.utils import apply_mask as _apply_mask

TEXT = WSMsgType.TEXT

_CLOSE = WSMsgType.CLOSE


def mask_key(rng: random.Random) -> bytes:
    """A fresh masking key for a client frame (RFC 6455 5.3).  It protects proxies' caches,
    not secrets, and picows' own client draws it from C ``rand()``: a seeded PRNG, apart from
    the flow's, is as good and much cheaper than ``os.urandom`` per frame."""
    return rng.getrandbits(32).to_bytes(4, "little")


def text_frame(payload: bytes, key: bytes) -> bytes:
    """One masked, final text frame, as a client must send it (RFC 6455 5.2)."""
    n = len(payload)
    if n < 126:
        header = bytes((0x81, 0x80 | n))
    elif n < 65536:
        header = b"\x81\xfe" + n.to_bytes(2, "big")
    else:
        header = b"\x81\xff" + n.to_bytes(8, "big")
    return header + key + _apply_mask(payload, key)


class Connection(WSListener):
    """A client websocket connection on picows.  Until a subclass takes its text messages
    over, they are queued for ``recv`` (the set-up: login, subscribe).  The close handshake is
    the listener's to answer (picows leaves it to it); pings picows answers itself."""

    def __init__(self) -> None:
        super().__init__()
        self.transport: Any = None
        self.inbox: asyncio.Queue[bytes | None] = asyncio.Queue()
        self.disconnected = asyncio.get_running_loop().create_future()
        self.closing = False  # this side is closing: the server's close is no error
        self.error: str | None = None  # why the connection ended, if not by this side

    def on_ws_connected(self, transport: Any) -> None:
        self.transport = transport

    def on_ws_frame(self, transport: Any, frame: Any) -> None:
        if frame.msg_type is TEXT:
            self.inbox.put_nowait(frame.get_payload_as_bytes())
        else:
            self.on_control(frame)

    def on_control(self, frame: Any) -> None:
        """A frame other than text: a close (answered, then the connection is dropped), a
        fragment (the server never fragments: the connection is given up)."""
        msg_type = frame.msg_type
        if msg_type is _CLOSE:
            if not self.closing and self.error is None:
                code, reason = frame.get_close_code(), frame.get_close_reason()
                self.error = f"closed by the server: {code} {reason}"
            self.transport.send_close(frame.get_close_code(), frame.get_close_message())
            self.transport.disconnect()
        elif msg_type is WSMsgType.BINARY or msg_type is WSMsgType.CONTINUATION:
            self.fail(f"unexpected {msg_type.name} frame")
        # PING is answered by picows (enable_auto_pong); PONG is ignored.

    def fail(self, reason: str) -> None:
        """Give the connection up: an error of the run."""
        if self.error is None:
            self.error = reason
        self.transport.disconnect()

    def on_ws_disconnected(self, transport: Any) -> None:
        if not self.closing and self.error is None:
            self.error = "connection lost"
        self.inbox.put_nowait(None)
        if not self.disconnected.done():
            self.disconnected.set_result(None)

    def send(self, data: bytes) -> None:
        self.transport.send(TEXT, data)

    async def recv(self) -> bytes:
        """The next text message of the set-up phase."""
        data = await self.inbox.get()
        if data is None:
            raise ConnectionError(self.error or "connection closed")
        return data

    async def close(self) -> None:
        """Close handshake, then drop the connection (after 2 s without the server's answer)."""
        self.closing = True
        transport = self.transport
        if transport is None or self.disconnected.done():
            return
        transport.send_close(WSCloseCode.OK)
        try:
            await asyncio.wait_for(asyncio.shield(self.disconnected), 2)
        except TimeoutError:
            transport.disconnect(graceful=False)


async def open_connection(factory: Any, url: str) -> Any:
    """A picows client connection; its listener (made by ``factory``) is returned."""
    _, listener = await ws_connect(
        factory,
        url,
        websocket_handshake_timeout=STARTUP_TIMEOUT,
        max_frame_size=2**24,
        enable_auto_pong=True,
    )
    return listener
