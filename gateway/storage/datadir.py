"""The data directory: journal segments, snapshots, and recovery at startup.

Layout::

    DATA_DIR/snapshot-00000000000000012345.bin   the state after command 12345
    DATA_DIR/journal-00000000000000012346.log    commands 12346, 12347, ... (a segment)

One data directory, one server: ``recover`` takes an exclusive lock on ``DATA_DIR/lock``
(``flock``, released by ``close`` or when the process dies) and waits up to
``lock_wait_s`` for it, since a server that was just stopped may still be writing its final
snapshot; a second server on the same directory is refused (``DataDirInUse``) instead of
interleaving its journal records with the first's.

Startup (``Storage.recover``) loads the newest snapshot whose checksum is good, then
replays every journal record after it, in seq order, through the exchange.  The result is
exactly the state that was acknowledged, market-data ``seq`` numbers included (they live in
the books' state), so clients see no jump.  A torn tail (a crash in mid-write, see
``gateway.storage.journal.scan``) is cut off, logged and kept beside the segment; any other damage
stops startup with ``JournalCorrupt`` naming the file and offset (``inspect`` lists the
checks across segments and against the snapshot; ``salvage`` is the operator's way on).

A snapshot is written every ``snapshot_every`` commands and at clean shutdown: to a
temporary file, fsynced, then renamed over, so a crash never leaves a half snapshot.  Each
snapshot starts a new journal segment, created (and the one before it closed and flushed)
before the snapshot is written, so a snapshot at seq S is always followed by
``journal-<S+1>.log`` and never covers a command the journal could lose; the segments
and snapshots older than the previous snapshot are deleted once the new snapshot is on
disk.

The periodic snapshots are written by a forked child process (where ``os.fork`` exists):
the child sees the exchange exactly as it was at the fork, copy-on-write, so the venue goes
on at once instead of stopping for the snapshot (about 120 ms at 100,000 open orders, 5 ms
at 4,000, in this project's measurements).  If the child fails, nothing is lost: the
previous snapshot and every segment since are kept, and the failure is logged.  The final
snapshot at shutdown is written in-process.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import itertools
import logging
import os
import shutil
import struct
import time
import zlib
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import msgspec

try:
    import fcntl
except ImportError:  # not POSIX: no lock
    fcntl = None  # type: ignore[assignment]  # a module or None; the lock checks which

from engine.commands import Command
from engine.errors import EngineError
from engine.exchange import Exchange
from engine.licensing import CheckChain
from engine.reports import Report
from engine.state import ExchangeState, capture, rebuild
from gateway.storage.audit import AuditLine, AuditTrail
from gateway.storage.journal import (
    SEGMENT_HEADER_SIZE,
    Journal,
    JournalCorrupt,
    JournalOldFormat,
    ScanResult,
    create_private,
    create_segment,
    fsync_path,
    scan,
    seq_in_name,
    valid_frames_after,
)

log = logging.getLogger("alatau.storage")

SNAPSHOT_MAGIC = b"ALTSNAP1"
_CRC = struct.Struct("<I")


class SnapshotFile(msgspec.Struct):
    seq: int
    state: ExchangeState


_encoder = msgspec.msgpack.Encoder()
_snapshot_decoder = msgspec.msgpack.Decoder(SnapshotFile)


class DataDirInUse(EngineError):
    """Another process holds the data directory's lock."""


def snapshot_name(seq: int) -> str:
    return f"snapshot-{seq:020d}.bin"


def segment_name(first_seq: int) -> str:
    return f"journal-{first_seq:020d}.log"


def list_snapshots(data_dir: Path) -> list[Path]:
    return sorted(data_dir.glob("snapshot-*.bin"), key=seq_in_name)


def list_segments(data_dir: Path) -> list[Path]:
    return sorted(data_dir.glob("journal-*.log"), key=seq_in_name)


def read_snapshot(path: Path) -> SnapshotFile:
    data = path.read_bytes()
    header = len(SNAPSHOT_MAGIC) + _CRC.size
    if len(data) < header or data[: len(SNAPSHOT_MAGIC)] != SNAPSHOT_MAGIC:
        raise EngineError(f"{path}: not a snapshot file")
    (crc,) = _CRC.unpack_from(data, len(SNAPSHOT_MAGIC))
    payload = data[header:]
    if zlib.crc32(payload) != crc:
        raise EngineError(f"{path}: snapshot checksum mismatch")
    return _snapshot_decoder.decode(payload)


def _write_snapshot(data_dir: Path, seq: int, exchange: Exchange) -> tuple[Path, int]:
    """Write the snapshot of ``exchange`` (the state after ``seq``) atomically: (path, size)."""
    payload = _encoder.encode(SnapshotFile(seq, capture(exchange)))
    path = data_dir / snapshot_name(seq)
    temporary = path.with_suffix(".tmp")
    create_private(temporary, SNAPSHOT_MAGIC + _CRC.pack(zlib.crc32(payload)) + payload)
    os.replace(temporary, path)
    fsync_path(data_dir)
    return path, len(payload)


def _open_file_limit() -> int:
    try:
        return os.sysconf("SC_OPEN_MAX")
    except (ValueError, OSError):
        return 1024


def _keep_torn_bytes(segment: Path, offset: int, length: int) -> Path:
    """Copy the bytes about to be cut off a segment to a file beside it: they were never
    acknowledged if the crash tore them, but if a disk fault did, an operator can look."""
    with open(segment, "rb") as source:
        source.seek(offset)
        data = source.read(length)
    kept = segment.with_name(f"{segment.name}.torn-{offset}")
    if kept.exists():  # torn at the same place before: keep both
        kept = segment.with_name(f"{segment.name}.torn-{offset}-{time.time_ns()}")
    create_private(kept, data)
    fsync_path(segment.parent)
    return kept


def _close_all_fds_but(keep: int) -> None:
    """In a forked child: close every inherited descriptor but ``keep`` (and 0-2)."""
    limit = _open_file_limit()
    if 3 <= keep < limit:
        os.closerange(3, keep)
        os.closerange(keep + 1, limit)
    else:
        os.closerange(3, limit)


class Storage:
    """The journal the sequencer writes to, plus snapshots: one per data directory."""

    def __init__(
        self,
        data_dir: str | Path,
        *,
        mode: str = "fsync",
        snapshot_every: int = 100_000,
        background_snapshots: bool | None = None,
        lock_wait_s: float = 10.0,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(self.data_dir, 0o700)  # private to the server's user, whatever the umask
        self.mode = mode
        self.snapshot_every = snapshot_every
        self.journal: Journal | None = None
        # Every check-chain decision, on disk for good (``gateway.storage.audit``); none in "off".
        self.trail = AuditTrail(self.data_dir) if mode != "off" else None
        self._trail_write_scheduled = False
        # (durable, the audit lines of its commands) of batches the flush thread has
        self._flushing: deque[tuple[asyncio.Future[None], list[AuditLine]]] = deque()
        self.exchange: Exchange | None = None
        self._since_snapshot = 0
        if background_snapshots is None:
            background_snapshots = hasattr(os, "fork")
        self.background_snapshots = background_snapshots
        # (pid, seq, the audit files it flushes) of the snapshot being written in a child
        self._snapshot_child: tuple[int, int, list[Path]] | None = None
        self._unflushed_trail: list[Path] = []  # audit files whose flush is not confirmed
        self.lock_wait_s = lock_wait_s
        self._lock_fd = -1

    # -- startup -------------------------------------------------------------------------

    def recover(
        self, chain: CheckChain, fresh: Callable[[], Exchange]
    ) -> tuple[Exchange, int, str]:
        """(exchange, last seq, a one-line account of what was recovered).  Raises
        ``JournalCorrupt`` (or ``JournalOldFormat``) rather than lose an acknowledged
        command: see ``inspect`` for the checks."""
        self._lock()
        found = inspect(self.data_dir)
        snapshot_seq = found.snapshot_seq
        snapshot = found.snapshot
        exchange = rebuild(snapshot.state, chain) if snapshot is not None else fresh()
        if found.torn is not None:
            path, result = found.torn
            kept = _keep_torn_bytes(path, result.good_length, result.torn_bytes)
            cut = ", ".join(
                f"seqs {f.first_seq}..{f.first_seq + f.count - 1}" for f in result.cut_frames
            )
            log.warning(
                "%s: cutting a torn tail (%s; %d bytes at offset %d, %s; kept in %s)",
                path,
                result.torn_reason,
                result.torn_bytes,
                result.good_length,
                cut or "no readable frame",
                kept.name,
            )
        if found.segments:
            path, result = found.segments[-1]
            if path.stat().st_size > result.good_length:
                # The journal goes on writing at the file's end: cut off the torn frame and
                # the preallocated zeros a crash leaves behind.
                with open(path, "r+b") as handle:
                    handle.truncate(result.good_length)
                    handle.flush()
                    os.fsync(handle.fileno())
        last_seq = snapshot_seq
        replayed = 0
        trail = self.trail
        if trail is not None:
            trail.recover(snapshot_seq)
        for path, result in found.segments:
            for record in result.records:
                if record.seq <= last_seq:
                    continue
                if record.seq != last_seq + 1:  # inspect checked it: a bug if it happens
                    raise JournalCorrupt(
                        path, 0, f"seq {record.seq} follows {last_seq}: records are missing", "gap"
                    )
                reports = exchange.execute(record.command)
                if trail is not None:
                    trail.add(record.seq, reports)  # written again: see gateway.storage.audit
                last_seq = record.seq
                replayed += 1
        exchange.check_integrity()
        self.exchange = exchange
        if found.segments:
            newest, newest_result = found.segments[-1]
            self._open_segment(last_seq, newest, newest_result.mode)
        else:
            self._open_segment(last_seq, None, "")
        if trail is not None:
            trail.open(snapshot_seq + 1)
            trail.commit()  # what the replay added is in the journal: durable
            trail.write()
        summary = (
            f"recovered seq {last_seq}: snapshot at {snapshot_seq}, {replayed} journal "
            f"records replayed, durability {self.mode}"
        )
        return exchange, last_seq, summary

    def _lock(self) -> None:
        """Take the data directory's lock (see the module docstring)."""
        if self._lock_fd >= 0 or fcntl is None:
            return
        fd = os.open(self.data_dir / "lock", os.O_RDWR | os.O_CREAT, 0o600)
        deadline = time.monotonic() + self.lock_wait_s
        waiting = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
                if time.monotonic() >= deadline:
                    os.close(fd)
                    raise DataDirInUse(
                        f"{self.data_dir} is in use by another server (pid {holder}, or a "
                        "snapshot writer it started): "
                        "stop it first, or give this one its own --data-dir"
                    ) from None
                if not waiting:
                    log.warning("waiting for %s, locked by pid %s", self.data_dir, holder)
                    waiting = True
                time.sleep(0.05)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._lock_fd = fd

    def _open_segment(self, last_seq: int, newest: Path | None, newest_mode: str) -> None:
        """Go on in the newest segment, or start one at ``last_seq + 1`` if there is none
        or it was written in another durability mode (a segment's header records its
        mode, and the scan rules depend on it)."""
        if newest is not None and (
            seq_in_name(newest) == last_seq + 1 or newest_mode == self.mode or self.mode == "off"
        ):
            path = newest
        else:
            path = self.data_dir / segment_name(last_seq + 1)
        if self.journal is not None:
            self.journal.close()
        self.journal = Journal(path, last_seq + 1, self.mode)

    # -- the Journal protocol of the sequencer -------------------------------------------

    def append(self, command: Command, reports: list[Report] | None = None) -> None:
        """Journal an executed command; its check-chain decisions, among ``reports``, go to
        the audit trail once the command is durable."""
        self.append_batch([command], None if reports is None else [reports])

    def append_batch(
        self, commands: list[Command], reports: list[list[Report]] | None = None
    ) -> None:
        """Journal a batch's executed commands in one step (they join the journal's next
        frame); the audit trail takes the decisions among each command's ``reports``."""
        assert self.journal is not None
        first_seq = self.journal.next_seq
        self.journal.extend(commands)
        trail = self.trail
        if trail is not None and reports is not None:
            for offset, command_reports in enumerate(reports):
                trail.add(first_seq + offset, command_reports)
        self._since_snapshot += len(commands)

    def sync(self) -> None:
        """Everything appended so far is durable on return (flushed on this thread)."""
        assert self.journal is not None
        self._check_trail()
        self.journal.sync()
        self._all_durable()

    def sync_later(self) -> asyncio.Future[None] | None:
        """See ``Journal.sync`` of ``gateway.hosts.local``: what was appended is written
        now and flushed by the journal's flush thread; the future is done when it is durable
        (None: durable on return).  The audit lines of these commands are written once it
        is, in seq order."""
        assert self.journal is not None
        self._check_trail()
        durable = self.journal.sync_later()
        trail = self.trail
        if trail is None:
            return durable
        if durable is None:
            self._all_durable()
            return None
        self._flushing.append((durable, trail.take_pending()))
        durable.add_done_callback(self._on_flushed)
        return durable

    def _all_durable(self) -> None:
        """The journal was just flushed whole: every audit line so far is of a durable
        command (those of batches the flush thread had, first, in order)."""
        if self.trail is not None:
            self._commit_flushed_lines(everything=True)
            self.trail.commit()
            self._schedule_trail_write()

    def _on_flushed(self, _future: asyncio.Future[None]) -> None:
        self._commit_flushed_lines()

    def _commit_flushed_lines(self, *, everything: bool = False) -> None:
        """Hand the audit lines of flushed batches to the trail, in order (``everything``:
        the journal was just flushed whole)."""
        flushing = self._flushing
        trail = self.trail
        committed = False
        while flushing:
            durable, lines = flushing[0]
            if not everything and not durable.done():
                break
            if durable.done() and (durable.cancelled() or durable.exception() is not None):
                flushing.clear()  # the journal failed: these were never acknowledged
                return
            flushing.popleft()
            if trail is not None:
                trail.commit_lines(lines)
                committed = True
        if committed and not everything:
            self._schedule_trail_write()

    def _check_trail(self) -> None:
        if self.trail is not None and self.trail.failed is not None:
            # The trail cannot be kept: make nothing more durable, acknowledge nothing more.
            raise self.trail.failed

    def _schedule_trail_write(self) -> None:
        """Under an event loop (the one-process server), write the trail once this turn's
        answers are out: a callback scheduled from a callback runs in the next turn, after
        the output flush the answers scheduled.  Without one, the caller calls
        ``write_trail`` (the engine process, after sending its answers)."""
        if self._trail_write_scheduled:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        self._trail_write_scheduled = True
        loop.call_soon(loop.call_soon, self.write_trail)

    def write_trail(self) -> None:
        """Write the audit lines of the commands made durable so far (see ``sync``).  A
        failure raises here when called directly (the engine process stops), and is logged
        and raised by the next ``sync`` under an event loop, which stops the venue."""
        scheduled = self._trail_write_scheduled
        self._trail_write_scheduled = False
        if self.trail is not None:
            try:
                self.trail.write()
            except OSError as exc:
                log.error("the audit trail could not be written (%r): stopping", exc)
                if not scheduled:
                    raise

    @property
    def snapshot_due(self) -> bool:
        if self._snapshot_child is not None:
            self._reap_snapshot_child(block=False)
        return self.mode != "off" and self._since_snapshot >= self.snapshot_every

    async def commit(self) -> None:
        """Make everything appended durable, then write a snapshot if one is due.

        The caller must not execute commands while this runs: the snapshot is of the
        exchange as it is after the last appended command."""
        self.sync()
        self.checkpoint()

    def checkpoint(self) -> None:
        """Write a snapshot if one is due (in the background where possible).  Only once
        everything appended is durable, and with no command executed meanwhile."""
        if self.snapshot_due:
            if self.background_snapshots:
                self.snapshot_in_background()
            else:
                self.snapshot()

    # -- snapshots -----------------------------------------------------------------------

    def snapshot(self) -> Path:
        """Write the state after the last committed command and start a new segment."""
        assert self.journal is not None and self.exchange is not None
        self._reap_snapshot_child(block=True)
        seq = self.journal.last_seq
        for trail_file in self._trail_files_to_flush():
            fsync_path(trail_file)  # the trail's lines before the snapshot that covers them
        self._unflushed_trail = []
        # The segment after the snapshot exists (and the one before is flushed) before the
        # snapshot does: recovery relies on it (see ``inspect``).
        self._open_segment_after_snapshot(seq, trail_flushed=True)
        path, size = _write_snapshot(self.data_dir, seq, self.exchange)
        self._since_snapshot = 0
        self._prune()
        log.info("snapshot at seq %d: %s (%d bytes)", seq, path.name, size)
        return path

    def snapshot_in_background(self) -> None:
        """Start a snapshot of the state after the last committed command in a forked
        child, and a new segment; the old ones are pruned when the child has succeeded.
        If the previous child is still writing, wait for the next commit instead."""
        assert self.journal is not None and self.exchange is not None
        if self._snapshot_child is not None:
            return
        seq = self.journal.last_seq
        trail_files = self._trail_files_to_flush()
        # Before the fork: the segment after the snapshot exists (and the one before is
        # flushed) before the snapshot can (see ``inspect``).
        self._open_segment_after_snapshot(seq, trail_flushed=True)
        pid = os.fork()
        if pid == 0:  # the child: write, and leave without running any of the parent's code
            status = 1
            try:
                gc.disable()  # a collection would copy every page it touches, for nothing
                # The clients' sockets stay the parent's; the lock stays held by this child
                # too, so a server restarted after the parent died waits for this snapshot.
                _close_all_fds_but(self._lock_fd)
                for trail_file in trail_files:
                    fsync_path(trail_file)  # before the snapshot lets the journal go
                _write_snapshot(self.data_dir, seq, self.exchange)
                status = 0
            finally:
                os._exit(status)
        self._snapshot_child = (pid, seq, trail_files)
        self._unflushed_trail = trail_files  # until the child says it flushed them
        self._since_snapshot = 0
        log.info("snapshot at seq %d: being written by process %d", seq, pid)

    def wait_for_snapshot(self) -> None:
        """Wait until a snapshot being written in the background is done (and pruned)."""
        self._reap_snapshot_child(block=True)

    def _reap_snapshot_child(self, *, block: bool) -> None:
        """Collect a finished snapshot child: prune after a success, log a failure."""
        if self._snapshot_child is None:
            return
        pid, seq, trail_files = self._snapshot_child
        done, status = os.waitpid(pid, 0 if block else os.WNOHANG)
        if done == 0:
            return
        self._snapshot_child = None
        code = os.waitstatus_to_exitcode(status)
        if code == 0:
            log.info("snapshot at seq %d: written", seq)
            self._unflushed_trail = [p for p in self._unflushed_trail if p not in trail_files]
            self._prune()
        else:
            log.error(
                "snapshot at seq %d failed (child exit %d): the previous snapshot and every "
                "journal segment since it are kept",
                seq,
                code,
            )
            with contextlib.suppress(OSError):
                (self.data_dir / snapshot_name(seq)).with_suffix(".tmp").unlink()

    def _trail_files_to_flush(self) -> list[Path]:
        """The audit files a snapshot must flush before it is written: the current one
        (its lines written out first), and any whose flush a failed snapshot child left
        undone."""
        if self.trail is None:
            return []
        current = self.trail.written_file()
        files = list(self._unflushed_trail)
        if current is not None and current not in files:
            files.append(current)
        return files

    def _open_segment_after_snapshot(self, seq: int, *, trail_flushed: bool = False) -> None:
        if self.trail is not None:
            # On disk before the journal that rebuilds it can go (by the snapshot child, if
            # ``trail_flushed``: see ``gateway.storage.audit``).
            self.trail.rotate(seq + 1, flush=not trail_flushed)
        if self.journal is not None:
            self.journal.close()
        self.journal = Journal(self.data_dir / segment_name(seq + 1), seq + 1, self.mode)

    def _prune(self) -> None:
        """Keep the newest two snapshots and the segments needed after the older of them."""
        snapshots = list_snapshots(self.data_dir)
        if len(snapshots) < 2:
            return
        keep_from = seq_in_name(snapshots[-2])
        for path in snapshots[:-2]:
            path.unlink()
        segments = list_segments(self.data_dir)
        for path, following in itertools.pairwise(segments):
            if seq_in_name(following) - 1 <= keep_from:
                path.unlink()

    def close(self, *, final_snapshot: bool = True) -> None:
        """Clean shutdown: a last snapshot (so the next start replays nothing), then close."""
        self._reap_snapshot_child(block=True)
        if final_snapshot and self.mode != "off" and self.journal is not None:
            if self.journal.settled and (self.trail is None or self.trail.failed is None):
                self.snapshot()
            else:
                # A failed write, or commands appended and never made durable: a snapshot
                # would make durable what was never acknowledged, or cover decisions the
                # trail does not have.  The next start replays the journal instead.
                log.error("no final snapshot: the journal or the audit trail did not settle")
        try:
            if self.journal is not None:
                self.journal.close()
                self.journal = None
            if self.trail is not None:
                self.trail.close()
        finally:
            if self._lock_fd >= 0:
                os.close(self._lock_fd)  # releases the lock
                self._lock_fd = -1


@dataclass
class Inspection:
    """What startup finds in a data directory (``inspect``)."""

    snapshot: SnapshotFile | None = None  # the newest good one: recovery starts there
    snapshot_path: Path | None = None
    snapshot_seq: int = 0
    bad_snapshots: list[str] = field(default_factory=list)
    segments: list[tuple[Path, ScanResult]] = field(default_factory=list)
    torn: tuple[Path, ScanResult] | None = None  # the newest segment's torn tail, if any

    @property
    def last_seq(self) -> int:
        return max(self.segments[-1][1].last_seq if self.segments else 0, self.snapshot_seq)


def inspect(data_dir: Path) -> Inspection:
    """Check a data directory as startup does, and say what it would recover; raise
    ``JournalCorrupt`` (``JournalOldFormat``) where it must stop.  The checks:

    * every segment by the rules of ``gateway.storage.journal`` (frames, seqs, torn tails);
    * a torn tail only in the newest segment: a segment is flushed when it is closed, so a
      crash can tear only the last;
    * seqs contiguous across segments: each starts where the one before ended;
    * against the snapshot recovery starts from (the newest good one) at seq S: the segment
      ``journal-<S+1>.log`` exists (it is created before the snapshot is written, and kept
      until two newer snapshots exist) and the journal does not end before S; with no
      snapshot, the first segment starts at seq 1.
    """
    found = Inspection()
    for path in reversed(list_snapshots(data_dir)):
        try:
            snapshot = read_snapshot(path)
        except (EngineError, msgspec.DecodeError) as exc:
            log.error("skipping a bad snapshot: %s", exc)
            found.bad_snapshots.append(f"{path.name}: {exc}")
            continue
        if found.snapshot is None:
            found.snapshot, found.snapshot_path, found.snapshot_seq = snapshot, path, snapshot.seq
            break
    segments = list_segments(data_dir)
    results = [(path, scan(path)) for path in segments]
    for index, (path, result) in enumerate(results):
        if result.torn_bytes and index < len(results) - 1:
            raise JournalCorrupt(
                path,
                result.good_length,
                f"{result.torn_reason}, in a segment before the newest (a crash can tear "
                "only the newest: the others were flushed when closed)",
            )
        if index:
            before = results[index - 1][1].last_seq
            if result.first_seq != before + 1:
                missing = (
                    f"seqs {before + 1}..{result.first_seq - 1} are missing"
                    if result.first_seq > before + 1
                    else "the two overlap"
                )
                raise JournalCorrupt(
                    path,
                    0,
                    f"the segment starts at seq {result.first_seq}, the one before it ends at "
                    f"seq {before}: {missing} (a deleted or lost segment?)",
                    "gap",
                )
    seq = found.snapshot_seq
    if found.snapshot is not None:
        assert found.snapshot_path is not None  # set with the snapshot
        expected = data_dir / segment_name(seq + 1)
        if expected not in segments:
            raise JournalCorrupt(
                expected,
                0,
                f"missing: the snapshot at seq {seq} ({found.snapshot_path.name}) is always "
                "followed by this segment, and the commands after it are in it "
                "(deleted or lost?)",
                "missing",
            )
        end = results[-1][1].last_seq
        if end < seq:
            raise JournalCorrupt(
                results[-1][0],
                results[-1][1].good_length,
                f"the journal ends at seq {end}, before the snapshot at seq {seq}",
                "gap",
            )
    elif results and results[0][1].first_seq != 1:
        first = results[0][1].first_seq
        raise JournalCorrupt(
            results[0][0],
            0,
            f"the first segment starts at seq {first} and there is no good snapshot: "
            f"seqs 1..{first - 1} are missing",
            "gap",
        )
    found.segments = results
    if results and results[-1][1].torn_bytes:
        found.torn = results[-1]
    return found


SALVAGE_HINT = "see docs/operations.md (alatau journal --salvage)"


def describe(data_dir: str | Path) -> tuple[str, bool]:
    """A report on a data directory for operators (``alatau journal``): each snapshot and
    segment, then exactly what startup would do; and whether startup would go on."""
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        return f"{data_dir}: no such directory", False
    lines = [f"data directory {data_dir}"]
    for path in list_snapshots(data_dir):
        try:
            snapshot = read_snapshot(path)
            lines.append(f"  snapshot {path.name}: seq {snapshot.seq}, {path.stat().st_size} bytes")
        except (EngineError, msgspec.DecodeError) as exc:
            lines.append(f"  snapshot {path.name}: BAD ({exc})")
    for path in list_segments(data_dir):
        try:
            result = scan(path)
        except JournalCorrupt as exc:
            lines.append(
                f"  segment {path.name}: CORRUPT at byte offset {exc.offset}: {exc.reason}"
            )
            continue
        records = result.records
        span = f"seq {records[0].seq}..{records[-1].seq}" if records else "empty"
        note = (
            f", torn tail of {result.torn_bytes} bytes at offset {result.good_length}"
            if result.torn_bytes
            else ""
        )
        lines.append(
            f"  segment {path.name}: {result.mode}, {len(records)} records, {span}, "
            f"checksums ok{note}"
        )
    try:
        found = inspect(data_dir)
    except JournalCorrupt as exc:
        lines.append(f"CORRUPT at {exc.path}: byte offset {exc.offset}: {exc.reason}")
        lines.append(f"NOT healthy: startup would stop; {SALVAGE_HINT}")
        return "\n".join(lines), False
    total = sum(len(result.records) for _path, result in found.segments)
    lines.append(
        f"total: {total} journal records, snapshot at seq {found.snapshot_seq}, "
        f"last seq {found.last_seq}"
    )
    if found.torn is not None:
        path, result = found.torn
        lines.append(
            f"torn tail at {path}: byte offset {result.good_length}: {result.torn_reason}; "
            f"startup cuts its {result.torn_bytes} bytes (kept as {path.name}.torn-"
            f"{result.good_length}) and goes on from seq {found.last_seq}"
        )
    else:
        lines.append("healthy")
    return "\n".join(lines), True


def _frames_of(data: bytes, start: int) -> list[tuple[int, int]]:
    """(first seq, last seq) of each readable frame header from ``start`` on."""
    return [(f.first_seq, f.first_seq + f.count - 1) for f in valid_frames_after(data, start)]


def _spans(frames: list[tuple[int, int]]) -> str:
    if not frames:
        return "no readable frame"
    merged: list[list[int]] = []
    for first, last in sorted(frames):
        if merged and first <= merged[-1][1] + 1:
            merged[-1][1] = max(merged[-1][1], last)
        else:
            merged.append([first, last])
    count = sum(last - first + 1 for first, last in frames)
    return f"{count} records in readable frames, seqs " + ", ".join(f"{a}..{b}" for a, b in merged)


def salvage(data_dir: str | Path, *, rounds: int = 20) -> tuple[str, bool]:
    """Move everything from the first damage on out of the journal, into
    ``DATA_DIR/salvaged-<time>/`` (every cut byte kept; nothing deleted), so that startup
    can go on; repeat while damage remains.  (a report, whether startup can now go on)."""
    data_dir = Path(data_dir)
    lines: list[str] = []
    folder: Path | None = None
    for _round in range(rounds):
        try:
            found = inspect(data_dir)
        except JournalOldFormat as exc:
            lines.append(str(exc))
            return "\n".join(lines), False
        except JournalCorrupt as exc:
            if folder is None:
                folder = data_dir / time.strftime("salvaged-%Y%m%d-%H%M%S")
                while folder.exists():
                    folder = folder.with_name(folder.name + "-1")
                folder.mkdir(mode=0o700)
                os.chmod(folder, 0o700)
                lines.append(f"setting aside into {folder}")
            lines.append(f"CORRUPT at {exc.path}: byte offset {exc.offset}: {exc.reason}")
            lines += _salvage_one(data_dir, folder, exc)
            fsync_path(folder)
            fsync_path(data_dir)
            continue
        if folder is None:
            lines.append("nothing to salvage: startup would go on (see `alatau journal`)")
        lines.append(
            f"now: snapshot at seq {found.snapshot_seq}, journal through seq {found.last_seq}; "
            "startup can go on" + (" (after cutting a torn tail)" if found.torn is not None else "")
        )
        return "\n".join(lines), True
    lines.append("still damaged after several rounds: look by hand")
    return "\n".join(lines), False


def _move_aside(path: Path, folder: Path) -> str:
    data = path.read_bytes()
    os.replace(path, folder / path.name)
    os.chmod(folder / path.name, 0o600)
    line = f"  moved {path.name} ({len(data)} bytes) aside"
    if path.name.startswith("journal-"):
        line += f": {_spans(_frames_of(data, SEGMENT_HEADER_SIZE))}"
    return line


def _salvage_one(data_dir: Path, folder: Path, damage: JournalCorrupt) -> list[str]:
    """Set aside what ``damage`` spoils (see ``salvage``); lines saying what was moved."""
    lines = []
    snapshot_seq = 0
    for path in reversed(list_snapshots(data_dir)):
        with contextlib.suppress(EngineError, msgspec.DecodeError):
            snapshot_seq = read_snapshot(path).seq
            break
    segments = list_segments(data_dir)
    # Audit lines of the commands set aside would be dropped at the next start: copy them.
    for path in data_dir.glob("audit-*.jsonl"):
        if not (folder / path.name).exists():
            shutil.copy2(path, folder / path.name)
            os.chmod(folder / path.name, 0o600)
    if damage.kind == "missing":
        seq = seq_in_name(damage.path)
        for path in segments:
            if seq_in_name(path) > seq:
                lines.append(_move_aside(path, folder))
        create_segment(damage.path, "fsync", seq)
        lines.append(f"  created an empty {damage.path.name}: the journal goes on from there")
        return lines
    index = segments.index(damage.path)
    first = seq_in_name(damage.path)
    if damage.kind == "gap":
        if first - 1 <= snapshot_seq:  # the missing seqs are in the snapshot: drop the older
            for path in segments[:index]:
                lines.append(_move_aside(path, folder) + " (covered by the snapshot)")
            return lines
        for path in segments[index:]:
            lines.append(_move_aside(path, folder))
        return lines
    covered = index + 1 < len(segments) and seq_in_name(segments[index + 1]) - 1 <= snapshot_seq
    if covered:  # everything in it and before it is in the snapshot: not needed
        for path in segments[: index + 1]:
            lines.append(_move_aside(path, folder) + " (covered by the snapshot)")
        return lines
    for path in segments[index + 1 :]:
        lines.append(_move_aside(path, folder))
    path = damage.path
    data = path.read_bytes()
    if damage.offset < SEGMENT_HEADER_SIZE or damage.kind == "header":
        lines.append(_move_aside(path, folder))
        if first == snapshot_seq + 1 or index == 0:
            create_segment(path, "fsync", first)
            lines.append(f"  created an empty {path.name}: the journal goes on from there")
    else:
        kept = folder / f"{path.name}.from-{damage.offset}"
        create_private(kept, data[damage.offset :])
        with open(path, "r+b") as handle:
            handle.truncate(damage.offset)
            os.fsync(handle.fileno())
        cut = _frames_of(data, damage.offset)
        known = scan(path).last_seq
        if cut and cut[0][0] > known + 1:
            unreadable = f"; seqs {known + 1}..{cut[0][0] - 1} are in damaged bytes"
        else:
            unreadable = "; the damaged frame's seqs are unknown" if not cut else ""
        lines.append(
            f"  cut {path.name} at byte offset {damage.offset} (kept through seq {known}); "
            f"its {len(data) - damage.offset} bytes from there kept as {kept.name}: "
            f"{_spans(cut)}{unreadable}"
        )
    for path in list_snapshots(data_dir):  # none may claim more than the journal now has
        if seq_in_name(path) > snapshot_seq:
            lines.append(_move_aside(path, folder))
    return lines


_V1_HEADER = struct.Struct("<II")
_v1_decoder = msgspec.msgpack.Decoder(list)  # (seq, command): the command decoded below
_command_decoder = msgspec.msgpack.Decoder(Command)


def _read_v1_segment(path: Path) -> list[tuple[int, Command]]:
    """The records of an ``ALTJRNL1`` segment (``u32 length | u32 crc32 | msgpack [seq,
    command]``), strictly: anything but whole records and trailing zeros is refused."""
    data = path.read_bytes()
    end = len(data.rstrip(b"\0"))
    offset = 8
    records: list[tuple[int, Command]] = []
    while offset < end:
        if offset + _V1_HEADER.size > len(data):
            raise JournalCorrupt(path, offset, "old-format record header cut short")
        length, crc = _V1_HEADER.unpack_from(data, offset)
        payload = data[offset + _V1_HEADER.size : offset + _V1_HEADER.size + length]
        if length == 0 or len(payload) != length or zlib.crc32(payload) != crc:
            raise JournalCorrupt(path, offset, "old-format record damaged or cut short")
        seq, raw = _v1_decoder.decode(payload)
        command = _command_decoder.decode(_encoder.encode(raw))
        if records and seq != records[-1][0] + 1:
            raise JournalCorrupt(path, offset, f"old-format seq {seq} after {records[-1][0]}")
        records.append((seq, command))
        offset += _V1_HEADER.size + length
    return records


def migrate(data_dir: str | Path) -> tuple[str, bool]:
    """Convert the ``ALTJRNL1`` segments of a data directory to the current format (one
    frame per 1,000 records), keeping the old files in ``DATA_DIR/old-format-<time>/``.
    Refuses (and changes nothing) if an old segment is damaged in any way."""
    from gateway.storage.journal import OLD_MAGICS, encode_frame

    data_dir = Path(data_dir)
    old = [p for p in list_segments(data_dir) if p.read_bytes()[:8] in OLD_MAGICS]
    if not old:
        return "nothing to migrate: no segment of an earlier format", True
    try:
        converted = [(path, _read_v1_segment(path)) for path in old]
    except (JournalCorrupt, msgspec.DecodeError, ValueError) as exc:
        return f"cannot migrate, nothing changed: {exc}", False
    folder = data_dir / time.strftime("old-format-%Y%m%d-%H%M%S")
    folder.mkdir(mode=0o700)
    lines = []
    for path, records in converted:
        first = seq_in_name(path)
        if records and records[0][0] != first:
            return f"cannot migrate: {path} starts at seq {records[0][0]}, not {first}", False
        shutil.copy2(path, folder / path.name)
        temporary = path.with_name(path.name + ".new")
        body = bytearray()
        for start in range(0, len(records), 1000):
            chunk = records[start : start + 1000]
            body += encode_frame([c for _seq, c in chunk], chunk[0][0])
        from gateway.storage.journal import encode_segment_header

        create_private(temporary, encode_segment_header("fsync", first) + bytes(body))
        os.replace(temporary, path)
        lines.append(f"  {path.name}: {len(records)} records converted")
    fsync_path(data_dir)
    lines.append(f"the old files are kept in {folder}")
    report, healthy = describe(data_dir)
    return "\n".join([*lines, report]), healthy
