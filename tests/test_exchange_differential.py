"""The compiled exchange (``engine.compiled``) against the Python reference (``engine.exchange``).

Both are fed the same randomized command streams (orders of every type, amends, cancels,
cancel-alls, deposits, withdrawals, licence and participant changes, halts, band and
reference changes, midnight and month crossings, and bad inputs of every kind) and must give
equal reports after every command (``==`` on the msgspec Structs: every field, the audit
decisions included), equal balances, and the same ``engine.state.digest``.  Snapshots
written by either load in the other.
"""

from __future__ import annotations

import datetime
import importlib.machinery
import random
import sys
from collections.abc import Callable
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine._core.exchange import ExchangeCore
from engine.commands import (
    AmendOrder,
    CancelAll,
    CancelOrder,
    Command,
    Deposit,
    PlaceOrder,
    SetLicense,
    SetMarket,
    SetParticipant,
    Withdraw,
)
from engine.compiled import CompiledExchange, CompiledLedger, exchange_type
from engine.errors import ConfigError
from engine.exchange import ALMATY_OFFSET_MS, DAY_MS, MAX_AMOUNT, Book, Exchange
from engine.licensing import (
    CheckChain,
    CustomCheckError,
    License,
    OrderContext,
    Participant,
    ParticipantLimits,
    Registry,
)
from engine.markets import Market, Rejection, load_markets
from engine.reference import ReferenceBook
from engine.reports import OrderReport, Report
from engine.state import ExchangeState, capture, digest, rebuild
from engine.types import OrderType, SelfTradePrevention, Side, TimeInForce

TS0 = 1_790_017_200_000 - 600_000  # ten minutes before an Almaty midnight (2026-09-23)
_EPOCH = datetime.date(1970, 1, 1).toordinal()

BIG = Market(
    # Base scale 0 and a 100 % taker fee: price x qty x rate reaches 10**36 at MAX_AMOUNT,
    # past 64 and near 128 bits, and a sell's notional passes 2**63.
    symbol="BIG-KZT",
    base="BIG",
    quote="KZT",
    base_scale=0,
    quote_scale=2,
    tick=1,
    lot=1,
    min_qty=1,
    min_notional=0,
    band_bps=10_000,
    maker_fee_ppm=500_000,
    taker_fee_ppm=1_000_000,
    reference_price=10**12,
)

# symbol: (reference tiyn, tick, lot)
SHAPES = {
    "BTC-KZT": (4_500_000_000, 100, 1000),
    "USDT-KZT": (51_500, 1, 10_000),
    "BIG-KZT": (10**12, 1, 1),
}
ASSETS = ("KZT", "BTC", "USDT", "BIG", "ETH", "DOGE")
PARTICIPANTS = ("p0", "p1", "p2", "r0", "r1", "mm", "br", "ghost")


def _date(ts: int, days: int) -> str:
    return datetime.date.fromordinal(_EPOCH + (ts + ALMATY_OFFSET_MS) // DAY_MS + days).isoformat()


def _license(license_id: str, **fields: Any) -> License:
    base: dict[str, Any] = {
        "license_id": license_id,
        "regulator": "NBK",
        "number": f"{license_id}-001",
        "valid_from": "2026-01-01",
        "valid_to": "2030-12-31",
    }
    base.update(fields)
    return License(**base)


def _participants() -> list[Participant]:
    return [
        Participant(participant_id="p0", category="PROFESSIONAL", residency="KZ", kyc_level=3),
        Participant(
            participant_id="p1",
            category="PROFESSIONAL",
            residency="KZ",
            kyc_level=2,
            limits=ParticipantLimits(
                max_order_notional=5 * 10**10, daily_notional=2 * 10**11, max_open_orders=4
            ),
        ),
        Participant(participant_id="p2", category="PROFESSIONAL", residency="RU", kyc_level=3),
        Participant(
            participant_id="r0",
            category="RETAIL",
            residency="KZ",
            kyc_level=2,
            limits=ParticipantLimits(retail_monthly_cap=2 * 10**7),
        ),
        Participant(
            participant_id="r1",
            category="RETAIL",
            residency="KZ",
            kyc_level=3,
            appropriateness_passed=True,
            limits=ParticipantLimits(retail_monthly_cap_tested=10**9),
        ),
        Participant(
            participant_id="mm",
            category="MARKET_MAKER",
            residency="KZ",
            kyc_level=3,
            license_id="MM",
        ),
        Participant(
            participant_id="br", category="BROKER", residency="KZ", kyc_level=3, license_id="BR"
        ),
    ]


def _licenses() -> list[License]:
    return [
        _license("VENUE", number="VENUE-001"),
        _license("MM", activities=("market_making",)),
        _license("BR", activities=("brokerage",), markets=("USDT-KZT", "BTC-KZT")),
    ]


def venue(
    exchange_class: type[Exchange],
    profile: str = "ALATAU",
    chain: CheckChain | None = None,
    book_factory: Callable[[], Book] | None = None,
) -> Exchange:
    """The test venue: the default markets and BIG-KZT, a varied registry, funded accounts."""
    markets = dict(load_markets())
    markets[BIG.symbol] = BIG
    registry = Registry("VENUE", _licenses(), _participants())
    exchange = exchange_class(
        markets, registry, chain or CheckChain(profile), book_factory=book_factory
    )
    for who in PARTICIPANTS[:-1]:
        for asset, amount in (("KZT", 10**14), ("BTC", 10**9), ("USDT", 10**12), ("BIG", 10**15)):
            exchange.execute(Deposit(ts=TS0, participant_id=who, asset=asset, amount=amount))
    return exchange


class Stream:
    """A seeded random command stream that follows the open orders from the reports."""

    def __init__(self, seed: int) -> None:
        self.rnd = random.Random(seed)
        self.ts = TS0
        self.open: list[tuple[str, str, int, str | None]] = []
        self.client_ids = [f"c{i}" for i in range(6)]

    def follow(self, reports: list[Report]) -> None:
        for report in reports:
            if type(report) is not OrderReport or report.order_id is None:
                continue
            entry = (report.participant_id, report.market, report.order_id, report.client_order_id)
            if report.status == "new" and entry not in self.open:
                self.open.append(entry)
            elif report.status in ("filled", "canceled", "expired") and entry in self.open:
                self.open.remove(entry)

    def _price(self, symbol: str) -> int | None:
        rnd = self.rnd
        reference, tick, _lot = SHAPES.get(symbol, (51_500, 1, 10_000))
        roll = rnd.random()
        if roll < 0.03:
            return None
        if roll < 0.05:
            return rnd.choice([0, -tick, tick + 1, reference * 3, MAX_AMOUNT, MAX_AMOUNT + 1])
        if roll < 0.07:
            return rnd.choice([-(10**20), 2**63, MAX_AMOUNT - MAX_AMOUNT % tick])
        return max(tick, reference + rnd.randint(-12, 12) * tick * max(1, reference // 50_000))

    def _qty(self, symbol: str) -> int:
        rnd = self.rnd
        _reference, _tick, lot = SHAPES.get(symbol, (51_500, 1, 10_000))
        roll = rnd.random()
        if roll < 0.03:
            return rnd.choice([0, -lot, lot + 1, MAX_AMOUNT, MAX_AMOUNT + 1, -(10**20)])
        if symbol == "BIG-KZT" and roll < 0.2:
            return rnd.randint(1, 10**6) * 10 ** rnd.randint(0, 9)
        return rnd.randint(1, 400) * lot * (100 if symbol == "USDT-KZT" else 1)

    def _symbol(self) -> str:
        rnd = self.rnd
        if rnd.random() < 0.03:
            return rnd.choice(["DOGE-KZT", "", "x" * 50])
        return rnd.choice(["BTC-KZT", "USDT-KZT", "USDT-KZT", "BIG-KZT"] * 3 + ["ETH-KZT"])

    def next(self) -> Command:
        rnd = self.rnd
        if rnd.random() < 0.01:
            self.ts += rnd.choice([DAY_MS, 31 * DAY_MS, 3 * DAY_MS + 1234])
        else:
            self.ts += rnd.randint(0, 5_000)
        ts = self.ts
        who = rnd.choice(PARTICIPANTS)
        roll = rnd.random()
        if roll < 0.25 and not self.open:
            return self._place(ts, who)
        if roll < 0.15:
            return self._cancel(ts, who)
        if roll < 0.25:
            return self._amend(ts, who)
        if roll < 0.28:
            return CancelAll(
                ts=ts,
                participant_id=who,
                market=rnd.choice([None, "USDT-KZT", "BTC-KZT", "USDT-KZT", "DOGE-KZT"]),
                side=rnd.choice([None, Side.BUY, Side.SELL]),
                reason=rnd.choice(["cancel_all", "disconnect", "dead_man_switch"]),
            )
        if roll < 0.33:
            asset = rnd.choice(ASSETS)
            amount = rnd.choice([rnd.randint(1, 10**12)] * 4 + [0, -5, 2**63, 10**13])
            kind = Deposit if rnd.random() < 0.6 else Withdraw
            return kind(ts=ts, participant_id=who, asset=asset, amount=amount)
        if roll < 0.355:
            symbol = rnd.choice(["USDT-KZT", "BTC-KZT", "BIG-KZT", "DOGE-KZT"])
            reference = SHAPES.get(symbol, (51_500, 1, 1))[0]
            return SetMarket(
                ts=ts,
                market=symbol,
                status=rnd.choice([None, "open", "open", "open", "open", "halted", "closed"]),
                reference_price=rnd.choice(
                    [None, None, reference, reference * 101 // 100, reference * 9 // 10, 0, -1]
                ),
            )
        if roll < 0.37:
            license_id = rnd.choice(["VENUE", "MM", "BR", "NEW"])
            healthy = rnd.random() < (0.9 if license_id == "VENUE" else 0.7)
            return SetLicense(
                ts=ts,
                license=_license(
                    license_id,
                    status="ACTIVE" if healthy else rnd.choice(["ACTIVE", "SUSPENDED", "REVOKED"]),
                    valid_from="2026-01-01"
                    if healthy
                    else rnd.choice(["2026-01-01", _date(ts, 1)]),
                    valid_to="2030-12-31" if healthy else rnd.choice([_date(ts, 1), _date(ts, 2)]),
                    activities="*" if healthy else rnd.choice([("market_making",), ("brokerage",)]),
                    markets=rnd.choice(["*", "*", ("USDT-KZT",)]),
                ),
            )
        if roll < 0.39:
            return SetParticipant(ts=ts, participant=self._participant(who))
        return self._place(ts, who)

    def _cancel(self, ts: int, who: str) -> CancelOrder:
        rnd = self.rnd
        owner, symbol, order_id, client_order_id = rnd.choice(self.open)
        if rnd.random() < 0.05:
            owner = who
        if rnd.random() < 0.2 and client_order_id is not None:
            return CancelOrder(
                ts=ts, participant_id=owner, market=symbol, client_order_id=client_order_id
            )
        return CancelOrder(
            ts=ts,
            participant_id=owner,
            market=symbol if rnd.random() > 0.03 else "BTC-KZT",
            order_id=order_id if rnd.random() > 0.03 else order_id + 10**6,
            reason=rnd.choice(["user", "user", "disconnect"]),
        )

    def _amend(self, ts: int, who: str) -> AmendOrder:
        rnd = self.rnd
        owner, symbol, order_id, client_order_id = rnd.choice(self.open)
        by_client = client_order_id is not None and rnd.random() < 0.2
        return AmendOrder(
            ts=ts,
            participant_id=owner if rnd.random() > 0.05 else who,
            market=symbol,
            order_id=None if by_client else order_id,
            client_order_id=client_order_id if by_client else None,
            price=None if rnd.random() < 0.3 else self._price(symbol),
            qty=None if rnd.random() < 0.3 else self._qty(symbol),
        )

    def _participant(self, who: str) -> Participant:
        rnd = self.rnd
        category = rnd.choice(["RETAIL", "PROFESSIONAL", "MARKET_MAKER", "BROKER"])
        license_id = {"MARKET_MAKER": "MM", "BROKER": "BR"}.get(category)
        return Participant(
            participant_id=who,
            category=category,
            residency=rnd.choice(["KZ", "KZ", "KZ", "US", "RU"]),
            kyc_level=rnd.choice([0, 1, 2, 3, 3, 3, 3, 3]),
            status=rnd.choice(["active"] * 8 + ["suspended", "frozen"]),
            appropriateness_passed=rnd.random() < 0.5,
            license_id=None if license_id is None else rnd.choice([license_id, "NOPE"]),
            limits=ParticipantLimits(
                max_order_notional=rnd.choice([None, 10**9, 10**11]),
                daily_notional=rnd.choice([None, 10**10, 10**12]),
                max_open_orders=rnd.choice([None, 3, 50]),
                retail_monthly_cap=rnd.choice([51_500_000, 10**9]),
                retail_monthly_cap_tested=rnd.choice([None, 10**10]),
            ),
        )

    def _place(self, ts: int, who: str) -> PlaceOrder:
        rnd = self.rnd
        symbol = self._symbol()
        order_type = OrderType.MARKET if rnd.random() < 0.15 else OrderType.LIMIT
        if order_type == OrderType.MARKET:
            tif = rnd.choice([TimeInForce.IOC, TimeInForce.FOK, TimeInForce.IOC, TimeInForce.GTC])
        else:
            tif = rnd.choice([TimeInForce.GTC] * 5 + [TimeInForce.IOC, TimeInForce.FOK])
        price = self._price(symbol) if order_type == OrderType.LIMIT else None
        if order_type == OrderType.MARKET and rnd.random() < 0.05:
            price = 51_500
        return PlaceOrder(
            ts=ts,
            participant_id=who,
            market=symbol,
            side=rnd.choice([Side.BUY, Side.SELL]),
            qty=self._qty(symbol),
            order_type=order_type,
            price=price,
            tif=tif,
            post_only=rnd.random() < 0.08,
            stp=rnd.choice(list(SelfTradePrevention)),
            client_order_id=rnd.choice(self.client_ids) if rnd.random() < 0.3 else None,
        )


def _first_difference(a: list[Report], b: list[Report]) -> str:
    for index, (x, y) in enumerate(zip(a, b, strict=False)):
        if x != y:
            return f"report {index}:\n  python   {x!r}\n  compiled {y!r}"
    return f"lengths {len(a)} and {len(b)}:\n  python   {a!r}\n  compiled {b!r}"


def _outcome(exchange: Exchange, command: Command) -> tuple[str, Any]:
    """The reports of a command, or the exception it raised (type and text)."""
    try:
        return "ok", exchange.execute(command)
    except Exception as exc:  # a broken check raises in both: compare what
        return "raised", (type(exc).__name__, str(exc))


def assert_same_state(reference: Exchange, compiled: Exchange) -> None:
    assert reference.ledger.accounts() == compiled.ledger.accounts()
    assert capture(reference) == capture(compiled)
    assert digest(reference) == digest(compiled)
    reference.check_integrity()
    compiled.check_integrity()


def run_both(
    reference: Exchange,
    compiled: Exchange,
    stream: Stream,
    commands: int,
    *,
    check_every: int = 50,
) -> None:
    """Feed both the same ``commands`` commands; fail at the first difference."""
    for index in range(commands):
        command = stream.next()
        expected = _outcome(reference, command)
        got = _outcome(compiled, command)
        if expected != got:
            if expected[0] == got[0] == "ok":
                detail = _first_difference(expected[1], got[1])
            else:
                detail = f"python {expected!r}\n  compiled {got!r}"
            pytest.fail(f"command {index} {command!r}:\n  {detail}")
        if expected[0] == "ok":
            stream.follow(expected[1])
        if index % check_every == 0:
            assert_same_state(reference, compiled)
    assert_same_state(reference, compiled)


def test_the_compiled_exchange_is_compiled() -> None:
    """CompiledExchange's per-order path is the extension's, its ledger the compiled one."""
    exchange = venue(CompiledExchange)
    core = type(exchange).__mro__[1]
    assert core is ExchangeCore and type(exchange).execute is ExchangeCore.execute
    module_file = sys.modules[core.__module__].__file__ or ""
    assert module_file.endswith(tuple(importlib.machinery.EXTENSION_SUFFIXES)), module_file
    assert isinstance(exchange.ledger, CompiledLedger)
    assert isinstance(exchange, Exchange)


@pytest.mark.parametrize("seed", range(6))
def test_seeded_streams_give_identical_reports_and_state(seed: int) -> None:
    """Seeded streams of every command, good and bad: equal reports, balances, digests."""
    profile = ("ALATAU", "NBK", "AFSA")[seed % 3]
    run_both(venue(Exchange, profile), venue(CompiledExchange, profile), Stream(seed), 2_500)


def test_the_compiled_exchange_on_the_reference_book() -> None:
    """With a book that is not the compiled one (here ReferenceBook), the compiled exchange
    takes the book's events as objects rather than through its C API: the same reports."""
    compiled = venue(CompiledExchange, book_factory=ReferenceBook)
    assert all(type(book) is ReferenceBook for book in compiled.books.values())
    run_both(venue(Exchange), compiled, Stream(11), 1_500)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=False
)
@given(seed=st.integers(0, 2**32 - 1), profile=st.sampled_from(["ALATAU", "NBK", "AFSA"]))
def test_random_streams_give_identical_reports_and_state(seed: int, profile: str) -> None:
    """Hypothesis-drawn streams: the compiled exchange matches the reference."""
    run_both(venue(Exchange, profile), venue(CompiledExchange, profile), Stream(seed), 250)


# -- custom checks ------------------------------------------------------------------------------


def no_odd_lots(ctx: OrderContext) -> Rejection | None:
    """A custom check: refuses quantities that are an odd number of lots of USDT."""
    if ctx.market_symbol == "USDT-KZT" and (ctx.qty // 10_000) % 2:
        return Rejection("NO_ODD_LOTS", f"qty {ctx.qty} is an odd number of lots")
    return None


class QuietHours:
    """A custom check class: refuses buys above a notional in one minute of every ten,
    and counts its calls (so the test can see it is called)."""

    calls = 0

    def __call__(self, ctx: OrderContext) -> Rejection | None:
        QuietHours.calls += 1
        if ctx.side == Side.BUY and ctx.notional > 10**8 and (ctx.ts // 60_000) % 10 == 3:
            return Rejection("QUIET_HOURS", "large buys wait out the quiet minute")
        return None


def misbehaving(ctx: OrderContext) -> Rejection | None:
    """A broken custom check: a lower-case code, which the chain refuses loudly."""
    if ctx.qty == 4_000_000:
        return Rejection("lower_case", "broken")
    return None


def _custom_chain() -> CheckChain:
    return CheckChain(
        "ALATAU",
        extra={"no_odd_lots": no_odd_lots, "quiet_hours": QuietHours, "misbehaving": misbehaving},
        order=[
            "venue_license",
            "participant",
            "no_odd_lots",
            "account_status",
            "license_status",
            "license_scope",
            "kyc",
            "jurisdiction",
            "market_status",
            "market_rules",
            "price_band",
            "quiet_hours",
            "order_size",
            "category_permissions",
            "retail_limit",
            "daily_limit",
            "open_orders",
            "funds",
            "misbehaving",
        ],
    )


@pytest.mark.parametrize("seed", range(3))
def test_custom_python_checks_run_in_the_compiled_exchange(seed: int) -> None:
    """Custom checks in Python, placed among the built-in ones, decide the same orders in
    both exchanges (and a broken one raises the same error in both)."""
    before = QuietHours.calls
    run_both(
        venue(Exchange, chain=_custom_chain()),
        venue(CompiledExchange, chain=_custom_chain()),
        Stream(100 + seed),
        1_500,
    )
    assert QuietHours.calls > before


def test_a_custom_rejection_is_audited_the_same() -> None:
    """A custom check's rejection reaches the audit trail with its id and code."""
    reports = []
    for exchange_class in (Exchange, CompiledExchange):
        exchange = venue(exchange_class, chain=_custom_chain())
        reports.append(
            exchange.execute(
                PlaceOrder(
                    ts=TS0,
                    participant_id="p0",
                    market="USDT-KZT",
                    side=Side.BUY,
                    qty=1_010_000,
                    price=51_500,
                )
            )
        )
    assert reports[0] == reports[1]
    assert reports[0][0].check == "no_odd_lots" and reports[0][0].code == "NO_ODD_LOTS"


def test_a_broken_custom_check_raises_in_both() -> None:
    """A custom check returning a bad code raises CustomCheckError in both exchanges."""
    command = PlaceOrder(
        ts=TS0, participant_id="p0", market="USDT-KZT", side=Side.BUY, qty=4_000_000, price=51_500
    )
    for exchange_class in (Exchange, CompiledExchange):
        with pytest.raises(CustomCheckError):
            venue(exchange_class, chain=_custom_chain()).execute(command)


# -- snapshots ----------------------------------------------------------------------------------


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(ExchangeState)


@pytest.mark.parametrize(
    ("source", "target"), [(Exchange, CompiledExchange), (CompiledExchange, Exchange)]
)
def test_snapshots_load_in_the_other_exchange(
    source: type[Exchange], target: type[Exchange]
) -> None:
    """A snapshot of one exchange, through msgpack, rebuilds the other in the same state,
    which then behaves as the original does."""
    stream = Stream(7)
    original = venue(source)
    for _ in range(1_500):
        try:
            stream.follow(original.execute(stream.next()))
        except CustomCheckError:  # pragma: no cover - no custom checks here
            raise
    state = _decoder.decode(_encoder.encode(capture(original)))
    restored = rebuild(state, CheckChain("ALATAU"), exchange_type=target)
    assert type(restored) is target
    assert digest(restored) == digest(original)
    run_both(
        original if source is Exchange else restored,
        restored if source is Exchange else original,
        stream,
        1_000,
    )


# -- bounds -------------------------------------------------------------------------------------


def _big_orders() -> list[Command]:
    ts = TS0
    return [
        Deposit(ts=ts, participant_id="p0", asset="KZT", amount=2**63 - 1 - 8 * 10**14),
        # A sell of MAX_AMOUNT units at MAX_AMOUNT: a notional of 10**28 tiyn (> 2**63).
        PlaceOrder(
            ts=ts, participant_id="p2", market="BIG-KZT", side=Side.SELL, qty=10**15, price=10**12
        ),
        PlaceOrder(
            ts=ts,
            participant_id="p2",
            market="BIG-KZT",
            side=Side.SELL,
            qty=MAX_AMOUNT,
            price=MAX_AMOUNT,
        ),
        # Buys whose hold is far past the funds: price x qty x rate of 10**36.
        PlaceOrder(
            ts=ts,
            participant_id="p0",
            market="BIG-KZT",
            side=Side.BUY,
            qty=MAX_AMOUNT,
            price=MAX_AMOUNT,
        ),
        PlaceOrder(
            ts=ts, participant_id="p0", market="BIG-KZT", side=Side.BUY, qty=10**6, price=10**12
        ),
        PlaceOrder(
            ts=ts,
            participant_id="p0",
            market="BIG-KZT",
            side=Side.BUY,
            qty=999_999,
            price=10**12,
            tif=TimeInForce.IOC,
        ),
        PlaceOrder(
            ts=ts,
            participant_id="p1",
            market="BIG-KZT",
            side=Side.BUY,
            qty=3,
            order_type=OrderType.MARKET,
            tif=TimeInForce.IOC,
        ),
        SetMarket(ts=ts, market="BIG-KZT", reference_price=2**62),
        PlaceOrder(
            ts=ts,
            participant_id="p0",
            market="BIG-KZT",
            side=Side.BUY,
            qty=1,
            order_type=OrderType.MARKET,
            tif=TimeInForce.FOK,
        ),
        AmendOrder(ts=ts, participant_id="p2", market="BIG-KZT", order_id=1, price=2 * 10**12),
        AmendOrder(ts=ts, participant_id="p0", market="BIG-KZT", order_id=1, qty=3),
        PlaceOrder(
            ts=ts, participant_id="p2", market="BIG-KZT", side=Side.SELL, qty=7, price=3 * 10**12
        ),
        CancelAll(ts=ts, participant_id="p2", side=Side.BUY),
    ]


def test_amounts_past_64_bits_are_exact() -> None:
    """At the bounds (MAX_AMOUNT price and qty, base scale 0, a 100 % fee) the compiled
    exchange's amounts, holds, fees and usage match the reference's exactly, and a snapshot
    holds the settlement numerators past 64 bits."""
    reference, compiled = (
        venue(kind, chain=CheckChain("ALATAU", disabled=["order_size", "kyc"]))
        for kind in (Exchange, CompiledExchange)
    )
    for command in _big_orders():
        assert _outcome(reference, command) == _outcome(compiled, command), command
        assert_same_state(reference, compiled)
    wide = [
        order
        for order in capture(compiled).orders
        if isinstance(order.fee_num, str) or isinstance(order.usage_notional, str)
    ]
    assert wide and any(isinstance(u.daily_notional, str) for u in capture(compiled).usage)


# -- the choice of exchange ---------------------------------------------------------------------


def test_exchange_type_picks_by_name_and_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """exchange_type(): compiled by default, the reference by name or ALATAU_EXCHANGE."""
    monkeypatch.delenv("ALATAU_EXCHANGE", raising=False)
    assert exchange_type() is CompiledExchange
    assert exchange_type("python") is Exchange
    monkeypatch.setenv("ALATAU_EXCHANGE", "python")
    assert exchange_type() is Exchange
    monkeypatch.setenv("ALATAU_EXCHANGE", "fast")
    with pytest.raises(ConfigError):
        exchange_type()
