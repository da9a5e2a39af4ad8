"""The orders table's partial indexes (issue 16): the queries use them, and a database made
before them (full indexes ``orders_by_owner`` and ``orders_by_client_id``) gets them at its
next open, with the same answers."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from engine.reports import OrderReport
from gateway.storage import history
from gateway.storage.history import HistoryWriter

OLD_INDEXES = """
CREATE INDEX orders_by_owner ON orders (participant_id, ts);
CREATE INDEX orders_by_client_id ON orders (participant_id, client_order_id);
"""


def order(order_id: int, status: str, ts: int, client_order_id: str | None) -> OrderReport:
    return OrderReport(
        ts=ts,
        participant_id=f"p{order_id % 3}",
        market="BTC-KZT",
        order_id=order_id,
        client_order_id=client_order_id,
        side="buy",
        order_type="limit",
        price=100 + order_id,
        qty=10,
        filled_qty=0,
        remaining_qty=0 if status != "new" else 10,
        status=status,  # type: ignore[arg-type]
        reason="user" if status == "canceled" else None,
    )


def fill_with_orders(conn: sqlite3.Connection) -> None:
    commands = [[order(i, "new", 1_000 + i, f"c{i % 7}" if i % 2 else None)] for i in range(1, 121)]
    commands += [
        [order(i, "canceled", 2_000 + i, f"c{i % 7}" if i % 2 else None)] for i in range(1, 121, 3)
    ]
    with history.transaction(conn):
        history.apply_chunk(conn, [(len(commands), commands)])


def answers(path: Path) -> list[Any]:
    writer = HistoryWriter(path, retention_days=0, separate_process=False)
    try:
        out: list[Any] = []
        for participant in ("p0", "p1", "p2"):
            out.append(writer.closed_orders(participant, None, None, None, 1000, None))
            out.append(writer.closed_orders(participant, "BTC-KZT", 2_010, 2_100, 5, (2_090, "o9")))
            for client_order_id in (f"c{k}" for k in range(8)):
                out.append(writer.order(participant, None, client_order_id))
            for order_id in range(0, 125, 4):
                out.append(writer.order(participant, order_id, None))
        return out
    finally:
        writer.close()


def indexes(conn: sqlite3.Connection) -> set[str]:
    return {
        row[0]
        for row in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'orders' "
            "AND sql IS NOT NULL"
        )
    }


def test_the_queries_use_the_partial_indexes(tmp_path: Path) -> None:
    conn = history.connect(tmp_path / "h.sqlite")
    try:
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
        for sql, args, index in (
            (closed, ("p1", 5), "orders_closed_by_owner"),
            (by_client, ("p1", "c1"), "orders_by_client_order_id"),
        ):
            plan = " ".join(row[3] for row in conn.execute(f"EXPLAIN QUERY PLAN {sql}", args))
            assert f"USING INDEX {index}" in plan
    finally:
        conn.close()


def test_a_database_with_the_old_full_indexes_gets_the_partial_ones(tmp_path: Path) -> None:
    new, old = tmp_path / "new.sqlite", tmp_path / "old.sqlite"
    conn = history.connect(new)
    fill_with_orders(conn)
    conn.close()
    conn = history.connect(old)
    conn.executescript(
        "DROP INDEX orders_closed_by_owner; DROP INDEX orders_by_client_order_id;" + OLD_INDEXES
    )
    fill_with_orders(conn)
    assert indexes(conn) == {"orders_by_owner", "orders_by_client_id"}
    conn.close()
    conn = history.connect(old)  # the next open
    try:
        assert indexes(conn) == {"orders_closed_by_owner", "orders_by_client_order_id"}
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    finally:
        conn.close()
    found = answers(old)
    assert found == answers(new)
    assert any(found) and any(row is None for row in found)
