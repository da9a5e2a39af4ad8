"""Random command streams through the exchange keep the ledger's invariants after every command."""

from __future__ import annotations

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from engine.commands import AmendOrder, CancelAll, CancelOrder, Deposit, PlaceOrder, Withdraw
from engine.reports import FillReport, OrderReport
from engine.types import OrderType, SelfTradePrevention, Side, TimeInForce
from tests.kit.venues import TS0, new_venue

PARTICIPANTS = ("alice", "bob", "carol")
BTC_REF = 4_500_000_000  # 45,000,000.00 KZT in tiyn
USDT_REF = 51_500  # 515.00 KZT in tiyn


prices = {
    "BTC-KZT": st.integers(-20, 20).map(lambda k: BTC_REF + k * 100_00),
    "USDT-KZT": st.integers(-20, 20).map(lambda k: USDT_REF + k * 10),
}
lots = {"BTC-KZT": 1000, "USDT-KZT": 1_000_000}


class ExchangeLedgerMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.exchange = new_venue(PARTICIPANTS)
        self.ts = TS0
        self.order_ids: list[tuple[str, str, int]] = []

    def run(self, command):
        self.ts += 1
        reports = self.exchange.execute(command)
        for report in reports:
            if isinstance(report, OrderReport) and report.order_id is not None:
                key = (report.participant_id, report.market, report.order_id)
                if report.status == "new" and key not in self.order_ids:
                    self.order_ids.append(key)
        return reports

    @rule(
        who=st.sampled_from(PARTICIPANTS),
        asset=st.sampled_from(["KZT", "BTC", "USDT"]),
        amount=st.integers(1, 10**13),
    )
    def deposit(self, who, asset, amount):
        self.run(Deposit(ts=self.ts, participant_id=who, asset=asset, amount=amount))

    @rule(
        who=st.sampled_from(PARTICIPANTS),
        asset=st.sampled_from(["KZT", "BTC", "USDT"]),
        amount=st.integers(-5, 10**12),
    )
    def withdraw(self, who, asset, amount):
        before = self.exchange.ledger.available(who, asset)
        self.run(Withdraw(ts=self.ts, participant_id=who, asset=asset, amount=amount))
        if amount <= 0 or amount > before:
            assert self.exchange.ledger.available(who, asset) == before

    @rule(
        who=st.sampled_from(PARTICIPANTS),
        market=st.sampled_from(["BTC-KZT", "USDT-KZT"]),
        side=st.sampled_from(Side),
        kind=st.sampled_from(["limit", "ioc", "fok", "post", "market_ioc", "market_fok"]),
        price_step=st.integers(-20, 20),
        lots_=st.integers(1, 60),
        stp=st.sampled_from(
            [
                SelfTradePrevention.CANCEL_NEWEST,
                SelfTradePrevention.CANCEL_OLDEST,
                SelfTradePrevention.CANCEL_BOTH,
            ]
        ),
    )
    def place(self, who, market, side, kind, price_step, lots_, stp):
        reference = BTC_REF if market == "BTC-KZT" else USDT_REF
        tick = 100 if market == "BTC-KZT" else 1
        price = reference + price_step * tick * 100
        is_market = kind.startswith("market")
        tif = {
            "limit": TimeInForce.GTC,
            "post": TimeInForce.GTC,
            "ioc": TimeInForce.IOC,
            "fok": TimeInForce.FOK,
            "market_ioc": TimeInForce.IOC,
            "market_fok": TimeInForce.FOK,
        }[kind]
        reports = self.run(
            PlaceOrder(
                ts=self.ts,
                participant_id=who,
                market=market,
                side=side,
                order_type=OrderType.MARKET if is_market else OrderType.LIMIT,
                price=None if is_market else price,
                qty=lots_ * lots[market],
                tif=tif,
                post_only=kind == "post",
                stp=stp,
            )
        )
        fills = [r for r in reports if isinstance(r, FillReport)]
        for fill in fills:
            assert fill.fee >= 0
        if kind == "post":
            assert not [f for f in fills if f.liquidity == "taker" and f.participant_id == who]

    @precondition(lambda self: self.order_ids)
    @rule(data=st.data())
    def cancel(self, data):
        who, market, order_id = data.draw(st.sampled_from(self.order_ids))
        self.run(CancelOrder(ts=self.ts, participant_id=who, market=market, order_id=order_id))

    @precondition(lambda self: self.order_ids)
    @rule(data=st.data(), price_step=st.integers(-20, 20), lots_=st.integers(1, 80))
    def amend(self, data, price_step, lots_):
        who, market, order_id = data.draw(st.sampled_from(self.order_ids))
        reference = BTC_REF if market == "BTC-KZT" else USDT_REF
        tick = 100 if market == "BTC-KZT" else 1
        new_price = data.draw(st.sampled_from([None, reference + price_step * tick * 100]))
        self.run(
            AmendOrder(
                ts=self.ts,
                participant_id=who,
                market=market,
                order_id=order_id,
                price=new_price,
                qty=lots_ * lots[market],
            )
        )

    @rule(who=st.sampled_from(PARTICIPANTS), side=st.sampled_from([None, Side.BUY, Side.SELL]))
    def cancel_all(self, who, side):
        self.run(CancelAll(ts=self.ts, participant_id=who, side=side))

    @invariant()
    def ledger_is_consistent(self):
        self.exchange.check_integrity()

    @invariant()
    def open_order_counts_match(self):
        for who in PARTICIPANTS:
            usage = self.exchange.usage(who)
            assert usage.open_orders == len(self.exchange.open_orders(who))


ExchangeLedgerMachine.TestCase.settings = settings(
    max_examples=60, stateful_step_count=60, deadline=None
)
TestExchangeLedger = ExchangeLedgerMachine.TestCase
