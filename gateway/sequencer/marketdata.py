"""Market-data channels: who listens to what, and the L2 book each channel has published.

The mirror is updated only from the ``BookChanged`` reports being published, never read
from the engine's book directly: between executing a batch and publishing it the engine
is ahead of what clients have seen, and a snapshot must match the updates that follow it.

Conflation: the sequencer publishes once per batch (one turn of the event loop), and each
market's book changes in the batch go out as ONE ``update`` message: the levels whose
quantity differs from before the batch, and the range of the engine's change numbers it
covers (``first_seq`` .. ``seq``).  Nothing is lost by this: a client that applies the
message holds exactly the engine's book after the batch, and the ranges of successive
messages join up (``first_seq`` = the previous ``seq`` + 1), so a gap is still seen.  What
it saves is the fan-out: at a few thousand orders per second a market changes thousands of
times per second, and one message per change per subscriber is what made 100 subscribers
cost the venue 90 % of its throughput.  Trades of a batch likewise go out as one message
with the list of trades.

Each stream message is encoded once and the same bytes go to every subscriber.
"""

from __future__ import annotations

from typing import Any

from engine.markets import Market
from engine.reports import BookChanged
from gateway.wire import protocol
from gateway.wire.views import levels_view


class L2Mirror:
    """One market's published aggregate book: price -> qty per side, and its seq.

    The levels are plain dicts, sorted only when a snapshot is asked for: every batch
    changes the mirror, a subscription reads it in order, and there are far more batches
    than subscriptions (a sorted map would pay a log-time insert on every change instead)."""

    def __init__(self, market: Market) -> None:
        self.market = market
        self.bids: dict[int, int] = {}
        self.asks: dict[int, int] = {}
        self.seq = 0

    def apply(
        self, changes: list[BookChanged]
    ) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
        """Apply one batch's changes of this book, in order; return the levels (price, new
        qty; 0 = gone) per side that differ from before the batch, best price first."""
        bids = _apply_side(self.bids, [change.bids for change in changes])
        asks = _apply_side(self.asks, [change.asks for change in changes])
        self.seq = changes[-1].seq
        bids.sort(reverse=True)
        asks.sort()
        return bids, asks

    def snapshot_message(self, depth: int | None = None) -> bytes:
        bids = sorted(self.bids.items(), reverse=True)[:depth]
        asks = sorted(self.asks.items())[:depth]
        return protocol.encode(
            {
                "channel": "book",
                "market": self.market.symbol,
                "seq": self.seq,
                "data": {
                    "type": "snapshot",
                    "bids": levels_view(bids, self.market),
                    "asks": levels_view(asks, self.market),
                },
            }
        )

    def update_message(
        self, first_seq: int, bids: list[tuple[int, int]], asks: list[tuple[int, int]]
    ) -> bytes:
        return protocol.encode(
            {
                "channel": "book",
                "market": self.market.symbol,
                "first_seq": first_seq,
                "seq": self.seq,
                "data": {
                    "type": "update",
                    "bids": levels_view(bids, self.market),
                    "asks": levels_view(asks, self.market),
                },
            }
        )


def _apply_side(
    side: dict[int, int], batches: list[list[tuple[int, int]]]
) -> list[tuple[int, int]]:
    """Apply one side's level changes, in order; return (price, new qty) for each level
    whose quantity differs from before them (unsorted)."""
    before: dict[int, int] = {}
    for levels in batches:
        for price, qty in levels:
            if price not in before:
                before[price] = side.get(price, 0)
            if qty:
                side[price] = qty
            else:
                side.pop(price, None)
    return [
        (price, side.get(price, 0)) for price, old in before.items() if side.get(price, 0) != old
    ]


class Channels:
    """Subscriber sets per channel name (``book:BTC-KZT``, ``trades:BTC-KZT``)."""

    def __init__(self, markets: dict[str, Market]) -> None:
        self.mirrors = {symbol: L2Mirror(market) for symbol, market in markets.items()}
        self.subscribers: dict[str, set[Any]] = {}
        for symbol in markets:
            self.subscribers[f"book:{symbol}"] = set()
            self.subscribers[f"trades:{symbol}"] = set()

    def is_public(self, channel: str) -> bool:
        return channel in self.subscribers

    def subscribe(self, channel: str, session: Any) -> None:
        self.subscribers[channel].add(session)

    def unsubscribe(self, channel: str, session: Any) -> None:
        self.subscribers[channel].discard(session)

    def publish(self, channel: str, message: bytes) -> None:
        for session in tuple(self.subscribers[channel]):
            session.send(message)

    def book_changed(self, market: str, changes: list[BookChanged]) -> None:
        """Apply one batch's changes of ``market`` to its mirror and send the update."""
        mirror = self.mirrors[market]
        first_seq = changes[0].seq
        bids, asks = mirror.apply(changes)
        channel = f"book:{market}"
        if self.subscribers[channel]:
            self.publish(channel, mirror.update_message(first_seq, bids, asks))
