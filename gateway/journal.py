"""The command journal: an append-only file of every command, written before it is confirmed.

File layout: an 8-byte header (``MAGIC``), then records.  A record is::

    u32 length | u32 crc32 of payload | payload (msgpack of JournalRecord(seq, command))

little-endian.  ``seq`` is the command's position in the venue's one ordered stream and
rises by exactly one per record; a journal file (a *segment*) starts at the seq in its
name.

Group commit: the sequencer ``append``s every command of a batch (one turn of the event
loop) and then calls ``sync()`` once, which writes the batch with one ``write`` and, in
``fsync`` mode, one ``fdatasync``, so durability costs one disk flush per batch, not per
order; the busier the venue, the more orders share a flush.

The flush runs on the event loop's thread, blocking it for the flush (about 0.2 ms on this
project's test machine).  An earlier version handed it to a worker thread, so the loop could
go on meanwhile; measured, that cost more than it saved: each hand-off made the two threads
trade the GIL (the worker waits up to the 5 ms switch interval to get it back after the
flush), which added about 12 µs of CPU per order at saturation and several milliseconds to
the tail latency at moderate rates.  On storage whose flush takes milliseconds, a writer
that does not need the GIL (another process) would be the way to overlap it.

Preallocation: the live segment is grown ahead of its writes in chunks of
``PREALLOCATE_BYTES`` (``posix_fallocate``), and records are written in place with
``pwrite``.  Appending to a file makes every ``fdatasync`` also commit the file's new size
to the filesystem's journal; writing inside space already allocated does not, which made a
small write + ``fdatasync`` about 30 % cheaper in wall time and in CPU on this project's
test machine (55 against 78 µs, 23 against 33 µs of CPU).  A clean ``close`` cuts the
unused space off again; after a crash the segment ends in zeros, which ``scan`` reads as
the end of its records.

Durability modes (``--durability``):

* ``fsync`` (default): the batch is on disk before any of it is acknowledged; a crash of
  the process or of the machine loses nothing that was acknowledged.
* ``buffered``: the batch is handed to the OS before it is acknowledged, not flushed; a
  crash of the process loses nothing, a power cut or kernel crash can lose the last
  seconds of acknowledged commands.
* ``off``: nothing is written (benchmarks only); a restart starts from the last snapshot.

Reading (``scan``): the zeros after the last record are preallocated space.  A damaged record
(cut short, a zero header, a bad checksum, undecodable) is a *torn tail* when it belongs to
the last write, the one a crash interrupted: when only zeros follow it, or when a *hole*
(512 zero bytes, a sector that never reached the disk; no record contains one) lies
anywhere after it.  In ``fsync`` mode nothing is acknowledged until an ``fdatasync`` covers
every byte before it, and a crash can lose the pages of the write in flight in any order,
so everything from such a record on was never confirmed: it is reported so the caller can
cut it off and go on.  A damaged record with good data and no hole after it is
*corruption*: ``scan`` raises ``JournalCorrupt`` naming the offset, and startup stops
rather than silently drop later records.
"""

from __future__ import annotations

import contextlib
import os
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import msgspec

from engine.commands import Command
from engine.errors import EngineError

MAGIC = b"ALTJRNL1"
HEADER = struct.Struct("<II")
MODES = ("fsync", "buffered", "off")
PREALLOCATE_BYTES = 16 << 20


class JournalRecord(msgspec.Struct, array_like=True):
    seq: int
    command: Command


class JournalCorrupt(EngineError):
    """A journal record in the middle of a file is damaged: recovery must not go on."""

    def __init__(self, path: Path, offset: int, reason: str) -> None:
        super().__init__(f"{path}: corrupt record at byte offset {offset}: {reason}")
        self.path = path
        self.offset = offset


@dataclass
class ScanResult:
    records: list[JournalRecord]
    good_length: int  # bytes up to the end of the last good record
    torn_bytes: int  # non-zero bytes after it, from a write cut off by a crash (0 if none)


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(JournalRecord)


def encode_record(record: JournalRecord) -> bytes:
    payload = _encoder.encode(record)
    return HEADER.pack(len(payload), zlib.crc32(payload)) + payload


def scan(path: Path) -> ScanResult:
    """Read and check a whole segment (see the module docstring for damage handling)."""
    data = path.read_bytes()
    # Past the last non-zero byte there is only preallocated space.  A record may itself end
    # in zero bytes, so lengths are checked against the file's size, not against this.
    content_end = len(data.rstrip(b"\0"))
    if len(data) < len(MAGIC) or content_end == 0:
        # A crash right after creating the file (or after growing it, before its header
        # reached the disk): nothing was ever acknowledged from it.
        return ScanResult([], 0, content_end)
    if data[: len(MAGIC)] != MAGIC:
        raise JournalCorrupt(path, 0, "not a journal file (bad magic)")
    records: list[JournalRecord] = []
    offset = len(MAGIC)
    size = len(data)
    while offset < content_end:
        problem = None
        if offset + HEADER.size > size:
            problem = "cut short"
        else:
            length, crc = HEADER.unpack_from(data, offset)
            start = offset + HEADER.size
            if length == 0:
                problem = "no record header"
            elif start + length > size:
                problem = "cut short"
            elif zlib.crc32(data[start : start + length]) != crc:
                problem = "checksum mismatch"
        if problem is None:
            try:
                record = _decoder.decode(data[start : start + length])
            except msgspec.DecodeError as exc:
                problem = f"undecodable record: {exc}"
        if problem is not None:
            if _torn(data, offset, start + length if problem != "cut short" else size, content_end):
                return ScanResult(records, offset, content_end - offset)
            raise JournalCorrupt(path, offset, problem)
        if records and record.seq != records[-1].seq + 1:
            raise JournalCorrupt(
                path, offset, f"seq {record.seq} follows {records[-1].seq}: records missing"
            )
        records.append(record)
        offset = start + length
    return ScanResult(records, offset, 0)


HOLE = bytes(512)  # a sector the disk never got: the smallest unit a crash can lose


def _torn(data: bytes, offset: int, record_end: int, content_end: int) -> bool:
    """Whether a damaged record at ``offset`` belongs to the last, unconfirmed write.

    Yes if nothing but zeros follows it, or if a hole (a sector of zeros, which no record
    contains) lies anywhere from it on: in ``fsync`` mode nothing is acknowledged until an
    ``fdatasync`` covers every byte before it, and a crash can lose pages of the write in
    flight in any order, so a hole means everything from the damaged record on was never
    confirmed.  A damaged record with good data and no hole after it is corruption."""
    if record_end >= content_end:
        return True
    # The write's first sector may have reached the disk only as far as the bytes of the
    # write before it (the rest of the sector reads as zeros); every later lost sector is
    # a whole one.
    sector_end = (offset // len(HOLE) + 1) * len(HOLE)
    if not data[offset:sector_end].strip(b"\0"):
        return True
    return data.find(HOLE, offset, content_end) >= 0


def iter_commands(records: list[JournalRecord], after_seq: int) -> Iterator[JournalRecord]:
    for record in records:
        if record.seq > after_seq:
            yield record


def seq_in_name(path: Path) -> int:
    """The seq a data-directory file is named by (``journal-``, ``snapshot-``, ``audit-``)."""
    return int(path.stem.split("-", 1)[1])


def fsync_path(path: Path) -> None:
    """fsync a file or a directory (a new or renamed name is durable once its directory is);
    used by the journal, the snapshots and the audit trail."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Journal:
    """One open segment, appended to by the sequencer.

    The file must end where its last good record ends (``Storage.recover`` cuts off a torn
    tail and the zeros a crash leaves), or be new: writing goes on at its size."""

    def __init__(
        self,
        path: Path,
        next_seq: int,
        mode: str = "fsync",
        preallocate: int = PREALLOCATE_BYTES,
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"durability mode {mode!r}: use one of {', '.join(MODES)}")
        self.path = path
        self.mode = mode
        self.next_seq = next_seq
        self._buffer = bytearray()
        self._fd = -1
        self._failed: OSError | None = None
        self._preallocate = preallocate
        self._end = 0  # where the next write goes: the end of the records
        self._allocated = 0  # the file's size, preallocated space included
        if mode != "off":
            self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
            self._end = self._allocated = os.fstat(self._fd).st_size
            if self._end == 0:
                try:
                    # The header goes to disk before the file is grown, and the new name
                    # with it (the directory), so that a segment never exists half-made.
                    os.pwrite(self._fd, MAGIC, 0)
                    self._end = self._allocated = len(MAGIC)
                    self._sync()
                    fsync_path(path.parent)
                except OSError:
                    os.close(self._fd)
                    raise

    @property
    def last_seq(self) -> int:
        return self.next_seq - 1

    @property
    def settled(self) -> bool:
        """Every appended command is synced, and no write failed."""
        return self._failed is None and not self._buffer

    def append(self, command: Command) -> None:
        record = JournalRecord(self.next_seq, command)
        self.next_seq += 1
        if self.mode != "off":
            self._buffer += encode_record(record)

    def sync(self) -> None:
        """Make everything appended so far durable (per the mode) before returning.

        A failed write raises ``OSError``, and so does every later call: the journal no
        longer knows what is on disk, so nothing more may be acknowledged."""
        if self._failed is not None:
            raise self._failed
        if not self._buffer:
            return
        data = bytes(self._buffer)
        self._buffer.clear()
        try:
            self._write(data)
            if self.mode == "fsync":
                self._sync()
        except OSError as exc:
            self._failed = exc
            raise

    async def commit(self) -> None:
        """``sync``, for callers that await (the same work: it does not yield)."""
        self.sync()

    def _write(self, data: bytes) -> None:
        if self._end + len(data) > self._allocated:
            self._grow(len(data))
        view = memoryview(data)
        while view:
            written = os.pwrite(self._fd, view, self._end)
            self._end += written
            view = view[written:]
        self._allocated = max(self._allocated, self._end)

    def _grow(self, needed: int) -> None:
        """Allocate the next chunk ahead of the writes (see the module docstring).

        Where the filesystem cannot (or the disk is too full for a whole chunk), writing
        simply goes on past the end of the file, as an append would."""
        if self._preallocate <= 0:
            return
        size = max(self._preallocate, needed)
        try:
            os.posix_fallocate(self._fd, self._allocated, size)
        except (OSError, AttributeError):
            self._preallocate = 0
            return
        self._allocated += size

    def _sync(self) -> None:
        os.fdatasync(self._fd) if hasattr(os, "fdatasync") else os.fsync(self._fd)

    def close(self) -> None:
        """Close the file, cutting off the preallocated space; what was appended but never
        synced is dropped, as a crash would."""
        if self._fd >= 0:
            if self._allocated > self._end:
                # If this fails, the zeros left behind still read as the end of the records.
                with contextlib.suppress(OSError):
                    os.ftruncate(self._fd, self._end)
            os.close(self._fd)
            self._fd = -1
