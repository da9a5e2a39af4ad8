"""The standard order flow: one seeded, deterministic stream of commands for one market.

Described in the project's performance spec; this module is its only definition.  The
market is BTC-KZT: prices in tiyn on a tick of 100 tiyn (1 KZT), the mid starting at
45,000,000 KZT; quantities in satoshi on a lot of 1,000 sat, 1 to 100 lots an order.

The flow opens with a **warm-up** that seeds the book: ``TARGET_LIVE`` passive orders around
the starting mid.  The warm-up is part of the flow (it is timed like every other command and
counted in ``ops``), so a 1,000,000-command flow is 5,000 warm-up places and 995,000 commands
in the steady mix.  Then, per command:

* about 55 %: a passive limit order on a random side, 1 to 50 ticks from a random-walk mid,
  clamped one tick inside the opposite best so that it never trades;
* about 35 %: a cancel of a live order chosen uniformly at random;
* about 10 %: an aggressive limit GTC order priced 0 to 2 ticks through the opposite touch:
  it takes a few resting orders and rests any remainder.

The cancel probability adapts to the number of live orders (``CANCEL_SHARE * (live /
TARGET_LIVE) ** 3``), which holds the book near ``TARGET_LIVE`` orders; the quantity laws are
chosen so that the balance point falls near the nominal 55/35/10 mix.  Passive orders are
mostly small (``randint(1, randint(1, randint(1, 100)))`` lots, mean 13.4), aggressive ones
uniform on 1 to 100 lots (mean 50.5), so an aggressive order fills about three resting
orders (2.3 of them completely) and a third of them rest a remainder.  For the cancels to
be the only other way out of the book, net removals by aggressive orders must be about two
per order: that is what sets these laws.  The mid takes a one-tick step on 15 % of commands;
that drift, with the cancels' uniform choice of victim, spreads the book over about 100 to
140 levels a side.

Which orders are live (fills remove them, an aggressive order's rest adds one) is known by
simulating while generating, on the compiled ``OrderBook``'s per-call API, from its events.
Only ``random.Random(seed)`` draws the numbers and only integer draws and IEEE float
comparisons decide, so the same seed gives the same flow on every machine.  Owners are
random in 1..100 and self-trade prevention is off (``stp`` 0), as in the spec.

The flow is an ``array('q')`` of ``engine.batch`` command records, cached under
``benchmarks/.cache/`` keyed by (seed, ops, ``FLOW_VERSION``).  Bump ``FLOW_VERSION``
whenever a change here changes the commands generated.

``flow_checksum`` condenses a run's results (trade count, traded quantity, notional and the
final book) into one digest, the same whether computed from per-call events of either book
or from batch event records; ``TradeTally`` does the counting.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sys
from array import array
from collections.abc import Iterable, Sequence
from pathlib import Path
from random import Random
from typing import Any

from engine.batch import CANCEL, COMMAND_WIDTH, EVENT_WIDTH, PLACE, TRADE
from engine.events import OrderFilled, Trade

FLOW_VERSION = 1
"""Bump whenever the generator changes the commands it produces (invalidates the cache)."""

DEFAULT_OPS = 1_000_000
DEFAULT_SEED = 20_240_601

TICK = 100
"""Price tick of BTC-KZT, in tiyn (1 KZT)."""
LOT = 1_000
"""Quantity lot of BTC-KZT, in satoshi."""
MAX_LOTS = 100
START_MID = 4_500_000_000
"""The starting mid, in tiyn (45,000,000 KZT)."""

TARGET_LIVE = 5_000
"""Live orders the adaptive cancel share steers towards; also the warm-up's length."""
CANCEL_SHARE = 0.35
AGGRESSIVE_SHARE = 0.10
MAX_CANCEL_SHARE = 0.80
"""Cap on the adaptive cancel probability (reached only far above the target)."""

MAX_DISTANCE = 50
"""Passive orders rest 1..MAX_DISTANCE ticks from the mid on their own side."""
MAX_THROUGH = 2
"""Aggressive orders are priced 0..MAX_THROUGH ticks through the opposite touch."""
MID_STEP_PER_MILLE = 150
"""Chance per command, in thousandths, that the mid takes a one-tick step (up or down)."""
SAMPLE_EVERY = 1_000
"""Commands between samples of the live count and the levels per side (for the stats)."""

CACHE_DIR = Path(__file__).resolve().parent / ".cache"

_KIND_BYTE = 0 if sys.byteorder == "little" else 7
"""Offset of the low-order byte of an int64 record field (event kinds fit in it)."""
_FIND_TRADE = re.compile(re.escape(bytes([TRADE]))).finditer

BUY = 0
SELL = 1


class FlowGenerator:
    """Generates the standard flow while replaying it on a compiled ``OrderBook``.

    ``target_live`` is both the warm-up's length and the live count the cancels steer to.
    ``preload`` (for the growth benchmark) replaces the warm-up by that many passive orders
    spread uniformly over ``preload_ticks`` ticks each side of the mid.
    """

    def __init__(
        self,
        seed: int,
        target_live: int = TARGET_LIVE,
        preload: int = 0,
        preload_ticks: int = MAX_DISTANCE,
    ) -> None:
        from engine import OrderBook  # the compiled core; imported late to keep imports light

        self.rng = Random(seed)
        self.book = OrderBook()
        self.target_live = target_live
        self.preload = preload
        self.preload_ticks = preload_ticks
        self.mid = START_MID
        self.next_id = 1
        self.live: list[int] = []  # live order ids, in no particular order
        self.live_index: dict[int, int] = {}  # order id -> its position in ``live``
        self.counts = {"passive": 0, "cancel": 0, "aggressive": 0}
        self.trades = 0
        self.makers_filled = 0
        self.aggressive_rested = 0

    # -- live set: O(1) add, remove and uniform choice -----------------------------------

    def _add_live(self, order_id: int) -> None:
        self.live_index[order_id] = len(self.live)
        self.live.append(order_id)

    def _remove_live(self, order_id: int) -> None:
        pos = self.live_index.pop(order_id)
        last = self.live.pop()
        if last != order_id:
            self.live[pos] = last
            self.live_index[last] = pos

    # -- commands ------------------------------------------------------------------------

    def _owner(self) -> int:
        return self.rng.randint(1, 100)

    def _passive(self, out: array[int], distance: int | None = None) -> None:
        rng = self.rng
        side = rng.getrandbits(1)
        if distance is None:
            distance = rng.randint(1, MAX_DISTANCE)
        owner = self._owner()
        # 1..randint(1..randint(1..100)) lots: mostly small (mean 13.4 lots), up to 100.
        qty = rng.randint(1, rng.randint(1, rng.randint(1, MAX_LOTS))) * LOT
        if side == BUY:
            price = self.mid - distance * TICK
            best = self.book.best_ask()
            if best is not None and price >= best[0]:
                price = best[0] - TICK
        else:
            price = self.mid + distance * TICK
            best = self.book.best_bid()
            if best is not None and price <= best[0]:
                price = best[0] + TICK
        order_id = self.next_id
        self.next_id += 1
        out.extend((PLACE, order_id, owner, side, price, qty, 0, 0, 0, 0))
        self.book.place(order_id, owner, side, price, qty)
        self._add_live(order_id)
        self.counts["passive"] += 1

    def _cancel(self, out: array[int]) -> None:
        order_id = self.live[self.rng.randrange(len(self.live))]
        out.extend((CANCEL, order_id, 0, 0, 0, 0, 0, 0, 0, 0))
        self.book.cancel(order_id)
        self._remove_live(order_id)
        self.counts["cancel"] += 1

    def _aggressive(self, out: array[int]) -> None:
        rng = self.rng
        side = rng.getrandbits(1)
        best = self.book.best_ask() if side == BUY else self.book.best_bid()
        if best is None:  # nothing to take (only when the book is nearly empty)
            self._passive(out)
            return
        through = rng.randint(0, MAX_THROUGH) * TICK
        price = best[0] + through if side == BUY else best[0] - through
        owner = self._owner()
        qty = rng.randint(1, MAX_LOTS) * LOT
        order_id = self.next_id
        self.next_id += 1
        out.extend((PLACE, order_id, owner, side, price, qty, 0, 0, 0, 0))
        for event in self.book.place(order_id, owner, side, price, qty):
            if event.__class__ is Trade:
                self.trades += 1
            elif (
                event.__class__ is OrderFilled
                and event.order_id != order_id
                and event.remaining_qty == 0
            ):
                self._remove_live(event.order_id)
                self.makers_filled += 1
        if order_id in self.book:
            self._add_live(order_id)
            self.aggressive_rested += 1
        self.counts["aggressive"] += 1

    def _walk_mid(self) -> None:
        rng = self.rng
        if rng.randrange(1000) < MID_STEP_PER_MILLE:
            self.mid += TICK if rng.getrandbits(1) else -TICK

    # -- the flow ------------------------------------------------------------------------

    def warm_up(self, out: array[int], limit: int) -> int:
        """Seed the book with passive orders; returns how many commands that took."""
        if self.preload:
            # Growth benchmark: many orders spread over a wide, fixed band of levels.
            for _ in range(self.preload):
                self._passive(out, self.rng.randint(1, self.preload_ticks))
            return self.preload
        n = min(self.target_live, limit)
        for _ in range(n):
            self._walk_mid()
            self._passive(out)
        return n

    def steady(self, out: array[int], n: int, samples: dict[str, list[int]] | None = None) -> None:
        """Append ``n`` commands of the steady mix."""
        rng = self.rng
        target = self.target_live
        for i in range(n):
            self._walk_mid()
            u = rng.random()
            ratio = len(self.live) / target
            p_cancel = min(CANCEL_SHARE * ratio * ratio * ratio, MAX_CANCEL_SHARE)
            if u < AGGRESSIVE_SHARE:
                self._aggressive(out)
            elif u < AGGRESSIVE_SHARE + p_cancel and self.live:
                self._cancel(out)
            else:
                self._passive(out)
            if samples is not None and i % SAMPLE_EVERY == SAMPLE_EVERY - 1:
                samples["live"].append(len(self.live))
                samples["bid_levels"].append(len(self.book.depth(BUY)))
                samples["ask_levels"].append(len(self.book.depth(SELL)))

    def stats(self, ops: int, warmup: int, samples: dict[str, list[int]]) -> dict[str, Any]:
        steady = dict(self.counts)
        steady["passive"] -= warmup
        steady_total = max(sum(steady.values()), 1)
        bids, asks = self.book.depth(BUY), self.book.depth(SELL)

        def mean(values: list[int]) -> float:
            return round(sum(values) / len(values), 1) if values else 0.0

        return {
            "flow_version": FLOW_VERSION,
            "ops": ops,
            "warmup_ops": warmup,
            "counts": dict(self.counts),
            "mix": {k: round(v / max(ops, 1), 4) for k, v in self.counts.items()},
            "steady_mix": {k: round(v / steady_total, 4) for k, v in steady.items()},
            "trades": self.trades,
            "makers_filled": self.makers_filled,
            "aggressive_rested": self.aggressive_rested,
            "live_final": len(self.live),
            "live_mean": mean(samples["live"]),
            "bid_levels_final": len(bids),
            "ask_levels_final": len(asks),
            "bid_levels_mean": mean(samples["bid_levels"]),
            "ask_levels_mean": mean(samples["ask_levels"]),
            "spread_ticks_final": (asks[0][0] - bids[0][0]) // TICK if bids and asks else None,
            "mid_final_tiyn": self.mid,
        }


def generate(seed: int = DEFAULT_SEED, ops: int = DEFAULT_OPS) -> tuple[array[int], dict[str, Any]]:
    """The standard flow of ``ops`` commands (warm-up included) and its stats, uncached."""
    gen = FlowGenerator(seed)
    out = array("q")
    samples: dict[str, list[int]] = {"live": [], "bid_levels": [], "ask_levels": []}
    warmup = gen.warm_up(out, ops)
    gen.steady(out, ops - warmup, samples)
    stats = gen.stats(ops, warmup, samples)
    stats["seed"] = seed
    return out, stats


def generate_growth(
    seed: int, preload: int, ops: int, preload_ticks: int
) -> tuple[array[int], int, dict[str, Any]]:
    """A growth-benchmark workload: ``preload`` passive orders over ``preload_ticks`` ticks a
    side, then ``ops`` commands of the steady mix holding the book near ``preload`` orders.
    Returns (commands, number of preload commands, stats)."""
    gen = FlowGenerator(
        seed, target_live=max(preload, 1), preload=preload, preload_ticks=preload_ticks
    )
    out = array("q")
    samples: dict[str, list[int]] = {"live": [], "bid_levels": [], "ask_levels": []}
    warmup = gen.warm_up(out, preload)
    gen.steady(out, ops, samples)
    stats = gen.stats(preload + ops, warmup, samples)
    stats["seed"] = seed
    return out, warmup, stats


# -- the cache -------------------------------------------------------------------------------


def cache_path(seed: int, ops: int, kind: str = "flow") -> Path:
    """Where a cached flow lives: keyed by kind, seed, ops and ``FLOW_VERSION``."""
    return CACHE_DIR / f"{kind}-v{FLOW_VERSION}-seed{seed}-ops{ops}"


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _save(base: Path, commands: array[int], meta: dict[str, Any]) -> None:
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    # Data first, metadata last: a metadata file means a complete entry.
    _write_atomic(base.with_suffix(".bin"), commands.tobytes())
    _write_atomic(base.with_suffix(".json"), json.dumps(meta, indent=1).encode())


def _load(base: Path) -> tuple[array[int], dict[str, Any]] | None:
    meta_path, data_path = base.with_suffix(".json"), base.with_suffix(".bin")
    if not (meta_path.exists() and data_path.exists()):
        return None
    meta = json.loads(meta_path.read_text())
    commands = array("q")
    commands.frombytes(data_path.read_bytes())
    if len(commands) != meta["length"]:
        return None  # truncated or stale: regenerate
    return commands, meta


def load_flow(
    seed: int = DEFAULT_SEED, ops: int = DEFAULT_OPS, cache: bool = True
) -> tuple[array[int], dict[str, Any]]:
    """The standard flow and its stats, from the cache when there (generated and cached if
    not).  Generation of 1,000,000 commands takes several seconds."""
    base = cache_path(seed, ops)
    if cache:
        found = _load(base)
        if found is not None:
            return found[0], found[1]["stats"]
    commands, stats = generate(seed, ops)
    if cache:
        _save(base, commands, {"length": len(commands), "stats": stats})
    return commands, stats


def load_growth(
    seed: int, preload: int, ops: int, preload_ticks: int, cache: bool = True
) -> tuple[array[int], int, dict[str, Any]]:
    """A growth workload (see ``generate_growth``), cached like the standard flow."""
    base = cache_path(seed, ops, kind=f"growth-{preload}x{preload_ticks}")
    if cache:
        found = _load(base)
        if found is not None:
            meta = found[1]
            return found[0], meta["preload_commands"], meta["stats"]
    commands, warmup, stats = generate_growth(seed, preload, ops, preload_ticks)
    if cache:
        meta = {"length": len(commands), "preload_commands": warmup, "stats": stats}
        _save(base, commands, meta)
    return commands, warmup, stats


# -- decoding for the per-call APIs ------------------------------------------------------------


PlaceArgs = tuple[int, int, int, int, int] | tuple[int, int, int, int, int, int, int, bool, int]
"""``place``'s arguments: (order_id, owner, side, price, qty), then (order_type, tif,
post_only, stp) when any of them is not the default."""


def per_call_ops(commands: Sequence[int] | memoryview) -> list[PlaceArgs | int]:
    """The commands as per-call arguments: a tuple of ``place`` arguments, or the order id
    (an int) of a cancel.  Built before timing, so the timed loop does no decoding."""
    out: list[PlaceArgs | int] = []
    append = out.append
    for i in range(0, len(commands), COMMAND_WIDTH):
        op = commands[i]
        if op == PLACE:
            order_id, owner, side, price, qty, order_type, tif, post_only, stp = commands[
                i + 1 : i + 10
            ]
            if order_type or tif or post_only or stp:
                append((order_id, owner, side, price, qty, order_type, tif, bool(post_only), stp))
            else:
                append((order_id, owner, side, price, qty))
        elif op == CANCEL:
            append(commands[i + 1])
        else:
            raise ValueError(f"command {i // COMMAND_WIDTH}: op {op} is not in the flow format")
    return out


# -- the checksum ---------------------------------------------------------------------------


class TradeTally:
    """Counts trades, traded quantity (sat) and notional (sum of price * qty, tiyn * sat,
    as Python ints: it overflows int64) from either form of a book's output."""

    __slots__ = ("notional", "qty", "trades")

    def __init__(self) -> None:
        self.trades = 0
        self.qty = 0
        self.notional = 0

    def add_events(self, events: Iterable[object]) -> None:
        """Count the ``Trade`` events of one per-call result (a list of ``engine.events``)."""
        for event in events:
            if event.__class__ is Trade:
                self.trades += 1
                self.qty += event.qty
                self.notional += event.price * event.qty

    def add_fills(self, fills: Iterable[tuple[int, int, int, int]]) -> None:
        """Count the fills of one ``PlainBook.place`` result: (maker, taker, price, qty)."""
        for _maker, _taker, price, qty in fills:
            self.trades += 1
            self.qty += qty
            self.notional += price * qty

    def add_records(self, records: array[int] | memoryview) -> None:
        """Count the TRADE records of a batch's flat event array (``engine.batch`` format).

        One C-level copy takes the low-order byte of every record's kind field (kinds are
        1..10) into a string, a regex finds the TRADE kinds in it, and only trades cost
        Python bytecode: on the standard flow about one record in ten.
        """
        kinds = records.tobytes()[_KIND_BYTE :: EVENT_WIDTH * 8]
        qty = notional = 0
        for match in _FIND_TRADE(kinds):
            base = match.start() * EVENT_WIDTH
            q = records[base + 3]
            qty += q
            notional += records[base + 2] * q
        self.trades += kinds.count(TRADE)
        self.qty += qty
        self.notional += notional


def flow_checksum(trades: int, qty: int, notional: int, orders: Iterable[Sequence[int]]) -> str:
    """sha256 (hex) of a run's results: the number of trades, the total traded qty (sat),
    the total notional (sum of price * qty) and the final book's ``orders()`` list (order_id,
    owner, side, price, open qty; bids then asks, best first, time priority)."""
    digest = hashlib.sha256(f"alatau-flow-checksum {trades} {qty} {notional}\n".encode())
    for order in orders:
        digest.update((" ".join(str(int(x)) for x in order) + "\n").encode())
    return digest.hexdigest()


def tally_checksum(tally: TradeTally, book: Any) -> str:
    """``flow_checksum`` of a tally and the final state of ``book`` (either book)."""
    return flow_checksum(tally.trades, tally.qty, tally.notional, book.orders())


# -- replay helpers (tests and micro-benchmarks; the timed loops live in engine_bench) -------


def replay_per_call(book: Any, commands: Sequence[int]) -> str:
    """Run the commands one call at a time on ``book``; returns the checksum."""
    tally = TradeTally()
    place, cancel = book.place, book.cancel
    for op in per_call_ops(commands):
        events = place(*op) if op.__class__ is tuple else cancel(op)
        if len(events) > 2:  # an order that only rests, or a cancel, yields exactly two
            tally.add_events(events)
    return tally_checksum(tally, book)


def replay_batch(book: Any, commands: array[int], chunk: int = 1024) -> str:
    """Run the commands through ``book.execute_batch`` in chunks; returns the checksum."""
    tally = TradeTally()
    view = memoryview(commands)
    step = chunk * COMMAND_WIDTH
    for start in range(0, len(commands), step):
        events, _offsets = book.execute_batch(view[start : start + step])
        tally.add_records(events)
    return tally_checksum(tally, book)
