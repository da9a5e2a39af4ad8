"""The picows transport: the ``Connection`` interface of ``gateway.transport.server``, on picows.

picows parses frames in Cython and hands each one to a listener callback; sending is a
synchronous write into the socket's transport, so there is no writer task and no await per
message.  On this project's echo benchmark it moved 2.0-2.2 times the messages per second
of the ``websockets`` server while the load client, not picows, was the limit, and spent
2.8 times less server CPU per message (``benchmarks/RESULTS.md``): so it is the default.

What picows leaves to us, and how it is done here:

* fragmented messages are reassembled (bounded by ``MAX_FRAME_BYTES``);
* a binary frame gets an ``INVALID_REQUEST`` answer; a close frame is answered with a
  close frame and the connection is dropped;
* ``buffered()`` is what waits to be written (ours and the transport's), so a session can
  close a slow reader; a close that cannot drain (the peer does not read) is aborted after
  ``CLOSE_TIMEOUT_S``.

Writes are batched per connection: ``send`` only queues the message, and once per turn of
the event loop (``OutputFlusher``) each connection that has something to send frames all of
it and hands it to the socket in one write, so a connection that gets a hundred answers and
stream messages from one batch costs one ``send()`` system call, not a hundred.  Server
frames are not masked, so framing is a header in front of each message; the socket's
transport keeps the order of these writes and picows' own (pings, close frames), since
picows writes through it too whenever it holds queued data.

Pings: picows answers pings itself and pings idle peers (``enable_auto_ping``), closing
the ones that do not answer; then the session's cancel-on-disconnect acts.
"""

from __future__ import annotations

import asyncio
import logging
from ssl import SSLContext

import picows.picows
from picows import WSCloseCode, WSFrame, WSMsgType, WSTransport, ws_create_server

from gateway.sessions.ratelimit import LogLimiter
from gateway.sessions.session import TOO_MANY_FROM_ADDRESS, Gateway, Session

# Enum members read once: each read off the class (``WSMsgType.TEXT``) goes through the
# enum metaclass, about 850 instructions, on every frame.  Compiled, they are C values, and
# so is a frame's type (``picows_server.pxd``).
_TEXT = WSMsgType.TEXT
_BINARY = WSMsgType.BINARY
_CONTINUATION = WSMsgType.CONTINUATION
_CLOSE = WSMsgType.CLOSE

log = logging.getLogger("alatau.server")
_frame_failures = LogLimiter(log)

MAX_FRAME_BYTES = 256 * 1024
PING_IDLE_S = 20.0
PING_REPLY_S = 20.0
CLOSE_TIMEOUT_S = 2.0

_BINARY_REFUSED = (
    b'{"id":null,"ok":false,"error":{"code":"INVALID_REQUEST",'
    b'"message":"send JSON text frames, not binary"}}'
)


_SHORT_HEADERS = tuple(bytes((0x81, length)) for length in range(126))


def text_frame_header(length: int) -> bytes:
    """The header of an unmasked, final text frame (a server's) with a payload of ``length``
    bytes (RFC 6455, section 5.2)."""
    if length < 126:
        return _SHORT_HEADERS[length]
    if length < 65_536:
        return b"\x81\x7e" + length.to_bytes(2, "big")
    return b"\x81\x7f" + length.to_bytes(8, "big")


class OutputFlusher:
    """Writes out, once per turn of the event loop, every connection that queued messages."""

    def __init__(self) -> None:
        self._dirty: list[PicowsConnection] = []
        self._loop: asyncio.AbstractEventLoop | None = None

    def mark(self, connection: PicowsConnection) -> None:
        if not self._dirty:
            if self._loop is None:
                self._loop = asyncio.get_running_loop()
            self._loop.call_soon(self.flush)
        self._dirty.append(connection)

    def flush(self) -> None:
        dirty, self._dirty = self._dirty, []
        for connection in dirty:
            connection.flush()


class PicowsConnection(picows.picows.WSListener):
    """One websocket connection: picows listener and the session's ``Connection``."""

    def __init__(self, gateway: Gateway, flusher: OutputFlusher | None = None) -> None:
        super().__init__()
        self.gateway = gateway
        self.flusher = flusher or OutputFlusher()
        self._out: list[bytes] = []  # messages queued in this turn of the loop
        self._out_bytes = 0
        self.transport: WSTransport | None = None
        self.session: Session | None = None
        self._fragments: list[bytes] | None = None
        self._fragment_type: WSMsgType | None = None
        self._fragment_bytes = 0

    # -- picows callbacks ----------------------------------------------------------------

    def on_ws_connected(self, transport: WSTransport) -> None:
        self.transport = transport
        peer = transport.underlying_transport.get_extra_info("peername")
        self.session = self.gateway.open_session(self, peer[0] if peer else None)
        if self.session is None:  # over the per-address cap
            transport.send_close(WSCloseCode.POLICY_VIOLATION, TOO_MANY_FROM_ADDRESS.encode())
            transport.disconnect()

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        """One frame from picows.  Never raises: picows would close the connection with
        1011 and log a traceback (a session answers a bad request itself; this guard is for
        a bug of ours in the framing below).  One frame, one Python call: the common case,
        a whole text frame, goes straight to the session."""
        try:
            session = self.session
            if session is None:
                return
            msg_type = frame.msg_type
            if msg_type == _TEXT and frame.fin and self._fragments is None:
                session.on_frame(frame.get_payload_as_bytes())
            elif msg_type in (_TEXT, _BINARY):
                self._start_fragments(session, frame)
            elif msg_type == _CONTINUATION:
                self._continue_fragments(session, frame)
            elif msg_type == _CLOSE:
                self.flush()  # answers already queued go out before the closing handshake
                transport.send_close(frame.get_close_code(), frame.get_close_message())
                transport.disconnect()
        except Exception:
            _frame_failures.log(logging.ERROR, "a websocket frame failed", exc_info=True)

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        if self.session is not None:
            self.session.on_close()
        # Break the reference cycles (session <-> connection <-> transport): freed by
        # reference counting at once, not by a full collection of the cyclic collector,
        # which the frozen startup heap (``gc.freeze``) makes rare.
        self.session = None
        self.transport = None
        self._out = []
        self._fragments = None

    def pause_writing(self) -> None:
        """The socket's write buffer is over its high mark: nothing to do here, a session
        measures ``buffered()`` and closes a slow reader itself (this override only keeps
        picows from logging a warning each time)."""

    def resume_writing(self) -> None:
        """See ``pause_writing``."""

    # -- fragmented messages -------------------------------------------------------------

    def _start_fragments(self, session: Session, frame: WSFrame) -> None:
        if frame.fin:  # a whole binary message
            session.send(_BINARY_REFUSED)
            return
        self._fragments = [frame.get_payload_as_bytes()]
        self._fragment_type = frame.msg_type
        self._fragment_bytes = len(self._fragments[0])

    def _continue_fragments(self, session: Session, frame: WSFrame) -> None:
        if self._fragments is None:
            self.close(WSCloseCode.PROTOCOL_ERROR.value, "continuation without a first frame")
            return
        payload = frame.get_payload_as_bytes()
        self._fragment_bytes += len(payload)
        if self._fragment_bytes > MAX_FRAME_BYTES:
            self.close(WSCloseCode.MESSAGE_TOO_BIG.value, "message too big")
            return
        self._fragments.append(payload)
        if frame.fin:
            message = b"".join(self._fragments)
            kind = self._fragment_type
            self._fragments = None
            if kind == _TEXT:
                session.on_frame(message)
            else:
                session.send(_BINARY_REFUSED)

    # -- the session's Connection --------------------------------------------------------

    def send(self, data: bytes) -> None:
        transport = self.transport
        if transport is None or transport.is_close_frame_sent:
            return
        if not self._out:
            self.flusher.mark(self)
        self._out.append(data)
        self._out_bytes += len(data)

    def flush(self) -> None:
        """Frame what is queued and write it with one call (see the module docstring)."""
        out = self._out
        if not out:
            return
        self._out = []
        self._out_bytes = 0
        transport = self.transport
        if transport is None or transport.is_close_frame_sent or transport.is_disconnected:
            return
        if len(out) == 1:
            transport.send(_TEXT, out[0])
            return
        parts = []
        for message in out:
            parts.append(text_frame_header(len(message)))
            parts.append(message)
        transport.underlying_transport.write(b"".join(parts))

    def buffered(self) -> int:
        if self.transport is None:
            return 0
        return self._out_bytes + self.transport.underlying_transport.get_write_buffer_size()

    @property
    def asyncio_transport(self) -> asyncio.BaseTransport:
        """The TCP transport underneath (peer address, socket options)."""
        if self.transport is None:
            raise RuntimeError("the connection is not open")
        return self.transport.underlying_transport

    def close(self, code: int, reason: str) -> None:
        transport = self.transport
        if transport is None or transport.is_close_frame_sent:
            return
        self.flush()  # what was queued before the close goes out before the close frame
        transport.send_close(WSCloseCode(code), reason.encode())
        transport.disconnect()

        def abort() -> None:
            if not transport.is_disconnected:
                transport.disconnect(graceful=False)

        asyncio.get_running_loop().call_later(CLOSE_TIMEOUT_S, abort)


async def run_picows_server(
    gateway: Gateway,
    host: str,
    port: int,
    *,
    started: asyncio.Future[tuple[str, int]] | None = None,
    stop: asyncio.Event | None = None,
    ssl: SSLContext | None = None,
) -> None:
    """Serve until ``stop`` is set (or forever); ``started`` gets the bound (host, port).
    ``ssl``: serve ``wss://`` (picows passes it to ``loop.create_server``)."""
    flusher = OutputFlusher()
    server = await ws_create_server(
        lambda request: PicowsConnection(gateway, flusher),
        host,
        port,
        enable_auto_ping=True,
        auto_ping_idle_timeout=PING_IDLE_S,
        auto_ping_reply_timeout=PING_REPLY_S,
        max_frame_size=MAX_FRAME_BYTES,
        ssl=ssl,
    )
    try:
        bound = server.sockets[0].getsockname()[:2]
        if started is not None and not started.done():
            started.set_result(bound)
        if stop is None:
            await asyncio.Future()
        else:
            await stop.wait()
    finally:
        server.close()
        for session in list(gateway.sessions):
            session.connection.close(WSCloseCode.GOING_AWAY.value, "server shutting down")
        await server.wait_closed()
