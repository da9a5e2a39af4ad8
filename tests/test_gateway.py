"""The websocket gateway end to end: a real server, real ``websockets`` clients.

Every test runs its own demo venue (default markets, the shipped participants funded with
the demo balances) on 127.0.0.1, port 0, through ``tests.gateway_harness``.  The client is
written here from the protocol page alone (``/work/shared/spec/protocol.md``), so these
tests also prove that an independent implementation interoperates with the server.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import websockets
from websockets.protocol import State

from engine.reject import BY_CODE
from gateway.app.serve import ServeOptions, serve
from gateway.sessions.session import Limits
from gateway.wire.auth import sign

from .gateway_harness import (
    ADMIN_KEY,
    KEYS,
    Client,
    RunningVenue,
    async_test,
    login_params,
    running_venue,
    trades_of,
    wait_until,
)

BTC = "BTC-KZT"
ETH = "ETH-KZT"
REF = {BTC: 45_000_000, ETH: 1_700_000}  # the shipped reference prices (KZT)

ORDER_FIELDS = {
    "order_id",
    "client_order_id",
    "market",
    "side",
    "order_type",
    "price",
    "qty",
    "filled_qty",
    "remaining_qty",
    "status",
    "ts",
    "fills",
}
FILL_FIELDS = {
    "order_id",
    "client_order_id",
    "market",
    "side",
    "trade_id",
    "fill_price",
    "fill_qty",
    "fee",
    "fee_asset",
    "liquidity",
    "filled_qty",
    "remaining_qty",
    "status",
    "ts",
}
MARKET_FIELDS = {
    "symbol",
    "base",
    "quote",
    "tick",
    "lot",
    "min_qty",
    "min_notional",
    "band_bps",
    "maker_fee_ppm",
    "taker_fee_ppm",
    "reference_price",
    "status",
}
MM1_LICENSE = {
    "license_id": "MM1-AFSA",
    "regulator": "AFSA",
    "number": "DEMO-AFSA-MM-2026-0017",
    "activities": ["market_making", "trading"],
    "markets": "*",
    "valid_from": "2026-01-01",
    "valid_to": "2028-12-31",
}


@pytest.fixture(autouse=True, params=["picows", "websockets"])
def transport(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every wire test runs on both server transports, with real websockets clients."""
    monkeypatch.setenv("ALATAU_TRANSPORT", request.param)
    return request.param


def limit(side: str, price: int | str, qty: str, market: str = BTC, **extra: Any) -> dict:
    return {"market": market, "side": side, "price": str(price), "qty": qty, **extra}


def assert_order(result: dict, **expected: Any) -> None:
    """An order result has exactly the documented fields, and these values."""
    assert set(result) - {"reason", "message"} == ORDER_FIELDS, result
    assert isinstance(result["order_id"], int) and isinstance(result["ts"], int)
    for fill in result["fills"]:
        assert set(fill) == FILL_FIELDS, fill
    for key, value in expected.items():
        assert result[key] == value, (key, result)


async def barrier(client: Client) -> None:
    """A sequenced no-op round trip: once it is answered, every command submitted before it
    (by any session) has been executed and published."""
    error = await client.error("order.cancel", {"market": BTC, "order_id": 2**62})
    assert error["code"] == "UNKNOWN_ORDER"


async def open_ids(client: Client, market: str | None = None) -> set[int]:
    params = {} if market is None else {"market": market}
    return {o["order_id"] for o in (await client.ok("orders.open", params))["orders"]}


# -- the order as it stands after the command ------------------------------------------------


@async_test
async def test_an_order_that_trades_on_entry_and_rests_is_answered_partially_filled() -> None:
    """A bot trusts the acknowledgement: a limit order that partly fills on entry and rests
    is answered ``partially_filled`` with what it filled, in ``order.place`` and in each
    ``order.batch`` item, and its ``orders`` stream shows the state after every fill."""
    async with running_venue() as v:
        mm1, bob = await v.login("mm1"), await v.login("bob")
        await bob.ok("subscribe", {"channels": ["orders"]})
        await mm1.ok("subscribe", {"channels": ["orders"]})
        await mm1.ok("order.place", limit("sell", 45_000_000, "0.004"))

        placed = await bob.ok("order.place", limit("buy", 45_000_000, "0.01"))
        assert_order(
            placed,
            status="partially_filled",
            filled_qty="0.00400000",
            remaining_qty="0.00600000",
        )
        assert [f["status"] for f in placed["fills"]] == ["partially_filled"]

        await mm1.ok("order.place", limit("sell", 1_700_000, "0.2", ETH))
        (item,) = await bob.ok("order.batch", {"orders": [limit("buy", 1_700_000, "0.5", ETH)]})
        assert item["ok"] is True
        assert item["result"]["status"] == "partially_filled"
        assert item["result"]["filled_qty"] < item["result"]["qty"]
        assert len(item["result"]["fills"]) == 1

        # the resting remainder fills as a maker: the stream says partially, then filled
        await mm1.ok("order.place", limit("sell", 45_000_000, "0.002", tif="IOC"))
        await mm1.ok("order.place", limit("sell", 45_000_000, "0.004", tif="IOC"))
        await barrier(bob)
        fills = [
            (m["data"]["filled_qty"], m["data"]["remaining_qty"], m["data"]["status"])
            for m in bob.streams["orders"]
            if m["data"]["type"] == "fill" and m["data"]["order_id"] == placed["order_id"]
        ]
        assert fills == [
            ("0.00400000", "0.00600000", "partially_filled"),
            ("0.00600000", "0.00400000", "partially_filled"),
            ("0.01000000", "0.00000000", "filled"),
        ]
        # the maker's fills carry its state too
        maker = [m["data"]["status"] for m in mm1.streams["orders"] if m["data"]["type"] == "fill"]
        assert maker[:2] == ["filled", "filled"]


@async_test
async def test_a_crossing_amend_is_answered_with_the_state_after_its_fills() -> None:
    async with running_venue() as v:
        mm1, bob = await v.login("mm1"), await v.login("bob")
        resting = await bob.ok("order.place", limit("buy", 44_000_000, "0.01"))
        await mm1.ok("order.place", limit("sell", 45_000_000, "0.003"))
        moved = await bob.ok(
            "order.amend",
            {"market": BTC, "order_id": resting["order_id"], "price": "45000000"},
        )
        assert_order(
            moved,
            order_id=resting["order_id"],
            status="partially_filled",
            filled_qty="0.00300000",
            remaining_qty="0.00700000",
        )
        order = v.exchange._orders[resting["order_id"]]
        assert order.filled_qty == 300_000  # the engine agrees with the answer


# -- the demo server as `alatau serve` runs it ------------------------------------------------


@async_test
async def test_app_serve_runs_the_demo_venue() -> None:
    """``gateway.app.serve`` on port 0: a newcomer logs in with a demo key and trades."""
    started: asyncio.Future = asyncio.get_running_loop().create_future()
    stop = asyncio.Event()
    options = ServeOptions(port=0, quiet=True, admin_key=ADMIN_KEY, limits=Limits())
    server = asyncio.create_task(serve(options, started=started, stop=stop))
    host, port = await asyncio.wait_for(started, 10)
    client = Client(await websockets.connect(f"ws://{host}:{port}"))
    client.start_reading()
    try:
        markets = await client.ok("markets.list")
        assert [m["symbol"] for m in markets] == [BTC, ETH, "USDT-KZT", "USDC-KZT"]
        assert (await client.ok("auth.login", login_params("alice")))["participant"] == "alice"
        placed = await client.ok("order.place", limit("buy", 44_000_000, "0.0001"))
        assert_order(placed, status="new")
        admin = await client.call("auth.admin", {"admin_key": ADMIN_KEY})
        assert admin["ok"] is True
    finally:
        await client.close()
        stop.set()
        assert await asyncio.wait_for(server, 10) == 0


# -- every method, with its success result ---------------------------------------------------


@async_test
async def test_login_and_markets_list() -> None:
    async with running_venue() as v:
        client = await v.connect()
        response = await client.call("auth.login", login_params("bob"), request_id="login-1")
        assert response == {
            "id": "login-1",
            "ok": True,
            "result": {
                "participant": "bob",
                "category": "PROFESSIONAL",
                "permissions": ["trade", "read"],
            },
        }
        markets = await client.ok("markets.list")
        assert len(markets) == 4
        for market in markets:
            assert set(market) == MARKET_FIELDS, market
            assert market["quote"] == "KZT" and market["status"] == "open"
        btc = next(m for m in markets if m["symbol"] == BTC)
        assert btc["base"] == "BTC"
        assert (btc["tick"], btc["lot"], btc["min_qty"]) == ("1.00", "0.00001000", "0.00001000")
        assert (btc["min_notional"], btc["reference_price"]) == ("1000.00", "45000000.00")
        assert (btc["band_bps"], btc["maker_fee_ppm"], btc["taker_fee_ppm"]) == (1000, 1000, 1000)
        # markets.list is public: no login needed
        assert len(await (await v.connect()).ok("markets.list")) == 4


@async_test
async def test_ping() -> None:
    async with running_venue() as v:
        client = await v.connect()
        before = int(time.time() * 1000)
        response = await client.call("ping", request_id=99)
        assert response["id"] == 99 and response["ok"] is True
        assert response["result"]["pong"] is True
        assert abs(response["result"]["time"] - before) < 60_000
        # params may be omitted or empty
        assert (await client.call("ping", {}))["ok"] is True


@async_test
async def test_place_limit_market_ioc_fok_and_post_only() -> None:
    async with running_venue() as v:
        mm1, bob = await v.login("mm1"), await v.login("bob")
        await mm1.ok("subscribe", {"channels": ["orders"]})

        # limit GTC rests
        ask = await mm1.ok(
            "order.place", limit("sell", 45_000_000, "0.01", client_order_id="mm-ask-1")
        )
        assert_order(
            ask,
            status="new",
            order_type="limit",
            side="sell",
            market=BTC,
            client_order_id="mm-ask-1",
            price="45000000.00",
            qty="0.01000000",
            filled_qty="0.00000000",
            remaining_qty="0.01000000",
            fills=[],
        )
        # post-only that does not cross rests
        post = await mm1.ok("order.place", limit("sell", 45_001_000, "0.01", post_only=True))
        assert_order(post, status="new", fills=[])

        # market buy: takes 0.004 at the best ask
        market = await bob.ok(
            "order.place", {"market": BTC, "side": "buy", "type": "market", "qty": "0.004"}
        )
        assert_order(market, status="filled", order_type="market", price=None)
        assert market["filled_qty"] == "0.00400000" and market["remaining_qty"] == "0.00000000"
        (fill,) = market["fills"]
        assert fill["fill_price"] == "45000000.00" and fill["fill_qty"] == "0.00400000"
        assert (fill["liquidity"], fill["fee"], fill["fee_asset"]) == ("taker", "180.00", "KZT")

        # IOC: 0.006 left at 45M and 0.01 at 45.001M; an IOC for 0.01 up to 45M fills 0.006
        ioc = await bob.ok("order.place", limit("buy", 45_000_000, "0.01", tif="IOC"))
        assert_order(ioc, status="expired", filled_qty="0.00600000", remaining_qty="0.00000000")
        assert [f["fill_qty"] for f in ioc["fills"]] == ["0.00600000"]

        # FOK that cannot fill entirely: expires with nothing traded
        fok = await bob.ok("order.place", limit("buy", 45_001_000, "0.02", tif="FOK"))
        assert_order(fok, status="expired", filled_qty="0.00000000", fills=[])
        # FOK that can: filled
        fok = await bob.ok("order.place", limit("buy", 45_001_000, "0.01", tif="FOK"))
        assert_order(fok, status="filled", filled_qty="0.01000000")
        assert [f["fill_price"] for f in fok["fills"]] == ["45001000.00"]

        # the maker saw its fills, with liquidity maker, on its orders stream
        await barrier(mm1)
        maker_fills = [m["data"] for m in mm1.streams["orders"] if m["data"]["type"] == "fill"]
        assert [(f["order_id"], f["fill_qty"], f["liquidity"]) for f in maker_fills] == [
            (ask["order_id"], "0.00400000", "maker"),
            (ask["order_id"], "0.00600000", "maker"),
            (post["order_id"], "0.01000000", "maker"),
        ]
        assert all(f["fee"] != "0.00" for f in maker_fills)
        assert await open_ids(mm1) == set()


@async_test
async def test_cancel_by_order_id_and_by_client_order_id() -> None:
    async with running_venue() as v:
        bob = await v.login("bob")
        a = await bob.ok("order.place", limit("buy", 44_000_000, "0.01"))
        b = await bob.ok("order.place", limit("buy", 44_000_001, "0.01", client_order_id="b.1"))
        canceled = await bob.ok("order.cancel", {"market": BTC, "order_id": a["order_id"]})
        assert set(canceled) - {"reason", "message"} == ORDER_FIELDS
        assert (canceled["order_id"], canceled["status"]) == (a["order_id"], "canceled")
        assert canceled["remaining_qty"] == "0.00000000"
        canceled = await bob.ok("order.cancel", {"market": BTC, "client_order_id": "b.1"})
        assert (canceled["order_id"], canceled["status"]) == (b["order_id"], "canceled")
        assert canceled["client_order_id"] == "b.1"
        assert await open_ids(bob) == set()
        # a client_order_id is free again once its order is closed
        again = await bob.ok("order.place", limit("buy", 44_000_000, "0.01", client_order_id="b.1"))
        assert again["status"] == "new"


@async_test
async def test_amend_keeps_priority_only_for_a_quantity_decrease() -> None:
    async with running_venue() as v:
        bob, mm1 = await v.login("bob"), await v.login("mm1")
        first = await bob.ok("order.place", limit("sell", 45_000_000, "0.01", client_order_id="f"))
        second = await bob.ok("order.place", limit("sell", 45_000_000, "0.01"))

        # a pure quantity decrease keeps time priority
        amended = await bob.ok(
            "order.amend", {"market": BTC, "order_id": first["order_id"], "qty": "0.005"}
        )
        assert_order(amended, order_id=first["order_id"], qty="0.00500000", status="new")
        taken = await mm1.ok("order.place", limit("buy", 45_000_000, "0.001", tif="IOC"))
        assert [f["trade_id"] for f in taken["fills"]]
        maker = (await bob.ok("orders.open", {"market": BTC}))["orders"]
        by_id = {o["order_id"]: o for o in maker}
        assert by_id[first["order_id"]]["filled_qty"] == "0.00100000"
        assert by_id[second["order_id"]]["filled_qty"] == "0.00000000"

        # an increase (by client_order_id) loses it: the other order now trades first
        amended = await bob.ok(
            "order.amend", {"market": BTC, "client_order_id": "f", "qty": "0.02"}
        )
        assert_order(
            amended, order_id=first["order_id"], qty="0.02000000", status="partially_filled"
        )
        await mm1.ok("order.place", limit("buy", 45_000_000, "0.001", tif="IOC"))
        by_id = {o["order_id"]: o for o in (await bob.ok("orders.open", {"market": BTC}))["orders"]}
        assert by_id[second["order_id"]]["filled_qty"] == "0.00100000"
        assert by_id[first["order_id"]]["filled_qty"] == "0.00100000"

        # a price change: the order moves, and may trade (its fills come with the answer)
        await mm1.ok("order.place", limit("buy", 44_990_000, "0.003"))
        moved = await bob.ok(
            "order.amend", {"market": BTC, "order_id": second["order_id"], "price": "44990000"}
        )
        assert moved["price"] == "44990000.00"
        assert [f["fill_qty"] for f in moved["fills"]] == ["0.00300000"]
        assert moved["fills"][0]["liquidity"] == "taker"


@async_test
async def test_cancel_all_with_market_and_side_filters() -> None:
    async with running_venue() as v:
        bob, other = await v.login("bob"), await v.login("mm1")
        ids = {}
        for name, params in {
            "btc-buy": limit("buy", 44_000_000, "0.01"),
            "btc-sell": limit("sell", 46_000_000, "0.01"),
            "eth-buy": limit("buy", 1_650_000, "0.1", market=ETH),
            "eth-sell": limit("sell", 1_750_000, "0.1", market=ETH),
        }.items():
            ids[name] = (await bob.ok("order.place", params))["order_id"]
        kept = (await other.ok("order.place", limit("buy", 44_000_000, "0.01")))["order_id"]

        result = await bob.ok("order.cancel_all", {"market": ETH, "side": "sell"})
        assert result == {"count": 1, "order_ids": [ids["eth-sell"]]}
        result = await bob.ok("order.cancel_all", {"market": BTC})
        assert result["count"] == 2
        assert sorted(result["order_ids"]) == sorted([ids["btc-buy"], ids["btc-sell"]])
        result = await bob.ok("order.cancel_all")
        assert result == {"count": 1, "order_ids": [ids["eth-buy"]]}
        assert await bob.ok("order.cancel_all", {}) == {"count": 0, "order_ids": []}
        # another participant's orders are untouched
        assert await open_ids(other) == {kept}


@async_test
async def test_self_trade_prevention_reports_what_it_canceled() -> None:
    async with running_venue() as v:
        bob = await v.login("bob")
        await bob.ok("subscribe", {"channels": ["orders"]})
        outcomes = {}
        for stp in ("cancel_newest", "cancel_oldest", "cancel_both"):
            resting = await bob.ok("order.place", limit("sell", 45_000_000, "0.01"))
            taker = await bob.ok("order.place", limit("buy", 45_000_000, "0.01", stp=stp))
            assert taker["fills"] == []
            still_open = await open_ids(bob)
            outcomes[stp] = (
                taker["status"],
                taker.get("reason"),
                resting["order_id"] in still_open,
                taker["order_id"] in still_open,
            )
            await bob.ok("order.cancel_all")
        assert outcomes == {
            "cancel_newest": ("canceled", "self_trade", True, False),
            "cancel_oldest": ("new", None, False, True),
            "cancel_both": ("canceled", "self_trade", False, False),
        }
        await barrier(bob)
        self_trade = [
            m["data"]["order_id"]
            for m in bob.streams["orders"]
            if m["data"].get("reason") == "self_trade"
        ]
        assert len(self_trade) == 4  # newest; oldest; both of the last pair
        assert not [m for m in bob.streams["orders"] if m["data"]["type"] == "fill"]


@async_test
async def test_batch_answers_each_order_in_order() -> None:
    async with running_venue() as v:
        mm1, bob = await v.login("mm1"), await v.login("bob")
        await bob.ok("order.place", limit("sell", 46_000_000, "0.005"))
        orders = [
            limit("buy", 44_000_000, "0.01", client_order_id="one"),
            limit("buy", "44000000.5", "0.01"),  # INVALID_TICK
            limit("buy", 44_000_000, "0.01", market="DOGE-KZT"),  # UNKNOWN_MARKET
            limit("sell", 46_100_000, "0.02", client_order_id="two"),
            limit("sell", 46_000_000, "5000"),  # INSUFFICIENT_FUNDS (mm1 has 100 BTC)
            limit("buy", 44_000_001, "0.01", client_order_id="one"),  # DUPLICATE of the 1st
            limit("buy", 46_000_000, "0.005", tif="IOC"),  # trades with bob's ask
            {"market": BTC, "side": "buy", "type": "market", "qty": "0.001", "price": "1"},
        ]
        results = await mm1.ok("order.batch", {"orders": orders})
        assert len(results) == len(orders)
        assert [r["ok"] for r in results] == [True, False, False, True, False, False, True, False]
        assert [r["error"]["code"] for r in results if not r["ok"]] == [
            "INVALID_TICK",
            "UNKNOWN_MARKET",
            "INSUFFICIENT_FUNDS",
            "DUPLICATE_CLIENT_ORDER_ID",
            "INVALID_PARAMS",
        ]
        for r in results:
            assert set(r) == ({"ok", "result"} if r["ok"] else {"ok", "error"})
            if not r["ok"]:
                assert set(r["error"]) == {"code", "message"}
        assert_order(results[0]["result"], client_order_id="one", status="new")
        assert_order(results[3]["result"], client_order_id="two", status="new")
        ioc = results[6]["result"]
        assert_order(ioc, status="filled", filled_qty="0.00500000")
        assert ioc["fills"][0]["fill_price"] == "46000000.00"
        assert await open_ids(mm1) == {
            results[0]["result"]["order_id"],
            results[3]["result"]["order_id"],
        }
        # more than 50 orders is a bad request, not a partial batch
        error = await mm1.error("order.batch", {"orders": [orders[0]] * 51})
        assert error["code"] == "INVALID_PARAMS" and "$.params.orders" in error["message"]
        # a batch of only bad orders still answers each
        results = await mm1.ok("order.batch", {"orders": [orders[1], orders[2]]})
        assert [r["error"]["code"] for r in results] == ["INVALID_TICK", "UNKNOWN_MARKET"]


@async_test
async def test_cancel_batch_answers_each_cancel_in_order() -> None:
    async with running_venue() as v:
        mm1, bob = await v.login("mm1"), await v.login("bob")
        placed = await mm1.ok(
            "order.batch",
            {
                "orders": [
                    limit("buy", 44_000_000, "0.01", client_order_id="a"),
                    limit("buy", 44_100_000, "0.01"),
                    limit("sell", 46_000_000, "0.01"),
                ]
            },
        )
        _, b, c = (item["result"]["order_id"] for item in placed)
        bobs = await bob.ok("order.place", limit("buy", 43_000_000, "0.01"))
        cancels = [
            {"market": BTC, "client_order_id": "a"},
            {"market": BTC, "order_id": b},
            {"market": BTC, "order_id": b},  # already canceled by the item before
            {"market": BTC, "order_id": bobs["order_id"]},  # not mm1's
            {"market": "DOGE-KZT", "order_id": c},  # UNKNOWN_MARKET
            {"market": BTC},  # neither id
        ]
        results = await mm1.ok("order.cancel_batch", {"orders": cancels})
        assert [r["ok"] for r in results] == [True, True, False, False, False, False]
        assert [r["error"]["code"] for r in results if not r["ok"]] == [
            "UNKNOWN_ORDER",
            "UNKNOWN_ORDER",
            "UNKNOWN_MARKET",
            "INVALID_PARAMS",
        ]
        assert_order(results[0]["result"], client_order_id="a", status="canceled")
        assert results[1]["result"]["order_id"] == b
        assert results[1]["result"]["status"] == "canceled"
        # what was not canceled is still open, on both sides
        assert await open_ids(mm1) == {c}
        assert await open_ids(bob) == {bobs["order_id"]}
        for orders in ([], [{"market": BTC, "order_id": c}] * 51):  # 1 to 50 cancels
            error = await mm1.error("order.cancel_batch", {"orders": orders})
            assert error["code"] == "INVALID_PARAMS" and "$.params.orders" in error["message"]
        assert await open_ids(mm1) == {c}  # a refused batch cancels nothing


@async_test
async def test_queries_are_answered_in_sequence_with_the_orders_before_them() -> None:
    """A pipelined place, then orders.open and account.balances: the answers include the
    order and its hold, because queries go through the command stream in order."""
    async with running_venue() as v:
        bob = await v.login("bob")
        placed = await bob.send("order.place", limit("buy", 44_000_000, "0.01"))
        listed = await bob.send("orders.open")
        balances = await bob.send("account.balances")
        canceled = await bob.send("order.cancel_all")
        after = await bob.send("orders.open")
        order_id = (await placed)["result"]["order_id"]
        assert [o["order_id"] for o in (await listed)["result"]["orders"]] == [order_id]
        kzt = next(b for b in (await balances)["result"] if b["asset"] == "KZT")
        assert kzt["held"] == "440440.00"  # the order's cost at its limit plus the top fee
        assert (await canceled)["result"]["order_ids"] == [order_id]
        assert (await after)["result"] == {"orders": [], "next": None}


@async_test
async def test_orders_open_and_account_balances() -> None:
    async with running_venue() as v:
        bob = await v.login("bob")
        assert (await bob.ok("orders.open"))["orders"] == []
        balances = {b["asset"]: b for b in await bob.ok("account.balances")}
        assert set(balances) == {"KZT", "BTC", "ETH", "USDT", "USDC"}
        for row in balances.values():
            assert set(row) == {"asset", "total", "available", "held"}
        assert balances["KZT"] == {
            "asset": "KZT",
            "total": "1000000000.00",
            "available": "1000000000.00",
            "held": "0.00",
        }
        buy = await bob.ok("order.place", limit("buy", 44_000_000, "0.01"))
        sell = await bob.ok("order.place", limit("sell", 1_800_000, "1", market=ETH))
        everything = (await bob.ok("orders.open"))["orders"]
        assert {o["order_id"] for o in everything} == {buy["order_id"], sell["order_id"]}
        for order in everything:
            # (orders.open keeps the stream's "type": "order"; the other answers drop it)
            assert set(order) - {"reason", "message", "type"} == ORDER_FIELDS - {"fills"}
        (eth,) = (await bob.ok("orders.open", {"market": ETH}))["orders"]
        assert (eth["order_id"], eth["status"], eth["price"]) == (
            sell["order_id"],
            "new",
            "1800000.00",
        )
        balances = {b["asset"]: b for b in await bob.ok("account.balances")}
        # a buy holds its cost at the limit plus the largest fee: 440000 + 440 KZT
        assert balances["KZT"]["held"] == "440440.00"
        assert balances["KZT"]["available"] == "999559560.00"
        assert balances["ETH"]["held"] == "1.00000000"
        assert balances["ETH"]["total"] == "1000.00000000"


@async_test
async def test_subscribe_snapshot_updates_and_unsubscribe() -> None:
    async with running_venue() as v:
        mm1 = await v.login("mm1")
        await mm1.ok("order.place", limit("sell", 45_100_000, "0.5"))
        await mm1.ok("order.place", limit("buy", 44_900_000, "0.25"))
        await mm1.ok("order.place", limit("buy", 44_800_000, "0.25"))
        watcher = await v.connect()
        channels = [f"book:{BTC}", f"trades:{BTC}"]
        assert await watcher.ok("subscribe", {"channels": channels}) == {"channels": channels}
        await wait_until(lambda: bool(watcher.streams[f"book:{BTC}"]), what="a snapshot")
        (snapshot,) = watcher.streams[f"book:{BTC}"]
        assert snapshot == {
            "channel": "book",
            "market": BTC,
            "seq": v.book_seq(BTC),
            "data": {
                "type": "snapshot",
                "bids": [["44900000.00", "0.25000000"], ["44800000.00", "0.25000000"]],
                "asks": [["45100000.00", "0.50000000"]],
            },
        }
        bob = await v.login("bob")
        await bob.ok("subscribe", {"channels": ["orders"]})
        taken = await bob.ok("order.place", limit("buy", 45_100_000, "0.1"))
        await watcher.wait_book_seq(BTC, v.book_seq(BTC))
        update = watcher.streams[f"book:{BTC}"][-1]
        assert update["first_seq"] == update["seq"] == snapshot["seq"] + 1  # one change
        assert update["data"] == {
            "type": "update",
            "bids": [],
            "asks": [["45100000.00", "0.40000000"]],
        }
        trades = await watcher.wait_stream(f"trades:{BTC}", lambda ms: len(ms) == 1)
        assert trades[0]["channel"] == "trades" and trades[0]["market"] == BTC
        (trade,) = trades[0]["data"]
        assert set(trade) == {"trade_id", "price", "qty", "taker_side", "ts"}
        assert (trade["price"], trade["qty"], trade["taker_side"]) == (
            "45100000.00",
            "0.10000000",
            "buy",
        )
        assert trade["trade_id"] == taken["fills"][0]["trade_id"]
        # the private stream: accepted, fill, filled, then the balances
        kinds = [(m["data"]["type"], m["data"].get("status")) for m in bob.streams["orders"]]
        assert kinds[:3] == [("order", "new"), ("fill", "filled"), ("order", "filled")]
        assert {k for k, _ in kinds[3:]} == {"balance"}

        # unsubscribe: no more book messages for this client
        assert await watcher.ok("unsubscribe", {"channels": [f"book:{BTC}"]}) == {
            "channels": [f"trades:{BTC}"]
        }
        seen = len(watcher.streams[f"book:{BTC}"])
        await mm1.ok("order.place", limit("sell", 45_200_000, "0.1"))
        await barrier(mm1)
        await watcher.ping()
        assert len(watcher.streams[f"book:{BTC}"]) == seen
        # subscribing again gives a fresh snapshot at the engine's seq
        await watcher.ok("subscribe", {"channels": [f"book:{BTC}"]})
        await wait_until(lambda: len(watcher.streams[f"book:{BTC}"]) == seen + 1)
        again = watcher.streams[f"book:{BTC}"][-1]
        assert again["data"]["type"] == "snapshot" and again["seq"] == v.book_seq(BTC)
        assert snapshot_levels(again) == v.depth(BTC)


def snapshot_levels(snapshot: dict) -> dict[str, dict[str, str]]:
    return {side: dict(map(tuple, snapshot["data"][side])) for side in ("bids", "asks")}


@async_test
async def test_session_settings_answer_their_values() -> None:
    async with running_venue() as v:
        bob = await v.login("bob")
        assert await bob.ok("session.cancel_on_disconnect", {"enabled": True}) == {"enabled": True}
        assert await bob.ok("session.cancel_on_disconnect", {"enabled": False}) == {
            "enabled": False
        }
        assert await bob.ok("session.cancel_all_after", {"timeout_ms": 60_000}) == {
            "timeout_ms": 60_000
        }
        assert await bob.ok("session.cancel_all_after", {"timeout_ms": 0}) == {"timeout_ms": 0}


@async_test
async def test_admin_methods() -> None:
    async with running_venue() as v:
        admin = await v.connect()
        assert await admin.call("auth.admin", {"admin_key": ADMIN_KEY}) == {
            "id": 1,
            "ok": True,
            "result": {"admin": True},
        }
        bob = await v.login("bob")

        # deposit and withdraw
        result = await admin.ok(
            "admin.deposit", {"participant_id": "bob", "asset": "BTC", "amount": "1.5"}
        )
        assert list(result) == ["applied"] and len(result["applied"]) == 1
        balances = {b["asset"]: b for b in await bob.ok("account.balances")}
        assert balances["BTC"]["total"] == "101.50000000"
        await admin.ok("admin.withdraw", {"participant_id": "bob", "asset": "BTC", "amount": "0.5"})
        balances = {b["asset"]: b for b in await bob.ok("account.balances")}
        assert balances["BTC"]["total"] == "101.00000000"
        error = await admin.error(
            "admin.withdraw", {"participant_id": "bob", "asset": "BTC", "amount": "1000"}
        )
        assert error["code"] == "INSUFFICIENT_FUNDS"
        error = await admin.error(
            "admin.deposit", {"participant_id": "bob", "asset": "DOGE", "amount": "1"}
        )
        assert error["code"] == "UNKNOWN_ASSET"

        # a new participant, funded, logs in and trades
        params = {
            "participant_id": "carol",
            "category": "PROFESSIONAL",
            "residency": "KZ",
            "kyc_level": 3,
            "status": "active",
            "api_key": "carol-key",
            "api_secret": "carol-secret",
            "limits": {"max_open_orders": 10},
        }
        assert len((await admin.ok("admin.participant", params))["applied"]) == 1
        await admin.ok(
            "admin.deposit", {"participant_id": "carol", "asset": "KZT", "amount": "1000000"}
        )
        carol = await v.connect()
        ts = int(time.time() * 1000)
        login = {
            "api_key": "carol-key",
            "timestamp": ts,
            "signature": sign("carol-secret", "carol-key", ts),
        }
        assert (await carol.ok("auth.login", login))["participant"] == "carol"
        assert (await carol.ok("order.place", limit("buy", 44_000_000, "0.01")))["status"] == "new"
        bad = dict(params, category="ALIEN")
        assert (await admin.error("admin.participant", bad))["code"] == "INVALID_PARAMS"

        # market status and reference price
        result = await admin.ok(
            "admin.market", {"market": ETH, "status": "open", "reference_price": "1800000"}
        )
        assert len(result["applied"]) == 1
        eth = next(m for m in await bob.ok("markets.list") if m["symbol"] == ETH)
        assert eth["reference_price"] == "1800000.00"

        # a licence: replaced with new dates, still active
        result = await admin.ok("admin.license", dict(MM1_LICENSE, status="ACTIVE"))
        assert len(result["applied"]) == 1
        bad = dict(MM1_LICENSE, regulator=17)
        assert (await admin.error("admin.license", bad))["code"] == "INVALID_PARAMS"
        await admin.ping()


# -- every error code reachable through the wire ---------------------------------------------

Case = Callable[[RunningVenue], Awaitable[tuple[Client, dict]]]
CASES: dict[str, Case] = {}


def case(name: str) -> Callable[[Case], Case]:
    def register(fn: Case) -> Case:
        CASES[name] = fn
        return fn

    return register


@case("INVALID_REQUEST: not JSON")
async def _not_json(v: RunningVenue) -> tuple[Client, dict]:
    client = await v.connect()
    response = await client.raw('{"id": 1, "method": "ping"')
    assert response["id"] is None
    return client, response["error"]


@case("INVALID_REQUEST: not an object")
async def _not_object(v: RunningVenue) -> tuple[Client, dict]:
    client = await v.connect()
    response = await client.raw('[{"id": 1, "method": "ping"}]')
    return client, response["error"]


@case("INVALID_REQUEST: binary frame")
async def _binary(v: RunningVenue) -> tuple[Client, dict]:
    client = await v.connect()
    response = await client.raw(b'{"id": 1, "method": "ping"}')
    return client, response["error"]


@case("INVALID_REQUEST: no method")
async def _no_method(v: RunningVenue) -> tuple[Client, dict]:
    client = await v.connect()
    response = await client.raw('{"id": 5, "params": {}}')
    assert response["id"] == 5
    return client, response["error"]


@case("UNKNOWN_METHOD")
async def _unknown_method(v: RunningVenue) -> tuple[Client, dict]:
    client = await v.connect()
    response = await client.call("order.nuke", {}, request_id="x-1")
    assert response["id"] == "x-1"  # the id is echoed with the error
    assert "order.nuke" in response["error"]["message"]
    return client, response["error"]


@case("INVALID_PARAMS: wrong type")
async def _wrong_type(v: RunningVenue) -> tuple[Client, dict]:
    client = await v.login("bob")
    error = await client.error(
        "order.place", {"market": BTC, "side": "buy", "qty": 1, "price": "1"}
    )
    assert "$.params.qty" in error["message"]
    return client, error


@case("INVALID_PARAMS: bad value")
async def _bad_value(v: RunningVenue) -> tuple[Client, dict]:
    client = await v.login("bob")
    error = await client.error("order.place", limit("hold", 45_000_000, "0.01"))
    assert "$.params.side" in error["message"]
    return client, error


@case("INVALID_PARAMS: missing field")
async def _missing(v: RunningVenue) -> tuple[Client, dict]:
    client = await v.login("bob")
    error = await client.error("order.cancel", {"order_id": 1})
    assert "market" in error["message"] and "$.params" in error["message"]
    return client, error


@case("INVALID_PARAMS: unknown field")
async def _unknown_field(v: RunningVenue) -> tuple[Client, dict]:
    client = await v.login("bob")
    error = await client.error("order.place", limit("buy", 45_000_000, "0.01", leverage=10))
    assert "leverage" in error["message"]
    return client, error


@case("INVALID_PARAMS: nested in a batch")
async def _batch_path(v: RunningVenue) -> tuple[Client, dict]:
    client = await v.login("bob")
    orders = [limit("buy", 45_000_000, "0.01"), limit("buy", 45_000_000, "0.01", tif="GTD")]
    error = await client.error("order.batch", {"orders": orders})
    assert "$.params.orders[1].tif" in error["message"]
    return client, error


@case("INVALID_PARAMS: limit order without price")
async def _no_price(v: RunningVenue) -> tuple[Client, dict]:
    client = await v.login("bob")
    error = await client.error("order.place", {"market": BTC, "side": "buy", "qty": "0.01"})
    assert "price" in error["message"]
    return client, error


@case("INVALID_PARAMS: unknown channel")
async def _bad_channel(v: RunningVenue) -> tuple[Client, dict]:
    client = await v.connect()
    error = await client.error("subscribe", {"channels": [f"book:{BTC}", "candles:BTC-KZT"]})
    assert "candles:BTC-KZT" in error["message"]
    assert await client.ok("unsubscribe", {"channels": [f"book:{BTC}"]}) == {"channels": []}
    return client, error


@case("UNAUTHENTICATED: order entry")
async def _unauthenticated(v: RunningVenue) -> tuple[Client, dict]:
    client = await v.connect()
    error = await client.error("order.place", limit("buy", 45_000_000, "0.01"))
    assert v.exchange.open_orders("bob") == []
    return client, error


@case("UNAUTHENTICATED: private data")
async def _unauthenticated_read(v: RunningVenue) -> tuple[Client, dict]:
    client = await v.connect()
    for method in ("orders.open", "account.balances", "session.cancel_on_disconnect"):
        params = {"enabled": True} if method.startswith("session") else None
        assert (await client.error(method, params))["code"] == "UNAUTHENTICATED"
    return client, await client.error("subscribe", {"channels": ["orders"]})


@case("UNAUTHENTICATED: admin method as a participant")
async def _not_admin(v: RunningVenue) -> tuple[Client, dict]:
    client = await v.login("bob")
    error = await client.error(
        "admin.deposit", {"participant_id": "bob", "asset": "KZT", "amount": "1000000"}
    )
    assert (await client.error("admin.market", {"market": BTC, "status": "halted"}))[
        "code"
    ] == "UNAUTHENTICATED"
    return client, error


@case("AUTH_FAILED: bad signature")
async def _bad_signature(v: RunningVenue) -> tuple[Client, dict]:
    client = await v.connect()
    error = await client.error("auth.login", login_params("bob", private_key=KEYS["mm1"][1]))
    # still not logged in
    assert (await client.error("orders.open"))["code"] == "UNAUTHENTICATED"
    return client, error


@case("AUTH_FAILED: stale timestamp")
async def _stale(v: RunningVenue) -> tuple[Client, dict]:
    client = await v.connect()
    stale = int(time.time() * 1000) - 120_000
    return client, await client.error("auth.login", login_params("bob", timestamp=stale))


@case("AUTH_FAILED: unknown key")
async def _unknown_key(v: RunningVenue) -> tuple[Client, dict]:
    client = await v.connect()
    params = dict(login_params("bob"), api_key="no-such-key")
    return client, await client.error("auth.login", params)


@case("AUTH_FAILED: wrong admin key")
async def _wrong_admin_key(v: RunningVenue) -> tuple[Client, dict]:
    client = await v.connect()
    error = await client.error("auth.admin", {"admin_key": "guess"})
    assert (await client.error("admin.market", {"market": BTC}))["code"] == "UNAUTHENTICATED"
    return client, error


@case("AUTH_FAILED: a second identity on one connection")
async def _second_identity(v: RunningVenue) -> tuple[Client, dict]:
    client = await v.login("bob")
    error = await client.error("auth.login", login_params("mm1"))
    assert (await client.ok("auth.login", login_params("bob")))["participant"] == "bob"
    return client, error


async def _bob_places(v: RunningVenue, params: dict) -> tuple[Client, dict]:
    client = await v.login("bob")
    error = await client.error("order.place", params)
    assert v.exchange.open_orders("bob") == []
    return client, error


@case("UNKNOWN_MARKET")
async def _unknown_market(v: RunningVenue) -> tuple[Client, dict]:
    client, error = await _bob_places(v, limit("buy", 45_000_000, "0.01", market="DOGE-KZT"))
    assert (await client.error("orders.open", {"market": "DOGE-KZT"}))["code"] == "UNKNOWN_MARKET"
    return client, error


@case("INVALID_NUMBER")
async def _invalid_number(v: RunningVenue) -> tuple[Client, dict]:
    for qty in ("abc", "1e-3", "-1", "0.123456789", " 1"):
        _, error = await _bob_places(v, limit("buy", 45_000_000, qty))
        assert error["code"] == "INVALID_NUMBER", (qty, error)
    return await _bob_places(v, limit("buy", "45,000,000", "0.01"))


@case("INVALID_TICK")
async def _invalid_tick(v: RunningVenue) -> tuple[Client, dict]:
    client, error = await _bob_places(v, limit("buy", "45000000.50", "0.01"))
    assert error["message"] == "price 45000000.50 is not a multiple of the tick 1"
    return client, error


@case("INVALID_LOT")
async def _invalid_lot(v: RunningVenue) -> tuple[Client, dict]:
    return await _bob_places(v, limit("buy", 45_000_000, "0.000001"))


@case("BELOW_MIN_QTY")
async def _below_min_qty(v: RunningVenue) -> tuple[Client, dict]:
    return await _bob_places(v, limit("buy", 515, "0.5", market="USDT-KZT"))


@case("BELOW_MIN_NOTIONAL")
async def _below_min_notional(v: RunningVenue) -> tuple[Client, dict]:
    return await _bob_places(v, limit("buy", 45_000_000, "0.00001"))  # 450 KZT


@case("PRICE_OUT_OF_BAND")
async def _out_of_band(v: RunningVenue) -> tuple[Client, dict]:
    return await _bob_places(v, limit("buy", 60_000_000, "0.01"))


@case("INSUFFICIENT_FUNDS")
async def _insufficient(v: RunningVenue) -> tuple[Client, dict]:
    mm1 = await v.login("mm1")  # no per-order maximum: the funds check decides
    error = await mm1.error("order.place", limit("sell", 45_000_000, "100.00001"))
    assert error["message"] == "the order needs 100.00001000 BTC, available 100.00000000 BTC"
    assert v.exchange.open_orders("mm1") == []
    return mm1, error


@case("POST_ONLY_WOULD_TRADE")
async def _post_only(v: RunningVenue) -> tuple[Client, dict]:
    mm1 = await v.login("mm1")
    await mm1.ok("order.place", limit("sell", 45_000_000, "0.01"))
    return await _bob_places(v, limit("buy", 45_000_000, "0.01", post_only=True))


@case("DUPLICATE_CLIENT_ORDER_ID")
async def _duplicate(v: RunningVenue) -> tuple[Client, dict]:
    client = await v.login("bob")
    first = await client.ok("order.place", limit("buy", 44_000_000, "0.01", client_order_id="c1"))
    error = await client.error(
        "order.place", limit("buy", 44_500_000, "0.02", client_order_id="c1")
    )
    assert await open_ids(client) == {first["order_id"]}
    return client, error


@case("UNKNOWN_ORDER")
async def _unknown_order(v: RunningVenue) -> tuple[Client, dict]:
    client, mm1 = await v.login("bob"), await v.login("mm1")
    theirs = await mm1.ok("order.place", limit("buy", 44_000_000, "0.01", client_order_id="m"))
    mine = await client.ok("order.place", limit("buy", 44_000_000, "0.01"))
    await client.ok("order.cancel", {"market": BTC, "order_id": mine["order_id"]})
    for method, params in (
        ("order.cancel", {"market": BTC, "order_id": mine["order_id"]}),  # no longer open
        ("order.cancel", {"market": BTC, "order_id": theirs["order_id"]}),  # not mine
        ("order.cancel", {"market": BTC, "client_order_id": "m"}),
        ("order.cancel", {"market": ETH, "order_id": theirs["order_id"]}),
        ("order.amend", {"market": BTC, "order_id": mine["order_id"], "qty": "0.001"}),
    ):
        error = await client.error(method, params)
        assert error["code"] == "UNKNOWN_ORDER", (method, params, error)
    assert await open_ids(mm1) == {theirs["order_id"]}
    return client, await client.error("order.cancel", {"market": BTC, "order_id": 123456})


@case("MARKET_HALTED")
async def _halted(v: RunningVenue) -> tuple[Client, dict]:
    admin = await v.admin()
    await admin.ok("admin.market", {"market": BTC, "status": "halted"})
    client, error = await _bob_places(v, limit("buy", 45_000_000, "0.01"))
    btc = next(m for m in await client.ok("markets.list") if m["symbol"] == BTC)
    assert btc["status"] == "halted"
    # other markets trade on; reopening restores the market
    assert (await client.ok("order.place", limit("buy", 1_700_000, "0.01", market=ETH)))["status"]
    await admin.ok("admin.market", {"market": BTC, "status": "open"})
    assert (await client.ok("order.place", limit("buy", 45_000_000, "0.01")))["status"] == "new"
    return client, error


@case("LICENSE_SUSPENDED")
async def _license_suspended(v: RunningVenue) -> tuple[Client, dict]:
    admin, mm1 = await v.admin(), await v.login("mm1")
    await mm1.ok("subscribe", {"channels": ["orders"]})
    resting = await mm1.ok("order.place", limit("sell", 45_500_000, "0.01"))
    await admin.ok("admin.license", dict(MM1_LICENSE, status="SUSPENDED"))
    error = await mm1.error("order.place", limit("sell", 45_500_000, "0.01"))
    # the venue's policy: resting orders of a suspended licence are canceled, reason license
    assert await open_ids(mm1) == set()
    canceled = [
        m["data"]
        for m in mm1.streams["orders"]
        if m["data"]["type"] == "order" and m["data"]["status"] == "canceled"
    ]
    assert [(o["order_id"], o["reason"]) for o in canceled] == [(resting["order_id"], "license")]
    await admin.ok("admin.license", dict(MM1_LICENSE, status="ACTIVE"))
    assert (await mm1.ok("order.place", limit("sell", 45_500_000, "0.01")))["status"] == "new"
    return mm1, error


@pytest.mark.parametrize("name", list(CASES))
@async_test
async def test_error_codes_keep_the_connection_open(name: str) -> None:
    code = name.split(":")[0]
    assert code in BY_CODE  # one table of codes
    async with running_venue() as v:
        client, error = await CASES[name](v)
        assert error["code"] == code, error
        assert set(error) == {"code", "message"}
        assert isinstance(error["message"], str) and error["message"]
        assert client.ws.state is State.OPEN
        await client.ping()  # the connection is still open and serving
        assert not client.closed.done()


@async_test
async def test_rate_limited_per_connection() -> None:
    limits = Limits(connection_rate=2, connection_burst=3)
    async with running_venue(limits) as v:
        bob = await v.login("bob")  # 1 token
        await bob.ping()  # 2
        await bob.ping()  # 3
        error = await bob.error("order.place", limit("buy", 44_000_000, "0.01"))
        assert error["code"] == "RATE_LIMITED"
        wait_ms = int(re.search(r"retry after (\d+) ms", error["message"]).group(1))
        assert 0 < wait_ms <= 501
        # other connections are not affected
        await (await v.connect()).ping()
        await asyncio.sleep(wait_ms / 1000)  # the time it said to wait: a token is back
        # nothing else changed: the refused order was never placed
        assert (await bob.ok("orders.open"))["orders"] == []
        assert v.exchange.open_orders("bob") == []
        assert bob.ws.state is State.OPEN


@async_test
async def test_rate_limited_per_participant() -> None:
    limits = Limits(participant_rate=2, participant_burst=4)
    async with running_venue(limits) as v:
        one, two = await v.login("bob"), await v.login("bob")  # logins are not counted
        for client in (one, two, one, two):
            await client.ping()
        for client in (one, two):
            error = await client.error("ping")
            assert error["code"] == "RATE_LIMITED"
        await (await v.login("mm1")).ping()  # another participant has its own budget
        await asyncio.sleep(0.5)
        await two.ping()


# -- sessions and safety ---------------------------------------------------------------------


@async_test
async def test_cancel_on_disconnect() -> None:
    async with running_venue() as v:
        watcher = await v.connect()
        await watcher.ok("subscribe", {"channels": [f"book:{BTC}"]})
        leaving = await v.login("bob")
        assert await leaving.ok("session.cancel_on_disconnect", {"enabled": True})
        gone = [
            (await leaving.ok("order.place", limit("sell", price, "0.01")))["order_id"]
            for price in (46_000_000, 46_100_000)
        ]
        batch = await leaving.ok(
            "order.batch", {"orders": [limit("buy", 44_000_000, "0.02", client_order_id="bb")]}
        )
        gone.append(batch[0]["result"]["order_id"])
        staying = await v.login("bob")  # a second session of the same participant
        await staying.ok("subscribe", {"channels": ["orders"]})
        kept = [(await staying.ok("order.place", limit("sell", 46_200_000, "0.01")))["order_id"]]
        quiet = await v.login("bob")  # no cancel-on-disconnect: its orders stay
        kept.append((await quiet.ok("order.place", limit("sell", 46_300_000, "0.02")))["order_id"])
        await watcher.wait_book_seq(BTC, v.book_seq(BTC))
        assert set(watcher.book(BTC).asks) == {
            "46000000.00",
            "46100000.00",
            "46200000.00",
            "46300000.00",
        }

        await leaving.close()
        await watcher.wait_stream(
            f"book:{BTC}",
            lambda _: (
                set(watcher.book(BTC).asks) == {"46200000.00", "46300000.00"}
                and not watcher.book(BTC).bids
            ),
            "the book without the disconnected session's orders",
        )
        assert await open_ids(staying) == set(kept)
        canceled = await staying.wait_stream(
            "orders",
            lambda ms: sum(m["data"].get("reason") == "disconnect" for m in ms) == 3,
        )
        reasons = {
            m["data"]["order_id"]: m["data"]["reason"] for m in canceled if "reason" in m["data"]
        }
        assert reasons == dict.fromkeys(gone, "disconnect")

        sessions = len(v.gateway.sessions)
        await quiet.close()
        await wait_until(lambda: len(v.gateway.sessions) == sessions - 1, what="the session gone")
        await barrier(staying)
        assert await open_ids(staying) == set(kept)
        assert snapshot_levels(await fresh_snapshot(v, BTC)) == v.depth(BTC)


async def fresh_snapshot(v: RunningVenue, symbol: str) -> dict:
    client = await v.connect()
    await client.ok("subscribe", {"channels": [f"book:{symbol}"]})
    (snapshot,) = await client.wait_stream(f"book:{symbol}", bool)
    await client.close()
    return snapshot


@async_test
async def test_dead_man_switch_fires_when_not_refreshed() -> None:
    async with running_venue() as v:
        bob, other = await v.login("bob"), await v.login("bob")
        await other.ok("subscribe", {"channels": ["orders"]})
        mine = [
            (await bob.ok("order.place", limit("buy", 44_000_000 + i, "0.01")))["order_id"]
            for i in range(3)
        ]
        mine.append((await other.ok("order.place", limit("sell", 46_000_000, "0.01")))["order_id"])
        mm1 = await v.login("mm1")
        theirs = (await mm1.ok("order.place", limit("buy", 44_000_000, "0.01")))["order_id"]
        assert await open_ids(other) == set(mine)
        assert await bob.ok("session.cancel_all_after", {"timeout_ms": 200}) == {"timeout_ms": 200}
        # all the participant's open orders, from every session, are canceled
        await wait_until(lambda: v.exchange.open_orders("bob") == [], 5, "the dead-man switch")
        assert await open_ids(other) == set()
        canceled = await other.wait_stream(
            "orders", lambda ms: sum(m["data"].get("reason") == "dead_man_switch" for m in ms) == 4
        )
        assert {m["data"]["order_id"] for m in canceled if "reason" in m["data"]} == set(mine)
        assert await open_ids(mm1) == {theirs}
        await bob.ping()


@async_test
async def test_dead_man_switch_refreshed_or_turned_off_does_not_fire() -> None:
    async with running_venue() as v:
        bob = await v.login("bob")
        order = (await bob.ok("order.place", limit("buy", 44_000_000, "0.01")))["order_id"]
        for _ in range(5):  # 0.5 s in all, refreshed well within each 400 ms timeout
            await bob.ok("session.cancel_all_after", {"timeout_ms": 400})
            await asyncio.sleep(0.1)
        await bob.ok("session.cancel_all_after", {"timeout_ms": 0})
        await asyncio.sleep(0.5)
        await barrier(bob)
        assert await open_ids(bob) == {order}


@async_test
async def test_dead_man_switch_survives_the_connection() -> None:
    async with running_venue() as v:
        bob = await v.login("bob")
        await bob.ok("order.place", limit("buy", 44_000_000, "0.01"))
        await bob.ok("session.cancel_all_after", {"timeout_ms": 200})
        await bob.close()  # the client vanishes without refreshing the switch
        observer = await v.login("bob")
        await asyncio.sleep(0.5)
        await barrier(observer)
        assert await open_ids(observer) == set()


@async_test
async def test_two_subscribers_see_the_same_trades_in_the_same_order() -> None:
    async with running_venue() as v:
        a, b = await v.connect(), await v.connect()
        await a.ok("subscribe", {"channels": [f"trades:{BTC}"]})
        await b.ok("subscribe", {"channels": [f"trades:{BTC}", f"trades:{ETH}"]})
        mm1, bob, broker = await v.login("mm1"), await v.login("bob"), await v.login("broker1")
        asks = [limit("sell", 45_000_000 + 100 * i, "0.003") for i in range(20)]
        await mm1.ok("order.batch", {"orders": asks})
        takers = [
            (bob if i % 2 else broker).send(
                "order.place", {"market": BTC, "side": "buy", "type": "market", "qty": "0.007"}
            )
            for i in range(8)
        ]
        answers = await asyncio.gather(*[await t for t in takers])
        trade_ids = [f["trade_id"] for r in answers for f in r["result"]["fills"]]
        assert len(trade_ids) == 24  # 0.003 lots met by 0.007 takers
        for client in (a, b):
            await client.wait_stream(
                f"trades:{BTC}", lambda ms: len(trades_of(ms)) == len(trade_ids)
            )
        assert a.streams[f"trades:{BTC}"] == b.streams[f"trades:{BTC}"]
        seen = [t["trade_id"] for t in trades_of(a.streams[f"trades:{BTC}"])]
        assert seen == sorted(seen) and set(seen) == set(trade_ids)
        assert b.streams[f"trades:{ETH}"] == []


# -- a random flow: the streamed book is the engine's book -----------------------------------


def random_request(rng: random.Random, tag: str, n: int, known: list[tuple[str, str, int]]):
    """One random request of a trader: mostly limit orders around the reference, so they
    cross; some IOC, FOK, market and post-only orders, cancels and amends."""
    market = rng.choice([BTC, BTC, ETH])
    step = 1_000 if market == BTC else 100
    price = REF[market] + rng.randint(-8, 8) * step
    qty = (
        f"{rng.randint(1, 40) / 10_000:.4f}" if market == BTC else f"{rng.randint(1, 40) / 100:.2f}"
    )
    side = rng.choice(["buy", "sell"])
    coid = f"{tag}-{n}"
    kind = rng.choices(
        ["limit", "ioc", "fok", "market", "post", "cancel", "amend"],
        weights=[50, 10, 5, 5, 8, 14, 8],
    )[0]
    stp = rng.choice(["cancel_newest", "cancel_oldest", "cancel_both"])
    if kind in ("cancel", "amend") and known:
        k_market, k_coid, k_id = rng.choice(known)
        ref = {"client_order_id": k_coid} if rng.random() < 0.5 else {"order_id": k_id}
        if kind == "cancel":
            return "order.cancel", {"market": k_market, **ref}
        step = 1_000 if k_market == BTC else 100
        change = rng.choice(["qty", "price", "both"])
        params = {"market": k_market, **ref}
        if change in ("qty", "both"):
            params["qty"] = "0.0040" if k_market == BTC else "0.40"
        if change in ("price", "both"):
            params["price"] = str(REF[k_market] + rng.randint(-8, 8) * step)
        return "order.amend", params
    params = {"market": market, "side": side, "qty": qty, "client_order_id": coid, "stp": stp}
    if kind == "market":
        params["type"] = "market"
    else:
        params["price"] = str(price)
        if kind in ("ioc", "fok"):
            params["tif"] = kind.upper()
        if kind == "post":
            params["post_only"] = True
    return "order.place", params


@pytest.mark.parametrize("seed", [7, 2024])
@async_test
async def test_random_flow_streamed_book_equals_the_engine(seed: int) -> None:
    async with running_venue() as v:
        channels = [f"book:{BTC}", f"book:{ETH}", f"trades:{BTC}", f"trades:{ETH}"]
        watcher, second = await v.connect(), await v.connect()
        await watcher.ok("subscribe", {"channels": channels})
        traders = {
            "bob1": await v.login("bob"),
            "bob2": await v.login("bob"),  # the same participant: self-trade prevention
            "mm1": await v.login("mm1"),
            "broker1": await v.login("broker1"),
        }
        known: dict[str, list[tuple[str, str, int]]] = {tag: [] for tag in traders}
        taker_trades: set[tuple[str, int]] = set()  # trade ids are per market
        counter = 0
        late_joined = False

        rngs = {tag: random.Random(f"{seed}-{tag}") for tag in traders}

        async def trade(tag: str, client: Client, count: int) -> None:
            nonlocal counter
            # cancel and amend mostly orders that are still open (some are gone by then)
            still_open = {o["order_id"] for o in (await client.ok("orders.open"))["orders"]}
            known[tag] = [k for k in known[tag] if k[2] in still_open or rngs[tag].random() < 0.1]
            sent = []
            for _ in range(count):
                counter += 1
                method, params = random_request(rngs[tag], tag, counter, known[tag])
                sent.append((method, params, await client.send(method, params)))
            for method, params, waiter in sent:  # pipelined: all sent, then all answered
                response = await asyncio.wait_for(waiter, 10)
                if not response["ok"]:
                    code = response["error"]["code"]
                    assert code in BY_CODE and code not in ("INTERNAL", "INVALID_PARAMS"), (
                        method,
                        params,
                        response,
                    )
                    continue
                result = response["result"]
                if method == "order.place":  # the answer is about this order, not another
                    assert result["client_order_id"] == params["client_order_id"]
                    assert (result["market"], result["side"]) == (params["market"], params["side"])
                elif "order_id" in params:
                    assert result["order_id"] == params["order_id"]
                else:
                    assert result["client_order_id"] == params["client_order_id"]
                taker_trades.update(
                    (f["market"], f["trade_id"])
                    for f in result["fills"]
                    if f["liquidity"] == "taker"
                )
                if method == "order.place" and result["status"] in ("new", "partially_filled"):
                    known[tag].append(
                        (result["market"], result["client_order_id"], result["order_id"])
                    )

        for round_number in range(8):
            await asyncio.gather(*(trade(tag, c, 10) for tag, c in traders.items()))
            if round_number == 3 and not late_joined:  # a subscriber joining mid-flow
                await second.ok("subscribe", {"channels": channels})
                late_joined = True

        assert counter == 320
        for symbol in (BTC, ETH):
            engine_seq = v.book_seq(symbol)
            assert engine_seq > 20
            for client in (watcher, second):
                book = await client.wait_book_seq(symbol, engine_seq)  # contiguous seqs
                assert book.seq == engine_seq
                assert book.levels() == v.depth(symbol)
            snapshot = await fresh_snapshot(v, symbol)
            assert snapshot["seq"] == engine_seq
            assert snapshot_levels(snapshot) == v.depth(symbol)
            bids = [float(p) for p, _ in snapshot["data"]["bids"]]
            asks = [float(p) for p, _ in snapshot["data"]["asks"]]
            assert bids == sorted(bids, reverse=True) and asks == sorted(asks)
            assert not bids or not asks or bids[0] < asks[0]  # never crossed

        # every trade once, in the same order for both subscribers, matching the takers' fills
        streamed = [
            (m["market"], t["trade_id"])
            for s in (BTC, ETH)
            for m in watcher.streams[f"trades:{s}"]
            for t in m["data"]
        ]
        assert len(streamed) == len(set(streamed)) == len(taker_trades) > 20
        assert set(streamed) == taker_trades
        for symbol in (BTC, ETH):
            ids = [t["trade_id"] for t in trades_of(watcher.streams[f"trades:{symbol}"])]
            assert ids == sorted(ids)
            late = [t["trade_id"] for t in trades_of(second.streams[f"trades:{symbol}"])]
            assert late == ids[len(ids) - len(late) :]
        v.exchange.check_integrity()


# -- slow readers ----------------------------------------------------------------------------


def constrain_link(v: RunningVenue, client: Client) -> Any:
    """The server session of ``client``, with its socket's send buffer made tiny.

    Loopback TCP buffers hold megabytes, so a client that stops reading would take tens of
    thousands of messages to push back on the server; a small SO_SNDBUF on the server's
    socket (and a small SO_RCVBUF on the client's) makes the back-pressure immediate.
    """
    import socket

    port = client.ws.local_address[1]
    (session,) = [
        s
        for s in v.gateway.sessions
        if s.connection.asyncio_transport.get_extra_info("peername")[1] == port
    ]
    sock = session.connection.asyncio_transport.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    return session


async def heavy_trading(v: RunningVenue, until: Callable[[], bool], rounds: int = 400) -> int:
    """mm1 quotes 50 levels, bob sweeps some, mm1 pulls the rest; until ``until()``."""
    mm1, bob = await v.login("mm1"), await v.login("bob")
    count = 0
    for _ in range(rounds):
        if until():
            break
        asks = [limit("sell", 45_000_000 + 100 * i, "0.001") for i in range(50)]
        await mm1.ok("order.batch", {"orders": asks})
        await bob.ok("order.place", limit("buy", 45_005_000, "0.002", tif="IOC"))
        await mm1.ok("order.cancel_all", {"market": BTC})
        count += 1
    return count


async def subscribe_without_reading(v: RunningVenue) -> tuple[Client, Any]:
    slow = await v.connect(read=False, rcvbuf=4096)
    frame = {
        "id": 1,
        "method": "subscribe",
        "params": {"channels": [f"book:{BTC}", f"trades:{BTC}"]},
    }
    await slow.ws.send(json.dumps(frame))
    session = constrain_link(v, slow)
    await wait_until(lambda: bool(session.channels), what="the slow reader subscribed")
    return slow, session


@async_test
async def test_slow_reader_is_disconnected_and_nobody_else_stalls() -> None:
    async with running_venue(Limits(max_buffered_bytes=16 * 1024)) as v:
        watcher = await v.connect()
        await watcher.ok("subscribe", {"channels": [f"book:{BTC}", f"trades:{BTC}"]})
        slow, session = await subscribe_without_reading(v)

        rounds = await heavy_trading(v, lambda: session.closed)
        assert session.closed, "the slow reader was never disconnected"
        assert rounds < 400
        assert session not in v.gateway.sessions
        assert session not in v.venue.channels.subscribers[f"book:{BTC}"]

        # the engine and everyone else carry on
        bob = await v.login("bob")
        placed = await bob.ok("order.place", limit("buy", 44_000_000, "0.01"))
        assert placed["status"] == "new"
        book = await watcher.wait_book_seq(BTC, v.book_seq(BTC))
        assert book.levels() == v.depth(BTC)
        assert snapshot_levels(await fresh_snapshot(v, BTC)) == v.depth(BTC)
        await watcher.ping()

        # once it reads, the slow client finds the policy close and its reason
        slow.start_reading()
        code, reason = await asyncio.wait_for(slow.closed, 10)
        assert code == 1008
        assert "slow reader" in reason


@async_test
async def test_slow_reader_that_never_reads_is_dropped() -> None:
    async with running_venue(Limits(max_buffered_bytes=16 * 1024)) as v:
        _, session = await subscribe_without_reading(v)
        await heavy_trading(v, lambda: session.closed)
        assert session.closed
        # The close frame cannot drain to a peer that does not read: the transport gives
        # the handshake a short timeout and then drops the TCP connection.
        link = session.connection.asyncio_transport
        await wait_until(link.is_closing, 5.0, "the server to drop the connection")
