"""Soak the exchange: many seeded random commands, the ledger invariants checked after each.

    python -m benchmarks.soak_exchange --commands 100000 --seed 7

Prints what the stream did (orders, trades, rejects by code) and the result of every
invariant check: asset conservation, no negative balance, holds equal what open orders
need, book integrity.  Exits non-zero at the first broken invariant, naming the command.

The stream (``random_command``) and its venue (``soak_venue``) are the tests' kit
(``tests.kit.commands``), which the property tests run too.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections import Counter

from engine.errors import BookIntegrityError
from engine.reports import CommandRejected, FillReport, OrderReport, TradePrinted
from tests.kit.commands import random_command, soak_venue


def soak(commands: int, seed: int, out=sys.stdout) -> Counter[str]:
    """Run the soak; return the counters.  Raises AssertionError on a broken invariant."""
    rnd = random.Random(seed)
    exchange = soak_venue()
    open_orders: list[tuple[str, str, int]] = []
    stats: Counter[str] = Counter()
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
                if report.status == "rejected":
                    stats[f"reject {report.reason}"] += 1
                    continue
                assert report.order_id is not None  # only a rejected order has none
                key = (report.participant_id, report.market, report.order_id)
                if report.status == "new":
                    open_orders.append(key)
                elif report.status in ("filled", "canceled", "expired") and key in open_orders:
                    open_orders.remove(key)
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
