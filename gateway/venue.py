"""The venue: the one task that calls the engine, and the fan-out of what it reports.

Sessions turn requests into commands and hand them to ``Venue.submit`` together with a
callback.  Commands are executed strictly in the order they were submitted, by a single
task (the sequencer), which stamps each with the time (never going backwards).  All the
commands that arrive within one turn of the event loop form one batch: they are executed,
then (with durability on) written to the journal with one write and one fsync, and only
then are their reports published to the streams and their callbacks run, so nothing is
confirmed to anyone before it is durable.

Fan-out: private reports go to the owner's sessions that subscribed to ``orders``; trades
and book changes to the public channels.  Each message is encoded once for all its
receivers.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from typing import Any, Protocol

from engine.commands import Command
from engine.exchange import Exchange
from engine.reports import (
    Audit,
    BalanceReport,
    BookChanged,
    FillReport,
    OrderReport,
    Report,
    TradePrinted,
)

from . import protocol
from .marketdata import Channels
from .protocol import WireError
from .views import asset_scales, balance_view, fill_view, order_view, trade_view

log = logging.getLogger("alatau.venue")

Builder = Callable[[int], Command]  # ts (ms) -> the command
Done = Callable[[list[Report]], None]


class Journal(Protocol):
    """What the sequencer needs of a journal (see ``gateway.journal``)."""

    def append(self, command: Command) -> None: ...

    async def commit(self) -> None: ...


class Venue:
    def __init__(
        self,
        exchange: Exchange,
        *,
        journal: Journal | None = None,
        clock_ms: Callable[[], int] = lambda: time.time_ns() // 1_000_000,
        audit_log_size: int = 100_000,
    ) -> None:
        self.exchange = exchange
        self.journal = journal
        self.clock_ms = clock_ms
        self.channels = Channels(exchange.markets)
        for symbol, book in exchange.books.items():
            mirror = self.channels.mirrors[symbol]
            from engine.types import Side

            mirror.bids.update(book.depth(Side.BUY))
            mirror.asks.update(book.depth(Side.SELL))
            mirror.seq = book.seq
        self.scales = asset_scales(exchange.markets)
        self.order_listeners: dict[str, set[Any]] = {}  # participant -> sessions on "orders"
        self.audit_log: deque[Audit] = deque(maxlen=audit_log_size)
        self.commands_executed = 0
        self._pending: deque[tuple[Builder, Done | None]] = deque()
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
            raise WireError("INTERNAL", "the venue is shutting down: the request did not run")
        self._pending.append((build, done))
        self._wakeup.set()

    def now_ms(self) -> int:
        return self.clock_ms()

    async def _run(self) -> None:
        while True:
            if not self._pending:
                if self._closed:
                    return
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            batch = list(self._pending)
            self._pending.clear()
            try:
                await self._execute_batch(batch)
            except Exception:  # a bug in the engine: stop serving rather than go on wrong
                log.exception("the sequencer failed; the venue stops accepting commands")
                self._closed = True
                raise

    async def _execute_batch(self, batch: list[tuple[Builder, Done | None]]) -> None:
        results: list[tuple[list[Report], Done | None]] = []
        journal = self.journal
        for build, done in batch:
            ts = max(self.clock_ms(), self._last_ts)
            self._last_ts = ts
            command = build(ts)
            reports = self.exchange.execute(command)
            if journal is not None:
                journal.append(command)
            results.append((reports, done))
        self.commands_executed += len(batch)
        if journal is not None:
            await journal.commit()
        for reports, done in results:
            self.publish(reports)
            if done is not None:
                done(reports)

    # -- fan-out -------------------------------------------------------------------------

    def publish(self, reports: list[Report]) -> None:
        markets = self.exchange.markets
        for report in reports:
            kind = type(report)
            if kind is BookChanged:
                self.channels.book_changed(report)
            elif kind is TradePrinted:
                channel = f"trades:{report.market}"
                if self.channels.subscribers[channel]:
                    self.channels.publish(
                        channel,
                        protocol.encode(
                            {
                                "channel": "trades",
                                "market": report.market,
                                "data": trade_view(report, markets[report.market]),
                            }
                        ),
                    )
            elif kind is OrderReport or kind is FillReport or kind is BalanceReport:
                listeners = self.order_listeners.get(report.participant_id)
                if listeners:
                    message = protocol.encode(
                        {"channel": "orders", "data": self._private_view(report)}
                    )
                    for session in tuple(listeners):
                        session.send(message)
            elif kind is Audit:
                self.audit_log.append(report)

    def _private_view(self, report: OrderReport | FillReport | BalanceReport) -> dict[str, Any]:
        if type(report) is BalanceReport:
            return balance_view(report, self.scales[report.asset])
        market = self.exchange.markets[report.market]
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
