"""Storage damage never silently drops an acknowledged command (issue 11, item 1).

A seeded fault injection: a journal of several segments and snapshots is written through
``Storage`` (the venue's path: append, sync per batch, snapshot when due), every synced
command counted as acknowledged; then one kind of damage is done at a random place, and
startup either brings back exactly every acknowledged command, or (only where the damage is
confined to the last write and has a crash's shape) all but that last write, or refuses
with ``JournalCorrupt``.  Where the outcome is determined by the damage, it is asserted.
Plus unit tests of the operator's side: ``alatau journal``, ``--salvage``, the one-line
startup error, file permissions, the refusal of an earlier version's data.
"""

from __future__ import annotations

import os
import random
import stat
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import pytest

from engine.licensing import CheckChain
from engine.reports import OrderReport
from engine.state import digest
from gateway.storage.datadir import Storage, describe, list_segments, list_snapshots, salvage
from gateway.storage.journal import (
    FRAME_HEADER_SIZE,
    FRAME_OVERHEAD,
    SEGMENT_HEADER_SIZE,
    JournalCorrupt,
    JournalOldFormat,
    valid_frames_after,
)
from tests.kit.commands import random_command, soak_venue
from tests.kit.venues import TS0

KINDS = (
    "length_bit_flip",
    "length_fff0",
    "payload_bit_flip",
    "zeroed_sector",
    "newest_truncated_to_zero",
    "truncated_at_random",
    "older_segment_deleted",
    "newest_segment_deleted",
    "torn_last_write",
)
SEEDS_PER_KIND = 40  # 360 in all


class Written:
    def __init__(self) -> None:
        self.acked = 0  # the last acknowledged seq
        self.last_batch = 0  # commands in the last write
        self.final = ""  # digest after every acknowledged command
        self.before_last = ""  # digest before the last write


def write_journal(
    data_dir: Path, rnd: random.Random, mode: str = "fsync", snapshot_every: int = 0
) -> Written:
    storage = Storage(
        data_dir,
        mode=mode,
        snapshot_every=snapshot_every or rnd.randint(25, 45),
        background_snapshots=False,
    )
    exchange, _, _ = storage.recover(CheckChain(), soak_venue)
    written = Written()
    open_orders: list = []
    ts = TS0
    for _batch in range(rnd.randint(14, 22)):
        storage.checkpoint()  # a snapshot when due: so the last write is after the last one
        written.before_last = digest(exchange)
        size = rnd.randint(1, 12)
        for _ in range(size):
            ts += rnd.randint(0, 3)
            command = random_command(rnd, ts, open_orders)
            for report in exchange.execute(command):
                if isinstance(report, OrderReport) and report.status == "new":
                    open_orders.append((report.participant_id, report.market, report.order_id))
            storage.append(command)
        storage.sync()  # acknowledged from here on
        written.acked += size
        written.last_batch = size
    written.final = digest(exchange)
    storage.close(final_snapshot=False)  # as a crash leaves it
    return written


def frames(path: Path) -> list:
    return list(valid_frames_after(path.read_bytes(), SEGMENT_HEADER_SIZE))


def damage(data_dir: Path, kind: str, rnd: random.Random) -> str | None:
    """Do one damage; return the outcome it determines ("refuse", "drop_last", "keep") or
    None where either a refusal or no loss is right."""
    segments = list_segments(data_dir)
    with_frames = [p for p in segments if frames(p)]
    newest = segments[-1]
    if kind in ("length_bit_flip", "length_fff0", "payload_bit_flip"):
        path = rnd.choice(with_frames)
        frame = rnd.choice(frames(path))
        data = bytearray(path.read_bytes())
        if kind == "length_bit_flip":
            bit = rnd.randrange(32)
            data[frame.offset + 4 + bit // 8] ^= 1 << (bit % 8)
        elif kind == "length_fff0":
            struct.pack_into("<I", data, frame.offset + 4, 0xFFFFFFF0)
        else:
            start = frame.offset + FRAME_HEADER_SIZE
            at = rnd.randrange(start, frame.end - (FRAME_OVERHEAD - FRAME_HEADER_SIZE))
            data[at] ^= 1 << rnd.randrange(8)
        path.write_bytes(bytes(data))
        return "refuse"
    if kind == "zeroed_sector":
        path = rnd.choice(with_frames)
        data = bytearray(path.read_bytes())
        sector = rnd.randrange(0, len(data) // 512 + 1) * 512
        before = bytes(data)
        data[sector : sector + 512] = bytes(len(data[sector : sector + 512]))
        if bytes(data) == before:
            return "keep"
        path.write_bytes(bytes(data))
        last = list(valid_frames_after(before, SEGMENT_HEADER_SIZE))[-1]
        if path == newest and sector >= last.offset:
            return "drop_last"  # inside the last write only: a crash's shape
        if path == newest and not bytes(data[last.offset :]).strip(b"\0"):
            # The sector swallowed the whole last write and the end of the one before: the
            # same bytes as a crash in the write before, whose last sector was lost (the
            # one limit of reading damage from the bytes alone: docs/operations.md).
            return "tail_lost"
        return "refuse"
    if kind == "newest_truncated_to_zero":
        newest.write_bytes(b"")
        return "refuse"
    if kind == "truncated_at_random":
        path = rnd.choice(segments)
        data = path.read_bytes()
        cut = rnd.randrange(0, len(data))
        path.write_bytes(data[:cut])
        ends = {SEGMENT_HEADER_SIZE} | {
            f.end for f in valid_frames_after(data, SEGMENT_HEADER_SIZE)
        }
        if path == newest and cut in ends:
            return None  # exactly at a frame's end: looks like a clean stop (see the docs)
        return "refuse"  # a preallocated fsync segment is never cut short by a crash
    if kind == "older_segment_deleted":
        # Segments are kept back to the older of the two newest snapshots; the newest one
        # covers what the deleted one held, so nothing is lost and startup goes on.
        rnd.choice(segments[:-1]).unlink()
        return "keep"
    if kind == "newest_segment_deleted":
        newest.unlink()  # the snapshot before it names it: missing
        return "refuse"
    if kind == "torn_last_write":
        path = newest
        last = frames(path)[-1]
        data = bytearray(path.read_bytes())
        # The pages of the last write reach the disk in any order: lose some of its sectors
        # (the part of the first sector that is new, or later whole ones).
        sectors = list(range(last.offset - last.offset % 512, last.end, 512))
        lost = rnd.sample(sectors, rnd.randint(1, len(sectors)))
        for sector in lost:
            start = max(sector, last.offset)
            end = min(sector + 512, last.end)
            data[start:end] = bytes(end - start)
        path.write_bytes(bytes(data))
        return "drop_last"
    raise AssertionError(kind)


def recover(data_dir: Path, mode: str = "fsync"):
    storage = Storage(data_dir, mode=mode)
    try:
        exchange, last_seq, _ = storage.recover(CheckChain(), soak_venue)
        return exchange, last_seq
    finally:
        storage.close(final_snapshot=False)


@pytest.mark.parametrize("kind", KINDS)
def test_damage_never_silently_drops_an_acknowledged_command(tmp_path, kind):
    outcomes = {"refuse": 0, "keep": 0, "drop_last": 0, "tail_lost": 0}
    for seed in range(SEEDS_PER_KIND):
        rnd = random.Random(f"{kind}-{seed}")
        data_dir = tmp_path / str(seed)
        written = write_journal(data_dir, rnd)
        assert len(list_segments(data_dir)) >= 2 and list_snapshots(data_dir)
        expected = damage(data_dir, kind, rnd)
        try:
            exchange, last_seq = recover(data_dir)
        except JournalCorrupt as exc:
            outcome = "refuse"
            assert exc.path and exc.reason
        else:
            if (last_seq, digest(exchange)) == (written.acked, written.final):
                outcome = "keep"
            elif (last_seq, digest(exchange)) == (
                written.acked - written.last_batch,
                written.before_last,
            ):
                outcome = "drop_last"
            elif expected == "tail_lost" and last_seq < written.acked - written.last_batch:
                outcome = "tail_lost"
            else:
                raise AssertionError(
                    f"seed {seed}: {kind}: recovered seq {last_seq} of {written.acked} "
                    "acknowledged: a silent loss"
                )
        if expected == "tail_lost":
            assert outcome in ("refuse", "tail_lost"), f"seed {seed}: {kind}: {outcome}"
        elif expected is not None:
            assert outcome == expected, f"seed {seed}: {kind}: {outcome}, expected {expected}"
        else:
            assert outcome in ("refuse", "keep"), f"seed {seed}: {kind}: {outcome}"
        outcomes[outcome] += 1
        report, healthy = describe(data_dir) if outcome != "refuse" else ("", True)
        assert healthy, report
    assert sum(outcomes.values()) == SEEDS_PER_KIND
    assert outcomes["tail_lost"] <= SEEDS_PER_KIND // 10, outcomes


def test_a_damaged_write_in_buffered_mode_ends_the_journal_there(tmp_path):
    """Buffered: several writes may be unflushed at a power cut, their sectors lost in any
    order, so the first crash-shaped damaged frame ends the journal, later frames too."""
    rnd = random.Random(7)
    write_journal(tmp_path, rnd, mode="buffered", snapshot_every=10_000)
    path = list_segments(tmp_path)[-1]
    found = frames(path)
    assert len(found) >= 3
    data = bytearray(path.read_bytes())
    victim = found[-3]
    data[victim.offset : victim.offset + FRAME_HEADER_SIZE] = bytes(FRAME_HEADER_SIZE)
    path.write_bytes(bytes(data))
    _, last_seq = recover(tmp_path, mode="buffered")
    assert last_seq == victim.first_seq - 1
    (kept,) = tmp_path.glob("journal-*.torn-*")
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600


# -- the operator's side ---------------------------------------------------------------------


def corrupt_middle(data_dir: Path) -> Path:
    path = list_segments(data_dir)[-1]
    frame = frames(path)[1]
    data = bytearray(path.read_bytes())
    data[frame.offset + 5] ^= 0x10  # a bit of the length field
    path.write_bytes(bytes(data))
    return path


def alatau(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "gateway.app.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_alatau_journal_says_what_startup_would_do(tmp_path):
    write_journal(tmp_path, random.Random(1))
    healthy = alatau("journal", str(tmp_path))
    assert healthy.returncode == 0 and "healthy" in healthy.stdout, healthy.stdout
    path = corrupt_middle(tmp_path)
    offset = frames(path)[0].end
    damaged = alatau("journal", str(tmp_path))
    assert damaged.returncode == 1
    assert f"CORRUPT at {path}: byte offset {offset}: frame header checksum" in damaged.stdout


def test_alatau_journal_reports_a_torn_tail_and_exits_zero(tmp_path):
    write_journal(tmp_path, random.Random(2))
    path = list_segments(tmp_path)[-1]
    last = frames(path)[-1]
    data = bytearray(path.read_bytes())
    data[last.offset : last.offset + FRAME_HEADER_SIZE] = bytes(FRAME_HEADER_SIZE)
    path.write_bytes(bytes(data))
    done = alatau("journal", str(tmp_path))
    assert done.returncode == 0, done.stdout
    assert f"torn tail at {path}: byte offset {last.offset}" in done.stdout


def test_salvage_sets_the_damage_aside_and_startup_goes_on(tmp_path):
    written = write_journal(tmp_path, random.Random(3))
    path = corrupt_middle(tmp_path)
    before = path.read_bytes()
    first_damaged = frames(path)[0].end
    last_kept = frames(path)[0]
    kept_seq = last_kept.first_seq + last_kept.count - 1
    with pytest.raises(JournalCorrupt):
        recover(tmp_path)
    done = alatau("journal", str(tmp_path), "--salvage")
    assert done.returncode == 0, done.stdout
    assert f"kept through seq {kept_seq}" in done.stdout
    assert f"seqs {kept_seq + 1}..{written.acked} are in damaged bytes" in done.stdout or (
        f"..{written.acked}" in done.stdout
    )
    (folder,) = tmp_path.glob("salvaged-*")
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    (aside,) = folder.glob("journal-*.from-*")
    assert aside.read_bytes() == before[first_damaged:]  # every cut byte kept
    assert path.read_bytes() == before[:first_damaged]
    _, last_seq = recover(tmp_path)
    assert last_seq == kept_seq


def test_salvage_of_a_missing_segment_after_the_snapshot(tmp_path):
    write_journal(tmp_path, random.Random(4))
    newest = list_segments(tmp_path)[-1]
    newest.unlink()
    with pytest.raises(JournalCorrupt, match="missing"):
        recover(tmp_path)
    report, ok = salvage(tmp_path)
    assert ok, report
    snapshot_seq = int(list_snapshots(tmp_path)[-1].stem.split("-")[1])
    _, last_seq = recover(tmp_path)
    assert last_seq == snapshot_seq


def test_a_corrupt_journal_stops_serve_in_one_line(tmp_path):
    write_journal(tmp_path, random.Random(5))
    path = corrupt_middle(tmp_path)
    done = alatau("serve", "--port", "0", "--data-dir", str(tmp_path), "--quiet", timeout=30)
    assert done.returncode != 0
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith(f"alatau: cannot start: {path}: corrupt at byte offset "), last
    assert "header checksum mismatch" in last and "--salvage" in last
    assert "Traceback" not in done.stderr


def old_format_segment(path: Path) -> None:
    import msgspec

    from gateway.storage.journal import JournalRecord

    command = random_command(random.Random(1), TS0, [])
    body = b""
    for seq in (1, 2):
        payload = msgspec.msgpack.encode(JournalRecord(seq, command))
        body += struct.pack("<II", len(payload), zlib.crc32(payload)) + payload
    path.write_bytes(b"ALTJRNL1" + body)


def test_an_earlier_versions_data_directory_is_refused_in_one_line(tmp_path):
    old_format_segment(tmp_path / "journal-00000000000000000001.log")
    with pytest.raises(JournalOldFormat):
        recover(tmp_path)
    done = alatau("serve", "--port", "0", "--data-dir", str(tmp_path), "--quiet", timeout=30)
    assert done.returncode != 0
    last = done.stderr.strip().splitlines()[-1]
    assert "earlier version" in last and "--migrate" in last, last
    assert "Traceback" not in done.stderr
    migrated = alatau("journal", str(tmp_path), "--migrate")
    assert migrated.returncode == 0, migrated.stdout
    _, last_seq = recover(tmp_path)
    assert last_seq == 2


def test_data_files_are_private_to_the_servers_user(tmp_path):
    old = os.umask(0o022)
    try:
        data_dir = tmp_path / "data"
        write_journal(data_dir, random.Random(6))
        storage = Storage(data_dir)
        storage.recover(CheckChain(), soak_venue)
        storage.close()  # a final snapshot, a new segment
    finally:
        os.umask(old)
    assert stat.S_IMODE(data_dir.stat().st_mode) == 0o700
    files = [p for p in data_dir.iterdir() if p.is_file()]
    kinds = {p.name.split("-")[0] for p in files}
    assert {"journal", "snapshot", "audit", "lock"} <= kinds
    for path in files:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
