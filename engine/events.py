"""What an order book reports back: one list of events per command.

The events are msgspec Structs in a tagged union (``Event``), so the gateway and the journal
encode them without a translation layer.  Both books (the Cython core and the plain-Python
reference) must produce equal lists for equal commands; the differential tests compare them
with ``==``.

All numbers are integers: ``price`` in the quote's minor units (tiyn for KZT), ``qty`` and
``remaining_qty`` in the base asset's minor units.  ``gc=False`` because these objects hold
no references to containers: the collector never needs to visit them, which keeps pauses out
of the latency tail.

Order of events within one command (both books follow it exactly):

1. ``OrderAccepted`` / ``OrderAmended``, or a single rejection and nothing else.
2. For each resting order met, in price-time order: a self-trade cancel
   (``OrderCanceled`` with reason ``self_trade``), or ``Trade``, then the maker's
   ``OrderFilled``, then the taker's ``OrderFilled``.
3. What happens to the incoming order's rest: nothing (it rests), ``OrderExpired`` or
   ``OrderCanceled``.
4. ``BookLevel`` for every price level whose aggregate quantity the command changed, in the
   order the command first touched them, all with the same new ``seq``.
"""

from __future__ import annotations

from typing import Literal

import msgspec

SideName = Literal["buy", "sell"]
CancelReason = Literal["user", "self_trade", "cancel_all"]


class OrderAccepted(msgspec.Struct, tag="accepted", gc=False):
    """The order passed the book's checks; it trades, rests or expires next."""

    order_id: int
    side: SideName
    price: int  # tiyn; 0 for a market order without a limit
    qty: int


class OrderRejected(msgspec.Struct, tag="rejected", gc=False):
    """A new order was refused; the book did not change."""

    order_id: int
    code: str


class OrderFilled(msgspec.Struct, tag="fill", gc=False):
    """One side of one trade, from the point of view of ``order_id``."""

    order_id: int
    counter_order_id: int
    price: int  # the resting (maker) order's price
    qty: int
    remaining_qty: int  # what is left open (or unfilled) of ``order_id`` after this fill
    liquidity: Literal["maker", "taker"]


class OrderCanceled(msgspec.Struct, tag="canceled", gc=False):
    """The order left the book unfilled; ``remaining_qty`` is what was canceled."""

    order_id: int
    remaining_qty: int
    reason: CancelReason


class OrderExpired(msgspec.Struct, tag="expired", gc=False):
    """The unfilled rest of an IOC, FOK or market order."""

    order_id: int
    remaining_qty: int


class OrderAmended(msgspec.Struct, tag="amended", gc=False):
    """The order now has ``price`` and open ``qty``; ``priority_kept`` is False when it
    went to the back of the queue (price change or quantity increase)."""

    order_id: int
    price: int
    qty: int
    priority_kept: bool


class AmendRejected(msgspec.Struct, tag="amend_rejected", gc=False):
    """An amend was refused; the order and the book are as they were."""

    order_id: int
    code: str


class CancelRejected(msgspec.Struct, tag="cancel_rejected", gc=False):
    """A cancel was refused (the order is not open)."""

    order_id: int
    code: str


class Trade(msgspec.Struct, tag="trade", gc=False):
    """A trade, printed at the resting order's price."""

    trade_id: int
    price: int
    qty: int
    maker_order_id: int
    taker_order_id: int
    taker_side: SideName


class BookLevel(msgspec.Struct, tag="level", gc=False):
    """The new aggregate quantity at one price level (0: the level is gone)."""

    side: SideName
    price: int
    qty: int
    seq: int  # the book's sequence number after this command; +1 per command that changed L2


Event = (
    OrderAccepted
    | OrderRejected
    | OrderFilled
    | OrderCanceled
    | OrderExpired
    | OrderAmended
    | AmendRejected
    | CancelRejected
    | Trade
    | BookLevel
)
