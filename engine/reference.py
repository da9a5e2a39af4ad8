"""The reference order book: plain Python on ``sortedcontainers``, written to be obviously right.

It is the oracle of the differential tests (the Cython book in ``engine._core.book`` must
give the same events and the same state for every command sequence) and the baseline of
the engine benchmark (the book a Python developer would write).  Any deviation between
the two is a bug in one of them.  Clarity wins over speed here, always.

Units: ``price`` in the quote's minor units (tiyn), ``qty`` in the base asset's minor units.
The book does no market-rule validation (tick, lot, bands): ``engine.markets`` and the
exchange do that before a command reaches a book.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator

from sortedcontainers import SortedDict

from . import reject
from .errors import BookIntegrityError
from .events import (
    AmendRejected,
    BookLevel,
    CancelRejected,
    Event,
    OrderAccepted,
    OrderAmended,
    OrderCanceled,
    OrderExpired,
    OrderFilled,
    OrderRejected,
    Trade,
)
from .types import (
    SIDE_NAMES,
    OrderType,
    SelfTradePrevention,
    Side,
    TimeInForce,
)

BUY = Side.BUY
SELL = Side.SELL


class _Order:
    __slots__ = ("order_id", "owner", "post_only", "price", "qty", "side", "stp")

    def __init__(
        self, order_id: int, owner: int, side: int, price: int, qty: int, post_only: bool, stp: int
    ) -> None:
        self.order_id = order_id
        self.owner = owner
        self.side = side
        self.price = price
        self.qty = qty  # open (remaining) quantity
        self.post_only = post_only
        self.stp = stp


class _Level:
    """A price level: a FIFO of orders (OrderedDict keeps arrival order, O(1) removal)."""

    __slots__ = ("orders", "total")

    def __init__(self) -> None:
        self.orders: OrderedDict[int, _Order] = OrderedDict()
        self.total = 0


class ReferenceBook:
    """One market's limit order book with price-time priority."""

    def __init__(self) -> None:
        # Bids and asks keyed by price; the best bid is the last key, the best ask the first.
        self._sides: tuple[SortedDict, SortedDict] = (SortedDict(), SortedDict())
        self._orders: dict[int, _Order] = {}
        # Each owner's open orders in the order they were first accepted (for cancel-all).
        self._by_owner: dict[int, dict[int, None]] = {}
        self._seq = 0
        self._last_trade_id = 0
        # Per command: (side, price) -> aggregate qty before the command first touched it.
        self._touched: dict[tuple[int, int], int] = {}

    # -- commands ------------------------------------------------------------------------

    def place(
        self,
        order_id: int,
        owner: int,
        side: int,
        price: int,
        qty: int,
        order_type: int = OrderType.LIMIT,
        tif: int = TimeInForce.GTC,
        post_only: bool = False,
        stp: int = SelfTradePrevention.NONE,
    ) -> list[Event]:
        """Enter a new order.  ``price`` is ignored as a limit when 0 on a market order."""
        _check_enums(side, order_type, tif, stp)
        code = self._place_reject_code(order_id, side, price, qty, order_type, tif, post_only)
        if code:
            return [OrderRejected(order_id, reject.code_name(code))]
        events: list[Event] = [OrderAccepted(order_id, SIDE_NAMES[side], price, qty)]
        self._touched = {}
        if tif == TimeInForce.FOK and self._fillable(owner, side, price, qty, stp) < qty:
            events.append(OrderExpired(order_id, qty))
            return events
        order = _Order(order_id, owner, side, price, qty, post_only, stp)
        self._by_owner.setdefault(owner, {})[order_id] = None
        self._orders[order_id] = order
        rests = order_type == OrderType.LIMIT and tif == TimeInForce.GTC
        self._execute(order, rests, events)
        self._emit_levels(events)
        return events

    def cancel(self, order_id: int) -> list[Event]:
        """Cancel an open order."""
        order = self._orders.get(order_id)
        if order is None:
            return [CancelRejected(order_id, reject.code_name(reject.UNKNOWN_ORDER))]
        self._touched = {}
        events: list[Event] = [OrderCanceled(order_id, order.qty, "user")]
        self._remove(order)
        self._emit_levels(events)
        return events

    def amend(self, order_id: int, price: int, qty: int) -> list[Event]:
        """Change an open order's price and/or open quantity.

        A pure quantity decrease keeps time priority.  Any other change sends the order to
        the back of the queue at its (new) price, as if it had just arrived: a new price
        that crosses the book trades at once (a post-only order is refused instead).
        """
        order = self._orders.get(order_id)
        code = 0
        if order is None:
            code = reject.UNKNOWN_ORDER
        elif qty <= 0:
            code = reject.INVALID_QTY
        elif price <= 0:
            code = reject.INVALID_PRICE
        elif order.post_only and price != order.price and self._crosses(order.side, price):
            code = reject.POST_ONLY_WOULD_TRADE
        if code or order is None:
            return [AmendRejected(order_id, reject.code_name(code))]
        self._touched = {}
        if price == order.price and qty <= order.qty:
            events: list[Event] = [OrderAmended(order_id, price, qty, True)]
            if qty < order.qty:
                level = self._sides[order.side][price]
                self._touch(order.side, price)
                level.total -= order.qty - qty
                order.qty = qty
            self._emit_levels(events)
            return events
        events = [OrderAmended(order_id, price, qty, False)]
        self._unlink_from_level(order)
        order.price = price
        order.qty = qty
        self._execute(order, True, events)
        self._emit_levels(events)
        return events

    def cancel_all(self, owner: int, side: int | None = None) -> list[Event]:
        """Cancel all the owner's open orders (on one side only if ``side`` is given),
        in the order they were accepted."""
        if side is not None:
            Side(side)
        self._touched = {}
        events: list[Event] = []
        for order_id in list(self._by_owner.get(owner, ())):
            order = self._orders[order_id]
            if side is None or order.side == side:
                events.append(OrderCanceled(order_id, order.qty, "cancel_all"))
                self._remove(order)
        self._emit_levels(events)
        return events

    # -- queries -------------------------------------------------------------------------

    @property
    def seq(self) -> int:
        """The sequence number of the last L2 change (0 before any)."""
        return self._seq

    def __len__(self) -> int:
        """The number of open orders."""
        return len(self._orders)

    def __contains__(self, order_id: object) -> bool:
        return order_id in self._orders

    def best_bid(self) -> tuple[int, int] | None:
        """(price, aggregate qty) of the best bid, or None."""
        bids = self._sides[BUY]
        if not bids:
            return None
        price, level = bids.peekitem(-1)
        return price, level.total

    def best_ask(self) -> tuple[int, int] | None:
        """(price, aggregate qty) of the best ask, or None."""
        asks = self._sides[SELL]
        if not asks:
            return None
        price, level = asks.peekitem(0)
        return price, level.total

    def depth(self, side: int, levels: int | None = None) -> list[tuple[int, int]]:
        """(price, aggregate qty) per level of one side, best first."""
        book = self._sides[side]
        prices = reversed(book.keys()) if side == BUY else iter(book.keys())
        out: list[tuple[int, int]] = []
        for price in prices:
            if levels is not None and len(out) >= levels:
                break
            out.append((price, book[price].total))
        return out

    def order(self, order_id: int) -> tuple[int, int, int, int, int] | None:
        """(order_id, owner, side, price, open qty) of an open order, or None."""
        order = self._orders.get(order_id)
        if order is None:
            return None
        return (order.order_id, order.owner, order.side, order.price, order.qty)

    def orders(self) -> list[tuple[int, int, int, int, int]]:
        """Every open order as (order_id, owner, side, price, open qty): bids then asks,
        each side best price first, each level in time priority."""
        out = []
        for side in (BUY, SELL):
            book = self._sides[side]
            prices = reversed(book.keys()) if side == BUY else iter(book.keys())
            for price in prices:
                for o in book[price].orders.values():
                    out.append((o.order_id, o.owner, o.side, o.price, o.qty))
        return out

    def export_orders(self) -> list[tuple[int, int, int, int, int, bool, int]]:
        """Every open order as (order_id, owner, side, price, open qty, post_only, stp), in
        the order of ``orders()``: enough, with the counters, to rebuild the book."""
        return [
            (o.order_id, o.owner, o.side, o.price, o.qty, bool(o.post_only), o.stp)
            for o in (self._orders[record[0]] for record in self.orders())
        ]

    @property
    def last_trade_id(self) -> int:
        """The id of the last trade this book printed (0 before any)."""
        return self._last_trade_id

    def restore(
        self, orders: list[tuple[int, int, int, int, int, bool, int]], seq: int, last_trade_id: int
    ) -> None:
        """Rebuild an empty book from ``export_orders()`` output and its counters; each
        owner's cancel-all order becomes ascending order id (see OrderBook.restore)."""
        if self._orders:
            raise ValueError("restore needs an empty book")
        self._touched = {}
        for order_id, owner, side, price, qty, post_only, stp in orders:
            _check_enums(side, OrderType.LIMIT, TimeInForce.GTC, stp)
            if order_id in self._orders or qty <= 0 or price <= 0:
                raise ValueError(f"bad order record {order_id}")
            if self._crosses(side, price):
                raise ValueError(f"order {order_id} would cross the book")
            order = _Order(order_id, owner, side, price, qty, post_only, stp)
            self._orders[order_id] = order
            self._link_to_level(order)
        for order_id in sorted(self._orders):
            self._by_owner.setdefault(self._orders[order_id].owner, {})[order_id] = None
        self._touched = {}
        self._seq = seq
        self._last_trade_id = last_trade_id

    def owner_orders(self, owner: int) -> list[int]:
        """The owner's open order ids, in the order they were accepted."""
        return list(self._by_owner.get(owner, ()))

    def check_integrity(self) -> None:
        """Raise BookIntegrityError if any invariant of the book is broken."""
        bid, ask = self.best_bid(), self.best_ask()
        if bid is not None and ask is not None and bid[0] >= ask[0]:
            raise BookIntegrityError(f"book is crossed: bid {bid[0]} >= ask {ask[0]}")
        seen = 0
        for side in (BUY, SELL):
            for price, level in self._sides[side].items():
                if not level.orders:
                    raise BookIntegrityError(f"empty level left at {price}")
                total = 0
                for o in level.orders.values():
                    if o.qty <= 0 or o.price != price or o.side != side:
                        raise BookIntegrityError(f"order {o.order_id} misplaced or empty")
                    total += o.qty
                if total != level.total:
                    raise BookIntegrityError(
                        f"level {price}: aggregate {level.total} != sum of orders {total}"
                    )
                seen += len(level.orders)
        if seen != len(self._orders):
            raise BookIntegrityError(f"{len(self._orders)} orders indexed, {seen} on levels")
        owned = sum(len(ids) for ids in self._by_owner.values())
        if owned != len(self._orders):
            raise BookIntegrityError(f"{owned} orders by owner, {len(self._orders)} open")

    # -- matching ------------------------------------------------------------------------

    def _place_reject_code(
        self,
        order_id: int,
        side: int,
        price: int,
        qty: int,
        order_type: int,
        tif: int,
        post_only: bool,
    ) -> int:
        if order_id in self._orders:
            return reject.DUPLICATE_ORDER_ID
        if qty <= 0:
            return reject.INVALID_QTY
        if price < 0 or (price == 0 and order_type == OrderType.LIMIT):
            return reject.INVALID_PRICE
        if order_type == OrderType.MARKET and tif == TimeInForce.GTC:
            return reject.INVALID_TIF
        if post_only and (order_type == OrderType.MARKET or tif != TimeInForce.GTC):
            return reject.INVALID_TIF
        if post_only and self._crosses(side, price):
            return reject.POST_ONLY_WOULD_TRADE
        return 0

    def _crosses(self, side: int, price: int) -> bool:
        """Would an order on ``side`` with limit ``price`` (0 = none) meet the opposite best?"""
        best = self.best_ask() if side == BUY else self.best_bid()
        return best is not None and _price_ok(side, price, best[0])

    def _makers(self, side: int, price: int) -> Iterator[_Order]:
        """Resting orders an incoming order would meet, in price-time priority (read-only:
        the book must not change while this is iterated)."""
        opposite = self._sides[1 - side]
        limit = price or None
        if side == BUY:
            prices = opposite.irange(maximum=limit)
        else:
            prices = opposite.irange(minimum=limit, reverse=True)
        for level_price in prices:
            yield from opposite[level_price].orders.values()

    def _fillable(self, owner: int, side: int, price: int, qty: int, stp: int) -> int:
        """How much a FOK order could fill right now, self-trade prevention included."""
        total = 0
        for maker in self._makers(side, price):
            if maker.owner == owner and stp != SelfTradePrevention.NONE:
                if stp == SelfTradePrevention.CANCEL_OLDEST:
                    continue  # would be canceled, not traded with
                break  # matching would stop here
            total += maker.qty
            if total >= qty:
                break
        return total

    def _execute(self, taker: _Order, rests: bool, events: list[Event]) -> None:
        """Match ``taker`` (already indexed, not on a level) and rest, expire or cancel the rest."""
        opposite = self._sides[1 - taker.side]
        best_index = 0 if taker.side == BUY else -1
        canceled_by_stp = False
        while taker.qty > 0 and opposite:
            level_price, level = opposite.peekitem(best_index)
            if not _price_ok(taker.side, taker.price, level_price):
                break
            maker = next(iter(level.orders.values()))
            if maker.owner == taker.owner and taker.stp != SelfTradePrevention.NONE:
                if taker.stp in (
                    SelfTradePrevention.CANCEL_OLDEST,
                    SelfTradePrevention.CANCEL_BOTH,
                ):
                    events.append(OrderCanceled(maker.order_id, maker.qty, "self_trade"))
                    self._remove(maker)
                if taker.stp in (
                    SelfTradePrevention.CANCEL_NEWEST,
                    SelfTradePrevention.CANCEL_BOTH,
                ):
                    canceled_by_stp = True
                    break
                continue
            fill = min(taker.qty, maker.qty)
            self._last_trade_id += 1
            events.append(
                Trade(
                    self._last_trade_id,
                    maker.price,
                    fill,
                    maker.order_id,
                    taker.order_id,
                    SIDE_NAMES[taker.side],
                )
            )
            self._touch(maker.side, maker.price)
            maker.qty -= fill
            taker.qty -= fill
            level.total -= fill
            events.append(
                OrderFilled(maker.order_id, taker.order_id, maker.price, fill, maker.qty, "maker")
            )
            events.append(
                OrderFilled(taker.order_id, maker.order_id, maker.price, fill, taker.qty, "taker")
            )
            if maker.qty == 0:
                self._remove(maker)
        if taker.qty == 0:
            self._forget(taker)
        elif canceled_by_stp:
            events.append(OrderCanceled(taker.order_id, taker.qty, "self_trade"))
            self._forget(taker)
        elif rests:
            self._link_to_level(taker)
        else:
            events.append(OrderExpired(taker.order_id, taker.qty))
            self._forget(taker)

    # -- bookkeeping ---------------------------------------------------------------------

    def _touch(self, side: int, price: int) -> None:
        """Remember a level's aggregate before this command first changes it."""
        key = (side, price)
        if key not in self._touched:
            level = self._sides[side].get(price)
            self._touched[key] = level.total if level is not None else 0

    def _link_to_level(self, order: _Order) -> None:
        self._touch(order.side, order.price)
        book = self._sides[order.side]
        level = book.get(order.price)
        if level is None:
            level = book[order.price] = _Level()
        level.orders[order.order_id] = order
        level.total += order.qty

    def _unlink_from_level(self, order: _Order) -> None:
        self._touch(order.side, order.price)
        book = self._sides[order.side]
        level = book[order.price]
        del level.orders[order.order_id]
        level.total -= order.qty
        if not level.orders:
            del book[order.price]

    def _forget(self, order: _Order) -> None:
        del self._orders[order.order_id]
        owned = self._by_owner[order.owner]
        del owned[order.order_id]
        if not owned:
            del self._by_owner[order.owner]

    def _remove(self, order: _Order) -> None:
        self._unlink_from_level(order)
        self._forget(order)

    def _emit_levels(self, events: list[Event]) -> None:
        changed = []
        for (side, price), before in self._touched.items():
            level = self._sides[side].get(price)
            after = level.total if level is not None else 0
            if after != before:
                changed.append((side, price, after))
        if changed:
            self._seq += 1
            for side, price, qty in changed:
                events.append(BookLevel(SIDE_NAMES[side], price, qty, self._seq))


def _price_ok(side: int, limit: int, level_price: int) -> bool:
    """Does a resting price satisfy an incoming order's limit (0 = no limit)?"""
    if limit == 0:
        return True
    return level_price <= limit if side == BUY else level_price >= limit


def _check_enums(side: int, order_type: int, tif: int, stp: int) -> None:
    """Out-of-range enumerations are a caller's bug, not a client's: raise."""
    Side(side)
    OrderType(order_type)
    TimeInForce(tif)
    SelfTradePrevention(stp)
