"""A seeded random command stream for the exchange, and the venue it runs on.

``random_command`` draws the next command (deposits, withdrawals, cancels and amends of the
stream's open orders, cancel-alls, and limit or market places of every time in force and
self-trade prevention) from ``rnd``; the caller keeps ``open_orders`` (participant, market,
order id) from the reports.  The soak benchmark (``benchmarks/soak_exchange.py``) runs the
same stream with every invariant checked after each command.
"""

from __future__ import annotations

import random

from engine.commands import (
    AmendOrder,
    CancelAll,
    CancelOrder,
    Command,
    Deposit,
    PlaceOrder,
    Withdraw,
)
from engine.exchange import Exchange
from engine.types import OrderType, SelfTradePrevention, Side, TimeInForce
from tests.kit.venues import licensed_venue

__all__ = ["MARKETS", "PARTICIPANTS", "random_command", "soak_venue"]

PARTICIPANTS = [f"p{i}" for i in range(8)]
MARKETS = {
    # symbol: (reference tiyn, price step tiyn, lot units, assets)
    "BTC-KZT": (4_500_000_000, 100_00, 1000, ("BTC", 10**8)),
    "USDT-KZT": (51_500, 10, 1_000_000, ("USDT", 10**6)),
}


def soak_venue() -> Exchange:
    """The soak's venue: ``licensed_venue`` with the soak's participants."""
    return licensed_venue(PARTICIPANTS)


def random_command(rnd: random.Random, ts: int, open_orders: list[tuple[str, str, int]]) -> Command:
    who = rnd.choice(PARTICIPANTS)
    roll = rnd.random()
    if roll < 0.04:
        asset, unit = rnd.choice([("KZT", 100), ("BTC", 10**8), ("USDT", 10**6)])
        return Deposit(ts=ts, participant_id=who, asset=asset, amount=rnd.randint(1, 1000) * unit)
    if roll < 0.06:
        asset = rnd.choice(["KZT", "BTC", "USDT"])
        return Withdraw(ts=ts, participant_id=who, asset=asset, amount=rnd.randint(1, 10**10))
    if roll < 0.25 and open_orders:
        who, symbol, order_id = rnd.choice(open_orders)
        return CancelOrder(ts=ts, participant_id=who, market=symbol, order_id=order_id)
    if roll < 0.35 and open_orders:
        who, symbol, order_id = rnd.choice(open_orders)
        reference, step, lot, _ = MARKETS[symbol]
        return AmendOrder(
            ts=ts,
            participant_id=who,
            market=symbol,
            order_id=order_id,
            price=rnd.choice([None, reference + rnd.randint(-30, 30) * step]),
            qty=rnd.randint(1, 80) * lot,
        )
    if roll < 0.37:
        return CancelAll(ts=ts, participant_id=who, side=rnd.choice([None, Side.BUY, Side.SELL]))
    symbol = rnd.choice(list(MARKETS))
    reference, step, lot, _ = MARKETS[symbol]
    is_market = rnd.random() < 0.1
    tif = (
        rnd.choice([TimeInForce.IOC, TimeInForce.FOK])
        if is_market
        else rnd.choice(
            [TimeInForce.GTC, TimeInForce.GTC, TimeInForce.GTC, TimeInForce.IOC, TimeInForce.FOK]
        )
    )
    return PlaceOrder(
        ts=ts,
        participant_id=who,
        market=symbol,
        side=rnd.choice([Side.BUY, Side.SELL]),
        order_type=OrderType.MARKET if is_market else OrderType.LIMIT,
        price=None if is_market else reference + rnd.randint(-30, 30) * step,
        qty=rnd.randint(1, 60) * lot,
        tif=tif,
        post_only=not is_market and tif == TimeInForce.GTC and rnd.random() < 0.1,
        stp=rnd.choice(list(SelfTradePrevention)[1:]),
    )
