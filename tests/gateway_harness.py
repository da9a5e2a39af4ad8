"""Test harness for the websocket gateway: an in-process venue and raw ``websockets`` clients.

pytest-asyncio is not used: an async test is a plain sync test wrapped by ``async_test``,
which runs it with ``asyncio.run`` under a time limit.

``running_venue`` assembles the demo venue the way ``gateway.app.serve`` does (default
markets, the shipped participants funded with the demo balances), but keeps the pieces
(``Exchange``, ``Venue``, ``Gateway``) in reach so tests can compare what clients see with
the engine's own state.  It listens on 127.0.0.1, port 0.

``Client`` is an independent protocol client on the ``websockets`` library: ``call`` sends a
request and waits for the response with its id; stream messages are buffered per channel
(``book:BTC-KZT``, ``trades:BTC-KZT``, ``orders``) as they arrive.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import json
import socket
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import websockets
from websockets.asyncio.client import ClientConnection

from engine.exchange import Exchange
from engine.types import Side
from gateway.app.serve import (
    DEMO_PRIVATE_KEYS,
    ServeOptions,
    build_exchange,
    fund_demo_participants,
    serve,
)
from gateway.hosts.local import LocalHost
from gateway.sequencer.venue import Venue
from gateway.sessions.session import Gateway, Limits
from gateway.transport.server import run_server
from gateway.wire.auth import sign_ed25519

ADMIN_KEY = "test-admin-key"
HOST = "127.0.0.1"
TEST_TIMEOUT_S = 30.0
WAIT_TIMEOUT_S = 10.0

# The demo venue's participants (engine/licensing/venue.toml): name -> (api_key, Ed25519
# private key as hex).
KEYS = {
    name: (f"demo-{name}-key", DEMO_PRIVATE_KEYS[f"demo-{name}-key"])
    for name in ("bob", "mm1", "alice", "broker1")
}
_last_timestamp = 0


def fresh_timestamp() -> int:
    """Now in ms, never twice the same: the server refuses a replayed login frame."""
    global _last_timestamp
    _last_timestamp = max(int(time.time() * 1000), _last_timestamp + 1)
    return _last_timestamp


T = TypeVar("T")


def async_test(fn: Callable[..., Coroutine[Any, Any, T]]) -> Callable[..., T]:
    """Run an ``async def`` test with ``asyncio.run`` (and a time limit) as a sync test."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> T:
        async def limited() -> T:
            return await asyncio.wait_for(fn(*args, **kwargs), TEST_TIMEOUT_S)

        return asyncio.run(limited())

    return wrapper


def login_params(
    name: str, *, timestamp: int | None = None, private_key: str | None = None
) -> dict:
    """``auth.login`` params for a demo participant, signed with its Ed25519 private key (or
    ``private_key``)."""
    api_key, own_key = KEYS[name]
    ts = fresh_timestamp() if timestamp is None else timestamp
    return {
        "api_key": api_key,
        "timestamp": ts,
        "signature": sign_ed25519(private_key or own_key, api_key, ts),
    }


async def wait_until(
    predicate: Callable[[], bool], timeout: float = WAIT_TIMEOUT_S, what: str = "condition"
) -> None:
    """Poll ``predicate`` until it holds; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.005)


# -- the server ------------------------------------------------------------------------------


@dataclass
class RunningVenue:
    exchange: Exchange
    venue: Venue
    gateway: Gateway
    host: str
    port: int
    clients: list[Client] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"ws://{self.host}:{self.port}"

    async def connect(self, *, read: bool = True, rcvbuf: int | None = None) -> Client:
        """A new client connection.  ``read=False``: nothing reads the socket until
        ``Client.start_reading``; ``rcvbuf`` shrinks the client's TCP receive buffer."""
        sock = None
        if rcvbuf is not None:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            sock.setblocking(False)
            await asyncio.get_running_loop().sock_connect(sock, (self.host, self.port))
        ws = await websockets.connect(
            self.url, sock=sock, compression=None, max_size=2**24, max_queue=16
        )
        client = Client(ws)
        if read:
            client.start_reading()
        self.clients.append(client)
        return client

    async def login(self, name: str) -> Client:
        """A connected client logged in as demo participant ``name``."""
        client = await self.connect()
        result = await client.ok("auth.login", login_params(name))
        assert result["participant"] == name
        return client

    async def admin(self) -> Client:
        client = await self.connect()
        assert await client.ok("auth.admin", {"admin_key": ADMIN_KEY}) == {"admin": True}
        return client

    def depth(self, symbol: str) -> dict[str, dict[str, str]]:
        """The engine's own aggregated book of ``symbol``, as wire strings."""
        market = self.exchange.markets[symbol]
        book = self.exchange.books[symbol]
        return {
            side_name: {
                market.format_price(price): market.format_qty(qty)
                for price, qty in book.depth(side)
            }
            for side_name, side in (("bids", Side.BUY), ("asks", Side.SELL))
        }

    def book_seq(self, symbol: str) -> int:
        return self.exchange.books[symbol].seq


@contextlib.asynccontextmanager
async def running_venue(
    limits: Limits | None = None, *, admin_key: str | None = ADMIN_KEY
) -> AsyncIterator[RunningVenue]:
    """The demo venue served on 127.0.0.1 (any free port) for the duration of the block."""
    exchange = build_exchange(ServeOptions())
    venue = Venue(LocalHost(exchange))
    fund_demo_participants(exchange, venue.now_ms())
    gateway = Gateway(venue, admin_key=admin_key, limits=limits or Limits())
    venue.start()
    loop = asyncio.get_running_loop()
    started: asyncio.Future = loop.create_future()
    stop = asyncio.Event()
    server = asyncio.create_task(run_server(gateway, HOST, 0, started=started, stop=stop))
    host, port = await asyncio.wait_for(asyncio.shield(started), WAIT_TIMEOUT_S)
    running = RunningVenue(exchange, venue, gateway, host, port)
    try:
        yield running
    finally:
        for client in running.clients:
            await client.close()
        stop.set()
        await asyncio.wait_for(server, WAIT_TIMEOUT_S)
        await asyncio.wait_for(venue.stop(), WAIT_TIMEOUT_S)


# -- the client ------------------------------------------------------------------------------


class CallError(AssertionError):
    """A response with ``ok: false`` where success was expected."""


class Client:
    """A raw protocol client over one ``websockets`` connection."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self._ids = itertools.count(1)
        self._pending: dict[Any, asyncio.Future] = {}
        self.unmatched: asyncio.Queue[dict] = asyncio.Queue()  # responses with no waiting id
        self.streams: defaultdict[str, list[dict]] = defaultdict(list)
        self.received: list[dict] = []  # every message, in arrival order
        self.closed: asyncio.Future = asyncio.get_running_loop().create_future()
        self._reader: asyncio.Task | None = None

    # -- reading -----------------------------------------------------------------------------

    def start_reading(self) -> None:
        if self._reader is None:
            self._reader = asyncio.get_running_loop().create_task(self._read_loop())

    async def _read_loop(self) -> None:
        try:
            async for frame in self.ws:
                message = json.loads(frame)
                self.received.append(message)
                if "channel" in message and "id" not in message:
                    self.streams[stream_key(message)].append(message)
                    continue
                waiter = self._pending.pop(message.get("id"), None)
                if waiter is not None and not waiter.done():
                    waiter.set_result(message)
                else:
                    self.unmatched.put_nowait(message)
        except websockets.ConnectionClosed:
            pass
        finally:
            for waiter in self._pending.values():
                if not waiter.done():
                    waiter.set_exception(ConnectionError("the connection closed"))
            if not self.closed.done():
                self.closed.set_result((self.ws.close_code, self.ws.close_reason))

    # -- requests ----------------------------------------------------------------------------

    async def send(self, method: str, params: dict | None = None, request_id: Any = None) -> Any:
        """Send a request without waiting; return the future of its response."""
        if request_id is None:
            request_id = next(self._ids)
        waiter = asyncio.get_running_loop().create_future()
        self._pending[request_id] = waiter
        request: dict[str, Any] = {"id": request_id, "method": method}
        if params is not None:
            request["params"] = params
        await self.ws.send(json.dumps(request))
        return waiter

    async def call(
        self, method: str, params: dict | None = None, *, request_id: Any = None
    ) -> dict:
        """Send a request and return its whole response (``ok`` true or false)."""
        waiter = await self.send(method, params, request_id)
        return await asyncio.wait_for(waiter, WAIT_TIMEOUT_S)

    async def ok(self, method: str, params: dict | None = None) -> Any:
        """The result of a request that must succeed."""
        response = await self.call(method, params)
        if response.get("ok") is not True:
            raise CallError(f"{method} {params} failed: {response}")
        return response["result"]

    async def error(self, method: str, params: dict | None = None) -> dict:
        """The error body of a request that must fail."""
        response = await self.call(method, params)
        assert response.get("ok") is False, f"{method} {params} did not fail: {response}"
        assert set(response) == {"id", "ok", "error"}, response
        return response["error"]

    async def raw(self, frame: str | bytes) -> dict:
        """Send a frame as is; return the next response no request of ours is waiting for."""
        await self.ws.send(frame)
        return await asyncio.wait_for(self.unmatched.get(), WAIT_TIMEOUT_S)

    async def ping(self) -> None:
        result = await self.ok("ping")
        assert result["pong"] is True and isinstance(result["time"], int)

    # -- streams -----------------------------------------------------------------------------

    async def wait_stream(
        self,
        key: str,
        predicate: Callable[[list[dict]], bool],
        what: str = "",
        timeout: float = WAIT_TIMEOUT_S,
    ) -> list[dict]:
        messages = self.streams[key]
        await wait_until(lambda: predicate(messages), timeout, what or f"stream {key}")
        return messages

    def book(self, symbol: str) -> L2Book:
        """The book rebuilt from this client's ``book:{symbol}`` messages."""
        return L2Book.rebuild(self.streams[f"book:{symbol}"])

    async def wait_book_seq(self, symbol: str, seq: int) -> L2Book:
        """Wait until the book stream of ``symbol`` reached ``seq``; return the rebuilt book."""
        await self.wait_stream(
            f"book:{symbol}",
            lambda ms: bool(ms) and ms[-1]["seq"] >= seq,
            f"book:{symbol} at seq {seq}",
        )
        return self.book(symbol)

    async def close(self) -> None:
        self.start_reading()  # a client that stopped reading must drain to close cleanly
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.ws.close(), 5)
        if self._reader is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._reader, 5)


def stream_key(message: dict) -> str:
    """``book:BTC-KZT``, ``trades:BTC-KZT``, ``ticker:BTC-KZT``, ``candles:BTC-KZT:1m`` or
    ``orders``."""
    if "interval" in message:
        return f"{message['channel']}:{message['market']}:{message['interval']}"
    if "market" in message:
        return f"{message['channel']}:{message['market']}"
    return message["channel"]


# -- the L2 book a client rebuilds -----------------------------------------------------------


@dataclass
class L2Book:
    """An aggregated book built from a snapshot and the updates that follow it."""

    seq: int
    bids: dict[str, str]
    asks: dict[str, str]

    @classmethod
    def rebuild(cls, messages: list[dict]) -> L2Book:
        """Apply a book stream; fail unless it is one snapshot then contiguous updates."""
        assert messages, "no book messages"
        first, rest = messages[0], messages[1:]
        assert first["data"]["type"] == "snapshot", first
        book = cls(first["seq"], _levels(first["data"]["bids"]), _levels(first["data"]["asks"]))
        for message in rest:
            book.apply(message)
        return book

    def apply(self, message: dict) -> None:
        assert message["data"]["type"] == "update", message
        first_seq = message["first_seq"]
        assert first_seq == self.seq + 1, f"gap: seq {first_seq} after {self.seq}"
        assert message["seq"] >= first_seq, message
        self.seq = message["seq"]
        for side, levels in (
            (self.bids, message["data"]["bids"]),
            (self.asks, message["data"]["asks"]),
        ):
            for price, qty in levels:
                if _is_zero(qty):
                    assert price in side, f"level {price} removed but not in the book"
                    del side[price]
                else:
                    side[price] = qty

    def levels(self) -> dict[str, dict[str, str]]:
        return {"bids": dict(self.bids), "asks": dict(self.asks)}


def _levels(rows: list[list[str]]) -> dict[str, str]:
    out = {}
    for price, qty in rows:
        assert price not in out, f"level {price} twice in a snapshot"
        assert not _is_zero(qty), f"empty level {price} in a snapshot"
        out[price] = qty
    return out


def _is_zero(text: str) -> bool:
    return set(text) <= {"0", "."}


async def gather(*calls: Awaitable[T]) -> list[T]:
    return list(await asyncio.gather(*calls))


def trades_of(messages: list[dict]) -> list[dict]:
    """The trades of a ``trades`` stream, in order (each message carries a batch's list)."""
    return [trade for message in messages for trade in message["data"]]


# -- a whole server, journal and all ----------------------------------------------------------


@contextlib.asynccontextmanager
async def serving(
    data_dir: Path, *, engine_process: bool = True
) -> AsyncIterator[tuple[str, list[Client]]]:
    """``alatau serve`` on ``data_dir`` (any free port), by default with the engine in its
    own process; yields the url and a list to which the test adds its clients (closed at
    the end), and stops the server cleanly."""
    started: asyncio.Future = asyncio.get_running_loop().create_future()
    stop = asyncio.Event()
    options = ServeOptions(
        port=0,
        quiet=True,
        admin_key=ADMIN_KEY,
        limits=Limits(),
        data_dir=str(data_dir),
        engine_process=engine_process,
    )
    server = asyncio.create_task(serve(options, started=started, stop=stop))
    host, port = await asyncio.wait_for(started, 30)
    clients: list[Client] = []
    try:
        yield f"ws://{host}:{port}", clients
    finally:
        for client in clients:
            await client.close()
        stop.set()
        await asyncio.wait_for(server, 30)


async def connect(url: str, clients: list[Client], name: str | None = None) -> Client:
    """A client on ``url``, added to ``clients``, logged in as the demo ``name`` if given."""
    client = Client(await websockets.connect(url))
    client.start_reading()
    clients.append(client)
    if name is not None:
        await client.ok("auth.login", login_params(name))
    return client
