"""The command journal: an append-only file of every command, written before it is confirmed.

A journal file (a *segment*, ``journal-<first seq>.log``) is a segment header, then one
*frame* per write, all little-endian::

    segment header (24 bytes): "ALTJRNL2" | u16 version (2) | u8 mode (1 fsync, 2 buffered)
                               | u8 flags (1: preallocated) | u64 first seq
                               | u32 crc32 of the 20 bytes before
    frame header (32 bytes):   FRAME_MARKER (4) | u32 payload length | u32 record count
                               | u64 first seq | u32 crc32 of the payload
                               | u32 crc32 of the 24 bytes before | FRAME_TAG (4)
    payload:                   msgpack array of the batch's commands
    frame trailer (4 bytes):   FRAME_TRAILER

``seq`` is the command's position in the venue's one ordered stream; it rises by exactly
one per command, across frames and segments: a frame's first seq is the previous frame's
first seq plus its count, a segment's first frame starts at the segment's first seq (also
in its name), and a segment starts where the one before it ended.

Group commit: the sequencer ``append``s every command of a batch (one turn of the event
loop) and then calls ``sync()`` once, which encodes the batch as one frame, writes it with
one ``pwrite`` and, in ``fsync`` mode, one ``fdatasync``, so durability costs one disk
flush per batch, not per order; the busier the venue, the more orders share a flush.  One
header and two checksums per batch is also cheaper than a header per record.

Where the flush runs.  Under an event loop (the one-process server) the loop writes each
batch's frame and hands the flush to a thread of C code that never takes the GIL
(``gateway.storage._flush``): it runs ``fdatasync`` whenever something written is not yet
flushed and signals an eventfd the loop watches; the loop then completes the batches that
flush covered (``sync_later`` returns a future per batch).  So the loop never blocks on the
disk and goes on executing the next batches meanwhile (they are answered in order, each
once it is durable), and at saturation one flush covers several batches.  An earlier
version handed each flush to a Python worker thread; measured, that cost more than it
saved (each hand-off made the two threads trade the GIL: about 12 µs of CPU per order at
saturation and milliseconds of tail latency), and flushing on the loop thread was kept
until this one.  A small batch (under ``INLINE_FLUSH_BELOW`` commands) while no flush is
under way is flushed on the loop's thread all the same: the loop has little else to do
then, and the hand-off's wake-ups cost more than they save.  Elsewhere (the engine process,
recovery, snapshots, tests without a loop) ``sync`` flushes on the caller's thread.

Preallocation: the live segment is grown ahead of its writes in chunks of
``PREALLOCATE_BYTES`` (``posix_fallocate``), and frames are written in place with
``pwrite``.  Appending to a file makes every ``fdatasync`` also commit the file's new size
to the filesystem's journal; writing inside space already allocated does not, which made a
small write + ``fdatasync`` about 30 % cheaper in wall time and in CPU on this project's
test machine (55 against 78 µs, 23 against 33 µs of CPU).  A clean ``close`` cuts the
unused space off and flushes the file; after a crash the segment ends in zeros, which
``scan`` reads as the end of its frames.

A segment is created whole: its header is written to a temporary name, flushed, renamed to
the segment's name, and the directory flushed.  So a named segment without a valid header
(empty, cut short, zeros) is damage, never a crash.

Durability modes (``--durability``), recorded in each segment's header:

* ``fsync`` (default): the batch is on disk before any of it is acknowledged; a crash of
  the process or of the machine loses nothing that was acknowledged.
* ``buffered``: the batch is handed to the OS before it is acknowledged, not flushed; a
  crash of the process loses nothing, a power cut or kernel crash can lose the last
  seconds of acknowledged commands.  A segment is flushed when it is closed (at every
  snapshot), so only the newest segment can lose anything.
* ``off``: nothing is written (benchmarks only); a restart starts from the last snapshot.

Reading (``scan``), the rules.  The zeros after the last frame are preallocated space.  A
frame is *damaged* when its header does not check (marker, tag or header checksum: so a
flipped bit in a length is header damage, never taken for a short frame), when it is cut
short by the end of the file, when its payload does not check or decode, or when its seq
does not follow.  A damaged frame is a *torn tail* (the write a crash interrupted, never
acknowledged in ``fsync`` mode) only when both hold:

(a) the damage is what a crash can do: either the frame is cut short by the end of the
    file (its header valid, or the file ending inside the header; not in an ``fsync``
    segment whose header says it is preallocated: its size is always past its frames, so
    only a truncation cuts it short), or some 512-byte
    sector's intersection with the frame's extent (with the header alone, when the header
    does not check) reads as all zeros: a sector that never reached the disk.  Non-zero
    garbage (a flipped bit, a bad length, a wrong seq behind a good checksum) is never a
    crash.  No intersection of a sound frame with a sector is all zeros: each one holds a
    non-zero marker or trailer byte, or is a whole sector of header and payload.
(b) in ``fsync`` mode, it is the last frame: no valid frame header anywhere after it, and
    nothing but zeros after its extent (when its header tells the extent).  In
    ``buffered`` mode several writes may be unflushed at a power cut, and their pages can
    reach the disk in any order, so the first crash-explained damaged frame ends the
    journal even if valid frames follow: they are cut too.

A torn tail is legal only in the newest segment (``gateway.storage.datadir`` checks that, and the
seqs across segments and against the snapshot).  Everything else raises
``JournalCorrupt`` naming the file, the byte offset and what was expected; startup stops
rather than drop acknowledged commands, and ``alatau journal --salvage`` is the operator's
way on (``docs/operations.md``).  A segment of an earlier format raises
``JournalOldFormat``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import struct
import zlib
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import msgspec

from engine.commands import Command
from engine.errors import EngineError
from gateway.storage._flush import FlushThread

MAGIC = b"ALTJRNL2"
OLD_MAGICS = (b"ALTJRNL1",)
VERSION = 2
MODES = ("fsync", "buffered", "off")
MODE_CODES = {"fsync": 1, "buffered": 2}
MODE_NAMES = {code: name for name, code in MODE_CODES.items()}
PREALLOCATE_BYTES = 16 << 20
SECTOR = 512  # the smallest unit a crash can lose
INLINE_FLUSH_BELOW = 8
"""A batch of fewer commands, with no flush under way in the flush thread, is flushed on
the loop's thread (``sync_later``).  A small batch means the loop has little else to do,
and a flush there costs less than a hand-off: measured with ``benchmarks/order_path.py``,
8 orders a batch cost 43 µs of CPU per order flushed here against 63 through the thread
(the thread's wake-ups, the eventfd, the futures), while at 128 a batch the two were alike.
But while the loop waits for the disk it reads no frame and answers nothing: at saturation
(``alatau bench gateway``, 16 requests in flight per connection) a third of the flushes
were inline ones under the earlier bound of 32, and with 8 the same server acknowledged
10-20 % more orders/s with a lower p99 (five alternating runs of each, issue 16's fifth
pass in ``benchmarks/RESULTS.md``); at 15,000 and 30,000 orders/s the two bounds were
alike within the machine's scatter."""

SEGMENT_HEADER = struct.Struct("<8sHBBQ")  # magic, version, mode, flags, first seq
PREALLOCATED = 1  # flag: every write of the segment lands inside space already allocated
SEGMENT_HEADER_SIZE = SEGMENT_HEADER.size + 4  # + its crc32
FRAME_MARKER = b"\xa7J2\xf1"  # every byte non-zero: see the rules in the docstring
FRAME_TAG = b"\xe5\x9d\x1b\x8f"
FRAME_TRAILER = b"\xc3\x5a\xd2\x7e"
FRAME_FIELDS = struct.Struct("<4sIIQI")  # marker, payload length, count, first seq, payload crc
FRAME_HEADER = struct.Struct("<4sIIQII4s")  # the fields, their crc32, the tag
FRAME_HEADER_SIZE = FRAME_HEADER.size
FRAME_OVERHEAD = FRAME_HEADER_SIZE + len(FRAME_TRAILER)
_U32 = struct.Struct("<I")


class JournalRecord(msgspec.Struct, array_like=True):
    seq: int
    command: Command


class JournalCorrupt(EngineError):
    """The journal is damaged in a way a crash cannot explain: recovery must not go on."""

    def __init__(self, path: Path, offset: int, reason: str, kind: str = "frame") -> None:
        super().__init__(f"{path}: corrupt at byte offset {offset}: {reason}")
        self.path = path
        self.offset = offset
        self.reason = reason
        self.kind = kind  # "frame", "header", "gap" (seqs missing before path), "missing"


class JournalOldFormat(JournalCorrupt):
    """A segment written by an earlier version, in a format this one does not read."""

    def __init__(self, path: Path, magic: bytes) -> None:
        EngineError.__init__(
            self,
            f"{path.parent}: the data directory was written by an earlier version of alatau "
            f"(journal format {magic.decode(errors='replace')}); run `alatau journal "
            f"{path.parent} --migrate` to convert it, or start with a new --data-dir",
        )
        self.path = path
        self.offset = 0
        self.reason = "old format"
        self.kind = "old format"


@dataclass
class FrameInfo:
    offset: int
    first_seq: int
    count: int
    end: int  # where the frame's extent ends (may lie past the end of a cut file)


@dataclass
class ScanResult:
    records: list[JournalRecord]
    good_length: int  # bytes up to the end of the last good frame
    torn_bytes: int = 0  # bytes from there to the last non-zero one, if torn (0 if not)
    mode: str = "fsync"
    first_seq: int = 0
    torn_reason: str = ""
    cut_frames: list[FrameInfo] = field(default_factory=list)  # valid headers in the cut

    @property
    def last_seq(self) -> int:
        return self.records[-1].seq if self.records else self.first_seq - 1


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(list[Command])


def encode_segment_header(mode: str, first_seq: int, flags: int = 0) -> bytes:
    fields = SEGMENT_HEADER.pack(MAGIC, VERSION, MODE_CODES[mode], flags, first_seq)
    return fields + _U32.pack(zlib.crc32(fields))


def encode_frame(commands: list[Command], first_seq: int) -> bytes:
    """One frame holding ``commands`` (seqs from ``first_seq``).  Measured: one join is
    cheaper than building the frame in place in a bytearray (1.2 against 2.3 µs for one
    command)."""
    payload = _encoder.encode(commands)
    fields = FRAME_FIELDS.pack(
        FRAME_MARKER, len(payload), len(commands), first_seq, zlib.crc32(payload)
    )
    return b"".join((fields, _U32.pack(zlib.crc32(fields)), FRAME_TAG, payload, FRAME_TRAILER))


def _frame_header(data: bytes, offset: int) -> tuple[int, int, int, int] | None:
    """(payload length, count, first seq, payload crc) of a valid frame header, else None."""
    if len(data) - offset < FRAME_HEADER_SIZE:
        return None
    marker, length, count, first_seq, crc, header_crc, tag = FRAME_HEADER.unpack_from(data, offset)
    if (
        marker != FRAME_MARKER
        or tag != FRAME_TAG
        or zlib.crc32(data[offset : offset + FRAME_FIELDS.size]) != header_crc
    ):
        return None
    return length, count, first_seq, crc


def valid_frames_after(data: bytes, start: int, stop: int | None = None) -> Iterator[FrameInfo]:
    """Every valid frame header from ``start`` on (found by its marker, then checked)."""
    stop = len(data) if stop is None else stop
    position = data.find(FRAME_MARKER, start, stop)
    while position >= 0:
        header = _frame_header(data, position)
        if header is not None:
            length, count, first_seq, _crc = header
            end = position + FRAME_OVERHEAD + length
            yield FrameInfo(position, first_seq, count, end)
        position = data.find(FRAME_MARKER, position + 1, stop)


def _zero_sector_in(data: bytes, start: int, stop: int) -> bool:
    """Whether some 512-byte-aligned sector's intersection with [start, stop) is all zeros
    (the bytes past the end of the file count as missing, not as zeros)."""
    stop = min(stop, len(data))
    sector = start - start % SECTOR
    while sector < stop:
        a, b = max(sector, start), min(sector + SECTOR, stop)
        if data.count(0, a, b) == b - a:
            return True
        sector += SECTOR
    return False


def read_segment_header(path: Path, data: bytes) -> tuple[str, int]:
    """(mode, first seq) of a segment, or ``JournalCorrupt``/``JournalOldFormat``."""
    mode, first_seq, _flags = read_segment_header_flags(path, data)
    return mode, first_seq


def read_segment_header_flags(path: Path, data: bytes) -> tuple[str, int, int]:
    """(mode, first seq, flags) of a segment (see ``read_segment_header``)."""
    magic = data[: len(MAGIC)]
    if magic in OLD_MAGICS:
        raise JournalOldFormat(path, magic)
    expected = f"a {SEGMENT_HEADER_SIZE}-byte {MAGIC.decode()} segment header"
    if len(data) < SEGMENT_HEADER_SIZE:
        raise JournalCorrupt(
            path,
            0,
            f"the file has {len(data)} bytes, expected {expected} (a segment is created "
            "whole, so a crash cannot leave this)",
            "header",
        )
    if magic != MAGIC:
        what = "zeros" if not data[:SEGMENT_HEADER_SIZE].strip(b"\0") else "other bytes"
        raise JournalCorrupt(path, 0, f"expected {expected}, found {what}", "header")
    fields = data[: SEGMENT_HEADER.size]
    (crc,) = _U32.unpack_from(data, SEGMENT_HEADER.size)
    if zlib.crc32(fields) != crc:
        raise JournalCorrupt(path, 0, "segment header checksum mismatch", "header")
    _magic, version, mode_code, flags, first_seq = SEGMENT_HEADER.unpack(fields)
    if version != VERSION or mode_code not in MODE_NAMES:
        raise JournalCorrupt(
            path, 0, f"unknown segment version {version} or mode {mode_code}", "header"
        )
    with contextlib.suppress(ValueError, IndexError):
        named = seq_in_name(path)
        if named != first_seq:
            raise JournalCorrupt(
                path, 0, f"the header says first seq {first_seq}, the file name {named}", "header"
            )
    return MODE_NAMES[mode_code], first_seq, flags


def scan(path: Path, data: bytes | None = None) -> ScanResult:
    """Read and check a whole segment: its frames, and a torn tail if the rules of the
    module docstring allow one; any other damage raises ``JournalCorrupt``."""
    if data is None:
        data = path.read_bytes()
    mode, first_seq, flags = read_segment_header_flags(path, data)
    # A preallocated fsync segment is never cut short by a crash: see the rules above.
    eof_is_crash = mode != "fsync" or not flags & PREALLOCATED
    truncated = "" if eof_is_crash else " in a preallocated segment: truncated, not torn"
    size = len(data)
    # Past the last non-zero byte there is only preallocated space (every frame ends in a
    # non-zero trailer byte).
    content_end = len(data.rstrip(b"\0"))
    records: list[JournalRecord] = []
    seq = first_seq
    offset = SEGMENT_HEADER_SIZE
    while offset < content_end:
        problem = ""
        crash_shaped = False
        extent_end = -1  # unknown: the header does not check
        header = _frame_header(data, offset)
        if header is None:
            if size - offset < FRAME_HEADER_SIZE:
                problem = f"frame header cut short by the end of the file{truncated}"
                crash_shaped = eof_is_crash
            else:
                zeros = not data[offset : offset + FRAME_HEADER_SIZE].strip(b"\0")
                problem = "no frame header (zeros)" if zeros else "frame header checksum mismatch"
                crash_shaped = _zero_sector_in(data, offset, offset + FRAME_HEADER_SIZE)
        else:
            length, count, frame_seq, crc = header
            extent_end = offset + FRAME_OVERHEAD + length
            payload = data[offset + FRAME_HEADER_SIZE : extent_end - len(FRAME_TRAILER)]
            if count == 0 or length == 0:
                problem = f"an empty frame (count {count}, length {length})"
            elif frame_seq != seq:
                problem = f"the frame starts at seq {frame_seq}, expected seq {seq}"
            elif extent_end > size:
                problem = (
                    f"frame cut short by the end of the file (its header promises "
                    f"{extent_end - offset} bytes, {size - offset} there){truncated}"
                )
                crash_shaped = eof_is_crash
            elif (
                data[extent_end - len(FRAME_TRAILER) : extent_end] != FRAME_TRAILER
                or zlib.crc32(payload) != crc
            ):
                problem = "payload checksum mismatch"
                crash_shaped = _zero_sector_in(data, offset, extent_end)
            else:
                try:
                    commands = _decoder.decode(payload)
                except msgspec.DecodeError as exc:
                    problem = f"undecodable payload behind a good checksum: {exc}"
                else:
                    if len(commands) != count:
                        problem = f"{len(commands)} records, the header says {count}"
                    else:
                        records += [JournalRecord(seq + i, c) for i, c in enumerate(commands)]
                        seq += count
                        offset = extent_end
                        continue
        # A damaged frame: a torn tail, or corruption?
        if not crash_shaped:
            raise JournalCorrupt(path, offset, problem)
        cut = list(valid_frames_after(data, offset + 1, content_end))
        if mode == "fsync":
            later = cut  # any valid frame header after the damage
            if later:
                raise JournalCorrupt(
                    path,
                    offset,
                    f"{problem}, and a valid frame follows at byte offset {later[0].offset}: "
                    "not the last write, so not a torn tail",
                )
            if 0 <= extent_end < content_end:
                raise JournalCorrupt(
                    path,
                    offset,
                    f"{problem}, and non-zero bytes follow the frame (from byte offset "
                    f"{extent_end}): not the last write, so not a torn tail",
                )
        if header is not None:
            cut.insert(0, FrameInfo(offset, header[2], header[1], extent_end))
        return ScanResult(records, offset, content_end - offset, mode, first_seq, problem, cut)
    return ScanResult(records, offset, 0, mode, first_seq)


def seq_in_name(path: Path) -> int:
    """The seq a data-directory file is named by (``journal-``, ``snapshot-``, ``audit-``)."""
    return int(path.name.split(".", 1)[0].split("-", 1)[1])


def fsync_path(path: Path) -> None:
    """fsync a file or a directory (a new or renamed name is durable once its directory is);
    used by the journal, the snapshots and the audit trail."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def create_private(path: Path, data: bytes) -> None:
    """Write a new file readable by this user only (0600 whatever the umask), flushed."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)


def create_segment(path: Path, mode: str, first_seq: int, preallocate: int = 0) -> bool:
    """Create a segment whole (see the module docstring): header under a temporary name,
    flushed, renamed, directory flushed.  Replaces a segment of that name.  With
    ``preallocate``, its first chunk is allocated too, and the header says so (returned)."""
    temporary = path.with_name(path.name + ".tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        preallocated = False
        if preallocate > 0:
            try:
                os.posix_fallocate(fd, 0, preallocate)
                preallocated = True
            except (OSError, AttributeError):
                pass
        header = encode_segment_header(mode, first_seq, PREALLOCATED if preallocated else 0)
        os.pwrite(fd, header, 0)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(temporary, path)
    fsync_path(path.parent)
    return preallocated


class Journal:
    """One open segment, appended to by the sequencer.

    An existing segment must end where its last good frame ends (``Storage.recover`` cuts
    off a torn tail and the zeros a crash leaves) and be of the same mode; a missing one is
    created (``create_segment``), as is one of another mode holding no frame."""

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
        self._pending: list[Command] = []  # appended, not yet written
        self._fd = -1
        self._failed: OSError | None = None
        self._preallocate = preallocate
        self._end = 0  # where the next write goes: the end of the frames
        self._allocated = 0  # the file's size, preallocated space included
        self._flags = 0  # of the segment header
        # ``sync_later``: the flush thread, and each written batch's (end, future) in order
        self._flusher: FlushThread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._unflushed: deque[tuple[int, asyncio.Future[None]]] = deque()
        if mode != "off":
            created = False
            if path.exists():
                with open(path, "rb") as handle:
                    head = handle.read(SEGMENT_HEADER_SIZE)
                    size = os.fstat(handle.fileno()).st_size
                written_mode, first_seq, self._flags = read_segment_header_flags(path, head)
                if written_mode != mode:
                    if size > SEGMENT_HEADER_SIZE or first_seq != next_seq:
                        raise ValueError(f"{path} was written in {written_mode} mode")
                    created = True  # no frame in it: start it anew
            else:
                created = True
            if created:
                preallocated = create_segment(path, mode, next_seq, preallocate)
                self._flags = PREALLOCATED if preallocated else 0
            self._fd = os.open(path, os.O_RDWR)
            os.fchmod(self._fd, 0o600)
            self._allocated = os.fstat(self._fd).st_size
            self._end = SEGMENT_HEADER_SIZE if created else self._allocated
            if preallocate <= 0 and self._flags & PREALLOCATED:
                self._drop_preallocated_flag()

    @property
    def last_seq(self) -> int:
        return self.next_seq - 1

    @property
    def settled(self) -> bool:
        """Every appended command is synced, and no write failed."""
        return self._failed is None and not self._pending

    def append(self, command: Command) -> None:
        self.extend([command])

    def extend(self, commands: list[Command]) -> None:
        """``append`` each of ``commands``, in order, at once."""
        self.next_seq += len(commands)
        if self.mode != "off":
            self._pending.extend(commands)

    def sync(self) -> None:
        """Make everything appended so far durable (per the mode) before returning: one
        frame, one write.

        A failed write raises ``OSError``, and so does every later call: the journal no
        longer knows what is on disk, so nothing more may be acknowledged."""
        if self._failed is not None:
            raise self._failed
        pending = self._pending
        if pending:
            self._pending = []
            frame = encode_frame(pending, self.next_seq - len(pending))
            try:
                self._write(frame)
            except OSError as exc:
                self._fail(exc)
                raise
        elif not self._unflushed:
            return
        if self.mode == "fsync":
            try:
                self._sync()
            except OSError as exc:
                self._fail(exc)
                raise
        self._flushed(self._end)  # what the flush thread had not confirmed yet is durable too

    def sync_later(self) -> asyncio.Future[None] | None:
        """Write what was appended (one frame), and in ``fsync`` mode hand its flush to the
        flush thread (see the module docstring): a future done when it is durable, or failed
        with the ``OSError`` of the flush.  None: durable per the mode on return (nothing
        pending, or not ``fsync`` mode, or no event loop is running here, or a small batch
        while no flush is under way: see ``INLINE_FLUSH_BELOW``)."""
        if self._failed is not None:
            raise self._failed
        small = len(self._pending) < INLINE_FLUSH_BELOW and not self._unflushed
        if self.mode != "fsync" or not self._pending or small:
            self.sync()
            return None
        flusher = self._flusher
        if flusher is None:
            try:
                flusher = self._start_flusher()
            except RuntimeError:  # no running loop: flush here
                self.sync()
                return None
        pending = self._pending
        self._pending = []
        frame = encode_frame(pending, self.next_seq - len(pending))
        try:
            self._write(frame)
        except OSError as exc:
            self._fail(exc)
            raise
        assert self._loop is not None
        future: asyncio.Future[None] = self._loop.create_future()
        self._unflushed.append((self._end, future))
        flusher.request(self._end)
        return future

    def _start_flusher(self) -> FlushThread:
        loop = asyncio.get_running_loop()  # RuntimeError if none
        flusher = FlushThread(self._fd, self._end)
        loop.add_reader(flusher.notify_fd, self._on_flush)
        self._flusher = flusher
        self._loop = loop
        return flusher

    def _on_flush(self) -> None:
        """The flush thread flushed (or failed): complete the batches it covered."""
        flusher = self._flusher
        if flusher is None:
            return
        with contextlib.suppress(BlockingIOError):
            os.read(flusher.notify_fd, 8)
        synced, error = flusher.progress()
        if error:
            self._fail(OSError(error, f"fdatasync of {self.path}: {os.strerror(error)}"))
        else:
            self._flushed(synced)

    def _flushed(self, end: int) -> None:
        """Everything written before byte ``end`` is durable: complete those batches."""
        unflushed = self._unflushed
        while unflushed and unflushed[0][0] <= end:
            future = unflushed.popleft()[1]
            if not future.done():
                future.set_result(None)

    def _fail(self, error: OSError) -> None:
        """A write or flush failed: nothing more is durable, and every batch waiting for a
        flush fails with it."""
        if self._failed is None:
            self._failed = error
        while self._unflushed:
            future = self._unflushed.popleft()[1]
            if not future.done():
                future.set_exception(error)
        self._stop_flusher()

    def _stop_flusher(self) -> None:
        flusher, self._flusher = self._flusher, None
        if flusher is None:
            return
        if self._loop is not None and not self._loop.is_closed():
            self._loop.remove_reader(flusher.notify_fd)
        flusher.close()

    async def commit(self) -> None:
        """``sync``, for callers that await (the same work: it does not yield)."""
        self.sync()

    def _write(self, data: bytes | bytearray) -> None:
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
            self._drop_preallocated_flag()
            return
        self._allocated += size
        if self.mode == "fsync" and self._flags & PREALLOCATED:
            # The new size on disk before a write that crosses into it: else a crash in that
            # write could leave the file cut short, which the header says cannot happen.
            self._sync()

    def _drop_preallocated_flag(self) -> None:
        """From now on a crash may cut the segment short: say so in its header (rewritten
        in place, flushed, before any write that could be cut)."""
        if self._flags & PREALLOCATED:
            self._flags &= ~PREALLOCATED
            with open(self.path, "rb") as handle:
                mode, first_seq = read_segment_header(self.path, handle.read(SEGMENT_HEADER_SIZE))
            os.pwrite(self._fd, encode_segment_header(mode, first_seq, self._flags), 0)
            self._sync()

    def _sync(self) -> None:
        os.fdatasync(self._fd) if hasattr(os, "fdatasync") else os.fsync(self._fd)

    def close(self) -> None:
        """Close the file, cutting off the preallocated space, and flush it (in buffered
        mode too: only the newest segment may lose a tail); what was appended but never
        synced is dropped, as a crash would."""
        if self._fd >= 0:
            self._stop_flusher()  # it finishes the flush it was asked for first
            # If these fail, the zeros left behind still read as the end of the frames.
            with contextlib.suppress(OSError):
                if self._allocated > self._end:
                    os.ftruncate(self._fd, self._end)
                if self._failed is None:
                    os.fsync(self._fd)
                    self._flushed(self._end)
            if self._unflushed:  # the final flush failed: so did theirs
                self._fail(OSError(f"{self.path}: the flush at close failed"))
            os.close(self._fd)
            self._fd = -1
