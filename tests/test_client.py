"""The client SDK (gateway.sdk.client) against a real gateway on 127.0.0.1, and the example bot.

One demo venue (``gateway.app.serve``) runs for the module in a background thread with its
own event loop; each test drives its clients with ``asyncio`` in the main thread (``run``),
and reads the engine's state through the server's loop (``Server.inspect``), never across
threads.  Tests keep to their own markets and clean up their orders: BTC-KZT for order
entry, ETH-KZT for the random flow, USDT-KZT for the market-maker bot.  Any error an event
loop records (an exception in a task nobody awaited, a failed callback) fails the test.
No timing is asserted; the timeouts only stop a broken test from hanging.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
import random
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Coroutine
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from engine.reject import all_codes
from engine.types import Side
from gateway.app import serve as app
from gateway.hosts import start as engine_start
from gateway.sdk.client import (
    ApiError,
    Client,
    ConnectionLost,
    LocalBook,
    wire_decimal,
)
from gateway.sessions.session import Limits
from gateway.wire.protocol import METHODS

ROOT = Path(__file__).resolve().parent.parent
ADMIN_KEY = "test-admin-key"
# (api_key, Ed25519 private key) of demo participants
BOB = ("demo-bob-key", app.DEMO_PRIVATE_KEYS["demo-bob-key"])
BROKER = ("demo-broker1-key", app.DEMO_PRIVATE_KEYS["demo-broker1-key"])
MM1 = ("demo-mm1-key", app.DEMO_PRIVATE_KEYS["demo-mm1-key"])
TIMEOUT = 20.0  # seconds: a safety net against hanging, never an assertion


# -- the server and the client loop ---------------------------------------------------------


class Server:
    """``gateway.app.serve`` on port 0 in a thread; ``exchange`` is the engine it built
    (caught where ``gateway.hosts.start`` builds it)."""

    def __init__(self, limits: Limits | None = None) -> None:
        self.limits = limits or Limits()
        self.loop = asyncio.new_event_loop()
        self.errors: list[dict[str, Any]] = []
        self.loop.set_exception_handler(lambda _loop, context: self.errors.append(context))
        self.exchange: Any = None
        self.url = ""
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._main, name="alatau-test-server")

    def start(self) -> Server:
        original = engine_start.build_exchange

        def build_and_keep(options: Any) -> Any:
            self.exchange = original(options)
            return self.exchange

        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(engine_start, "build_exchange", build_and_keep)
            self._thread.start()
            assert self._ready.wait(TIMEOUT), "the server did not start"
        return self

    def _main(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self._serve())
        self.loop.close()

    async def _serve(self) -> None:
        started = self.loop.create_future()
        self._stop = asyncio.Event()
        options = app.ServeOptions(port=0, quiet=True, admin_key=ADMIN_KEY, limits=self.limits)
        task = asyncio.create_task(app.serve(options, started=started, stop=self._stop))
        host, port = await started
        self.url = f"ws://{host}:{port}"
        self._ready.set()
        await task

    def inspect(self, read: Callable[[Any], Any]) -> Any:
        """``read(exchange)`` run on the server's loop, between two commands."""
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()

        def call() -> None:
            try:
                future.set_result(read(self.exchange))
            except BaseException as exc:  # handed to the test thread, raised there
                future.set_exception(exc)

        self.loop.call_soon_threadsafe(call)
        return future.result(TIMEOUT)

    def request_stop(self) -> None:
        """Ask the server to shut down (it closes its connections with 1001); no waiting."""
        if self._stop is not None and self._thread.is_alive():
            # RuntimeError: the loop has already closed, so the server is down anyway.
            with contextlib.suppress(RuntimeError):
                self.loop.call_soon_threadsafe(self._stop.set)

    def stop(self) -> None:
        self.request_stop()
        self._thread.join(TIMEOUT)
        assert not self._thread.is_alive(), "the server did not stop"
        assert not self.errors, self.errors


@pytest.fixture(scope="module")
def server() -> Any:
    running = Server().start()
    yield running
    running.stop()


def run(coroutine: Coroutine[Any, Any, Any]) -> Any:
    """Run a test's coroutine on a fresh loop; fail if the loop recorded an error."""
    errors: list[dict[str, Any]] = []
    with asyncio.Runner() as runner:
        runner.get_loop().set_exception_handler(lambda _loop, context: errors.append(context))
        result = runner.run(asyncio.wait_for(coroutine, TIMEOUT))
    assert not errors, errors
    return result


async def logged_in(url: str, credentials: tuple[str, str]) -> Client:
    client = await Client.connect(url)
    await client.login(credentials[0], private_key=credentials[1])
    return client


def engine_levels(exchange: Any, symbol: str) -> tuple[int, dict[str, list[list[str]]]]:
    """The engine's own book of ``symbol`` as wire strings, with its seq."""
    book, market = exchange.books[symbol], exchange.markets[symbol]
    return book.seq, {
        key: [[market.format_price(p), market.format_qty(q)] for p, q in book.depth(side)]
        for key, side in (("bids", Side.BUY), ("asks", Side.SELL))
    }


async def next_order_event(orders: Any, predicate: Callable[[dict[str, Any]], bool]) -> dict:
    async for message in orders:
        if predicate(message["data"]):
            return message["data"]
    raise AssertionError("the orders stream ended")


# -- session, order entry, errors -----------------------------------------------------------


def test_login_and_session_calls(server: Server) -> None:
    """Login names the participant; ping, markets, balances and session switches answer."""

    async def scenario() -> None:
        async with Client(server.url) as client:
            login = await client.login(BOB[0], private_key=BOB[1])
            assert login["participant"] == client.participant == "bob"
            assert (await client.ping())["pong"] is True
            markets = {m["symbol"]: m for m in await client.markets()}
            assert markets["USDT-KZT"]["tick"] == "0.01"
            assert markets["BTC-KZT"]["reference_price"] is not None
            balances = {b["asset"]: b for b in await client.balances()}
            assert set(balances["KZT"]) == {"asset", "total", "available", "held"}
            assert await client.cancel_on_disconnect(True) == {"enabled": True}
            assert await client.cancel_all_after(60_000) == {"timeout_ms": 60_000}
            assert await client.cancel_all_after(0) == {"timeout_ms": 0}

    run(scenario())


def test_place_amend_cancel_round_trip(server: Server) -> None:
    """An order goes in, is amended by both ids, shows as open, is canceled; the orders
    stream reports each step before the call that caused it returns."""

    async def scenario() -> None:
        async with await logged_in(server.url, BOB) as client, client.orders() as orders:
            placed = await client.place(
                "BTC-KZT", "buy", Decimal("0.002"), Decimal("44000000"), client_order_id="rt-1"
            )
            assert placed["status"] == "new"
            assert (placed["price"], placed["qty"]) == ("44000000.00", "0.00200000")
            order_id = placed["order_id"]
            smaller = await client.amend("BTC-KZT", client_order_id="rt-1", qty="0.001")
            assert (smaller["order_id"], smaller["qty"]) == (order_id, "0.00100000")
            moved = await client.amend("BTC-KZT", order_id, price="44000100")
            assert moved["price"] == "44000100.00"
            (open_order,) = await client.open_orders("BTC-KZT")
            assert (open_order["order_id"], open_order["remaining_qty"]) == (order_id, "0.00100000")
            canceled = await client.cancel("BTC-KZT", order_id)
            assert (canceled["status"], canceled["reason"]) == ("canceled", "user")
            assert await client.open_orders("BTC-KZT") == []
            states = []
            while orders.pending():
                data = (await orders.__anext__())["data"]
                if data["type"] == "order":
                    states.append((data["status"], data["qty"], data["price"]))
            assert states == [
                ("new", "0.00200000", "44000000.00"),
                ("new", "0.00100000", "44000000.00"),
                ("new", "0.00100000", "44000100.00"),
                ("canceled", "0.00100000", "44000100.00"),
            ]

    run(scenario())


def test_batch_returns_a_result_or_an_api_error_per_order(server: Server) -> None:
    """A batch answers every order in order; a refused one is an ApiError, not raised."""

    async def scenario() -> None:
        async with await logged_in(server.url, BOB) as client:
            results = await client.batch(
                [
                    {"market": "BTC-KZT", "side": "buy", "qty": "0.001", "price": "43000000"},
                    {"market": "BTC-KZT", "side": "buy", "qty": "0.001", "price": "43000000.5"},
                    {"market": "NOPE-KZT", "side": "sell", "qty": "1", "price": "1"},
                    {"market": "BTC-KZT", "side": "sell", "qty": "0.001", "price": "47000000"},
                ]
            )
            assert [r["status"] if isinstance(r, dict) else r.code for r in results] == [
                "new",
                "INVALID_TICK",
                "UNKNOWN_MARKET",
                "new",
            ]
            placed = [r["order_id"] for r in results if isinstance(r, dict)]
            canceled = await client.cancel_all("BTC-KZT")
            assert sorted(canceled["order_ids"]) == sorted(placed)

    run(scenario())


def test_cancel_batch_returns_the_order_or_an_api_error_per_cancel(server: Server) -> None:
    async def scenario() -> None:
        async with await logged_in(server.url, BOB) as client:
            first = await client.place("BTC-KZT", "buy", "0.001", "43000000")
            second = await client.place(
                "BTC-KZT", "buy", "0.001", "43000100", client_order_id="keep-me-not"
            )
            results = await client.cancel_batch(
                [
                    {"market": "BTC-KZT", "order_id": first["order_id"]},
                    {"market": "BTC-KZT", "client_order_id": "keep-me-not"},
                    {"market": "BTC-KZT", "order_id": first["order_id"]},
                ]
            )
            assert [r["status"] if isinstance(r, dict) else r.code for r in results] == [
                "canceled",
                "canceled",
                "UNKNOWN_ORDER",
            ]
            assert results[1]["order_id"] == second["order_id"]  # type: ignore[index]
            assert results[2].method == "order.cancel_batch"  # type: ignore[union-attr]
            assert await client.open_orders("BTC-KZT") == []

    run(scenario())


def test_api_errors_carry_the_stable_code(server: Server) -> None:
    """Refused calls raise ApiError with the table's code; the connection stays usable."""

    async def code_of(call: Coroutine[Any, Any, Any]) -> str:
        with pytest.raises(ApiError) as caught:
            await call
        assert caught.value.message
        return caught.value.code

    async def scenario() -> None:
        async with Client(server.url) as client:
            assert await code_of(client.place("BTC-KZT", "buy", "0.001", "1")) == (
                "UNAUTHENTICATED"
            )
            wrong = client.login(BOB[0], private_key=MM1[1])
            assert await code_of(wrong) == "AUTH_FAILED"
            assert await code_of(client.login(BOB[0], "an-hmac-secret")) == "AUTH_FAILED"
            assert await code_of(client.call("no.such.method")) == "UNKNOWN_METHOD"
            await client.login(BOB[0], private_key=BOB[1])
            place = client.place
            assert await code_of(place("BTC-KZT", "buy", "0.001", "45000000.5")) == ("INVALID_TICK")
            assert await code_of(place("BTC-KZT", "buy", "1e-3", "45000000")) == ("INVALID_NUMBER")
            assert await code_of(place("BTC-KZT", "buy", "0.001", "60000000")) == (
                "PRICE_OUT_OF_BAND"
            )
            assert await code_of(place("XRP-KZT", "buy", "1", "1")) == "UNKNOWN_MARKET"
            assert await code_of(client.cancel("BTC-KZT", 10**12)) == "UNKNOWN_ORDER"
            assert await code_of(client.amend("BTC-KZT", client_order_id="nope", qty="1")) == (
                "UNKNOWN_ORDER"
            )
            deposit = {"participant_id": "bob", "asset": "KZT", "amount": "1"}
            assert await code_of(client.call("admin.deposit", deposit)) == "UNAUTHENTICATED"
            assert (await client.ping())["pong"] is True

    run(scenario())


def test_float_money_is_a_type_error_and_decimals_are_written_exactly(server: Server) -> None:
    """Floats never reach the wire; Decimals and ints are written in plain, exact notation."""
    assert wire_decimal(Decimal("1E+3"), "qty") == "1000"
    assert wire_decimal(Decimal("515.010"), "price") == "515.01"
    assert wire_decimal(Decimal("0.00000010"), "qty") == "0.0000001"
    assert wire_decimal(7, "qty") == "7"
    assert wire_decimal("0.50", "qty") == "0.50"
    with pytest.raises(TypeError):
        wire_decimal(True, "qty")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        wire_decimal(Decimal("NaN"), "price")

    async def scenario() -> None:
        async with await logged_in(server.url, BOB) as client:
            with pytest.raises(TypeError, match="float"):
                await client.place("BTC-KZT", "buy", "0.001", 45000000.0)  # type: ignore[arg-type]
            with pytest.raises(TypeError, match="float"):
                await client.place("BTC-KZT", "buy", 0.001, "45000000")  # type: ignore[arg-type]
            with pytest.raises(TypeError, match="float"):
                await client.amend("BTC-KZT", 1, price=1.5)  # type: ignore[arg-type]
            with pytest.raises(TypeError, match="float"):
                await client.batch([{"market": "BTC-KZT", "side": "buy", "qty": 0.1}])
            assert await client.open_orders("BTC-KZT") == []

    run(scenario())


def test_cancel_on_disconnect_and_dead_man_switch(server: Server) -> None:
    """A dropped connection with cancel-on-disconnect, and a dead-man switch left to run
    out, each cancel the orders and say why in the orders stream."""

    async def scenario() -> None:
        async with await logged_in(server.url, BOB) as watcher, watcher.orders() as orders:
            session = await logged_in(server.url, BOB)
            await session.cancel_on_disconnect(True)
            first = await session.place("BTC-KZT", "buy", "0.001", "44000000")
            await session.close()
            gone = await next_order_event(
                orders, lambda d: d.get("order_id") == first["order_id"] and "reason" in d
            )
            assert gone["reason"] == "disconnect"

            second = await watcher.place("BTC-KZT", "buy", "0.001", "44000000")
            await watcher.cancel_all_after(50)
            gone = await next_order_event(
                orders, lambda d: d.get("order_id") == second["order_id"] and "reason" in d
            )
            assert gone["reason"] == "dead_man_switch"
            assert await watcher.open_orders() == []

    run(scenario())


def test_streams_drop_the_oldest_message_when_full(server: Server) -> None:
    """A stream nobody reads keeps only its newest ``maxsize`` messages and counts the rest."""

    async def scenario() -> None:
        async with await logged_in(server.url, BOB) as client:
            trades = await client.stream("trades:BTC-KZT", maxsize=2).open()
            async with await logged_in(server.url, BROKER) as other:
                for _ in range(5):
                    await other.place("BTC-KZT", "sell", "0.001", "45000000")
                    await client.place("BTC-KZT", "buy", "0.001", "45000000")
            await client.ping()  # every trade message has been read off the socket
            assert (trades.pending(), trades.dropped) == (2, 3)
            kept = [(await trades.__anext__())["data"][0]["trade_id"] for _ in range(2)]
            assert kept[1] == kept[0] + 1
            await trades.close()
            assert await client.open_orders("BTC-KZT") == []

    run(scenario())


# -- the local order book -------------------------------------------------------------------


def book_message(seq: int, kind: str, bids: list, asks: list) -> dict[str, Any]:
    return {
        "channel": "book",
        "market": "BTC-KZT",
        "seq": seq,
        "data": {"type": kind, "bids": bids, "asks": asks},
    }


def test_local_book_applies_snapshot_and_updates_and_stops_at_a_gap() -> None:
    """Sans-I/O: a snapshot then contiguous updates apply; a skipped seq marks the book
    out of sync (counted, reported) and updates wait for the next snapshot."""
    gaps: list[tuple[int, int]] = []
    book = LocalBook("BTC-KZT", on_gap=lambda _book, expected, got: gaps.append((expected, got)))
    assert book.apply(book_message(7, "snapshot", [["100.00", "1.00"]], [["105.00", "2.00"]]))
    assert book.apply(book_message(8, "update", [["101.00", "0.50"]], [["105.00", "0.00"]]))
    assert book.bids == [(Decimal("101.00"), Decimal("0.50")), (Decimal("100.00"), Decimal("1"))]
    assert book.asks == [] and book.best_ask() is None and book.seq == 8
    assert book.best_bid() == (Decimal("101.00"), Decimal("0.50"))
    assert not book.apply(book_message(10, "update", [["99.00", "1.00"]], []))
    assert (book.synced, book.gaps, gaps) == (False, 1, [(9, 10)])
    assert not book.apply(book_message(11, "update", [["98.00", "1.00"]], []))
    assert book.seq == 8 and len(book.bids) == 2
    assert book.apply(book_message(11, "snapshot", [], [["104.00", "3.00"]]))
    assert (book.synced, book.seq, book.levels()) == (
        True,
        11,
        {"bids": [], "asks": [["104.00", "3.00"]]},
    )
    with pytest.raises(ValueError):
        book.apply({**book_message(12, "update", [], []), "market": "ETH-KZT"})


def test_local_book_gap_resubscribes_and_recovers(server: Server) -> None:
    """A crafted update with a skipped seq makes an attached book re-subscribe, take the
    fresh snapshot and match the engine again."""

    async def scenario() -> None:
        gaps: list[tuple[int, int]] = []
        async with await logged_in(server.url, BOB) as client:
            await client.place("BTC-KZT", "buy", "0.001", "44500000")
            async with client.local_book(
                "BTC-KZT", on_gap=lambda _b, expected, got: gaps.append((expected, got))
            ) as book:
                seq = book.seq
                assert seq is not None
                bogus = book_message(seq + 2, "update", [["44900000.00", "5.00000000"]], [])
                assert not book.apply(bogus)
                assert (book.synced, book.gaps, book.resyncs) == (False, 1, 1)
                assert gaps == [(seq + 1, seq + 2)]
                await book.wait_synced()
                server_seq, levels = server.inspect(lambda ex: engine_levels(ex, "BTC-KZT"))
                assert (book.seq, book.levels()) == (server_seq, levels)
                await client.place("BTC-KZT", "buy", "0.001", "44400000")
                await book.wait_seq(server_seq + 1)
                assert book.levels() == server.inspect(lambda ex: engine_levels(ex, "BTC-KZT"))[1]
                assert book.gaps == 1
            await client.cancel_all("BTC-KZT")

    run(scenario())


def test_local_books_match_the_engine_after_a_random_flow(server: Server) -> None:
    """Two participants send a seeded random flow of pipelined orders, amends and cancels;
    both local books then equal the engine's book and the participants' open orders."""
    rng = random.Random(20260101)
    market = "ETH-KZT"

    async def flow(client: Client, mine: dict[int, str]) -> list[Any]:
        calls = []
        for _ in range(20):
            roll = rng.random()
            side = rng.choice(("buy", "sell"))
            price = str(1_700_000 + 100 * rng.randint(-15, 15))
            qty = f"0.{rng.randint(10, 300):04d}"
            if roll < 0.15 and mine:
                calls.append(client.cancel(market, rng.choice(list(mine))))
            elif roll < 0.3 and mine:
                order_id = rng.choice(list(mine))
                if rng.random() < 0.5:
                    calls.append(client.amend(market, order_id, price=price))
                else:
                    calls.append(client.amend(market, order_id, qty=qty))
            elif roll < 0.4:
                calls.append(client.place(market, side, qty, price, tif="IOC"))
            else:
                calls.append(client.place(market, side, qty, price))
        return await asyncio.gather(*calls, return_exceptions=True)

    async def scenario() -> None:
        bob = await logged_in(server.url, BOB)
        broker = await logged_in(server.url, BROKER)
        try:
            async with bob.local_book(market) as bob_book, broker.local_book(market) as book2:
                open_ids: dict[Client, dict[int, str]] = {bob: {}, broker: {}}
                for _ in range(8):
                    rounds = await asyncio.gather(*(flow(c, ids) for c, ids in open_ids.items()))
                    for client, results in zip(open_ids, rounds, strict=True):
                        for result in results:
                            if isinstance(result, ApiError):
                                # the order filled meanwhile, or an amend below its fills
                                assert result.code in ("UNKNOWN_ORDER", "INVALID_QTY"), result
                                continue
                            assert isinstance(result, dict), result
                            if result["status"] in ("new", "partially_filled"):
                                open_ids[client][result["order_id"]] = result["status"]
                            else:
                                open_ids[client].pop(result["order_id"], None)
                seq, levels = server.inspect(lambda ex: engine_levels(ex, market))
                await bob_book.wait_seq(seq)
                await book2.wait_seq(seq)
                assert bob_book.seq == book2.seq == seq
                assert bob_book.levels() == book2.levels() == levels
                assert levels["bids"] and levels["asks"]
                assert bob_book.gaps == book2.gaps == 0
                resting: dict[tuple[str, Decimal], Decimal] = {}
                for client in (bob, broker):
                    for order in await client.open_orders(market):
                        key = (order["side"], Decimal(order["price"]))
                        resting[key] = resting.get(key, 0) + Decimal(order["remaining_qty"])
                from_books = {("buy", p): q for p, q in bob_book.bids}
                from_books.update({("sell", p): q for p, q in bob_book.asks})
                assert resting == from_books
                server.inspect(lambda ex: ex.check_integrity())
        finally:
            for client in (bob, broker):
                await client.cancel_all(market)
                await client.close()

    run(scenario())


# -- connection loss ------------------------------------------------------------------------


def test_connection_loss_ends_streams_and_fails_calls() -> None:
    """When the server goes away, streams raise ConnectionLost and so do later calls."""
    other = Server().start()
    try:

        async def scenario() -> None:
            client = await logged_in(other.url, BOB)
            trades = await client.stream("trades:BTC-KZT").open()
            other.request_stop()
            with pytest.raises(ConnectionLost) as caught:
                await trades.__anext__()
            assert caught.value.code == 1001
            with pytest.raises(ConnectionLost):
                await client.ping()
            assert client.closed
            await client.close()

        run(scenario())
    finally:
        other.stop()


def test_rate_limited_calls_say_how_long_to_wait() -> None:
    """Over the connection's rate a call gets RATE_LIMITED with retry_after_ms."""
    slow = Server(Limits(connection_rate=1.0, connection_burst=2.0)).start()
    try:

        async def scenario() -> None:
            async with Client(slow.url) as client:
                await client.ping()
                await client.ping()
                with pytest.raises(ApiError) as caught:
                    await client.ping()
                assert caught.value.code == "RATE_LIMITED"
                assert caught.value.retry_after_ms is not None
                assert caught.value.retry_after_ms > 0

        run(scenario())
    finally:
        slow.stop()


# -- the example market maker ---------------------------------------------------------------


# The bot imports the SDK as an installed package would; the repository root on the path
# makes that work without an editable install too.
BOT_ENV = {
    **os.environ,
    "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
}


def bot_command(url: str, *extra: str) -> list[str]:
    return [
        sys.executable,
        str(ROOT / "examples" / "market_maker.py"),
        "--url",
        url,
        "--api-key",
        MM1[0],
        "--private-key",
        MM1[1],
        "--requote-interval",
        "0.5",
        *extra,
    ]


def test_market_maker_quotes_requotes_on_a_fill_and_cancels_on_sigterm(server: Server) -> None:
    """The bot quotes both sides, re-quotes after it is filled, and on SIGTERM cancels
    every order it has before it exits."""
    bot = subprocess.Popen(
        bot_command(server.url, "--duration", "60"),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=BOT_ENV,
        text=True,
    )
    try:

        async def scenario() -> None:
            async with (
                await logged_in(server.url, BOB) as bob,
                bob.local_book("USDT-KZT") as book,
            ):
                await book.wait_for(lambda b: len(b.bids) == 3 and len(b.asks) == 3)
                best_ask = book.best_ask()
                assert best_ask is not None
                taken = await bob.place("USDT-KZT", "buy", best_ask[1], best_ask[0], tif="IOC")
                assert taken["status"] == "filled"
                # Re-quoted around the trade: a full ladder again, above what was taken.
                await book.wait_for(
                    lambda b: len(b.asks) == 3 and b.asks[0][0] > best_ask[0] and len(b.bids) == 3
                )
                bot.send_signal(signal.SIGTERM)
                await book.wait_for(lambda b: not b.bids and not b.asks)

        run(scenario())
        output, _ = bot.communicate(timeout=TIMEOUT)
    finally:
        if bot.poll() is None:
            bot.kill()
            bot.communicate()
    assert bot.returncode == 0, output
    assert "fill: sell" in output
    assert re.search(r"exit: canceled 6 orders in USDT-KZT", output), output

    async def after() -> None:
        async with await logged_in(server.url, MM1) as mm:
            assert await mm.open_orders() == []

    run(after())


def test_market_maker_stops_after_its_duration_with_no_orders_left(server: Server) -> None:
    """With --duration the bot runs, stops by itself and leaves no open order."""
    done = subprocess.run(
        bot_command(server.url, "--duration", "1.5", "--levels", "2"),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        env=BOT_ENV,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "exit: canceled 4 orders in USDT-KZT" in done.stdout

    async def after() -> None:
        async with await logged_in(server.url, MM1) as mm:
            assert await mm.open_orders() == []

    run(after())


# -- the protocol document ------------------------------------------------------------------


def test_protocol_doc_covers_every_method_and_error_code() -> None:
    """docs/protocol.md names every wire method and every reject code."""
    text = (ROOT / "docs" / "protocol.md").read_text()
    missing = [m for m in METHODS if f"`{m}`" not in text]
    missing += [c.code for c in all_codes() if f"`{c.code}`" not in text]
    assert not missing, missing


def test_the_sdk_example_in_the_protocol_doc_runs_as_pasted(server: Server) -> None:
    """The SDK example in docs/protocol.md is a whole program: pasted into a file and run
    (against this test's server), it logs in, places its order and prints its state."""
    doc = (ROOT / "docs" / "protocol.md").read_text()
    section = doc[doc.index("## The Python SDK") :]
    start = section.index("```python\n") + len("```python\n")
    program = section[start : section.index("```\n", start)]
    assert 'URL = "ws://127.0.0.1:8765"' in program
    program = program.replace('URL = "ws://127.0.0.1:8765"', f'URL = "{server.url}"')
    done = subprocess.run(
        [sys.executable, "-c", program],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    order_id, status = lines[1].split()
    assert int(order_id) > 0 and status == "new"
    assert "'type': 'order'" in lines[-1] and f"'order_id': {order_id}" in lines[-1]
