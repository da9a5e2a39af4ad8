"""The history database's layout (issue 16): the queries use the partial indexes and the
tables' own keys, writing a batch twice changes nothing, and a database in the layout from
before versions (text order keys, rowid tables) is converted at its next open, logged, with
the same rows and answers as one written in the current layout; one from a newer version is
refused."""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from engine.reports import OrderReport, Report, TradePrinted
from gateway.storage import history
from gateway.storage.history import HistoryWriter
from tests.kit.reports import fill_report, order_report

UNVERSIONED_TABLES = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE trades (
    market TEXT NOT NULL, trade_id INTEGER NOT NULL, ts INTEGER NOT NULL,
    price INTEGER NOT NULL, qty INTEGER NOT NULL, taker_side TEXT NOT NULL,
    PRIMARY KEY (market, trade_id)
);
CREATE INDEX trades_by_time ON trades (market, ts);
CREATE TABLE fills (
    order_id INTEGER NOT NULL, trade_id INTEGER NOT NULL, participant_id TEXT NOT NULL,
    market TEXT NOT NULL, client_order_id TEXT, side TEXT NOT NULL, price INTEGER NOT NULL,
    qty INTEGER NOT NULL, fee INTEGER NOT NULL, fee_asset TEXT NOT NULL,
    liquidity TEXT NOT NULL, ts INTEGER NOT NULL,
    PRIMARY KEY (order_id, trade_id)
);
CREATE INDEX fills_by_owner ON fills (participant_id, ts);
CREATE TABLE orders (
    order_key TEXT PRIMARY KEY, order_id INTEGER, participant_id TEXT NOT NULL,
    market TEXT NOT NULL, client_order_id TEXT, side TEXT NOT NULL, order_type TEXT,
    price INTEGER, qty INTEGER NOT NULL, filled_qty INTEGER NOT NULL,
    remaining_qty INTEGER NOT NULL, status TEXT NOT NULL, reason TEXT, message TEXT,
    created_ts INTEGER NOT NULL, ts INTEGER NOT NULL
);
"""
"""The layout before ``SCHEMA_VERSION`` 1, as the code of the time created it (with one of
the two sets of orders' indexes below)."""
UNVERSIONED_INDEXES = {
    "partial": """
CREATE INDEX orders_closed_by_owner ON orders (participant_id, ts)
    WHERE status <> 'new' AND status <> 'partially_filled';
CREATE INDEX orders_by_client_order_id ON orders (participant_id, client_order_id)
    WHERE client_order_id IS NOT NULL;
""",
    "full": """
CREATE INDEX orders_by_owner ON orders (participant_id, ts);
CREATE INDEX orders_by_client_id ON orders (participant_id, client_order_id);
""",
}


def order(order_id: int | None, status: str, ts: int, client_order_id: str | None) -> OrderReport:
    return order_report(
        ts=ts,
        participant_id=f"p{(order_id or ts) % 3}",
        order_id=order_id,
        client_order_id=client_order_id,
        price=100 + (order_id or 0),
        qty=10,
        remaining_qty=0 if status != "new" else 10,
        status=status,
        reason="user" if status == "canceled" else None,
        message="no funds" if status == "rejected" else None,
    )


def traded(order_id: int, trade_id: int, ts: int) -> list[Report]:
    fill = fill_report(
        ts=ts,
        participant_id=f"p{order_id % 3}",
        order_id=order_id,
        trade_id=trade_id,
        fill_price=100 + order_id,
        fill_qty=10,
        fee=1,
        liquidity="maker",
        filled_qty=10,
        remaining_qty=0,
        status="filled",
    )
    trade = TradePrinted(
        ts=ts, market="BTC-KZT", trade_id=trade_id, price=100 + order_id, qty=10, taker_side="sell"
    )
    return [fill, trade]


def commands() -> list[list[Report]]:
    """Orders placed (some with client order ids), canceled, rejected before they got an id
    (``r<seq>.0``), filled; in that order."""
    out: list[list[Report]] = [
        [order(i, "new", 1_000 + i, f"c{i % 7}" if i % 2 else None)] for i in range(1, 121)
    ]
    out += [
        [order(i, "canceled", 2_000 + i, f"c{i % 7}" if i % 2 else None)] for i in range(1, 121, 3)
    ]
    out += [[order(None, "rejected", 2_200 + i, f"r{i}")] for i in range(12)]
    out += [traded(i, 1 + i // 3, 2_300 + i) for i in range(2, 121, 3)]
    return out


def fill_with_orders(conn: sqlite3.Connection) -> None:
    batch = commands()
    with history.transaction(conn):
        history.apply_chunk(conn, [(len(batch), batch)])


def answers(path: Path) -> list[Any]:
    writer = HistoryWriter(path, retention_days=0, separate_process=False)
    try:
        out: list[Any] = []
        for participant in ("p0", "p1", "p2"):
            out.append(writer.closed_orders(participant, None, None, None, 1000, None))
            out.append(writer.closed_orders(participant, "BTC-KZT", 2_010, 2_100, 5, (2_090, "o9")))
            out.append(writer.closed_orders(participant, None, 2_200, None, 4, (2_300, "r9.0")))
            out.append(writer.fills(participant, None, None, None, 1000, None))
            out.append(writer.fills(participant, "BTC-KZT", 2_300, None, 3, (2_400, 30, 90)))
            for client_order_id in [f"c{k}" for k in range(8)] + [f"r{k}" for k in range(12)]:
                out.append(writer.order(participant, None, client_order_id))
            for order_id in [*range(-300, 0, 37), *range(0, 125, 4)]:
                out.append(writer.order(participant, order_id, None))
        out.append(writer.candles("BTC-KZT", 60_000, None, None, 100, 1))
        return out
    finally:
        writer.close()


def rows(path: Path) -> list[list[tuple[Any, ...]]]:
    """Every row, as the queries read them (the orders' as the text-keyed table had them)."""
    conn = sqlite3.connect(path)
    try:
        return [
            conn.execute(f"SELECT {columns} FROM {table} ORDER BY {key}").fetchall()
            for table, columns, key in (
                ("trades", history.TRADE_COLUMNS, "market, trade_id"),
                ("fills", history.FILL_ROW_COLUMNS, "order_id, trade_id"),
                ("orders", f"order_key, {history.ORDER_COLUMNS}", "order_key"),
                ("meta", "*", "key"),
            )
        ]
    finally:
        conn.close()


def unversioned_copy(source: Path, target: Path, indexes: str = "partial") -> None:
    """``target``: the database at ``source`` as the layout before versions holds it."""
    conn = sqlite3.connect(target, isolation_level=None)
    try:
        conn.executescript(UNVERSIONED_TABLES + UNVERSIONED_INDEXES[indexes])
        conn.execute("ATTACH ? AS current", (str(source),))
        trades, fills = history.TRADE_COLUMNS, history.FILL_ROW_COLUMNS  # by name
        conn.executescript(
            f"""
            INSERT INTO meta SELECT * FROM current.meta;
            INSERT INTO trades ({trades}) SELECT {trades} FROM current.trades;
            INSERT INTO fills ({fills}) SELECT {fills} FROM current.fills;
            INSERT INTO orders SELECT order_key, {history.ORDER_COLUMNS} FROM current.orders;
            """
        )
        conn.execute("DETACH current")
        assert history.schema_version(conn) == 0
    finally:
        conn.close()


def indexes(conn: sqlite3.Connection) -> set[str]:
    return {
        row[0]
        for row in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL"
        )
    }


def plan(conn: sqlite3.Connection, sql: str, args: tuple[Any, ...]) -> str:
    return " | ".join(row[3] for row in conn.execute(f"EXPLAIN QUERY PLAN {sql}", args))


def test_the_queries_use_the_partial_indexes_and_the_tables_keys(tmp_path: Path) -> None:
    conn = history.connect(tmp_path / "h.sqlite")
    try:
        assert history.schema_version(conn) == history.SCHEMA_VERSION
        assert indexes(conn) == {"orders_closed_by_owner", "orders_by_client_order_id"}
        closed = (
            f"SELECT {history.ORDER_COLUMNS}, order_key FROM orders WHERE participant_id = ? "
            f"AND status IN {history.CLOSED!r} AND {history.NOT_OPEN} "
            "ORDER BY ts DESC, order_key DESC LIMIT ?"
        )
        by_client = (
            f"SELECT {history.ORDER_COLUMNS} FROM orders WHERE participant_id = ? AND "
            "client_order_id = ? ORDER BY created_ts DESC, order_key DESC LIMIT 1"
        )
        by_id = (
            f"SELECT {history.ORDER_COLUMNS} FROM orders WHERE participant_id = ? AND "
            "id = ? AND id >= 0 ORDER BY created_ts DESC, order_key DESC LIMIT 1"
        )
        fills = (
            f"SELECT {history.FILL_COLUMNS} FROM fills WHERE participant_id = ? "
            "ORDER BY ts DESC, trade_id DESC, order_id DESC LIMIT ?"
        )
        trades = "SELECT * FROM trades WHERE market = ? AND ts >= ? ORDER BY ts, trade_id"
        for sql, args, expected in (
            (closed, ("p1", 5), "USING INDEX orders_closed_by_owner"),
            (by_client, ("p1", "c1"), "USING INDEX orders_by_client_order_id"),
            (by_id, ("p1", 7), "USING INTEGER PRIMARY KEY (rowid=?)"),
            (fills, ("p1", 5), "SEARCH fills USING PRIMARY KEY (participant_id=?)"),
            (trades, ("BTC-KZT", 5), "SEARCH trades USING PRIMARY KEY (market=? AND ts>?)"),
        ):
            found = plan(conn, sql, args)
            assert expected in found, found
        for sql, args in ((fills, ("p1", 5)), (trades, ("BTC-KZT", 5))):
            assert "TEMP B-TREE" not in plan(conn, sql, args)  # read in key order, not sorted
    finally:
        conn.close()


def test_writing_the_same_batches_twice_changes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "h.sqlite"
    conn = history.connect(path)
    try:
        fill_with_orders(conn)
        once = rows(path)
        fill_with_orders(conn)
        assert rows(path) == once
    finally:
        conn.close()
    assert [len(table) for table in once] == [40, 40, 132, 1]
    assert once[2][-12][:2] == ("r161.0", None)  # a reject's key: seq 161, its first


@pytest.mark.parametrize("indexes_then", ["partial", "full"])
def test_an_unversioned_database_is_converted_at_its_next_open(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, indexes_then: str
) -> None:
    current, old = tmp_path / "current.sqlite", tmp_path / "old.sqlite"
    conn = history.connect(current)
    fill_with_orders(conn)
    conn.close()
    unversioned_copy(current, old, indexes_then)
    with caplog.at_level(logging.WARNING, logger="alatau.history"):
        conn = history.connect(old)  # the next open
    try:
        [logged] = [r.getMessage() for r in caplog.records]
        assert logged.startswith(
            f"{old}: the history database was converted to layout version 1 (integer order "
            "keys, trades and fills in one B-tree each): 132 orders, 40 fills and 40 trades "
            "kept, in "
        )
        assert history.schema_version(conn) == history.SCHEMA_VERSION
        assert indexes(conn) == {"orders_closed_by_owner", "orders_by_client_order_id"}
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        found = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
        assert not any(name.endswith("_unversioned") for name in found)
    finally:
        conn.close()
    assert rows(old) == rows(current)
    found = answers(old)
    assert found == answers(current)
    assert any(found) and any(row is None for row in found)
    caplog.clear()
    conn = history.connect(old)  # and once only
    try:
        fill_with_orders(conn)  # written to as any other
    finally:
        conn.close()
    assert caplog.records == []
    assert rows(old) == rows(current)


def test_an_unwritable_conversion_leaves_the_database_as_it_was(tmp_path: Path) -> None:
    current, old = tmp_path / "current.sqlite", tmp_path / "old.sqlite"
    conn = history.connect(current)
    fill_with_orders(conn)
    conn.close()
    unversioned_copy(current, old)
    conn = sqlite3.connect(old, isolation_level=None)  # two keys, one id: the second fails
    conn.execute("UPDATE orders SET order_key = 'r161.0x' WHERE order_key = 'r162.0'")
    conn.close()
    before = sqlite3.connect(old).execute("SELECT count(*) FROM orders").fetchone()
    with pytest.raises(sqlite3.Error):
        history.connect(old)
    conn = sqlite3.connect(old)
    try:
        assert history.schema_version(conn) == 0
        assert conn.execute("SELECT type FROM sqlite_master WHERE name = 'orders'").fetchone() == (
            "table",
        )
        assert conn.execute("SELECT count(*) FROM orders").fetchone() == before
    finally:
        conn.close()


def test_a_database_from_a_newer_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "h.sqlite"
    conn = history.connect(path)
    conn.execute(f"PRAGMA user_version = {history.SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(sqlite3.DatabaseError, match="layout is version 2, newer than this"):
        history.connect(path)


def test_a_reject_id_is_negative_and_reads_back_as_its_key() -> None:
    conn = history.connect(None)
    try:
        for seq, n in ((1, 0), (163, 0), (2**40, 255)):
            key = history.reject_id(seq, n)
            assert key < 0
            assert conn.execute(
                f"SELECT {history.ORDER_KEY} FROM (SELECT ? AS id)", (key,)
            ).fetchone() == (f"r{seq}.{n}",)
        with pytest.raises(ValueError, match="256 at most"):
            history.reject_id(5, 256)
    finally:
        conn.close()
