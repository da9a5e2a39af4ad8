"""The engine benchmark's baseline: a plain price-time order book on ``sortedcontainers``.

The performance spec compares the compiled book with "a plain Python book built on
``sortedcontainers`` (the baseline a Python developer would write)".  This is that book,
written the way one writes it first: a ``SortedDict`` of price levels per side, each level
a plain ``dict`` of its orders in arrival order, one ``dict`` from order id to order, and
fills returned as tuples.  No tuning beyond the obvious (no caches, no tricks), and nothing
left out of the matching itself:

* limit orders match in price-time priority against the opposite side while their limit
  allows, fill partially or completely, and rest their remainder;
* any resting order can be canceled; a level that empties is removed;
* every fill is reported as ``(maker_order_id, taker_order_id, price, qty)``, so a run's
  trades, traded quantity and notional can be checked;
* ``orders()`` lists the book as ``ReferenceBook.orders()`` does, for the flow's checksum.

What it does not carry (and the project's books do): event objects, L2 level updates with a
sequence number, owners' order lists for cancel-all, amend, self-trade prevention, IOC/FOK/
market/post-only orders and input checks.  The standard flow needs none of them, and the
test ``tests/test_plain_book.py`` checks that on random flows this book reports the same
trades and ends with the same book as ``engine.ReferenceBook``.
"""

from __future__ import annotations

from dataclasses import dataclass

from sortedcontainers import SortedDict

BUY = 0
SELL = 1

Fill = tuple[int, int, int, int]
"""(maker_order_id, taker_order_id, price, qty): one trade, at the resting order's price."""


@dataclass(slots=True)
class PlainOrder:
    order_id: int
    owner: int
    side: int
    price: int  # tiyn
    qty: int  # open quantity, sat


class PlainBook:
    """One market's limit order book: limit orders and cancels, price-time priority."""

    def __init__(self) -> None:
        self.bids: SortedDict = SortedDict()  # price -> {order_id: order}; best bid last
        self.asks: SortedDict = SortedDict()  # price -> {order_id: order}; best ask first
        self.by_id: dict[int, PlainOrder] = {}

    def place(self, order_id: int, owner: int, side: int, price: int, qty: int) -> list[Fill]:
        """Match a limit order (``price`` in tiyn, ``qty`` in sat) against the other side,
        rest what is left; return the fills in the order they happened."""
        fills: list[Fill] = []
        if side == BUY:
            asks = self.asks
            while qty and asks:
                level_price, level = asks.peekitem(0)
                if level_price > price:
                    break
                qty = self._take(level, order_id, qty, fills)
                if not level:
                    del asks[level_price]
            book = self.bids
        else:
            bids = self.bids
            while qty and bids:
                level_price, level = bids.peekitem(-1)
                if level_price < price:
                    break
                qty = self._take(level, order_id, qty, fills)
                if not level:
                    del bids[level_price]
            book = self.asks
        if qty:
            order = PlainOrder(order_id, owner, side, price, qty)
            self.by_id[order_id] = order
            level = book.get(price)
            if level is None:
                level = book[price] = {}
            level[order_id] = order
        return fills

    def _take(
        self, level: dict[int, PlainOrder], taker_id: int, qty: int, fills: list[Fill]
    ) -> int:
        """Fill up to ``qty`` from the head of a level's queue; returns what is left."""
        while qty and level:
            maker = next(iter(level.values()))
            traded = min(qty, maker.qty)
            fills.append((maker.order_id, taker_id, maker.price, traded))
            qty -= traded
            maker.qty -= traded
            if maker.qty == 0:
                del level[maker.order_id]
                del self.by_id[maker.order_id]
        return qty

    def cancel(self, order_id: int) -> bool:
        """Remove a resting order; False if it is not in the book."""
        order = self.by_id.pop(order_id, None)
        if order is None:
            return False
        book = self.bids if order.side == BUY else self.asks
        level = book[order.price]
        del level[order_id]
        if not level:
            del book[order.price]
        return True

    def __len__(self) -> int:
        """The number of resting orders."""
        return len(self.by_id)

    def best_bid(self) -> int | None:
        """The best bid's price, or None."""
        return self.bids.peekitem(-1)[0] if self.bids else None

    def best_ask(self) -> int | None:
        """The best ask's price, or None."""
        return self.asks.peekitem(0)[0] if self.asks else None

    def orders(self) -> list[tuple[int, int, int, int, int]]:
        """Every resting order as (order_id, owner, side, price, open qty): bids then asks,
        each side best price first, each level in time priority (as ReferenceBook.orders)."""
        out = []
        for book, prices in ((self.bids, reversed(self.bids)), (self.asks, iter(self.asks))):
            for price in prices:
                for o in book[price].values():
                    out.append((o.order_id, o.owner, o.side, o.price, o.qty))
        return out
