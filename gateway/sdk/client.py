"""The Python client SDK for the Alatau websocket gateway (asyncio, on ``websockets``).

Bots and tools build on this module.  One ``Client`` is one websocket connection; every
call sends a request with a fresh integer ``id`` and awaits the response with that id, so
calls from several tasks are pipelined on the one connection.  A single reader task
reads every frame and hands responses to the waiting calls and stream messages to the
streams listening on their channel.

Usage::

    import asyncio
    from decimal import Decimal
    from gateway.sdk.client import ApiError, Client

    BOB_PRIVATE_KEY = "f55796f2..."  # the demo key `alatau serve` prints for bob

    async def main() -> None:
        async with Client("ws://127.0.0.1:8765") as client:
            await client.login("demo-bob-key", private_key=BOB_PRIVATE_KEY)  # Ed25519
            async with client.orders() as orders, client.local_book("BTC-KZT") as book:
                print("best bid", book.best_bid(), "best ask", book.best_ask())
                try:
                    order = await client.place("BTC-KZT", "buy", "0.001", Decimal("44000000"))
                except ApiError as exc:
                    print("refused:", exc.code, exc.message)
                else:
                    await client.cancel("BTC-KZT", order["order_id"])
                async for message in orders:  # {"channel": "orders", "data": {...}}
                    print(message["data"])

    asyncio.run(main())

Money is never a float: prices and quantities go out as decimal strings (pass ``str``,
``int`` or ``decimal.Decimal``; a ``float`` is a ``TypeError``) and results keep the
server's decimal strings (``"45000000.00"``).  ``LocalBook`` turns book levels into
``Decimal``.

Streams are bounded.  Each ``Stream`` holds at most ``maxsize`` messages; when a consumer
falls behind, the *oldest* message is dropped and ``Stream.dropped`` counts it, so a bot
that never reads a stream cannot grow its memory without limit.  The reader task always
keeps reading the socket, so responses are never delayed by a full stream and the server
never sees this client as a slow reader.  A ``LocalBook`` notices a dropped book update
as a gap in ``seq`` and re-subscribes for a fresh snapshot.

Errors, one base for the package's own exceptions::

    ClientError
     +-- ApiError         the server answered ``ok: false``: ``code`` (stable, from
     |                    engine/reject.py) and ``message``
     +-- ConnectionLost   the connection closed under a call or a stream: ``code`` and
                          ``reason`` of the websocket close (1008: disconnected as a slow
                          reader)

Login takes either kind of key: ``login(api_key, private_key=...)`` for an Ed25519 key (its
32 raw bytes as 64 hex characters, or a ``cryptography`` ``Ed25519PrivateKey``), or
``login(api_key, api_secret)`` for an HMAC secret.  For ``wss://``, pass ``ssl=`` (an
``ssl.SSLContext``) to ``Client``; for a server with a self-signed certificate, trust that
certificate: ``ssl.create_default_context(cafile="cert.pem")``.

Misuse raises the built-in exceptions: ``TypeError`` for a float price, ``ValueError``
for a ``NaN`` or a book message of another market.
"""

from __future__ import annotations

import asyncio
import contextlib
import decimal
import itertools
import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

import msgspec
from sortedcontainers import SortedDict
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from gateway.wire.auth import sign, sign_ed25519

__all__ = [
    "DEFAULT_MAX_QUEUE",
    "ApiError",
    "Client",
    "ClientError",
    "ConnectionLost",
    "LocalBook",
    "Stream",
    "wire_decimal",
]

log = logging.getLogger("alatau.client")

DEFAULT_MAX_QUEUE = 10_000
"""Messages a ``Stream`` keeps for its consumer before it drops the oldest."""

_END = object()  # queued after the last message of a stream

_last_login_ts = 0


def _login_timestamp() -> int:
    """Now in ms, but never the same twice in this process: the server refuses a login
    frame it has seen (replay), and two logins with one key in one millisecond would sign
    the same message."""
    global _last_login_ts
    _last_login_ts = max(time.time_ns() // 1_000_000, _last_login_ts + 1)
    return _last_login_ts


Number = str | int | decimal.Decimal
Message = dict[str, Any]


# -- errors ---------------------------------------------------------------------------------


class ClientError(Exception):
    """Base of the SDK's exceptions."""


class ApiError(ClientError):
    """The server refused a request: ``code`` is the stable upper-case code
    (``INVALID_TICK``, ``UNKNOWN_ORDER``, ``UNAUTHENTICATED``...), ``message`` the
    human-readable detail (not stable), ``error`` the whole error object (with
    ``retry_after_ms`` for ``RATE_LIMITED``, also as the ``retry_after_ms`` property)."""

    def __init__(
        self, code: str, message: str, *, method: str | None = None, error: Message | None = None
    ) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.method = method
        self.error = error if error is not None else {"code": code, "message": message}

    @property
    def retry_after_ms(self) -> int | None:
        """For ``RATE_LIMITED``: the milliseconds to wait before retrying (else None)."""
        value = self.error.get("retry_after_ms")
        return value if isinstance(value, int) else None


class ConnectionLost(ClientError):
    """The connection closed before a response came or while a stream was read."""

    def __init__(self, code: int | None, reason: str) -> None:
        super().__init__(f"connection closed (code {code}): {reason or 'no reason given'}")
        self.code = code
        self.reason = reason


# -- wire values ----------------------------------------------------------------------------


def wire_decimal(value: Number, field: str) -> str:
    """A price or quantity as the exact decimal string the wire takes.

    ``str`` passes unchanged (the server checks it); ``int`` and ``Decimal`` are written
    in plain notation, exactly: ``Decimal("1E+3")`` is ``"1000"`` and ``Decimal("515.010")``
    is ``"515.01"`` (trailing zeros of the fraction dropped, the value unchanged, so
    Decimal arithmetic does not produce more decimals than the market accepts).  A
    ``float`` is a ``TypeError``: it cannot hold most decimal prices exactly.
    """
    if isinstance(value, str):
        return value
    if isinstance(value, bool) or not isinstance(value, int | decimal.Decimal):
        raise TypeError(
            f"{field} must be a str, int or decimal.Decimal, not {type(value).__name__}"
            + (" (floats are not exact: pass a decimal string)" if isinstance(value, float) else "")
        )
    if isinstance(value, int):
        return str(value)
    if not value.is_finite():
        raise ValueError(f"{field} {value} is not a finite number")
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


def _order_params(
    market: str,
    side: str,
    qty: Number,
    price: Number | None = None,
    *,
    type: str = "limit",
    tif: str | None = None,
    post_only: bool = False,
    client_order_id: str | None = None,
    stp: str = "cancel_newest",
) -> Message:
    params: Message = {
        "market": market,
        "side": side,
        "qty": wire_decimal(qty, "qty"),
        "type": type,
        "post_only": post_only,
        "stp": stp,
    }
    if price is not None:
        params["price"] = wire_decimal(price, "price")
    if tif is not None:
        params["tif"] = tif
    if client_order_id is not None:
        params["client_order_id"] = client_order_id
    return params


def _order_ref(market: str, order_id: int | None, client_order_id: str | None) -> Message:
    params: Message = {"market": market}
    if order_id is not None:
        params["order_id"] = order_id
    if client_order_id is not None:
        params["client_order_id"] = client_order_id
    return params


def _batch_results(items: list[Message], method: str) -> list[Message | ApiError]:
    """A batch response's items: each result, or its error as an ``ApiError``."""
    out: list[Message | ApiError] = []
    for item in items:
        if item.get("ok"):
            out.append(item["result"])
        else:
            error = item.get("error") or {}
            out.append(
                ApiError(
                    str(error.get("code", "INTERNAL")),
                    str(error.get("message", "")),
                    method=method,
                    error=error,
                )
            )
    return out


def _channel_of(message: Message) -> str | None:
    """The subscription a stream message belongs to (``book:BTC-KZT``, ``orders``)."""
    channel = message.get("channel")
    if channel == "orders":
        return "orders"
    if isinstance(channel, str):
        return f"{channel}:{message.get('market')}"
    return None


# -- streams --------------------------------------------------------------------------------


class Stream:
    """The messages of one channel, as an async iterator.

    ::

        async with client.stream("trades:BTC-KZT") as trades:
            async for message in trades:  # {"channel": "trades", "market": ..., "data": [...]}
                ...

    ``async with`` subscribes on entry and unsubscribes on exit; iterating a stream that
    was not opened subscribes first.  Several streams may follow one channel, each with
    its own queue.  At most ``maxsize`` messages wait; beyond that the oldest is dropped
    and counted in ``dropped``.  Iteration ends when the stream or the client is closed
    and raises ``ConnectionLost`` if the server closed the connection (after the
    messages that came before it).
    """

    def __init__(self, client: Client, channel: str, maxsize: int = DEFAULT_MAX_QUEUE) -> None:
        if maxsize < 1:
            raise ValueError(f"maxsize {maxsize} must be at least 1")
        self.client = client
        self.channel = channel
        self.maxsize = maxsize
        self.dropped = 0
        self._queue: asyncio.Queue[Any] = asyncio.Queue()
        self._opened = False
        self._ended = False
        self._error: BaseException | None = None

    # -- lifecycle

    async def open(self) -> Stream:
        """Subscribe (if not yet) and start queueing this channel's messages."""
        if not self._opened:
            self._opened = True
            try:
                await self.client._attach(self)
            except BaseException:
                self._opened = False
                raise
        return self

    async def close(self) -> None:
        """Stop following the channel; unsubscribe when no other stream follows it."""
        if self._opened and not self._ended:
            self._end(None)
            await self.client._detach(self)

    async def __aenter__(self) -> Stream:
        return await self.open()

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # -- consuming

    def __aiter__(self) -> Stream:
        return self

    async def __anext__(self) -> Message:
        if not self._opened:
            await self.open()
        item = await self._queue.get()
        if item is _END:
            self._queue.put_nowait(_END)  # keep the stream ended for the next call
            if self._error is not None:
                raise self._error
            raise StopAsyncIteration
        message: Message = item  # anything queued but _END is a message
        return message

    def pending(self) -> int:
        """Messages waiting to be read."""
        return self._queue.qsize() - (1 if self._ended else 0)

    # -- fed by the client's reader task

    def _put(self, message: Message) -> None:
        if self._ended:
            return
        if self._queue.qsize() >= self.maxsize:
            self._queue.get_nowait()
            self.dropped += 1
            if self.dropped == 1:
                log.warning("stream %s: consumer too slow, dropping oldest messages", self.channel)
        self._queue.put_nowait(message)

    def _end(self, error: BaseException | None) -> None:
        if not self._ended:
            self._ended = True
            self._error = error
            self._queue.put_nowait(_END)


# -- the client -----------------------------------------------------------------------------


class Client:
    """One websocket connection to the gateway, with pipelined calls and streams.

    ::

        async with Client("ws://127.0.0.1:8765") as client:   # or: await Client.connect(url)
            await client.login(api_key, private_key=private_key)  # or: login(api_key, secret)
            order = await client.place("USDT-KZT", "buy", "10", "514.50", post_only=True)

    Every call raises ``ApiError`` when the server answers ``ok: false`` and
    ``ConnectionLost`` when the connection closes first; with ``request_timeout`` set, a
    call waits at most that many seconds (``TimeoutError``; the request may still run).
    """

    def __init__(
        self,
        url: str,
        *,
        request_timeout: float | None = 30.0,
        max_queue: int = DEFAULT_MAX_QUEUE,
        **connect_options: Any,
    ) -> None:
        self.url = url
        self.request_timeout = request_timeout
        self.max_queue = max_queue
        self.participant: str | None = None
        self.close_code: int | None = None
        self.close_reason = ""
        self.unrouted = 0  # stream messages that came for a channel no Stream follows
        self._connect_options: dict[str, Any] = {"max_size": 64 * 1024 * 1024, "compression": None}
        self._connect_options.update(connect_options)
        self._ws: ClientConnection | None = None
        self._reader: asyncio.Task[None] | None = None
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._routes: dict[str, list[Stream]] = {}
        self._subscribed: set[str] = set()  # channels asked of the server, in flight included
        self._closing = False
        self._lost: ConnectionLost | None = None
        self._encoder = msgspec.json.Encoder()
        self._decoder = msgspec.json.Decoder()

    # -- connection

    @classmethod
    async def connect(cls, url: str, **options: Any) -> Client:
        """Open a connection: ``client = await Client.connect(url)``; ``await client.close()``."""
        client = cls(url, **options)
        await client._open()
        return client

    async def _open(self) -> None:
        if self._ws is not None:
            return
        self._ws = await connect(self.url, **self._connect_options)
        self._reader = asyncio.get_running_loop().create_task(
            self._read_loop(self._ws), name="alatau-client-reader"
        )

    async def __aenter__(self) -> Client:
        await self._open()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    @property
    def closed(self) -> bool:
        return self._closing or self._lost is not None

    async def close(self) -> None:
        """Close the connection; streams end, calls still waiting get ``ConnectionLost``."""
        self._closing = True
        if self._ws is not None:
            await self._ws.close()
        if self._reader is not None:
            await self._reader

    async def wait_closed(self) -> ConnectionLost:
        """Wait until the connection is gone; return why (code 1008: slow reader)."""
        if self._reader is not None:
            await asyncio.shield(self._reader)
        return self._lost or ConnectionLost(self.close_code, self.close_reason)

    async def _read_loop(self, ws: ClientConnection) -> None:
        decode = self._decoder.decode
        try:
            async for frame in ws:
                try:
                    message = decode(frame)
                except msgspec.DecodeError:
                    log.warning("ignoring a frame that is not JSON: %.80r", frame)
                    continue
                if not isinstance(message, dict):
                    log.warning("ignoring a frame that is not an object: %.80r", frame)
                elif "ok" in message:
                    self._on_response(message)
                else:
                    self._on_stream(message)
        except ConnectionClosed:
            pass
        finally:
            self._on_closed(ws)

    def _on_response(self, message: Message) -> None:
        request_id = message.get("id")
        future = self._pending.pop(request_id, None) if isinstance(request_id, int) else None
        if future is None:
            if not message.get("ok"):
                log.warning("error for no waiting request: %s", message.get("error"))
            return
        if not future.done():
            future.set_result(message)

    def _on_stream(self, message: Message) -> None:
        channel = _channel_of(message)
        streams = self._routes.get(channel) if channel is not None else None
        if not streams:
            self.unrouted += 1
            return
        for stream in streams:
            stream._put(message)

    def _on_closed(self, ws: ClientConnection) -> None:
        self.close_code = ws.close_code
        self.close_reason = ws.close_reason or ""
        lost = ConnectionLost(self.close_code, self.close_reason)
        if not self._closing:
            self._lost = lost
            log.warning("connection to %s lost: %s", self.url, lost)
        for future in self._pending.values():
            if not future.done():
                future.set_exception(lost)
        self._pending.clear()
        for streams in self._routes.values():
            for stream in streams:
                stream._end(None if self._closing else lost)
        self._routes.clear()
        self._subscribed.clear()

    # -- requests

    async def call(self, method: str, params: Message | None = None) -> Any:
        """Send one request and return its ``result``; ``ApiError`` if it failed.

        The general form of every method below, and the way to reach the operator's
        ``admin.*`` calls: ``await client.call("admin.deposit", {...})``.
        """
        if self._lost is not None:
            raise self._lost
        if self._ws is None or self._closing:
            raise ConnectionLost(self.close_code, "the client is not connected")
        request_id = next(self._ids)
        request: Message = {"id": request_id, "method": method}
        if params is not None:
            request["params"] = params
        frame = self._encoder.encode(request)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = future
        try:
            try:
                await self._ws.send(frame, text=True)
            except ConnectionClosed:
                raise self._lost or ConnectionLost(self.close_code, self.close_reason) from None
            if self.request_timeout is None:
                response = await future
            else:
                async with asyncio.timeout(self.request_timeout):
                    response = await future
        finally:
            self._pending.pop(request_id, None)
        if response.get("ok"):
            return response.get("result")
        error = response.get("error") or {}
        raise ApiError(
            str(error.get("code", "INTERNAL")),
            str(error.get("message", "")),
            method=method,
            error=error,
        )

    # -- session and account

    async def login(
        self,
        api_key: str,
        api_secret: str | None = None,
        *,
        private_key: Any = None,
        timestamp: int | None = None,
    ) -> Any:
        """``auth.login``: sign ``f"{timestamp}{api_key}"`` with the key's credential, one of
        ``private_key`` (Ed25519: 64 hex characters or an ``Ed25519PrivateKey``) or
        ``api_secret`` (HMAC-SHA256).

        ``timestamp`` in ms since the epoch (default: now, never the same twice in this
        process); returns ``{"participant", "category", "permissions"}``.
        """
        if (api_secret is None) == (private_key is None):
            raise TypeError("login needs exactly one of api_secret (HMAC) or private_key (Ed25519)")
        ts = _login_timestamp() if timestamp is None else timestamp
        if private_key is not None:
            signature = sign_ed25519(private_key, api_key, ts)
        else:
            assert api_secret is not None  # exactly one of the two, checked above
            signature = sign(api_secret, api_key, ts)
        result = await self.call(
            "auth.login", {"api_key": api_key, "timestamp": ts, "signature": signature}
        )
        self.participant = result.get("participant")
        return result

    async def admin_login(self, admin_key: str) -> Any:
        """``auth.admin`` with the operator's key; then ``call("admin.*", ...)`` works."""
        return await self.call("auth.admin", {"admin_key": admin_key})

    async def ping(self) -> Any:
        """``{"pong": true, "time": ms}``; also proves every earlier message has been read."""
        return await self.call("ping")

    async def markets(self) -> list[Message]:
        """Every market's spec: tick, lot, min_qty, min_notional, reference_price, status."""
        result: list[Message] = await self.call("markets.list")
        return result

    async def balances(self) -> list[Message]:
        """Per asset: ``total``, ``available``, ``held`` (decimal strings)."""
        result: list[Message] = await self.call("account.balances")
        return result

    async def open_orders(
        self, market: str | None = None, *, page_size: int = 1000
    ) -> list[Message]:
        """The participant's open orders, in one market or all, in order id order: every
        page of ``orders.open``, fetched one after the other (see ``open_orders_page``)."""
        orders: list[Message] = []
        after = 0
        while True:
            page = await self.open_orders_page(market, limit=page_size, after_order_id=after)
            orders.extend(page["orders"])
            if page["next"] is None:
                return orders
            after = page["next"]

    async def open_orders_page(
        self, market: str | None = None, *, limit: int = 500, after_order_id: int = 0
    ) -> Message:
        """One page of ``orders.open``: ``{"orders": [...], "next": cursor}``, at most
        ``limit`` (1-1000) orders with ids above ``after_order_id``; ``next`` (null on the
        last page) is the ``after_order_id`` of the next page."""
        params: dict[str, Any] = {"limit": limit, "after_order_id": after_order_id}
        if market is not None:
            params["market"] = market
        result: Message = await self.call("orders.open", params)
        return result

    async def order_status(
        self, *, order_id: int | None = None, client_order_id: str | None = None
    ) -> Message:
        """``order.status``: one of the participant's orders in any state, by exactly one of
        ``order_id`` and ``client_order_id`` (an open one as it stands after the requests
        sent before this; a closed one from the server's history database)."""
        params: dict[str, Any] = {}
        if order_id is not None:
            params["order_id"] = order_id
        if client_order_id is not None:
            params["client_order_id"] = client_order_id
        result: Message = await self.call("order.status", params)
        return result

    async def orders_history(
        self,
        market: str | None = None,
        *,
        start: int | None = None,
        end: int | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> Message:
        """One page of ``orders.history``, the closed orders newest first:
        ``{"orders": [...], "next": cursor, "stale": bool}``; pass ``next`` as ``cursor``
        for the page after (null on the last one).  ``start``/``end``: ms since the epoch."""
        result: Message = await self.call(
            "orders.history", _history_params(market, start, end, limit, cursor)
        )
        return result

    async def fills_history(
        self,
        market: str | None = None,
        *,
        start: int | None = None,
        end: int | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> Message:
        """One page of ``fills.history``, the participant's fills newest first:
        ``{"fills": [...], "next": cursor, "stale": bool}`` (paged as ``orders_history``)."""
        result: Message = await self.call(
            "fills.history", _history_params(market, start, end, limit, cursor)
        )
        return result

    async def recent_trades(self, market: str, limit: int = 100) -> list[Message]:
        """``trades.recent``: the last ``limit`` (1-1000) trades of ``market``, newest first
        (no login needed)."""
        result: list[Message] = await self.call("trades.recent", {"market": market, "limit": limit})
        return result

    async def depth(self, market: str, limit: int = 100) -> Message:
        """``market.depth``: ``{"market", "seq", "bids", "asks"}``, the best ``limit``
        (1-1000) levels a side as ``[price, qty]``; ``seq`` joins the ``book:`` channel
        (no login needed)."""
        result: Message = await self.call("market.depth", {"market": market, "limit": limit})
        return result

    async def cancel_on_disconnect(self, enabled: bool = True) -> Any:
        """When on, this connection's orders are canceled when it drops."""
        if not isinstance(enabled, bool):
            raise TypeError(f"enabled must be a bool, not {type(enabled).__name__}")
        return await self.call("session.cancel_on_disconnect", {"enabled": enabled})

    async def cancel_all_after(self, timeout_ms: int) -> Any:
        """Dead-man switch: unless called again within ``timeout_ms`` milliseconds, all the
        participant's open orders are canceled; 0 turns it off."""
        if isinstance(timeout_ms, bool) or not isinstance(timeout_ms, int):
            raise TypeError(f"timeout_ms must be an int, not {type(timeout_ms).__name__}")
        return await self.call("session.cancel_all_after", {"timeout_ms": timeout_ms})

    # -- orders

    async def place(
        self,
        market: str,
        side: str,
        qty: Number,
        price: Number | None = None,
        *,
        type: str = "limit",
        tif: str | None = None,
        post_only: bool = False,
        client_order_id: str | None = None,
        stp: str = "cancel_newest",
    ) -> Message:
        """``order.place``: the order as it stands after entry, with its ``fills``.

        ``side`` ``buy``/``sell``; ``type`` ``limit`` (needs ``price``) or ``market``;
        ``tif`` ``GTC``/``IOC``/``FOK`` (default GTC for limit, IOC for market); ``stp``
        ``cancel_newest``/``cancel_oldest``/``cancel_both``.
        """
        result: Message = await self.call(
            "order.place",
            _order_params(
                market,
                side,
                qty,
                price,
                type=type,
                tif=tif,
                post_only=post_only,
                client_order_id=client_order_id,
                stp=stp,
            ),
        )
        return result

    async def amend(
        self,
        market: str,
        order_id: int | None = None,
        *,
        client_order_id: str | None = None,
        qty: Number | None = None,
        price: Number | None = None,
    ) -> Message:
        """``order.amend`` by ``order_id`` or ``client_order_id``: new total ``qty``
        (filled part included) and/or ``price``.  A pure decrease keeps time priority."""
        params = _order_ref(market, order_id, client_order_id)
        if qty is not None:
            params["qty"] = wire_decimal(qty, "qty")
        if price is not None:
            params["price"] = wire_decimal(price, "price")
        result: Message = await self.call("order.amend", params)
        return result

    async def cancel(
        self, market: str, order_id: int | None = None, *, client_order_id: str | None = None
    ) -> Message:
        """``order.cancel`` by ``order_id`` or ``client_order_id``: the canceled order."""
        result: Message = await self.call(
            "order.cancel", _order_ref(market, order_id, client_order_id)
        )
        return result

    async def cancel_all(self, market: str | None = None, side: str | None = None) -> Message:
        """``order.cancel_all``: ``{"count", "order_ids"}`` of what was canceled."""
        params: Message = {}
        if market is not None:
            params["market"] = market
        if side is not None:
            params["side"] = side
        result: Message = await self.call("order.cancel_all", params)
        return result

    async def batch(self, orders: Iterable[Message]) -> list[Message | ApiError]:
        """``order.batch``: up to 50 orders (dicts of ``place``'s arguments), placed in
        order.  Returns, per order, its result dict or the ``ApiError`` it got (not
        raised: one refused order does not hide the others' results)."""
        params = [_order_params(**order) for order in orders]
        results = await self.call("order.batch", {"orders": params})
        return _batch_results(results, "order.batch")

    async def cancel_batch(self, orders: Iterable[Message]) -> list[Message | ApiError]:
        """``order.cancel_batch``: up to 50 cancels (dicts with ``market`` and ``order_id``
        or ``client_order_id``), in order.  Returns, per cancel, the canceled order or the
        ``ApiError`` it got (``UNKNOWN_ORDER`` for one that is no longer open), not raised."""
        params = [
            _order_ref(o["market"], o.get("order_id"), o.get("client_order_id")) for o in orders
        ]
        results = await self.call("order.cancel_batch", {"orders": params})
        return _batch_results(results, "order.cancel_batch")

    # -- subscriptions and streams

    async def subscribe(self, *channels: str) -> list[str]:
        """Low-level ``subscribe``; returns the channels now active.  Messages of a channel
        no ``Stream`` follows are dropped (counted in ``unrouted``): prefer ``stream()``."""
        self._subscribed.update(channels)
        try:
            result = await self.call("subscribe", {"channels": list(channels)})
        except ApiError:
            self._subscribed.difference_update(c for c in channels if c not in self._routes)
            raise
        active: list[str] = result["channels"]
        return active

    async def unsubscribe(self, *channels: str) -> list[str]:
        """Low-level ``unsubscribe``; streams on these channels stop receiving messages."""
        self._subscribed.difference_update(channels)
        result = await self.call("unsubscribe", {"channels": list(channels)})
        active: list[str] = result["channels"]
        return active

    def stream(self, channel: str, *, maxsize: int | None = None) -> Stream:
        """A ``Stream`` of ``book:SYMBOL``, ``trades:SYMBOL`` or ``orders``; see ``Stream``.

        ``book:`` messages are the raw snapshot and updates: use ``local_book`` for a book.
        """
        return Stream(self, channel, self.max_queue if maxsize is None else maxsize)

    def orders(self, *, maxsize: int | None = None) -> Stream:
        """The private ``orders`` stream: ``order``, ``fill`` and ``balance`` messages of
        the logged-in participant, in the order the engine produced them.  By the time a
        call's response arrives, the stream has already received that call's messages."""
        return self.stream("orders", maxsize=maxsize)

    def local_book(
        self,
        market: str,
        *,
        on_gap: Callable[[LocalBook, int, int], None] | None = None,
        maxsize: int | None = None,
    ) -> LocalBook:
        """A ``LocalBook`` of ``market`` kept from this connection (``async with`` it)."""
        return LocalBook(
            market,
            client=self,
            on_gap=on_gap,
            maxsize=self.max_queue if maxsize is None else maxsize,
        )

    async def _attach(self, stream: Stream) -> None:
        channel = stream.channel
        listeners = self._routes.setdefault(channel, [])
        listeners.append(stream)
        try:
            if channel not in self._subscribed:
                await self.subscribe(channel)
            elif channel.startswith("book:"):
                # Already subscribed: the server sends no second snapshot, so ask for one.
                await self.resubscribe(channel)
        except BaseException:
            self._forget(stream)
            raise

    async def _detach(self, stream: Stream) -> None:
        self._forget(stream)
        channel = stream.channel
        if channel not in self._routes and channel in self._subscribed and not self.closed:
            with contextlib.suppress(ConnectionLost):
                await self.unsubscribe(channel)

    def _forget(self, stream: Stream) -> None:
        listeners = self._routes.get(stream.channel)
        if listeners is not None and stream in listeners:
            listeners.remove(stream)
            if not listeners:
                del self._routes[stream.channel]

    async def resubscribe(self, channel: str) -> None:
        """``unsubscribe`` then ``subscribe`` one channel (pipelined): for a book, the
        server then sends a fresh snapshot to every stream on it."""
        self._subscribed.add(channel)
        await asyncio.gather(
            self.call("unsubscribe", {"channels": [channel]}),
            self.call("subscribe", {"channels": [channel]}),
        )


# -- the local order book -------------------------------------------------------------------


class LocalBook:
    """An L2 order book kept from a ``book:{market}`` snapshot and its updates.

    ::

        async with client.local_book("BTC-KZT") as book:   # waits for the snapshot
            print(book.seq, book.best_bid(), book.best_ask(), book.bids[:5])
            await book.wait_seq(n)                          # until it is at n or later

    ``seq`` must be contiguous: a snapshot with ``seq`` N, then updates covering N + 1 to
    M (``first_seq`` N + 1, ``seq`` M: the server sends one update per batch of changes),
    then M + 1 onwards...  An update that does not start right after the last is a gap (a
    lost message, or one this client's
    bounded queue dropped): the book marks itself not ``synced``, counts it in ``gaps``,
    calls ``on_gap(book, expected_seq, got_seq)``, ignores updates until a new snapshot
    and, when it is attached to a client, re-subscribes (unsubscribe + subscribe, counted
    in ``resyncs``) to get one.  A snapshot always replaces the whole book.

    ``apply(message)`` is the sans-I/O core: a ``LocalBook`` made without a client is a
    plain data structure fed by hand.  Prices and quantities are ``Decimal`` (made from
    the wire strings, so ``f"{price:f}"`` gives the server's text back).  ``bids`` is
    highest price first, ``asks`` lowest first; each is O(levels) to build, ``best_bid``
    and ``best_ask`` are O(1) and an update costs O(log levels) per level changed.
    """

    def __init__(
        self,
        market: str,
        *,
        client: Client | None = None,
        on_gap: Callable[[LocalBook, int, int], None] | None = None,
        maxsize: int = DEFAULT_MAX_QUEUE,
    ) -> None:
        self.market = market
        self.channel = f"book:{market}"
        self.client = client
        self.on_gap = on_gap
        self.maxsize = maxsize
        self.seq: int | None = None
        self.synced = False
        self.gaps = 0
        self.resyncs = 0
        self._bids: SortedDict = SortedDict()
        self._asks: SortedDict = SortedDict()
        self._stream: Stream | None = None
        self._task: asyncio.Task[None] | None = None
        self._resync_tasks: set[asyncio.Task[None]] = set()
        self._awaiting_snapshot = False
        self._dropped_at_resync = 0
        self._error: BaseException | None = None
        self._changed = asyncio.Event()

    # -- reading

    @property
    def bids(self) -> list[tuple[decimal.Decimal, decimal.Decimal]]:
        """(price, qty) per bid level, best (highest) first."""
        return list(reversed(self._bids.items()))

    @property
    def asks(self) -> list[tuple[decimal.Decimal, decimal.Decimal]]:
        """(price, qty) per ask level, best (lowest) first."""
        return list(self._asks.items())

    def best_bid(self) -> tuple[decimal.Decimal, decimal.Decimal] | None:
        return self._bids.peekitem(-1) if self._bids else None

    def best_ask(self) -> tuple[decimal.Decimal, decimal.Decimal] | None:
        return self._asks.peekitem(0) if self._asks else None

    def mid(self) -> decimal.Decimal | None:
        """The midpoint of the best bid and ask, or None if a side is empty (exact)."""
        bid, ask = self.best_bid(), self.best_ask()
        if bid is None or ask is None:
            return None
        return (bid[0] + ask[0]) / 2

    def levels(self) -> dict[str, list[list[str]]]:
        """Both sides as wire strings, best first: ``{"bids": [[price, qty]...], "asks"}``."""
        return {
            "bids": [[f"{p:f}", f"{q:f}"] for p, q in self.bids],
            "asks": [[f"{p:f}", f"{q:f}"] for p, q in self.asks],
        }

    # -- the sans-I/O core

    def apply(self, message: Message) -> bool:
        """Apply one ``book`` stream message; True if applied, False if it was a gap or
        came while the book waits for a snapshot (see the class docstring)."""
        if message.get("channel") != "book" or message.get("market") != self.market:
            raise ValueError(
                f"not a book message of {self.market}: channel {message.get('channel')!r}, "
                f"market {message.get('market')!r}"
            )
        data = message["data"]
        seq: int = message["seq"]
        kind = data.get("type")
        if kind == "snapshot":
            self._bids.clear()
            self._asks.clear()
            self._set_levels(self._bids, data["bids"])
            self._set_levels(self._asks, data["asks"])
            self.seq = seq
            self.synced = True
            self._awaiting_snapshot = False
            self._notify()
            return True
        if kind != "update":
            raise ValueError(f"unknown book message type {kind!r}")
        if not self.synced:
            # Waiting for a snapshot.  If ours was itself dropped, ask again.
            stream = self._stream
            if not self._awaiting_snapshot or (
                stream is not None and stream.dropped > self._dropped_at_resync
            ):
                self._resync()
            return False
        # An update covers the engine's changes first_seq..seq of this book (several when
        # the server conflated a batch); the next one must start right after it.
        expected = (self.seq or 0) + 1
        first_seq: int = message.get("first_seq", seq)
        if first_seq != expected or seq < first_seq:
            self.synced = False
            self.gaps += 1
            log.warning("book %s: seq gap, expected %d got %d", self.market, expected, first_seq)
            if self.on_gap is not None:
                self.on_gap(self, expected, first_seq)
            self._resync()
            self._notify()
            return False
        self._set_levels(self._bids, data["bids"])
        self._set_levels(self._asks, data["asks"])
        self.seq = seq
        self._notify()
        return True

    @staticmethod
    def _set_levels(side: SortedDict, levels: list[list[str]]) -> None:
        for price_text, qty_text in levels:
            price = decimal.Decimal(price_text)
            qty = decimal.Decimal(qty_text)
            if qty:
                side[price] = qty
            else:
                side.pop(price, None)

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    # -- driving it from a client

    async def start(self) -> LocalBook:
        """Subscribe, start applying messages and wait for the first snapshot."""
        if self.client is None:
            raise RuntimeError("this LocalBook has no client: feed it with apply()")
        if self._task is None:
            self._stream = self.client.stream(self.channel, maxsize=self.maxsize)
            self._awaiting_snapshot = True
            await self._stream.open()
            self._task = asyncio.get_running_loop().create_task(
                self._run(self._stream), name=f"alatau-local-book-{self.market}"
            )
        await self.wait_synced()
        return self

    async def close(self) -> None:
        """Stop following the book (unsubscribes when no other stream follows it)."""
        if self._stream is not None:
            await self._stream.close()
        if self._task is not None:
            await self._task
        for task in tuple(self._resync_tasks):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def __aenter__(self) -> LocalBook:
        return await self.start()

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def _run(self, stream: Stream) -> None:
        try:
            async for message in stream:
                self.apply(message)
        except ConnectionLost as exc:
            self._error = exc
        finally:
            self._notify()

    def _resync(self) -> None:
        """Ask the server for a fresh snapshot (if attached to a running client)."""
        client = self.client
        if client is None or client.closed or self._stream is None:
            return
        self.resyncs += 1
        self._awaiting_snapshot = True
        self._dropped_at_resync = self._stream.dropped
        task = asyncio.get_running_loop().create_task(self._resubscribe(client))
        self._resync_tasks.add(task)
        task.add_done_callback(self._resync_tasks.discard)

    async def _resubscribe(self, client: Client) -> None:
        with contextlib.suppress(ConnectionLost):  # the stream ends too; _run records why
            await client.resubscribe(self.channel)

    async def wait_synced(self) -> None:
        """Wait until the book holds a snapshot and every update since."""
        await self.wait_for(lambda book: book.synced)

    async def wait_seq(self, seq: int) -> None:
        """Wait until the book is synced at ``seq`` or later."""
        await self.wait_for(lambda book: book.synced and book.seq is not None and book.seq >= seq)

    async def wait_for(self, predicate: Callable[[LocalBook], bool]) -> None:
        """Wait until ``predicate(book)`` is true; it is tested after every change.

        Raises ``ConnectionLost`` if the connection closes first, ``RuntimeError`` if the
        book is not running (wrap in ``asyncio.timeout`` to bound the wait).
        """
        while not predicate(self):
            if self._error is not None:
                raise self._error
            if self._task is None or self._task.done():
                raise RuntimeError(f"the local book of {self.market} is not running")
            await self._changed.wait()


def _history_params(
    market: str | None, start: int | None, end: int | None, limit: int, cursor: str | None
) -> dict[str, Any]:
    """The params of ``orders.history`` and ``fills.history``, without those not given."""
    params: dict[str, Any] = {"limit": limit}
    for name, value in (("market", market), ("start", start), ("end", end), ("cursor", cursor)):
        if value is not None:
            params[name] = value
    return params
