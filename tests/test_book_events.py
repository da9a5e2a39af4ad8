"""The compiled book's event objects (engine/_core/eventobjects.h) are ordinary events.

The per-call API builds its msgspec Structs directly and reuses freed events' memory; none
of that may show: the events equal and print as the types' own, hold exact ints, and
nothing leaks however many are made and dropped.
"""

from __future__ import annotations

import gc
import sys
from enum import IntEnum

import msgspec

from engine import OrderBook, ReferenceBook
from engine.events import BookLevel, Event, OrderAccepted, OrderCanceled, Trade

PRICE = 4_500_000_000
LOT = 1_000


def _cycle(book: OrderBook, order_id: int, price: int, qty: int) -> list[Event]:
    """A resting buy and a sell that fills it, then a cancel of nothing: 8 events."""
    events = book.place(order_id, 1, 0, price, qty)
    events += book.place(order_id + 1, 2, 1, price, qty)
    events += book.cancel(order_id)
    return events


def test_events_are_the_types_own() -> None:
    """Each event equals, prints as and encodes as one built by calling its type."""
    book, ref = OrderBook(), ReferenceBook()
    for b in (book, ref):
        b.place(1, 1, 0, PRICE, 5 * LOT)
        b.place(2, 2, 1, PRICE + 100, 5 * LOT)
    ours = book.place(3, 3, 1, PRICE, 8 * LOT) + book.cancel(2) + book.cancel(99)
    theirs = ref.place(3, 3, 1, PRICE, 8 * LOT) + ref.cancel(2) + ref.cancel(99)
    assert ours == theirs
    assert [repr(e) for e in ours] == [repr(e) for e in theirs]
    assert msgspec.json.encode(ours) == msgspec.json.encode(theirs)
    for event in ours:
        rebuilt = type(event)(*(getattr(event, f) for f in event.__struct_fields__))
        assert rebuilt == event and not gc.is_tracked(event)
        for field in event.__struct_fields__:
            value = getattr(event, field)
            assert type(value) in (int, str, bool), (event, field)


def test_an_int_subclass_comes_back_as_an_exact_int() -> None:
    """An order id given as an int subclass (an IntEnum here) is an exact int of the same
    value in the events, as from the type call on the converted number."""

    class Id(IntEnum):
        SEVEN = 7_000_007

    accepted = OrderBook().place(Id.SEVEN, 1, 0, PRICE, LOT)[0]
    assert isinstance(accepted, OrderAccepted)
    assert type(accepted.order_id) is int and accepted.order_id == Id.SEVEN


def test_ints_built_in_place_are_ordinary_ints() -> None:
    """The book builds its events' ints itself (eventobjects.h, evo_long): one and two
    30-bit digits, the small-int cache's edges and values beyond two digits all come back
    equal to, hashing and printing as the ints the reference book's events hold."""
    edges = (1, 256, 257, 2**30 - 1, 2**30, 2**30 + 1, 2**60 - 1, 2**60, 2**62 + 3)
    for qty in edges:
        book, ref = OrderBook(), ReferenceBook()
        for b in (book, ref):
            b.place(1, 1, 1, PRICE, qty + 5)
        ours = book.place(2, 2, 0, PRICE, qty) + book.cancel(1)
        theirs = ref.place(2, 2, 0, PRICE, qty) + ref.cancel(1)
        assert ours == theirs
        for event, expected in zip(ours, theirs, strict=True):
            for field in event.__struct_fields__:
                value, want = getattr(event, field), getattr(expected, field)
                assert type(value) is type(want) and value == want, (event, field)
                assert hash(value) == hash(want) and str(value) == str(want)
                if type(value) is int:
                    assert sys.getsizeof(value) == sys.getsizeof(want + 0), (event, field)
                    assert value - want == 0 and (value + 1) - 1 == want


def test_a_deleted_field_and_mutation_are_safe() -> None:
    """Events stay mutable Structs: a field can be set or deleted and the event dropped."""
    events = _cycle(OrderBook(), 10, PRICE, LOT)
    level = events[1]
    assert isinstance(level, BookLevel)
    level.qty = 123
    assert level.qty == 123
    del level.qty
    del events, level
    gc.collect()
    again = _cycle(OrderBook(), 10, PRICE, LOT)
    assert isinstance(again[1], BookLevel) and again[1].qty == LOT


def test_no_reference_leaks() -> None:
    """Making and dropping many events leaves the refcounts of the event types, of an int
    and of the side's string where they were: a leak of one reference per event would show
    as tens of thousands (a couple either way is the harness's own)."""
    book = OrderBook()
    price = PRICE + 777_700
    _cycle(book, 1, price, LOT)  # warm: the free lists hold memory from here on
    types = (OrderAccepted, OrderCanceled, Trade, BookLevel)

    def counts() -> list[int]:
        gc.collect()
        return [sys.getrefcount(x) for x in (*types, price, "buy")]

    before = counts()
    made = 0
    for i in range(20_000):
        made += len(_cycle(book, 10 + 2 * i, price, LOT))
    after = counts()
    assert made == 8 * 20_000 and len(book) == 0
    assert all(abs(a - b) <= 2 for a, b in zip(after, before, strict=True)), (before, after)


def _flow(n: int) -> list[tuple[int, ...] | int]:
    """A deterministic mix of resting places, crossing places and cancels at a few prices:
    every kind of new int (aggregates, remaining quantities, seqs, trade and maker ids)."""
    ops: list[tuple[int, ...] | int] = []
    for i in range(1, n + 1):
        if i % 5 == 4:
            ops.append(i - 2)  # a cancel, sometimes of an order already filled
        else:
            side = (i * 7) % 2
            price = PRICE + 100 * ((i * 13) % 6) + (0 if i % 3 else 1)
            ops.append((i, 1 + i % 4, side, price, LOT * (1 + (i * 11) % 9)))
    return ops


def _run(book: OrderBook | ReferenceBook, op: tuple[int, ...] | int) -> list[Event]:
    return book.place(*op) if isinstance(op, tuple) else book.cancel(op)


def test_recycled_ints_never_change_under_a_holder() -> None:
    """The compiled book recycles the ints it made once nothing else holds them
    (eventobjects.h, evo_long's pool).  Ints that are still held, by kept events or taken
    out of dropped ones, keep their values through thousands of later commands, and every
    event equals the reference book's, kept or rebuilt from kept fields."""
    book, ref = OrderBook(), ReferenceBook()
    kept_events: list[tuple[list[Event], list[Event]]] = []
    kept_fields: list[tuple[object, object]] = []
    for i, op in enumerate(_flow(6_000)):
        ours, theirs = _run(book, op), _run(ref, op)
        assert ours == theirs, op
        if i % 7 == 0:
            kept_events.append((ours, theirs))
        elif i % 7 == 3:
            # Keep only the fields' int objects; the events and the list are dropped.
            kept_fields += [
                (getattr(e, f), getattr(t, f))
                for e, t in zip(ours, theirs, strict=True)
                for f in e.__struct_fields__
            ]
    assert len(kept_events) > 500 and len(kept_fields) > 5_000
    for ours, theirs in kept_events:
        assert ours == theirs
    for value, want in kept_fields:
        assert type(value) is type(want) and value == want
        if type(value) is int:
            assert sys.getsizeof(value) == sys.getsizeof(want + 0)
