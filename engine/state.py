"""The exchange's whole state as one value: for snapshots, recovery and state digests.

``capture(exchange)`` returns an ``ExchangeState`` (msgspec Structs, so it encodes to
msgpack as is); ``rebuild(state, chain)`` makes an ``Exchange`` that behaves exactly like
the one captured: the same books with the same time priority, balances and holds, open
orders with what they have paid, usage counters, registry, market statuses and reference
prices, and every sequence number (order ids, book ``seq``, trade ids).  The check chain is
configuration, not state: it comes from the venue file at start.

``digest(exchange)`` is a SHA-256 of the captured state in a canonical order: two exchanges
with the same digest are in the same state.  Recovery tests compare it before a crash and
after the restart.

The time of the last command (``ts``) is kept in the state but left out of the digest: a
command that is rejected moves the exchange's clock and changes nothing else.
"""

from __future__ import annotations

import hashlib
import operator
from typing import Any

import msgspec

from .exchange import Exchange
from .licensing import CheckChain, License, Participant, Registry
from .markets import Market

STATE_VERSION = 1


Wide = int | str
"""An integer that may outgrow 64 bits, which msgpack cannot hold: a decimal string when it
does (``wide``/``narrow``).  The settlement accumulators are sums of price x qty (x fee
rate) in sub-unit precision: a taker buy of 1 BTC at 45,000,000 KZT that rests after a
partial fill already has a ``fee_num`` of 4.5e20, and a snapshot holding it as a plain
integer failed.  Balances need no such care: deposits are bounded (``MAX_ASSET_UNITS``)."""

_INT64 = 2**63


def wide(value: int) -> Wide:
    return value if -_INT64 <= value < _INT64 else str(value)


def narrow(value: Wide) -> int:
    return value if type(value) is int else int(value)


class BookState(msgspec.Struct, array_like=True):
    market: str
    seq: int
    last_trade_id: int
    orders: list[tuple[int, int, int, int, int, bool, int]]


class OrderState(msgspec.Struct, array_like=True, gc=False):
    """One open order (``gc=False``: strings and integers only; a snapshot makes one per
    open order, and tracking them would set the collector scanning mid-snapshot)."""

    order_id: int
    participant_id: str
    market: str
    side: int
    order_type: int
    limit: int
    qty: int
    filled_qty: int
    client_order_id: str | None
    hold_asset: str
    hold: int
    paid: int
    fee_paid: int
    spent_num: Wide
    fee_num: Wide
    usage_notional: Wide
    counts_retail: bool
    day: int
    month: int


class UsageState(msgspec.Struct, array_like=True):
    participant_id: str
    open_orders: int
    day: int
    daily_notional: Wide
    month: int
    monthly_retail_buys: Wide


class ExchangeState(msgspec.Struct):
    version: int
    ts: int
    next_order_id: int
    markets: list[Market]
    last_price: list[tuple[str, int]]
    venue_license_id: str
    licenses: list[License]
    participants: list[Participant]
    balances: list[tuple[str, str, int, int]]  # account, asset, total, held
    net_deposits: list[tuple[str, int]]
    owner_numbers: list[tuple[str, int]]
    usage: list[UsageState]
    orders: list[OrderState]
    books: list[BookState]


_ORDER_FIELDS = tuple(OrderState.__struct_fields__)
# One C call reads an order's fields in OrderState's order: a snapshot runs this on every
# open order while the venue waits, so it must not build a dict per order.
_order_fields = operator.attrgetter(*_ORDER_FIELDS)
_WIDE_ORDER_FIELDS = ("spent_num", "fee_num", "usage_notional")


def _order_state(order: Any) -> OrderState:
    state = OrderState(*_order_fields(order))
    # Fresh from the order, these are ints; most orders are far from 64 bits.
    if max(state.spent_num, state.fee_num, state.usage_notional) >= _INT64:  # type: ignore[operator]
        for name in _WIDE_ORDER_FIELDS:
            setattr(state, name, wide(getattr(state, name)))
    return state


def capture(exchange: Exchange) -> ExchangeState:
    """The exchange's whole state, in a canonical order."""
    registry = exchange.registry
    ledger = exchange.ledger
    orders = exchange._orders
    return ExchangeState(
        version=STATE_VERSION,
        ts=exchange._ts,
        next_order_id=exchange._next_order_id,
        markets=[exchange.markets[s] for s in sorted(exchange.markets)],
        last_price=sorted(exchange.last_price.items()),
        venue_license_id=registry.venue_license_id,
        licenses=[registry.licenses[k] for k in sorted(registry.licenses)],
        participants=[registry.participants[k] for k in sorted(registry.participants)],
        balances=ledger.accounts(),
        net_deposits=[(asset, ledger.net_deposits(asset)) for asset in ledger.assets()],
        owner_numbers=sorted(exchange._owner_numbers.items()),
        usage=[
            UsageState(
                participant_id=p,
                open_orders=u.open_orders,
                day=u.day,
                daily_notional=wide(u.daily_notional),
                month=u.month,
                monthly_retail_buys=wide(u.monthly_retail_buys),
            )
            for p, u in sorted(exchange._usage.items())
        ],
        orders=[_order_state(orders[k]) for k in sorted(orders)],
        books=[
            BookState(
                market=symbol,
                seq=book.seq,
                last_trade_id=book.last_trade_id,
                orders=book.export_orders(),
            )
            for symbol, book in sorted(exchange.books.items())
        ],
    )


def rebuild(
    state: ExchangeState,
    chain: CheckChain,
    *,
    exchange_type: type[Exchange] | None = None,
    **exchange_options: Any,
) -> Exchange:
    """An exchange in exactly the captured state (see the module docstring).

    ``exchange_type``: the reference ``Exchange`` or ``engine.compiled.CompiledExchange``;
    by default the one ``engine.compiled.exchange_type()`` names (the compiled one unless
    ``ALATAU_EXCHANGE=python``), as the gateway builds a fresh one.  Either reads what
    either captured: the state is the same."""
    if state.version != STATE_VERSION:
        raise ValueError(f"state version {state.version}, this engine reads {STATE_VERSION}")
    if exchange_type is None:
        from .compiled import exchange_type as default_type

        exchange_type = default_type()
    registry = Registry(state.venue_license_id, state.licenses, state.participants)
    exchange = exchange_type(
        {m.symbol: m for m in state.markets}, registry, chain, **exchange_options
    )
    exchange._ts = state.ts
    exchange._next_order_id = state.next_order_id
    exchange.last_price = dict(state.last_price)
    ledger = exchange.ledger
    for account, asset, total, held in state.balances:
        ledger._balances[(account, asset)] = [total, held]
    ledger._net_deposits = dict(state.net_deposits)
    ledger.drain_changed()
    exchange._owner_numbers = dict(state.owner_numbers)
    for u in state.usage:
        usage = exchange._USAGE_RECORD()
        usage.open_orders, usage.day = u.open_orders, u.day
        usage.daily_notional = narrow(u.daily_notional)
        usage.month, usage.monthly_retail_buys = u.month, narrow(u.monthly_retail_buys)
        exchange._usage[u.participant_id] = usage
    for o in state.orders:
        fields = {name: getattr(o, name) for name in _ORDER_FIELDS}
        for name in _WIDE_ORDER_FIELDS:
            fields[name] = narrow(fields[name])
        order = exchange._ORDER_RECORD(**fields)
        exchange._orders[order.order_id] = order
        if order.client_order_id is not None:
            exchange._by_client_id[(order.participant_id, order.client_order_id)] = order.order_id
    for book_state in state.books:
        exchange.books[book_state.market].restore(
            book_state.orders, book_state.seq, book_state.last_trade_id
        )
    exchange._license_deadline = exchange._next_license_deadline()
    return exchange


_encoder = msgspec.msgpack.Encoder()


def digest(exchange: Exchange) -> str:
    """SHA-256 (hex) of the exchange's state in canonical form (``ts`` left out)."""
    state = msgspec.structs.replace(capture(exchange), ts=0)
    return hashlib.sha256(_encoder.encode(state)).hexdigest()
