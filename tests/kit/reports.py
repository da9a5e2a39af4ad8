"""Engine reports built by hand, for tests of what reads them (answers, history): a resting
limit buy of ``alice`` on BTC-KZT and a taker fill of it, with any field overridden."""

from __future__ import annotations

from typing import Any

from engine.reports import FillReport, OrderReport


def order_report(**fields: Any) -> OrderReport:
    """An ``OrderReport``: by default a new limit buy resting whole (its fields overridden
    by ``fields``)."""
    values: dict[str, Any] = {
        "ts": 1_700_000_000_000,
        "participant_id": "alice",
        "market": "BTC-KZT",
        "order_id": 42,
        "client_order_id": None,
        "side": "buy",
        "order_type": "limit",
        "price": 4_500_000_000,
        "qty": 150_000,
        "filled_qty": 0,
        "remaining_qty": 150_000,
        "status": "new",
    }
    values.update(fields)
    return OrderReport(**values)


def fill_report(**fields: Any) -> FillReport:
    """A ``FillReport``: by default a taker fill of a third of ``order_report()``'s buy
    (its fields overridden by ``fields``)."""
    values: dict[str, Any] = {
        "ts": 1_700_000_000_001,
        "participant_id": "alice",
        "market": "BTC-KZT",
        "order_id": 42,
        "client_order_id": None,
        "side": "buy",
        "trade_id": 7,
        "fill_price": 4_499_999_900,
        "fill_qty": 50_000,
        "fee": 2_250,
        "fee_asset": "KZT",
        "liquidity": "taker",
        "filled_qty": 50_000,
        "remaining_qty": 100_000,
        "status": "partially_filled",
    }
    values.update(fields)
    return FillReport(**values)
