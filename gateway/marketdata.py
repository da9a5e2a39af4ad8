"""Market-data channels: who listens to what, and the L2 book each channel has published.

The mirror is updated only from the ``BookChanged`` reports being published, never read
from the engine's book directly: between executing a batch and publishing it the engine
is ahead of what clients have seen, and a snapshot must match the updates that follow it
(a snapshot with ``seq`` N is followed by update N + 1).

Each stream message is encoded once and the same bytes go to every subscriber.
"""

from __future__ import annotations

from typing import Any

from sortedcontainers import SortedDict

from engine.markets import Market
from engine.reports import BookChanged

from . import protocol
from .views import levels_view


class L2Mirror:
    """One market's published aggregate book: price -> qty per side, and its seq."""

    def __init__(self, market: Market) -> None:
        self.market = market
        self.bids: SortedDict = SortedDict()
        self.asks: SortedDict = SortedDict()
        self.seq = 0

    def apply(self, change: BookChanged) -> None:
        for side, levels in ((self.bids, change.bids), (self.asks, change.asks)):
            for price, qty in levels:
                if qty:
                    side[price] = qty
                else:
                    side.pop(price, None)
        self.seq = change.seq

    def snapshot_message(self, depth: int | None = None) -> bytes:
        bids = list(reversed(self.bids.items()))[:depth]
        asks = list(self.asks.items())[:depth]
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

    def update_message(self, change: BookChanged) -> bytes:
        return protocol.encode(
            {
                "channel": "book",
                "market": self.market.symbol,
                "seq": change.seq,
                "data": {
                    "type": "update",
                    "bids": levels_view(change.bids, self.market),
                    "asks": levels_view(change.asks, self.market),
                },
            }
        )


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

    def book_changed(self, change: BookChanged) -> None:
        mirror = self.mirrors[change.market]
        mirror.apply(change)
        listeners = self.subscribers[f"book:{change.market}"]
        if listeners:
            self.publish(f"book:{change.market}", mirror.update_message(change))
