"""The history database: trades, fills and orders in SQLite, written off the matching path.

The journal is the record of truth; this database is a query index built from the reports
the venue publishes, and it can always be rebuilt from the journal (``alatau history
rebuild``).  One file, ``history.sqlite`` in the data directory (mode 0600), or in memory
with ``--ephemeral``.

Writing (``HistoryWriter``): the venue's publish step hands each durable batch's reports to
``HistoryWriter.offer``, which never blocks.  For a database on disk (the server's) the
writer is a process of its own (``gateway.storage.history_process``): ``offer`` encodes the
batch once and writes it to a pipe, and the process writes what has arrived in one
transaction, with the last journal seq it applied (table ``meta``), so the server spends
neither CPU nor its GIL on SQLite (the biggest cost on an order's path before: see that
module).  For one in memory (``--ephemeral``, tests) a thread with the same connection does
it, from a bounded queue.  Either way a chunk of batches is written with ``apply_chunk``:
an order's reports folded into one statement, each table written with one
``executemany``.  Inserts are idempotent (trades keyed by ``(market, ts, trade_id)``, fills
by ``(participant_id, ts, trade_id, order_id)``, orders by order id: an order's row is its
latest state), so writing a batch twice changes nothing.

When the queue (or the pipe and what waits for it) is full, the batch is *not* waited for:
it is dropped, the database is marked ``stale`` in ``meta`` (at once, and for good until
it is rebuilt) and ``HistoryWriter.behind`` says so; queries go on answering from what was
written, with ``stale`` true. Matching is never slowed, and the loss is never silent: the
next start finds the mark (or a last seq behind the journal's) and rebuilds the database
from the journal before serving.

Reading: the server's queries (the histories, candles, a closed order's status) run on a
thread of their own, never on the event loop's (``HistoryWriter.read``): SQLite runs there
without the GIL, so however long a page takes, orders on every other connection go on
being answered.  On disk that thread has a connection of its own, which WAL lets read while
the writer writes; in memory it shares the writer's, under a lock.

Schema (integers in minor units, times in ms since the epoch; ``SCHEMA``):

* ``trades(market, ts, trade_id, price, qty, taker_side)``
* ``fills(participant_id, ts, trade_id, order_id, market, client_order_id, side, price,
  qty, fee, fee_asset, liquidity)``
* ``orders(order_key, order_id, participant_id, market, client_order_id, side, order_type,
  price, qty, filled_qty, remaining_qty, status, reason, message, created_ts, ts, id)``, a
  view of the table ``order_rows`` (keyed by ``id``): ``order_key`` is ``o<order_id>``, or
  ``r<seq>.<n>`` for an order rejected before it got an id; open orders are kept too (their
  last known state), closed ones are those whose ``status`` is ``filled``, ``canceled``,
  ``expired`` or ``rejected``
* ``meta(key, value)``: ``last_seq``, ``stale``

A database in an older layout is converted at its next open (``connect``, logged).

Retention: rows older than ``retention_days`` (trades, fills, closed orders; by ``ts``) are
deleted by the writer, at most once a minute; 0 keeps everything.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from itertools import chain
from pathlib import Path
from typing import Any, TypeVar

from engine.reports import FillReport, OrderReport, Report, TradePrinted
from gateway.storage.history_process import (
    PENDING_BYTES,
    STALE_SEQ,
    STORED_KINDS,
    WriterProcess,
    encode_batch,
)

log = logging.getLogger("alatau.history")
T = TypeVar("T")


def stored_reports(commands: list[list[Report]]) -> list[list[Report]]:
    """Each command's reports of the kinds the history keeps (``STORED_KINDS``, spelt out
    as three identity tests: a set lookup per report cost 500 instructions per order more;
    checked against it below), every command keeping its place, empty or not, since a
    rejected order's row is named by it: what the writer process is sent.  Balances,
    audit decisions and book changes are most of a batch's reports and bytes; encoding
    them only for the writer to skip them cost the event loop about 1,600 instructions per
    order (callgrind, ``benchmarks/order_path``)."""
    return [
        [
            report
            for report in reports
            if type(report) is OrderReport
            or type(report) is FillReport
            or type(report) is TradePrinted
        ]
        for reports in commands
    ]


if (OrderReport, FillReport, TradePrinted) != STORED_KINDS:
    raise ImportError("stored_reports must keep exactly the kinds of STORED_KINDS")


def _null(value: None) -> None:
    """None, bound as SQL NULL: the sqlite3 module's adapter for None (registered below).

    The sqlite3 module binds None as NULL, but only after looking for an adapter: with none
    registered, two failed attribute lookups (``__adapt__``, ``__conform__``), each raising
    and clearing an AttributeError with a formatted message, for every None bound (Python
    3.11's ``_sqlite/microprotocols.c``).  The orders' rows carry two or three (no client
    order id, reason or message): on ``benchmarks/history_bench.py``'s flow that lookup was
    a fifth of the instructions the writer spent in ``executemany`` (3,300 per None, 8,900
    per command; callgrind).  This adapter is found at once and binds the same NULL; it is
    process-wide, and changes nothing else (None is bound as NULL either way)."""
    return None


sqlite3.register_adapter(type(None), _null)

FILE_NAME = "history.sqlite"
CLOSED = ("filled", "canceled", "expired", "rejected")
NOT_OPEN = "status <> 'new' AND status <> 'partially_filled'"
"""The closed orders, as the partial index ``orders_closed_by_owner`` says it: the same rows
as ``status IN CLOSED`` (an order's status is one of the six), but an ``IN`` list in an
index's condition cost SQLite an ephemeral table per row written (measured: 85 against 51
thousand instructions per command of the bench's flow, under callgrind).  ``closed_orders``
says it too, so that SQLite sees the index applies."""
DEFAULT_RETENTION_DAYS = 365
QUEUE_BATCHES = 10_000  # batches waiting for the writer before it is marked behind
CHUNK_BATCHES = 512  # batches written per transaction at most
PRUNE_EVERY_S = 60.0
DAY_MS = 86_400_000
INTERVALS_MS = {
    "1m": 60_000,
    "5m": 300_000,
    "15m": 900_000,
    "1h": 3_600_000,
    "4h": 14_400_000,
    "1d": DAY_MS,
}

CHECKPOINT_PAGES = 4000
"""The WAL is copied into the database (a checkpoint, by the writer as it commits) once it
holds this many pages (16 MB; SQLite's default is 1,000): a page rewritten by many
transactions in a row (the tables' right edges, the recent orders a cancel updates) is then
copied once for more of them, and each checkpoint's reads, writes and fsyncs serve four
times the transactions.  Measured on ``benchmarks/history_bench.py``'s flow, 200,000
commands at 100 a transaction: 8 % fewer writes, half the reads and a quarter of the fsyncs
(strace), and 3.2 -> 2.5 µs of system CPU per command (medians of 3 alternating runs; 1.27
-> 1.08 at 1,000 a transaction).  Instructions are the same.  The WAL file stays that size
between checkpoints; a crash recovers it at the next open as before."""
TRADE_COLUMNS = "market, ts, trade_id, price, qty, taker_side"
FILL_ROW_COLUMNS = (
    "participant_id, ts, trade_id, order_id, market, client_order_id, side, price, qty, fee, "
    "fee_asset, liquidity"
)
"""The trades' and fills' columns as stored, their keys first (``FILL_COLUMNS``: as
``fills`` answers)."""
SCHEMA_VERSION = 1
"""The layout's version, kept in the file (``PRAGMA user_version``): 1 is the one below; a
database from before it (0, text order keys) is converted at its next open
(``connect``)."""
REJECTS_A_COMMAND = 256
"""Room for the rejected orders of one command in ``order_rows.id`` (``reject_id``): a
command places one order at most, so one is all there ever is."""
ORDER_KEY = (
    f"CASE WHEN id >= 0 THEN 'o' || id ELSE 'r' || ((-1 - id) / {REJECTS_A_COMMAND}) || '.' "
    f"|| ((-1 - id) % {REJECTS_A_COMMAND}) END"
)
"""``order_key`` from the stored id: ``o<order_id>``, or ``r<seq>.<n>`` (``reject_id``)."""

SCHEMA = (
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    """
CREATE TABLE trades (
    market TEXT NOT NULL, ts INTEGER NOT NULL, trade_id INTEGER NOT NULL,
    price INTEGER NOT NULL, qty INTEGER NOT NULL, taker_side TEXT NOT NULL,
    PRIMARY KEY (market, ts, trade_id)
) WITHOUT ROWID""",
    """
CREATE TABLE fills (
    participant_id TEXT NOT NULL, ts INTEGER NOT NULL, trade_id INTEGER NOT NULL,
    order_id INTEGER NOT NULL, market TEXT NOT NULL, client_order_id TEXT,
    side TEXT NOT NULL, price INTEGER NOT NULL, qty INTEGER NOT NULL, fee INTEGER NOT NULL,
    fee_asset TEXT NOT NULL, liquidity TEXT NOT NULL,
    PRIMARY KEY (participant_id, ts, trade_id, order_id)
) WITHOUT ROWID""",
    """
CREATE TABLE order_rows (
    id INTEGER PRIMARY KEY, participant_id TEXT NOT NULL, market TEXT NOT NULL,
    client_order_id TEXT, side TEXT NOT NULL, order_type TEXT, price INTEGER, qty INTEGER,
    filled_qty INTEGER, remaining_qty INTEGER, status TEXT, reason TEXT, message TEXT,
    created_ts INTEGER NOT NULL, ts INTEGER
)""",
    f"CREATE INDEX orders_closed_by_owner ON order_rows (participant_id, ts) WHERE {NOT_OPEN}",
    """
CREATE INDEX orders_by_client_order_id ON order_rows (participant_id, client_order_id)
    WHERE client_order_id IS NOT NULL""",
    f"""
CREATE VIEW orders AS SELECT
    {ORDER_KEY} AS order_key, CASE WHEN id >= 0 THEN id END AS order_id, participant_id,
    market, client_order_id, side, order_type, price, qty, filled_qty, remaining_qty, status,
    reason, message, created_ts, ts, id
FROM order_rows""",
)
"""The tables, as few B-trees as the queries allow, because every B-tree a row goes into
costs the writer a seek, an insert and the pages it dirties (each rewritten whole into the
WAL at commit):

* ``order_rows`` is keyed by an integer, the order id (``reject_id`` for an order rejected
  before it got one), the table's own rowid: one B-tree, where a ``TEXT PRIMARY KEY`` made
  it a rowid table plus an index of the keys, and a text key to bind per row.  The view
  ``orders`` shows it as the queries (and people) read it: ``order_key`` and ``order_id``
  derived from ``id``, the same values as the text keys stored before, and ``id`` last.
  The columns an upsert updates (``qty``, ``filled_qty``, ``remaining_qty``, ``status``,
  ``ts``) are not declared NOT NULL, and the upserts are ``INSERT OR FAIL``: a statement
  that can abort part-way (a NOT NULL the update breaks, under the default ABORT) makes
  SQLite keep a statement journal to undo it, which ``ROWS_A_STATEMENT`` rows make costly;
  these statements cannot.  What is given up is nothing: the values come from reports
  whose fields are typed and required (decoded by msgspec), and a statement that fails
  fails the whole transaction (``transaction`` rolls it back), so FAIL leaves no more
  behind than ABORT.
* ``trades`` and ``fills`` are ``WITHOUT ROWID`` tables ordered as they are read: trades by
  ``(market, ts, trade_id)`` (the candles' range), fills by ``(participant_id, ts,
  trade_id, order_id)`` (a participant's fills, newest first): one B-tree each instead of
  a rowid table, its key's index and the index the queries used.  A trade's or fill's
  ``ts`` is fixed by the journal, so these keys are unique exactly when ``(market,
  trade_id)`` and ``(order_id, trade_id)`` are, and ``INSERT OR IGNORE`` of a row written
  before still changes nothing.  Their key columns come first, in the key's order:
  SQLite 3.40.0 to 3.41.0 (Debian 12's) has ``PRAGMA integrity_check`` report NULLs in the
  NOT NULL columns of a ``WITHOUT ROWID`` table whose key is declared in another order
  (a false alarm, but one an operator checking a database should not meet).

Measured on ``benchmarks/history_bench.py``'s flow (callgrind, the writer's instructions per
command, with the None adapter above): 44.2k -> 35.6k at 100 commands a transaction,
40.0k -> 31.9k at 1,000; both its digests are unchanged (the rows compared column by
column, in the old layout's order).

The orders' indexes are partial, because each index entry is written for every order, at
high rates: ``orders_closed_by_owner`` holds only closed orders (an order enters it once, as
it closes, instead of at its place and again at each change of ``ts``), which is all
``closed_orders`` asks for (its condition says ``NOT_OPEN`` too, so SQLite uses the
index); ``orders_by_client_order_id`` only orders with a client order id
(``order`` by client id never asks for the others).  Measured on the benchmark's flow: a
quarter fewer bytes written to the WAL per command, and 51 against 56 thousand
instructions per command (callgrind)."""

_CONVERT_UNVERSIONED = (
    "ALTER TABLE trades RENAME TO trades_unversioned",
    "ALTER TABLE fills RENAME TO fills_unversioned",
    "ALTER TABLE orders RENAME TO orders_unversioned",
    *SCHEMA[1:4],  # the tables; their indexes once the old ones (same names) are gone
    f"INSERT INTO trades ({TRADE_COLUMNS}) SELECT {TRADE_COLUMNS} FROM trades_unversioned",
    f"INSERT INTO fills ({FILL_ROW_COLUMNS}) SELECT {FILL_ROW_COLUMNS} FROM fills_unversioned",
    f"""
INSERT INTO order_rows
SELECT coalesce(order_id, -1 - (
        CAST(substr(order_key, 2, instr(order_key, '.') - 2) AS INTEGER) * {REJECTS_A_COMMAND}
        + CAST(substr(order_key, instr(order_key, '.') + 1) AS INTEGER))),
    participant_id, market, client_order_id, side, order_type, price, qty, filled_qty,
    remaining_qty, status, reason, message, created_ts, ts
FROM orders_unversioned""",
    "DROP TABLE trades_unversioned",
    "DROP TABLE fills_unversioned",
    "DROP TABLE orders_unversioned",
    *SCHEMA[4:],
)
"""A database from before ``SCHEMA_VERSION`` 1 (text order keys ``o<id>`` and ``r<seq>.<n>``
in rowid tables, with the older full or the partial orders' indexes) in the layout above,
its rows as they were: the history is an index the journal can rebuild, but not always all
of it (a journal pruned after a snapshot cannot), so the rows are moved, not rebuilt."""

ROWS_A_STATEMENT = (64, 16, 4, 1)
"""The rows one statement writes (``_write``): as many of the largest as there are, then the
next size, down to 1.  One ``INSERT ... VALUES (...), (...), ...`` for 64 rows instead of
64 executions of a one-row statement saves each execution's own cost (the sqlite3 module's
reset and GIL release and retake, SQLite's cursors opened and closed, registers freed):
about a fifth of the work per row.  On ``benchmarks/history_bench.py``'s flow (callgrind,
instructions per command in the sqlite3 module and SQLite): 29.7k -> 23.2k at 100 commands
a transaction, 26.1k -> 19.5k at 1,000; in the whole writer, with the rows flattened, 35.6k
-> 30.7k and 31.9k -> 26.8k.  16 rows a statement at most gave 23.5k and 20.0k, 256 no
fewer than 64 (64 orders' rows are 960 parameters, under the 999 that SQLite before 3.32
allows a statement).  It needs statements that open no statement journal (``order_rows``, in
``SCHEMA``'s notes): one that does copies every page it changes aside first, into a
temporary file past 64 KiB, which cost more CPU than the rows a statement saved."""


def _statements(head: str, row: str, tail: str = "") -> dict[int, str]:
    """The statement for each number of rows in ``ROWS_A_STATEMENT``: ``head``, then
    ``row`` (one row's values) that many times, then ``tail``."""
    return {n: f"{head}\n{', '.join([row] * n)}\n{tail}" for n in ROWS_A_STATEMENT}


_INSERT_TRADES = _statements(
    f"INSERT OR IGNORE INTO trades ({TRADE_COLUMNS}) VALUES", "(?, ?, ?, ?, ?, ?)"
)
_INSERT_FILLS = _statements(
    f"INSERT OR IGNORE INTO fills ({FILL_ROW_COLUMNS}) VALUES",
    "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
)
_ORDER_INSERT = """INSERT OR FAIL INTO order_rows (id, participant_id, market, client_order_id,
    side, order_type, price, qty, filled_qty, remaining_qty, status, reason, message,
    created_ts, ts) VALUES"""
_UPSERT_ORDERS = _statements(
    _ORDER_INSERT,
    "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    """ON CONFLICT (id) DO UPDATE SET
    order_type = coalesce(excluded.order_type, order_rows.order_type),
    price = coalesce(excluded.price, order_rows.price),
    qty = excluded.qty, filled_qty = excluded.filled_qty,
    remaining_qty = excluded.remaining_qty, status = excluded.status,
    reason = excluded.reason, message = excluded.message, ts = excluded.ts""",
)
_FILL_ORDERS = _statements(
    _ORDER_INSERT,
    "(?, ?, ?, ?, ?, NULL, NULL, ?, ?, ?, ?, NULL, NULL, ?, ?)",
    """ON CONFLICT (id) DO UPDATE SET
    filled_qty = excluded.filled_qty, remaining_qty = excluded.remaining_qty,
    status = excluded.status, ts = excluded.ts""",
)
_UPSERT_ORDER, _FILL_ORDER = _UPSERT_ORDERS[1], _FILL_ORDERS[1]  # one row
ORDER_COLUMNS = (
    "order_id, participant_id, market, client_order_id, side, order_type, price, qty, "
    "filled_qty, remaining_qty, status, reason, message, created_ts, ts"
)
FILL_COLUMNS = (
    "trade_id, order_id, client_order_id, market, side, price, qty, fee, fee_asset, liquidity, ts"
)


def history_path(data_dir: str | Path) -> Path:
    return Path(data_dir) / FILE_NAME


def connect(path: str | Path | None) -> sqlite3.Connection:
    """A connection to the database at ``path`` (None: a new one in memory), its schema
    created, or converted from an older layout (``SCHEMA_VERSION``); a new file is made 0600
    first.  ``sqlite3.DatabaseError`` if the file's layout is newer than this version's."""
    if path is None:
        conn = sqlite3.connect(":memory:", check_same_thread=False, isolation_level=None)
    else:
        path = Path(path)
        if not path.exists():
            os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
        conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=30)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute(f"PRAGMA wal_autocheckpoint={CHECKPOINT_PAGES}")
    try:
        _prepare(conn, ":memory:" if path is None else str(path))
    except BaseException:
        conn.close()
        raise
    return conn


def _prepare(conn: sqlite3.Connection, where: str) -> None:
    """Create the schema in a new database, or convert an unversioned one (logged)."""
    if schema_version(conn) == SCHEMA_VERSION:
        return
    with transaction(conn):  # one connection at a time, and all of it or nothing
        version = schema_version(conn)
        if version == SCHEMA_VERSION:  # another connection did it meanwhile
            return
        if version > SCHEMA_VERSION:
            raise sqlite3.DatabaseError(
                f"{where}: the history database's layout is version {version}, newer than "
                f"this version's ({SCHEMA_VERSION}): start the newer version, or rebuild it "
                "(alatau history rebuild)"
            )
        tables = {
            name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        }
        if "orders" in tables:
            started = time.monotonic()
            for statement in _CONVERT_UNVERSIONED:
                conn.execute(statement)
            counts = [
                conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
                for table in ("order_rows", "fills", "trades")
            ]
            log.warning(
                "%s: the history database was converted to layout version %d (integer order "
                "keys, trades and fills in one B-tree each): %d orders, %d fills and %d trades "
                "kept, in %.1f s",
                where,
                SCHEMA_VERSION,
                *counts,
                time.monotonic() - started,
            )
        else:
            for statement in SCHEMA:
                conn.execute(statement)
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")


def schema_version(conn: sqlite3.Connection) -> int:
    """The database's layout version (``SCHEMA_VERSION``; 0: new, or from before versions)."""
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


@contextlib.contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[None]:
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def apply_batch(conn: sqlite3.Connection, seq: int, commands: list[list[Report]]) -> None:
    """Write one batch's reports (each command's, in order; ``seq`` the journal seq of the
    batch's last command).  Call inside a transaction; idempotent."""
    apply_chunk(conn, [(seq, commands)])


def reject_id(seq: int, n: int) -> int:
    """The ``order_rows.id`` of the ``n``-th order (from 0) rejected before it got an id by
    the command at journal seq ``seq``: negative, so never an order id, and ``order_key``
    ``r<seq>.<n>`` (``ORDER_KEY``)."""
    if not 0 <= n < REJECTS_A_COMMAND:
        raise ValueError(f"reject {n} of the command at seq {seq}: {REJECTS_A_COMMAND} at most")
    return -1 - (seq * REJECTS_A_COMMAND + n)


# An order's pending row in a chunk: the statement that writes it and its parameters.
# _UPSERT_ORDER: (id, participant_id, market, client_order_id, side, order_type, price, qty,
#                 filled_qty, remaining_qty, status, reason, message, created_ts, ts)
# _FILL_ORDER:   (id, participant_id, market, client_order_id, side, qty, filled_qty,
#                 remaining_qty, status, created_ts, ts)
_UPSERT, _FILL = 0, 1


def apply_chunk(conn: sqlite3.Connection, chunk: list[tuple[int, list[list[Report]]]]) -> None:
    """Write several batches' reports (``(seq, commands)`` each, in order) in one go.  Call
    inside a transaction; idempotent; the same rows as ``apply_batch`` batch by batch.

    Cheaper than a statement per report (measured: 10.8 against 8.0 µs of CPU per command
    of the benchmark's flow, 64 batches a chunk): an order's reports within the chunk are
    folded into the one statement that leaves its row as the reports one by one would (a
    place and its cancel write one row, not two), and each table is written with one
    ``executemany``.  The folding follows the two upserts' own rules: ``_UPSERT_ORDER``
    keeps an earlier order type and price where the later report has none and never
    changes ``created_ts``; ``_FILL_ORDER`` changes only the fill quantities, status and
    time of a row that exists."""
    trades: list[tuple[Any, ...]] = []
    fills: list[tuple[Any, ...]] = []
    orders: dict[int, tuple[int, tuple[Any, ...]]] = {}
    for seq, commands in chunk:
        first_seq = seq - len(commands) + 1
        for index, reports in enumerate(commands):
            rejected = 0
            for report in reports:
                kind = type(report)
                if kind is TradePrinted:
                    assert isinstance(report, TradePrinted)
                    trades.append(
                        (
                            report.market,
                            report.ts,
                            report.trade_id,
                            report.price,
                            report.qty,
                            report.taker_side,
                        )
                    )
                elif kind is FillReport:
                    assert isinstance(report, FillReport)
                    fills.append(
                        (
                            report.participant_id,
                            report.ts,
                            report.trade_id,
                            report.order_id,
                            report.market,
                            report.client_order_id,
                            report.side,
                            report.fill_price,
                            report.fill_qty,
                            report.fee,
                            report.fee_asset,
                            report.liquidity,
                        )
                    )
                    key = report.order_id
                    row: tuple[Any, ...] = (
                        key,
                        report.participant_id,
                        report.market,
                        report.client_order_id,
                        report.side,
                        report.filled_qty + report.remaining_qty,
                        report.filled_qty,
                        report.remaining_qty,
                        report.status,
                        report.ts,
                        report.ts,
                    )
                    orders[key] = _fold(orders.get(key), _FILL, row)
                elif kind is OrderReport:
                    assert isinstance(report, OrderReport)
                    if report.order_id is None:
                        key = reject_id(first_seq + index, rejected)
                        rejected += 1
                    else:
                        key = report.order_id
                    row = (
                        key,
                        report.participant_id,
                        report.market,
                        report.client_order_id,
                        report.side,
                        report.order_type,
                        report.price,
                        report.qty,
                        report.filled_qty,
                        report.remaining_qty,
                        report.status,
                        report.reason,
                        report.message,
                        report.ts,
                        report.ts,
                    )
                    orders[key] = _fold(orders.get(key), _UPSERT, row)
    _write(conn, _INSERT_TRADES, trades)
    _write(conn, _INSERT_FILLS, fills)
    _write(conn, _UPSERT_ORDERS, [row for kind, row in orders.values() if kind == _UPSERT])
    _write(conn, _FILL_ORDERS, [row for kind, row in orders.values() if kind == _FILL])
    if chunk:
        set_meta(conn, "last_seq", str(chunk[-1][0]))


def _write(conn: sqlite3.Connection, statements: dict[int, str], rows: list[Any]) -> None:
    """Write ``rows`` with ``statements`` (``_statements``), the most rows a statement first."""
    at = 0
    for size in ROWS_A_STATEMENT:
        end = at + (len(rows) - at) // size * size
        if end == at:
            continue
        if size == 1:
            conn.executemany(statements[1], rows[at:end])
        else:
            conn.executemany(
                statements[size],
                [list(chain.from_iterable(rows[i : i + size])) for i in range(at, end, size)],
            )
        at = end


def _fold(
    pending: tuple[int, tuple[Any, ...]] | None, statement: int, row: tuple[Any, ...]
) -> tuple[int, tuple[Any, ...]]:
    """The one statement that does what ``pending`` then (``statement``, ``row``) do."""
    if pending is None:
        return statement, row
    before, old = pending
    if before == _UPSERT and statement == _UPSERT:
        # The later report's fields, the earlier's type and price where it has none, and
        # the earlier's identity and created_ts (an upsert never changes them).
        return (
            _UPSERT,
            (
                *old[:5],  # what an upsert never changes: the first report's
                row[5] if row[5] is not None else old[5],
                row[6] if row[6] is not None else old[6],
                *row[7:13],
                old[13],
                row[14],
            ),
        )
    if before == _UPSERT:  # then a fill: its quantities, status and time
        return _UPSERT, (*old[:8], row[6], row[7], row[8], *old[11:14], row[10])
    if statement == _UPSERT:  # a fill, then an order report: created when the fill came
        return _UPSERT, (*old[:5], *row[5:13], old[9], row[14])
    # a fill, then another: the first's quantity and creation, the second's state
    return _FILL, (*old[:6], row[6], row[7], row[8], old[9], row[10])


def get_meta(conn: sqlite3.Connection, key: str) -> str | None:
    row = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    return None if row is None else str(row[0])


def set_meta(conn: sqlite3.Connection, key: str, value: str) -> None:
    conn.execute(
        "INSERT INTO meta VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        (key, value),
    )


def last_seq(conn: sqlite3.Connection) -> int:
    value = get_meta(conn, "last_seq")
    return 0 if value is None else int(value)


def is_stale(conn: sqlite3.Connection) -> bool:
    return get_meta(conn, "stale") == "1"


def prune(conn: sqlite3.Connection, before_ts: int) -> int:
    """Delete trades, fills and closed orders older than ``before_ts``; rows deleted."""
    deleted = 0
    with transaction(conn):
        for sql in (
            "DELETE FROM trades WHERE ts < ?",
            "DELETE FROM fills WHERE ts < ?",
            f"DELETE FROM order_rows WHERE ts < ? AND status IN {CLOSED!r}",
        ):
            deleted += conn.execute(sql, (before_ts,)).rowcount
    return deleted


class HistoryWriter:
    """The writer (a process of its own for a database on disk, a thread for one in
    memory) and what reads the database (see the module docstring)."""

    def __init__(
        self,
        path: str | Path | None,
        *,
        retention_days: int = DEFAULT_RETENTION_DAYS,
        queue_batches: int = QUEUE_BATCHES,
        clock_ms: Callable[[], int] | None = None,
        separate_process: bool | None = None,
        pending_bytes: int = PENDING_BYTES,
    ) -> None:
        self.path = None if path is None else Path(path)
        # On disk the writer is a process of its own (``gateway.storage.history_process``:
        # off the server's GIL); in memory it must share the connection: a thread.
        if separate_process is None:
            separate_process = self.path is not None
        if separate_process and self.path is None:
            raise ValueError("a history database in memory cannot be written by another process")
        self.separate_process = separate_process
        self._offered_seq = 0
        self.retention_days = retention_days
        self.clock_ms = clock_ms or (lambda: time.time_ns() // 1_000_000)
        self._conn = connect(self.path)
        # In memory the one connection serves both (a lock between them); on disk readers
        # have their own connection and WAL lets them read while the writer writes.
        self._reader = self._conn if self.path is None else connect(self.path)
        self._lock: contextlib.AbstractContextManager[Any] = (
            threading.Lock() if self.path is None else contextlib.nullcontext()
        )
        self._behind = is_stale(self._conn)
        self._written_seq = last_seq(self._conn)
        self._process: WriterProcess | None = None
        if separate_process:
            assert self.path is not None
            self._process = WriterProcess(self.path, retention_days, pending_bytes)
            self._process.on_progress = self._moved
        self.pruned = 0
        self._queue: queue.Queue[tuple[int, list[list[Report]]] | None] = queue.Queue(queue_batches)
        self._thread: threading.Thread | None = None
        self._last_prune = float("-inf")
        self._idle = threading.Event()
        self._idle.set()
        # The event loop's reads run here (``read``), one at a time, in the order asked;
        # the thread is started by the first.
        self._reads = ThreadPoolExecutor(1, thread_name_prefix="history-reader")
        self._closed = False
        # ``wait_written``'s waiters (each a journal seq) and their event loop
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []
        self._loop: asyncio.AbstractEventLoop | None = None

    # -- the venue's side ----------------------------------------------------------------

    @property
    def behind(self) -> bool:
        """Batches were dropped (or the writer process died): the database misses some."""
        return self._behind or (self._process is not None and self._process.failed)

    @behind.setter
    def behind(self, value: bool) -> None:
        self._behind = value

    @property
    def written_seq(self) -> int:
        """The journal seq of the last batch written."""
        if self._process is not None:
            return max(self._written_seq, self._process.written_seq)
        return self._written_seq

    @written_seq.setter
    def written_seq(self, value: int) -> None:
        self._written_seq = value

    def start(self) -> None:
        if self._process is not None:
            self._process.start()
            return
        self._thread = threading.Thread(target=self._run, name="history-writer", daemon=True)
        self._thread.start()

    def offer(self, seq: int, commands: list[list[Report]]) -> None:
        """Queue one durable batch (``seq``: its last command's journal seq).  Never blocks:
        a full queue drops it and marks the database stale (rebuilt at the next start)."""
        process = self._process
        if process is not None:
            self._offered_seq = seq
            if not process.offer(encode_batch(seq, stored_reports(commands))) and not self._behind:
                if not process.failed:
                    log.error(
                        "the history writer process is behind (%d bytes waiting): batch at "
                        "seq %d is not written; the history database is marked stale and is "
                        "rebuilt from the journal at the next start",
                        process.pending_limit,
                        seq,
                    )
                    process.offer(encode_batch(STALE_SEQ, []), force=True)
                self._behind = True
                self._moved()
            return
        self._idle.clear()
        try:
            self._queue.put_nowait((seq, commands))
        except queue.Full:
            if not self.behind:
                log.error(
                    "the history writer is behind (%d batches queued): batch at seq %d is "
                    "not written; the history database is marked stale and is rebuilt from "
                    "the journal at the next start",
                    self._queue.qsize(),
                    seq,
                )
            self.behind = True
            self._moved()

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until everything queued so far is written (tests, shutdown)."""
        if self._process is not None:
            return self._process.flush(self._offered_seq, timeout)
        deadline = time.monotonic() + timeout
        while not (self._queue.empty() and self._idle.is_set()):
            if time.monotonic() > deadline:
                return False
            time.sleep(0.002)
        return True

    def close(self) -> None:
        """Write what is queued, then stop the writer, answer the reads asked for and close
        the connections."""
        self._closed = True
        if self._process is not None:
            self._process.close()
            self._written_seq = self._process.written_seq
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join()
            self._thread = None
        self._reads.shutdown(wait=True)
        if self._reader is not self._conn:
            self._reader.close()
        self._conn.close()
        self._moved()

    # -- the writer thread ---------------------------------------------------------------

    def _run(self) -> None:
        conn = self._conn
        stale_written = is_stale(conn)
        while True:
            item = self._queue.get()
            chunk = [item]
            while len(chunk) < CHUNK_BATCHES:
                try:
                    chunk.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            stop = any(entry is None for entry in chunk)
            try:
                with self._lock, transaction(conn):
                    batches = [entry for entry in chunk if entry is not None]
                    apply_chunk(conn, batches)
                    if batches:
                        self.written_seq = batches[-1][0]
                    if self.behind and not stale_written:
                        set_meta(conn, "stale", "1")
                        stale_written = True
                self._maybe_prune()
            except Exception:
                log.exception("the history writer failed; history is marked stale")
                self.behind = True
            self._moved()
            if self._queue.empty():
                self._idle.set()
            if stop:
                return

    # -- waiting for the writer ----------------------------------------------------------

    async def wait_written(self, seq: int, timeout: float) -> None:
        """Wait until the batch at journal seq ``seq`` is written (``written_seq``), the
        writer has fallen behind (it may never be), the database is closed, or ``timeout``
        seconds have passed.  Woken by the writer as it reports (the process's
        acknowledgements, the thread's transactions), not by polling."""
        if self._reached(seq):
            return
        loop = asyncio.get_running_loop()
        self._loop = loop
        entry = (seq, loop.create_future())
        self._waiters.append(entry)
        try:
            if not self._reached(seq):  # the writer may have moved before the line above
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(entry[1], timeout)
        finally:
            self._waiters.remove(entry)

    def _reached(self, seq: int) -> bool:
        return self.written_seq >= seq or self.behind or self._closed

    def _moved(self) -> None:
        """The writer wrote, fell behind or was closed: wake the waiters it has reached
        (from any thread; nothing to do, and cheap, when none waits)."""
        loop = self._loop
        if self._waiters and loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._wake)

    def _wake(self) -> None:
        for seq, waiter in self._waiters:
            if not waiter.done() and self._reached(seq):
                waiter.set_result(None)

    def _maybe_prune(self, force: bool = False) -> None:
        if self.retention_days <= 0:
            return
        now = time.monotonic()
        if not force and now - self._last_prune < PRUNE_EVERY_S:
            return
        self._last_prune = now
        with self._lock:
            self.pruned += prune(self._conn, self.clock_ms() - self.retention_days * DAY_MS)

    def prune_now(self) -> None:
        """Apply the retention at once (tests; normally the writer does it every minute)."""
        self.flush()
        self._maybe_prune(force=True)

    # -- reading (the event loop's side) -------------------------------------------------

    async def read(self, query: Callable[[], T]) -> T:
        """Run ``query`` (a call of the reading methods below, e.g. ``lambda:
        writer.fills(...)``) on the reader thread and await its answer, so that the event
        loop serves every other session meanwhile: the sqlite3 module lets go of the GIL
        while SQLite runs, and a large page, or a slow disk, holds up only the reads behind
        it on that one thread, never an order.  Raises what ``query`` raises
        (``sqlite3.Error``), and ``sqlite3.ProgrammingError`` once the database is closed
        (``close`` first answers the reads already asked for).

        The reading methods themselves run on whichever thread calls them (tests, tools):
        on disk the reader connection is the reader thread's alone in the server; in memory
        it is the writer's, shared under its lock."""
        if self._closed:
            raise sqlite3.ProgrammingError("the history database is closed")
        return await asyncio.get_running_loop().run_in_executor(self._reads, query)

    def _rows(self, sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        with self._lock:
            return self._reader.execute(sql, params).fetchall()

    def order(
        self, participant_id: str, order_id: int | None, client_order_id: str | None
    ) -> tuple[Any, ...] | None:
        """One of the participant's orders (``ORDER_COLUMNS``), the newest by that id."""
        arg: int | str
        if order_id is not None:
            where, arg = "id = ? AND id >= 0", order_id  # a negative id is a reject's
        else:
            where, arg = "client_order_id = ?", client_order_id or ""
        rows = self._rows(
            f"SELECT {ORDER_COLUMNS} FROM orders WHERE participant_id = ? AND {where} "
            "ORDER BY created_ts DESC, order_key DESC LIMIT 1",
            (participant_id, arg),
        )
        return rows[0] if rows else None

    def closed_orders(
        self,
        participant_id: str,
        market: str | None,
        start: int | None,
        end: int | None,
        limit: int,
        cursor: tuple[int, str] | None,
    ) -> list[tuple[Any, ...]]:
        """Closed orders, newest first (by ``ts`` then key): ``ORDER_COLUMNS`` + the key."""
        where = [f"participant_id = ? AND status IN {CLOSED!r} AND {NOT_OPEN}"]
        args: list[Any] = [participant_id]
        _range(where, args, market, start, end)
        if cursor is not None:
            where.append("(ts < ? OR (ts = ? AND order_key < ?))")
            args.extend((cursor[0], cursor[0], cursor[1]))
        return self._rows(
            f"SELECT {ORDER_COLUMNS}, order_key FROM orders WHERE {' AND '.join(where)} "
            "ORDER BY ts DESC, order_key DESC LIMIT ?",
            (*args, limit),
        )

    def fills(
        self,
        participant_id: str,
        market: str | None,
        start: int | None,
        end: int | None,
        limit: int,
        cursor: tuple[int, int, int] | None,
    ) -> list[tuple[Any, ...]]:
        """The participant's fills, newest first (``FILL_COLUMNS``)."""
        where = ["participant_id = ?"]
        args: list[Any] = [participant_id]
        _range(where, args, market, start, end)
        if cursor is not None:
            ts, trade_id, order_id = cursor
            where.append(
                "(ts < ? OR (ts = ? AND (trade_id < ? OR (trade_id = ? AND order_id < ?))))"
            )
            args.extend((ts, ts, trade_id, trade_id, order_id))
        return self._rows(
            f"SELECT {FILL_COLUMNS} FROM fills WHERE {' AND '.join(where)} "
            "ORDER BY ts DESC, trade_id DESC, order_id DESC LIMIT ?",
            (*args, limit),
        )

    def candles(
        self,
        market: str,
        interval_ms: int,
        start: int | None,
        end: int | None,
        limit: int,
        base_pow: int,
    ) -> list[tuple[int, int, int, int, int, int, int, int]]:
        """(open_time, open, high, low, close, volume, quote_volume, trades) per interval
        with a trade, oldest first; integers (quote volume: each trade's price * qty /
        10**base_scale rounded down, as the ticker counts it).  Without ``start``, the
        latest ``limit`` intervals up to ``end``."""
        where = ["market = ?"]
        args: list[Any] = [market]
        if start is not None:
            where.append("ts >= ?")
            args.append(start)
        if end is not None:
            where.append("ts <= ?")
            args.append(end)
        order = "ASC" if start is not None else "DESC"
        sql = f"""
            SELECT t, max(CASE WHEN first = 1 THEN price END), max(price), min(price),
                   max(CASE WHEN last = 1 THEN price END), sum(qty), sum(price * qty / ?),
                   count(*)
            FROM (
                SELECT ts / ? * ? AS t, price, qty,
                    row_number() OVER (PARTITION BY ts / ? ORDER BY ts, trade_id) AS first,
                    row_number() OVER (PARTITION BY ts / ? ORDER BY ts DESC, trade_id DESC)
                        AS last
                FROM trades WHERE {" AND ".join(where)}
            )
            GROUP BY t ORDER BY t {order} LIMIT ?
        """
        rows = self._rows(
            sql, (base_pow, interval_ms, interval_ms, interval_ms, interval_ms, *args, limit)
        )
        if order == "DESC":
            rows.reverse()
        return [tuple(int(v) for v in row) for row in rows]  # type: ignore[misc]


def _range(
    where: list[str], args: list[Any], market: str | None, start: int | None, end: int | None
) -> None:
    if market is not None:
        where.append("market = ?")
        args.append(market)
    if start is not None:
        where.append("ts >= ?")
        args.append(start)
    if end is not None:
        where.append("ts <= ?")
        args.append(end)
