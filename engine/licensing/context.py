"""What a check sees: one new order with everything the chain needs to decide on it.

The exchange builds an ``OrderContext`` for every new order (and every amend that raises
exposure) and hands it to ``CheckChain.evaluate``.  The checks only read it: they reserve
nothing and keep no state, so the same context always gets the same decision, which is what a
journal replay relies on.  The exchange does the accounting the context reports in ``usage``
and the ``funds_*`` fields (see ``docs/licensing.md``).

Units: ``ts`` in ms since the epoch; ``price``, ``notional`` and every ``usage`` amount in
tiyn (quote minor units of a KZT market); ``qty`` in base minor units; ``funds_required`` /
``funds_available`` in minor units of ``funds_asset``.
"""

from __future__ import annotations

import msgspec

from ..markets import Market
from ..types import OrderType, Side, TimeInForce
from .profiles import Profile
from .records import License, Participant
from .registry import Registry

__all__ = ["OrderContext", "ParticipantUsage"]


class ParticipantUsage(msgspec.Struct, frozen=True, kw_only=True):
    """The capacity a participant already uses, as the exchange's accounting keeps it.

    Amounts in tiyn.  For an amend, the exchange leaves the amended order's own current
    reservation out, so the checks see the order as if it were new.
    """

    open_orders: int = 0  # orders resting on the books now
    daily_notional: int = 0  # tiyn reserved by open orders + filled, this Almaty day
    monthly_retail_buys: int = 0  # tiyn of buys reserved + filled, this Almaty calendar month


NO_USAGE = ParticipantUsage()


class OrderContext(msgspec.Struct, frozen=True, kw_only=True):
    """One order as the check chain sees it.  Built by the exchange; read-only."""

    ts: int  # the command's time, ms since the epoch (the engine reads no clock)
    profile: Profile  # the chain's profile (CheckChain.profile): the checks' parameters
    registry: Registry  # the registry as of this command
    participant_id: str  # as sent; may name no participant
    participant: Participant | None  # registry.participant(participant_id)
    license: License | None  # registry.license_for(participant): the one it trades under
    venue_license: License | None  # registry.venue_license
    market_symbol: str  # as sent; may name no market
    market: Market | None  # None when the symbol is unknown
    side: Side
    order_type: OrderType
    tif: TimeInForce
    post_only: bool = False
    price: int | None  # tiyn; None for a market order
    qty: int  # base minor units
    notional: int  # KZT notional in tiyn, rounded up; a market order's at the band's worst price
    usage: ParticipantUsage = NO_USAGE
    funds_asset: str  # quote asset for a buy, base asset for a sell
    funds_required: int  # minor units of funds_asset: quote + max fee (buy), base qty (sell)
    funds_available: int  # minor units of funds_asset, not held by other orders
    amend: bool = False  # an amend that raises exposure: the order is already open
