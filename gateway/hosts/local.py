"""The engine in the gateway's own process: ``LocalHost``, an ``Exchange`` and optionally a
journal (the data directory's ``Storage``), behind the venue's ``EngineHost`` interface
(``gateway.sequencer.host``).

Each batch is executed in the sequencer's turn, appended to the journal and made durable
with one ``sync``; the shipped journal is durable on return, so the batch's outcomes come
back at once.  A journal may instead hand back a future (the tests' manual journals): the
outcomes then come as a future done when it is.

``Venue(LocalHost(exchange))`` is a venue in memory (tests);
``Venue(LocalHost(exchange, journal=storage))`` journals to a ``Storage`` the caller keeps
and closes; ``LocalHost.start(settings, box)`` recovers or builds the exchange as the
server does (``gateway.hosts.start``) and closes the data directory with the venue.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Protocol, cast

from engine.commands import Command
from engine.exchange import Exchange
from engine.licensing import Registry
from engine.markets import Market
from engine.reports import Report
from engine.types import Side
from gateway.hosts.start import EngineSettings, start_engine
from gateway.sequencer.host import BookState, Item, Outcomes
from gateway.sequencer.queries import QUERY_KINDS, Query, answer
from gateway.storage.datadir import Storage
from gateway.storage.sealing import SecretBox

log = logging.getLogger("alatau.venue")


class Journal(Protocol):
    """What a ``LocalHost`` needs of a journal (``gateway.storage.datadir.Storage`` has it)."""

    @property
    def snapshot_due(self) -> bool: ...

    def append_batch(self, commands: list[Command], reports: list[list[Report]]) -> None:
        """Journal a batch's executed commands (``reports``: what each did, for the audit
        trail), in order."""

    def sync_later(self) -> asyncio.Future[None] | None:
        """Make what was appended durable: None if it is on return, else a future done
        when it is (or failed with the ``OSError`` of the flush).  Raises ``OSError`` if it
        cannot be."""

    async def commit(self) -> None: ...


class LocalHost:
    """An exchange in this process, journaled or not (see the module docstring)."""

    send_early = None  # the batch runs in the sequencer's turn: nothing to gain sooner

    def __init__(
        self,
        exchange: Exchange,
        *,
        journal: Journal | None = None,
        last_seq: int = 0,
        recovered: str = "",
    ) -> None:
        self.exchange = exchange
        # The exchange's own dict of markets, which admin commands change in place (it is
        # never replaced), so this stays current.  An attribute rather than a property:
        # sessions read it on every order, and a property call cost about 800 instructions.
        self.markets: dict[str, Market] = exchange.markets
        self.journal = journal
        self.last_seq = last_seq
        self.recovered = recovered
        self._storage: Storage | None = None  # a data directory this host opened and closes

    @classmethod
    def start(cls, settings: EngineSettings, secret_box: SecretBox | None) -> LocalHost:
        """Recover from the data directory, or build in memory (``start_engine``)."""
        engine = start_engine(settings, secret_box)
        host = cls(
            engine.exchange,
            journal=engine.storage,
            last_seq=engine.last_seq,
            recovered=engine.recovered,
        )
        host._storage = engine.storage
        return host

    # -- what the sessions read

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

    @property
    def snapshot_due(self) -> bool:
        return self.journal is not None and self.journal.snapshot_due

    def execute(self, items: list[Item]) -> Outcomes | asyncio.Future[Outcomes]:
        exchange = self.exchange
        journal = self.journal
        execute = exchange.execute
        outcomes: Outcomes = []
        commands: list[Command] = []
        executed: list[list[Report]] = []
        for item in items:
            if type(item) in QUERY_KINDS:  # exact types: see QUERY_KINDS
                outcomes.append(answer(exchange, cast(Query, item)))
                continue
            # A command here (no typing.cast: a Python call per command on the order path).
            command: Command = item  # type: ignore[assignment]
            reports = execute(command)
            commands.append(command)
            executed.append(reports)
            outcomes.append(reports)
        if journal is not None and commands:
            journal.append_batch(commands, executed)
        if journal is None:
            return outcomes
        durable = journal.sync_later()  # OSError: the venue stops
        if durable is None:
            return outcomes
        ready: asyncio.Future[Outcomes] = asyncio.get_running_loop().create_future()

        def settled(future: asyncio.Future[None]) -> None:
            if future.cancelled():
                ready.cancel()
            elif (error := future.exception()) is not None:
                ready.set_exception(error)
            else:
                ready.set_result(outcomes)

        durable.add_done_callback(settled)
        return ready

    async def commit(self) -> None:
        if self.journal is not None:
            await self.journal.commit()

    def watch(self, failed: Callable[[BaseException], None]) -> None:
        """Nothing fails here on its own: a failed write fails its batch."""

    async def close(self, *, clean: bool) -> None:
        """Close the data directory this host opened (``start``): with a final snapshot
        if the venue stopped cleanly; after a failure without, the next start replays."""
        storage, self._storage = self._storage, None
        if storage is None:
            return
        if clean:
            storage.close()
            return
        try:
            storage.close(final_snapshot=False)
        except OSError as exc:
            log.error("closing the data directory after a failure: %r", exc)
