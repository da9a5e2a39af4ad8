"""The signed HTTP endpoints and the history database, on a live ``alatau serve`` with a data
directory: orders placed over HTTP trade against websocket orders, both sides see their
fills, the history survives a restart without duplicates and equals a rebuild from the
journal; bad signatures, old timestamps, replays and bad input are refused and change
nothing; candles aggregate exactly; retention prunes."""

from __future__ import annotations

import asyncio
import json
import logging
import shutil
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from gateway.app import serve as app
from gateway.app.history import rebuild_history
from gateway.hosts.build import VenueFiles
from gateway.storage import history as hist
from gateway.storage.history import HistoryWriter
from gateway.storage.history_process import encode_batch
from gateway.storage.sealing import resolve_secret_box
from gateway.wire.auth import request_message, sign_request
from gateway.wire.views import decimal_text

from .gateway_harness import ADMIN_KEY, KEYS, WAIT_TIMEOUT_S, async_test, fresh_timestamp
from .test_history_schema import unversioned_copy
from .test_http_live import Live, Ws, place, trader

BTC = "BTC-KZT"
_last_ts = [0]


@asynccontextmanager
async def live_server(data_dir: Path | None) -> AsyncIterator[Live]:
    loop = asyncio.get_running_loop()
    started: asyncio.Future[tuple[str, int]] = loop.create_future()
    http_started: asyncio.Future[tuple[str, int]] = loop.create_future()
    stop = asyncio.Event()
    options = app.ServeOptions(
        port=0,
        http_port=0,
        quiet=True,
        admin_key=ADMIN_KEY,
        data_dir=None if data_dir is None else str(data_dir),
        durability="buffered",
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


def _timestamp() -> int:
    ts = max(fresh_timestamp(), _last_ts[0] + 1)
    _last_ts[0] = ts
    return ts


def signed_headers(
    name: str, method: str, path: str, query: str, body: bytes, *, timestamp: int | None = None
) -> dict[str, str]:
    from gateway.wire.auth import ed25519_private_key

    api_key, private = KEYS[name]
    ts = _timestamp() if timestamp is None else timestamp
    message = request_message(ts, method, path, f"?{query}" if query else "", body)
    return {
        "X-Alatau-Key": api_key,
        "X-Alatau-Timestamp": str(ts),
        "X-Alatau-Signature": ed25519_private_key(private).sign(message).hex(),
    }


async def request(
    live: Live,
    method: str,
    path: str,
    query: str = "",
    body: bytes = b"",
    headers: dict[str, str] | None = None,
) -> tuple[int, Any]:
    target = f"/api/v1{path}" + (f"?{query}" if query else "")
    lines = [f"{method} {target} HTTP/1.1", "Host: localhost", "Connection: close"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    if body:
        lines += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
    reader, writer = await asyncio.open_connection(live.http_host, live.http_port)
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
    raw = await asyncio.wait_for(reader.read(), WAIT_TIMEOUT_S)
    writer.close()
    head, _, payload = raw.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(payload) if payload else None


async def signed(
    live: Live, name: str, method: str, path: str, query: str = "", body: Any = None
) -> tuple[int, Any]:
    raw = b"" if body is None else json.dumps(body).encode()
    headers = signed_headers(name, method, f"/api/v1{path}", query, raw)
    return await request(live, method, path, query, raw, headers)


async def trade_over_both_doors(live: Live) -> Ws:
    """mm1 rests a sell over websockets; bob buys part of it over HTTP."""
    mm = await trader(live, "mm1")
    assert (await mm.call("order.place", place("sell", "45000000.00", "1.00000000")))["ok"]
    status, body = await signed(
        live, "bob", "POST", "/order", body=place("buy", "45000000.00", "0.25000000")
    )
    assert status == 200, body
    assert body["status"] == "filled"
    return mm


async def wait_written(data_dir: Path | None = None) -> None:
    await asyncio.sleep(0.3)


@async_test
async def test_post_order_trades_with_a_websocket_order_and_both_see_fills(
    tmp_path: Path,
) -> None:
    async with live_server(tmp_path) as live:
        mm = await trade_over_both_doors(live)
        await wait_written()
        status, fills = await signed(live, "bob", "GET", "/fills", f"market={BTC}")
        assert status == 200, fills
        assert [(f["side"], f["qty"], f["liquidity"]) for f in fills["fills"]] == [
            ("buy", "0.25000000", "taker")
        ]
        status, mm_fills = await signed(live, "mm1", "GET", "/fills")
        assert [(f["side"], f["qty"], f["liquidity"]) for f in mm_fills["fills"]] == [
            ("sell", "0.25000000", "maker")
        ]
        assert fills["fills"][0]["trade_id"] == mm_fills["fills"][0]["trade_id"]
        fills_ws = (await mm.call("orders.open", {"market": BTC}))["result"]["orders"]
        assert fills_ws[0]["filled_qty"] == "0.25000000"
        status, history = await signed(live, "bob", "GET", "/orders/history")
        assert status == 200 and [o["status"] for o in history["orders"]] == ["filled"]
        order_id = fills_ws[0]["order_id"]
        status, one = await signed(live, "mm1", "GET", "/order", f"order_id={order_id}")
        assert status == 200 and one["status"] == "partially_filled", one
        status, canceled = await signed(live, "mm1", "DELETE", "/order", f"order_id={order_id}")
        assert status == 200 and canceled["status"] == "canceled", canceled
        await wait_written()
        status, one = await signed(live, "mm1", "GET", "/order", f"order_id={order_id}")
        assert status == 200 and one["status"] == "canceled", one
        status, balances = await signed(live, "bob", "GET", "/balances")
        assert status == 200 and {b["asset"] for b in balances} >= {"BTC", "KZT"}
        status, opened = await signed(live, "mm1", "GET", "/orders/open")
        assert status == 200 and opened["orders"] == []
        status, cancel_all = await signed(live, "mm1", "DELETE", "/orders", f"market={BTC}")
        assert status == 200 and cancel_all["count"] == 0
        status, candles = await request(live, "GET", "/candles", f"market={BTC}&interval=1m")
        assert status == 200 and len(candles) == 1
        assert candles[0][1:] == [
            "45000000.00",
            "45000000.00",
            "45000000.00",
            "45000000.00",
            "0.25000000",
            "11250000.00",
            1,
        ]
        await mm.ws.close()


@async_test
async def test_history_survives_a_restart_without_duplicates_and_equals_a_rebuild(
    tmp_path: Path,
) -> None:
    async with live_server(tmp_path) as live:
        mm = await trade_over_both_doors(live)
        await mm.ws.close()
        await wait_written()
        _, before = await signed(live, "bob", "GET", "/fills")
        _, orders_before = await signed(live, "bob", "GET", "/orders/history")
        # While it runs the journal still goes back to seq 1 (a clean stop snapshots and
        # prunes it): a copy of the data directory, rebuilt, equals the live-written rows.
        copy = tmp_path.parent / f"{tmp_path.name}-copy"
        shutil.copytree(tmp_path, copy, ignore=shutil.ignore_patterns("lock", "history.*"))
        live_rows = dump(tmp_path / "history.sqlite")
    box = resolve_secret_box(key_file=None, data_dir=str(copy))
    print(rebuild_history(copy, VenueFiles(secret_box=box)))
    assert dump(copy / "history.sqlite") == live_rows
    async with live_server(tmp_path) as live:
        _, after = await signed(live, "bob", "GET", "/fills")
        _, orders_after = await signed(live, "bob", "GET", "/orders/history")
        mm = await trader(live, "mm1")  # the book survived too: trade once more
        status, body = await signed(
            live, "bob", "POST", "/order", body=place("buy", "45000000.00", "0.25000000")
        )
        assert status == 200, body
        await mm.ws.close()
        await wait_written()
        _, more = await signed(live, "bob", "GET", "/fills")
    assert after == before and orders_after == orders_before
    assert len(before["fills"]) == 1 and len(more["fills"]) == 2
    assert len({f["trade_id"] for f in more["fills"]}) == 2


@async_test
async def test_a_history_database_in_the_old_layout_is_converted_at_the_next_start(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async def history_answers(live: Live, order_id: int) -> list[Any]:
        return [
            await signed(live, "bob", "GET", "/fills"),
            await signed(live, "mm1", "GET", "/fills"),
            await signed(live, "bob", "GET", "/orders/history"),
            await signed(live, "mm1", "GET", "/order", f"order_id={order_id}"),
        ]

    async with live_server(tmp_path) as live:
        mm = await trade_over_both_doors(live)
        [resting] = (await mm.call("orders.open", {"market": BTC}))["result"]["orders"]
        await mm.call("order.cancel", {"market": BTC, "order_id": resting["order_id"]})
        await mm.ws.close()
        await wait_written()
        before = await history_answers(live, resting["order_id"])
    path = tmp_path / "history.sqlite"
    unversioned_copy(path, tmp_path / "old.sqlite")  # as the version before wrote it
    for leftover in (Path(f"{path}-wal"), Path(f"{path}-shm")):
        leftover.unlink(missing_ok=True)
    (tmp_path / "old.sqlite").replace(path)
    with caplog.at_level(logging.WARNING, logger="alatau.history"):
        async with live_server(tmp_path) as live:
            after = await history_answers(live, resting["order_id"])
            mm = await trader(live, "mm1")  # and it is written to as before
            assert (await mm.call("order.place", place("sell", "45000000.00", "1.00000000")))["ok"]
            status, body = await signed(
                live, "bob", "POST", "/order", body=place("buy", "45000000.00", "0.25000000")
            )
            assert status == 200, body
            await mm.ws.close()
            await wait_written()
            _, more = await signed(live, "bob", "GET", "/fills")
    assert after == before
    assert before[3][1]["status"] == "canceled" and len(before[0][1]["fills"]) == 1
    assert len(more["fills"]) == 2
    converted = [r.getMessage() for r in caplog.records if "converted" in r.getMessage()]
    assert len(converted) == 1 and converted[0].startswith(f"{path}: the history database was")


def dump(path: Path) -> dict[str, list[Any]]:
    conn = sqlite3.connect(path)
    try:
        return {
            table: sorted(conn.execute(f"SELECT * FROM {table}").fetchall(), key=repr)
            for table in ("trades", "fills", "orders")
        }
    finally:
        conn.close()


@async_test
async def test_signatures_refused_and_nothing_changes() -> None:
    async with live_server(None) as live:
        path = "/api/v1/orders/open"
        good = signed_headers("bob", "GET", path, "", b"")
        bad = dict(good, **{"X-Alatau-Signature": "ab" * 64})
        assert (await request(live, "GET", "/orders/open", headers=bad))[1]["error"][
            "code"
        ] == "AUTH_FAILED"
        status, _ = await request(live, "GET", "/orders/open", headers=good)
        assert status == 200
        status, body = await request(live, "GET", "/orders/open", headers=good)  # replayed
        assert (status, body["error"]["code"]) == (401, "AUTH_FAILED"), body
        old = signed_headers("bob", "GET", path, "", b"", timestamp=fresh_timestamp() - 600_000)
        assert (await request(live, "GET", "/orders/open", headers=old))[0] == 401
        hmac_kind = dict(good, **{"X-Alatau-Signature": sign_request("x", b"y")})
        assert (await request(live, "GET", "/orders/open", headers=hmac_kind))[0] == 401
        status, body = await request(live, "GET", "/balances")
        assert (status, body["error"]["code"]) == (401, "UNAUTHENTICATED")
        # signed for another path, or another body
        other = signed_headers("bob", "GET", "/api/v1/balances", "", b"")
        assert (await request(live, "GET", "/orders/open", headers=other))[0] == 401
        order = json.dumps(place("buy", "1.00", "1.00000000")).encode()
        headers = signed_headers("bob", "POST", "/api/v1/order", "", order)
        tampered = json.dumps(place("buy", "2.00", "1.00000000")).encode()
        assert (await request(live, "POST", "/order", body=tampered, headers=headers))[0] == 401
        for method, endpoint, query, body, code, expected in (
            ("GET", "/order", "", None, 400, "INVALID_PARAMS"),
            ("GET", "/order", "order_id=999999", None, 404, "UNKNOWN_ORDER"),
            ("GET", "/orders/open", "market=NOPE", None, 404, "UNKNOWN_MARKET"),
            ("GET", "/fills", "limit=0", None, 400, "INVALID_PARAMS"),
            ("GET", "/orders/history", "cursor=x", None, 400, "INVALID_PARAMS"),
            ("POST", "/order", "", {"market": BTC}, 400, "INVALID_PARAMS"),
            ("POST", "/order", "", place("buy", "1.001", "1"), 400, "INVALID_NUMBER"),
            ("DELETE", "/order", f"market={BTC}&order_id=424242", None, 404, "UNKNOWN_ORDER"),
            ("DELETE", "/orders", "side=up", None, 400, "INVALID_PARAMS"),
            ("PUT", "/order", "", None, 405, "METHOD_NOT_ALLOWED"),
            ("GET", "/candles", f"market={BTC}&interval=2m", None, 400, "INVALID_PARAMS"),
        ):
            status, answer = await signed(live, "bob", method, endpoint, query, body)
            assert (status, answer["error"]["code"]) == (code, expected), (endpoint, answer)
        status, opened = await signed(live, "bob", "GET", "/orders/open")
        assert opened["orders"] == []


def test_candles_aggregate_exactly_across_interval_boundaries() -> None:
    from engine.reports import TradePrinted

    writer = HistoryWriter(None)
    trades = [  # (ts, price, qty): minute 0 twice, minute 1 once, minute 3 once
        (59_999, 100, 3),
        (1_000, 120, 1),
        (60_000, 90, 2),
        (180_001, 95, 5),
    ]
    with hist.transaction(writer._conn):
        hist.apply_batch(
            writer._conn,
            1,
            [
                [
                    TradePrinted(
                        ts=ts, market=BTC, trade_id=i + 1, price=p, qty=q, taker_side="buy"
                    )
                    for i, (ts, p, q) in enumerate(trades)
                ]
            ],
        )
    rows = writer.candles(BTC, 60_000, 0, None, 1000, 10)
    # quote volume per trade: price * qty // 10 (base scale 1 here)
    assert rows == [
        (0, 120, 120, 100, 100, 4, 30 + 12, 2),  # opened at ts 1000, closed at 59999
        (60_000, 90, 90, 90, 90, 2, 18, 1),
        (180_000, 95, 95, 95, 95, 5, 47, 1),
    ]
    assert writer.candles(BTC, 60_000, None, None, 2, 10)[0][0] == 60_000  # the latest two
    assert writer.candles(BTC, 300_000, 0, None, 1000, 10) == [(0, 120, 120, 90, 95, 11, 107, 4)]
    assert decimal_text(107, 2) == "1.07"
    writer.close()


def test_retention_prunes_old_rows_only() -> None:
    from engine.reports import TradePrinted

    now = 400 * hist.DAY_MS
    writer = HistoryWriter(None, retention_days=30, clock_ms=lambda: now)
    writer.start()
    old = TradePrinted(
        ts=now - 31 * hist.DAY_MS, market=BTC, trade_id=1, price=1, qty=1, taker_side="buy"
    )
    new = TradePrinted(
        ts=now - hist.DAY_MS, market=BTC, trade_id=2, price=1, qty=1, taker_side="buy"
    )
    writer.offer(1, [[old, new]])
    writer.offer(1, [[old, new]])  # again: idempotent
    writer.prune_now()
    assert [r[0] for r in writer.candles(BTC, 60_000, 0, None, 10, 1)] == [
        new.ts // 60_000 * 60_000
    ]
    writer.close()


@pytest.mark.parametrize("separate_process", [True, False])
def test_a_full_queue_marks_the_history_stale_and_never_blocks(
    tmp_path: Path, separate_process: bool
) -> None:
    # Not started: nothing drains; room for one batch (a thread's queue, a process's pipe).
    frame_bytes = len(encode_batch(1, [[]]))
    writer = HistoryWriter(
        tmp_path / "h.sqlite",
        queue_batches=1,
        pending_bytes=frame_bytes,
        separate_process=separate_process,
    )
    writer.offer(1, [[]])
    writer.offer(2, [[]])  # full: dropped at once
    assert writer.behind
    writer.start()
    writer.close()
    conn = hist.connect(tmp_path / "h.sqlite")
    assert hist.is_stale(conn) and hist.last_seq(conn) == 1
    conn.close()
