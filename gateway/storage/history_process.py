"""The history database's writer in a process of its own (issue 16).

Writing the history costs more CPU than anything else on an order's path: SQLite's
inserts and index updates, about 8 µs per command of the benchmark's flow even in chunks
(``apply_chunk``), against about 20 µs for the whole rest of the order path in the gateway.
In a thread of the server it took that CPU from the event loop's process and, worse, the
GIL: the thread holds it to build each row, so the loop waited for it (measured: 36 against
58 µs of server CPU per order with and without it, same run).  In a process of its own it
runs on the other core and never touches the server's GIL; the server's share is encoding
each durable batch's reports once (msgpack, in C) and a non-blocking pipe write.

The protocol, over the child's stdin and stdout:

* parent to child, per durable batch: a frame ``u32 length | msgpack [seq, commands]``
  (``commands``: each command's reports of the kinds the history keeps,
  ``gateway.storage.history.stored_reports``); ``[-1, []]`` means "mark the database
  stale";
* child to parent, after each transaction: ``u64`` the last seq written.

The child reads whatever frames have arrived (and, while they keep arriving, what arrives
until ``WRITE_EVERY_S`` after its last transaction), decodes in full only the reports the
history keeps (``LEAN_REPORT``: any other kind, which the server no longer sends, would be
read as an empty placeholder), writes them in one transaction (``apply_chunk``),
acknowledges, prunes by the retention once a minute, and exits when its stdin ends (the
server closed it, or died), after writing what it read.

The parent never blocks on the child: a batch the pipe cannot take at once waits in memory
(``PENDING_BYTES`` at most; the loop writes it when the pipe has room) and past that it is
dropped and the database marked stale, exactly as the thread writer's full queue did
(``gateway.storage.history``).  If the child dies, the batches after what it acknowledged
are missing; the database's last seq says so, and the next start catches it up from the
journal.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import gc
import logging
import os
import select
import signal
import sqlite3
import struct
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Union, get_args

import msgspec

from engine.reports import FillReport, OrderReport, Report, TradePrinted

log = logging.getLogger("alatau.history")

FRAME = struct.Struct("<I")
ACK = struct.Struct("<Q")
STALE_SEQ = -1
PENDING_BYTES = 64 << 20  # batches waiting for room in the pipe, at most
PIPE_BYTES = 1 << 20  # the pipe's buffer, asked of the kernel (F_SETPIPE_SZ)
READ_BYTES = 1 << 20
GATHER_S = 0.005  # batches are gathered this long (or to GATHER_BYTES) before a write
GATHER_BYTES = 256 << 10
CHUNK_BYTES = 4 << 20  # the child writes at most this much in one transaction
WRITE_EVERY_S = 0.05
"""The child writes one transaction at most this often while batches keep arriving (and at
once when one arrives after a pause): a transaction's cost is mostly the pages it rewrites
(the tables' and indexes' B-tree pages, copied whole into the WAL at each commit, then into
the database at each checkpoint), and the same pages serve many orders when a transaction
holds many: on the benchmark's flow, 1,800 against 400 bytes written to the WAL per
command at 100 and at 1,000 commands a transaction (100: what the server's 5 ms gather
gives at 20,000 orders/s), and 56 against 51 thousand instructions
(``benchmarks/history_bench.py``; at 15,000 orders/s end to end this process went from 20
to 13 µs of CPU per order, with the lean decode and the partial indexes).  A closed order
may then take up to this long to be found in the history, which the protocol allows
(``order.status``)."""
PRUNE_EVERY_S = 60.0
DAY_MS = 86_400_000
EXIT_TIMEOUT_S = 30.0
NICENESS = 10
"""Where the scheduler has no idle class (not Linux), the writer lowers its priority by
this much instead (``yield_to_the_order_path``)."""


def yield_to_the_order_path() -> None:
    """Run this process only in the cores' spare time.

    On a machine whose cores the server, its clients and this process share, the history
    must not delay an order.  Linux's ``SCHED_IDLE`` class runs a process only when no
    other wants the core.  Measured on issue 16's saturation run (``alatau bench gateway``,
    alternating pairs against niceness 10): ahead in 7 of 8 pairs, median 55,400 against
    51,100 orders/s, p99 6.3 against 7.2 ms.  A diagnostic build that fed no history at
    all was about 25 % ahead of niceness 10: what the writer still took from the order path
    then (a nice process keeps about a tenth of a contended core's time).  Niceness 10 was
    itself a step from 0 (at 15,000 orders/s: p50 1.2-1.5 ms against 5-9 ms,
    ``benchmarks/RESULTS.md``).  The writer still has every idle moment of the cores, and
    a venue's are many (the loop waits for its flushes); if a sustained peak leaves it too
    few, it falls behind and, past ``PENDING_BYTES`` waiting, the database is marked stale
    rather than the venue slowed (the module docstring), to be caught up from the journal
    at the next start."""
    try:
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    except (AttributeError, OSError):  # no idle class here: the next best thing
        with contextlib.suppress(OSError):
            os.nice(NICENESS)


_encoder = msgspec.msgpack.Encoder()

STORED_KINDS: tuple[type[Report], ...] = (OrderReport, FillReport, TradePrinted)
"""The report kinds the history database keeps (``gateway.storage.history.apply_chunk``);
the writer decodes only these in full."""


def _skipped(kind: type[Report]) -> type[msgspec.Struct]:
    """A report kind the history does not keep, decoded as an empty placeholder: the same
    tag, no fields (msgspec skips the rest of an array-like struct's array without building
    anything), so the tagged union still tells every kind apart."""
    tag = kind.__struct_config__.tag
    return msgspec.defstruct(
        f"Skipped{kind.__name__}", [], tag=tag, array_like=True, gc=False, module=__name__
    )


SKIPPED_KINDS = tuple(_skipped(kind) for kind in get_args(Report) if kind not in STORED_KINDS)
LEAN_REPORT: Any = Union[STORED_KINDS + SKIPPED_KINDS]  # noqa: UP007
"""What the writer decodes a report as: a kind it keeps in full, any other kind as its empty
placeholder.  Decoding every kind in full (balances, audit records, book levels: most of a
batch's bytes) cost about twice the CPU, for reports the history never writes."""

_decoder: msgspec.msgpack.Decoder[tuple[int, list[list[Any]]]] = msgspec.msgpack.Decoder(
    tuple[int, list[list[LEAN_REPORT]]]
)
_F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)


def encode_batch(seq: int, commands: list[list[Report]]) -> bytes:
    payload = _encoder.encode((seq, commands))
    return FRAME.pack(len(payload)) + payload


class WriterProcess:
    """The server's side: the child process, the pipe to it and what waits for room."""

    def __init__(self, path: Path, retention_days: int, pending_bytes: int = PENDING_BYTES) -> None:
        self.path = path
        self.retention_days = retention_days
        self.pending_limit = pending_bytes
        self.written_seq = 0  # the last seq the child acknowledged
        self.failed = False  # the child is gone (or never started): nothing is written
        # Called when ``written_seq`` advances or the child is found gone
        self.on_progress: Callable[[], None] | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._out = -1  # the pipe to the child (non-blocking)
        self._acks = -1  # the pipe from the child (non-blocking)
        self._pending: deque[memoryview] = deque()
        self._pending_bytes = 0
        self._ack_buffer = b""
        self._gathered: list[bytes] = []
        self._gathered_bytes = 0
        self._gather_timer: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._writer_registered = False

    def start(self) -> None:
        self._process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gateway.storage.history_process",
                str(self.path),
                str(self.retention_days),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            close_fds=True,
        )
        assert self._process.stdin is not None and self._process.stdout is not None
        self._out = self._process.stdin.fileno()
        self._acks = self._process.stdout.fileno()
        with contextlib.suppress(OSError):
            fcntl.fcntl(self._out, _F_SETPIPE_SZ, PIPE_BYTES)
        os.set_blocking(self._out, False)
        os.set_blocking(self._acks, False)
        try:
            self._loop = asyncio.get_running_loop()
        except RuntimeError:
            self._loop = None  # no loop: writes and acks are taken as they come (tests)
        if self._loop is not None:
            self._loop.add_reader(self._acks, self.read_acks)
        if self._pending:  # offered before the start
            self._writer_registered = False
            self._write_pending()
            if self._pending and self._loop is not None:
                self._loop.add_writer(self._out, self._write_pending)
                self._writer_registered = True

    # -- sending ---------------------------------------------------------------------------

    def offer(self, frame: bytes, *, force: bool = False) -> bool:
        """Send one frame, or keep it until the pipe has room; False (dropped) if more than
        ``PENDING_BYTES`` are waiting already (``force``: keep it anyway) or the child is
        gone.  Under an event loop frames are gathered for up to ``GATHER_S`` (or
        ``GATHER_BYTES``) and written together: one write and one wake-up of the child for
        many batches, not one per batch."""
        if self.failed:
            return False
        waiting = self._pending_bytes + self._gathered_bytes
        if waiting + len(frame) > self.pending_limit and not force:
            return False
        if self._out < 0:  # not started yet
            self._keep(memoryview(frame))
            return True
        loop = self._loop
        if loop is None:
            self._send(frame)
            return True
        self._gathered.append(frame)
        self._gathered_bytes += len(frame)
        if self._gathered_bytes >= GATHER_BYTES:
            self.send_gathered()
        elif self._gather_timer is None:
            self._gather_timer = loop.call_later(GATHER_S, self.send_gathered)
        return True

    def send_gathered(self) -> None:
        """Write the frames gathered so far (see ``offer``)."""
        if self._gather_timer is not None:
            self._gather_timer.cancel()
            self._gather_timer = None
        gathered = self._gathered
        if not gathered:
            return
        self._gathered = []
        self._gathered_bytes = 0
        if not self.failed:
            self._send(gathered[0] if len(gathered) == 1 else b"".join(gathered))

    def _send(self, frame: bytes) -> None:
        if self._pending:  # waiting for room: in order, after what waits
            self._keep(memoryview(frame))
            return
        try:
            written = os.write(self._out, frame)
        except BlockingIOError:
            written = 0
        except OSError as exc:  # the child is gone
            self._gone(exc)
            return
        if written < len(frame):
            self._keep(memoryview(frame)[written:])

    def _keep(self, rest: memoryview) -> None:
        self._pending.append(rest)
        self._pending_bytes += len(rest)
        if self._out >= 0 and self._loop is not None and not self._writer_registered:
            self._loop.add_writer(self._out, self._write_pending)
            self._writer_registered = True

    def _write_pending(self) -> None:
        """The pipe has room: write what waits, in order, until it has none."""
        pending = self._pending
        while pending:
            head = pending[0]
            try:
                written = os.write(self._out, head)
            except BlockingIOError:
                return
            except OSError as exc:
                self._gone(exc)
                return
            self._pending_bytes -= written
            if written < len(head):
                pending[0] = head[written:]
                return
            pending.popleft()
        if self._writer_registered and self._loop is not None:
            self._loop.remove_writer(self._out)
            self._writer_registered = False

    def _gone(self, error: BaseException) -> None:
        if not self.failed:
            log.error(
                "the history writer process is gone (%r): history stops at seq %d until the "
                "next start catches it up from the journal",
                error,
                self.written_seq,
            )
        self.failed = True
        self._pending.clear()
        self._pending_bytes = 0
        self._gathered = []
        self._gathered_bytes = 0
        if self.on_progress is not None:
            self.on_progress()

    # -- acknowledgements ------------------------------------------------------------------

    def read_acks(self) -> None:
        """Take the child's acknowledgements that have arrived (never blocks)."""
        while True:
            try:
                data = os.read(self._acks, 64 * ACK.size)
            except BlockingIOError:
                return
            except OSError as exc:
                self._gone(exc)
                return
            if not data:  # the child closed its end: it exited
                if self._loop is not None:
                    self._loop.remove_reader(self._acks)
                if self._process is not None:
                    # Still ours (``close`` lets go of it first): the child died.  It may
                    # not be reaped yet, so its status may be unknown; it is gone either way.
                    status = self._process.poll()
                    self._gone(
                        RuntimeError(
                            "its output ended" if status is None else f"exit status {status}"
                        )
                    )
                return
            data = self._ack_buffer + data
            whole = len(data) - len(data) % ACK.size
            if whole:
                self.written_seq = ACK.unpack_from(data, whole - ACK.size)[0]
                if self.on_progress is not None:
                    self.on_progress()
            self._ack_buffer = data[whole:]

    def flush(self, seq: int, timeout: float) -> bool:
        """Block until the child has written up to ``seq`` (tests, shutdown)."""
        self.send_gathered()
        deadline = time.monotonic() + timeout
        while self._pending and not self.failed:
            if time.monotonic() > deadline:
                return False
            select.select([], [self._out], [], 0.01)
            self._write_pending()
        while self.written_seq < seq and not self.failed:
            if time.monotonic() > deadline:
                return False
            select.select([self._acks], [], [], 0.01)
            self.read_acks()
        return not self.failed

    def close(self) -> None:
        """Send what waits, end the child's input and wait for it to write and exit."""
        process = self._process
        if process is None:
            return
        self.send_gathered()
        self._process = None
        if self._loop is not None and not self._loop.is_closed():
            if self._writer_registered:
                self._loop.remove_writer(self._out)
            self._loop.remove_reader(self._acks)
        self._writer_registered = False
        deadline = time.monotonic() + EXIT_TIMEOUT_S
        while self._pending and not self.failed and time.monotonic() < deadline:
            select.select([], [self._out], [], 0.05)
            self._write_pending()
        assert process.stdin is not None and process.stdout is not None
        with contextlib.suppress(OSError):
            process.stdin.close()
        os.set_blocking(self._acks, True)
        try:
            process.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            log.error("the history writer process did not exit in time: killed")
            process.kill()
            process.wait()
        rest = process.stdout.read() or b""
        data = self._ack_buffer + rest
        whole = len(data) - len(data) % ACK.size
        if whole:
            self.written_seq = ACK.unpack_from(data, whole - ACK.size)[0]
        process.stdout.close()
        if process.returncode != 0:
            self._gone(RuntimeError(f"exit status {process.returncode}"))


# -- the child ---------------------------------------------------------------------------------


def read_frames(buffer: bytearray) -> tuple[list[tuple[int, list[list[Any]]]], int]:
    """The whole frames at the start of ``buffer``, decoded, and how many bytes they take.
    Reports of a kind the history does not keep are placeholders (``LEAN_REPORT``)."""
    frames = []
    at = 0
    while len(buffer) - at >= FRAME.size:
        (length,) = FRAME.unpack_from(buffer, at)
        end = at + FRAME.size + length
        if end > len(buffer):
            break
        frames.append(_decoder.decode(memoryview(buffer)[at + FRAME.size : end]))
        at = end
    return frames, at


def write_frames(
    conn: sqlite3.Connection, frames: list[tuple[int, list[list[Any]]]], stale_written: bool
) -> tuple[int | None, bool]:
    """Write decoded frames in one transaction: the last seq written (None: only a stale
    mark) and whether the database is now marked stale.  The child's whole work per
    transaction but the read, so that ``benchmarks/history_bench.py`` times exactly it."""
    from gateway.storage import history

    batches = [frame for frame in frames if frame[0] != STALE_SEQ]
    mark_stale = len(batches) < len(frames) and not stale_written
    with history.transaction(conn):
        history.apply_chunk(conn, batches)
        if mark_stale:
            history.set_meta(conn, "stale", "1")
            stale_written = True
    return (batches[-1][0] if batches else None), stale_written


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """No cyclic garbage collection while a chunk is decoded and written: its reports and
    rows (tens of thousands of tuples and lists) all live until the transaction is done,
    then die by reference counting, and the collector, triggered by their allocation, only
    walked them over and over on the way.  Sampled with ``perf`` at saturation, the
    collector was 8 % of the writer's CPU with its young generation collected every 10,000
    allocations, and nothing with the pause; on ``benchmarks/history_bench.py`` (1,000
    commands a transaction) the decode took 1.6-2.6 µs a command at the default threshold
    (700), 1.1-1.5 at 10,000 and 0.9-1.4 paused.  The writer makes no reference cycles of
    its own; what start-up built is frozen out of the collector's way first
    (``run_child``)."""
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def run_child(path: str, retention_days: int) -> int:
    """Write what arrives on stdin until it ends (see the module docstring)."""
    from gateway.storage import history

    # Ctrl-C and a service manager's stop reach the whole process group: the server says
    # when this ends (it closes our stdin, or dies and the pipe closes), after what it sent.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    yield_to_the_order_path()  # the order path first: this runs in the cores' spare time
    conn = history.connect(path)
    stale_written = history.is_stale(conn)
    gc.freeze()  # what start-up built stays for good: no collection walks it again
    stdin, stdout = sys.stdin.fileno(), sys.stdout.fileno()
    buffer = bytearray()
    last_prune = last_write = float("-inf")
    ended = False
    while not ended:
        data = os.read(stdin, READ_BYTES)
        if not data:
            ended = True
        buffer += data
        # Take more as it arrives, up to a chunk, until WRITE_EVERY_S after the last
        # transaction (at once after a pause): one transaction for all of it.
        while not ended and len(buffer) < CHUNK_BYTES:
            wait = last_write + WRITE_EVERY_S - time.monotonic()
            if not select.select([stdin], [], [], max(wait, 0.0))[0]:
                break
            more = os.read(stdin, READ_BYTES)
            if not more:
                ended = True
            buffer += more
        wrote = False
        with collector_paused():
            frames, used = read_frames(buffer)
            del buffer[:used]
            if frames:
                written, stale_written = write_frames(conn, frames, stale_written)
                wrote = True
            del frames  # the chunk's objects go before the collector is back
        if not wrote:
            continue
        last_write = time.monotonic()
        if written is not None:
            try:
                os.write(stdout, ACK.pack(written))
            except BrokenPipeError:  # the server is gone: write what arrived, then end
                stdout = os.open(os.devnull, os.O_WRONLY)
        now = time.monotonic()
        if retention_days > 0 and now - last_prune >= PRUNE_EVERY_S:
            last_prune = now
            history.prune(conn, time.time_ns() // 1_000_000 - retention_days * DAY_MS)
    conn.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(run_child(sys.argv[1], int(sys.argv[2])))
