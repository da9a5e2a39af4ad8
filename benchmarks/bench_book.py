"""Micro-benchmarks of single book operations on both books (pytest-benchmark).

Each test starts from a realistic book: the first ``WARM_OPS`` commands of the standard flow
(about 5,000 live orders over about 100 levels a side), then times one kind of call, one call
per round, with ``benchmark.pedantic``.  The untimed ``setup`` of each round restores the
state the call consumes, so the book stays the same size however many rounds run:

* add: a passive order behind its own side's touch (the book grows by one per round);
* cancel: a uniformly random live order (setup first adds one, so the size holds);
* match: an aggressive buy taking 30 lots at the ask touch, which setup first refills with
  three 10-lot asks at the back of the queue, so the call fills the head of the queue.

``test_flow`` times the first ``WARM_OPS`` commands of the standard flow in each of the
engine benchmark's modes, the plain book (``benchmarks/plain_book.py``, the spec's baseline)
first; with the benchmarks enabled the module ends by printing every mode as a ratio against
the plain book, the reference book a second column (also in each test's ``extra_info``).

With ``--benchmark-disable`` (the project's default ``addopts``, so CI and a plain
``pytest`` run every test once and they keep working) each test is one quick round; time
them with ``pytest benchmarks/bench_book.py --benchmark-enable``.  The whole-flow figures
come from ``alatau bench engine``, not from here.
"""

from __future__ import annotations

import itertools
from random import Random
from typing import Any

import pytest

from benchmarks.flow import (
    DEFAULT_SEED,
    LOT,
    TICK,
    TradeTally,
    load_flow,
    per_call_ops,
    replay_batch,
)
from benchmarks.plain_book import PlainBook
from engine import OrderBook, ReferenceBook
from engine.batch import COMMAND_WIDTH

WARM_OPS = 20_000
ROUNDS = 2_000
FLOW_ROUNDS = 7
BOOKS: dict[str, type[OrderBook] | type[ReferenceBook]] = {
    "reference": ReferenceBook,
    "cython": OrderBook,
}


@pytest.fixture(scope="module")
def warm_commands() -> Any:
    commands, _stats = load_flow(DEFAULT_SEED, WARM_OPS)
    return commands


def _warm_book(kind: str, commands: Any) -> OrderBook | ReferenceBook:
    book = BOOKS[kind]()
    if kind == "reference":
        for op in per_call_ops(commands):
            if isinstance(op, tuple):
                book.place(*op)
            else:
                book.cancel(op)
    else:
        replay_batch(book, commands)
    return book


@pytest.fixture(params=sorted(BOOKS))
def warm_book(request: pytest.FixtureRequest, warm_commands: Any) -> Any:
    return _warm_book(request.param, warm_commands)


def _passive_price(book: OrderBook | ReferenceBook, side: int, ticks_behind: int) -> int:
    """A price ``ticks_behind`` ticks behind the side's own best (never crossing)."""
    best = book.best_bid() if side == 0 else book.best_ask()
    assert best is not None, "the warm book has both sides"
    return best[0] - ticks_behind * TICK if side == 0 else best[0] + ticks_behind * TICK


def test_add(benchmark: Any, warm_book: Any) -> None:
    """Adding a passive order to a ~5,000-order book."""
    ids = itertools.count(10_000_000)
    rng = Random(1)

    def setup() -> tuple[tuple[int, ...], dict[str, Any]]:
        side = rng.getrandbits(1)
        price = _passive_price(warm_book, side, rng.randint(0, 49))
        return (next(ids), rng.randint(1, 100), side, price, rng.randint(1, 100) * LOT), {}

    before = len(warm_book)
    benchmark.pedantic(warm_book.place, setup=setup, rounds=ROUNDS, iterations=1)
    assert len(warm_book) > before


def test_cancel(benchmark: Any, warm_book: Any) -> None:
    """Canceling a uniformly random live order of a ~5,000-order book."""
    live = [order[0] for order in warm_book.orders()]
    ids = itertools.count(20_000_000)
    rng = Random(2)

    def setup() -> tuple[tuple[int, ...], dict[str, Any]]:
        side = rng.getrandbits(1)
        order_id = next(ids)
        price = _passive_price(warm_book, side, rng.randint(0, 49))
        warm_book.place(order_id, rng.randint(1, 100), side, price, rng.randint(1, 100) * LOT)
        live.append(order_id)
        pos = rng.randrange(len(live))
        live[pos], live[-1] = live[-1], live[pos]
        return (live.pop(),), {}

    size = len(warm_book)
    events = benchmark.pedantic(warm_book.cancel, setup=setup, rounds=ROUNDS, iterations=1)
    assert events[0].__class__.__name__ == "OrderCanceled"
    assert len(warm_book) == size


def test_match(benchmark: Any, warm_book: Any) -> None:
    """An aggressive buy filling 30 lots at the ask touch (a few resting orders)."""
    ids = itertools.count(30_000_000)

    def setup() -> tuple[tuple[int, ...], dict[str, Any]]:
        touch = warm_book.best_ask()[0]
        for _ in range(3):
            warm_book.place(next(ids), 7, 1, touch, 10 * LOT)
        return (next(ids), 8, 0, touch, 30 * LOT), {}

    events = benchmark.pedantic(warm_book.place, setup=setup, rounds=ROUNDS, iterations=1)
    assert any(e.__class__.__name__ == "Trade" for e in events)


FLOW_MODES = ("plain", "reference", "cython", "cython-batch")
"""The whole-flow tests, the baseline first: its median is what the ratios divide by."""


class _FlowRatios:
    """A pytest plugin, registered once the whole-flow tests have run, that prints every mode
    as a ratio against the plain book (the performance spec's baseline), the reference book
    a second column, after pytest-benchmark's tables."""

    def __init__(self, medians: dict[str, float]) -> None:
        self.medians = medians

    @pytest.hookimpl(trylast=True)  # after pytest-benchmark's own tables
    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        medians = self.medians
        terminalreporter.write_line(
            f"whole-flow ratios, {WARM_OPS:,} commands of the standard flow"
            " (median time of the plain book / median time of the mode):"
        )
        for mode, median in medians.items():
            terminalreporter.write_line(
                f"  {mode:<13} {WARM_OPS / median:>12,.0f} ops/s"
                f"  {medians['plain'] / median:>6.2f}x the plain book"
                f"  {medians['reference'] / median:>6.2f}x the reference book"
            )


@pytest.fixture(scope="module")
def flow_medians(request: pytest.FixtureRequest) -> Any:
    """Collects each whole-flow test's median time (only with the benchmarks enabled)."""
    medians: dict[str, float] = {}
    yield medians
    if "plain" in medians and "reference" in medians:
        request.config.pluginmanager.register(_FlowRatios(medians))


def _flow_run(mode: str, commands: Any) -> Any:
    """The function timed by the whole-flow test of ``mode``: it runs the commands on the
    book it is given, consuming every result as ``alatau bench engine`` does."""
    if mode == "cython-batch":
        view = memoryview(commands)
        step = 1024 * COMMAND_WIDTH

        def run_batch(book: Any) -> int:
            tally, execute = TradeTally(), book.execute_batch
            for start in range(0, len(view), step):
                events, _offsets = execute(view[start : start + step])
                tally.add_records(events)
            return len(book)

        return run_batch
    ops = per_call_ops(commands)
    if mode == "plain":

        def run_plain(book: Any) -> int:
            tally = TradeTally()
            place, cancel, add = book.place, book.cancel, tally.add_fills
            for op in ops:
                if op.__class__ is tuple:
                    fills = place(*op)
                    if fills:
                        add(fills)
                else:
                    cancel(op)
            return len(book)

        return run_plain

    def run(book: Any) -> int:
        tally = TradeTally()
        place, cancel, add = book.place, book.cancel, tally.add_events
        for op in ops:
            events = place(*op) if op.__class__ is tuple else cancel(op)
            if len(events) > 2:
                add(events)
        return len(book)

    return run


@pytest.mark.parametrize("mode", FLOW_MODES)
def test_flow(
    benchmark: Any, warm_commands: Any, flow_medians: dict[str, float], mode: str
) -> None:
    """The first WARM_OPS commands of the standard flow on a fresh book: one call per command
    (plain, reference, cython) or execute_batch in chunks of 1024 (cython-batch)."""
    new_book = (
        PlainBook if mode == "plain" else BOOKS["reference" if mode == "reference" else "cython"]
    )

    def setup() -> tuple[tuple[Any, ...], dict[str, Any]]:
        return (new_book(),), {}

    benchmark.group = "flow"
    assert (
        benchmark.pedantic(
            _flow_run(mode, warm_commands), setup=setup, rounds=FLOW_ROUNDS, iterations=1
        )
        > 0
    )
    if benchmark.stats is not None:  # None with --benchmark-disable
        flow_medians[mode] = benchmark.stats.stats.median
        if "plain" in flow_medians:
            benchmark.extra_info["vs_plain"] = round(flow_medians["plain"] / flow_medians[mode], 2)
        if "reference" in flow_medians:
            benchmark.extra_info["vs_reference"] = round(
                flow_medians["reference"] / flow_medians[mode], 2
            )
