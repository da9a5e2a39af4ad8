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

After the trades and the book, a batch with trades in a market sends, per market, one
``ticker`` message (the rolling 24 h summary of ``GET /ticker``, from the tape,
``gateway.sequencer.tape``) and, per followed interval, the candles the batch touched: when
a trade opens a new interval, the previous candle once more with ``closed: true``, then the
open one.  The only candle state kept is the open candle of each followed
``candles:MARKET:INTERVAL`` channel; it is made from the tape's minute buckets when the
channel gets its first subscriber (the tape holds the last 24 h, which covers the candle of
the last trade for every interval up to a day) and dropped with its last subscriber.  A
channel nobody follows costs the publish path one set lookup.

Each stream message is encoded once and the same bytes go to every subscriber.
"""

from __future__ import annotations

from typing import Any

from engine.markets import Market
from engine.reports import BookChanged, TradePrinted
from gateway.sequencer.tape import MINUTE_MS, Tapes
from gateway.wire import protocol
from gateway.wire.views import decimal_text, levels_view

# Candle intervals: name -> length in ms; the same as ``GET /candles`` takes
# (``gateway.storage.history.INTERVALS_MS``, a layer this one may not import; a test keeps
# the two equal).
INTERVALS_MS = {
    "1m": 60_000,
    "5m": 300_000,
    "15m": 900_000,
    "1h": 3_600_000,
    "4h": 14_400_000,
    "1d": 86_400_000,
}


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


class Candle:
    """One interval's trades, summed (integers: minor units, quote volume per trade
    rounded down, as ``GET /candles`` sums them)."""

    __slots__ = ("close", "high", "low", "open", "open_time", "quote_volume", "trades", "volume")

    def __init__(self, open_time: int, price: int) -> None:
        self.open_time = open_time
        self.open = self.high = self.low = self.close = price
        self.volume = 0
        self.quote_volume = 0
        self.trades = 0


class Channels:
    """Subscriber sets per channel name (``book:BTC-KZT``, ``trades:BTC-KZT``,
    ``ticker:BTC-KZT``, ``candles:BTC-KZT:1m``), and the open candle of each followed
    ``candles:`` channel."""

    def __init__(self, markets: dict[str, Market], tapes: Tapes) -> None:
        self.markets = markets
        self.tapes = tapes
        self.mirrors = {symbol: L2Mirror(market) for symbol, market in markets.items()}
        self.subscribers: dict[str, set[Any]] = {}
        # Per market, the followed candle channels: channel -> (interval ms, open candle or
        # None before the first trade).  Only channels with a subscriber are here.
        self.candles: dict[str, dict[str, tuple[int, Candle | None]]] = {}
        for symbol in markets:
            self.subscribers[f"book:{symbol}"] = set()
            self.subscribers[f"trades:{symbol}"] = set()
            self.subscribers[f"ticker:{symbol}"] = set()
            for interval in INTERVALS_MS:
                self.subscribers[f"candles:{symbol}:{interval}"] = set()

    def is_public(self, channel: str) -> bool:
        return channel in self.subscribers

    def subscribe(self, channel: str, session: Any) -> None:
        self.subscribers[channel].add(session)
        if channel.startswith("candles:"):
            _, symbol, interval = channel.split(":")
            followed = self.candles.setdefault(symbol, {})
            if channel not in followed:
                interval_ms = INTERVALS_MS[interval]
                followed[channel] = (interval_ms, self._last_candle(symbol, interval_ms))

    def unsubscribe(self, channel: str, session: Any) -> None:
        subscribers = self.subscribers[channel]
        subscribers.discard(session)
        if not subscribers and channel.startswith("candles:"):
            symbol = channel.split(":")[1]
            followed = self.candles.get(symbol)
            if followed is not None:
                followed.pop(channel, None)
                if not followed:
                    del self.candles[symbol]

    def first_message(self, channel: str, now_ms: int) -> bytes | None:
        """What a new subscriber of ``channel`` gets first: the book's snapshot, the
        current ticker, the open candle (``data`` null before any trade); None for
        ``trades:``."""
        kind, _, rest = channel.partition(":")
        if kind == "book":
            return self.mirrors[rest].snapshot_message()
        if kind == "ticker":
            return self.ticker_message(rest, now_ms)
        if kind == "candles":
            symbol, interval = rest.split(":")
            candle = self.candles[symbol][channel][1]
            closed = candle is not None and now_ms >= candle.open_time + INTERVALS_MS[interval]
            return self.candle_message(symbol, interval, candle, closed)
        return None

    def ticker(self, symbol: str, now_ms: int) -> dict[str, Any]:
        """``symbol``'s rolling 24 h ticker (``GET /ticker``): the tape's, with the best
        bid and ask of the published book."""
        market = self.markets[symbol]
        mirror = self.mirrors.get(symbol)
        bid = max(mirror.bids) if mirror is not None and mirror.bids else None
        ask = min(mirror.asks) if mirror is not None and mirror.asks else None
        return self.tapes.get(symbol, market).ticker(now_ms, bid, ask)

    def ticker_message(self, symbol: str, now_ms: int) -> bytes:
        return protocol.encode(
            {"channel": "ticker", "market": symbol, "data": self.ticker(symbol, now_ms)}
        )

    def candle_message(
        self, symbol: str, interval: str, candle: Candle | None, closed: bool
    ) -> bytes:
        data: dict[str, Any] | None = None
        if candle is not None:
            market = self.markets[symbol]
            price = market.format_price
            data = {
                "open_time": candle.open_time,
                "open": price(candle.open),
                "high": price(candle.high),
                "low": price(candle.low),
                "close": price(candle.close),
                "volume": decimal_text(candle.volume, market.base_scale),
                "quote_volume": price(candle.quote_volume),
                "trades": candle.trades,
                "closed": closed,
            }
        return protocol.encode(
            {"channel": "candles", "market": symbol, "interval": interval, "data": data}
        )

    def _last_candle(self, symbol: str, interval_ms: int) -> Candle | None:
        """The candle of ``symbol``'s last published trade, from the tape's minute buckets
        (every interval divides into whole minutes)."""
        tape = self.tapes.tapes.get(symbol)
        if tape is None or not tape.minutes:
            return None
        minutes = tape.minutes
        open_time = minutes[-1].minute * MINUTE_MS // interval_ms * interval_ms
        first_minute = open_time // MINUTE_MS
        buckets = []
        for bucket in reversed(minutes):
            if bucket.minute < first_minute:
                break
            buckets.append(bucket)
        buckets.reverse()
        candle = Candle(open_time, buckets[0].open)
        candle.high = max(bucket.high for bucket in buckets)
        candle.low = min(bucket.low for bucket in buckets)
        candle.close = buckets[-1].close
        candle.volume = sum(bucket.volume for bucket in buckets)
        candle.quote_volume = sum(bucket.quote_volume for bucket in buckets)
        candle.trades = sum(bucket.count for bucket in buckets)
        return candle

    def trades_printed(self, symbol: str, printed: list[TradePrinted], now_ms: int) -> None:
        """After a batch's trades and book changes: ``symbol``'s ticker and the candles
        the batch touched, to their subscribers (nothing at all for channels nobody
        follows)."""
        channel = f"ticker:{symbol}"
        if self.subscribers.get(channel):
            self.publish(channel, self.ticker_message(symbol, now_ms))
        followed = self.candles.get(symbol)
        if followed:
            for channel, (interval_ms, candle) in followed.items():
                candle = self._candles_touched(symbol, channel, interval_ms, candle, printed)
                followed[channel] = (interval_ms, candle)

    def _candles_touched(
        self,
        symbol: str,
        channel: str,
        interval_ms: int,
        candle: Candle | None,
        printed: list[TradePrinted],
    ) -> Candle | None:
        """Add a batch's trades to ``channel``'s open candle, sending each candle they
        closed and then the open one; return the open one."""
        interval = channel.rpartition(":")[2]
        base_pow = 10 ** self.markets[symbol].base_scale
        for trade in printed:
            price = trade.price
            open_time = trade.ts // interval_ms * interval_ms
            if candle is None or candle.open_time != open_time:
                if candle is not None:
                    self.publish(channel, self.candle_message(symbol, interval, candle, True))
                candle = Candle(open_time, price)
            elif price > candle.high:
                candle.high = price
            elif price < candle.low:
                candle.low = price
            candle.close = price
            candle.volume += trade.qty
            candle.quote_volume += price * trade.qty // base_pow
            candle.trades += 1
        self.publish(channel, self.candle_message(symbol, interval, candle, False))
        return candle

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
