"""An engine replica: the venue's exchange, applied from the replicated command log.

``python -m gateway.cluster.replica --servers nats://...,... --replica-id r1 --data-dir D``

Every replica does the same: it recovers from its own snapshot (``D/replica-snapshot.bin``:
the exchange's state as ``engine.state.capture`` gives it, with the command-stream position
it covers, written atomically), then applies every command batch from there on, in stream
order, to its ``Exchange``.  The same batches in the same order give the same reports and
state on every replica (the engine reads no clock: the gateway stamped the commands).

One of them leads, by a lease in JetStream's key-value store (bucket ``alatau_lease``, key
``leader``): it creates the key when absent, and renews it every ``lease/3`` seconds by a
compare-and-set on the revision it last wrote.  A standby that sees the same revision for a
whole lease takes the key over by a compare-and-set on that revision.  The leader counts its
lease from the moment it sent the renewal, so its own lease ends before any standby can take
it over; a leader whose renewal fails or whose lease has run out publishes nothing more.

The leader publishes each batch's ``ReportBatch`` to the report stream at the position of
its command (``CommandLog.publish_report``).  On taking over it starts from the report
stream's last position + 1: reports the old leader already published are not sent again,
and any it sends again anyway (a stale leader resuming after SIGSTOP, mid-publication) are
dropped as duplicates; they would be identical regardless.

A snapshot (every ``--snapshot-every`` batches, and on a clean stop) also keeps the reports
of the batches it covers that are not yet known to be in the report stream, so a replica
recovered from it can lead and publish them.

Events are printed as JSON lines on stdout (``started``, ``leading``, ``standby``,
``snapshot``, ``stopped`` with the state digest); SIGTERM stops the replica cleanly.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
import struct
import sys
import time
import zlib
from pathlib import Path
from typing import Any

import msgspec
import nats.js.errors

from engine.errors import EngineError
from engine.exchange import Exchange
from engine.licensing import load_chain
from engine.state import ExchangeState, capture, digest, rebuild
from gateway.cluster.log import (
    LEASE_KEY,
    REPORTS_STREAM,
    RETRIABLE,
    WRONG_LAST_SEQUENCE,
    AppendFailed,
    CommandLog,
    LogGap,
    encoder,
    execute_batch,
    report_batch_decoder,
)
from gateway.hosts.build import VenueFiles, build_exchange
from gateway.storage.journal import create_private, fsync_path

log = logging.getLogger("alatau.replica")

SNAPSHOT_FILE = "replica-snapshot.bin"
SNAPSHOT_MAGIC = b"ALTRSNP1"
_CRC = struct.Struct("<I")
PUBLISH_WINDOW = 256  # report publications in flight at once


class ReplicaSnapshot(msgspec.Struct):
    """The exchange after command-stream position ``seq``, and the encoded reports of the
    batches up to ``seq`` not yet known to be in the report stream (so that a replica
    recovered from it can lead and publish them)."""

    seq: int
    state: ExchangeState
    unpublished: dict[int, bytes]


_snapshot_decoder = msgspec.msgpack.Decoder(ReplicaSnapshot)


def write_snapshot(
    data_dir: Path, seq: int, exchange: Exchange, unpublished: dict[int, bytes]
) -> Path:
    """Atomically: a temporary file (magic, CRC-32, msgpack), fsync, rename, fsync of the
    folder."""
    payload = encoder.encode(ReplicaSnapshot(seq, capture(exchange), unpublished))
    path = data_dir / SNAPSHOT_FILE
    temporary = path.with_suffix(".tmp")
    create_private(temporary, SNAPSHOT_MAGIC + _CRC.pack(zlib.crc32(payload)) + payload)
    os.replace(temporary, path)
    fsync_path(data_dir)
    return path


def read_snapshot(path: Path) -> ReplicaSnapshot:
    data = path.read_bytes()
    header = len(SNAPSHOT_MAGIC) + _CRC.size
    if data[: len(SNAPSHOT_MAGIC)] != SNAPSHOT_MAGIC or len(data) < header:
        raise EngineError(f"{path}: not a replica snapshot")
    (crc,) = _CRC.unpack_from(data, len(SNAPSHOT_MAGIC))
    if zlib.crc32(data[header:]) != crc:
        raise EngineError(f"{path}: snapshot checksum mismatch")
    return _snapshot_decoder.decode(data[header:])


def recover(data_dir: Path, files: VenueFiles) -> tuple[Exchange, int, dict[int, bytes]]:
    """The exchange from the replica's snapshot, the position it covers and the reports it
    kept; or the venue's exchange at position 0."""
    path = data_dir / SNAPSHOT_FILE
    if path.exists():
        snapshot = read_snapshot(path)
        exchange = rebuild(snapshot.state, load_chain(files.venue_file))
        return exchange, snapshot.seq, snapshot.unpublished
    return build_exchange(files), 0, {}


class Replica:
    """One replica's loops: apply, lease, publish (see the module docstring)."""

    def __init__(
        self,
        log: CommandLog,
        replica_id: str,
        data_dir: Path,
        files: VenueFiles | None = None,
        *,
        lease: float = 2.0,
        snapshot_every: int = 1000,
        emit: Any = None,
    ) -> None:
        self.log = log
        self.replica_id = replica_id
        self.data_dir = data_dir
        self.lease_seconds = lease
        self.snapshot_every = snapshot_every
        self.emit_line = emit
        # kept: encoded reports not yet known to be in the report stream, by position
        self.exchange, self.applied, self.kept = recover(data_dir, files or VenueFiles())
        self.snapshot_seq = self.applied
        # The report stream's last position as last seen; it only ever rises, and every
        # report after it up to ``applied`` is in ``kept`` (pruning keeps that true).
        self.reports_last = 0
        self.leader = False
        self.valid_until = 0.0
        self.revision = 0
        self.published = 0
        self.work = asyncio.Event()

    def emit(self, event: str, **fields: Any) -> None:
        line = {"event": event, "replica": self.replica_id, "t": time.time(), **fields}
        if self.emit_line is not None:
            self.emit_line(line)
        else:
            print(json.dumps(line), flush=True)

    @property
    def may_publish(self) -> bool:
        return self.leader and time.monotonic() < self.valid_until

    async def run(self, stop: asyncio.Event) -> None:
        self.reports_last = await self.log.last_seq(REPORTS_STREAM)
        self.emit("started", applied=self.applied, reports=self.reports_last)
        tasks = [
            asyncio.create_task(self._apply()),
            asyncio.create_task(self._hold_lease()),
            asyncio.create_task(self._publish()),
        ]
        stopping = asyncio.create_task(stop.wait())
        done, _ = await asyncio.wait([*tasks, stopping], return_when=asyncio.FIRST_COMPLETED)
        for task in [*tasks, stopping]:
            task.cancel()
        await asyncio.gather(*tasks, stopping, return_exceptions=True)
        for task in done:
            error = None if task is stopping else task.exception()
            if error is not None:
                raise error
        await self._give_up_lease()
        with_snapshot = await self._maybe_snapshot(force=True)
        self.emit(
            "stopped",
            applied=self.applied,
            digest=digest(self.exchange),
            published=self.published,
            snapshot=with_snapshot,
        )

    # -- applying -------------------------------------------------------------------------

    async def _apply(self) -> None:
        count = 0
        async for seq, batch in self.log.commands(self.applied + 1):
            report = execute_batch(self.exchange, seq, batch)
            self.kept[seq] = encoder.encode(report)
            self.applied = seq
            self.work.set()
            count += 1
            if count % 64 == 0:
                await asyncio.sleep(0)  # let the lease and the publisher run during a replay
            if self.applied - self.snapshot_seq >= self.snapshot_every:
                await self._maybe_snapshot()

    async def _maybe_snapshot(self, *, force: bool = False) -> bool:
        """Snapshot the exchange at the applied position, with the reports kept."""
        if self.applied == self.snapshot_seq:
            return False
        with contextlib.suppress(*RETRIABLE, AppendFailed):
            stream_last = await self.log.last_seq(REPORTS_STREAM)
            # max() after the await: the publisher may have moved it on meanwhile
            self.reports_last = max(self.reports_last, stream_last)
            self._prune()
        write_snapshot(self.data_dir, self.applied, self.exchange, self.kept)
        self.snapshot_seq = self.applied
        self.emit("snapshot", seq=self.applied, kept=len(self.kept), forced=force)
        return True

    def _prune(self) -> None:
        for seq in [s for s in self.kept if s <= self.reports_last]:
            del self.kept[seq]

    # -- the lease ------------------------------------------------------------------------

    async def _hold_lease(self) -> None:
        kv = await self.log.lease()
        me = self.replica_id.encode()
        seen_revision: int | None = None
        seen_at = time.monotonic()
        while True:
            now = time.monotonic()
            try:
                if self.leader:
                    self.revision = await kv.update(LEASE_KEY, me, last=self.revision)
                    self.valid_until = now + self.lease_seconds
                else:
                    try:
                        entry = await kv.get(LEASE_KEY)
                    except nats.js.errors.KeyNotFoundError:
                        await self._take(await kv.create(LEASE_KEY, me), now)
                    else:
                        if entry.revision != seen_revision:
                            seen_revision, seen_at = entry.revision, now
                        elif now - seen_at >= self.lease_seconds:
                            revision = await kv.update(LEASE_KEY, me, last=seen_revision)
                            await self._take(revision, now)
            except (nats.js.errors.KeyWrongLastSequenceError, nats.js.errors.KeyNotFoundError):
                # Another replica wrote or deleted the lease between our read and our write.
                # nats-py's ``create`` also raises KeyNotFoundError when the key it was told
                # exists is gone when it looks again (a leader's clean stop deletes it, and a
                # direct read may be served by a node that has not caught up): the standby
                # must not die of that race, only try again next round.
                if self.leader:
                    self.leader = False
                    self.emit("standby", applied=self.applied, reason="lease lost")
                seen_revision, seen_at = None, time.monotonic()
            except RETRIABLE:
                pass  # NATS unavailable for now: a leader's lease simply runs out
            await asyncio.sleep(self.lease_seconds / 3)

    async def _take(self, revision: int, sent: float) -> None:
        self.revision = revision
        self.valid_until = sent + self.lease_seconds
        self.leader = True
        # Never backwards: a snapshot may have seen (and pruned up to) a later position
        # while this read was under way; the reports after reports_last must stay kept.
        stream_last = await self.log.last_seq(REPORTS_STREAM)
        self.reports_last = max(self.reports_last, stream_last)
        self._prune()
        self.emit("leading", applied=self.applied, reports=self.reports_last)
        self.work.set()

    async def _give_up_lease(self) -> None:
        """On a clean stop, let a standby lead at once rather than after a lease."""
        if not self.may_publish:
            return
        self.leader = False
        try:
            kv = await self.log.lease()
            await kv.delete(LEASE_KEY, last=self.revision)
        except (*RETRIABLE, nats.js.errors.KeyWrongLastSequenceError):
            pass
        except nats.js.errors.BadRequestError as error:  # how nats-py reports it here
            if error.err_code != WRONG_LAST_SEQUENCE:
                raise

    # -- publishing -----------------------------------------------------------------------

    async def _publish(self) -> None:
        while True:
            # asyncio.timeout, not wait_for: on Python 3.11 a cancellation that meets the
            # timeout can come out of wait_for as TimeoutError, which this loop would
            # swallow and go on, so a stopping replica never finished stopping.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(0.2):
                    await self.work.wait()
            self.work.clear()
            while self.may_publish and self.reports_last < self.applied:
                first = self.reports_last + 1
                last = min(self.applied, self.reports_last + PUBLISH_WINDOW)
                publications = [
                    self.log.publish_report(
                        report_batch_decoder.decode(self.kept[seq]), self.kept[seq]
                    )
                    for seq in range(first, last + 1)
                ]
                results = await asyncio.gather(*publications, return_exceptions=True)
                failed = False
                for result in results:
                    if isinstance(result, BaseException):
                        if not isinstance(result, (LogGap, AppendFailed, *RETRIABLE)):
                            raise result
                        failed = True
                        break
                    self.published += int(result)
                if failed:  # start again from where the report stream ends
                    try:
                        stream_last = await self.log.last_seq(REPORTS_STREAM)
                        self.reports_last = max(self.reports_last, stream_last)
                    except (*RETRIABLE, AppendFailed):
                        await asyncio.sleep(0.1)
                else:
                    self.reports_last = max(self.reports_last, last)
                self._prune()


async def _main(args: argparse.Namespace) -> int:
    data_dir = Path(args.data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    command_log = await CommandLog.connect(args.servers.split(","), name=args.replica_id)
    await command_log.ensure_streams()
    replica = Replica(
        command_log,
        args.replica_id,
        data_dir,
        VenueFiles(args.venue_file, args.markets_file),
        lease=args.lease,
        snapshot_every=args.snapshot_every,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        await replica.run(stop)
    finally:
        await command_log.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="an Alatau engine replica (docs/cluster.md)")
    parser.add_argument("--servers", required=True, help="NATS URLs, comma separated")
    parser.add_argument("--replica-id", required=True)
    parser.add_argument("--data-dir", required=True, help="where its snapshot is kept")
    parser.add_argument("--lease", type=float, default=2.0, help="seconds (default 2)")
    parser.add_argument("--snapshot-every", type=int, default=1000, help="command batches")
    parser.add_argument("--venue-file", default=None)
    parser.add_argument("--markets-file", default=None)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    return asyncio.run(_main(args))


if __name__ == "__main__":
    raise SystemExit(main())
