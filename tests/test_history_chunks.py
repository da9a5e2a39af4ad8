"""The history database's chunked writes (issue 16): ``apply_chunk`` folds an order's reports
into one statement and writes each table with one ``executemany``; the rows must be exactly
those of writing every report with its own statement, in order, whatever the chunking and
whatever rows were there before.  The oracle below is that plain way."""

from __future__ import annotations

import sqlite3
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from engine.reports import FillReport, OrderReport, Report, TradePrinted
from gateway.storage import history
from tests.kit.reports import fill_report, order_report


def oracle(conn: sqlite3.Connection, seq: int, commands: list[list[Report]]) -> None:
    """Every report its own statement, in order (what the writer did before chunks)."""
    first_seq = seq - len(commands) + 1
    for index, reports in enumerate(commands):
        rejected = 0
        for r in reports:
            if isinstance(r, TradePrinted):
                conn.execute(
                    "INSERT OR IGNORE INTO trades (market, trade_id, ts, price, qty, taker_side) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    (r.market, r.trade_id, r.ts, r.price, r.qty, r.taker_side),
                )
            elif isinstance(r, FillReport):
                conn.execute(
                    "INSERT OR IGNORE INTO fills (order_id, trade_id, participant_id, market, "
                    "client_order_id, side, price, qty, fee, fee_asset, liquidity, ts) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        r.order_id,
                        r.trade_id,
                        r.participant_id,
                        r.market,
                        r.client_order_id,
                        r.side,
                        r.fill_price,
                        r.fill_qty,
                        r.fee,
                        r.fee_asset,
                        r.liquidity,
                        r.ts,
                    ),
                )
                conn.execute(
                    history._FILL_ORDER,
                    (
                        r.order_id,
                        r.participant_id,
                        r.market,
                        r.client_order_id,
                        r.side,
                        r.filled_qty + r.remaining_qty,
                        r.filled_qty,
                        r.remaining_qty,
                        r.status,
                        r.ts,
                        r.ts,
                    ),
                )
            elif isinstance(r, OrderReport):
                if r.order_id is None:
                    key = history.reject_id(first_seq + index, rejected)
                    rejected += 1
                else:
                    key = r.order_id
                conn.execute(
                    history._UPSERT_ORDER,
                    (
                        key,
                        r.participant_id,
                        r.market,
                        r.client_order_id,
                        r.side,
                        r.order_type,
                        r.price,
                        r.qty,
                        r.filled_qty,
                        r.remaining_qty,
                        r.status,
                        r.reason,
                        r.message,
                        r.ts,
                        r.ts,
                    ),
                )
    history.set_meta(conn, "last_seq", str(seq))


ORDER_IDS = st.sampled_from([None, 1, 2, 3])
TS = st.integers(1, 50)
QTY = st.integers(0, 9)


@st.composite
def a_report(draw: Any) -> Report:
    kind = draw(st.sampled_from(["order", "order", "fill", "trade"]))
    ts = draw(TS)
    if kind == "trade":
        return TradePrinted(
            ts=ts,
            market="BTC-KZT",
            trade_id=draw(st.integers(1, 6)),
            price=draw(QTY),
            qty=draw(QTY),
            taker_side="buy",
        )
    order_id = draw(ORDER_IDS)
    if kind == "fill":
        return FillReport(
            ts=ts,
            participant_id="bob",
            market="BTC-KZT",
            order_id=order_id or 1,
            client_order_id=draw(st.sampled_from([None, "c1"])),
            side="buy",
            trade_id=draw(st.integers(1, 6)),
            fill_price=draw(QTY),
            fill_qty=draw(QTY),
            fee=draw(QTY),
            fee_asset="KZT",
            liquidity=draw(st.sampled_from(["maker", "taker"])),
            filled_qty=draw(QTY),
            remaining_qty=draw(QTY),
            status=draw(st.sampled_from(["partially_filled", "filled"])),
        )
    return OrderReport(
        ts=ts,
        participant_id="bob",
        market="BTC-KZT",
        order_id=order_id,
        client_order_id=draw(st.sampled_from([None, "c1"])),
        side="sell",
        order_type=draw(st.sampled_from(["limit", "market"])),
        price=draw(st.sampled_from([None, 5, 7])),
        qty=draw(QTY),
        filled_qty=draw(QTY),
        remaining_qty=draw(QTY),
        status=draw(st.sampled_from(["new", "canceled", "rejected", "filled"])),
        reason=draw(st.sampled_from([None, "user"])),
        message=draw(st.sampled_from([None, "why"])),
    )


def tables(conn: sqlite3.Connection) -> list[list[tuple[Any, ...]]]:
    return [
        conn.execute(f"SELECT * FROM {table} ORDER BY 1, 2").fetchall()
        for table in ("orders", "fills", "trades", "meta")
    ]


@settings(max_examples=300, deadline=None)
@given(
    before=st.lists(st.lists(a_report(), max_size=4), max_size=4),
    batches=st.lists(st.lists(st.lists(a_report(), max_size=5), min_size=1, max_size=3)),
    cuts=st.lists(st.integers(1, 4), min_size=1, max_size=8),
)
def test_chunked_writes_leave_the_rows_that_report_by_report_writes_do(
    before: list[list[Report]], batches: list[list[list[Report]]], cuts: list[int]
) -> None:
    plain, chunked = history.connect(None), history.connect(None)
    seq = len(before)
    for conn in (plain, chunked):  # the same rows already there
        oracle(conn, seq, before)
    numbered = []
    for commands in batches:
        seq += len(commands)
        numbered.append((seq, commands))
        oracle(plain, seq, commands)
    at = 0
    for cut in cuts * (len(numbered) + 1):
        if at >= len(numbered):
            break
        history.apply_chunk(chunked, numbered[at : at + cut])
        at += cut
    assert tables(chunked) == tables(plain)


def test_a_place_and_its_cancel_in_one_chunk_are_one_statement() -> None:
    conn = history.connect(None)
    statements: list[str] = []
    conn.set_trace_callback(statements.append)
    placed = order_report(ts=1, participant_id="bob", order_id=9, price=5, qty=3, remaining_qty=3)
    canceled = order_report(
        ts=2,
        participant_id="bob",
        order_id=9,
        price=5,
        qty=3,
        remaining_qty=0,
        status="canceled",
        reason="user",
    )
    history.apply_chunk(conn, [(1, [[placed]]), (2, [[canceled]])])
    assert sum("INTO order_rows" in s for s in statements) == 1
    assert conn.execute("SELECT status, created_ts, ts FROM orders").fetchall() == [
        ("canceled", 1, 2)
    ]


def test_many_orders_a_chunk_written_many_rows_a_statement_leave_the_same_rows() -> None:
    """However many rows there are, ``ROWS_A_STATEMENT`` at a time, then fewer, writes each
    once: the same rows as a statement per report, and the statements say so."""
    for count in (0, 1, 3, 4, 5, 16, 21, 64, 85, 150):
        commands: list[list[Report]] = []
        for i in range(1, count + 1):
            placed = order_report(
                ts=i,
                participant_id=f"p{i % 3}",
                order_id=i if i % 7 else None,
                client_order_id=None if i % 2 else f"c{i}",
                price=i,
                qty=3,
                remaining_qty=3,
                status="new" if i % 7 else "rejected",
            )
            commands.append([placed])
            if i % 5 == 0 and i % 7:  # and a fill of it: a trade, a fill, its row again
                commands.append(
                    [
                        TradePrinted(
                            ts=i, market="BTC-KZT", trade_id=i, price=i, qty=1, taker_side="sell"
                        ),
                        fill_report(
                            ts=i,
                            participant_id=f"p{i % 3}",
                            order_id=i,
                            trade_id=i,
                            fill_price=i,
                            fill_qty=1,
                            fee=0,
                            liquidity="maker",
                            filled_qty=1,
                            remaining_qty=2,
                        ),
                    ]
                )
        plain, chunked = history.connect(None), history.connect(None)
        oracle(plain, len(commands), commands)
        statements: list[str] = []
        chunked.set_trace_callback(statements.append)
        history.apply_chunk(chunked, [(len(commands), commands)])
        assert tables(chunked) == tables(plain), count
        written = sum(s.count("), (") + 1 for s in statements if "INTO order_rows" in s)
        assert written == count  # each order's row once (its fill folded into it)
