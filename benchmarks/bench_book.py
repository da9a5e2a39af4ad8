"""Micro-benchmarks of single book operations on both books (pytest-benchmark).

Each test starts from a realistic book: the first ``WARM_OPS`` commands of the standard flow
(about 5,000 live orders over about 100 levels a side), then times one kind of call, one call
per round, with ``benchmark.pedantic``.  The untimed ``setup`` of each round restores the
state the call consumes, so the book stays the same size however many rounds run:

* add: a passive order behind its own side's touch (the book grows by one per round);
* cancel: a uniformly random live order (setup first adds one, so the size holds);
* match: an aggressive buy taking 30 lots at the ask touch, which setup first refills with
  three 10-lot asks at the back of the queue, so the call fills the head of the queue.

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

from benchmarks.flow import DEFAULT_SEED, LOT, TICK, load_flow, per_call_ops, replay_batch
from engine import OrderBook, ReferenceBook
from engine.batch import COMMAND_WIDTH

WARM_OPS = 20_000
ROUNDS = 2_000
FLOW_ROUNDS = 3
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


@pytest.mark.parametrize("kind", sorted(BOOKS))
def test_flow_per_call(benchmark: Any, warm_commands: Any, kind: str) -> None:
    """The first WARM_OPS commands of the standard flow, one call each, on a fresh book."""
    ops = per_call_ops(warm_commands)

    def setup() -> tuple[tuple[Any, ...], dict[str, Any]]:
        return (BOOKS[kind](),), {}

    def run(book: Any) -> int:
        place, cancel = book.place, book.cancel
        for op in ops:
            if op.__class__ is tuple:
                place(*op)
            else:
                cancel(op)
        return len(book)

    assert benchmark.pedantic(run, setup=setup, rounds=FLOW_ROUNDS, iterations=1) > 0


def test_flow_batch(benchmark: Any, warm_commands: Any) -> None:
    """The first WARM_OPS commands of the standard flow through execute_batch (1024 a call)."""
    view = memoryview(warm_commands)
    step = 1024 * COMMAND_WIDTH

    def setup() -> tuple[tuple[Any, ...], dict[str, Any]]:
        return (OrderBook(),), {}

    def run(book: Any) -> int:
        execute = book.execute_batch
        for start in range(0, len(view), step):
            execute(view[start : start + step])
        return len(book)

    assert benchmark.pedantic(run, setup=setup, rounds=FLOW_ROUNDS, iterations=1) > 0
