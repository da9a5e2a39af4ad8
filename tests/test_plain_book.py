"""The benchmark's plain baseline book does the same matching work as the reference book."""

from __future__ import annotations

from collections.abc import Sequence
from random import Random

import pytest

from benchmarks.flow import (
    LOT,
    TICK,
    TradeTally,
    generate,
    per_call_ops,
    replay_per_call,
    tally_checksum,
)
from benchmarks.plain_book import PlainBook
from engine import ReferenceBook
from engine.events import Trade


def _trades(events: Sequence[object]) -> list[tuple[int, int, int, int]]:
    return [
        (e.maker_order_id, e.taker_order_id, e.price, e.qty) for e in events if isinstance(e, Trade)
    ]


def _random_commands(seed: int, n: int) -> list[tuple[int, int, int, int, int] | int]:
    """Places on both sides around a fixed mid that often cross (so they trade several
    levels deep), and cancels of ids that may be live, filled, canceled or never placed."""
    rng = Random(seed)
    mid = 1_000_000
    out: list[tuple[int, int, int, int, int] | int] = []
    for order_id in range(1, n + 1):
        if rng.random() < 0.3:
            out.append(rng.randint(1, order_id))
        else:
            side = rng.getrandbits(1)
            price = mid + rng.randint(-8, 8) * TICK
            out.append((order_id, rng.randint(1, 5), side, price, rng.randint(1, 30) * LOT))
    return out


@pytest.mark.parametrize("seed", range(20))
def test_same_trades_and_book_as_the_reference_on_random_commands(seed: int) -> None:
    """On random crossing places and cancels, every place reports the reference book's trades
    in the same order, every cancel agrees on whether the order was open, and the two books
    end with the same orders in the same priority."""
    plain, ref = PlainBook(), ReferenceBook()
    for op in _random_commands(seed, 2_000):
        if isinstance(op, tuple):
            assert plain.place(*op) == _trades(ref.place(*op)), op
        else:
            was_open = op in ref
            assert plain.cancel(op) is was_open
            ref.cancel(op)
        assert len(plain) == len(ref)
    assert plain.orders() == ref.orders()
    assert plain.best_bid() == (None if ref.best_bid() is None else ref.best_bid()[0])  # type: ignore[index]
    assert plain.best_ask() == (None if ref.best_ask() is None else ref.best_ask()[0])  # type: ignore[index]


@pytest.mark.parametrize("seed", [1, 2, 20_240_601])
def test_same_checksum_as_the_reference_on_the_standard_flow(seed: int) -> None:
    """On the standard flow (its warm-up and some steady mix), the plain book's fills give
    the reference book's checksum: the same trades, quantity, notional and final book."""
    commands, _stats = generate(seed, 12_000)
    plain, tally = PlainBook(), TradeTally()
    for op in per_call_ops(commands):
        if isinstance(op, tuple):
            tally.add_fills(plain.place(*op))
        else:
            plain.cancel(op)
    assert tally.trades > 100
    assert tally_checksum(tally, plain) == replay_per_call(ReferenceBook(), commands)
