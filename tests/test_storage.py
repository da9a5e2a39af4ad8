"""The journal and snapshots bring back exactly the acknowledged state after a crash."""

from __future__ import annotations

import asyncio
import os
import random
import subprocess
import sys
import time

import pytest

from engine.licensing import CheckChain
from engine.reports import OrderReport
from engine.state import digest
from gateway.storage.datadir import Storage, describe, list_segments, list_snapshots
from gateway.storage.journal import (
    FRAME_HEADER_SIZE,
    FRAME_MARKER,
    SEGMENT_HEADER_SIZE,
    JournalCorrupt,
    encode_frame,
    encode_segment_header,
    scan,
    valid_frames_after,
)
from tests.kit.commands import random_command, soak_venue
from tests.kit.venues import TS0


def run_commands(storage: Storage, exchange, count: int, seed: int, batch: int = 7) -> None:
    """Execute random commands the way the sequencer does: append each, commit per batch."""
    rnd = random.Random(seed)
    open_orders: list = []
    ts = TS0

    async def go() -> None:
        nonlocal ts
        for index in range(count):
            ts += rnd.randint(0, 3)
            command = random_command(rnd, ts, open_orders)
            for report in exchange.execute(command):
                if isinstance(report, OrderReport) and report.status == "new":
                    open_orders.append((report.participant_id, report.market, report.order_id))
            storage.append(command)
            if index % batch == batch - 1:
                await storage.commit()
        await storage.commit()

    asyncio.run(go())


def recover(tmp_path, **options):
    storage = Storage(tmp_path, **options)
    exchange, last_seq, _ = storage.recover(CheckChain(), soak_venue)
    return storage, exchange, last_seq


def test_replay_after_crash_restores_the_same_state(tmp_path):
    """Commands journaled without a clean shutdown replay to the identical state (digest)."""
    storage, exchange, last_seq = recover(tmp_path)
    assert last_seq == 0
    run_commands(storage, exchange, 2000, seed=1)
    expected = digest(exchange)
    storage.close(final_snapshot=False)  # a crash: no final snapshot
    _, recovered, last_seq = recover(tmp_path)
    assert last_seq == 2000
    assert digest(recovered) == expected


def test_a_snapshot_is_of_the_state_at_its_seq_not_at_the_end_of_its_writing(tmp_path):
    """The background child writes the state as it was at the fork, while the parent goes
    on executing and journaling: recovery from that snapshot plus the journal is exact."""
    storage, exchange, _ = recover(tmp_path, snapshot_every=100)
    assert storage.background_snapshots
    run_commands(storage, exchange, 150, seed=4)  # a child forked at 100 or so
    at_fork = storage._snapshot_child
    run_commands(storage, exchange, 80, seed=5)  # the parent goes on meanwhile
    expected = digest(exchange)
    storage.wait_for_snapshot()
    seqs = [int(p.stem.split("-")[1]) for p in list_snapshots(tmp_path)]
    assert at_fork is None or at_fork[1] in seqs
    storage.close(final_snapshot=False)  # a crash
    _, recovered, last_seq = recover(tmp_path)
    assert last_seq == 230
    assert digest(recovered) == expected


def test_a_failed_background_snapshot_loses_nothing(tmp_path, monkeypatch, caplog):
    """If the child cannot write its snapshot, the previous one and every segment since are
    kept, so recovery still finds every command."""
    import gateway.storage.datadir as storage_module

    storage, exchange, _ = recover(tmp_path, snapshot_every=200)
    run_commands(storage, exchange, 250, seed=6)  # one good snapshot near 200
    storage.wait_for_snapshot()
    good = list_snapshots(tmp_path)
    assert len(good) == 1

    def broken(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(storage_module, "_write_snapshot", broken)  # the child inherits it
    run_commands(storage, exchange, 250, seed=7)  # the next one fails in the child
    storage.wait_for_snapshot()
    assert "failed" in caplog.text
    assert list_snapshots(tmp_path) == good
    expected = digest(exchange)
    storage.close(final_snapshot=False)  # as a crash leaves it
    monkeypatch.undo()
    _, recovered, last_seq = recover(tmp_path)
    assert last_seq == 500
    assert digest(recovered) == expected


def test_snapshots_rotate_segments_and_recovery_uses_them(tmp_path):
    """Periodic snapshots start new segments; recovery = newest snapshot + later records."""
    storage, exchange, _ = recover(tmp_path, snapshot_every=500)
    run_commands(storage, exchange, 1800, seed=2)
    expected = digest(exchange)
    storage.wait_for_snapshot()  # the one at 1500 may still be being written
    assert len(list_snapshots(tmp_path)) == 2  # older ones pruned
    storage.close(final_snapshot=False)  # as a crash leaves it
    storage2, recovered, last_seq = recover(tmp_path, snapshot_every=500)
    assert last_seq == 1800
    assert digest(recovered) == expected
    # and it goes on appending after the recovered state
    run_commands(storage2, recovered, 300, seed=3)
    expected = digest(recovered)
    storage2.close()  # clean shutdown: final snapshot
    _, again, last_seq = recover(tmp_path)
    assert last_seq == 2100
    assert digest(again) == expected


def test_torn_last_record_is_cut_and_logged(tmp_path, caplog):
    """Half a frame header at the end (crash mid-write, in buffered mode where the file's
    size may reach the disk before its data) is cut off; everything before it stays."""
    storage, exchange, _ = recover(tmp_path, mode="buffered")
    run_commands(storage, exchange, 300, seed=4)
    expected = digest(exchange)
    storage.close(final_snapshot=False)  # as a crash leaves it
    segment = list_segments(tmp_path)[-1]
    good_size = segment.stat().st_size
    with open(segment, "ab") as handle:
        handle.write(FRAME_MARKER + b"\x40\x00")  # a frame header cut short
    _, recovered, last_seq = recover(tmp_path, mode="buffered")
    assert last_seq == 300
    assert digest(recovered) == expected
    assert segment.stat().st_size == good_size
    assert "torn tail" in caplog.text


def test_a_preallocated_fsync_segment_cut_short_is_corruption(tmp_path):
    """An fsync segment preallocated ahead of its writes is never cut short by a crash (its
    size is past its frames): a frame cut by the end of the file there is a truncation."""
    storage, exchange, _ = recover(tmp_path)
    run_commands(storage, exchange, 300, seed=4)
    storage.close(final_snapshot=False)
    segment = list_segments(tmp_path)[-1]
    data = segment.read_bytes()
    segment.write_bytes(data[: len(data) - 10])
    with pytest.raises(JournalCorrupt, match="truncated"):
        recover(tmp_path)


def test_zeros_a_crash_leaves_after_the_records_are_read_as_their_end(tmp_path, caplog):
    """The live segment is preallocated, so a crash leaves it ending in zeros: recovery
    keeps every record, cuts the zeros off quietly and writes the next record right after
    the last one."""
    storage, exchange, _ = recover(tmp_path)
    run_commands(storage, exchange, 300, seed=4)
    storage.close(final_snapshot=False)
    segment = list_segments(tmp_path)[-1]
    good_size = segment.stat().st_size
    with open(segment, "ab") as handle:
        handle.write(bytes(1 << 16))  # the unused preallocated space a crash leaves behind
    storage2, recovered, last_seq = recover(tmp_path)
    assert last_seq == 300
    assert segment.stat().st_size == good_size
    assert "torn" not in caplog.text
    run_commands(storage2, recovered, 50, seed=9)
    expected = digest(recovered)
    storage2.close(final_snapshot=False)
    assert [r.seq for r in scan(segment).records] == list(range(1, 351))
    _, again, last_seq = recover(tmp_path)
    assert (last_seq, digest(again)) == (350, expected)


def test_a_frame_whose_payload_ends_in_zero_bytes_before_the_padding_is_kept(tmp_path):
    """A payload may itself end in zero bytes: the frame's trailer keeps it apart from the
    preallocated zeros."""
    rnd = random.Random(1)
    commands = []
    while not commands or not encode_frame(commands, 1)[:-4].endswith(b"\0"):
        commands.append(random_command(rnd, TS0, []))
    segment = tmp_path / "journal-00000000000000000001.log"
    frame = encode_frame(commands, 1)
    segment.write_bytes(encode_segment_header("fsync", 1) + frame + bytes(4096))
    result = scan(segment)
    assert [r.seq for r in result.records] == list(range(1, len(commands) + 1))
    assert result.torn_bytes == 0


def test_bytes_after_a_hole_are_a_torn_tail(tmp_path):
    """A crash can persist a later page of an unconfirmed write but not an earlier one: the
    records end at the zeros, and what follows them is cut off as never confirmed."""
    storage, exchange, _ = recover(tmp_path)
    run_commands(storage, exchange, 200, seed=10)
    expected = digest(exchange)
    storage.close(final_snapshot=False)
    segment = list_segments(tmp_path)[-1]
    good_size = segment.stat().st_size
    with open(segment, "ab") as handle:
        handle.write(bytes(4096) + b"\x30\x00\x00\x00" + bytes(100) + b"\x99")
    assert scan(segment).good_length == good_size
    _, recovered, last_seq = recover(tmp_path)
    assert (last_seq, digest(recovered)) == (200, expected)
    assert segment.stat().st_size == good_size


def last_frame_offsets(segment) -> list[int]:
    data = segment.read_bytes()
    return [f.offset for f in valid_frames_after(data, SEGMENT_HEADER_SIZE)]


def test_a_hole_inside_the_last_write_makes_it_a_torn_tail(tmp_path, caplog):
    """A crash can lose a sector in the middle of the write in flight while later sectors of
    it reach the disk: that frame was never confirmed (its fdatasync had not returned), so
    it is cut off, not called corruption."""
    storage, exchange, _ = recover(tmp_path)
    run_commands(storage, exchange, 300, seed=12, batch=40)
    storage.close(final_snapshot=False)
    segment = list_segments(tmp_path)[-1]
    last = last_frame_offsets(segment)[-1]
    data = bytearray(segment.read_bytes())
    hole = (last // 512 + 1) * 512  # a whole sector inside the last frame
    assert hole + 512 < len(data)
    data[hole : hole + 512] = bytes(512)
    segment.write_bytes(bytes(data))
    _, _, last_seq = recover(tmp_path)
    assert last_seq == 280  # the last write (seqs 281..300) is cut
    assert "torn tail" in caplog.text


def test_a_hole_in_a_frame_before_the_last_is_corruption(tmp_path):
    """The same zeroed sector in an earlier frame: later frames were confirmed after it, so
    it is damage to confirmed data, and startup stops (this used to cut the journal)."""
    storage, exchange, _ = recover(tmp_path)
    run_commands(storage, exchange, 300, seed=12, batch=40)
    storage.close(final_snapshot=False)
    segment = list_segments(tmp_path)[-1]
    offsets = last_frame_offsets(segment)
    data = bytearray(segment.read_bytes())
    hole = (offsets[2] // 512 + 1) * 512
    assert hole + 512 < offsets[3]
    data[hole : hole + 512] = bytes(512)
    segment.write_bytes(bytes(data))
    with pytest.raises(JournalCorrupt) as failure:
        recover(tmp_path)
    assert failure.value.offset == offsets[2]


def test_a_zeroed_header_among_good_records_is_corruption(tmp_path):
    """Zeros where a frame header was, with good frames after: damage to confirmed
    records, which must stop startup, not silently cut the journal short."""
    storage, exchange, _ = recover(tmp_path)
    run_commands(storage, exchange, 300, seed=13)
    storage.close(final_snapshot=False)
    segment = list_segments(tmp_path)[-1]
    offsets = last_frame_offsets(segment)
    data = bytearray(segment.read_bytes())
    data[offsets[20] : offsets[20] + FRAME_HEADER_SIZE] = bytes(FRAME_HEADER_SIZE)
    segment.write_bytes(bytes(data))
    with pytest.raises(JournalCorrupt) as failure:
        recover(tmp_path)
    assert failure.value.offset == offsets[20]


def test_a_segment_without_its_header_is_corruption(tmp_path):
    """A segment is created whole (temporary name, flush, rename), so a named segment of
    zeros is damage, not a crash: startup stops instead of taking it for empty."""
    storage, exchange, _ = recover(tmp_path)
    run_commands(storage, exchange, 100, seed=14)
    storage.close(final_snapshot=False)
    (tmp_path / "journal-00000000000000000101.log").write_bytes(bytes(1 << 20))
    with pytest.raises(JournalCorrupt, match="segment header"):
        recover(tmp_path)


def test_a_write_whose_first_sector_was_lost_is_a_torn_tail(tmp_path, caplog):
    """The write in flight began inside a sector that also holds the end of the write
    before it: if that sector never reached the disk, the new part of it reads as zeros
    while later sectors of the write did arrive.  Still a torn tail; the cut bytes are kept
    beside the segment for an operator."""
    storage, exchange, _ = recover(tmp_path)
    run_commands(storage, exchange, 200, seed=16, batch=20)
    storage.close(final_snapshot=False)
    segment = list_segments(tmp_path)[-1]
    offset = last_frame_offsets(segment)[-1]
    assert offset % 512  # inside a sector
    data = bytearray(segment.read_bytes())
    data[offset : (offset // 512 + 1) * 512] = bytes((offset // 512 + 1) * 512 - offset)
    segment.write_bytes(bytes(data))
    result = scan(segment)
    assert [r.seq for r in result.records] == list(range(1, 181))
    _, _, last_seq = recover(tmp_path)
    assert last_seq == 180
    (kept,) = tmp_path.glob("journal-*.torn-*")
    assert kept.read_bytes() == bytes(data[offset:]).rstrip(b"\0")


def test_a_segment_whose_header_sector_was_lost_is_corruption(tmp_path):
    path = tmp_path / "journal-00000000000000000001.log"
    frame = encode_frame([random_command(random.Random(1), TS0, [])], 1)
    path.write_bytes(bytes(512) + frame * 5)
    with pytest.raises(JournalCorrupt):
        scan(path)


def test_buffered_a_torn_segment_before_the_newest_is_corruption(tmp_path):
    """A segment is flushed when it is closed, in buffered mode too, so only the newest can
    be torn by a crash: a torn earlier one is damage (this used to be let through when the
    snapshot covered it)."""
    storage, exchange, _ = recover(tmp_path, mode="buffered", background_snapshots=False)
    run_commands(storage, exchange, 150, seed=17)
    storage.snapshot()
    run_commands(storage, exchange, 50, seed=18)
    storage.close(final_snapshot=False)
    first = list_segments(tmp_path)[0]
    data = first.read_bytes()
    first.write_bytes(data[: len(data) - 500])
    with pytest.raises(JournalCorrupt, match="before the newest"):
        recover(tmp_path, mode="buffered")


def test_a_clean_close_leaves_no_preallocated_space(tmp_path):
    """The segment is grown in chunks while live; a clean close gives the space back."""
    storage, exchange, _ = recover(tmp_path)
    run_commands(storage, exchange, 100, seed=11)
    segment = list_segments(tmp_path)[-1]
    live_size = segment.stat().st_size
    storage.close(final_snapshot=False)
    closed_size = segment.stat().st_size
    assert live_size > closed_size
    assert scan(segment).good_length == closed_size


def test_corrupt_record_in_the_middle_stops_startup_naming_the_offset(tmp_path):
    """A damaged record followed by good ones is an error with its offset, never skipped."""
    storage, exchange, _ = recover(tmp_path)
    run_commands(storage, exchange, 300, seed=5)
    storage.close(final_snapshot=False)  # as a crash leaves it
    segment = list_segments(tmp_path)[-1]
    data = bytearray(segment.read_bytes())
    middle = len(data) // 2
    data[middle] ^= 0xFF
    segment.write_bytes(bytes(data))
    with pytest.raises(JournalCorrupt) as failure:
        recover(tmp_path)
    assert "offset" in str(failure.value)
    assert 0 < failure.value.offset <= middle


def test_off_mode_writes_nothing(tmp_path):
    """Durability 'off' journals nothing (benchmarks only)."""
    storage, exchange, _ = recover(tmp_path, mode="off")
    run_commands(storage, exchange, 100, seed=6)
    storage.close()
    assert not list_snapshots(tmp_path)
    assert all(scan(p).records == [] for p in list_segments(tmp_path))


def test_market_data_seq_carries_on_after_recovery(tmp_path):
    """After a restart the published book starts at the recovered seq, not at 0, so a
    client's next update is simply the next seq."""
    from gateway.hosts.local import LocalHost
    from gateway.sequencer.venue import Venue

    storage, exchange, _ = recover(tmp_path)
    run_commands(storage, exchange, 1500, seed=7)
    seqs = {symbol: book.seq for symbol, book in exchange.books.items()}
    storage.close(final_snapshot=False)  # as a crash leaves it
    _, recovered, _ = recover(tmp_path)

    async def published() -> dict[str, int]:
        venue = Venue(LocalHost(recovered))
        return {symbol: mirror.seq for symbol, mirror in venue.channels.mirrors.items()}

    assert any(seqs.values())
    assert asyncio.run(published()) == seqs


def test_journal_command_reports_a_healthy_and_a_damaged_directory(tmp_path):
    """`alatau journal` lists segments and snapshots, and exits 1 naming a corrupt offset."""
    import subprocess
    import sys

    storage, exchange, _ = recover(tmp_path)
    run_commands(storage, exchange, 200, seed=8)
    storage.close()
    command = [sys.executable, "-m", "gateway.app.cli", "journal", str(tmp_path)]
    healthy = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert healthy.returncode == 0, healthy.stdout + healthy.stderr
    assert "last seq 200" in healthy.stdout and "healthy" in healthy.stdout
    segment = list_segments(tmp_path)[0]
    data = bytearray(segment.read_bytes())
    data[len(data) // 2] ^= 0xFF
    segment.write_bytes(bytes(data))
    damaged = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert damaged.returncode == 1
    assert "CORRUPT at byte offset" in damaged.stdout


def test_one_data_directory_serves_one_server_at_a_time(tmp_path):
    """A second server on the same data directory is refused, naming the holder; once the
    first has closed it, the directory is free."""
    from gateway.storage.datadir import DataDirInUse

    first, exchange, _ = recover(tmp_path)
    run_commands(first, exchange, 50, seed=8)
    with pytest.raises(DataDirInUse, match=f"pid {os.getpid()}"):
        recover(tmp_path, lock_wait_s=0.2)
    first.close()
    second, _, last_seq = recover(tmp_path, lock_wait_s=0.2)
    assert last_seq == 50
    second.close()


def test_a_server_waits_for_the_last_one_to_let_go(tmp_path):
    """A server that was just stopped may still be writing its final snapshot: the next
    one waits for the lock rather than fail or read a directory being written."""
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import fcntl, os, sys, time\n"
            "fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)\n"
            "fcntl.flock(fd, fcntl.LOCK_EX)\n"
            "print('locked', flush=True)\n"
            "time.sleep(0.5)\n",
            str(tmp_path / "lock"),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout.readline().strip() == "locked"
    started = time.monotonic()
    storage, _, last_seq = recover(tmp_path, lock_wait_s=10)
    assert time.monotonic() - started > 0.2  # it did wait
    assert last_seq == 0
    storage.close()
    holder.wait(5)


def _torn_first_segment_after_a_lost_snapshot(tmp_path, mode: str) -> None:
    """A power cut in buffered mode: the first segment's tail never reached the disk, nor did
    the snapshot the next segment began at; the next segment did."""
    storage, exchange, _ = recover(tmp_path, mode=mode, background_snapshots=False)
    run_commands(storage, exchange, 100, seed=19)
    storage.snapshot()
    run_commands(storage, exchange, 50, seed=20)
    storage.close(final_snapshot=False)
    (tmp_path / "snapshot-00000000000000000100.bin").unlink()
    first = list_segments(tmp_path)[0]
    data = first.read_bytes()
    first.write_bytes(data[: len(data) - 500])


def test_buffered_a_torn_segment_before_a_later_one_stops_startup(tmp_path):
    _torn_first_segment_after_a_lost_snapshot(tmp_path, "buffered")
    report, healthy = describe(tmp_path)
    assert not healthy and "CORRUPT" in report
    with pytest.raises(JournalCorrupt):
        recover(tmp_path, mode="buffered")


def test_fsync_a_torn_segment_before_a_later_one_stops_startup(tmp_path):
    _torn_first_segment_after_a_lost_snapshot(tmp_path, "fsync")
    with pytest.raises(JournalCorrupt):
        recover(tmp_path)


def test_alatau_journal_agrees_with_startup_on_a_torn_segment_before_the_newest(tmp_path):
    storage, exchange, _ = recover(tmp_path, mode="buffered", background_snapshots=False)
    run_commands(storage, exchange, 150, seed=21)
    storage.snapshot()
    run_commands(storage, exchange, 50, seed=22)
    storage.close(final_snapshot=False)
    first = list_segments(tmp_path)[0]
    data = first.read_bytes()
    first.write_bytes(data[: len(data) - 500])
    report, healthy = describe(tmp_path)
    assert not healthy, report
    assert "CORRUPT" in report and "journal-00000000000000000001.log" in report
    with pytest.raises(JournalCorrupt):
        recover(tmp_path, mode="buffered")


def test_no_final_snapshot_of_commands_never_made_durable(tmp_path, caplog):
    """A stop after a failed or missing sync must not make durable, through the final
    snapshot, commands that were never acknowledged."""
    storage, exchange, _ = recover(tmp_path)
    run_commands(storage, exchange, 100, seed=23)
    rnd = random.Random(24)
    for index in range(5):
        command = random_command(rnd, TS0 + 9_000 + index, [])
        exchange.execute(command)
        storage.append(command)
    storage.close()  # the clean-stop path, with a final snapshot due
    assert "no final snapshot" in caplog.text
    _, _, last_seq = recover(tmp_path)
    assert last_seq == 100
