"""The journal's flush thread (issue 16): under an event loop a batch is written at once and
flushed by a C thread that never takes the GIL; the batch is acknowledged only when that
flush has covered it, batches are acknowledged in order, and a failed flush stops the venue
with nothing after it acknowledged."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

import pytest

from gateway.storage import journal as journal_module
from gateway.storage._flush import FlushThread
from gateway.storage.audit import read_lines
from gateway.storage.journal import Journal, scan

from .gateway_harness import async_test
from .test_gateway_pipeline import answer_into, deposit, journaled_venue, place, until
from .test_gateway_session import NOW_MS


def threads_of_this_process() -> int:
    return len(os.listdir("/proc/self/task"))


async def readable(fd: int) -> None:
    loop = asyncio.get_running_loop()
    ready = loop.create_future()
    loop.add_reader(fd, lambda: ready.done() or ready.set_result(None))
    try:
        await asyncio.wait_for(ready, 5.0)
    finally:
        loop.remove_reader(fd)


@async_test
async def test_the_thread_flushes_what_was_asked_and_says_so_on_its_eventfd(tmp_path) -> None:
    before = threads_of_this_process()
    fd = os.open(tmp_path / "file", os.O_RDWR | os.O_CREAT, 0o600)
    flusher = FlushThread(fd, 0)
    assert threads_of_this_process() == before + 1
    assert flusher.progress() == (0, 0)
    os.pwrite(fd, b"x" * 100, 0)
    flusher.request(100)
    await readable(flusher.notify_fd)
    assert flusher.progress() == (100, 0)
    flusher.request(50)  # already durable: nothing to do, never goes backwards
    assert flusher.progress() == (100, 0)
    flusher.close()
    flusher.close()  # idempotent
    assert threads_of_this_process() == before
    os.close(fd)


@async_test
async def test_a_failed_flush_is_reported_with_its_errno() -> None:
    read_end, write_end = os.pipe()  # fdatasync on a pipe fails (EINVAL)
    flusher = FlushThread(write_end, 0)
    flusher.request(1)
    await readable(flusher.notify_fd)
    synced, error = flusher.progress()
    assert synced == 0 and error != 0
    flusher.close()
    os.close(read_end)
    os.close(write_end)


@pytest.fixture(autouse=True)
def every_batch_through_the_thread(monkeypatch: Any) -> None:
    """These tests are about the thread: no batch is small enough to flush on the spot
    (``test_a_small_batch_is_flushed_on_the_spot`` undoes it)."""
    monkeypatch.setattr(journal_module, "INLINE_FLUSH_BELOW", 0)


@async_test
async def test_a_small_batch_is_flushed_on_the_spot(tmp_path, monkeypatch: Any) -> None:
    monkeypatch.setattr(journal_module, "INLINE_FLUSH_BELOW", 3)
    journal = Journal(tmp_path / "journal-1.log", 1, "fsync")
    for n in (1, 2):
        journal.append(place(NOW_MS, n))
    assert journal.sync_later() is None  # 2 < 3: flushed here, durable on return
    assert journal._flusher is None
    for n in (3, 4, 5):
        journal.append(place(NOW_MS, n))
    big = journal.sync_later()
    assert big is not None  # 3 commands: the thread's
    journal.append(place(NOW_MS, 6))
    behind = journal.sync_later()  # small, but a batch waits for the thread: after it
    assert behind is not None
    await asyncio.wait_for(asyncio.gather(big, behind), 5.0)
    assert [r.seq for r in scan(tmp_path / "journal-1.log").records] == [1, 2, 3, 4, 5, 6]
    journal.close()


@async_test
async def test_sync_later_is_on_disk_when_its_future_is_done(tmp_path) -> None:
    journal = Journal(tmp_path / "journal-1.log", 1, "fsync")
    journal.append(place(NOW_MS, 1))
    first = journal.sync_later()
    assert first is not None
    journal.append(place(NOW_MS, 2))
    journal.append(place(NOW_MS, 3))
    second = journal.sync_later()
    assert second is not None
    # Both frames are written at once (the flush is what runs behind).
    assert [r.seq for r in scan(tmp_path / "journal-1.log").records] == [1, 2, 3]
    await asyncio.wait_for(asyncio.gather(first, second), 5.0)
    assert journal._flusher is not None
    assert journal._flusher.progress()[0] == journal._end
    assert journal.sync_later() is None  # nothing appended: durable as it is
    journal.close()
    assert journal._flusher is None


def test_without_a_running_loop_sync_later_flushes_on_the_spot(tmp_path) -> None:
    journal = Journal(tmp_path / "journal-1.log", 1, "fsync")
    journal.append(place(NOW_MS, 1))
    assert journal.sync_later() is None
    assert journal._flusher is None
    assert [r.seq for r in scan(tmp_path / "journal-1.log").records] == [1]
    journal.close()


@pytest.mark.parametrize("mode", ["buffered", "off"])
def test_only_fsync_mode_waits_for_a_flush(tmp_path, mode: str) -> None:
    async def body() -> None:
        journal = Journal(tmp_path / "journal-1.log", 1, mode)
        journal.append(place(NOW_MS, 1))
        assert journal.sync_later() is None
        assert journal._flusher is None
        journal.close()

    asyncio.run(body())


@async_test
async def test_a_plain_sync_completes_the_batches_still_waiting_for_the_thread(tmp_path) -> None:
    journal = Journal(tmp_path / "journal-1.log", 1, "fsync")
    journal.append(place(NOW_MS, 1))
    waiting = journal.sync_later()
    assert waiting is not None
    journal.sync()  # a snapshot's commit: everything is durable on return
    assert waiting.done() and waiting.exception() is None
    journal.close()


@async_test
async def test_a_failed_flush_stops_the_venue_and_acknowledges_nothing_after(
    tmp_path, monkeypatch
) -> None:
    read_end, write_end = os.pipe()
    monkeypatch.setattr(journal_module, "FlushThread", lambda fd, synced: FlushThread(write_end))
    venue, storage = journaled_venue(tmp_path)
    acknowledged: list[str] = []
    venue.submit(deposit, answer_into(acknowledged, "first"))
    await until(lambda: venue._failed, "the venue to stop")
    assert acknowledged == ["stopped: first"]
    assert "fdatasync" in (venue.failure or "")
    with pytest.raises(OSError):
        storage.sync()  # what is on disk is unknown: nothing more is made durable
    with pytest.raises(Exception):  # noqa: B017  # JournalFailed
        await venue.stop()
    storage.close(final_snapshot=False)
    os.close(read_end)
    os.close(write_end)


@async_test
async def test_a_venue_on_the_flush_thread_acknowledges_in_order_and_audits_in_order(
    tmp_path: Path,
) -> None:
    venue, storage = journaled_venue(tmp_path)
    acknowledged: list[str] = []
    for i in range(1, 201):
        venue.submit(lambda ts, i=i: place(ts, i), answer_into(acknowledged, str(i)))
        if i % 7 == 0:
            await asyncio.sleep(0)  # several batches, several flushes
    await until(lambda: len(acknowledged) == 200, "every order")
    assert acknowledged == [str(i) for i in range(1, 201)]
    journal = storage.journal
    assert journal is not None and journal._flusher is not None  # the thread did the flushes
    assert [r.command.qty for r in scan(journal.path).records] == [1000 + i for i in range(1, 201)]
    await venue.stop()
    storage.close()
    lines = [json.loads(line) for line in read_lines(tmp_path)]
    seqs = [line["seq"] for line in lines]
    assert seqs == sorted(seqs) and set(seqs) == set(range(1, 201))  # each order's decisions
