"""A captured exchange state rebuilds an exchange that is, and stays, identical."""

from __future__ import annotations

import random

import msgspec

from engine.licensing import CheckChain
from engine.reports import OrderReport
from engine.state import ExchangeState, capture, digest, rebuild
from tests.kit.commands import random_command, soak_venue
from tests.kit.venues import TS0


def drive(exchange, rnd: random.Random, count: int, ts: int, open_orders: list) -> tuple:
    """Run ``count`` random commands; return (all reports, last ts)."""
    out = []
    for _ in range(count):
        ts += rnd.randint(0, 3)
        command = random_command(rnd, ts, open_orders)
        reports = exchange.execute(command)
        for report in reports:
            if isinstance(report, OrderReport) and report.status == "new":
                open_orders.append((report.participant_id, report.market, report.order_id))
        out.append(reports)
    return out, ts


def test_rebuilt_exchange_has_the_same_digest_and_behaves_the_same():
    """Capture -> msgpack -> rebuild gives the same digest, and the same next 1,500 commands
    then give the same reports and the same final digest on both."""
    rnd = random.Random(5)
    original = soak_venue()
    open_orders: list = []
    _, ts = drive(original, rnd, 3000, TS0, open_orders)
    encoded = msgspec.msgpack.encode(capture(original))
    state = msgspec.msgpack.decode(encoded, type=ExchangeState)
    copy = rebuild(state, CheckChain())
    assert digest(copy) == digest(original)
    copy.check_integrity()
    assert any(book.seq for book in copy.books.values()), "the flow should have traded"

    seed = rnd.random()
    reports_a, _ = drive(original, random.Random(seed), 1500, ts, list(open_orders))
    reports_b, _ = drive(copy, random.Random(seed), 1500, ts, list(open_orders))
    assert reports_a == reports_b
    assert digest(copy) == digest(original)


def test_digest_changes_with_state():
    """Any accepted command changes the digest; a rejected one does not."""
    from engine.commands import Deposit, Withdraw

    exchange = soak_venue()
    before = digest(exchange)
    exchange.execute(Withdraw(ts=TS0, participant_id="p1", asset="KZT", amount=5))
    assert digest(exchange) == before
    exchange.execute(Deposit(ts=TS0, participant_id="p1", asset="KZT", amount=5))
    assert digest(exchange) != before


def test_a_taker_buy_that_rests_after_a_large_fill_survives_a_snapshot():
    """The settlement accumulators outgrow 64 bits on ordinary orders (a taker buy of 1 BTC
    at 45,000,000 KZT that rests after its fill has a fee_num of about 4.5e20): the state
    still encodes, and rebuilds to the same digest and the same behaviour."""
    from engine.commands import Deposit, PlaceOrder
    from engine.types import OrderType, Side, TimeInForce
    from tests.kit.venues import new_venue

    exchange = new_venue(("alice", "bob"))
    for who, asset, amount in (("alice", "BTC", 10**9), ("bob", "KZT", 10**13)):
        exchange.execute(Deposit(ts=TS0, participant_id=who, asset=asset, amount=amount))

    def sell(qty: int) -> PlaceOrder:
        return PlaceOrder(
            ts=TS0,
            participant_id="alice",
            market="BTC-KZT",
            side=Side.SELL,
            qty=qty,
            order_type=OrderType.LIMIT,
            price=4_500_000_000,
            tif=TimeInForce.GTC,
        )

    exchange.execute(sell(10**8))
    exchange.execute(msgspec.structs.replace(sell(2 * 10**8), participant_id="bob", side=Side.BUY))
    (order,) = exchange._orders.values()  # bob's buy, resting after a fill of 1 BTC
    assert order.participant_id == "bob" and order.filled_qty == 10**8
    assert order.fee_num >= 2**64  # the case that failed
    state = msgspec.msgpack.decode(msgspec.msgpack.encode(capture(exchange)), type=ExchangeState)
    copy = rebuild(state, exchange.chain)
    assert digest(copy) == digest(exchange)
    assert copy._orders[order.order_id].fee_num == order.fee_num
    # the rebuilt one settles the rest exactly as the original does
    assert copy.execute(sell(10**8)) == exchange.execute(sell(10**8))
    assert digest(copy) == digest(exchange)
    assert not exchange._orders  # bob's order filled


def test_a_deposit_past_what_the_venue_can_count_is_refused_and_changes_nothing():
    """Deposits less withdrawals of an asset stay within 2^63 - 1 units, so no balance
    can outgrow a snapshot: the deposit that would pass it is refused BALANCE_LIMIT."""
    from engine.commands import Deposit
    from engine.exchange import MAX_ASSET_UNITS
    from engine.reports import CommandRejected
    from tests.kit.venues import new_venue

    exchange = new_venue(("alice", "bob"))
    first = exchange.execute(
        Deposit(ts=TS0, participant_id="alice", asset="KZT", amount=MAX_ASSET_UNITS - 10)
    )
    assert not any(isinstance(r, CommandRejected) for r in first)
    before = digest(exchange)
    (refused,) = exchange.execute(Deposit(ts=TS0, participant_id="bob", asset="KZT", amount=11))
    assert isinstance(refused, CommandRejected) and refused.code == "BALANCE_LIMIT"
    assert "deposit at most 10" in refused.message
    assert digest(exchange) == before
    exchange.execute(Deposit(ts=TS0, participant_id="bob", asset="KZT", amount=10))
    assert exchange.ledger.total("bob", "KZT") == 10
    msgspec.msgpack.encode(capture(exchange))  # every balance still fits
