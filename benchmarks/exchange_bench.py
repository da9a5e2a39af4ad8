"""The exchange benchmark: ``Exchange.execute`` per command on the gateway's hot path.

    python -m benchmarks.exchange_bench --commands 100000 --seed 7 --runs 3

The book benchmark (``engine_bench``) measures the Cython core alone; this one measures the
layer above it, which is what an end-to-end load spends most of its engine time in: the
licensing check chain, the ledger, usage accounting and the reports.  It runs both exchanges
(``--exchange both``, the default): the Python reference (``engine.exchange.Exchange``) and
the compiled one the gateway runs (``engine.compiled.CompiledExchange``), run by run in
turn on the same stream, and prints each one's figures and the ratio (the headline: the
machine is shared, and a ratio taken in one run drifts far less than either figure).  Both
must print the same checksum; ``--exchange python`` or ``compiled`` runs one.  The venue is
``tests.kit.venues.licensed_venue`` (the ALATAU chain, a venue licence, resident
PROFESSIONAL clients), 8 participants funded with far more than they can spend, and one
market, USDT-KZT.  The command mix is the one a market-making load sends:

* 55 % passive GTC limits, 1 to 50 ticks away from the reference on the resting side;
* 10 % IOC limits 2 ticks through the reference, which trade with what rests there;
* 35 % cancels of one of the sender's own open orders, picked at random.

A participant keeps at most ``MAX_OPEN`` orders open: at the cap a passive place becomes a
cancel, so once the book is full (after the warm-up) the timed mix settles at about 47 %
passive, 8.5 % IOC and 44.5 % cancels.  Which orders are open is read from the reports, so
the stream is generated while it runs; only ``Exchange.execute`` itself is timed
(``time.perf_counter_ns`` around each call).  A warm-up of ``--warmup`` commands first
fills the book to its steady state, untimed.  A default run crosses an Almaty midnight.

The checksum is a SHA-256 of the ``repr`` of every report of every command (warm-up
included) followed by the final ``engine.state.digest``: two versions of the engine that
print the same checksum for the same seed and counts behaved identically.  Figures are
medians over ``--runs`` fresh venues replaying the same seed; the checksum must be the same
for every run, and for both exchanges.

A micro-benchmark of the wire conversions follows (``Market.parse_price``, ``parse_qty``,
``format_price``, ``format_qty`` and ``engine.fixedpoint`` directly), because the gateway
calls them for every order and every report it sends.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

from benchmarks import common
from benchmarks.common import percentile
from engine.commands import CancelOrder, Command, Deposit, PlaceOrder
from engine.compiled import CompiledExchange
from engine.exchange import Exchange
from engine.fixedpoint import format_units, parse_units
from engine.markets import load_markets
from engine.reports import OrderReport
from engine.state import digest
from engine.types import Side, TimeInForce
from tests.kit.venues import licensed_venue

PARTICIPANTS = tuple(f"p{i}" for i in range(8))
SYMBOL = "USDT-KZT"
REFERENCE = 51_500  # tiyn: 515.00 KZT, the market's configured reference
TICK = 1  # tiyn
LOT = 10_000  # USDT minor units: 0.01 USDT
QTY_LOTS = (200, 5_000)  # 2 to 50 USDT an order, above the 1,000 KZT minimum notional
PASSIVE_TICKS = (1, 50)
CROSS_TICKS = 2
MAX_OPEN = 500
"""Open orders a participant keeps at most; at the cap a passive place becomes a cancel."""
PASSIVE, IOC = 0.55, 0.10  # the rest (0.35) are cancels
FUNDING = {"KZT": 10**13, "USDT": 10**12}  # minor units: 100 bn KZT, 1 M USDT each

START_TS = 1_790_017_200_000 - 60_000
"""A minute before an Almaty midnight (19:00 UTC), so a default run rolls the day over."""

DEFAULT_COMMANDS = 100_000
DEFAULT_WARMUP = 20_000
DEFAULT_SEED = 7
DEFAULT_RUNS = 3
MICRO_CALLS = 200_000
EXCHANGES: dict[str, type[Exchange]] = {"python": Exchange, "compiled": CompiledExchange}


class OpenOrders:
    """One participant's open order ids: add, remove and pick at random, each O(1)."""

    __slots__ = ("_ids", "_index")

    def __init__(self) -> None:
        self._ids: list[int] = []
        self._index: dict[int, int] = {}

    def __len__(self) -> int:
        return len(self._ids)

    def add(self, order_id: int) -> None:
        self._index[order_id] = len(self._ids)
        self._ids.append(order_id)

    def discard(self, order_id: int) -> None:
        at = self._index.pop(order_id, None)
        if at is None:
            return
        last = self._ids.pop()
        if last != order_id:
            self._ids[at] = last
            self._index[last] = at

    def pick(self, rnd: random.Random) -> int:
        return self._ids[rnd.randrange(len(self._ids))]


def funded_venue(exchange_type: type[Exchange] = Exchange) -> Exchange:
    """``licensed_venue`` with the bench's participants, each funded in KZT and USDT."""
    exchange = licensed_venue(PARTICIPANTS, exchange_type=exchange_type)
    for participant_id in PARTICIPANTS:
        for asset, amount in FUNDING.items():
            exchange.execute(
                Deposit(ts=START_TS, participant_id=participant_id, asset=asset, amount=amount)
            )
    return exchange


def next_command(rnd: random.Random, ts: int, open_orders: dict[str, OpenOrders]) -> Command:
    """One command of the mix, for a participant picked at random."""
    who = PARTICIPANTS[rnd.randrange(len(PARTICIPANTS))]
    mine = open_orders[who]
    roll = rnd.random()
    if roll >= PASSIVE + IOC or len(mine) >= MAX_OPEN:
        if mine:
            return CancelOrder(ts=ts, participant_id=who, market=SYMBOL, order_id=mine.pick(rnd))
        roll = 0.0  # nothing to cancel: place a passive order instead
    side = Side.BUY if rnd.random() < 0.5 else Side.SELL
    qty = rnd.randint(*QTY_LOTS) * LOT
    if roll < PASSIVE:
        away = rnd.randint(*PASSIVE_TICKS) * TICK
        price = REFERENCE - away if side == Side.BUY else REFERENCE + away
        tif = TimeInForce.GTC
    else:
        through = CROSS_TICKS * TICK
        price = REFERENCE + through if side == Side.BUY else REFERENCE - through
        tif = TimeInForce.IOC
    return PlaceOrder(
        ts=ts, participant_id=who, market=SYMBOL, side=side, qty=qty, price=price, tif=tif
    )


def track(reports: list[Any], open_orders: dict[str, OpenOrders]) -> None:
    """Follow which orders are open from the reports of one command."""
    for report in reports:
        if type(report) is not OrderReport or report.order_id is None:
            continue
        if report.status == "new":
            open_orders[report.participant_id].add(report.order_id)
        elif report.status in ("filled", "canceled", "expired"):
            open_orders[report.participant_id].discard(report.order_id)


def run_once(
    commands: int, warmup: int, seed: int, exchange_type: type[Exchange] = Exchange
) -> dict[str, Any]:
    """One fresh venue, ``warmup`` untimed commands then ``commands`` timed ones."""
    rnd = random.Random(seed)
    exchange = funded_venue(exchange_type)
    open_orders = {p: OpenOrders() for p in PARTICIPANTS}
    checksum = hashlib.sha256()
    times = [0] * commands
    kinds = {"place_gtc": 0, "place_ioc": 0, "cancel": 0}
    execute = exchange.execute
    clock = time.perf_counter_ns
    ts = START_TS
    for index in range(warmup + commands):
        ts += rnd.randint(0, 3)
        command = next_command(rnd, ts, open_orders)
        started = clock()
        reports = execute(command)
        elapsed = clock() - started
        if index >= warmup:
            times[index - warmup] = elapsed
            if type(command) is PlaceOrder:
                kinds["place_ioc" if command.tif == TimeInForce.IOC else "place_gtc"] += 1
            else:
                kinds["cancel"] += 1
        checksum.update(repr(reports).encode())
        track(reports, open_orders)
    state = digest(exchange)
    checksum.update(state.encode())
    total_ns = sum(times)
    times.sort()
    return {
        "commands_per_s": commands / (total_ns / 1e9) if total_ns else 0.0,
        "mean_us": total_ns / commands / 1e3 if commands else 0.0,
        "p50_us": percentile(times, 0.50) / 1e3,
        "p99_us": percentile(times, 0.99) / 1e3,
        "open_orders": sum(len(o) for o in open_orders.values()),
        "mix": kinds,
        "state_digest": state,
        "checksum": checksum.hexdigest(),
    }


def _per_call_ns(function: Callable[[Any], Any], values: list[Any], calls: int) -> float:
    """Mean ns per call of ``function`` over ``values``, cycled to ``calls`` calls."""
    rounds = max(1, calls // len(values))
    started = time.perf_counter_ns()
    for _ in range(rounds):
        for value in values:
            function(value)
    return (time.perf_counter_ns() - started) / (rounds * len(values))


def micro(calls: int = MICRO_CALLS) -> dict[str, float]:
    """ns per call of the wire conversions, on values shaped like real USDT-KZT traffic."""
    market = load_markets()[SYMBOL]
    rnd = random.Random(DEFAULT_SEED)
    prices = [REFERENCE + rnd.randint(-50, 50) for _ in range(64)]
    qtys = [rnd.randint(*QTY_LOTS) * LOT for _ in range(64)]
    price_texts = [market.format_price(p) for p in prices]
    qty_texts = [market.format_qty(q) for q in qtys]
    whole_texts = [str(rnd.randint(1, 100_000)) for _ in range(64)]
    return {
        "Market.parse_price": _per_call_ns(market.parse_price, price_texts, calls),
        "Market.parse_qty": _per_call_ns(market.parse_qty, qty_texts, calls),
        "Market.format_price": _per_call_ns(market.format_price, prices, calls),
        "Market.format_qty": _per_call_ns(market.format_qty, qtys, calls),
        "parse_units(scale 2)": _per_call_ns(lambda t: parse_units(t, 2), price_texts, calls),
        "parse_units(whole, scale 8)": _per_call_ns(
            lambda t: parse_units(t, 8), whole_texts, calls
        ),
        "format_units(scale 6)": _per_call_ns(lambda u: format_units(u, 6), qtys, calls),
    }


def _summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians over runs of one exchange."""
    return {
        "commands_per_s": statistics.median(r["commands_per_s"] for r in runs),
        "mean_us": statistics.median(r["mean_us"] for r in runs),
        "p50_us": statistics.median(r["p50_us"] for r in runs),
        "p99_us": statistics.median(r["p99_us"] for r in runs),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--commands", type=int, default=DEFAULT_COMMANDS)
    parser.add_argument("--warmup", type=int, default=DEFAULT_WARMUP)
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--runs", type=int, default=DEFAULT_RUNS)
    parser.add_argument("--micro-calls", type=int, default=MICRO_CALLS)
    parser.add_argument(
        "--exchange",
        choices=["both", *EXCHANGES],
        default="both",
        help="the reference (python), the compiled one, or both in turn (default)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    names = list(EXCHANGES) if args.exchange == "both" else [args.exchange]
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
    for _ in range(args.runs):  # in turn, so that both see the machine's same moments
        for name in names:
            runs[name].append(run_once(args.commands, args.warmup, args.seed, EXCHANGES[name]))
    every = [r for name in names for r in runs[name]]
    checksums = {r["checksum"] for r in every}
    head = names[-1]  # the compiled one when both run: the gateway's
    result: dict[str, Any] = {
        "commands": args.commands,
        "warmup": args.warmup,
        "seed": args.seed,
        "runs": args.runs,
        "exchange": head,
        **_summary(runs[head]),
        "exchanges": {name: _summary(runs[name]) for name in names},
        "mix": every[0]["mix"],
        "open_orders_at_end": every[0]["open_orders"],
        "checksum": every[0]["checksum"],
        "checksum_stable": len(checksums) == 1,
        "micro_ns_per_call": micro(args.micro_calls) if args.micro_calls else {},
        "machine": common.machine_info(["msgspec"]),
    }
    if len(names) == 2:
        # Per run, the reference's time over the compiled one's; the median of those.
        result["speedup"] = statistics.median(
            p["mean_us"] / c["mean_us"]
            for p, c in zip(runs["python"], runs["compiled"], strict=True)
            if c["mean_us"]
        )
    if args.json:
        print(json.dumps(result, indent=2))
        return 0 if result["checksum_stable"] else 1
    print(
        f"exchange bench: {args.commands} commands after {args.warmup} warm-up, "
        f"seed {args.seed}, median of {args.runs} runs"
    )
    print(f"  mix               {result['mix']}")
    print(f"  {'':16}  {'commands/s':>11} {'mean us':>8} {'p50 us':>8} {'p99 us':>8}")
    for name in names:
        figures = result["exchanges"][name]
        print(
            f"  {name:16}  {figures['commands_per_s']:11,.0f} {figures['mean_us']:8.2f} "
            f"{figures['p50_us']:8.2f} {figures['p99_us']:8.2f}"
        )
    if "speedup" in result:
        print(f"  compiled/python   {result['speedup']:.2f}x (median of per-run ratios)")
    print(f"  open at end       {result['open_orders_at_end']}")
    print(f"  checksum          {result['checksum']}")
    if not result["checksum_stable"]:
        print("  CHECKSUM DIFFERS BETWEEN RUNS OR EXCHANGES: not deterministic, or not the same")
    for name, ns in result["micro_ns_per_call"].items():
        print(f"  {name:28} {ns:8.0f} ns/call")
    return 0 if result["checksum_stable"] else 1


if __name__ == "__main__":
    sys.exit(main())
