"""What goes into the exchange: commands, one at a time, in sequence order.

Every change of state, an order or an operator's action, is one of these Structs.  They
carry their own timestamp (``ts``, milliseconds since the epoch, stamped by the gateway)
because the engine reads no clock: the same commands in the same order always give the
same events and state, which is what the journal and its replay rely on.

Prices and quantities are integers in the market's minor units (tiyn, satoshi, ...): the
gateway parses the wire's decimal strings with ``engine.markets`` before building these.
"""

from __future__ import annotations

import msgspec

from .licensing.records import License, Participant
from .types import OrderType, SelfTradePrevention, Side, TimeInForce


class PlaceOrder(msgspec.Struct, tag="place", frozen=True, kw_only=True):
    ts: int
    participant_id: str
    market: str
    side: Side
    qty: int  # base minor units
    order_type: OrderType = OrderType.LIMIT
    price: int | None = None  # tiyn; None for a market order
    tif: TimeInForce = TimeInForce.GTC
    post_only: bool = False
    stp: SelfTradePrevention = SelfTradePrevention.CANCEL_NEWEST
    client_order_id: str | None = None


class CancelOrder(msgspec.Struct, tag="cancel", frozen=True, kw_only=True):
    """Cancel by ``order_id`` or by ``client_order_id`` (one of them)."""

    ts: int
    participant_id: str
    market: str
    order_id: int | None = None
    client_order_id: str | None = None
    reason: str = "user"  # or "disconnect": shown to the client


class AmendOrder(msgspec.Struct, tag="amend", frozen=True, kw_only=True):
    """New ``qty`` is the new total order quantity (filled part included); either may be
    None to keep it."""

    ts: int
    participant_id: str
    market: str
    order_id: int | None = None
    client_order_id: str | None = None
    price: int | None = None
    qty: int | None = None


class CancelAll(msgspec.Struct, tag="cancel_all", frozen=True, kw_only=True):
    ts: int
    participant_id: str
    market: str | None = None
    side: Side | None = None
    reason: str = "cancel_all"  # or "disconnect", "dead_man_switch": shown to the client


class Deposit(msgspec.Struct, tag="deposit", frozen=True, kw_only=True):
    ts: int
    participant_id: str
    asset: str
    amount: int  # the asset's minor units


class Withdraw(msgspec.Struct, tag="withdraw", frozen=True, kw_only=True):
    ts: int
    participant_id: str
    asset: str
    amount: int


class SetMarket(msgspec.Struct, tag="market", frozen=True, kw_only=True):
    """Halt or open a market and/or set its reference price (tiyn)."""

    ts: int
    market: str
    status: str | None = None  # "open" / "halted"
    reference_price: int | None = None


class SetLicense(msgspec.Struct, tag="license", frozen=True, kw_only=True):
    """Add or replace a licence (suspend, revoke, renew: a new record with the same id)."""

    ts: int
    license: License


class SetParticipant(msgspec.Struct, tag="participant", frozen=True, kw_only=True):
    """Add or replace a participant (category, KYC, status, licence, limits)."""

    ts: int
    participant: Participant


Command = (
    PlaceOrder
    | CancelOrder
    | AmendOrder
    | CancelAll
    | Deposit
    | Withdraw
    | SetMarket
    | SetLicense
    | SetParticipant
)
