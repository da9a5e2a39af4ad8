"""The compact batch format (engine.batch) and OrderBook.execute_batch.

The batch path must be an exact replacement for calling the book once per command: same
events, split per command by the returned offsets, and the same book afterwards.
"""

from __future__ import annotations

import random
from array import array
from collections.abc import Sequence
from typing import Any

import pytest

from engine import (
    OrderBook,
    OrderType,
    ReferenceBook,
    SelfTradePrevention,
    Side,
    TimeInForce,
    batch,
)
from engine.events import (
    AmendRejected,
    BookLevel,
    CancelRejected,
    OrderAccepted,
    OrderAmended,
    OrderCanceled,
    OrderExpired,
    OrderFilled,
    OrderRejected,
    Trade,
)
from engine.reject import BY_CODE

BUY, SELL = Side.BUY, Side.SELL
MARKET = OrderType.MARKET
IOC, FOK = TimeInForce.IOC, TimeInForce.FOK


def snapshot(book: OrderBook | ReferenceBook) -> tuple[Any, ...]:
    """Everything a client can observe about the book."""
    return (
        book.orders(),
        book.seq,
        len(book),
        book.depth(BUY),
        book.depth(SELL),
        [book.owner_orders(owner) for owner in (1, 2, 3)],
    )


def run_per_call(book: OrderBook | ReferenceBook, record: Sequence[int]) -> list[Any]:
    """Run one command record through the per-call API."""
    op, order_id, owner, side, price, qty, order_type, tif, post_only, stp = record
    if op == batch.PLACE:
        return book.place(order_id, owner, side, price, qty, order_type, tif, bool(post_only), stp)
    if op == batch.CANCEL:
        return book.cancel(order_id)
    if op == batch.AMEND:
        return book.amend(order_id, price, qty)
    assert op == batch.CANCEL_ALL
    return book.cancel_all(owner, None if side == -1 else side)


def run_batch(book: OrderBook, records: Sequence[Sequence[int]]) -> list[list[Any]]:
    """Run records as one batch and return the decoded events of each command."""
    events, offsets = book.execute_batch(batch.encode_commands(records))
    assert len(offsets) == len(records)
    assert len(events) % batch.EVENT_WIDTH == 0
    return batch.split_by_command(events, offsets)


def record_of(event: Any) -> list[int]:
    """An event as the record documented in engine.batch (the inverse of decode_event)."""
    side = {"buy": 0, "sell": 1}
    match event:
        case OrderAccepted(order_id, s, price, qty):
            fields = [batch.ACCEPTED, order_id, side[s], price, qty]
        case OrderRejected(order_id, code):
            fields = [batch.REJECTED, order_id, BY_CODE[code].number]
        case OrderFilled(order_id, counter, price, qty, remaining, liquidity):
            fields = [batch.FILLED, order_id, counter, price, qty, remaining]
            fields.append(0 if liquidity == "maker" else 1)
        case OrderCanceled(order_id, remaining, reason):
            fields = [batch.CANCELED, order_id, remaining, batch.CANCEL_REASONS.index(reason)]
        case OrderExpired(order_id, remaining):
            fields = [batch.EXPIRED, order_id, remaining]
        case OrderAmended(order_id, price, qty, kept):
            fields = [batch.AMENDED, order_id, price, qty, int(kept)]
        case AmendRejected(order_id, code):
            fields = [batch.AMEND_REJECTED, order_id, BY_CODE[code].number]
        case CancelRejected(order_id, code):
            fields = [batch.CANCEL_REJECTED, order_id, BY_CODE[code].number]
        case Trade(trade_id, price, qty, maker, taker, s):
            fields = [batch.TRADE, trade_id, price, qty, maker, taker, side[s]]
        case BookLevel(s, price, qty, seq):
            fields = [batch.LEVEL, side[s], price, qty, seq]
        case _:
            raise AssertionError(f"not an event: {event!r}")
    return fields + [0] * (batch.EVENT_WIDTH - len(fields))


ONE_OF_EACH_EVENT = [
    OrderAccepted(7, "sell", 45_000_000_00, 15_000),
    OrderRejected(8, "POST_ONLY_WOULD_TRADE"),
    OrderFilled(7, 3, 100, 5, 0, "maker"),
    OrderFilled(3, 7, 100, 5, 2, "taker"),
    OrderCanceled(9, 4, "user"),
    OrderCanceled(9, 4, "self_trade"),
    OrderCanceled(9, 4, "cancel_all"),
    OrderExpired(10, 1),
    OrderAmended(11, 101, 3, True),
    OrderAmended(11, 102, 4, False),
    AmendRejected(12, "UNKNOWN_ORDER"),
    CancelRejected(13, "UNKNOWN_ORDER"),
    Trade(1, 100, 5, 7, 3, "buy"),
    BookLevel("buy", 2**62, 0, 2**40),
]


# -- the format ----------------------------------------------------------------------------


def test_encode_commands_packs_records_in_order() -> None:
    """encode_commands concatenates the command records into one int64 array."""
    records = [
        batch.place(1, 2, SELL, 100, 5, MARKET, FOK, True, SelfTradePrevention.CANCEL_BOTH),
        batch.cancel(-(2**63)),
        batch.amend(2**63 - 1, 101, 6),
        batch.cancel_all(3),
        batch.cancel_all(3, SELL),
    ]
    packed = batch.encode_commands(records)
    assert packed.typecode == "q"
    assert len(packed) == len(records) * batch.COMMAND_WIDTH
    chunks = [
        tuple(packed[i : i + batch.COMMAND_WIDTH])
        for i in range(0, len(packed), batch.COMMAND_WIDTH)
    ]
    assert chunks == records
    assert records[0] == (batch.PLACE, 1, 2, 1, 100, 5, 1, 2, 1, 3)
    assert records[3][3] == -1  # cancel_all without a side: both sides


def test_encode_commands_rejects_a_record_of_the_wrong_width() -> None:
    """A command record with a field too many or too few is a ValueError."""
    with pytest.raises(ValueError, match="10 fields"):
        batch.encode_commands([(*batch.cancel(1), 0)])
    with pytest.raises(ValueError, match="10 fields"):
        batch.encode_commands([batch.cancel(1)[:-1]])


@pytest.mark.parametrize("event", ONE_OF_EACH_EVENT, ids=lambda e: type(e).__name__)
def test_event_record_round_trip(event: Any) -> None:
    """Every kind of event survives the documented record layout unchanged."""
    record = record_of(event)
    assert len(record) == batch.EVENT_WIDTH
    assert batch.decode_event(record) == event


def test_decode_events_splits_a_flat_array() -> None:
    """decode_events reads a flat array of records back into the events, in order."""
    flat = array("q", [field for event in ONE_OF_EACH_EVENT for field in record_of(event)])
    assert batch.decode_events(flat) == ONE_OF_EACH_EVENT


def test_decode_rejects_bad_input() -> None:
    """An unknown event kind or a ragged event array is a ValueError."""
    with pytest.raises(ValueError, match="unknown event kind"):
        batch.decode_event([99, 0, 0, 0, 0, 0, 0, 0])
    with pytest.raises(ValueError, match="multiple of"):
        batch.decode_events([batch.EXPIRED, 1, 1, 0, 0, 0, 0])


# -- execute_batch -------------------------------------------------------------------------


def resting_book() -> OrderBook:
    book = OrderBook()
    book.place(1, 1, BUY, 99, 5)
    book.place(2, 2, SELL, 101, 5)
    return book


def test_empty_batch_returns_nothing() -> None:
    """An empty batch returns no events and no offsets and changes nothing."""
    book = resting_book()
    before = snapshot(book)
    events, offsets = book.execute_batch(array("q"))
    assert len(events) == 0
    assert len(offsets) == 0
    assert snapshot(book) == before


def test_offsets_split_events_per_command() -> None:
    """offsets[i] is the index of command i's first event record; commands without
    events get an empty slice."""
    records = [
        batch.place(1, 1, BUY, 99, 5),  # accepted, level
        batch.place(1, 1, BUY, 99, 5),  # duplicate: one rejection
        batch.cancel_all(2),  # nothing to cancel: no events
        batch.cancel(7),  # unknown: one rejection
        batch.place(2, 2, SELL, 99, 2),  # accepted, trade, two fills, level
        batch.amend(1, 99, 1),  # amended, level
    ]
    events, offsets = OrderBook().execute_batch(batch.encode_commands(records))
    assert list(offsets) == [0, 2, 3, 3, 4, 9]
    assert len(events) == 11 * batch.EVENT_WIDTH
    per_command = batch.split_by_command(events, offsets)
    assert per_command[2] == []
    reference = ReferenceBook()
    assert per_command == [run_per_call(reference, r) for r in records]


BAD_RECORDS = {
    "op-0": (0, 1, 1, 0, 100, 1, 0, 0, 0, 0),
    "op-5": (5, 1, 1, 0, 100, 1, 0, 0, 0, 0),
    "op-negative": (-1, 1, 1, 0, 100, 1, 0, 0, 0, 0),
    "side-2": batch.place(9, 1, 2, 100, 1),
    "side-negative": batch.place(9, 1, -1, 100, 1),
    "order-type-2": batch.place(9, 1, BUY, 100, 1, order_type=2),
    "tif-3": batch.place(9, 1, BUY, 100, 1, tif=3),
    "tif-negative": batch.place(9, 1, BUY, 100, 1, tif=-1),
    "stp-4": batch.place(9, 1, BUY, 100, 1, stp=4),
    "stp-negative": batch.place(9, 1, BUY, 100, 1, stp=-1),
    "cancel-all-side-2": batch.cancel_all(1, 2),
    "cancel-all-side-minus-2": (batch.CANCEL_ALL, 0, 1, -2, 0, 0, 0, 0, 0, 0),
}


@pytest.mark.parametrize("position", ["first", "middle", "last"])
@pytest.mark.parametrize("bad", BAD_RECORDS.values(), ids=BAD_RECORDS.keys())
def test_bad_batch_raises_and_changes_nothing(bad: tuple[int, ...], position: str) -> None:
    """A batch with an unknown op or an out-of-range enum anywhere raises ValueError before
    any command runs: the book, seq and trade ids are as they were."""
    good = [batch.place(3, 3, BUY, 101, 2), batch.cancel(1), batch.cancel_all(2)]
    index = {"first": 0, "middle": 1, "last": len(good)}[position]
    records = [*good[:index], bad, *good[index:]]
    book = resting_book()
    before = snapshot(book)
    with pytest.raises(ValueError):
        book.execute_batch(batch.encode_commands(records))
    assert snapshot(book) == before
    # The next trade still gets trade id 1: nothing ran.
    assert book.place(4, 3, BUY, 101, 1)[1] == Trade(1, 101, 1, 2, 4, "buy")


def test_bad_batch_on_empty_book_leaves_it_empty() -> None:
    """A rejected batch leaves an empty book empty, with seq 0."""
    book = OrderBook()
    with pytest.raises(ValueError):
        book.execute_batch(batch.encode_commands([batch.place(1, 1, BUY, 100, 1), (9,) * 10]))
    assert len(book) == 0
    assert book.seq == 0
    assert book.orders() == []


def test_ragged_command_array_raises_and_changes_nothing() -> None:
    """A command array whose length is not a multiple of the record width is a ValueError."""
    book = resting_book()
    before = snapshot(book)
    packed = batch.encode_commands([batch.place(3, 3, BUY, 101, 2)])
    packed.append(0)
    with pytest.raises(ValueError, match="multiple of"):
        book.execute_batch(packed)
    assert snapshot(book) == before


@pytest.mark.parametrize(
    "bad",
    [
        batch.place(9, 1, 2**32, 100, 1),
        batch.place(9, 1, BUY, 100, 1, order_type=2**32 + 1),
        batch.place(9, 1, BUY, 100, 1, tif=2**32 + 1),
        batch.place(9, 1, BUY, 100, 1, stp=2**32 + 3),
    ],
    ids=["side", "order-type", "tif", "stp"],
)
def test_batch_enum_outside_int32_raises_value_error(bad: tuple[int, ...]) -> None:
    """An enum field outside int32 is out of range too (not truncated to a valid value):
    ValueError, nothing changes."""
    book = resting_book()
    before = snapshot(book)
    with pytest.raises(ValueError):
        book.execute_batch(batch.encode_commands([bad]))
    assert snapshot(book) == before


# -- batch == per-call on a random flow ----------------------------------------------------


class RandomFlow:
    """A seeded random command stream that follows the live orders of a reference book, so
    that cancels and amends mostly hit open orders and prices cross often."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.oracle = ReferenceBook()
        self.oracle_events: list[Any] = []  # what the oracle returned for the last command
        self.next_id = 1

    def command(self) -> tuple[int, ...]:
        rng = self.rng
        live = [o[0] for o in self.oracle.orders()]
        roll = rng.random()
        if live and roll < 0.12:
            record = batch.cancel(rng.choice(live))
        elif live and roll < 0.25:
            order_id = rng.choice(live)
            _, _, _, price, qty = self.oracle.order(order_id)
            kind = rng.randrange(4)
            if kind == 0:
                record = batch.amend(order_id, price, rng.randint(1, qty))
            elif kind == 1:
                record = batch.amend(order_id, price, qty + rng.randint(1, 5))
            elif kind == 2:
                record = batch.amend(order_id, rng.randint(95, 105), rng.randint(1, 20))
            else:
                record = batch.amend(order_id, rng.randint(-1, 105), rng.randint(-1, 1))
        elif roll < 0.28:
            record = batch.cancel(rng.choice([*live[:3], 10**9]))  # maybe known, maybe not
        elif roll < 0.30:
            record = batch.amend(10**9, 100, 1)
        elif roll < 0.33:
            side = rng.choice([None, BUY, SELL])
            record = batch.cancel_all(rng.randint(1, 3), side)
        else:
            record = self.new_order(live)
        self.oracle_events = run_per_call(self.oracle, record)
        return record

    def new_order(self, live: list[int]) -> tuple[int, ...]:
        rng = self.rng
        if live and rng.random() < 0.03:
            order_id = rng.choice(live)  # duplicate
        else:
            order_id = self.next_id
            self.next_id += 1
        owner = rng.randint(1, 3)
        side = rng.choice([BUY, SELL])
        qty = rng.randint(1, 20) if rng.random() < 0.97 else rng.randint(-2, 0)
        stp = rng.choice(list(SelfTradePrevention))
        if rng.random() < 0.15:
            price = rng.choice([0, 0, rng.randint(95, 105), -1])
            tif = rng.choice([IOC, IOC, FOK, TimeInForce.GTC])
            return batch.place(order_id, owner, side, price, qty * 3, MARKET, tif, False, stp)
        price = rng.randint(95, 105) if rng.random() < 0.98 else rng.randint(-1, 0)
        tif = rng.choices(list(TimeInForce), weights=[6, 2, 2])[0]
        post_only = rng.random() < 0.1
        return batch.place(order_id, owner, side, price, qty, 0, tif, post_only, stp)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_batch_equals_per_call_on_a_random_flow(seed: int) -> None:
    """A few thousand random commands give the same events through execute_batch (in one
    batch, or in chunks) as through the per-call API, and leave the same book."""
    flow = RandomFlow(seed)
    per_call_book = OrderBook()
    records: list[tuple[int, ...]] = []
    per_call: list[list[Any]] = []
    for _ in range(3000):
        record = flow.command()
        events = run_per_call(per_call_book, record)
        assert events == flow.oracle_events, record
        records.append(record)
        per_call.append(events)
    assert sum(1 for events in per_call for e in events if isinstance(e, Trade)) > 100

    whole = OrderBook()
    assert run_batch(whole, records) == per_call
    assert snapshot(whole) == snapshot(flow.oracle)
    whole.check_integrity()

    chunked = OrderBook()
    rng = random.Random(seed)
    start = 0
    while start < len(records):
        end = start + rng.randint(1, 200)
        assert run_batch(chunked, records[start:end]) == per_call[start:end]
        start = end
    assert snapshot(chunked) == snapshot(flow.oracle)
    chunked.check_integrity()


def test_batch_and_per_call_interleave() -> None:
    """Batches and single calls can be mixed on one book: seq and trade ids carry on."""
    flow = RandomFlow(7)
    book = OrderBook()
    rng = random.Random(7)
    for _ in range(100):
        if rng.random() < 0.5:
            record = flow.command()
            assert run_per_call(book, record) == flow.oracle_events
        else:
            records, expected = [], []
            for _ in range(rng.randint(0, 30)):
                records.append(flow.command())
                expected.append(flow.oracle_events)
            assert run_batch(book, records) == expected
    assert snapshot(book) == snapshot(flow.oracle)
    book.check_integrity()
