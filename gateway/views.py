"""Engine reports as wire objects: integers become the market's exact decimal strings.

Pure functions, no I/O.  Field names follow ``docs/protocol.md``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from engine.fixedpoint import format_units
from engine.markets import Market
from engine.reports import BalanceReport, FillReport, OrderReport, TradePrinted


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
        "price": None if report.price is None else market.format_price(report.price),
        "qty": market.format_qty(report.qty),
        "filled_qty": market.format_qty(report.filled_qty),
        "remaining_qty": market.format_qty(report.remaining_qty),
        "status": report.status,
        "ts": report.ts,
    }
    if report.reason is not None:
        view["reason"] = report.reason
    if report.message is not None:
        view["message"] = report.message
    return view


def fill_view(report: FillReport, market: Market) -> dict[str, Any]:
    return {
        "type": "fill",
        "order_id": report.order_id,
        "client_order_id": report.client_order_id,
        "market": report.market,
        "side": report.side,
        "trade_id": report.trade_id,
        "fill_price": market.format_price(report.fill_price),
        "fill_qty": market.format_qty(report.fill_qty),
        "fee": format_units(report.fee, market.quote_scale),
        "fee_asset": report.fee_asset,
        "liquidity": report.liquidity,
        "filled_qty": market.format_qty(report.filled_qty),
        "remaining_qty": market.format_qty(report.remaining_qty),
        "ts": report.ts,
    }


def balance_view(report: BalanceReport, scale: int) -> dict[str, Any]:
    return {
        "type": "balance",
        "asset": report.asset,
        "total": format_units(report.total, scale),
        "available": format_units(report.available, scale),
        "held": format_units(report.held, scale),
    }


def trade_view(report: TradePrinted, market: Market) -> dict[str, Any]:
    return {
        "trade_id": report.trade_id,
        "price": market.format_price(report.price),
        "qty": market.format_qty(report.qty),
        "taker_side": report.taker_side,
        "ts": report.ts,
    }


def levels_view(levels: list[tuple[int, int]], market: Market) -> list[list[str]]:
    """[[price, qty], ...]; a level that is gone has qty ``"0"`` (the protocol's marker)."""
    return [
        [market.format_price(price), market.format_qty(qty) if qty else "0"]
        for price, qty in levels
    ]
