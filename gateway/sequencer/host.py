"""What the sequencer needs of wherever the engine runs: the engine host.

The venue (``gateway.sequencer.venue``) orders the commands, stamps them and fans out what
they did; the host executes them and makes them durable.  Two hosts ship
(``gateway.hosts``): ``LocalHost``, the exchange and its journal in this process, and
``ProcessHost``, the exchange, journal and snapshots in a process of their own.

A third host (say, a replicated log: the batch appended to a quorum of replicas, each of
which applies it to its own exchange) must provide what ``EngineHost`` lists:

* the configuration-like state sessions read between batches: ``markets``, ``registry``
  and ``reference_price(symbol)``, up to date with every batch whose results it has
  handed back (they change only with admin commands and trades);
* ``books()``: each book's ``(symbol, seq, bids, asks)`` as it starts, so the market-data
  mirrors begin where the engine is;
* ``execute(items)``: run a batch of stamped commands and queries in order, exactly once,
  and give back per item its reports (a command) or its answer (a query,
  ``gateway.sequencer.queries``), either at once if the batch is already durable, or as a
  future that is done when it is.  Futures complete in the order the batches were given
  (the venue publishes in execution order regardless, but holds later batches back); a
  batch that cannot be made durable fails its future (or raises ``OSError`` at once), and
  the venue then stops acknowledging anything;
* ``send_early``: None, or a number of queued commands that is worth handing over before
  the event loop's turn ends (a host on another core starts on them sooner);
* ``snapshot_due`` and ``commit()``: whether the host wants everything so far durable with
  no command running meanwhile (to write a snapshot), and doing so;
* ``watch(failed)``: call ``failed(error)`` if the host stops on its own (an engine process
  that died), so the venue stops at once rather than at the next batch;
* ``close(clean=...)``: once the venue has stopped (cleanly, or after a failure), release
  what the host holds;
* ``last_seq`` and ``recovered``: where it started (for the operator's start-up lines).

Optionally, a host that several gateways share (``gateway.cluster.host.ClusterHost``)
has ``watch_foreign(publish)``: the venue registers its ``publish_foreign``, which the host
calls with each other gateway's batch (per command its reports), in the engine's order
relative to this venue's own batches (it completes the futures of earlier own batches
first), so every gateway fans out every trade and book change.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, Protocol

from engine.commands import Command
from engine.licensing import Registry
from engine.markets import Market
from gateway.sequencer.queries import Query

Item = Command | Query  # what a batch holds: stamped commands and queries, in order
# Per item of a batch: a command's reports (``list[Report]``) or a query's answer.
Outcomes = list[Any]
# One book as the engine holds it: (symbol, seq, bids, asks), levels as (price, qty).
BookState = tuple[str, int, list[tuple[int, int]], list[tuple[int, int]]]


class EngineHost(Protocol):
    """Where the engine runs, as the venue sees it (see the module docstring)."""

    last_seq: int
    recovered: str

    @property
    def markets(self) -> dict[str, Market]: ...

    @property
    def registry(self) -> Registry: ...

    def reference_price(self, symbol: str) -> int | None: ...

    def books(self) -> list[BookState]: ...

    @property
    def send_early(self) -> int | None: ...

    @property
    def snapshot_due(self) -> bool: ...

    def execute(self, items: list[Item]) -> Outcomes | asyncio.Future[Outcomes]:
        """The batch's outcomes, now (durable on return) or as a future done once durable.
        Raises ``OSError`` when the batch cannot be made durable."""
        ...

    async def commit(self) -> None: ...

    def watch(self, failed: Callable[[BaseException], None]) -> None: ...

    async def close(self, *, clean: bool) -> None: ...
