"""The recent-trades tape of each market, in memory: what ``GET /trades`` and ``GET /ticker``
answer (``gateway.sessions.http``).

Fed from the published ``TradePrinted`` reports (``Venue._publish_public``: only durable,
published trades, in the order the websocket ``trades:`` stream sends them), so what HTTP
shows never runs ahead of the streams.  The publish path only appends: the trade itself to a
bounded deque, and its price and size into the current minute's bucket; everything else is
computed when asked.

Bounded memory, whatever the trade rate, per market:

* ``TRADES_KEPT`` (10,000) most recent trades, the last of which ``GET /trades`` lists (at
  most 1,000 at a time);
* one bucket per minute that had a trade, for the last 24 h (at most ``MINUTES_KEPT``, 1,441):
  open, high, low, close, volume, quote volume and count.  The ticker adds the buckets of the
  last 24 h, so its window is rolling to the minute: it starts at the beginning of the minute
  24 h ago.

Integers inside (price and qty in minor units, the quote volume of each trade in quote minor
units, rounded down), decimal strings only in the views.  After a restart the tape starts
empty: the history database that survives restarts is a later piece of work.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from engine.fixedpoint import POW10
from engine.markets import Market
from engine.reports import TradePrinted
from gateway.wire.views import decimal_text, trade_view

TRADES_KEPT = 10_000
DAY_MS = 24 * 60 * 60 * 1000
MINUTE_MS = 60_000
MINUTES_KEPT = DAY_MS // MINUTE_MS + 1


class _Minute:
    """One minute's trades, summed."""

    __slots__ = ("close", "count", "high", "low", "minute", "open", "quote_volume", "volume")

    def __init__(self, minute: int, price: int) -> None:
        self.minute = minute
        self.open = self.high = self.low = self.close = price
        self.volume = 0
        self.quote_volume = 0
        self.count = 0


class Tape:
    """One market's recent trades and its per-minute buckets."""

    __slots__ = ("_base_pow", "market", "minutes", "trades")

    def __init__(self, market: Market) -> None:
        self.market = market
        self.trades: deque[TradePrinted] = deque(maxlen=TRADES_KEPT)
        self.minutes: deque[_Minute] = deque(maxlen=MINUTES_KEPT)
        self._base_pow = POW10[market.base_scale]

    def extend(self, printed: list[TradePrinted]) -> None:
        """Append one batch's trades of this market (the publish path: keep it cheap)."""
        self.trades.extend(printed)
        minutes = self.minutes
        base_pow = self._base_pow
        for trade in printed:
            minute = trade.ts // MINUTE_MS
            price = trade.price
            bucket = minutes[-1] if minutes else None
            if bucket is None or bucket.minute != minute:
                bucket = _Minute(minute, price)
                minutes.append(bucket)
            elif price > bucket.high:
                bucket.high = price
            elif price < bucket.low:
                bucket.low = price
            bucket.close = price
            bucket.volume += trade.qty
            bucket.quote_volume += price * trade.qty // base_pow
            bucket.count += 1

    def recent(self, limit: int) -> list[dict[str, Any]]:
        """The last ``limit`` trades, newest first, as the wire shows them."""
        market = self.market
        trades = self.trades
        count = min(limit, len(trades))
        return [trade_view(trades[-1 - i], market) for i in range(count)]

    def ticker(self, now_ms: int, best_bid: int | None, best_ask: int | None) -> dict[str, Any]:
        """The rolling 24 h summary at ``now_ms`` (see the module docstring)."""
        market = self.market
        since = (now_ms - DAY_MS) // MINUTE_MS
        window = [bucket for bucket in self.minutes if bucket.minute >= since]
        price = market.format_price
        last = self.trades[-1].price if self.trades else None
        view: dict[str, Any] = {
            "market": market.symbol,
            "last": None if last is None else price(last),
            "bid": None if best_bid is None else price(best_bid),
            "ask": None if best_ask is None else price(best_ask),
            "open": None,
            "high": None,
            "low": None,
            "volume": market.format_qty(0),
            "quote_volume": price(0),
            "trades": 0,
            "change": None,
            "ts": now_ms,
        }
        if window:
            first = window[0]
            close = window[-1].close
            view.update(
                open=price(first.open),
                high=price(max(bucket.high for bucket in window)),
                low=price(min(bucket.low for bucket in window)),
                volume=decimal_text(sum(b.volume for b in window), market.base_scale),
                quote_volume=price(sum(b.quote_volume for b in window)),
                trades=sum(b.count for b in window),
                change=price(close - first.open),
            )
        return view


class Tapes:
    """Every market's tape, by symbol."""

    def __init__(self, markets: dict[str, Market]) -> None:
        self.tapes = {symbol: Tape(market) for symbol, market in markets.items()}

    def printed(self, market: Market, trades: list[TradePrinted]) -> None:
        """One batch's published trades of ``market``."""
        tape = self.tapes.get(market.symbol)
        if tape is None:  # a market added after start
            tape = self.tapes[market.symbol] = Tape(market)
        tape.extend(trades)

    def get(self, symbol: str, market: Market) -> Tape:
        """``symbol``'s tape (an empty one for a market that has had no trade yet)."""
        tape = self.tapes.get(symbol)
        if tape is None:
            tape = self.tapes[symbol] = Tape(market)
        return tape
