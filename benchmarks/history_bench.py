"""The history writer's CPU per command: what the writer process spends on the standard flow.

    python -m benchmarks.history_bench --commands 40000 --runs 3
    python -m benchmarks.history_bench --per-transaction 100,1000 --json

The history writer (``gateway.storage.history_process``) is a process of its own that
decodes each durable batch's reports and writes them to SQLite; in ``alatau bench gateway``
it costs as much CPU per order as a good part of the gateway itself (issue 16).  This
measures exactly its work, in this one process and without the server: the command flow of
``benchmarks.exchange_bench`` (55 % passive GTC places, 10 % crossing IOCs, 35 % cancels,
8 participants, USDT-KZT) runs through the compiled exchange first, untimed; each
``--batch`` commands' reports are encoded as the server encodes a durable batch
(``encode_batch``); then, on a fresh database file in a temporary directory, every
``--per-transaction`` commands' frames are read (``read_frames``: the decode) and written
(``write_frames``: one transaction) as the writer process does with what has arrived.
CPU is ``time.process_time`` (user and system: the WAL's writes count), so a busy machine
reads about the same as a quiet one; figures are the median over ``--runs`` fresh
databases, run by run in turn for each transaction size.

How many commands a transaction takes depends on the rate and on how long the writer
gathers before it writes: the bench runs each size it is given (``--per-transaction``), so
the same sizes can be compared before and after a change.

Two digests say whether a change wrote the same history: ``rows`` hashes every row of the
three tables (in key order), column by column in the order the tables had before layout
version 1 (the orders' those of the view ``orders`` but its stored integer ``id``) so that
the two layouts can be compared, and ``answers`` every answer the queries give
(``HistoryWriter.order``, ``closed_orders`` and ``fills`` page by page for each
participant, ``candles`` at each interval): two versions that print the same digests for
the same flow wrote the same history, whatever their SQL, indexes or decoding.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks import common
from benchmarks.exchange_bench import (
    PARTICIPANTS,
    START_TS,
    SYMBOL,
    OpenOrders,
    funded_venue,
    next_command,
    track,
)
from engine.compiled import CompiledExchange
from engine.reports import Report
from gateway.storage import history, history_process
from gateway.storage.history import HistoryWriter

DEFAULT_COMMANDS = 40_000
DEFAULT_SEED = 7
DEFAULT_BATCH = 16
DEFAULT_PER_TRANSACTION = (100, 1000)
DEFAULT_RUNS = 3
PAGE = 500  # rows per page when the digest reads the history back


def flow_reports(commands: int, seed: int) -> list[list[Report]]:
    """Each command's reports, from the compiled exchange on ``exchange_bench``'s mix."""
    rnd = random.Random(seed)
    exchange = funded_venue(CompiledExchange)
    open_orders = {p: OpenOrders() for p in PARTICIPANTS}
    ts = START_TS
    out = []
    for _ in range(commands):
        ts += rnd.randint(0, 3)
        reports = exchange.execute(next_command(rnd, ts, open_orders))
        track(reports, open_orders)
        out.append(reports)
    return out


def frames_of(reports: list[list[Report]], batch: int) -> list[tuple[int, bytes]]:
    """The durable batches as the server encodes them: (commands in it, frame)."""
    return [
        (
            len(reports[at : at + batch]),
            history_process.encode_batch(at + batch, reports[at : at + batch]),
        )
        for at in range(0, len(reports), batch)
    ]


def transactions(frames: list[tuple[int, bytes]], per_transaction: int) -> list[bytearray]:
    """The frames gathered into what the writer reads per transaction: whole frames, at
    least ``per_transaction`` commands (the last one: what is left)."""
    out = []
    buffer = bytearray()
    commands = 0
    for count, frame in frames:
        buffer += frame
        commands += count
        if commands >= per_transaction:
            out.append(buffer)
            buffer, commands = bytearray(), 0
    if buffer:
        out.append(buffer)
    return out


def write_once(path: Path, chunks: list[bytearray]) -> tuple[float, float]:
    """Decode and write every chunk into a new database at ``path``, as the writer process
    does; CPU seconds of the decode and of the writes."""
    conn = history.connect(path)
    decode_s = write_s = 0.0
    stale = False
    clock = time.process_time
    try:
        for chunk in chunks:
            with history_process.collector_paused():  # as the writer process does
                started = clock()
                frames, used = history_process.read_frames(chunk)
                decoded = clock()
                history_process.write_frames(conn, frames, stale)
                write_s += clock() - decoded
                decode_s += decoded - started
                del frames
            assert used == len(chunk)
    finally:
        conn.close()
    return decode_s, write_s


def digests(path: Path) -> dict[str, str]:
    """sha256 of every row (``rows``) and of every query answer (``answers``)."""
    conn = history.connect(path)
    rows = hashlib.sha256()
    for table, columns, key in (
        ("trades", "market, trade_id, ts, price, qty, taker_side", "market, trade_id"),
        (
            "fills",
            "order_id, trade_id, participant_id, market, client_order_id, side, price, qty, "
            "fee, fee_asset, liquidity, ts",
            "order_id, trade_id",
        ),
        ("orders", f"order_key, {history.ORDER_COLUMNS}", "order_key"),
    ):
        for row in conn.execute(f"SELECT {columns} FROM {table} ORDER BY {key}"):
            rows.update(repr(row).encode())
    owners = conn.execute(
        "SELECT participant_id, order_id FROM orders WHERE order_id IS NOT NULL ORDER BY order_key"
    ).fetchall()
    conn.close()
    writer = HistoryWriter(path, retention_days=0, separate_process=False)
    answers = hashlib.sha256()
    try:
        for participant in PARTICIPANTS:
            for market in (None, SYMBOL):
                closed_cursor: tuple[int, str] | None = None
                while True:
                    page = writer.closed_orders(
                        participant, market, None, None, PAGE, closed_cursor
                    )
                    answers.update(repr(page).encode())
                    if len(page) < PAGE:
                        break
                    closed_cursor = (page[-1][14], page[-1][15])
                fill_cursor: tuple[int, int, int] | None = None
                while True:
                    fills = writer.fills(participant, market, None, None, PAGE, fill_cursor)
                    answers.update(repr(fills).encode())
                    if len(fills) < PAGE:
                        break
                    fill_cursor = (fills[-1][10], fills[-1][0], fills[-1][1])
            answers.update(repr(writer.order(participant, None, "none")).encode())
        for participant, order_id in owners:
            answers.update(repr(writer.order(participant, order_id, None)).encode())
            answers.update(repr(writer.order("nobody", order_id, None)).encode())
        for interval in history.INTERVALS_MS.values():
            answers.update(repr(writer.candles(SYMBOL, interval, None, None, 1000, 10**6)).encode())
            answers.update(
                repr(writer.candles(SYMBOL, interval, START_TS, None, 1000, 10**6)).encode()
            )
    finally:
        writer.close()
    return {"rows": rows.hexdigest(), "answers": answers.hexdigest()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--commands", type=int, default=DEFAULT_COMMANDS)
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--batch", type=int, default=DEFAULT_BATCH, help="commands a frame")
    parser.add_argument(
        "--per-transaction",
        default=",".join(map(str, DEFAULT_PER_TRANSACTION)),
        help="commands a transaction (comma-separated: each is run)",
    )
    parser.add_argument("--runs", type=int, default=DEFAULT_RUNS)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    sizes = [int(size) for size in args.per_transaction.split(",")]
    reports = flow_reports(args.commands, args.seed)
    frames = frames_of(reports, args.batch)
    frame_bytes = sum(len(frame) for _count, frame in frames)
    chunked = {size: transactions(frames, size) for size in sizes}
    runs: dict[int, list[tuple[float, float]]] = {size: [] for size in sizes}
    found: dict[int, set[tuple[str, str]]] = {size: set() for size in sizes}
    gc.freeze()  # what the run built so far stays, as the writer process's start-up does
    with tempfile.TemporaryDirectory(prefix="history-bench-") as tmp:
        for run in range(args.runs):  # sizes in turn, so that each sees the same moments
            for size in sizes:
                path = Path(tmp) / f"history-{size}-{run}.sqlite"
                runs[size].append(write_once(path, chunked[size]))
                if run == 0:
                    digest = digests(path)
                    found[size].add((digest["rows"], digest["answers"]))
    every = set().union(*found.values())
    per_command = 1e6 / args.commands
    result: dict[str, Any] = {
        "commands": args.commands,
        "seed": args.seed,
        "batch": args.batch,
        "runs": args.runs,
        "frame_bytes_per_command": round(frame_bytes / args.commands, 1),
        "writer_us_per_command": {
            str(size): {
                "total": round(statistics.median(d + w for d, w in runs[size]) * per_command, 2),
                "decode": round(statistics.median(d for d, _ in runs[size]) * per_command, 2),
                "write": round(statistics.median(w for _, w in runs[size]) * per_command, 2),
                "min_total": round(min(d + w for d, w in runs[size]) * per_command, 2),
            }
            for size in sizes
        },
        "digest_rows": sorted(every)[0][0],
        "digest_answers": sorted(every)[0][1],
        "digests_agree": len(every) == 1,
        "machine": common.machine_info(["msgspec"]),
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return 0 if result["digests_agree"] else 1
    print(
        f"history bench: {args.commands} commands, seed {args.seed}, {args.batch} a frame "
        f"({result['frame_bytes_per_command']} bytes a command), median of {args.runs} runs"
    )
    print(f"  {'commands/transaction':>20} {'total us':>9} {'decode us':>10} {'write us':>9}")
    for size, figures in result["writer_us_per_command"].items():
        print(
            f"  {size:>20} {figures['total']:9.2f} {figures['decode']:10.2f} "
            f"{figures['write']:9.2f}   (per command; best run {figures['min_total']:.2f})"
        )
    print(f"  rows digest       {result['digest_rows']}")
    print(f"  answers digest    {result['digest_answers']}")
    if not result["digests_agree"]:
        print("  DIGESTS DIFFER BETWEEN TRANSACTION SIZES: the history written is not the same")
    return 0 if result["digests_agree"] else 1


if __name__ == "__main__":
    sys.exit(main())
