"""Differential stateful tests: the Cython OrderBook must behave exactly like ReferenceBook.

Hypothesis drives random command sequences (every order type, time in force, post-only,
every self-trade prevention mode, amend, cancel, cancel-all, duplicate and invalid input)
into both books at once and requires equal events for every command and equal state after
every step.  A narrow price band and few owners make crossing orders and self-trades common.

``BatchBookComparison`` also runs each command through ``OrderBook.execute_batch`` on a
third book, and at the end the whole sequence as one batch on a fourth, and requires the
same events as the per-call path.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from engine import OrderBook, OrderType, ReferenceBook, SelfTradePrevention, Side, TimeInForce
from engine import batch as batch_format
from engine.events import BookLevel, OrderAccepted

LOW, HIGH = 95, 105
OWNERS = (1, 2, 3)
EXTREME_IDS = (0, -1, 2**31, 2**32, 2**63 - 1, -(2**63))

prices = st.integers(min_value=LOW, max_value=HIGH)
market_limits = st.one_of(st.just(0), prices)  # 0: no limit
owners = st.sampled_from(OWNERS)
sides = st.sampled_from(Side)
qtys = st.integers(min_value=1, max_value=20)
bad_qtys = st.integers(min_value=-3, max_value=0)
bad_prices = st.integers(min_value=-3, max_value=0)
tifs = st.sampled_from(TimeInForce)
stps = st.sampled_from(SelfTradePrevention)

STATEFUL_SETTINGS = settings(
    max_examples=200,
    stateful_step_count=50,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


class BookComparison(RuleBasedStateMachine):
    """Same commands to both books; same events and same state, always."""

    def __init__(self) -> None:
        super().__init__()
        self.fast = OrderBook()
        self.ref = ReferenceBook()
        self.next_id = 1
        self.used_ids: set[int] = set()
        self.post_only_ids: set[int] = set()  # ids last accepted as post-only
        self.previous_seq = 0

    # -- running one command on both books ----------------------------------------------

    def run(self, method: str, args: tuple[Any, ...], record: tuple[int, ...]) -> list[Any]:
        """Run one command on both books, compare the events, check L2 sequencing."""
        expected = getattr(self.ref, method)(*args)
        got = getattr(self.fast, method)(*args)
        assert got == expected, f"{method}{args}:\n  cython    {got}\n  reference {expected}"
        self.check_levels(expected)
        self.after_command(record, expected)
        return expected

    def after_command(self, record: tuple[int, ...], events: list[Any]) -> None:
        """Hook for the batch comparison."""

    def check_levels(self, events: list[Any]) -> None:
        """BookLevel events come last, once per level, all with seq = previous seq + 1, and
        carry the level's new aggregate (0: the level is gone)."""
        levels = [e for e in events if isinstance(e, BookLevel)]
        assert events[len(events) - len(levels) :] == levels, f"BookLevel not last: {events}"
        if levels:
            assert {e.seq for e in levels} == {self.previous_seq + 1}, levels
            assert self.ref.seq == self.previous_seq + 1
            keys = [(e.side, e.price) for e in levels]
            assert len(keys) == len(set(keys)), f"a level reported twice: {levels}"
            for e in levels:
                side = Side.BUY if e.side == "buy" else Side.SELL
                now = dict(self.ref.depth(side)).get(e.price, 0)
                assert e.qty == now, f"{e} but the level now holds {now}"
        else:
            assert self.ref.seq == self.previous_seq
        assert self.fast.seq == self.ref.seq
        self.previous_seq = self.ref.seq

    def fresh_id(self) -> int:
        order_id = self.next_id
        self.next_id += 1
        return order_id

    def place(
        self,
        order_id: int,
        owner: int,
        side: int,
        price: int,
        qty: int,
        order_type: int = OrderType.LIMIT,
        tif: int = TimeInForce.GTC,
        post_only: bool = False,
        stp: int = SelfTradePrevention.NONE,
    ) -> list[Any]:
        self.used_ids.add(order_id)
        args = (order_id, owner, side, price, qty, order_type, tif, post_only, stp)
        events = self.run("place", args, batch_format.place(*args))
        if isinstance(events[0], OrderAccepted):
            if post_only:
                self.post_only_ids.add(order_id)
            else:
                self.post_only_ids.discard(order_id)
        return events

    def live_ids(self) -> list[int]:
        return [o[0] for o in self.ref.orders()]

    def has_orders(self) -> bool:
        return len(self.ref) > 0

    def live_post_only_ids(self) -> list[int]:
        return [order_id for order_id in self.live_ids() if order_id in self.post_only_ids]

    def has_post_only_orders(self) -> bool:
        return bool(self.live_post_only_ids())

    def dead_ids(self) -> list[int]:
        return sorted(self.used_ids - set(self.live_ids()))

    def has_dead_ids(self) -> bool:
        return bool(self.used_ids) and len(self.used_ids) > len(self.ref)

    # -- rules: new orders --------------------------------------------------------------

    @initialize(owner=owners, qty=qtys)
    def seed_both_sides(self, owner: int, qty: int) -> None:
        """Start with a bid and an ask near the middle so the first commands can trade."""
        self.place(self.fresh_id(), owner, Side.BUY, 99, qty)
        self.place(self.fresh_id(), owner % 3 + 1, Side.SELL, 101, qty)

    @rule(owner=owners, side=sides, price=prices, qty=qtys, tif=tifs, stp=stps)
    def place_limit(self, owner: int, side: Side, price: int, qty: int, tif: int, stp: int) -> None:
        """A limit order, GTC, IOC or FOK, with any self-trade prevention mode."""
        self.place(self.fresh_id(), owner, side, price, qty, OrderType.LIMIT, tif, False, stp)

    @rule(owner=owners, side=sides, price=prices, qty=qtys, stp=stps)
    def place_limit_gtc(self, owner: int, side: Side, price: int, qty: int, stp: int) -> None:
        """More resting orders, so the book has depth to trade against."""
        self.place(self.fresh_id(), owner, side, price, qty, stp=stp)

    @rule(
        owner=owners,
        side=sides,
        price=market_limits,
        qty=st.integers(min_value=1, max_value=60),
        tif=st.sampled_from([TimeInForce.IOC, TimeInForce.FOK]),
        stp=stps,
    )
    def place_market(
        self, owner: int, side: Side, price: int, qty: int, tif: int, stp: int
    ) -> None:
        """A market order, IOC or FOK, with a price limit or none (price 0)."""
        self.place(self.fresh_id(), owner, side, price, qty, OrderType.MARKET, tif, False, stp)

    @rule(owner=owners, side=sides, price=market_limits, qty=qtys, post_only=st.booleans())
    def place_market_gtc(
        self, owner: int, side: Side, price: int, qty: int, post_only: bool
    ) -> None:
        """A market GTC order (rejected: INVALID_TIF)."""
        self.place(
            self.fresh_id(), owner, side, price, qty, OrderType.MARKET, TimeInForce.GTC, post_only
        )

    @rule(owner=owners, side=sides, price=prices, qty=qtys, tif=tifs, stp=stps)
    def place_post_only(
        self, owner: int, side: Side, price: int, qty: int, tif: int, stp: int
    ) -> None:
        """A post-only order: rests, or is rejected if it would trade or is not GTC."""
        self.place(self.fresh_id(), owner, side, price, qty, OrderType.LIMIT, tif, True, stp)

    @precondition(has_orders)
    @rule(
        data=st.data(),
        owner=owners,
        side=sides,
        price=prices,
        qty=qtys,
        order_type=st.sampled_from(OrderType),
        tif=tifs,
    )
    def place_duplicate_id(
        self,
        data: st.DataObject,
        owner: int,
        side: Side,
        price: int,
        qty: int,
        order_type: int,
        tif: int,
    ) -> None:
        """An order whose id is already open (rejected: DUPLICATE_ORDER_ID)."""
        order_id = data.draw(st.sampled_from(self.live_ids()), label="live id")
        self.place(order_id, owner, side, price, qty, order_type, tif)

    @precondition(has_dead_ids)
    @rule(data=st.data(), owner=owners, side=sides, price=prices, qty=qtys, stp=stps)
    def place_reusing_dead_id(
        self, data: st.DataObject, owner: int, side: Side, price: int, qty: int, stp: int
    ) -> None:
        """An id whose order is filled, canceled, expired or was rejected may be used again."""
        order_id = data.draw(st.sampled_from(self.dead_ids()), label="dead id")
        self.place(order_id, owner, side, price, qty, stp=stp)

    @rule(
        order_id=st.sampled_from(EXTREME_IDS),
        owner=owners,
        side=sides,
        price=prices,
        qty=qtys,
        tif=tifs,
    )
    def place_extreme_id(
        self, order_id: int, owner: int, side: Side, price: int, qty: int, tif: int
    ) -> None:
        """Order ids anywhere in int64, including 0, negatives and the extremes."""
        self.place(order_id, owner, side, price, qty, tif=tif)

    @rule(
        owner=owners,
        side=sides,
        price=prices,
        qty=bad_qtys,
        order_type=st.sampled_from(OrderType),
        tif=tifs,
        post_only=st.booleans(),
    )
    def place_invalid_qty(
        self,
        owner: int,
        side: Side,
        price: int,
        qty: int,
        order_type: int,
        tif: int,
        post_only: bool,
    ) -> None:
        """A zero or negative quantity (rejected: INVALID_QTY)."""
        self.place(self.fresh_id(), owner, side, price, qty, order_type, tif, post_only)

    @rule(
        owner=owners,
        side=sides,
        price=bad_prices,
        qty=qtys,
        order_type=st.sampled_from(OrderType),
        tif=tifs,
        post_only=st.booleans(),
    )
    def place_invalid_price(
        self,
        owner: int,
        side: Side,
        price: int,
        qty: int,
        order_type: int,
        tif: int,
        post_only: bool,
    ) -> None:
        """A negative price, or 0 on a limit order (rejected: INVALID_PRICE)."""
        self.place(self.fresh_id(), owner, side, price, qty, order_type, tif, post_only)

    # -- rules: cancel ------------------------------------------------------------------

    @precondition(has_orders)
    @rule(data=st.data())
    def cancel_live(self, data: st.DataObject) -> None:
        """Cancel an open order."""
        order_id = data.draw(st.sampled_from(self.live_ids()), label="live id")
        self.run("cancel", (order_id,), batch_format.cancel(order_id))

    @rule(data=st.data())
    def cancel_unknown(self, data: st.DataObject) -> None:
        """Cancel an id that is not open (never used, or already gone)."""
        order_id = data.draw(
            st.one_of(st.sampled_from(self.dead_ids() or [10**9]), st.just(10**9)), label="id"
        )
        self.run("cancel", (order_id,), batch_format.cancel(order_id))

    @rule(owner=st.sampled_from((*OWNERS, 99)), side=st.sampled_from([None, *Side]))
    def cancel_all(self, owner: int, side: Side | None) -> None:
        """Cancel all of one owner's orders, on both sides or one."""
        self.run("cancel_all", (owner, side), batch_format.cancel_all(owner, side))

    # -- rules: amend -------------------------------------------------------------------

    def amend(self, order_id: int, price: int, qty: int) -> list[Any]:
        return self.run("amend", (order_id, price, qty), batch_format.amend(order_id, price, qty))

    def draw_live_order(self, data: st.DataObject) -> tuple[int, int, int, int, int]:
        return data.draw(st.sampled_from(self.ref.orders()), label="live order")

    @precondition(has_orders)
    @rule(data=st.data())
    def amend_reduce(self, data: st.DataObject) -> None:
        """Reduce an order's quantity at the same price (keeps priority); or leave it as is."""
        order_id, _, _, price, qty = self.draw_live_order(data)
        new_qty = data.draw(st.integers(min_value=1, max_value=qty), label="new qty")
        self.amend(order_id, price, new_qty)

    @precondition(has_orders)
    @rule(data=st.data(), extra=st.integers(min_value=1, max_value=10))
    def amend_increase(self, data: st.DataObject, extra: int) -> None:
        """Increase an order's quantity (loses priority)."""
        order_id, _, _, price, qty = self.draw_live_order(data)
        self.amend(order_id, price, qty + extra)

    @precondition(has_orders)
    @rule(data=st.data(), price=prices, qty=qtys)
    def amend_price(self, data: st.DataObject, price: int, qty: int) -> None:
        """Move an order to any price in the band: may cross and trade, or be refused
        if the order is post-only."""
        order_id = self.draw_live_order(data)[0]
        self.amend(order_id, price, qty)

    @precondition(has_post_only_orders)
    @rule(data=st.data(), qty=qtys, through=st.integers(min_value=0, max_value=2))
    def amend_post_only_across(self, data: st.DataObject, qty: int, through: int) -> None:
        """Move a post-only order to or through the opposite best: refused
        (POST_ONLY_WOULD_TRADE) when there is an opposite side to trade with."""
        order_id = data.draw(st.sampled_from(self.live_post_only_ids()), label="post-only id")
        side = self.ref.order(order_id)[2]
        if side == Side.BUY:
            best = self.ref.best_ask()
            price = best[0] + through if best else HIGH
        else:
            best = self.ref.best_bid()
            price = best[0] - through if best else LOW
        self.amend(order_id, price, qty)

    @precondition(has_orders)
    @rule(data=st.data(), price=st.one_of(prices, bad_prices), qty=st.one_of(qtys, bad_qtys))
    def amend_invalid(self, data: st.DataObject, price: int, qty: int) -> None:
        """Amend with a zero/negative quantity or price (refused unless both are valid)."""
        order_id = self.draw_live_order(data)[0]
        if price > 0 and qty > 0:
            qty = -qty
        self.amend(order_id, price, qty)

    @rule(data=st.data(), price=st.one_of(prices, bad_prices), qty=st.one_of(qtys, bad_qtys))
    def amend_unknown(self, data: st.DataObject, price: int, qty: int) -> None:
        """Amend an id that is not open (refused: UNKNOWN_ORDER)."""
        order_id = data.draw(
            st.one_of(st.sampled_from(self.dead_ids() or [10**9]), st.just(10**9)), label="id"
        )
        self.amend(order_id, price, qty)

    # -- invariants ---------------------------------------------------------------------

    @invariant()
    def same_state(self) -> None:
        """Both books hold the same orders, levels, sequence number and owner lists."""
        fast, ref = self.fast, self.ref
        assert fast.orders() == ref.orders()
        assert fast.seq == ref.seq
        assert len(fast) == len(ref)
        assert fast.best_bid() == ref.best_bid()
        assert fast.best_ask() == ref.best_ask()
        for side in Side:
            assert fast.depth(side) == ref.depth(side)
            assert fast.depth(side, 2) == ref.depth(side, 2)
        for owner in (*OWNERS, 99):
            assert fast.owner_orders(owner) == ref.owner_orders(owner)
        for order_id in self.used_ids:
            assert (order_id in fast) == (order_id in ref)
            assert fast.order(order_id) == ref.order(order_id)

    @invariant()
    def books_are_sound(self) -> None:
        """Integrity checks pass, the book is not crossed, levels add up."""
        self.fast.check_integrity()
        self.ref.check_integrity()
        bid, ask = self.ref.best_bid(), self.ref.best_ask()
        if bid is not None and ask is not None:
            assert bid[0] < ask[0], f"crossed book: bid {bid} ask {ask}"
        for book in (self.fast, self.ref):
            sums: dict[int, dict[int, int]] = {side: defaultdict(int) for side in Side}
            for _, _, side, price, qty in book.orders():
                assert qty > 0
                sums[side][price] += qty
            for side in Side:
                depth = book.depth(side)
                assert dict(depth) == dict(sums[side])
                level_prices = [price for price, _ in depth]
                best_first = sorted(level_prices, reverse=side == Side.BUY)
                assert level_prices == best_first
                assert all(qty > 0 for _, qty in depth)
            by_owner = sorted(oid for owner in (*OWNERS, 99) for oid in book.owner_orders(owner))
            assert by_owner == sorted(o[0] for o in book.orders())


class BatchBookComparison(BookComparison):
    """As BookComparison, and ``execute_batch`` gives the same events as the per-call API:
    command by command on a third book, and as one batch on a fourth at the end."""

    def __init__(self) -> None:
        super().__init__()
        self.batched = OrderBook()
        self.records: list[tuple[int, ...]] = []
        self.per_call: list[list[Any]] = []

    def after_command(self, record: tuple[int, ...], events: list[Any]) -> None:
        out, offsets = self.batched.execute_batch(batch_format.encode_commands([record]))
        assert list(offsets) == [0]
        assert batch_format.split_by_command(out, offsets) == [events], record
        self.records.append(record)
        self.per_call.append(events)

    @invariant()
    def batched_book_agrees(self) -> None:
        """The book driven through execute_batch is in the same state."""
        assert self.batched.orders() == self.ref.orders()
        assert self.batched.seq == self.ref.seq
        self.batched.check_integrity()

    def teardown(self) -> None:
        if not self.records:
            return
        whole = OrderBook()
        out, offsets = whole.execute_batch(batch_format.encode_commands(self.records))
        assert len(offsets) == len(self.records)
        assert batch_format.split_by_command(out, offsets) == self.per_call
        assert whole.orders() == self.ref.orders()
        assert whole.seq == self.ref.seq
        whole.check_integrity()


TestBookComparison = BookComparison.TestCase
TestBookComparison.settings = STATEFUL_SETTINGS

TestBatchBookComparison = BatchBookComparison.TestCase
TestBatchBookComparison.settings = settings(STATEFUL_SETTINGS, max_examples=100)
