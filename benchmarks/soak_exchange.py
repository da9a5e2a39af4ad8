"""Soak the exchange: many seeded random commands, the ledger invariants checked after each.

    python -m benchmarks.soak_exchange --commands 100000 --seed 7

Prints what the stream did (orders, trades, rejects by code) and the result of every
invariant check: asset conservation, no negative balance, holds equal what open orders
need, book integrity.  Exits non-zero at the first broken invariant, naming the command.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections import Counter
from collections.abc import Iterable

from engine.commands import (
    AmendOrder,
    CancelAll,
    CancelOrder,
    Command,
    Deposit,
    PlaceOrder,
    Withdraw,
)
from engine.errors import BookIntegrityError
from engine.exchange import Exchange
from engine.licensing import CheckChain, License, Participant, Registry
from engine.markets import load_markets
from engine.reports import CommandRejected, FillReport, OrderReport, TradePrinted
from engine.types import OrderType, SelfTradePrevention, Side, TimeInForce

PARTICIPANTS = [f"p{i}" for i in range(8)]
MARKETS = {
    # symbol: (reference tiyn, price step tiyn, lot units, assets)
    "BTC-KZT": (4_500_000_000, 100_00, 1000, ("BTC", 10**8)),
    "USDT-KZT": (51_500, 10, 1_000_000, ("USDT", 10**6)),
}


VENUE_LICENSE = License(
    license_id="VENUE",
    regulator="NBK",
    number="SOAK-0001",
    activities="*",
    markets="*",
    valid_from="2026-01-01",
    valid_to="2030-12-31",
    status="ACTIVE",
)


def licensed_venue(participants: Iterable[str], profile: str = "ALATAU") -> Exchange:
    """The default markets and a chain of ``profile``, with resident professional clients
    (full KYC, no limits of their own) trading under an active venue licence."""
    clients = [
        Participant(participant_id=p, category="PROFESSIONAL", residency="KZ", kyc_level=3)
        for p in participants
    ]
    registry = Registry("VENUE", [VENUE_LICENSE], clients)
    return Exchange(load_markets(), registry, CheckChain(profile))


def soak_venue() -> Exchange:
    """The soak's venue: ``licensed_venue`` with the soak's participants."""
    return licensed_venue(PARTICIPANTS)


def random_command(rnd: random.Random, ts: int, open_orders: list) -> Command:
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


def soak(commands: int, seed: int, out=sys.stdout) -> Counter:
    """Run the soak; return the counters.  Raises AssertionError on a broken invariant."""
    rnd = random.Random(seed)
    exchange = soak_venue()
    open_orders: list[tuple[str, str, int]] = []
    stats: Counter = Counter()
    ts = 1_790_000_000_000
    for index in range(commands):
        ts += rnd.randint(0, 5)
        command = random_command(rnd, ts, open_orders)
        stats[type(command).__name__] += 1
        for report in exchange.execute(command):
            if isinstance(report, TradePrinted):
                stats["trades"] += 1
            elif isinstance(report, FillReport):
                stats["fees_charged"] += report.fee
            elif isinstance(report, OrderReport):
                key = (report.participant_id, report.market, report.order_id)
                if report.status == "new":
                    open_orders.append(key)
                elif report.status in ("filled", "canceled", "expired") and key in open_orders:
                    open_orders.remove(key)
                if report.status == "rejected":
                    stats[f"reject {report.reason}"] += 1
            elif isinstance(report, CommandRejected):
                stats[f"reject {report.code}"] += 1
        try:
            exchange.check_integrity()
        except BookIntegrityError as exc:
            raise AssertionError(f"after command {index} ({command!r}): {exc}") from exc
        stats["invariant checks passed"] += 1
    return stats


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--commands", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    try:
        stats = soak(args.commands, args.seed)
    except AssertionError as exc:
        print(f"INVARIANT BROKEN {exc}")
        return 1
    elapsed = time.perf_counter() - started
    print(f"soak: {args.commands} commands, seed {args.seed}, {elapsed:.1f} s")
    for key, value in sorted(stats.items()):
        print(f"  {key:40} {value}")
    print("all invariants held after every command: conservation per asset, no negative")
    print("balance, holds equal open orders' needs, book integrity")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
