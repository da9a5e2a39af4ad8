"""The CCXT class (``gateway.sdk.ccxt_alatau``) against a live ``alatau serve`` with a data
directory, through CCXT's unified methods only: what a CCXT script for another venue calls.

The server runs on its own event loop in a thread (CCXT's sync class blocks); the demo
participants sign with their Ed25519 keys, and an HMAC participant registered by the
operator signs with its secret."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ccxt = pytest.importorskip("ccxt")

from gateway.app import serve as app  # noqa: E402
from gateway.sdk.ccxt_alatau import alatau  # noqa: E402

from .gateway_harness import ADMIN_KEY, KEYS, WAIT_TIMEOUT_S  # noqa: E402

SYMBOL = "BTC/KZT"


class Server:
    """``alatau serve`` in a thread: its websocket and HTTP addresses, and a way to stop."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.ready = threading.Event()
        self.ws_url = ""
        self.http_url = ""
        self.loop: asyncio.AbstractEventLoop | None = None
        self.stop_event: asyncio.Event | None = None
        self.code: int | None = None
        self.thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)

    async def _main(self) -> None:
        self.loop = asyncio.get_running_loop()
        started: asyncio.Future[tuple[str, int]] = self.loop.create_future()
        http_started: asyncio.Future[tuple[str, int]] = self.loop.create_future()
        self.stop_event = asyncio.Event()
        options = app.ServeOptions(
            port=0,
            http_port=0,
            quiet=True,
            admin_key=ADMIN_KEY,
            data_dir=str(self.data_dir),
            durability="buffered",
        )
        task = asyncio.create_task(
            app.serve(options, started=started, stop=self.stop_event, http_started=http_started)
        )
        host, port = await asyncio.wait_for(started, WAIT_TIMEOUT_S)
        http_host, http_port = await asyncio.wait_for(http_started, WAIT_TIMEOUT_S)
        self.ws_url = f"ws://{host}:{port}"
        self.http_url = f"http://{http_host}:{http_port}/api/v1"
        self.ready.set()
        self.code = await task

    def __enter__(self) -> Server:
        self.thread.start()
        assert self.ready.wait(WAIT_TIMEOUT_S)
        return self

    def __exit__(self, *exc: object) -> None:
        assert self.loop is not None and self.stop_event is not None
        self.loop.call_soon_threadsafe(self.stop_event.set)
        self.thread.join(WAIT_TIMEOUT_S)
        assert self.code == 0

    def admin(self, method: str, params: dict[str, Any]) -> Any:
        """One operator call over the websocket API."""
        from websockets.sync.client import connect

        with connect(self.ws_url) as ws:
            for i, (name, args) in enumerate(
                (("auth.admin", {"admin_key": ADMIN_KEY}), (method, params)), 1
            ):
                ws.send(json.dumps({"id": i, "method": name, "params": args}))
                while True:
                    answer = json.loads(ws.recv())
                    if answer.get("id") == i:
                        break
                assert answer["ok"], answer
        return answer["result"]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with Server(tmp_path_factory.mktemp("ccxt")) as running:
        yield running


def exchange(server: Server, name: str | None = None, **config: Any) -> Any:
    """What a CCXT user writes: the class and the URL, with credentials."""
    if name is not None:
        api_key, private = KEYS[name]
        config = {"apiKey": api_key, "secret": private, **config}
    return alatau({"urls": {"api": server.http_url}, **config})


def wait_until(check: Any, timeout: float = 5.0) -> Any:
    """The history database is written behind the venue: poll until ``check()`` is truthy."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.05)


def test_markets_and_public_market_data(server: Server) -> None:
    ex = exchange(server)
    markets = ex.load_markets()
    btc = markets[SYMBOL]
    assert (btc["id"], btc["base"], btc["quote"], btc["spot"], btc["active"]) == (
        "BTC-KZT",
        "BTC",
        "KZT",
        True,
        True,
    )
    assert btc["precision"]["amount"] == 0.00001
    assert btc["precision"]["price"] == 1.0
    assert btc["limits"]["amount"]["min"] == 0.00001
    assert btc["limits"]["cost"]["min"] == 1000.0
    assert btc["taker"] == 0.001
    assert ex.amount_to_precision(SYMBOL, 0.123456789) == "0.12345"
    assert ex.price_to_precision(SYMBOL, 45000000.4) == "45000000"  # to the tick
    assert abs(ex.fetch_time() - ex.milliseconds()) < 60_000
    book = ex.fetch_order_book(SYMBOL, 5)
    assert set(book) >= {"bids", "asks", "nonce", "symbol"} and book["symbol"] == SYMBOL
    assert isinstance(ex.fetch_trades(SYMBOL), list)
    ticker = ex.fetch_ticker(SYMBOL)
    assert ticker["symbol"] == SYMBOL
    tickers = ex.fetch_tickers()
    assert SYMBOL in tickers and "ETH/KZT" in tickers
    with pytest.raises(ccxt.BadSymbol):
        ex.fetch_ticker("NOPE/KZT")
    with pytest.raises(ccxt.BadSymbol):  # a symbol the client's markets lack reaches the venue
        ex.request("ticker", "public", "GET", {"market": "NOPE-KZT"})


def test_limit_order_lifecycle_and_balances(server: Server) -> None:
    bob = exchange(server, "bob")
    bob.load_markets()
    before = bob.fetch_balance()
    assert before["KZT"]["free"] > 0 and before["BTC"]["total"] >= 0
    order = bob.create_order(SYMBOL, "limit", "buy", 0.01, 44_000_000, {"clientOrderId": "c-1"})
    assert (order["status"], order["side"], order["type"]) == ("open", "buy", "limit")
    assert (order["amount"], order["price"], order["filled"]) == (0.01, 44_000_000, 0)
    assert order["clientOrderId"] == "c-1" and order["symbol"] == SYMBOL
    held = bob.fetch_balance()
    assert held["KZT"]["used"] > before["KZT"]["used"]
    assert bob.fetch_order(order["id"], SYMBOL)["status"] == "open"
    assert [o["id"] for o in bob.fetch_open_orders(SYMBOL)] == [order["id"]]
    canceled = bob.cancel_order(order["id"], SYMBOL)
    assert canceled["status"] == "canceled"
    assert bob.fetch_open_orders(SYMBOL) == []
    closed = wait_until(lambda: bob.fetch_closed_orders(SYMBOL))
    assert order["id"] in [o["id"] for o in closed]
    assert bob.fetch_order(order["id"])["status"] == "canceled"
    # post-only and a time in force go through params
    post = bob.create_order(SYMBOL, "limit", "buy", 0.01, 44_000_000, {"postOnly": True})
    assert post["status"] == "open"
    bob.cancel_order(post["id"], SYMBOL)
    ioc = bob.create_order(SYMBOL, "limit", "buy", 0.01, 44_000_000, {"timeInForce": "IOC"})
    assert ioc["status"] == "expired"


def test_two_participants_trade_and_see_their_trades_and_candles(server: Server) -> None:
    mm = exchange(server, "mm1")
    bob = exchange(server, "bob")
    before = len(bob.fetch_my_trades(SYMBOL))
    sell = mm.create_order(SYMBOL, "limit", "sell", 0.02, 45_500_000)
    assert sell["status"] == "open"
    buy = bob.create_order(SYMBOL, "market", "buy", 0.01)
    assert buy["status"] == "closed" and buy["filled"] == 0.01
    assert buy["trades"][0]["price"] == 45_500_000 and buy["trades"][0]["takerOrMaker"] == "taker"
    assert buy["trades"][0]["fee"]["currency"] == "KZT"
    buy2 = bob.create_order(SYMBOL, "limit", "buy", 0.01, 45_500_000)
    assert buy2["status"] == "closed"
    mine = wait_until(lambda: len(bob.fetch_my_trades(SYMBOL)) >= before + 2 or None)
    assert mine
    trades = bob.fetch_my_trades(SYMBOL)
    assert {t["order"] for t in trades} >= {buy["id"], buy2["id"]}
    assert all(t["side"] == "buy" and t["symbol"] == SYMBOL for t in trades)
    mm_trades = wait_until(
        lambda: [t for t in mm.fetch_my_trades(SYMBOL) if t["order"] == sell["id"]]
    )
    assert {t["takerOrMaker"] for t in mm_trades} == {"maker"} and len(mm_trades) == 2
    assert mm.fetch_order(sell["id"], SYMBOL)["status"] == "closed"
    public = mm.fetch_trades(SYMBOL)
    assert {t["id"] for t in trades} <= {t["id"] for t in public}
    ticker = mm.fetch_ticker(SYMBOL)
    assert ticker["last"] == 45_500_000 and ticker["baseVolume"] >= 0.02
    candles = wait_until(lambda: mm.fetch_ohlcv(SYMBOL, "1m"))
    assert candles[-1][4] == 45_500_000 and candles[-1][0] % 60_000 == 0
    for timeframe in ("5m", "15m", "1h", "4h", "1d"):
        assert mm.fetch_ohlcv(SYMBOL, timeframe, limit=10)


def test_hmac_participant_registered_by_the_operator(server: Server) -> None:
    server.admin(
        "admin.participant",
        {
            "participant_id": "carol",
            "category": "PROFESSIONAL",
            "residency": "KZ",
            "kyc_level": 3,
            "api_key": "carol-key",
            "api_secret": "carol-secret",
        },
    )
    server.admin("admin.deposit", {"participant_id": "carol", "asset": "KZT", "amount": "1000000"})
    carol = exchange(server, apiKey="carol-key", secret="carol-secret")
    assert carol.fetch_balance()["KZT"]["free"] == 1_000_000
    order = carol.create_order(SYMBOL, "limit", "buy", 0.001, 44_000_000)
    assert order["status"] == "open"
    assert carol.cancel_order(order["id"], SYMBOL)["status"] == "canceled"
    with pytest.raises(ccxt.InsufficientFunds):
        carol.create_order(SYMBOL, "limit", "buy", 1, 44_000_000)
    wrong = exchange(server, apiKey="carol-key", secret="not-carol-secret")
    with pytest.raises(ccxt.AuthenticationError):
        wrong.fetch_balance()
    ed = exchange(server, apiKey="carol-key", secret="ab" * 32)  # an Ed25519 key: wrong kind
    with pytest.raises(ccxt.AuthenticationError):
        ed.fetch_balance()


def test_errors_map_to_ccxt_exceptions(server: Server) -> None:
    bob = exchange(server, "bob")
    bob.load_markets()
    with pytest.raises(ccxt.OrderNotFound):
        bob.fetch_order("999999")
    with pytest.raises(ccxt.OrderNotFound):
        bob.cancel_order("999999", SYMBOL)
    with pytest.raises(ccxt.InvalidOrder):  # above the per-order maximum of his category
        bob.create_order(SYMBOL, "limit", "buy", 1000, 44_000_000)
    with pytest.raises(ccxt.BadSymbol):
        bob.create_order("DOGE/KZT", "limit", "buy", 1, 1)
    with pytest.raises(ccxt.InvalidOrder):  # below the minimum notional
        bob.create_order(SYMBOL, "limit", "buy", 0.00001, 44_000_000)
    with pytest.raises(ccxt.AuthenticationError):
        exchange(server).fetch_balance()  # no credentials: CCXT refuses before sending
    with pytest.raises(ccxt.AuthenticationError):
        exchange(server, apiKey="demo-bob-key", secret="00" * 32).fetch_balance()


def test_async_class_does_the_same(server: Server) -> None:
    from gateway.sdk.ccxt_alatau import alatau_async

    async def run() -> None:
        api_key, private = KEYS["bob"]
        bob = alatau_async({"urls": {"api": server.http_url}, "apiKey": api_key, "secret": private})
        try:
            await bob.load_markets()
            assert (await bob.fetch_ticker(SYMBOL))["symbol"] == SYMBOL
            assert (await bob.fetch_order_book(SYMBOL))["symbol"] == SYMBOL
            assert (await bob.fetch_balance())["KZT"]["free"] > 0
            order = await bob.create_order(SYMBOL, "limit", "buy", 0.01, 44_000_000)
            assert order["status"] == "open"
            assert [o["id"] for o in await bob.fetch_open_orders(SYMBOL)] == [order["id"]]
            assert (await bob.cancel_order(order["id"], SYMBOL))["status"] == "canceled"
            with pytest.raises(ccxt.OrderNotFound):
                await bob.fetch_order("999999")
        finally:
            await bob.close()

    asyncio.run(run())


def test_a_script_for_another_venue_runs_with_the_id_and_url_changed(server: Server) -> None:
    """The usual CCXT script shape: the exchange found by its id, credentials in the config."""
    exchange_id = "alatau"  # was "binance"
    assert exchange_id in ccxt.exchanges
    api_key, private = KEYS["bob"]
    ex = getattr(ccxt, exchange_id)(
        {
            "apiKey": api_key,
            "secret": private,
            "enableRateLimit": True,
            "urls": {"api": server.http_url},  # was the other venue's URL
        }
    )
    ex.load_markets()
    symbol = "BTC/KZT"
    book = ex.fetch_order_book(symbol)
    assert ex.has["createOrder"] and ex.has["fetchOHLCV"] and not ex.has["withdraw"]
    price = book["bids"][0][0] if book["bids"] else 44_500_000
    order = ex.create_limit_buy_order(symbol, 0.001, price)
    assert ex.fetch_order(order["id"], symbol)["status"] in ("open", "closed")
    if order["status"] == "open":
        ex.cancel_order(order["id"], symbol)
    assert ex.fetch_balance()["total"]["KZT"] > 0
