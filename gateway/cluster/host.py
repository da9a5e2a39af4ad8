"""``ClusterHost``: a gateway's engine host over the replicated command log
(``gateway.sequencer.host`` says what a host provides; ``docs/cluster.md`` the whole design).

``execute(items)`` puts the batch on the command stream and returns a future that is done
with the batch's outcomes once (a) JetStream acknowledged the append (stored on a quorum of
the stream's replicas) and (b) the batch's ``ReportBatch`` came on the report stream (a
replica applied it).  Nothing is acknowledged before both, so every acknowledged order is
in the log.

**Appends.**  One append is in flight at a time; the batches the venue hands over meanwhile
wait and go out together as the next ``CommandBatch`` (their items concatenated, in order;
the outcomes are split back per batch).  So this gateway's batches are in the stream in
exactly the order the venue executed them (a retried append can never overtake a later
one), and a busy gateway makes fewer, larger appends.  Batch numbers start at the wall
clock in microseconds when the host starts and count up by one, so a restarted gateway
with the same id never reuses a message id inside the stream's duplicate window.  If an
append is not acknowledged within the log's ``append_timeout`` (``AppendFailed``), the
futures of its batches fail and the venue stops (``VENUE_STOPPED``), as with a failed
journal.

**The starting state.**  The gateway replays the command stream itself, from position 1 to
the report stream's last position ``C`` at start, into a local ``Exchange`` (the same
``execute_batch`` as a replica, deterministic), and then follows both streams from ``C + 1``
in lockstep: command batch ``n`` is applied to the mirror when report ``n`` arrives.  That
mirror answers ``markets``, ``registry``, ``reference_price`` and ``books()`` exactly as of
the last report handed to the venue, including admin commands of any gateway.  Chosen over
a hello snapshot from the leading replica because it needs no new request/reply protocol
and no leader to be up at start, and its cost (the gateway applies every command a second
time) is acceptable for this slice; with trimmed streams it would start from a replica's
snapshot instead (not built).

**Other gateways' batches.**  Every report on the stream is handed, in stream order, either
to the future of this gateway's batch or, for any other batch (another gateway's, or this
gateway id's earlier incarnation's), to the venue's ``publish_foreign`` (registered with
``watch_foreign``): their market data and private ``orders`` messages reach this gateway's
subscribers too.  The reader never gets ahead of the venue: before it passes on a foreign
batch the venue publishes every own batch already done, so the venue's publication order is
the stream's.

``watch(failed)``: the reader stopping on its own (a gap in a stream, a lost connection
past its retries) stops the venue.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass, field
from typing import Any

from engine.commands import Command
from engine.exchange import Exchange
from engine.licensing import Registry
from engine.markets import Market
from engine.reports import Report
from engine.types import Side
from gateway.cluster.log import (
    REPORTS_STREAM,
    CommandBatch,
    CommandLog,
    ReportBatch,
    execute_batch,
)
from gateway.hosts.build import EngineSetup, VenueFiles, build_exchange
from gateway.hosts.process import Reports
from gateway.sequencer.host import BookState, Item, Outcomes

log = logging.getLogger("alatau.cluster")

FUNDING_GATEWAY = "demo-funding"  # the one batch that funds a new demo venue (deduped)

Foreign = Callable[[list[list[Report]]], None]


@dataclass
class _Sent:
    """One appended ``CommandBatch``: the venue batches it carries (future, item count),
    whether JetStream acknowledged it, and its report's outcomes once they came."""

    parts: list[tuple[asyncio.Future[Outcomes], int]]
    acked: asyncio.Future[None] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


class ClusterHost:
    """A gateway's engine host on the command log (see the module docstring)."""

    send_early = None
    snapshot_due = False

    def __init__(
        self,
        command_log: CommandLog,
        gateway_id: str,
        exchange: Exchange,
        position: int,
        *,
        own_log: bool = False,
    ) -> None:
        self.log = command_log
        self.gateway_id = gateway_id
        self.exchange = exchange  # the read-only mirror, at report position ``last_seq``
        self.last_seq = position
        self.position = position  # the last report applied to the mirror
        self.recovered = (
            f"cluster gateway {gateway_id}: replayed the command log to position {position}"
        )
        self.batch_no = time.time_ns() // 1000
        self._own_log = own_log
        self._waiting: list[tuple[list[Item], asyncio.Future[Outcomes]]] = []
        self._wakeup = asyncio.Event()
        self._sent: dict[int, _Sent] = {}
        self._foreign: Foreign | None = None
        self._failed: Callable[[BaseException], None] | None = None
        self._closing = False
        self._sender = asyncio.create_task(self._send(), name=f"{gateway_id}-appends")
        self._reader = asyncio.create_task(self._read(), name=f"{gateway_id}-reports")
        self._reader.add_done_callback(self._reader_done)

    @classmethod
    async def start(
        cls,
        servers: list[str],
        gateway_id: str,
        setup: EngineSetup | None = None,
        **log_options: Any,
    ) -> ClusterHost:
        """Connect, make sure the streams exist, replay the command stream up to the report
        stream's last position into the mirror, and start following."""
        command_log = await CommandLog.connect(servers, name=gateway_id, **log_options)
        try:
            await command_log.ensure_streams()
            exchange = build_exchange(setup or VenueFiles())
            position = await command_log.last_seq(REPORTS_STREAM)
            if position:
                source = command_log.commands(1)
                async for seq, batch in source:
                    execute_batch(exchange, seq, batch)
                    if seq % 256 == 0:
                        await asyncio.sleep(0)
                    if seq == position:
                        break
                await source.aclose()
        except BaseException:
            await command_log.close()
            raise
        return cls(command_log, gateway_id, exchange, position, own_log=True)

    # -- what the sessions read

    @property
    def markets(self) -> dict[str, Market]:
        return self.exchange.markets

    @property
    def registry(self) -> Registry:
        return self.exchange.registry

    def reference_price(self, symbol: str) -> int | None:
        return self.exchange.reference_price(symbol)

    def books(self) -> list[BookState]:
        return [
            (symbol, book.seq, book.depth(Side.BUY), book.depth(Side.SELL))
            for symbol, book in self.exchange.books.items()
        ]

    # -- the batches

    def execute(self, items: list[Item]) -> asyncio.Future[Outcomes]:
        future: asyncio.Future[Outcomes] = asyncio.get_running_loop().create_future()
        if self._closing:
            future.set_exception(OSError("the cluster host is closed"))
            return future
        self._waiting.append((items, future))
        self._wakeup.set()
        return future

    async def commit(self) -> None:
        """Nothing to do: the log is the journal, the replicas keep the snapshots."""

    def watch(self, failed: Callable[[BaseException], None]) -> None:
        self._failed = failed

    def watch_foreign(self, publish: Foreign) -> None:
        """``publish(per command reports)`` for every batch not this gateway's, in stream
        order (queries' items get no reports)."""
        self._foreign = publish

    def fund_once(self, commands: list[Command]) -> None:
        """Append ``commands`` as the batch ``FUNDING_GATEWAY:1``: every gateway of a new
        venue may do so, the stream keeps the first within its duplicate window."""

        async def append() -> None:
            try:
                await self.log.append(CommandBatch(FUNDING_GATEWAY, 1, list(commands)))
            except Exception as exc:
                log.error("the demo funding was not appended: %r", exc)

        self._funding = asyncio.create_task(append())

    async def _send(self) -> None:
        while True:
            if not self._waiting:
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            waiting, self._waiting = self._waiting, []
            items: list[Item] = []
            for part, _future in waiting:
                items.extend(part)
            self.batch_no += 1
            batch_no = self.batch_no
            sent = _Sent([(future, len(part)) for part, future in waiting])
            self._sent[batch_no] = sent
            try:
                await self.log.append(CommandBatch(self.gateway_id, batch_no, items))
            except Exception as exc:  # AppendFailed: the venue stops
                sent.acked.set_exception(exc)
                sent.acked.exception()  # retrieved: the batches' futures carry it
                for future, _count in sent.parts:
                    if not future.done():
                        future.set_exception(exc)
                for _part, future in self._waiting:
                    if not future.done():
                        future.set_exception(exc)
                self._waiting = []
                self._closing = True
                return
            sent.acked.set_result(None)

    async def _read(self) -> None:
        commands = self.log.commands(self.position + 1)
        reports = self.log.reports(self.position + 1)
        try:
            async for report in reports:
                seq, batch = await anext(commands)
                assert seq == report.stream_seq, (seq, report.stream_seq)
                execute_batch(self.exchange, seq, batch)  # the mirror, up to this report
                self.position = seq
                sent = (
                    self._sent.pop(report.batch_no, None)
                    if report.gateway_id == self.gateway_id
                    else None
                )
                if sent is None:
                    if self._foreign is not None:
                        self._foreign(foreign_reports(report))
                    continue
                try:
                    await sent.acked  # stored on a quorum: only then acknowledged
                except Exception:
                    continue  # its futures failed with the append
                results = report.results()
                start = 0
                for future, count in sent.parts:
                    if not future.done():
                        future.set_result(results[start : start + count])
                    start += count
        finally:
            await _close_quietly(commands)
            await _close_quietly(reports)

    def _reader_done(self, task: asyncio.Task[None]) -> None:
        if task.cancelled() or self._closing:
            return
        error = task.exception() or EOFError("the report stream ended")
        log.error("following the report stream failed: %r", error)
        if self._failed is not None:
            self._failed(error)

    async def close(self, *, clean: bool) -> None:
        """Stop following the log and close the connection (if this host opened it)."""
        self._closing = True
        for task in (self._sender, self._reader):
            task.cancel()
        for task in (self._sender, self._reader):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        funding = getattr(self, "_funding", None)
        if funding is not None:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(funding, 5)
        for sent in self._sent.values():
            for future, _count in sent.parts:
                if not future.done():
                    future.cancel()
        if self._own_log:
            await self.log.close()


def foreign_reports(report: ReportBatch) -> list[list[Report]]:
    """Per item of another gateway's batch: a command's reports; a query's nothing."""
    return [outcome.reports if type(outcome) is Reports else [] for outcome in report.outcomes]


async def _close_quietly(source: AsyncGenerator[Any, None]) -> None:
    with contextlib.suppress(Exception):
        await source.aclose()
