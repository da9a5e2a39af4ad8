"""The venue: the one task that calls the engine, and the fan-out of what it reports.

Sessions turn requests into commands and hand them to ``Venue.submit`` together with a
callback.  Commands are executed strictly in the order they were submitted, by a single
task (the sequencer), which stamps each with the time (never going backwards).  All the
commands that arrive within one turn of the event loop form one batch: they are executed
and appended to the journal, and the batch's reports wait until the journal says the batch
is durable (one write and one fsync for the whole batch: see ``gateway.storage.journal``); only
then are they published to the streams and the callbacks run, so nothing is confirmed to
anyone before it is durable.  The journal may make a batch durable at once (the shipped
one does) or hand back a future; in the second case the sequencer goes on with the next
batch meanwhile, and batches are still published in the order they were executed.

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
from typing import Any, Protocol

from engine.commands import Command
from engine.errors import EngineError
from engine.exchange import Exchange
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
from engine.types import Side
from gateway.sequencer.marketdata import Channels
from gateway.sequencer.queries import QUERY_TYPES, Query, answer
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


class Journal(Protocol):
    """What the sequencer needs of a journal (see ``gateway.storage.datadir``)."""

    snapshot_due: bool

    def append(self, command: Command, reports: list[Report]) -> None:
        """Journal an executed command (``reports``: what it did, for the audit trail)."""

    def sync(self) -> asyncio.Future[None] | None:
        """Make what was appended durable: None if it is on return, else a future done
        when it is.  Raises ``OSError`` if it cannot be."""

    async def commit(self) -> None: ...


# Batches executed but not yet durable: past this many the sequencer waits for the disk,
# so a stalled disk holds back new commands instead of growing memory without bound.
MAX_UNPUBLISHED_BATCHES = 64


class Venue:
    def __init__(
        self,
        exchange: Exchange,
        *,
        journal: Journal | None = None,
        clock_ms: Callable[[], int] | None = None,
    ) -> None:
        self.exchange = exchange
        self.journal = journal
        self._setup(
            exchange.markets,
            [
                (symbol, book.seq, book.depth(Side.BUY), book.depth(Side.SELL))
                for symbol, book in exchange.books.items()
            ],
            clock_ms or wall_clock_ms,
        )

    def _setup(
        self,
        markets: dict[str, Market],
        books: list[tuple[str, int, list[tuple[int, int]], list[tuple[int, int]]]],
        clock_ms: Callable[[], int],
    ) -> None:
        """What every venue has: the streams' mirrors (from each book's (symbol, seq, bids,
        asks)), the sequencer's queues and the fan-out's listeners."""
        self.clock_ms = clock_ms
        self.channels = Channels(markets)
        for symbol, seq, bids, asks in books:
            mirror = self.channels.mirrors[symbol]
            mirror.bids.update(bids)
            mirror.asks.update(asks)
            mirror.seq = seq
        self.scales = asset_scales(markets)
        self.order_listeners: dict[str, set[Any]] = {}  # participant -> sessions on "orders"
        self.commands_executed = 0
        self._pending: deque[tuple[Builder, Done | None]] = deque()
        # Executed batches waiting to be durable: (the journal's future or None, results,
        # callbacks); results None: the future's value is the results (an engine in another
        # process), and the callbacks are kept to answer them if the venue stops first.
        self._unpublished: deque[
            tuple[
                asyncio.Future[Any] | None,
                list[tuple[list[Report], Done | None]] | None,
                list[Done | None] | None,
            ]
        ] = deque()
        self.failure: str | None = None  # why the venue stopped acknowledging, once it has
        self._published = asyncio.Event()  # set (and replaced) whenever batches go out
        self._failed = False
        self._wakeup = asyncio.Event()
        self._last_ts = 0
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="sequencer")

    async def stop(self) -> None:
        """Finish what was submitted, then stop."""
        self._closed = True
        self._wakeup.set()
        if self._task is not None:
            await self._task

    # -- the command stream --------------------------------------------------------------

    def submit(self, build: Builder, done: Done | None = None) -> None:
        """Queue a command; ``done(reports)`` runs once it is executed, durable and published."""
        if self._closed:
            raise WireError("VENUE_STOPPED", f"{self.health()['reason']}: the request did not run")
        self._pending.append((build, done))
        self._wakeup.set()

    def query(self, query: Query, done: Callable[[Any], None]) -> None:
        """Queue a read-only query; ``done(answer)`` runs when it has been answered, in
        sequence with the commands around it (see ``gateway.sequencer.queries``)."""
        self.submit(lambda ts: query, done)  # type: ignore[arg-type,return-value]

    # -- what the sessions read (configuration-like state, changed only by admin commands) --

    @property
    def markets(self) -> dict[str, Market]:
        return self.exchange.markets

    @property
    def registry(self) -> Registry:
        return self.exchange.registry

    def reference_price(self, symbol: str) -> int | None:
        return self.exchange.reference_price(symbol)

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
                journal = self.journal
                if journal is not None and journal.snapshot_due:
                    await journal.commit()  # durable up to here, then the snapshot
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
        results: list[tuple[list[Report], Done | None]] = []
        journal = self.journal
        execute = self.exchange.execute
        stamp = self._stamp
        for build, done in batch:
            command = build(stamp())
            if isinstance(command, QUERY_TYPES):
                results.append(([], _answering(done, answer(self.exchange, command))))
                continue
            reports = execute(command)
            if journal is not None:
                journal.append(command, reports)
            results.append((reports, done))
        self.commands_executed += len(batch)
        durable = None
        if journal is not None:
            try:
                durable = journal.sync()
            except OSError as exc:
                self._unpublished.append((None, results, None))
                self._fail(exc)
                return
        self._unpublished.append((durable, results, None))
        if durable is None:
            self._publish_ready()
        else:
            durable.add_done_callback(self._on_durable)

    def _on_durable(self, _future: asyncio.Future[None]) -> None:
        self._publish_ready()

    def _publish_ready(self) -> None:
        """Publish, in execution order, every batch at the head that is durable."""
        unpublished = self._unpublished
        while unpublished and not self._failed:
            durable, results, _dones = unpublished[0]
            if durable is not None:
                if not durable.done():
                    break
                error = durable.exception() if not durable.cancelled() else None
                if error is not None or durable.cancelled():
                    self._fail(error)
                    break
            unpublished.popleft()
            if results is None:
                results = durable.result()  # type: ignore[union-attr]
            self.publish_batch(results)  # type: ignore[arg-type]
        self._published.set()
        self._published = asyncio.Event()

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
        for _durable, results, dones in self._unpublished:
            waiting.extend(dones if results is None else [done for _r, done in results])
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
                kind = type(report)
                if kind is BookChanged:
                    book_changes.setdefault(report.market, []).append(report)
                elif kind is TradePrinted:
                    trades.setdefault(report.market, []).append(report)
        self._publish_public(book_changes, trades)
        listeners = self.order_listeners
        for reports, done in results:
            if listeners:
                self._publish_private(reports)
            if done is not None:
                done(reports)

    def publish(self, reports: list[Report]) -> None:
        """Publish the reports of one command (a batch of one, without a callback)."""
        self.publish_batch([(reports, None)])

    def _publish_private(self, reports: list[Report]) -> None:
        """Send one command's order, fill and balance reports to their owners' sessions."""
        for report in reports:
            kind = type(report)
            if kind is OrderReport or kind is FillReport or kind is BalanceReport:
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
        """A batch's trades, then its book changes: one message per market and channel."""
        markets = self.markets
        channels = self.channels
        for symbol, printed in trades.items():
            channel = f"trades:{symbol}"
            if channels.subscribers[channel]:
                market = markets[symbol]
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

    def _private_view(self, report: OrderReport | FillReport | BalanceReport) -> dict[str, Any]:
        if type(report) is BalanceReport:
            return balance_view(report, self.scales[report.asset])
        market = self.markets[report.market]
        if type(report) is FillReport:
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


def _answering(done: Any, result: Any) -> Done | None:
    """A query's callback in the shape of a command's: it gets the answer, not reports."""
    if done is None:
        return None
    return lambda reports: done(STOPPED if reports is STOPPED else result)
