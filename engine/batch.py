"""The compact batch format: many commands in, events out, as flat arrays of int64.

Calling the Cython book once per command costs a Python call and a Python object per
event.  For replays and benchmarks, ``OrderBook.execute_batch`` takes a whole array of
commands and returns a flat array of event records, crossing the Python/C boundary once.
This module encodes commands into that form and decodes records back into the same
``engine.events`` objects the per-call API returns, so both paths can be compared.

Commands: ``COMMAND_WIDTH`` int64 fields each::

    op, order_id, owner, side, price, qty, order_type, tif, post_only, stp

``op`` is one of ``PLACE``, ``CANCEL``, ``AMEND`` (uses order_id, price, qty) and
``CANCEL_ALL`` (uses owner, and side, with -1 for both sides).

Events: ``EVENT_WIDTH`` int64 fields each, ``kind`` first; the other fields by kind::

    ACCEPTED        order_id, side, price, qty
    REJECTED        order_id, reject number (engine.reject)
    FILLED          order_id, counter_order_id, price, qty, remaining_qty, liquidity (0 maker)
    CANCELED        order_id, remaining_qty, reason (0 user, 1 self_trade, 2 cancel_all)
    EXPIRED         order_id, remaining_qty
    AMENDED         order_id, price, qty, priority_kept
    AMEND_REJECTED  order_id, reject number
    CANCEL_REJECTED order_id, reject number
    TRADE           trade_id, price, qty, maker_order_id, taker_order_id, taker_side
    LEVEL           side, price, qty, seq

``execute_batch`` also returns, per command, the index of its first event record, so the
events of command ``i`` are records ``offsets[i]`` to ``offsets[i + 1]`` (or the end).
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable, Sequence
from typing import Literal

from . import reject
from .events import (
    AmendRejected,
    BookLevel,
    CancelRejected,
    Event,
    OrderAccepted,
    OrderAmended,
    OrderCanceled,
    OrderExpired,
    OrderFilled,
    OrderRejected,
    Trade,
)
from .types import LIQUIDITY_NAMES, SIDE_NAMES

COMMAND_WIDTH = 10
EVENT_WIDTH = 8

# Command ops
PLACE = 1
CANCEL = 2
AMEND = 3
CANCEL_ALL = 4

# Event kinds
ACCEPTED = 1
REJECTED = 2
FILLED = 3
CANCELED = 4
EXPIRED = 5
AMENDED = 6
AMEND_REJECTED = 7
CANCEL_REJECTED = 8
TRADE = 9
LEVEL = 10

CANCEL_REASONS: tuple[Literal["user"], Literal["self_trade"], Literal["cancel_all"]] = (
    "user",
    "self_trade",
    "cancel_all",
)


def place(
    order_id: int,
    owner: int,
    side: int,
    price: int,
    qty: int,
    order_type: int = 0,
    tif: int = 0,
    post_only: bool = False,
    stp: int = 0,
) -> tuple[int, ...]:
    """One PLACE command record (the arguments of ``OrderBook.place``)."""
    return (PLACE, order_id, owner, side, price, qty, order_type, tif, int(post_only), stp)


def cancel(order_id: int) -> tuple[int, ...]:
    """One CANCEL command record."""
    return (CANCEL, order_id, 0, 0, 0, 0, 0, 0, 0, 0)


def amend(order_id: int, price: int, qty: int) -> tuple[int, ...]:
    """One AMEND command record."""
    return (AMEND, order_id, 0, 0, price, qty, 0, 0, 0, 0)


def cancel_all(owner: int, side: int | None = None) -> tuple[int, ...]:
    """One CANCEL_ALL command record (side None: both sides)."""
    return (CANCEL_ALL, 0, owner, -1 if side is None else side, 0, 0, 0, 0, 0, 0)


def encode_commands(commands: Iterable[Sequence[int]]) -> array[int]:
    """Pack command records (from the helpers above) into one int64 array."""
    out = array("q")
    for command in commands:
        if len(command) != COMMAND_WIDTH:
            raise ValueError(f"a command record has {COMMAND_WIDTH} fields, got {len(command)}")
        out.extend(command)
    return out


def decode_event(record: Sequence[int]) -> Event:
    """One event record back into its ``engine.events`` object."""
    kind = record[0]
    a, b, c, d, e, f = record[1], record[2], record[3], record[4], record[5], record[6]
    if kind == ACCEPTED:
        return OrderAccepted(a, SIDE_NAMES[b], c, d)
    if kind == REJECTED:
        return OrderRejected(a, reject.code_name(b))
    if kind == FILLED:
        return OrderFilled(a, b, c, d, e, LIQUIDITY_NAMES[f])
    if kind == CANCELED:
        return OrderCanceled(a, b, CANCEL_REASONS[c])
    if kind == EXPIRED:
        return OrderExpired(a, b)
    if kind == AMENDED:
        return OrderAmended(a, b, c, bool(d))
    if kind == AMEND_REJECTED:
        return AmendRejected(a, reject.code_name(b))
    if kind == CANCEL_REJECTED:
        return CancelRejected(a, reject.code_name(b))
    if kind == TRADE:
        return Trade(a, b, c, d, e, SIDE_NAMES[f])
    if kind == LEVEL:
        return BookLevel(SIDE_NAMES[a], b, c, d)
    raise ValueError(f"unknown event kind {kind}")


def decode_events(records: Sequence[int]) -> list[Event]:
    """A flat array of event records back into event objects."""
    if len(records) % EVENT_WIDTH:
        raise ValueError(f"event array length {len(records)} is not a multiple of {EVENT_WIDTH}")
    return [decode_event(records[i : i + EVENT_WIDTH]) for i in range(0, len(records), EVENT_WIDTH)]


def split_by_command(events: Sequence[int], offsets: Sequence[int]) -> list[list[Event]]:
    """The decoded events of each command of a batch, using the offsets it returned."""
    total = len(events) // EVENT_WIDTH
    out = []
    for i, start in enumerate(offsets):
        end = offsets[i + 1] if i + 1 < len(offsets) else total
        out.append(decode_events(events[start * EVENT_WIDTH : end * EVENT_WIDTH]))
    return out
