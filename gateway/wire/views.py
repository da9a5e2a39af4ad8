"""Engine reports as wire objects: integers become the market's exact decimal strings.

Pure functions, no I/O.  Field names follow ``docs/protocol.md``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

import msgspec

from engine.fixedpoint import format_units, parse_units
from engine.markets import Market
from engine.reports import FillReport, OrderReport, TradePrinted

REMEMBERED_PER_SCALE = 65_536
"""Entries per scale in the tables below; a full table is emptied, so memory stays bounded
whatever values come."""

_texts: dict[int, dict[int, str]] = {}
_units: dict[int, dict[str, int]] = {}


def decimal_text(units: int, scale: int) -> str:
    """``format_units(units, scale)``, remembered per scale.

    Every answer and stream message formats several prices and quantities, and on a live
    market the same few hundred prices and lot multiples come up again and again: a dict
    lookup is about four times cheaper than formatting.  (A plain function with module
    tables: on the hot path a call to an instance's ``__call__`` costs noticeably more.)"""
    table = _texts.get(scale)
    if table is None:
        table = _texts[scale] = {}
    text = table.get(units)
    if text is None:
        if len(table) >= REMEMBERED_PER_SCALE:
            table.clear()
        text = table[units] = format_units(units, scale)
    return text


def units_of(text: str, scale: int, field: str) -> int:
    """``parse_units(text, scale, field=field)``, remembered per scale: the inverse of
    ``decimal_text``, for the prices and quantities of incoming orders.  Only strings that
    parse are remembered; a bad one raises ``NumberFormatError`` every time (its message
    names ``field``)."""
    table = _units.get(scale)
    if table is None:
        table = _units[scale] = {}
    units = table.get(text)
    if units is None:
        units = parse_units(text, scale, field=field)
        if len(table) >= REMEMBERED_PER_SCALE:
            table.clear()
        table[text] = units
    return units


def asset_scales(markets: Mapping[str, Market]) -> dict[str, int]:
    """Decimals of every traded asset, from the markets that trade it."""
    scales: dict[str, int] = {}
    for market in markets.values():
        scales[market.base] = market.base_scale
        scales[market.quote] = market.quote_scale
    return scales


def market_view(market: Market, reference_price: int | None) -> dict[str, Any]:
    return {
        "symbol": market.symbol,
        "base": market.base,
        "quote": market.quote,
        "tick": market.format_price(market.tick),
        "lot": market.format_qty(market.lot),
        "min_qty": market.format_qty(market.min_qty),
        "min_notional": market.format_price(market.min_notional),
        "band_bps": market.band_bps,
        "maker_fee_ppm": market.maker_fee_ppm,
        "taker_fee_ppm": market.taker_fee_ppm,
        "reference_price": None
        if reference_price is None
        else market.format_price(reference_price),
        "status": market.status,
    }


def order_view(report: OrderReport, market: Market) -> dict[str, Any]:
    view: dict[str, Any] = {
        "type": "order",
        "order_id": report.order_id,
        "client_order_id": report.client_order_id,
        "market": report.market,
        "side": report.side,
        "order_type": report.order_type,
        "price": None if report.price is None else decimal_text(report.price, market.quote_scale),
        "qty": decimal_text(report.qty, market.base_scale),
        "filled_qty": decimal_text(report.filled_qty, market.base_scale),
        "remaining_qty": decimal_text(report.remaining_qty, market.base_scale),
        "status": report.status,
        "ts": report.ts,
    }
    if report.reason is not None:
        view["reason"] = report.reason
    if report.message is not None:
        view["message"] = report.message
    return view


class OrderResult(msgspec.Struct, kw_only=True, omit_defaults=True):
    """An order in the answer to ``order.place``, ``order.cancel``, ``order.amend`` and their
    batches: ``order_view`` without ``type``, with the fills of this request.  A Struct, so
    msgspec encodes it without a dict being built and then emptied of ``type``: about 1 µs
    less per answer, on every order's path.  Field order and presence are the dict's."""

    order_id: int | None
    client_order_id: str | None
    market: str
    side: str
    order_type: str
    price: str | None
    qty: str
    filled_qty: str
    remaining_qty: str
    status: str
    ts: int
    reason: str | None = None
    message: str | None = None
    fills: list[dict[str, Any]]


def order_result(
    report: OrderReport, market: Market, fills: list[FillReport], after: FillReport | None = None
) -> OrderResult:
    """The order of ``report`` with ``fills``; ``after``: a fill that came after ``report``
    (a limit order that traded on entry and rests, a crossing amend), whose ``filled_qty``,
    ``remaining_qty`` and ``status`` are the order's as it stands after the command."""
    quote, base = market.quote_scale, market.base_scale
    state = report if after is None else after
    return OrderResult(
        order_id=report.order_id,
        client_order_id=report.client_order_id,
        market=report.market,
        side=report.side,
        order_type=report.order_type,
        price=None if report.price is None else decimal_text(report.price, quote),
        qty=decimal_text(report.qty, base),
        filled_qty=decimal_text(state.filled_qty, base),
        remaining_qty=decimal_text(state.remaining_qty, base),
        status=state.status,
        ts=state.ts,
        reason=report.reason,
        message=report.message,
        fills=[fill_result(fill, market) for fill in fills],
    )


def fill_result(report: FillReport, market: Market) -> dict[str, Any]:
    """``fill_view`` without ``type``: a fill in an answer's ``fills``."""
    view = fill_view(report, market)
    del view["type"]
    return view


def fill_view(report: FillReport, market: Market) -> dict[str, Any]:
    return {
        "type": "fill",
        "order_id": report.order_id,
        "client_order_id": report.client_order_id,
        "market": report.market,
        "side": report.side,
        "trade_id": report.trade_id,
        "fill_price": decimal_text(report.fill_price, market.quote_scale),
        "fill_qty": decimal_text(report.fill_qty, market.base_scale),
        "fee": decimal_text(report.fee, market.quote_scale),
        "fee_asset": report.fee_asset,
        "liquidity": report.liquidity,
        "filled_qty": decimal_text(report.filled_qty, market.base_scale),
        "remaining_qty": decimal_text(report.remaining_qty, market.base_scale),
        "status": report.status,
        "ts": report.ts,
    }


class BalanceFields(Protocol):
    """What ``balance_view`` reads: a ``BalanceReport``, or a row shaped like one."""

    @property
    def asset(self) -> str: ...
    @property
    def total(self) -> int: ...
    @property
    def available(self) -> int: ...
    @property
    def held(self) -> int: ...


def balance_view(report: BalanceFields, scale: int) -> dict[str, Any]:
    return {
        "type": "balance",
        "asset": report.asset,
        "total": format_units(report.total, scale),  # mostly unique: not remembered
        "available": format_units(report.available, scale),
        "held": format_units(report.held, scale),
    }


def trade_view(report: TradePrinted, market: Market) -> dict[str, Any]:
    return {
        "trade_id": report.trade_id,
        "price": decimal_text(report.price, market.quote_scale),
        "qty": decimal_text(report.qty, market.base_scale),
        "taker_side": report.taker_side,
        "ts": report.ts,
    }


def levels_view(levels: list[tuple[int, int]], market: Market) -> list[list[str]]:
    """[[price, qty], ...]; a level that is gone has qty ``"0"`` (the protocol's marker)."""
    return [
        [
            decimal_text(price, market.quote_scale),
            decimal_text(qty, market.base_scale) if qty else "0",
        ]
        for price, qty in levels
    ]
