"""Example-based tests of the order book rules, run on the Cython book and the reference book.

Each test reads as a small scenario: orders rest, a command arrives, and the exact events and
the resulting book are checked.  Prices are in tiyn, quantities in base minor units.
"""

from __future__ import annotations

from typing import Any

import pytest

from engine import OrderBook, OrderType, ReferenceBook, SelfTradePrevention, Side, TimeInForce
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

BUY, SELL = Side.BUY, Side.SELL
LIMIT, MARKET = OrderType.LIMIT, OrderType.MARKET
GTC, IOC, FOK = TimeInForce.GTC, TimeInForce.IOC, TimeInForce.FOK
STP = SelfTradePrevention

Book = OrderBook | ReferenceBook


@pytest.fixture(params=[OrderBook, ReferenceBook], ids=["cython", "reference"])
def book(request: pytest.FixtureRequest) -> Book:
    return request.param()


def rest(book: Book, order_id: int, side: Side, price: int, qty: int, owner: int = 1) -> None:
    """Place a GTC limit order that must rest without trading."""
    events = book.place(order_id, owner, side, price, qty)
    assert events[0] == OrderAccepted(order_id, side.name.lower(), price, qty)
    assert [type(e) for e in events] == [OrderAccepted, BookLevel]


def trades(events: list[Any]) -> list[tuple[int, int, int]]:
    """(maker order id, price, qty) of each Trade event."""
    return [(e.maker_order_id, e.price, e.qty) for e in events if isinstance(e, Trade)]


def levels(events: list[Any]) -> list[BookLevel]:
    return [e for e in events if isinstance(e, BookLevel)]


def snapshot(book: Book) -> tuple[Any, ...]:
    """Everything a client can observe about the book."""
    return (
        book.orders(),
        book.seq,
        len(book),
        book.depth(BUY),
        book.depth(SELL),
        [book.owner_orders(owner) for owner in (1, 2, 3)],
    )


# -- price-time priority -------------------------------------------------------------------


def test_better_price_trades_first(book: Book) -> None:
    """A buy meets the lowest ask first, whatever the order of arrival."""
    rest(book, 1, SELL, 102, 5)
    rest(book, 2, SELL, 100, 5)
    rest(book, 3, SELL, 101, 5)
    events = book.place(4, 2, BUY, 102, 12)
    assert trades(events) == [(2, 100, 5), (3, 101, 5), (1, 102, 2)]
    assert book.orders() == [(1, 1, SELL, 102, 3)]


def test_fifo_within_a_level(book: Book) -> None:
    """At one price, the order that arrived first trades first."""
    rest(book, 1, BUY, 100, 3)
    rest(book, 2, BUY, 100, 3)
    rest(book, 3, BUY, 100, 3)
    events = book.place(4, 2, SELL, 100, 5)
    assert trades(events) == [(1, 100, 3), (2, 100, 2)]
    assert book.orders() == [(2, 1, BUY, 100, 1), (3, 1, BUY, 100, 3)]


def test_trade_prints_at_resting_price(book: Book) -> None:
    """An aggressive order gets the resting order's price, on either side."""
    rest(book, 1, SELL, 100, 5)
    rest(book, 2, BUY, 90, 5)
    buy = book.place(3, 2, BUY, 105, 5)
    assert buy[1] == Trade(1, 100, 5, 1, 3, "buy")
    sell = book.place(4, 2, SELL, 80, 5)
    assert sell[1] == Trade(2, 90, 5, 2, 4, "sell")
    assert len(book) == 0


def test_partial_fill_of_maker_leaves_its_rest(book: Book) -> None:
    """A smaller taker fills part of the maker, whose rest keeps its place."""
    rest(book, 1, SELL, 100, 10)
    events = book.place(2, 2, BUY, 100, 4)
    assert events == [
        OrderAccepted(2, "buy", 100, 4),
        Trade(1, 100, 4, 1, 2, "buy"),
        OrderFilled(1, 2, 100, 4, 6, "maker"),
        OrderFilled(2, 1, 100, 4, 0, "taker"),
        BookLevel("sell", 100, 6, 2),
    ]
    assert book.order(1) == (1, 1, SELL, 100, 6)
    assert 2 not in book


def test_partial_fill_of_taker_rests_the_rest(book: Book) -> None:
    """A GTC limit order that fills partly rests its remaining quantity at its price."""
    rest(book, 1, SELL, 100, 3)
    events = book.place(2, 2, BUY, 101, 8)
    assert events == [
        OrderAccepted(2, "buy", 101, 8),
        Trade(1, 100, 3, 1, 2, "buy"),
        OrderFilled(1, 2, 100, 3, 0, "maker"),
        OrderFilled(2, 1, 100, 3, 5, "taker"),
        BookLevel("sell", 100, 0, 2),
        BookLevel("buy", 101, 5, 2),
    ]
    assert book.orders() == [(2, 2, BUY, 101, 5)]


# -- time in force -------------------------------------------------------------------------


def test_ioc_rest_expires(book: Book) -> None:
    """An IOC order trades what it can and the rest expires instead of resting."""
    rest(book, 1, SELL, 100, 3)
    events = book.place(2, 2, BUY, 100, 5, tif=IOC)
    assert events[-2:] == [OrderExpired(2, 2), BookLevel("sell", 100, 0, 2)]
    assert trades(events) == [(1, 100, 3)]
    assert len(book) == 0


def test_ioc_that_cannot_trade_expires_and_changes_nothing(book: Book) -> None:
    """An IOC order with nothing to meet expires whole; the book and seq are unchanged."""
    rest(book, 1, SELL, 101, 3)
    before = snapshot(book)
    assert book.place(2, 2, BUY, 100, 5, tif=IOC) == [
        OrderAccepted(2, "buy", 100, 5),
        OrderExpired(2, 5),
    ]
    assert snapshot(book) == before


def test_fok_fills_completely_across_levels(book: Book) -> None:
    """A FOK order that can fill completely does, across several levels."""
    rest(book, 1, SELL, 100, 3)
    rest(book, 2, SELL, 101, 4)
    events = book.place(3, 2, BUY, 101, 7, tif=FOK)
    assert trades(events) == [(1, 100, 3), (2, 101, 4)]
    assert not any(isinstance(e, OrderExpired) for e in events)
    assert len(book) == 0


@pytest.mark.parametrize(
    ("price", "qty"),
    [(101, 8), (100, 4), (0, 8)],
    ids=["too-big", "limit-excludes-level", "market-too-big"],
)
def test_fok_that_cannot_fill_has_no_effect(book: Book, price: int, qty: int) -> None:
    """A FOK order that cannot fill completely expires whole and trades nothing at all."""
    rest(book, 1, SELL, 100, 3)
    rest(book, 2, SELL, 101, 4)
    before = snapshot(book)
    order_type = MARKET if price == 0 else LIMIT
    events = book.place(3, 2, BUY, price, qty, order_type, FOK)
    assert events == [OrderAccepted(3, "buy", price, qty), OrderExpired(3, qty)]
    assert snapshot(book) == before


@pytest.mark.parametrize("stp", [STP.CANCEL_NEWEST, STP.CANCEL_BOTH])
def test_fok_stopped_by_self_trade_prevention_has_no_effect(book: Book, stp: int) -> None:
    """A FOK order whose matching an own resting order would stop expires whole: no trade,
    and the own order is not canceled either."""
    rest(book, 1, SELL, 100, 3, owner=1)
    rest(book, 2, SELL, 101, 10, owner=2)
    before = snapshot(book)
    events = book.place(3, 1, BUY, 101, 5, tif=FOK, stp=stp)
    assert events == [OrderAccepted(3, "buy", 101, 5), OrderExpired(3, 5)]
    assert snapshot(book) == before


def test_fok_with_cancel_oldest_counts_only_other_owners(book: Book) -> None:
    """With CANCEL_OLDEST a FOK order can only count on other owners' quantity; if that is
    not enough it expires whole and the own order is not canceled."""
    rest(book, 1, SELL, 100, 3, owner=1)
    rest(book, 2, SELL, 101, 10, owner=2)
    before = snapshot(book)
    events = book.place(3, 1, BUY, 101, 12, tif=FOK, stp=STP.CANCEL_OLDEST)
    assert events == [OrderAccepted(3, "buy", 101, 12), OrderExpired(3, 12)]
    assert snapshot(book) == before
    events = book.place(4, 1, BUY, 101, 10, tif=FOK, stp=STP.CANCEL_OLDEST)
    assert events[1] == OrderCanceled(1, 3, "self_trade")
    assert trades(events) == [(2, 101, 10)]
    assert len(book) == 0


# -- market orders -------------------------------------------------------------------------


def test_market_order_sweeps_levels(book: Book) -> None:
    """A market buy without a limit takes the asks best first until it is filled."""
    rest(book, 1, SELL, 100, 2)
    rest(book, 2, SELL, 101, 3)
    rest(book, 3, SELL, 102, 4)
    events = book.place(4, 2, BUY, 0, 6, MARKET, IOC)
    assert events[0] == OrderAccepted(4, "buy", 0, 6)
    assert trades(events) == [(1, 100, 2), (2, 101, 3), (3, 102, 1)]
    assert levels(events) == [
        BookLevel("sell", 100, 0, 4),
        BookLevel("sell", 101, 0, 4),
        BookLevel("sell", 102, 3, 4),
    ]
    assert book.orders() == [(3, 1, SELL, 102, 3)]


def test_market_sell_sweeps_bids_best_first(book: Book) -> None:
    """A market sell takes the highest bids first and its unfilled rest expires."""
    rest(book, 1, BUY, 99, 2)
    rest(book, 2, BUY, 100, 2)
    events = book.place(3, 2, SELL, 0, 5, MARKET, IOC)
    assert trades(events) == [(2, 100, 2), (1, 99, 2)]
    assert OrderExpired(3, 1) in events
    assert len(book) == 0


def test_market_order_with_price_limit_stops_at_the_limit(book: Book) -> None:
    """A market order with a price limit trades only up to that price; the rest expires."""
    rest(book, 1, SELL, 100, 2)
    rest(book, 2, SELL, 101, 3)
    rest(book, 3, SELL, 102, 4)
    events = book.place(4, 2, BUY, 101, 10, MARKET, IOC)
    assert trades(events) == [(1, 100, 2), (2, 101, 3)]
    assert OrderExpired(4, 5) in events
    assert book.orders() == [(3, 1, SELL, 102, 4)]


@pytest.mark.parametrize("tif", [IOC, FOK])
def test_market_order_on_empty_book_expires(book: Book, tif: int) -> None:
    """A market order with nothing to trade against expires at once; seq does not move."""
    assert book.place(1, 1, BUY, 0, 5, MARKET, tif) == [
        OrderAccepted(1, "buy", 0, 5),
        OrderExpired(1, 5),
    ]
    assert book.seq == 0
    assert len(book) == 0


@pytest.mark.parametrize("price", [0, 100])
def test_market_gtc_is_rejected(book: Book, price: int) -> None:
    """A market order cannot be GTC: it is rejected with INVALID_TIF."""
    rest(book, 1, SELL, 100, 5)
    before = snapshot(book)
    assert book.place(2, 2, BUY, price, 5, MARKET, GTC) == [OrderRejected(2, "INVALID_TIF")]
    assert snapshot(book) == before


# -- post-only -----------------------------------------------------------------------------


@pytest.mark.parametrize("price", [100, 101])
def test_post_only_that_would_trade_is_rejected(book: Book, price: int) -> None:
    """A post-only order at or through the opposite best is rejected; the book is unchanged."""
    rest(book, 1, SELL, 100, 5)
    before = snapshot(book)
    events = book.place(2, 2, BUY, price, 5, post_only=True)
    assert events == [OrderRejected(2, "POST_ONLY_WOULD_TRADE")]
    assert snapshot(book) == before


def test_post_only_that_would_not_trade_rests(book: Book) -> None:
    """A post-only order below the best ask rests like any limit order."""
    rest(book, 1, SELL, 100, 5)
    assert book.place(2, 2, BUY, 99, 5, post_only=True) == [
        OrderAccepted(2, "buy", 99, 5),
        BookLevel("buy", 99, 5, 2),
    ]


@pytest.mark.parametrize(
    ("order_type", "tif"),
    [(LIMIT, IOC), (LIMIT, FOK), (MARKET, IOC), (MARKET, FOK)],
    ids=["limit-ioc", "limit-fok", "market-ioc", "market-fok"],
)
def test_post_only_must_be_a_gtc_limit(book: Book, order_type: int, tif: int) -> None:
    """Post-only with IOC, FOK or a market order is rejected with INVALID_TIF."""
    rest(book, 1, SELL, 100, 5)
    before = snapshot(book)
    events = book.place(2, 2, BUY, 99, 5, order_type, tif, post_only=True)
    assert events == [OrderRejected(2, "INVALID_TIF")]
    assert snapshot(book) == before


# -- self-trade prevention -----------------------------------------------------------------


def _two_asks_first_own(book: Book) -> None:
    """Owner 1's ask of 5 at 100, then owner 2's ask of 5 at 100 behind it (seq 2)."""
    rest(book, 1, SELL, 100, 5, owner=1)
    rest(book, 2, SELL, 100, 5, owner=2)


def test_stp_none_trades_with_own_order(book: Book) -> None:
    """STP NONE: an owner's orders trade with each other like any others."""
    _two_asks_first_own(book)
    assert book.place(3, 1, BUY, 100, 8, stp=STP.NONE) == [
        OrderAccepted(3, "buy", 100, 8),
        Trade(1, 100, 5, 1, 3, "buy"),
        OrderFilled(1, 3, 100, 5, 0, "maker"),
        OrderFilled(3, 1, 100, 5, 3, "taker"),
        Trade(2, 100, 3, 2, 3, "buy"),
        OrderFilled(2, 3, 100, 3, 2, "maker"),
        OrderFilled(3, 2, 100, 3, 0, "taker"),
        BookLevel("sell", 100, 2, 3),
    ]
    assert book.orders() == [(2, 2, SELL, 100, 2)]


def test_stp_cancel_newest_cancels_the_incoming_order(book: Book) -> None:
    """STP CANCEL_NEWEST: meeting an own order cancels the incoming order's rest; the
    resting order stays and nothing else changes."""
    _two_asks_first_own(book)
    before = snapshot(book)
    assert book.place(3, 1, BUY, 100, 8, stp=STP.CANCEL_NEWEST) == [
        OrderAccepted(3, "buy", 100, 8),
        OrderCanceled(3, 8, "self_trade"),
    ]
    assert snapshot(book) == before


def test_stp_cancel_newest_after_a_partial_fill(book: Book) -> None:
    """STP CANCEL_NEWEST: what traded before the own order was met stays traded."""
    rest(book, 1, SELL, 100, 3, owner=2)
    rest(book, 2, SELL, 100, 5, owner=1)
    assert book.place(3, 1, BUY, 100, 8, stp=STP.CANCEL_NEWEST) == [
        OrderAccepted(3, "buy", 100, 8),
        Trade(1, 100, 3, 1, 3, "buy"),
        OrderFilled(1, 3, 100, 3, 0, "maker"),
        OrderFilled(3, 1, 100, 3, 5, "taker"),
        OrderCanceled(3, 5, "self_trade"),
        BookLevel("sell", 100, 5, 3),
    ]


def test_stp_cancel_oldest_cancels_the_resting_order(book: Book) -> None:
    """STP CANCEL_OLDEST: the own resting order is canceled and matching goes on."""
    _two_asks_first_own(book)
    assert book.place(3, 1, BUY, 100, 8, stp=STP.CANCEL_OLDEST) == [
        OrderAccepted(3, "buy", 100, 8),
        OrderCanceled(1, 5, "self_trade"),
        Trade(1, 100, 5, 2, 3, "buy"),
        OrderFilled(2, 3, 100, 5, 0, "maker"),
        OrderFilled(3, 2, 100, 5, 3, "taker"),
        BookLevel("sell", 100, 0, 3),
        BookLevel("buy", 100, 3, 3),
    ]
    assert book.orders() == [(3, 1, BUY, 100, 3)]


def test_stp_cancel_both_cancels_both_orders(book: Book) -> None:
    """STP CANCEL_BOTH: the own resting order and the incoming order are both canceled."""
    _two_asks_first_own(book)
    assert book.place(3, 1, BUY, 100, 8, stp=STP.CANCEL_BOTH) == [
        OrderAccepted(3, "buy", 100, 8),
        OrderCanceled(1, 5, "self_trade"),
        OrderCanceled(3, 8, "self_trade"),
        BookLevel("sell", 100, 5, 3),
    ]
    assert book.orders() == [(2, 2, SELL, 100, 5)]


def test_stp_mode_of_the_incoming_order_decides(book: Book) -> None:
    """The resting order's STP mode does not matter: an incoming NONE order trades with it."""
    book.place(1, 1, SELL, 100, 5, stp=STP.CANCEL_BOTH)
    events = book.place(2, 1, BUY, 100, 5, stp=STP.NONE)
    assert trades(events) == [(1, 100, 5)]


# -- amend ---------------------------------------------------------------------------------


def test_amend_qty_decrease_keeps_priority(book: Book) -> None:
    """Reducing an order's quantity at the same price keeps its place at the front."""
    rest(book, 1, SELL, 100, 5)
    rest(book, 2, SELL, 100, 5)
    assert book.amend(1, 100, 3) == [
        OrderAmended(1, 100, 3, True),
        BookLevel("sell", 100, 8, 3),
    ]
    events = book.place(3, 2, BUY, 100, 3)
    assert trades(events) == [(1, 100, 3)]


def test_amend_to_same_price_and_qty_changes_nothing(book: Book) -> None:
    """An amend that changes nothing is accepted, keeps priority and does not bump seq."""
    rest(book, 1, SELL, 100, 5)
    before = snapshot(book)
    assert book.amend(1, 100, 5) == [OrderAmended(1, 100, 5, True)]
    assert snapshot(book) == before


def test_amend_qty_increase_loses_priority(book: Book) -> None:
    """Increasing an order's quantity sends it to the back of its level's queue."""
    rest(book, 1, SELL, 100, 5)
    rest(book, 2, SELL, 100, 5)
    assert book.amend(1, 100, 7) == [
        OrderAmended(1, 100, 7, False),
        BookLevel("sell", 100, 12, 3),
    ]
    assert [o[0] for o in book.orders()] == [2, 1]
    events = book.place(3, 2, BUY, 100, 6)
    assert trades(events) == [(2, 100, 5), (1, 100, 1)]


def test_amend_price_change_loses_priority(book: Book) -> None:
    """Moving an order to another price puts it behind the orders already there."""
    rest(book, 1, SELL, 100, 5)
    rest(book, 2, SELL, 101, 5)
    assert book.amend(1, 101, 5) == [
        OrderAmended(1, 101, 5, False),
        BookLevel("sell", 100, 0, 3),
        BookLevel("sell", 101, 10, 3),
    ]
    events = book.place(3, 2, BUY, 101, 6)
    assert trades(events) == [(2, 101, 5), (1, 101, 1)]


def test_amend_post_only_to_crossing_price_is_rejected(book: Book) -> None:
    """A post-only order moved to a price that would trade is refused; nothing changes."""
    rest(book, 1, SELL, 101, 5, owner=2)
    book.place(2, 1, BUY, 99, 5, post_only=True)
    before = snapshot(book)
    for price in (101, 102):
        assert book.amend(2, price, 5) == [AmendRejected(2, "POST_ONLY_WOULD_TRADE")]
        assert snapshot(book) == before


def test_amend_post_only_to_a_non_crossing_price_is_accepted(book: Book) -> None:
    """A post-only order may move to any price that does not trade."""
    rest(book, 1, SELL, 101, 5, owner=2)
    book.place(2, 1, BUY, 99, 5, post_only=True)
    assert book.amend(2, 100, 5) == [
        OrderAmended(2, 100, 5, False),
        BookLevel("buy", 99, 0, 3),
        BookLevel("buy", 100, 5, 3),
    ]


def test_amend_to_crossing_price_trades_at_once(book: Book) -> None:
    """A (non-post-only) order moved across the spread trades at once at the resting price,
    and its rest rests at the new price."""
    rest(book, 1, BUY, 99, 5, owner=1)
    rest(book, 2, SELL, 101, 3, owner=2)
    assert book.amend(1, 102, 5) == [
        OrderAmended(1, 102, 5, False),
        Trade(1, 101, 3, 2, 1, "buy"),
        OrderFilled(2, 1, 101, 3, 0, "maker"),
        OrderFilled(1, 2, 101, 3, 2, "taker"),
        BookLevel("buy", 99, 0, 3),
        BookLevel("sell", 101, 0, 3),
        BookLevel("buy", 102, 2, 3),
    ]
    assert book.orders() == [(1, 1, BUY, 102, 2)]


@pytest.mark.parametrize(
    ("order_id", "price", "qty", "code"),
    [
        (9, 100, 5, "UNKNOWN_ORDER"),
        (1, 100, 0, "INVALID_QTY"),
        (1, 100, -5, "INVALID_QTY"),
        (1, 0, 5, "INVALID_PRICE"),
        (1, -100, 5, "INVALID_PRICE"),
    ],
)
def test_invalid_amend_is_rejected(
    book: Book, order_id: int, price: int, qty: int, code: str
) -> None:
    """An amend of an unknown order or to a non-positive price or qty is refused unchanged."""
    rest(book, 1, SELL, 100, 5)
    before = snapshot(book)
    assert book.amend(order_id, price, qty) == [AmendRejected(order_id, code)]
    assert snapshot(book) == before


# -- cancel and cancel-all -----------------------------------------------------------------


def test_cancel_removes_the_order(book: Book) -> None:
    """Canceling an open order removes it and reports the level's new aggregate."""
    rest(book, 1, BUY, 100, 5)
    rest(book, 2, BUY, 100, 2)
    assert book.cancel(1) == [OrderCanceled(1, 5, "user"), BookLevel("buy", 100, 2, 3)]
    assert book.cancel(2) == [OrderCanceled(2, 2, "user"), BookLevel("buy", 100, 0, 4)]
    assert len(book) == 0
    assert book.best_bid() is None


@pytest.mark.parametrize("order_id", [1, 2, 42], ids=["canceled", "filled", "never-seen"])
def test_cancel_unknown_is_rejected(book: Book, order_id: int) -> None:
    """Canceling an order that is not open is refused with UNKNOWN_ORDER."""
    rest(book, 1, BUY, 100, 5)
    rest(book, 2, SELL, 101, 5)
    book.cancel(1)
    book.place(3, 2, BUY, 101, 5)
    before = snapshot(book)
    assert book.cancel(order_id) == [CancelRejected(order_id, "UNKNOWN_ORDER")]
    assert snapshot(book) == before


def test_cancel_all_leaves_other_owners_orders(book: Book) -> None:
    """cancel_all cancels one owner's orders, in the order they were accepted, only."""
    rest(book, 1, BUY, 99, 1, owner=1)
    rest(book, 2, BUY, 99, 2, owner=2)
    rest(book, 3, SELL, 101, 3, owner=1)
    rest(book, 4, BUY, 98, 4, owner=1)
    assert book.cancel_all(1) == [
        OrderCanceled(1, 1, "cancel_all"),
        OrderCanceled(3, 3, "cancel_all"),
        OrderCanceled(4, 4, "cancel_all"),
        BookLevel("buy", 99, 2, 5),
        BookLevel("sell", 101, 0, 5),
        BookLevel("buy", 98, 0, 5),
    ]
    assert book.orders() == [(2, 2, BUY, 99, 2)]
    assert book.owner_orders(1) == []
    assert book.owner_orders(2) == [2]


def test_cancel_all_one_side(book: Book) -> None:
    """cancel_all with a side cancels only that side of the owner's orders."""
    rest(book, 1, BUY, 99, 1, owner=1)
    rest(book, 2, SELL, 101, 3, owner=1)
    rest(book, 3, SELL, 102, 3, owner=2)
    assert book.cancel_all(1, SELL) == [
        OrderCanceled(2, 3, "cancel_all"),
        BookLevel("sell", 101, 0, 4),
    ]
    assert book.orders() == [(1, 1, BUY, 99, 1), (3, 2, SELL, 102, 3)]


def test_cancel_all_without_orders_does_nothing(book: Book) -> None:
    """cancel_all for an owner with no open orders returns no events and keeps seq."""
    rest(book, 1, BUY, 99, 1, owner=1)
    before = snapshot(book)
    assert book.cancel_all(2) == []
    assert book.cancel_all(1, SELL) == []
    assert snapshot(book) == before


# -- ids and queries -----------------------------------------------------------------------


def test_duplicate_open_order_id_is_rejected(book: Book) -> None:
    """A new order cannot use the id of an open order; once that order is gone it can."""
    rest(book, 1, BUY, 99, 1)
    before = snapshot(book)
    assert book.place(1, 2, SELL, 105, 1) == [OrderRejected(1, "DUPLICATE_ORDER_ID")]
    assert snapshot(book) == before
    book.cancel(1)
    rest(book, 1, SELL, 105, 1, owner=2)
    assert book.order(1) == (1, 2, SELL, 105, 1)


def test_queries_report_open_orders(book: Book) -> None:
    """len, in, order, orders, owner_orders, best prices and depth describe the open orders."""
    rest(book, 1, BUY, 99, 1, owner=1)
    rest(book, 2, BUY, 100, 2, owner=2)
    rest(book, 3, SELL, 102, 3, owner=1)
    rest(book, 4, SELL, 101, 4, owner=2)
    rest(book, 5, BUY, 99, 5, owner=1)
    assert len(book) == 5
    assert 3 in book
    assert 6 not in book
    assert book.order(3) == (3, 1, SELL, 102, 3)
    assert book.order(6) is None
    assert book.orders() == [
        (2, 2, BUY, 100, 2),
        (1, 1, BUY, 99, 1),
        (5, 1, BUY, 99, 5),
        (4, 2, SELL, 101, 4),
        (3, 1, SELL, 102, 3),
    ]
    assert book.owner_orders(1) == [1, 3, 5]
    assert book.owner_orders(3) == []
    assert book.best_bid() == (100, 2)
    assert book.best_ask() == (101, 4)
    assert book.depth(BUY) == [(100, 2), (99, 6)]
    assert book.depth(SELL, 1) == [(101, 4)]
    book.check_integrity()


def test_empty_book(book: Book) -> None:
    """A new book is empty, with seq 0 and no best prices."""
    assert len(book) == 0
    assert book.seq == 0
    assert book.best_bid() is None
    assert book.best_ask() is None
    assert book.depth(BUY) == []
    assert book.depth(SELL) == []
    assert book.orders() == []
    book.check_integrity()


# -- L2 sequencing -------------------------------------------------------------------------


def test_book_level_events_share_one_seq_per_command(book: Book) -> None:
    """Each command that changes levels bumps seq by one; all its BookLevel events carry
    it, with the level's new aggregate (0 when the level is gone)."""
    rest(book, 1, SELL, 100, 2)
    assert book.seq == 1
    rest(book, 2, SELL, 101, 3)
    assert book.seq == 2
    events = book.place(3, 2, BUY, 101, 4)
    assert levels(events) == [
        BookLevel("sell", 100, 0, 3),
        BookLevel("sell", 101, 1, 3),
    ]
    assert book.seq == 3
    events = book.place(4, 2, BUY, 105, 6)
    assert levels(events) == [
        BookLevel("sell", 101, 0, 4),
        BookLevel("buy", 105, 5, 4),
    ]
    assert book.seq == 4


def test_level_emptied_and_refilled_in_one_command_is_reported_once(book: Book) -> None:
    """A level that one command empties and fills again is reported once, with its final
    aggregate."""
    rest(book, 1, BUY, 100, 5)
    assert book.amend(1, 100, 6) == [
        OrderAmended(1, 100, 6, False),
        BookLevel("buy", 100, 6, 2),
    ]
    assert book.orders() == [(1, 1, BUY, 100, 6)]


@pytest.mark.parametrize(
    "command",
    [
        lambda b: b.place(1, 2, SELL, 100, 1),  # duplicate id
        lambda b: b.place(9, 2, SELL, 100, 0),  # invalid qty
        lambda b: b.place(9, 2, SELL, 100, -1),  # invalid qty
        lambda b: b.place(9, 2, SELL, 0, 1),  # limit without a price
        lambda b: b.place(9, 2, SELL, -1, 1, MARKET, IOC),  # negative price
        lambda b: b.place(9, 2, SELL, 99, 1, post_only=True),  # post-only would trade
        lambda b: b.place(9, 2, SELL, 0, 1, MARKET, GTC),  # market GTC
        lambda b: b.place(9, 2, SELL, 101, 1, tif=IOC, post_only=True),  # post-only IOC
        lambda b: b.cancel(9),
        lambda b: b.amend(9, 100, 1),
        lambda b: b.amend(1, 99, 0),
        lambda b: b.amend(1, -1, 1),
    ],
    ids=[
        "duplicate",
        "zero-qty",
        "negative-qty",
        "zero-price",
        "negative-price",
        "post-only-trades",
        "market-gtc",
        "post-only-ioc",
        "cancel-unknown",
        "amend-unknown",
        "amend-zero-qty",
        "amend-negative-price",
    ],
)
def test_rejected_commands_do_not_bump_seq(book: Book, command: Any) -> None:
    """A rejected command returns one rejection and changes neither the book nor seq."""
    rest(book, 1, BUY, 99, 5)
    before = snapshot(book)
    events = command(book)
    assert len(events) == 1
    assert isinstance(events[0], OrderRejected | AmendRejected | CancelRejected)
    assert snapshot(book) == before


# -- misuse --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad",
    [
        {"side": 2},
        {"side": -1},
        {"order_type": 2},
        {"order_type": -1},
        {"tif": 3},
        {"tif": -1},
        {"stp": 4},
        {"stp": -1},
    ],
    ids=lambda bad: "-".join(f"{k}={v}" for k, v in bad.items()),
)
def test_out_of_range_enum_raises_value_error(book: Book, bad: dict[str, int]) -> None:
    """An out-of-range side, order type, time in force or STP mode is a caller's bug:
    ValueError, and the book is unchanged."""
    rest(book, 1, BUY, 99, 5)
    before = snapshot(book)
    args: dict[str, Any] = {"order_id": 2, "owner": 1, "side": SELL, "price": 99, "qty": 5}
    with pytest.raises(ValueError):
        book.place(**(args | bad))
    assert snapshot(book) == before


@pytest.mark.parametrize("side", [2, -1])
def test_cancel_all_with_out_of_range_side_raises_value_error(book: Book, side: int) -> None:
    """cancel_all with an out-of-range side raises ValueError and cancels nothing."""
    rest(book, 1, BUY, 99, 5)
    before = snapshot(book)
    with pytest.raises(ValueError):
        book.cancel_all(1, side)
    assert snapshot(book) == before


@pytest.mark.parametrize("field", ["side", "order_type", "tif", "stp"])
@pytest.mark.parametrize("value", [2**31, -(2**63)])
def test_enum_far_out_of_range_raises_value_error(book: Book, field: str, value: int) -> None:
    """An enum value outside int32 is a ValueError like any other bad value (not an
    OverflowError, not truncated)."""
    args: dict[str, Any] = {"order_id": 1, "owner": 1, "side": BUY, "price": 99, "qty": 5}
    with pytest.raises(ValueError):
        book.place(**(args | {field: value}))
    assert len(book) == 0


# -- a long queue --------------------------------------------------------------------------


def test_ten_thousand_orders_at_one_level(book: Book) -> None:
    """A level of 10,000 orders: canceling one from the middle and matching through all of
    them keeps time priority and the book's integrity (correctness only, no timing)."""
    n = 10_000
    for order_id in range(1, n + 1):
        book.place(order_id, order_id % 3 + 1, SELL, 100, 1)
    assert book.best_ask() == (100, n)
    assert book.cancel(5000) == [
        OrderCanceled(5000, 1, "user"),
        BookLevel("sell", 100, n - 1, n + 1),
    ]
    assert book.depth(SELL) == [(100, n - 1)]
    book.check_integrity()
    events = book.place(n + 1, 9, BUY, 100, n + 1)
    makers = [e.maker_order_id for e in events if isinstance(e, Trade)]
    assert makers == [*range(1, 5000), *range(5001, n + 1)]
    assert events[-2:] == [
        BookLevel("sell", 100, 0, n + 2),
        BookLevel("buy", 100, 2, n + 2),
    ]
    assert book.orders() == [(n + 1, 9, BUY, 100, 2)]
    assert book.owner_orders(1) == []
    book.check_integrity()
