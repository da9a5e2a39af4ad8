"""The history database's assembly: open it for ``alatau serve`` (catching it up from the
journal first when it is behind or marked stale), and ``alatau history rebuild``.

Rebuilding replays the journal's commands through an ``Exchange`` and writes their reports
(``gateway.storage.history.apply_batch``).  The replay starts at seq 1 (the exchange as
built from the venue and markets files) when the data directory still has the journal from
seq 1; when older segments were pruned after a snapshot, it starts from the oldest snapshot
whose journal follows, and what happened before that snapshot cannot be rebuilt (it is kept
if the database already had it).  The venue and markets files must be the server's.
"""

from __future__ import annotations

import logging
import os
import sqlite3
from pathlib import Path

from engine.exchange import Exchange
from engine.licensing import load_chain
from engine.reports import Report
from engine.state import rebuild
from gateway.hosts.build import VenueFiles, build_exchange
from gateway.storage import history
from gateway.storage.datadir import inspect, list_snapshots, read_snapshot
from gateway.storage.history import HistoryWriter

log = logging.getLogger("alatau.history")

CHUNK_COMMANDS = 2000  # commands written per transaction while replaying


def replay_journal(
    conn: sqlite3.Connection, data_dir: str | Path, files: VenueFiles, *, after_seq: int = 0
) -> str:
    """Replay the data directory's journal into ``conn``, writing the reports of the
    commands after ``after_seq``; a one-line account of what was replayed."""
    found = inspect(Path(data_dir))
    records = [r for _path, result in found.segments for r in result.records]
    first = records[0].seq if records else found.snapshot_seq + 1
    note = ""
    if first <= 1:
        exchange: Exchange = build_exchange(files)
        start = 0
    else:
        exchange, start = _exchange_before(Path(data_dir), first, files)
        note = f"; the history before seq {start} cannot be rebuilt (its journal was pruned)"
    chunk: list[list[Report]] = []
    seq = start
    written = 0

    def write() -> None:
        nonlocal written
        if chunk:
            with history.transaction(conn):
                history.apply_batch(conn, seq, chunk)
            written += len(chunk)
            chunk.clear()

    for record in records:
        if record.seq <= start:
            continue
        reports = exchange.execute(record.command)
        if record.seq <= after_seq:
            continue
        if chunk and record.seq != seq + 1:
            write()
        chunk.append(reports)
        seq = record.seq
        if len(chunk) >= CHUNK_COMMANDS:
            write()
    write()
    with history.transaction(conn):
        history.set_meta(conn, "last_seq", str(max(seq, found.last_seq)))
        history.set_meta(conn, "stale", "0")
    return f"replayed seqs {start + 1}..{found.last_seq}, wrote {written} commands' reports{note}"


def _exchange_before(data_dir: Path, first: int, files: VenueFiles) -> tuple[Exchange, int]:
    """The exchange at the oldest snapshot the journal (from ``first``) follows."""
    chain = load_chain(files.venue_file)
    for path in list_snapshots(data_dir):
        snapshot = read_snapshot(path)
        if snapshot.seq >= first - 1:
            return rebuild(snapshot.state, chain), snapshot.seq
    raise sqlite3.DatabaseError(
        f"{data_dir}: the journal starts at seq {first} and no snapshot precedes it"
    )


def rebuild_history(data_dir: str | Path, files: VenueFiles) -> str:
    """``alatau history rebuild``: a new ``history.sqlite`` from the journal (written
    beside, then moved over the old one)."""
    target = history.history_path(data_dir)
    fresh = target.with_name(target.name + ".rebuild")
    for leftover in (fresh, Path(f"{fresh}-wal"), Path(f"{fresh}-shm")):
        leftover.unlink(missing_ok=True)
    conn = history.connect(fresh)
    try:
        summary = replay_journal(conn, data_dir, files)
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()
    for leftover in (Path(f"{target}-wal"), Path(f"{target}-shm")):
        leftover.unlink(missing_ok=True)
    os.replace(fresh, target)
    return f"{target}: {summary}"


def open_history(
    data_dir: str | None, files: VenueFiles, journal_seq: int, retention_days: int
) -> tuple[HistoryWriter, str]:
    """The server's history writer (not started) and a start-up line.  On disk, when the
    database is marked stale or behind the journal (a crash with batches still queued),
    it is caught up from the journal first."""
    path = None if data_dir is None else history.history_path(data_dir)
    writer = HistoryWriter(path, retention_days=retention_days)
    if path is None:
        return writer, "history: in memory (--ephemeral)"
    conn = writer._conn
    written = history.last_seq(conn)
    line = f"history: {path}, at seq {written}"
    if history.is_stale(conn) or written < journal_seq:
        why = "marked stale" if history.is_stale(conn) else f"behind the journal ({journal_seq})"
        after = 0 if history.is_stale(conn) else written
        summary = replay_journal(conn, data_dir or ".", files, after_seq=after)
        writer.behind = False
        writer.written_seq = history.last_seq(conn)
        line = f"history: {path} was {why}: caught up from the journal ({summary})"
    elif written > journal_seq:
        log.warning("%s is at seq %d, past the journal's %d", path, written, journal_seq)
    return writer, line
