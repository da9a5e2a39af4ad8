"""The history writer's lean decode (issue 16): only the report kinds the history keeps are
decoded in full, every other kind as an empty placeholder of the same tag.  It must write
exactly the rows a full decode of every report writes, for every kind a batch can carry."""

from __future__ import annotations

import random
import sqlite3
from pathlib import Path
from typing import Any, get_args

import msgspec

from engine.reports import AdminApplied, OrderReport, Report
from gateway.storage import history, history_process
from tests.kit.commands import random_command, soak_venue
from tests.kit.venues import TS0

full_decoder = msgspec.msgpack.Decoder(tuple[int, list[list[Report]]])


def tag(kind: Any) -> Any:
    return kind.__struct_config__.tag


def stream(count: int, seed: int) -> list[list[Report]]:
    """Each command's reports from the kit's random stream (places of every kind, cancels,
    amends, cancel-alls, deposits, withdrawals, rejects), with an operator's command now
    and then, so that every kind of report appears."""
    rnd = random.Random(seed)
    exchange = soak_venue()
    open_orders: list[tuple[str, str, int]] = []
    out: list[list[Report]] = []
    for index in range(count):
        reports = exchange.execute(random_command(rnd, TS0 + index, open_orders))
        for report in reports:
            if isinstance(report, OrderReport) and report.status == "new":
                assert report.order_id is not None
                open_orders.append((report.participant_id, report.market, report.order_id))
        if index % 97 == 0:
            reports = [*reports, AdminApplied(ts=TS0 + index, command="halt", detail="x")]
        out.append(reports)
    return out


def frames(commands: list[list[Report]], batch: int) -> list[bytes]:
    return [
        history_process.encode_batch(at + batch, commands[at : at + batch])
        for at in range(0, len(commands), batch)
    ]


def full_decode(frame: bytes) -> tuple[int, list[list[Report]]]:
    return full_decoder.decode(frame[history_process.FRAME.size :])


def table_rows(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    conn = history.connect(path)
    try:
        return {
            table: conn.execute(f"SELECT * FROM {table} ORDER BY {key}").fetchall()
            for table, key in (
                ("trades", "market, trade_id"),
                ("fills", "order_id, trade_id"),
                ("orders", "order_key"),
                ("meta", "key"),
            )
        }
    finally:
        conn.close()


def test_every_report_kind_is_kept_or_skipped_once() -> None:
    kept = [tag(kind) for kind in history_process.STORED_KINDS]
    skipped = [tag(kind) for kind in history_process.SKIPPED_KINDS]
    assert sorted(kept + skipped) == sorted(tag(kind) for kind in get_args(Report))
    assert set(kept) == {"order", "fill", "trade"}  # what apply_chunk writes


def test_the_kept_kinds_decode_as_in_full_and_the_rest_as_placeholders_of_their_kind() -> None:
    commands = stream(1500, 11)
    seen: set[str] = set()
    for frame in frames(commands, 16):
        decoded, used = history_process.read_frames(bytearray(frame))
        assert used == len(frame) and len(decoded) == 1
        seq, lean = decoded[0]
        full_seq, full = full_decode(frame)
        assert seq == full_seq and len(lean) == len(full)
        for lean_reports, full_reports in zip(lean, full, strict=True):
            assert len(lean_reports) == len(full_reports)
            for lean_report, full_report in zip(lean_reports, full_reports, strict=True):
                seen.add(tag(type(full_report)))
                if type(full_report) in history_process.STORED_KINDS:
                    assert lean_report == full_report
                else:
                    assert type(lean_report) in history_process.SKIPPED_KINDS
                    assert tag(type(lean_report)) == tag(type(full_report))
                    assert msgspec.structs.fields(lean_report) == ()
    assert seen == {tag(kind) for kind in get_args(Report)}  # every kind was exercised


def test_lean_decode_writes_the_rows_a_full_decode_writes(tmp_path: Path) -> None:
    commands = stream(3000, 5)
    encoded = frames(commands, 8)
    lean_path, full_path = tmp_path / "lean.sqlite", tmp_path / "full.sqlite"
    lean_conn, full_conn = history.connect(lean_path), history.connect(full_path)
    try:
        for at in range(0, len(encoded), 25):  # 200 commands a transaction
            chunk = encoded[at : at + 25]
            decoded, used = history_process.read_frames(bytearray(b"".join(chunk)))
            assert used == sum(len(frame) for frame in chunk)
            history_process.write_frames(lean_conn, decoded, False)
            history_process.write_frames(full_conn, [full_decode(f) for f in chunk], False)
    finally:
        lean_conn.close()
        full_conn.close()
    lean, full = table_rows(lean_path), table_rows(full_path)
    assert lean == full
    assert len(lean["orders"]) > 1000 and len(lean["fills"]) > 10 and lean["trades"]


def test_a_stale_mark_alone_writes_no_seq(tmp_path: Path) -> None:
    conn = history.connect(tmp_path / "h.sqlite")
    try:
        frame = history_process.encode_batch(history_process.STALE_SEQ, [])
        decoded, _used = history_process.read_frames(bytearray(frame))
        assert history_process.write_frames(conn, decoded, False) == (None, True)
        assert history.is_stale(conn) and history.last_seq(conn) == 0
    finally:
        conn.close()


def test_the_writer_connection_is_not_left_in_a_transaction(tmp_path: Path) -> None:
    conn = history.connect(tmp_path / "h.sqlite")
    try:
        frame = history_process.encode_batch(3, stream(3, 1))
        decoded, _used = history_process.read_frames(bytearray(frame))
        assert history_process.write_frames(conn, decoded, False) == (3, False)
        assert not conn.in_transaction
        assert isinstance(conn, sqlite3.Connection) and history.last_seq(conn) == 3
    finally:
        conn.close()
