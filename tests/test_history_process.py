"""The history writer process (issue 16): batches reach the database through a pipe to a
process of its own, gathered into few writes; everything offered is written before it
exits; a dead writer is noticed, said (``behind``) and never blocks the server."""

from __future__ import annotations

import asyncio
import contextlib
import os
import select
import subprocess
import time
from pathlib import Path
from typing import Any

from engine.reports import TradePrinted
from gateway.storage import history, history_process
from gateway.storage.history import HistoryWriter


def trade(trade_id: int) -> TradePrinted:
    return TradePrinted(
        ts=1_000 + trade_id, market="BTC-KZT", trade_id=trade_id, price=5, qty=1, taker_side="buy"
    )


def rows(path: Path) -> list[tuple[Any, ...]]:
    conn = history.connect(path)
    try:
        return conn.execute("SELECT trade_id FROM trades ORDER BY trade_id").fetchall()
    finally:
        conn.close()


def test_batches_offered_in_one_turn_go_out_in_one_write_and_are_all_written(
    tmp_path: Path, monkeypatch: Any
) -> None:
    writes: list[int] = []
    real_write = os.write

    def counting_write(fd: int, data: Any) -> int:
        writes.append(fd)
        return real_write(fd, data)

    async def body() -> None:
        writer = HistoryWriter(tmp_path / "h.sqlite", retention_days=0)
        writer.start()
        process = writer._process
        assert process is not None
        monkeypatch.setattr(os, "write", counting_write)
        for seq in range(1, 51):
            writer.offer(seq, [[trade(seq)]])
        assert writes == []  # gathered, not yet written
        await asyncio.sleep(history_process.GATHER_S * 4)
        assert writes.count(process._out) == 1
        assert writer.flush(10.0) and writer.written_seq == 50
        writer.close()

    asyncio.run(body())
    assert rows(tmp_path / "h.sqlite") == [(i,) for i in range(1, 51)]
    conn = history.connect(tmp_path / "h.sqlite")
    assert history.last_seq(conn) == 50 and not history.is_stale(conn)
    conn.close()


def test_close_writes_what_was_offered_and_the_process_ends(tmp_path: Path) -> None:
    async def body() -> None:
        writer = HistoryWriter(tmp_path / "h.sqlite", retention_days=0)
        writer.start()
        for seq in range(1, 6):
            writer.offer(seq, [[trade(seq)]])
        process = writer._process
        assert process is not None and process._process is not None
        child = process._process
        writer.close()  # at once: what was gathered is sent, then the input ends
        assert child.returncode == 0
        assert writer.written_seq == 5 and not writer.behind

    asyncio.run(body())
    assert rows(tmp_path / "h.sqlite") == [(i,) for i in range(1, 6)]


def started_writer(path: Path) -> tuple[HistoryWriter, subprocess.Popen[bytes]]:
    """A writer process that has written and acknowledged one batch (seq 1), and its child."""
    writer = HistoryWriter(path, retention_days=0)
    writer.start()
    writer.offer(1, [[trade(1)]])
    assert writer.flush(10.0)
    process = writer._process
    assert process is not None and process._process is not None
    return writer, process._process


def test_a_dead_writer_process_is_behind_and_never_blocks(tmp_path: Path) -> None:
    async def body() -> None:
        writer, child = started_writer(tmp_path / "h.sqlite")
        child.kill()
        child.wait()
        for seq in range(2, 200):  # the pipe is gone: dropped, never waited for
            writer.offer(seq, [[trade(seq)]])
        await asyncio.sleep(history_process.GATHER_S * 4)
        assert writer.behind
        assert not writer.flush(1.0)
        writer.close()

    asyncio.run(body())
    assert rows(tmp_path / "h.sqlite") == [(1,)]  # what was acknowledged before it died


def test_a_writer_process_dying_is_noticed_before_it_is_reaped(tmp_path: Path) -> None:
    """The end of the child's output arrives as it dies, often before the process can be
    reaped (its exit status unknown yet): it is gone all the same, at once, so that nobody
    waits on a writer that will never write again (``order.status`` waits for it)."""

    async def body() -> None:
        writer, child = started_writer(tmp_path / "h.sqlite")
        child.poll = lambda: None  # type: ignore[method-assign]  # not reaped yet
        child.kill()
        deadline = time.monotonic() + 10.0
        while not writer.behind and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        assert writer.behind
        del child.poll  # the real one again, for close
        writer.close()

    asyncio.run(body())


def test_a_steady_stream_is_written_in_few_transactions_and_a_lone_batch_alone(
    tmp_path: Path,
) -> None:
    """While batches keep arriving the child writes at most one transaction every
    ``WRITE_EVERY_S`` (each acknowledged once); after a pause, a batch is written without
    waiting for another."""
    writer = HistoryWriter(tmp_path / "h.sqlite", retention_days=0)
    writer.start()  # no event loop: each offer is written to the pipe at once
    process = writer._process
    assert process is not None
    seconds = 0.5
    started = time.monotonic()
    seq = 0
    while time.monotonic() - started < seconds:
        seq += 1
        writer.offer(seq, [[trade(seq)]])
        time.sleep(0.002)
    deadline = time.monotonic() + 10.0
    data = b""
    while (not data or history_process.ACK.unpack_from(data, len(data) - 8)[0] < seq) and (
        time.monotonic() < deadline
    ):
        select.select([process._acks], [], [], 0.05)
        with contextlib.suppress(BlockingIOError):
            data += os.read(process._acks, 4096)
    transactions = len(data) // history_process.ACK.size
    assert history_process.ACK.unpack_from(data, len(data) - 8)[0] == seq > 100
    assert transactions <= seconds / history_process.WRITE_EVERY_S + 3
    time.sleep(history_process.WRITE_EVERY_S * 2)  # a pause
    writer.offer(seq + 1, [[trade(seq + 1)]])
    assert select.select([process._acks], [], [], 10.0)[0]
    assert history_process.ACK.unpack(os.read(process._acks, 8))[0] == seq + 1
    writer.close()
    assert rows(tmp_path / "h.sqlite") == [(i,) for i in range(1, seq + 2)]


def test_the_writer_process_runs_only_in_the_cores_spare_time(tmp_path: Path) -> None:
    """The order path first: the writer is in Linux's idle scheduling class, so it never
    takes a core from the server or its clients (issue 16's saturation runs)."""
    writer = HistoryWriter(tmp_path / "h.sqlite", retention_days=0)
    writer.start()
    try:
        writer.offer(1, [[trade(1)]])
        assert writer.flush(10.0)  # written: the child has set itself up
        process = writer._process
        assert process is not None and process._process is not None
        assert os.sched_getscheduler(process._process.pid) == os.SCHED_IDLE
    finally:
        writer.close()
    assert rows(tmp_path / "h.sqlite") == [(1,)]
