"""The websocket methods ``trades.recent``, ``market.depth``, ``orders.history``,
``fills.history`` and ``order.status`` on a live ``alatau serve`` with a data directory
(and so a history database), in this process and with ``--engine-process``: each answers
exactly what its HTTP twin answers for the same state (one implementation,
``gateway.sessions.lookups``), bad params get their codes, ``order.status`` finds an open,
a filled and a canceled order and is answered in sequence with the commands before it.
Without a history database the history methods answer ``NOT_FOUND``; a stopped venue
answers ``VENUE_STOPPED``."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import websockets

from gateway.app import serve as app
from gateway.sdk.client import ApiError, Client

from .gateway_harness import ADMIN_KEY, KEYS, WAIT_TIMEOUT_S, async_test, running_venue
from .test_http_live import Live, Ws, place, trader
from .test_http_private import request, signed, wait_written

BTC = "BTC-KZT"


@asynccontextmanager
async def live_server(data_dir: Path, *, engine_process: bool) -> AsyncIterator[Live]:
    loop = asyncio.get_running_loop()
    started: asyncio.Future[tuple[str, int]] = loop.create_future()
    http_started: asyncio.Future[tuple[str, int]] = loop.create_future()
    stop = asyncio.Event()
    options = app.ServeOptions(
        port=0,
        http_port=0,
        quiet=True,
        admin_key=ADMIN_KEY,
        data_dir=str(data_dir),
        durability="buffered",
        engine_process=engine_process,
    )
    task = asyncio.create_task(
        app.serve(options, started=started, stop=stop, http_started=http_started)
    )
    host, port = await asyncio.wait_for(started, WAIT_TIMEOUT_S)
    http_host, http_port = await asyncio.wait_for(http_started, WAIT_TIMEOUT_S)
    try:
        yield Live(f"ws://{host}:{port}", http_host, http_port, stop)
    finally:
        stop.set()
        assert await asyncio.wait_for(task, WAIT_TIMEOUT_S) == 0


async def ok(client: Ws, method: str, params: dict[str, Any] | None = None) -> Any:
    answer = await client.call(method, params)
    assert answer["ok"], (method, params, answer)
    return answer["result"]


async def code(client: Ws, method: str, params: dict[str, Any] | None = None) -> str:
    answer = await client.call(method, params)
    assert not answer["ok"], (method, params, answer)
    return str(answer["error"]["code"])


async def http_ok(live: Live, name: str | None, path: str, query: str) -> Any:
    if name is None:
        status, body = await request(live, "GET", path, query)
    else:
        status, body = await signed(live, name, "GET", path, query)
    assert status == 200, (path, query, body)
    return body


async def some_state(live: Live) -> tuple[Ws, Ws, dict[str, int]]:
    """mm1 rests two sells, bob fills part of the first, mm1 cancels the second and rests
    a buy: an open (partially filled), a filled, a canceled and an untouched order."""
    mm = await trader(live, "mm1")
    bob = await trader(live, "bob")
    ids = {}
    rest = {**place("sell", "45000000.00", "1.00000000"), "client_order_id": "mm-a"}
    ids["open"] = (await ok(mm, "order.place", rest))["order_id"]
    ids["filled"] = (await ok(bob, "order.place", place("buy", "45000000.00", "0.25000000")))[
        "order_id"
    ]
    other = {**place("sell", "45100000.00", "2.00000000"), "client_order_id": "mm-b"}
    ids["canceled"] = (await ok(mm, "order.place", other))["order_id"]
    await ok(mm, "order.cancel", {"market": BTC, "order_id": ids["canceled"]})
    ids["new"] = (await ok(mm, "order.place", place("buy", "44000000.00", "0.50000000")))[
        "order_id"
    ]
    await ok(bob, "order.place", place("buy", "45000000.00", "0.10000000"))
    await wait_written()
    return mm, bob, ids


@pytest.mark.parametrize("engine_process", [False, True], ids=["in-process", "engine-process"])
@async_test
async def test_each_method_answers_what_its_http_twin_answers(
    tmp_path: Path, engine_process: bool
) -> None:
    async with live_server(tmp_path, engine_process=engine_process) as live:
        mm, bob, ids = await some_state(live)
        anonymous = Ws(await websockets.connect(live.ws_url))
        # the public ones need no login
        for method, path in (("trades.recent", "/trades"), ("market.depth", "/depth")):
            for limit in (1, 100):
                params = {"market": BTC, "limit": limit}
                ws_answer = await ok(anonymous, method, params)
                assert ws_answer == await http_ok(live, None, path, f"market={BTC}&limit={limit}")
            assert await ok(anonymous, method, {"market": BTC}) == await http_ok(
                live, None, path, f"market={BTC}"
            )
        depth = await ok(anonymous, "market.depth", {"market": BTC, "limit": 1})
        assert depth["asks"] == [["45000000.00", "0.65000000"]]
        assert depth["bids"] == [["44000000.00", "0.50000000"]]
        trades = await ok(anonymous, "trades.recent", {"market": BTC, "limit": 10})
        assert [t["qty"] for t in trades] == ["0.10000000", "0.25000000"]
        for method in ("orders.history", "fills.history", "order.status"):
            assert await code(anonymous, method, {}) == "UNAUTHENTICATED"
        # the histories, page by page with their cursors
        for method, path in (("orders.history", "/orders/history"), ("fills.history", "/fills")):
            for who, client in (("mm1", mm), ("bob", bob)):
                whole = await ok(client, method)
                assert whole == await http_ok(live, who, path, "")
                assert whole == await ok(client, method, {"market": BTC, "start": 0})
                cursor = None
                pages = []
                while True:
                    params: dict[str, Any] = {"limit": 1}
                    query = "limit=1"
                    if cursor is not None:
                        params["cursor"] = cursor
                        query += f"&cursor={cursor}"
                    page = await ok(client, method, params)
                    assert page == await http_ok(live, who, path, query)
                    pages.append(page)
                    cursor = page["next"]
                    if cursor is None:
                        break
                key = "orders" if method == "orders.history" else "fills"
                listed = [row for page in pages for row in page[key]]
                assert listed == whole[key] and listed
        mm_history = await ok(mm, "orders.history")
        assert [o["order_id"] for o in mm_history["orders"]] == [ids["canceled"]]
        bob_fills = await ok(bob, "fills.history", {"market": BTC, "limit": 1000})
        assert [f["liquidity"] for f in bob_fills["fills"]] == ["taker", "taker"]
        # one order: open (partially filled), untouched, canceled (mm1), filled (bob)
        for client, who, ref, status in (
            (mm, "mm1", {"order_id": ids["open"]}, "partially_filled"),
            (mm, "mm1", {"client_order_id": "mm-a"}, "partially_filled"),
            (mm, "mm1", {"order_id": ids["new"]}, "new"),
            (mm, "mm1", {"order_id": ids["canceled"]}, "canceled"),
            (mm, "mm1", {"client_order_id": "mm-b"}, "canceled"),
            (bob, "bob", {"order_id": ids["filled"]}, "filled"),
        ):
            one = await ok(client, "order.status", ref)
            assert one["status"] == status, (ref, one)
            key, value = next(iter(ref.items()))
            assert one == await http_ok(live, who, "/order", f"{key}={value}")
        assert (await ok(mm, "order.status", {"order_id": ids["open"]}))["filled_qty"] == (
            "0.35000000"
        )
        # another's order is not yours
        assert await code(bob, "order.status", {"order_id": ids["open"]}) == "UNKNOWN_ORDER"
        for client in (mm, bob, anonymous):
            await client.ws.close()


@async_test
async def test_bad_params_get_their_codes(tmp_path: Path) -> None:
    async with live_server(tmp_path, engine_process=False) as live:
        mm, bob, _ids = await some_state(live)
        for method, params, expected in (
            ("market.depth", {"market": "NOPE"}, "UNKNOWN_MARKET"),
            ("market.depth", {}, "INVALID_PARAMS"),
            ("market.depth", {"market": BTC, "limit": 0}, "INVALID_PARAMS"),
            ("market.depth", {"market": BTC, "limit": 1001}, "INVALID_PARAMS"),
            ("market.depth", {"market": BTC, "depth": 5}, "INVALID_PARAMS"),
            ("trades.recent", {"market": "NOPE"}, "UNKNOWN_MARKET"),
            ("trades.recent", {"market": BTC, "limit": "5"}, "INVALID_PARAMS"),
            ("orders.history", {"market": "NOPE"}, "UNKNOWN_MARKET"),
            ("orders.history", {"cursor": "x"}, "INVALID_PARAMS"),
            ("orders.history", {"cursor": "12:x"}, "INVALID_PARAMS"),
            ("orders.history", {"start": -1}, "INVALID_PARAMS"),
            ("orders.history", {"limit": 1001}, "INVALID_PARAMS"),
            ("fills.history", {"market": "NOPE"}, "UNKNOWN_MARKET"),
            ("fills.history", {"cursor": "1:2"}, "INVALID_PARAMS"),
            ("fills.history", {"cursor": ""}, "INVALID_PARAMS"),
            ("fills.history", {"limit": 0}, "INVALID_PARAMS"),
            ("order.status", {}, "INVALID_PARAMS"),
            ("order.status", {"order_id": 1, "client_order_id": "mm-a"}, "INVALID_PARAMS"),
            ("order.status", {"order_id": 0}, "INVALID_PARAMS"),
            ("order.status", {"order_id": 999999}, "UNKNOWN_ORDER"),
            ("order.status", {"client_order_id": "never-placed"}, "UNKNOWN_ORDER"),
        ):
            assert await code(mm, method, params) == expected, (method, params)
        # the same refusals over HTTP
        for path, query, status, expected in (
            ("/depth", "market=NOPE", 404, "UNKNOWN_MARKET"),
            ("/trades", f"market={BTC}&limit=1001", 400, "INVALID_PARAMS"),
        ):
            got, body = await request(live, "GET", path, query)
            assert (got, body["error"]["code"]) == (status, expected)
        for path, query, status, expected in (
            ("/orders/history", "cursor=12:x", 400, "INVALID_PARAMS"),
            ("/fills", "cursor=1:2", 400, "INVALID_PARAMS"),
            ("/orders/history", "market=NOPE", 404, "UNKNOWN_MARKET"),
            ("/order", "client_order_id=never-placed", 404, "UNKNOWN_ORDER"),
        ):
            got, body = await signed(live, "mm1", "GET", path, query)
            assert (got, body["error"]["code"]) == (status, expected), (path, body)
        for client in (mm, bob):
            await client.ws.close()


@pytest.mark.parametrize("engine_process", [False, True], ids=["in-process", "engine-process"])
@async_test
async def test_order_status_is_answered_in_sequence_with_the_commands_before_it(
    tmp_path: Path, engine_process: bool
) -> None:
    """Sent in one go after an order.place and an order.cancel, without waiting for their
    answers, order.status sees the order as each left it."""
    async with live_server(tmp_path, engine_process=engine_process) as live:
        mm = await trader(live, "mm1")
        frames = [
            {
                "id": 1,
                "method": "order.place",
                "params": {**place("sell", "46000000.00", "1"), "client_order_id": "seq-1"},
            },
            {"id": 2, "method": "order.status", "params": {"client_order_id": "seq-1"}},
            {
                "id": 3,
                "method": "order.cancel",
                "params": {"market": BTC, "client_order_id": "seq-1"},
            },
            {"id": 4, "method": "order.status", "params": {"client_order_id": "seq-1"}},
        ]
        for frame in frames:
            await mm.ws.send(json.dumps(frame))
        answers: dict[int, Any] = {}
        while len(answers) < len(frames):
            message = json.loads(await asyncio.wait_for(mm.ws.recv(), WAIT_TIMEOUT_S))
            if "id" in message:
                answers[message["id"]] = message
        assert all(answers[i]["ok"] for i in (1, 2, 3)), answers
        placed = answers[1]["result"]
        assert answers[2]["result"]["status"] == "new"
        assert answers[2]["result"]["order_id"] == placed["order_id"]
        # Once canceled the order is no longer the engine's: it is read from the history
        # database, which is written off the matching path; order.status waits for the
        # writer to reach the cancel, so it is found at once, never UNKNOWN_ORDER.
        fourth = answers[4]
        assert fourth["ok"] and fourth["result"]["status"] == "canceled", fourth
        one = await ok(mm, "order.status", {"client_order_id": "seq-1"})
        assert one["status"] == "canceled" and one["order_id"] == placed["order_id"]
        await mm.ws.close()


@async_test
async def test_without_a_history_database_and_once_the_venue_stopped() -> None:
    """The harness's venue keeps no history database: the history methods answer
    NOT_FOUND, order.status still finds an open order; a stopped venue answers
    VENUE_STOPPED."""
    async with running_venue() as running:
        mm = await running.login("mm1")
        placed = await mm.ok("order.place", place("sell", "46000000.00", "1.00000000"))
        for method in ("orders.history", "fills.history"):
            assert (await mm.error(method, {}))["code"] == "NOT_FOUND"
        one = await mm.ok("order.status", {"order_id": placed["order_id"]})
        assert one["status"] == "new" and one["order_id"] == placed["order_id"]
        assert (await mm.error("order.status", {"order_id": 424242}))["code"] == "NOT_FOUND"
        depth = await mm.ok("market.depth", {"market": BTC, "limit": 5})
        assert depth["asks"] == [["46000000.00", "1.00000000"]]
        running.venue._closed = True  # as Venue.stop() and a failed journal write leave it
        for method, params in (
            ("order.status", {"order_id": placed["order_id"]}),
            ("orders.history", {}),
            ("fills.history", {}),
            ("market.depth", {"market": BTC}),
            ("trades.recent", {"market": BTC}),
        ):
            assert (await mm.error(method, params))["code"] == "VENUE_STOPPED", method
        running.venue._closed = False  # so the harness stops it as usual


@async_test
async def test_the_sdk_calls_each_method(tmp_path: Path) -> None:
    async with live_server(tmp_path, engine_process=False) as live:
        mm, bob, ids = await some_state(live)
        api_key, private_key = KEYS["mm1"]
        async with await Client.connect(live.ws_url) as client:
            assert await client.depth(BTC, 1) == await ok(
                mm, "market.depth", {"market": BTC, "limit": 1}
            )
            assert await client.recent_trades(BTC) == await ok(mm, "trades.recent", {"market": BTC})
            await client.login(api_key, private_key=private_key)
            one = await client.order_status(order_id=ids["open"])
            assert one == await client.order_status(client_order_id="mm-a")
            assert one["status"] == "partially_filled"
            first = await client.orders_history(BTC, start=0, limit=1)
            assert first == await ok(mm, "orders.history", {"market": BTC, "start": 0, "limit": 1})
            fills = await client.fills_history(limit=1)
            assert fills["next"] is not None
            assert (await client.fills_history(limit=1, cursor=fills["next"]))["fills"]
            with pytest.raises(ApiError) as refused:
                await client.order_status(order_id=424242)
            assert refused.value.code == "UNKNOWN_ORDER"
        for each in (mm, bob):
            await each.ws.close()
