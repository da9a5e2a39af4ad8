"""The venue: the one task that calls the engine, and the fan-out of what it reports.

Sessions turn requests into commands and hand them to ``Venue.submit`` together with a
callback.  Commands are executed strictly in the order they were submitted, by a single
task (the sequencer), which stamps each batch with the time (never going backwards).  All the
commands that arrive within one turn of the event loop form one batch, handed to the
engine host (``gateway.sequencer.host``: the exchange and its journal in this process, or
an engine process) to execute and make durable (one write and one fsync for the whole
batch: see ``gateway.storage.journal``).  The batch's reports wait until the host says the
batch is durable; only then are they published to the streams and the callbacks run, so
nothing is confirmed to anyone before it is durable.  The host may make a batch durable at
once (the shipped journal in this process does) or hand back a future; in the second case
the sequencer goes on with the next batch meanwhile, and batches are still published in
the order they were executed.  If a batch cannot be made durable, or the host stops, every
request still waiting is answered ``STOPPED`` and the venue acknowledges nothing more.

Fan-out, per batch: first each market's trades and book changes go to the public channels
as one message each (``gateway.sequencer.marketdata``), then command by command the private reports
go to the owner's sessions that follow ``orders`` and the callback answers the request; so
on any connection the stream messages a command caused come before its response.  Each
message is encoded once for all its receivers.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from engine.commands import Command
from engine.errors import EngineError
from engine.licensing import Registry
from engine.markets import Market
from engine.reports import (
    BalanceReport,
    BookChanged,
    FillReport,
    OrderReport,
    Report,
    TradePrinted,
)
from gateway.sequencer.host import EngineHost, Item, Outcomes
from gateway.sequencer.marketdata import Channels
from gateway.sequencer.queries import QUERY_KINDS, Query
from gateway.sequencer.tape import Tapes
from gateway.wire import protocol
from gateway.wire.protocol import WireError
from gateway.wire.views import asset_scales, balance_view, fill_view, order_view, trade_view

log = logging.getLogger("alatau.venue")


def wall_clock_ms() -> int:
    """Milliseconds since the epoch: the time the venue stamps on commands."""
    return time.time_ns() // 1_000_000


class JournalFailed(EngineError):
    """A batch could not be made durable; nothing after it was acknowledged."""


Builder = Callable[[int], Command]  # ts (ms) -> the command
Done = Callable[[list[Report]], None]


class Stopped(list):  # type: ignore[type-arg]
    """The reports a callback gets when the venue stopped before its command was durable
    (empty: nothing happened that anyone may rely on).  Every request gets an answer: a
    session answers ``VENUE_STOPPED`` when ``reports is STOPPED``."""


STOPPED: list[Report] = Stopped()

_PRIVATE_REPORTS = (OrderReport, FillReport, BalanceReport)  # what goes to "orders"


# Batches executed but not yet durable: past this many the sequencer waits for the disk,
# so a stalled disk holds back new commands instead of growing memory without bound.
MAX_UNPUBLISHED_BATCHES = 64


class _Batch:
    """A batch handed to the host and not yet published: its outcomes (per item: reports,
    or a query's answer), or the host's future of them; the callbacks, to answer the
    requests; and which items are queries (their callbacks get the answer)."""

    __slots__ = ("dones", "durable", "outcomes", "queries")

    def __init__(
        self,
        durable: asyncio.Future[Outcomes] | None,
        outcomes: Outcomes | None,
        dones: list[Done | None],
        queries: list[int],
    ) -> None:
        self.durable = durable
        self.outcomes = outcomes
        self.dones = dones
        self.queries = queries

    def results(self, outcomes: Outcomes) -> list[tuple[list[Report], Done | None]]:
        """(reports, callback) per item, in order; a query has no reports and its callback
        gets the answer."""
        results = list(zip(outcomes, self.dones, strict=True))
        for i in self.queries:
            results[i] = ([], _answering(self.dones[i], outcomes[i]))
        return results


class Venue:
    """The sequencer and the fan-out, in front of an engine host (``gateway.sequencer.host``):
    ``Venue(LocalHost(exchange))`` in one process, ``Venue(ProcessHost...)`` with the
    engine in another (``gateway.hosts``)."""

    def __init__(self, host: EngineHost, *, clock_ms: Callable[[], int] | None = None) -> None:
        self.host = host
        self.clock_ms = clock_ms or wall_clock_ms
        markets = host.markets
        self.tapes = Tapes(markets)  # recent trades per market, for HTTP (sequencer.tape)
        self.channels = Channels(markets, self.tapes)
        for symbol, seq, bids, asks in host.books():
            mirror = self.channels.mirrors[symbol]
            mirror.bids.update(bids)
            mirror.asks.update(asks)
            mirror.seq = seq
        self.scales = asset_scales(markets)
        self.order_listeners: dict[str, set[Any]] = {}  # participant -> sessions on "orders"
        self.commands_executed = 0
        # Called with (the journal seq of a published batch's last command, each command's
        # reports) once the batch is published: the history database's feed
        # (gateway.storage.history.HistoryWriter.offer), which must not block.
        self.on_published: Callable[[int, list[list[Report]]], None] | None = None
        self.published_seq = host.last_seq
        self._pending: deque[tuple[Builder, Done | None]] = deque()
        self._unpublished: deque[_Batch] = deque()  # in execution order
        self.failure: str | None = None  # why the venue stopped acknowledging, once it has
        self._published = asyncio.Event()  # set (and replaced) whenever batches go out
        self._failed = False
        self._wakeup = asyncio.Event()
        self._last_ts = 0
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        host.watch(self._host_failed)
        watch_foreign = getattr(host, "watch_foreign", None)  # a host shared by gateways
        if watch_foreign is not None:
            watch_foreign(self.publish_foreign)

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="sequencer")

    async def stop(self) -> None:
        """Finish what was submitted, then stop, and close the host (an engine process
        writes its final snapshot and exits; a journal this venue's host opened closes)."""
        self._closed = True
        self._wakeup.set()
        clean = False
        try:
            if self._task is not None:
                await self._task
            clean = True
        finally:
            await self.host.close(clean=clean)

    def _host_failed(self, error: BaseException) -> None:
        """The host stopped on its own (the engine process died): stop taking requests at
        once (what was in flight fails with it and is not acknowledged)."""
        if not self._failed:
            self._fail(error)

    # -- the command stream --------------------------------------------------------------

    def submit(self, build: Builder, done: Done | None = None) -> None:
        """Queue a command; ``done(reports)`` runs once it is executed, durable and published.

        A host that says so (``send_early``) gets a backlog of that many commands at once,
        without waiting for the sequencer's turn, so an engine on another core starts on it
        while the gateway is still reading the rest of its sockets.  Not past
        ``MAX_UNPUBLISHED_BATCHES`` in flight: then the commands wait for the sequencer,
        which waits for the host, so a stalled engine holds new commands back instead of
        filling memory."""
        if self._closed:
            raise WireError("VENUE_STOPPED", f"{self.health()['reason']}: the request did not run")
        pending = self._pending
        if not pending:  # else the sequencer was woken for the first of them already
            self._wakeup.set()
        pending.append((build, done))
        early = self.host.send_early
        if (
            early is not None
            and len(pending) >= early
            and len(self._unpublished) < MAX_UNPUBLISHED_BATCHES
        ):
            batch = list(pending)
            pending.clear()
            self._execute_batch(batch)

    def query(self, query: Query, done: Callable[[Any], None]) -> None:
        """Queue a read-only query; ``done(answer)`` runs when it has been answered, in
        sequence with the commands around it (see ``gateway.sequencer.queries``)."""
        self.submit(lambda ts: query, done)  # type: ignore[arg-type,return-value]

    # -- what the sessions read (configuration-like state, changed only by admin commands) --

    @property
    def markets(self) -> dict[str, Market]:
        return self.host.markets

    @property
    def registry(self) -> Registry:
        return self.host.registry

    def reference_price(self, symbol: str) -> int | None:
        return self.host.reference_price(symbol)

    def now_ms(self) -> int:
        return self.clock_ms()

    def health(self) -> dict[str, Any]:
        """What a monitor asks (the ``health`` method): ``ok``, or ``stopped`` and why."""
        if self._failed:
            return {"status": "stopped", "reason": f"the venue stopped: {self.failure}"}
        if self._closed:
            return {"status": "stopped", "reason": "the venue is shutting down"}
        return {"status": "ok", "commands_executed": self.commands_executed}

    def _stamp(self) -> int:
        """The time for the next command: the clock, but never earlier than the last."""
        ts = self.clock_ms()
        if ts < self._last_ts:
            ts = self._last_ts
        self._last_ts = ts
        return ts

    async def _run(self) -> None:
        host = self.host
        try:
            while not self._failed:
                if not self._pending:
                    if self._closed:
                        break
                    self._wakeup.clear()
                    await self._wakeup.wait()
                    continue
                batch = list(self._pending)
                self._pending.clear()
                self._execute_batch(batch)
                if host.snapshot_due:
                    await host.commit()  # durable up to here, then the snapshot
                while len(self._unpublished) > MAX_UNPUBLISHED_BATCHES and not self._failed:
                    await self._published.wait()
            while self._unpublished and not self._failed:
                await self._published.wait()
            if self._failed:
                raise JournalFailed(
                    "a batch could not be made durable (the journal or the engine process "
                    "failed): the venue stopped acknowledging"
                )
        except JournalFailed:
            raise
        except Exception:  # a bug in the engine: stop serving rather than go on wrong
            log.exception("the sequencer failed; the venue stops accepting commands")
            self._closed = True
            raise

    def _execute_batch(self, batch: list[tuple[Builder, Done | None]]) -> None:
        """Stamp the batch's commands, hand them to the host, and publish them once durable."""
        items: list[Item] = []
        dones: list[Done | None] = []
        queries: list[int] = []
        ts = self._stamp()  # one reading of the clock for the batch: it runs at once
        for build, done in batch:
            item: Item = build(ts)
            if type(item) in QUERY_KINDS:
                queries.append(len(items))
            items.append(item)
            dones.append(done)
        self.commands_executed += len(batch)
        try:
            outcomes = self.host.execute(items)
        except OSError as exc:
            self._unpublished.append(_Batch(None, None, dones, queries))
            self._fail(exc)
            return
        if isinstance(outcomes, asyncio.Future):
            self._unpublished.append(_Batch(outcomes, None, dones, queries))
            outcomes.add_done_callback(self._on_durable)
        else:
            self._unpublished.append(_Batch(None, outcomes, dones, queries))
            self._publish_ready()

    def _on_durable(self, _future: asyncio.Future[Outcomes]) -> None:
        self._publish_ready()

    def _publish_ready(self) -> None:
        """Publish, in execution order, every batch at the head that is durable."""
        unpublished = self._unpublished
        while unpublished and not self._failed:
            batch = unpublished[0]
            durable = batch.durable
            if durable is None:
                outcomes = batch.outcomes
                assert outcomes is not None
            else:
                if not durable.done():
                    break
                error = durable.exception() if not durable.cancelled() else None
                if error is not None or durable.cancelled():
                    self._fail(error)
                    break
                outcomes = durable.result()
            unpublished.popleft()
            self.publish_batch(batch.results(outcomes))
            self._published_commands(outcomes, batch.queries)
        self._published.set()
        self._published = asyncio.Event()

    def _published_commands(self, outcomes: Outcomes, queries: list[int]) -> None:
        """Count a published batch's commands (each is one journal seq) and feed them on."""
        if queries:
            skip = set(queries)
            commands = [o for i, o in enumerate(outcomes) if i not in skip]
        else:
            commands = outcomes
        if not commands:
            return
        self.published_seq += len(commands)
        if self.on_published is None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no event loop (a test driving the venue by hand): now
            self._feed_published(self.published_seq, commands)
            return
        # After this turn's answers are written: the output flush was scheduled when the
        # first of them was queued, so it runs first, and the history's encoding is not on
        # the answers' path (measured: 19 of 26 alternating runs ahead, medians +2-10 %,
        # issue 16's sixth pass).  Callbacks run in order, so batches are fed in order, and
        # before anything that waits for the publication (the venue's stop) resumes.
        loop.call_soon(self._feed_published, self.published_seq, commands)

    def _feed_published(self, seq: int, commands: list[list[Report]]) -> None:
        """Hand a published batch to ``on_published`` (the history database's writer)."""
        if self.on_published is None:
            return
        try:
            self.on_published(seq, commands)
        except Exception:  # history is not the record of truth: never stop the venue
            log.exception("feeding the published batch on failed")

    def _fail(self, error: BaseException | None) -> None:
        """A batch could not be made durable: acknowledge nothing more, and answer every
        request still waiting ``VENUE_STOPPED`` (it may not have run; nothing of it was
        confirmed), so no client waits for an answer that will never come."""
        log.error(
            "a batch could not be made durable (%r): %d executed batch(es) will not be "
            "acknowledged; the venue stops accepting commands",
            error,
            len(self._unpublished),
        )
        self.failure = (
            f"its journal or engine failed, a batch could not be made durable ({error!r})"
        )
        self._failed = True
        self._closed = True
        self._wakeup.set()
        waiting: list[Done | None] = []
        for batch in self._unpublished:
            waiting.extend(batch.dones)
        self._unpublished.clear()
        waiting.extend(done for _build, done in self._pending)
        self._pending.clear()
        for done in waiting:
            if done is not None:
                try:
                    done(STOPPED)
                except Exception:  # one session's bug must not keep the others unanswered
                    log.exception("answering a request of a stopped venue failed")
        self._published.set()

    # -- fan-out -------------------------------------------------------------------------

    def publish_batch(self, results: list[tuple[list[Report], Done | None]]) -> None:
        """Publish one executed, durable batch and run its callbacks.

        The batch's public messages go first, so that on every connection the stream
        messages a command caused come before that command's response (``docs/protocol.md``);
        then, command by command, the private reports and the callback."""
        book_changes: dict[str, list[BookChanged]] = {}
        trades: dict[str, list[TradePrinted]] = {}
        for reports, _done in results:
            for report in reports:
                if type(report) is BookChanged:
                    book_changes.setdefault(report.market, []).append(report)
                elif type(report) is TradePrinted:
                    trades.setdefault(report.market, []).append(report)
        self._publish_public(book_changes, trades)
        listeners = self.order_listeners
        for reports, done in results:
            if listeners:
                self._publish_private(reports)
            if done is not None:
                done(reports)

    def publish_foreign(self, reports: list[list[Report]]) -> None:
        """Publish a batch another gateway executed (a host shared by several gateways,
        ``gateway.cluster.host``): per command its reports, no callbacks.  The host calls
        this in the engine's order, after completing the futures of this venue's earlier
        batches: those are published first, so the fan-out follows the engine's order."""
        self._publish_ready()
        if not self._failed:
            self.publish_batch([(command_reports, None) for command_reports in reports])

    def publish(self, reports: list[Report]) -> None:
        """Publish the reports of one command (a batch of one, without a callback)."""
        self.publish_batch([(reports, None)])

    def _publish_private(self, reports: list[Report]) -> None:
        """Send one command's order, fill and balance reports to their owners' sessions."""
        for report in reports:
            if isinstance(report, _PRIVATE_REPORTS):
                listeners = self.order_listeners.get(report.participant_id)
                if listeners:
                    message = protocol.encode(
                        {"channel": "orders", "data": self._private_view(report)}
                    )
                    for session in tuple(listeners):
                        session.send(message)

    def _publish_public(
        self, book_changes: dict[str, list[BookChanged]], trades: dict[str, list[TradePrinted]]
    ) -> None:
        """A batch's trades, then its book changes, then the tickers and candles of the
        markets that traded: one message per market and channel (and candle)."""
        markets = self.markets
        channels = self.channels
        tapes = self.tapes
        for symbol, printed in trades.items():
            market = markets[symbol]
            tapes.printed(market, printed)
            channel = f"trades:{symbol}"
            if channels.subscribers[channel]:
                channels.publish(
                    channel,
                    protocol.encode(
                        {
                            "channel": "trades",
                            "market": symbol,
                            "data": [trade_view(trade, market) for trade in printed],
                        }
                    ),
                )
        for symbol, changes in book_changes.items():
            channels.book_changed(symbol, changes)
        if trades:
            now_ms = self.clock_ms()
            for symbol, printed in trades.items():
                channels.trades_printed(symbol, printed, now_ms)

    def _private_view(self, report: OrderReport | FillReport | BalanceReport) -> dict[str, Any]:
        if isinstance(report, BalanceReport):
            return balance_view(report, self.scales[report.asset])
        market = self.markets[report.market]
        if isinstance(report, FillReport):
            return fill_view(report, market)
        return order_view(report, market)

    def listen_orders(self, participant_id: str, session: Any) -> None:
        self.order_listeners.setdefault(participant_id, set()).add(session)

    def unlisten_orders(self, participant_id: str, session: Any) -> None:
        listeners = self.order_listeners.get(participant_id)
        if listeners is not None:
            listeners.discard(session)
            if not listeners:
                del self.order_listeners[participant_id]


def _answering(done: Done | None, answer: Any) -> Done | None:
    """A query's callback in the shape of a command's: it gets the answer, not reports."""
    if done is None:
        return None
    return lambda _reports: done(answer)
