"""A book rebuilt from export_orders() and its counters behaves exactly like the original."""

from __future__ import annotations

import random

import pytest

from engine import OrderBook, ReferenceBook


@pytest.mark.parametrize("book_class", [OrderBook, ReferenceBook])
def test_restored_book_matches_original(book_class):
    """Same orders, seq and trade ids; the next 2,000 random commands give equal events."""
    rnd = random.Random(3)
    original = book_class()
    for order_id in range(1, 4000):
        original.place(
            order_id,
            rnd.randint(1, 3),
            rnd.randint(0, 1),
            rnd.randint(90, 110),
            rnd.randint(1, 9),
            stp=rnd.randint(0, 3),
            post_only=False,
        )
        if rnd.random() < 0.3:
            original.cancel(rnd.randint(1, order_id))
    copy = book_class()
    copy.restore(original.export_orders(), original.seq, original.last_trade_id)
    copy.check_integrity()
    assert copy.export_orders() == original.export_orders()
    assert (copy.seq, copy.last_trade_id) == (original.seq, original.last_trade_id)
    for owner in (1, 2, 3):
        assert copy.owner_orders(owner) == original.owner_orders(owner)
    for order_id in range(4000, 6000):
        args = (order_id, rnd.randint(1, 3), rnd.randint(0, 1), rnd.randint(88, 112))
        qty, stp = rnd.randint(1, 30), rnd.randint(0, 3)
        assert copy.place(*args, qty, stp=stp) == original.place(*args, qty, stp=stp)
        if rnd.random() < 0.1:
            owner = rnd.randint(1, 3)
            assert copy.cancel_all(owner) == original.cancel_all(owner)


@pytest.mark.parametrize("book_class", [OrderBook, ReferenceBook])
def test_restore_refuses_bad_input(book_class):
    """Restore needs an empty book and records that neither cross nor repeat an id."""
    book = book_class()
    with pytest.raises(ValueError):
        book.restore([(1, 1, 0, 100, 5, False, 0), (2, 1, 1, 99, 5, False, 0)], 0, 0)
    fresh = book_class()
    with pytest.raises(ValueError):
        fresh.restore([(1, 1, 0, 100, 5, False, 0), (1, 1, 0, 100, 5, False, 0)], 0, 0)
    used = book_class()
    used.place(1, 1, 0, 100, 5)
    with pytest.raises(ValueError):
        used.restore([], 0, 0)
