"""Pre-trade checks through Exchange.execute: every reject code changes nothing; usage and holds."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import msgspec
import pytest

from engine.commands import (
    AmendOrder,
    CancelAll,
    CancelOrder,
    Deposit,
    PlaceOrder,
    SetLicense,
    SetMarket,
    SetParticipant,
    Withdraw,
)
from engine.exchange import Exchange
from engine.licensing import CheckChain, License, Participant, ParticipantLimits, Registry
from engine.markets import load_markets
from engine.reports import (
    AdminApplied,
    Audit,
    BalanceReport,
    BookChanged,
    CommandRejected,
    FillReport,
    OrderReport,
    TradePrinted,
)
from engine.types import OrderType, Side, TimeInForce
from tests.kit.venues import TS0, VENUE_LICENSE, professional

P0 = 4_500_000_000  # 45,000,000.00 KZT: the BTC-KZT reference price, in tiyn
BAND_TOP = 4_950_000_000  # reference + 10 %
Q0 = 10_000  # 0.0001 BTC: 4,500 KZT at P0
KZT = 10**12
BTC = 10**10
USDT = 10**12
EVERYONE = ("alice", "bob", "carol", "mallory")

MM_LICENSE = License(
    license_id="MM-C",
    regulator="AFSA",
    number="TEST-MM-1",
    activities=("market_making", "trading"),
    markets="*",
    valid_from="2026-01-01",
    valid_to="2028-12-31",
)


def replace(record: Any, **fields: Any) -> Any:
    return msgspec.structs.replace(record, **fields)


def maker(**fields: Any) -> Participant:
    """carol as a market maker trading under her own licence MM-C."""
    base = Participant(
        participant_id="carol",
        category="MARKET_MAKER",
        residency="KZ",
        kyc_level=3,
        license_id="MM-C",
    )
    return replace(base, **fields)


def client(**fields: Any) -> Participant:
    """carol as a professional client (or another category via fields)."""
    return replace(professional("carol"), **fields)


def retail(**limits: Any) -> Participant:
    """carol as a resident RETAIL client with KYC 2 and the given limits."""
    return client(category="RETAIL", kyc_level=2, limits=ParticipantLimits(**limits))


def build(
    carol: Participant | None = None,
    *,
    licenses: tuple[License, ...] = (MM_LICENSE,),
    venue_license: License = VENUE_LICENSE,
    profile: str = "ALATAU",
    markets: dict | None = None,
    fund_carol: bool = True,
    rest: bool = True,
) -> Exchange:
    """A venue with alice and bob (professional, funded, one resting order each) and carol."""
    people = [professional("alice"), professional("bob")]
    if carol is not None:
        people.append(carol)
    registry = Registry("VENUE", [venue_license, *licenses], people)
    ex = Exchange(markets or load_markets(), registry, CheckChain(profile))
    funded = ["alice", "bob"] + (["carol"] if fund_carol and carol is not None else [])
    for who in funded:
        for asset, amount in (("KZT", KZT), ("BTC", BTC), ("USDT", USDT)):
            run(ex, Deposit(ts=TS0, participant_id=who, asset=asset, amount=amount))
    if rest:
        accepted(run(ex, order("alice", price=P0 - 100_000, qty=2 * Q0, cid="a1")))
        accepted(
            run(ex, order("bob", side=Side.SELL, price=P0 + 100_000, qty=2 * Q0, cid="b1")),
        )
    ex.check_integrity()
    return ex


def order(who: str = "carol", *, cid: str | None = None, **fields: Any) -> PlaceOrder:
    """A limit GTC buy of Q0 at P0 on BTC-KZT, changed by fields."""
    base: dict[str, Any] = {
        "ts": TS0 + 1_000,
        "participant_id": who,
        "market": "BTC-KZT",
        "side": Side.BUY,
        "price": P0,
        "qty": Q0,
        "client_order_id": cid,
    }
    base.update(fields)
    return PlaceOrder(**base)


def run(ex: Exchange, command: Any) -> list:
    reports = ex.execute(command)
    ex.check_integrity()
    return reports


def of(reports: list, kind: type) -> list:
    return [r for r in reports if isinstance(r, kind)]


def accepted(reports: list) -> OrderReport:
    """The new order's report; fails if the order was rejected."""
    orders = of(reports, OrderReport)
    assert orders, reports
    assert orders[0].status != "rejected", orders[0]
    return orders[0]


def last_status(reports: list, order_id: int) -> str:
    """The status of the last OrderReport about order_id in reports."""
    return [r for r in of(reports, OrderReport) if r.order_id == order_id][-1].status


def snapshot(ex: Exchange) -> dict[str, Any]:
    """Everything a rejected command must leave alone."""
    return {
        "accounts": sorted(ex.ledger.accounts()),
        "books": {s: (b.orders(), b.seq, len(b)) for s, b in ex.books.items()},
        "usage": {
            p: (
                ex.usage(p).open_orders,
                ex.usage(p).daily_notional,
                ex.usage(p).monthly_retail_buys,
            )
            for p in EVERYONE
        },
        "open": {
            p: [
                (o.order_id, o.client_order_id, o.side, o.price, o.qty, o.filled_qty, o.status)
                for o in ex.open_orders(p)
            ]
            for p in EVERYONE
        },
        "last_price": dict(ex.last_price),
    }


def settle_licence_expiry(ex: Exchange, ts: int) -> None:
    """Send a command that changes nothing at ``ts``: a licence that ran out before ``ts``
    cancels its holder's resting orders on the first command past its end, so this lets
    that happen before a test takes its snapshot."""
    run(ex, CancelAll(ts=ts, participant_id="nobody-at-all"))


def usage(ex: Exchange, who: str = "carol") -> tuple[int, int, int]:
    u = ex.usage(who)
    return u.open_orders, u.daily_notional, u.monthly_retail_buys


def assert_rejected(reports: list, code: str, check: str | None) -> None:
    """One rejected OrderReport with code and message, one reject Audit, nothing else moved."""
    orders = of(reports, OrderReport)
    assert len(orders) == 1, reports
    report = orders[0]
    assert report.status == "rejected"
    assert report.reason == code
    assert report.order_id is None
    assert report.message
    assert report.filled_qty == 0 and report.remaining_qty == 0
    audits = of(reports, Audit)
    assert len(audits) == 1, reports
    audit = audits[0]
    assert audit.decision == "reject"
    assert audit.code == code
    assert audit.order_id is None
    if check is None:
        assert audit.check and audit.check != "all"
    else:
        assert audit.check == check
    for kind in (FillReport, TradePrinted, BookChanged, BalanceReport):
        assert not of(reports, kind), reports


# -- 1. every reject code of a new order --------------------------------------------------------


def _halt(ex: Exchange) -> None:
    run(ex, SetMarket(ts=TS0 + 500, market="BTC-KZT", status="halted"))


def _carol_rests(ex: Exchange) -> None:
    accepted(run(ex, order(price=P0 - 200_000, cid="c1", ts=TS0 + 500)))


def _no_reference() -> dict:
    markets = load_markets()
    markets["BTC-KZT"] = markets["BTC-KZT"].with_reference(None)
    return markets


VENUE_EXPIRED = datetime(2031, 1, 1, tzinfo=timezone(timedelta(hours=5))).timestamp() * 1000

# (code, check id, build() kwargs, setup, order() fields)
REJECT_CASES = [
    pytest.param(
        "VENUE_NOT_LICENSED",
        "venue_license",
        {"carol": client()},
        None,
        {"ts": int(VENUE_EXPIRED)},
        id="VENUE_NOT_LICENSED-expired",
    ),
    pytest.param(
        "VENUE_NOT_LICENSED",
        "venue_license",
        {
            "carol": client(),
            "venue_license": replace(VENUE_LICENSE, valid_from="2027-01-01"),
            "rest": False,
        },
        None,
        {},
        id="VENUE_NOT_LICENSED-not-yet-valid",
    ),
    pytest.param(
        "PARTICIPANT_UNKNOWN",
        "participant",
        {"carol": client()},
        None,
        {"participant_id": "mallory"},
        id="PARTICIPANT_UNKNOWN",
    ),
    pytest.param(
        "ACCOUNT_SUSPENDED",
        "account_status",
        {"carol": client(status="suspended")},
        None,
        {},
        id="ACCOUNT_SUSPENDED",
    ),
    pytest.param(
        "ACCOUNT_SUSPENDED",
        "account_status",
        {"carol": client(status="frozen")},
        None,
        {},
        id="ACCOUNT_SUSPENDED-frozen",
    ),
    pytest.param(
        "LICENSE_SUSPENDED",
        "license_status",
        {"carol": maker(), "licenses": (replace(MM_LICENSE, status="SUSPENDED"),)},
        None,
        {},
        id="LICENSE_SUSPENDED",
    ),
    pytest.param(
        "LICENSE_REVOKED",
        "license_status",
        {"carol": maker(), "licenses": (replace(MM_LICENSE, status="REVOKED"),)},
        None,
        {},
        id="LICENSE_REVOKED",
    ),
    pytest.param(
        "LICENSE_EXPIRED",
        "license_status",
        {"carol": maker(), "licenses": (replace(MM_LICENSE, valid_to="2026-06-30"),)},
        None,
        {},
        id="LICENSE_EXPIRED",
    ),
    pytest.param(
        "LICENSE_EXPIRED",
        "license_status",
        {"carol": maker(), "licenses": (replace(MM_LICENSE, valid_from="2026-12-01"),)},
        None,
        {},
        id="LICENSE_EXPIRED-not-yet-valid",
    ),
    pytest.param(
        "LICENSE_SCOPE",
        "license_scope",
        {"carol": maker(), "licenses": (replace(MM_LICENSE, markets=("ETH-KZT",)),)},
        None,
        {},
        id="LICENSE_SCOPE-market",
    ),
    pytest.param(
        "LICENSE_SCOPE",
        "license_scope",
        {"carol": maker(), "licenses": (replace(MM_LICENSE, activities=("brokerage",)),)},
        None,
        {},
        id="LICENSE_SCOPE-activity",
    ),
    pytest.param(
        "KYC_INSUFFICIENT",
        "kyc",
        {"carol": client(kyc_level=1)},
        None,
        {"qty": 2_000_000},  # 0.02 BTC = 900,000 KZT > 500,000 KZT at level 1
        id="KYC_INSUFFICIENT",
    ),
    pytest.param(
        "KYC_INSUFFICIENT",
        "kyc",
        {"carol": client(kyc_level=0)},
        None,
        {},
        id="KYC_INSUFFICIENT-level-0",
    ),
    pytest.param(
        "JURISDICTION_BLOCKED",
        "jurisdiction",
        {"carol": client(residency="IR")},
        None,
        {},
        id="JURISDICTION_BLOCKED",
    ),
    pytest.param(
        "JURISDICTION_BLOCKED",
        "jurisdiction",
        {"carol": client(category="RETAIL", kyc_level=2, residency="DE"), "profile": "NBK"},
        None,
        {},
        id="JURISDICTION_BLOCKED-nbk-nonresident-retail",
    ),
    pytest.param(
        "UNKNOWN_MARKET",
        "market_status",
        {"carol": client()},
        None,
        {"market": "DOGE-KZT"},
        id="UNKNOWN_MARKET",
    ),
    pytest.param(
        "MARKET_HALTED",
        "market_status",
        {"carol": client()},
        _halt,
        {},
        id="MARKET_HALTED",
    ),
    pytest.param(
        "INVALID_TICK",
        "market_rules",
        {"carol": client()},
        None,
        {"price": P0 + 50},
        id="INVALID_TICK",
    ),
    pytest.param(
        "INVALID_TICK",
        "market_rules",
        {"carol": client()},
        None,
        {"price": 0},
        id="INVALID_TICK-zero",
    ),
    pytest.param(
        "INVALID_LOT",
        "market_rules",
        {"carol": client()},
        None,
        {"qty": Q0 + 500},
        id="INVALID_LOT",
    ),
    pytest.param(
        "INVALID_LOT",
        "market_rules",
        {"carol": client()},
        None,
        {"qty": 0},
        id="INVALID_LOT-zero",
    ),
    pytest.param(
        "BELOW_MIN_QTY",
        "market_rules",
        {"carol": client()},
        None,
        {"market": "USDT-KZT", "price": 51_500, "qty": 500_000},  # 0.5 USDT < 1 USDT
        id="BELOW_MIN_QTY",
    ),
    pytest.param(
        "BELOW_MIN_NOTIONAL",
        "market_rules",
        {"carol": client()},
        None,
        {"qty": 1_000},  # 450 KZT < 1,000 KZT
        id="BELOW_MIN_NOTIONAL",
    ),
    pytest.param(
        "PRICE_OUT_OF_BAND",
        "price_band",
        {"carol": client()},
        None,
        {"price": BAND_TOP + 100},
        id="PRICE_OUT_OF_BAND-above",
    ),
    pytest.param(
        "PRICE_OUT_OF_BAND",
        "price_band",
        {"carol": client()},
        None,
        {"price": 4_050_000_000 - 100},
        id="PRICE_OUT_OF_BAND-below",
    ),
    pytest.param(
        "ORDER_SIZE_LIMIT",
        "order_size",
        {"carol": client(limits=ParticipantLimits(max_order_notional=449_999))},
        None,
        {},
        id="ORDER_SIZE_LIMIT-participant",
    ),
    pytest.param(
        "ORDER_SIZE_LIMIT",
        "order_size",
        {"carol": client()},
        None,
        {"qty": 1_200_000_000},  # 12 BTC = 540M KZT > 500M KZT for PROFESSIONAL
        id="ORDER_SIZE_LIMIT-category",
    ),
    pytest.param(
        "ORDER_SIZE_LIMIT",
        "size",
        {"carol": client()},
        None,
        {"qty": 10**15 + 1_000},
        id="ORDER_SIZE_LIMIT-absurd-qty",
    ),
    pytest.param(
        "CATEGORY_NOT_PERMITTED",
        "category_permissions",
        {"carol": maker()},
        None,
        {"order_type": OrderType.MARKET, "price": None, "tif": TimeInForce.IOC},
        id="CATEGORY_NOT_PERMITTED-mm-market",
    ),
    pytest.param(
        "CATEGORY_NOT_PERMITTED",
        "category_permissions",
        {"carol": retail()},
        None,
        {"tif": TimeInForce.FOK},
        id="CATEGORY_NOT_PERMITTED-retail-fok",
    ),
    pytest.param(
        "CATEGORY_NOT_PERMITTED",
        "category_permissions",
        {"carol": retail()},
        None,
        {"order_type": OrderType.MARKET, "price": None, "tif": TimeInForce.IOC},
        id="CATEGORY_NOT_PERMITTED-retail-market-untested",
    ),
    pytest.param(
        "RETAIL_LIMIT_EXCEEDED",
        "retail_limit",
        {"carol": retail(retail_monthly_cap=449_999)},
        None,
        {},
        id="RETAIL_LIMIT_EXCEEDED",
    ),
    pytest.param(
        "DAILY_LIMIT_EXCEEDED",
        "daily_limit",
        {"carol": client(limits=ParticipantLimits(daily_notional=449_999))},
        None,
        {},
        id="DAILY_LIMIT_EXCEEDED",
    ),
    pytest.param(
        "OPEN_ORDER_LIMIT",
        "open_orders",
        {"carol": client(limits=ParticipantLimits(max_open_orders=1))},
        _carol_rests,
        {},
        id="OPEN_ORDER_LIMIT",
    ),
    pytest.param(
        "INSUFFICIENT_FUNDS",
        "funds",
        {"carol": client(), "fund_carol": False},
        None,
        {},
        id="INSUFFICIENT_FUNDS-buy",
    ),
    pytest.param(
        "INSUFFICIENT_FUNDS",
        "funds",
        {"carol": client(), "fund_carol": False},
        None,
        {"side": Side.SELL},
        id="INSUFFICIENT_FUNDS-sell",
    ),
    pytest.param(
        "DUPLICATE_CLIENT_ORDER_ID",
        "client_order_id",
        {"carol": client()},
        _carol_rests,
        {"client_order_id": "c1"},
        id="DUPLICATE_CLIENT_ORDER_ID",
    ),
    pytest.param(
        "POST_ONLY_WOULD_TRADE",
        None,
        {"carol": client()},
        None,
        {"price": P0 + 100_000, "post_only": True},
        id="POST_ONLY_WOULD_TRADE",
    ),
    pytest.param(
        "INVALID_TIF",
        "order_type",
        {"carol": client()},
        None,
        {"order_type": OrderType.MARKET, "price": None, "tif": TimeInForce.GTC},
        id="INVALID_TIF-market-gtc",
    ),
    pytest.param(
        "INVALID_TIF",
        "order_type",
        {"carol": client()},
        None,
        {"post_only": True, "tif": TimeInForce.IOC},
        id="INVALID_TIF-post-only-ioc",
    ),
    pytest.param(
        "NO_REFERENCE_PRICE",
        "price_protection",
        {"carol": client(), "markets": "no_reference"},
        None,
        {"order_type": OrderType.MARKET, "price": None, "tif": TimeInForce.IOC},
        id="NO_REFERENCE_PRICE",
    ),
]


@pytest.mark.parametrize(("code", "check", "venue", "setup", "fields"), REJECT_CASES)
def test_rejected_order_changes_nothing(
    code: str,
    check: str | None,
    venue: dict,
    setup: Callable[[Exchange], None] | None,
    fields: dict,
) -> None:
    """A new order refused with this code is reported, audited, and changes no state."""
    venue = dict(venue)
    if venue.get("markets") == "no_reference":
        venue["markets"] = _no_reference()
    ex = build(**venue)
    if setup is not None:
        setup(ex)
    placed = order(**fields)
    settle_licence_expiry(ex, placed.ts)
    before = snapshot(ex)
    reports = run(ex, placed)
    assert_rejected(reports, code, check)
    assert snapshot(ex) == before


def test_post_only_that_would_trade_is_rejected_and_changes_nothing():
    """A post-only buy at the best ask is rejected POST_ONLY_WOULD_TRADE and changes nothing."""
    ex = build(client())
    before = snapshot(ex)
    reports = run(ex, order(price=P0 + 100_000, post_only=True))
    orders = of(reports, OrderReport)
    assert [(o.status, o.reason, o.order_id) for o in orders] == [
        ("rejected", "POST_ONLY_WOULD_TRADE", None)
    ]
    assert orders[0].message
    assert not of(reports, FillReport) and not of(reports, TradePrinted)
    assert snapshot(ex) == before
    # the next order gets the next id: the refused one consumed nothing
    assert accepted(run(ex, order(price=P0))).order_id == 3


# -- 2. licence expiry is decided by the command's timestamp, in Almaty time --------------------

ALMATY = timezone(timedelta(hours=5))


def almaty_ms(*fields: int) -> int:
    """Milliseconds since the epoch of a wall-clock time in Almaty (UTC+5)."""
    return int(datetime(*fields, tzinfo=ALMATY).timestamp()) * 1000


@pytest.mark.parametrize(
    ("ts", "code"),
    [
        pytest.param(almaty_ms(2026, 9, 30, 0, 0), None, id="last-day-start"),
        pytest.param(almaty_ms(2026, 10, 1, 0, 0) - 1, None, id="last-day-last-ms"),
        pytest.param(almaty_ms(2026, 10, 1, 0, 0), "LICENSE_EXPIRED", id="next-day-midnight"),
        pytest.param(
            int(datetime(2026, 9, 30, 20, 0, tzinfo=UTC).timestamp()) * 1000,
            "LICENSE_EXPIRED",
            id="still-sept-30-in-utc",
        ),
        pytest.param(almaty_ms(2026, 10, 2, 12, 0), "LICENSE_EXPIRED", id="next-day-noon"),
    ],
)
def test_license_expiry_uses_command_timestamp(ts: int, code: str | None):
    """A licence valid to 2026-09-30 admits orders through 24:00 Almaty time, not after."""
    ex = build(maker(), licenses=(replace(MM_LICENSE, valid_to="2026-09-30"),))
    before = snapshot(ex)
    reports = run(ex, order(ts=ts, cid="c1"))
    if code is None:
        assert accepted(reports).status == "new"
        assert of(reports, Audit)[0].decision == "accept"
    else:
        assert_rejected(reports, code, "license_status")
        assert "2026-09-30" in of(reports, OrderReport)[0].message
        assert snapshot(ex) == before


def test_same_order_accepted_on_last_day_rejected_next_day():
    """The identical order is accepted at 23:59 on valid_to and refused at 00:00 the next day."""
    ex = build(maker(), licenses=(replace(MM_LICENSE, valid_to="2026-09-30"),))
    last = almaty_ms(2026, 9, 30, 23, 59)
    accepted(run(ex, order(ts=last, cid="c1")))
    settle_licence_expiry(ex, last + 60_000)  # c1 is canceled: its licence ran out
    before = snapshot(ex)
    reports = run(ex, order(ts=last + 60_000, cid="c2"))
    assert_rejected(reports, "LICENSE_EXPIRED", "license_status")
    after = snapshot(ex)
    # a new Almaty day starts a new daily notional; nothing else may move
    assert after.pop("usage")["carol"][0] == before.pop("usage")["carol"][0] == 0
    assert after == before


# -- 3. suspension by admin command cancels resting orders at once -----------------------------


SUSPENSIONS = [
    pytest.param(
        maker(),
        SetLicense(ts=TS0 + 5_000, license=replace(MM_LICENSE, status="SUSPENDED")),
        "LICENSE_SUSPENDED",
        id="license-suspended",
    ),
    pytest.param(
        maker(),
        SetLicense(ts=TS0 + 5_000, license=replace(MM_LICENSE, status="REVOKED")),
        "LICENSE_REVOKED",
        id="license-revoked",
    ),
    pytest.param(
        maker(),
        SetLicense(ts=TS0 + 5_000, license=replace(MM_LICENSE, valid_to="2026-09-01")),
        "LICENSE_EXPIRED",
        id="license-shortened",
    ),
    pytest.param(
        client(),
        SetParticipant(ts=TS0 + 5_000, participant=client(status="suspended")),
        "ACCOUNT_SUSPENDED",
        id="participant-suspended",
    ),
    pytest.param(
        client(),
        SetParticipant(ts=TS0 + 5_000, participant=client(status="frozen")),
        "ACCOUNT_SUSPENDED",
        id="participant-frozen",
    ),
]


@pytest.mark.parametrize(("carol", "command", "code"), SUSPENSIONS)
def test_suspension_cancels_resting_orders_and_rejects_next(carol, command, code):
    """Suspending carol cancels her resting orders (reason license), frees holds, rejects next."""
    ex = build(carol)
    buy = accepted(run(ex, order(price=P0 - 200_000, cid="c1")))
    sell = accepted(run(ex, order(side=Side.SELL, price=P0 + 200_000, cid="c2")))
    assert ex.ledger.held("carol", "KZT") > 0 and ex.ledger.held("carol", "BTC") == Q0
    assert usage(ex)[:2] == (2, 900_000)
    totals = (ex.ledger.total("carol", "KZT"), ex.ledger.total("carol", "BTC"))
    others = {p: snapshot(ex)["open"][p] for p in ("alice", "bob")}

    reports = run(ex, command)

    assert of(reports, AdminApplied)
    canceled = of(reports, OrderReport)
    assert {(o.order_id, o.status, o.reason) for o in canceled} == {
        (buy.order_id, "canceled", "license"),
        (sell.order_id, "canceled", "license"),
    }
    assert ex.ledger.held("carol", "KZT") == 0 and ex.ledger.held("carol", "BTC") == 0
    assert (ex.ledger.total("carol", "KZT"), ex.ledger.total("carol", "BTC")) == totals
    assert ex.open_orders("carol") == []
    assert usage(ex) == (0, 0, 0)
    assert {p: snapshot(ex)["open"][p] for p in ("alice", "bob")} == others
    assert all(
        o[0] not in (buy.order_id, sell.order_id) for b in ex.books.values() for o in b.orders()
    )

    before = snapshot(ex)
    reports = run(ex, order(ts=TS0 + 6_000, cid="c3"))
    assert_rejected(reports, code, None)
    assert snapshot(ex) == before


def test_venue_license_suspension_cancels_everyones_orders():
    """Suspending the venue's licence cancels every client's resting orders with reason license."""
    ex = build(client())
    accepted(run(ex, order(price=P0 - 200_000, cid="c1")))
    reports = run(
        ex, SetLicense(ts=TS0 + 5_000, license=replace(VENUE_LICENSE, status="SUSPENDED"))
    )
    canceled = of(reports, OrderReport)
    assert {(o.participant_id, o.status, o.reason) for o in canceled} == {
        ("alice", "canceled", "license"),
        ("bob", "canceled", "license"),
        ("carol", "canceled", "license"),
    }
    assert all(len(b) == 0 for b in ex.books.values())
    assert all(held == 0 for _, _, _, held in ex.ledger.accounts())
    assert_rejected(run(ex, order(ts=TS0 + 6_000)), "VENUE_NOT_LICENSED", "venue_license")


def test_other_participants_license_change_leaves_orders_alone():
    """Suspending one maker's licence does not touch clients who trade under the venue's."""
    ex = build(maker())
    before = snapshot(ex)
    reports = run(ex, SetLicense(ts=TS0 + 5_000, license=replace(MM_LICENSE, status="SUSPENDED")))
    assert not of(reports, OrderReport)
    assert snapshot(ex) == before


# -- 4. usage: reserved on accept, converted on fills, released on cancel ----------------------


def cancel(ex: Exchange, who: str, order_id: int, ts: int = TS0 + 9_000) -> list:
    return run(ex, CancelOrder(ts=ts, participant_id=who, market="BTC-KZT", order_id=order_id))


@pytest.mark.parametrize(
    ("is_retail", "side"), [(True, Side.BUY), (True, Side.SELL), (False, Side.BUY)]
)
def test_usage_reserved_on_accept_released_on_cancel(is_retail, side):
    """A resting order reserves count and notional; cancel gives them back exactly."""
    ex = build(retail() if is_retail else client())
    price = P0 - 200_000 if side == Side.BUY else P0 + 200_000
    placed = accepted(run(ex, order(side=side, price=price)))
    notional = -(-price * Q0 // 10**8)
    retail_buys = notional if is_retail and side == Side.BUY else 0
    assert usage(ex) == (1, notional, retail_buys)
    cancel(ex, "carol", placed.order_id)
    assert usage(ex) == (0, 0, 0)


@pytest.mark.parametrize("is_retail", [True, False])
def test_usage_converted_on_fill(is_retail):
    """A partly filled buy counts its filled part at the fill price; cancel keeps only that."""
    ex = build(retail() if is_retail else client())
    limit = P0 + 200_000
    # bob's ask: 2*Q0 at P0 + 100_000, below carol's limit
    placed = accepted(run(ex, order(price=limit, qty=3 * Q0, cid="c1")))
    assert [o.status for o in ex.open_orders("carol")] == ["partially_filled"]
    filled = 2 * Q0 * (P0 + 100_000) // 10**8  # exact: 900_020
    open_part = -(-limit * Q0 // 10**8)
    expect_retail = filled + open_part if is_retail else 0
    assert usage(ex) == (1, filled + open_part, expect_retail)
    cancel(ex, "carol", placed.order_id)
    assert usage(ex) == (0, filled, filled if is_retail else 0)


def test_usage_fully_filled_taker_and_maker():
    """A fully filled order leaves the open count; its cost stays in the day's notional."""
    ex = build(client())
    resting = accepted(run(ex, order(side=Side.SELL, price=P0, cid="c1")))
    assert usage(ex) == (1, 450_000, 0)
    run(ex, order("alice", price=P0, ts=TS0 + 2_000, cid="a2"))
    assert ex.open_orders("carol") == []
    assert usage(ex) == (0, 450_000, 0)
    assert resting.order_id not in {o[0] for o in ex.books["BTC-KZT"].orders()}


def test_retail_cap_counts_only_retail_buys():
    """The retail cap refuses a RETAIL buy above it but not a RETAIL sell or a professional buy."""
    ex = build(retail(retail_monthly_cap=449_999))
    assert_rejected(run(ex, order()), "RETAIL_LIMIT_EXCEEDED", "retail_limit")
    sell = accepted(run(ex, order(side=Side.SELL, price=P0 + 200_000, qty=5 * Q0)))
    assert sell.status == "new"
    assert usage(ex)[2] == 0
    # alice is professional: her buys never count towards a retail cap
    accepted(run(ex, order("alice", price=P0 - 200_000, qty=5 * Q0)))
    assert usage(ex, "alice")[2] == 0


def test_retail_cap_released_on_cancel_and_kept_on_fill():
    """Canceling frees retail cap; a filled buy keeps counting at its fill price."""
    ex = build(retail(retail_monthly_cap=900_000))
    first = accepted(run(ex, order(price=P0 - 200_000, cid="c1")))  # 449_980
    second = accepted(run(ex, order(price=P0 - 200_000, cid="c2")))  # 899_960
    assert_rejected(run(ex, order(price=P0, cid="c3")), "RETAIL_LIMIT_EXCEEDED", "retail_limit")
    cancel(ex, "carol", first.order_id)
    cancel(ex, "carol", second.order_id)
    assert usage(ex) == (0, 0, 0)
    # takes Q0 of bob's ask at P0 + 100_000: pays exactly 450_010
    reports = run(ex, order(price=P0 + 100_000, cid="c4", ts=TS0 + 10_000))
    assert last_status(reports, accepted(reports).order_id) == "filled"
    assert usage(ex) == (0, 450_010, 450_010)
    assert_rejected(
        run(ex, order(price=P0, cid="c5", ts=TS0 + 11_000)),
        "RETAIL_LIMIT_EXCEEDED",
        "retail_limit",
    )
    accepted(run(ex, order(price=P0 - 1_000_000, cid="c6", ts=TS0 + 11_000)))


def test_daily_limit_released_on_cancel_and_resets_next_day():
    """Daily notional frees on cancel, keeps fills, and starts again at Almaty midnight."""
    ex = build(client(limits=ParticipantLimits(daily_notional=450_010)))
    first = accepted(run(ex, order(cid="c1")))
    assert_rejected(run(ex, order(cid="c2")), "DAILY_LIMIT_EXCEEDED", "daily_limit")
    cancel(ex, "carol", first.order_id)
    accepted(run(ex, order(price=P0 + 100_000, cid="c3", ts=TS0 + 10_000)))  # fills 450_010
    assert usage(ex) == (0, 450_010, 0)
    assert_rejected(
        run(ex, order(qty=Q0, price=P0 - 100_000, cid="c4", ts=TS0 + 11_000)),
        "DAILY_LIMIT_EXCEEDED",
        "daily_limit",
    )
    next_day = almaty_ms(2026, 9, 23, 0, 0)
    assert next_day > TS0
    accepted(run(ex, order(price=P0 - 100_000, cid="c5", ts=next_day)))
    assert usage(ex) == (1, 449_990, 0)


def test_open_order_limit_released_on_cancel_and_ignores_ioc():
    """max_open_orders counts resting orders; cancel frees a slot; an IOC is not limited."""
    ex = build(client(limits=ParticipantLimits(max_open_orders=1)))
    first = accepted(run(ex, order(price=P0 - 200_000, cid="c1")))
    assert_rejected(run(ex, order(price=P0 - 200_000)), "OPEN_ORDER_LIMIT", "open_orders")
    reports = run(ex, order(price=P0 + 100_000, tif=TimeInForce.IOC))
    assert last_status(reports, accepted(reports).order_id) == "filled"
    assert usage(ex)[0] == 1
    cancel(ex, "carol", first.order_id)
    assert usage(ex)[0] == 0
    accepted(run(ex, order(price=P0 - 200_000, cid="c2", ts=TS0 + 10_000)))
    assert usage(ex)[0] == 1


# -- 5. withdraw, cancel and amend refusals change nothing --------------------------------------


def fund_carol_kzt(amount: int) -> Exchange:
    ex = build(client(), fund_carol=False)
    run(ex, Deposit(ts=TS0, participant_id="carol", asset="KZT", amount=amount))
    return ex


def test_withdraw_never_takes_held_funds():
    """A withdrawal above the available balance is refused INSUFFICIENT_FUNDS; held stays put."""
    ex = fund_carol_kzt(1_000_000)
    accepted(run(ex, order(cid="c1")))  # holds 450_000 + 450 fee
    assert ex.ledger.held("carol", "KZT") == 450_450
    before = snapshot(ex)
    reports = run(ex, Withdraw(ts=TS0 + 2_000, participant_id="carol", asset="KZT", amount=549_551))
    [rejected] = of(reports, CommandRejected)
    assert rejected.code == "INSUFFICIENT_FUNDS" and rejected.message
    assert not of(reports, BalanceReport) and not of(reports, AdminApplied)
    assert snapshot(ex) == before
    run(ex, Withdraw(ts=TS0 + 3_000, participant_id="carol", asset="KZT", amount=549_550))
    assert ex.ledger.total("carol", "KZT") == 450_450
    assert ex.ledger.available("carol", "KZT") == 0


def _unknown_order_commands(ex: Exchange) -> list:
    bob_order = ex.order_id_for("bob", "b1")
    ts = TS0 + 2_000
    commands: list = []
    for kind, extra in ((CancelOrder, {}), (AmendOrder, {"qty": Q0})):
        commands += [
            kind(ts=ts, participant_id="carol", market="BTC-KZT", order_id=999, **extra),
            kind(ts=ts, participant_id="carol", market="BTC-KZT", order_id=bob_order, **extra),
            kind(ts=ts, participant_id="carol", market="BTC-KZT", client_order_id="b1", **extra),
            kind(ts=ts, participant_id="bob", market="ETH-KZT", order_id=bob_order, **extra),
            kind(ts=ts, participant_id="mallory", market="BTC-KZT", order_id=bob_order, **extra),
        ]
    return commands


@pytest.mark.parametrize("index", range(10))
def test_cancel_or_amend_of_unknown_or_foreign_order_is_refused(index):
    """Cancel/amend of an unknown, another's, or wrong-market order: UNKNOWN_ORDER, no change."""
    ex = build(client())
    command = _unknown_order_commands(ex)[index]
    before = snapshot(ex)
    reports = run(ex, command)
    [rejected] = of(reports, CommandRejected)
    assert rejected.code == "UNKNOWN_ORDER" and rejected.message
    assert not of(reports, OrderReport) and not of(reports, BookChanged)
    assert snapshot(ex) == before


@pytest.mark.parametrize(("price", "qty"), [(None, 3 * Q0), (P0 + 300_000, 3 * Q0)])
def test_amend_needing_more_funds_than_available_changes_nothing(price, qty):
    """An amend whose extra hold exceeds the available balance is refused INSUFFICIENT_FUNDS."""
    ex = fund_carol_kzt(1_000_000)
    placed = accepted(run(ex, order(price=P0 - 200_000, cid="c1")))
    before = snapshot(ex)
    reports = run(
        ex,
        AmendOrder(
            ts=TS0 + 2_000,
            participant_id="carol",
            market="BTC-KZT",
            order_id=placed.order_id,
            price=price,
            qty=qty,
        ),
    )
    [rejected] = of(reports, CommandRejected)
    assert rejected.code == "INSUFFICIENT_FUNDS" and rejected.message
    assert not of(reports, OrderReport) and not of(reports, BalanceReport)
    assert snapshot(ex) == before


def test_amend_qty_decrease_keeps_priority_increase_loses_it():
    """Reducing qty keeps the order's place in the queue; raising it sends it to the back."""
    ex = build(client())
    alice = ex.order_id_for("alice", "a1")
    level = P0 - 100_000
    carol = accepted(run(ex, order(price=level, qty=2 * Q0, cid="c1"))).order_id

    def queue() -> list[int]:
        return [o[0] for o in ex.books["BTC-KZT"].orders() if o[3] == level]

    assert queue() == [alice, carol]
    run(
        ex,
        AmendOrder(
            ts=TS0 + 2_000, participant_id="alice", market="BTC-KZT", order_id=alice, qty=Q0
        ),
    )
    assert queue() == [alice, carol]
    assert ex.ledger.held("alice", "KZT") == -(-level * Q0 // 10**8) + -(-level * Q0 // 10**11)
    reports = run(ex, order("bob", side=Side.SELL, price=level, qty=Q0, ts=TS0 + 3_000))
    makers = [f.order_id for f in of(reports, FillReport) if f.liquidity == "maker"]
    assert makers == [alice]
    # carol raises her qty: she loses her place behind a later order of bob's
    bob = accepted(run(ex, order("bob", price=level, qty=Q0, ts=TS0 + 4_000))).order_id
    assert queue() == [carol, bob]
    run(
        ex,
        AmendOrder(
            ts=TS0 + 5_000, participant_id="carol", market="BTC-KZT", order_id=carol, qty=3 * Q0
        ),
    )
    assert queue() == [bob, carol]


# -- 6. market orders are protected by the price band -------------------------------------------


def test_market_buy_is_held_at_the_top_of_the_band():
    """A market buy of Q0 holds Q0 at the band top plus max fee: one tiyn less is refused."""
    hold = -(-BAND_TOP * Q0 // 10**8) + -(-BAND_TOP * Q0 * 1_000 // 10**14)
    assert hold == 495_495
    market_buy = {"order_type": OrderType.MARKET, "price": None, "tif": TimeInForce.IOC}
    ex = fund_carol_kzt(hold - 1)
    before = snapshot(ex)
    assert_rejected(run(ex, order(**market_buy)), "INSUFFICIENT_FUNDS", "funds")
    assert snapshot(ex) == before
    ex = fund_carol_kzt(hold)
    reports = run(ex, order(**market_buy))
    placed = accepted(reports)
    assert last_status(reports, placed.order_id) == "filled"
    # paid the fill at bob's ask (450_010) plus a 0.1 % fee rounded up (451); rest released
    assert ex.ledger.total("carol", "KZT") == hold - 450_010 - 451
    assert ex.ledger.held("carol", "KZT") == 0


def test_market_buy_cannot_trade_above_the_band():
    """Asks above reference + 10 % are not reached by a market buy; its rest expires."""
    ex = build(client())
    run(ex, SetMarket(ts=TS0 + 100, market="BTC-KZT", reference_price=5_000_000_000))
    accepted(run(ex, order("bob", side=Side.SELL, price=BAND_TOP, ts=TS0 + 200)))
    high = accepted(run(ex, order("bob", side=Side.SELL, price=5_400_000_000, ts=TS0 + 300)))
    run(ex, SetMarket(ts=TS0 + 400, market="BTC-KZT", reference_price=P0))
    reports = run(
        ex,
        order(order_type=OrderType.MARKET, price=None, tif=TimeInForce.IOC, qty=5 * Q0),
    )
    prices = [t.price for t in of(reports, TradePrinted)]
    assert prices == [P0 + 100_000, BAND_TOP]
    assert sum(t.qty for t in of(reports, TradePrinted)) == 3 * Q0
    placed = accepted(reports)
    assert last_status(reports, placed.order_id) == "expired"
    assert high.order_id in {o[0] for o in ex.books["BTC-KZT"].orders()}
    assert ex.ledger.held("carol", "KZT") == 0
    assert usage(ex)[0] == 0


# -- engine bugs ----------------------------------------------------------------------------------


def test_amend_raising_exposure_goes_through_the_check_chain():
    """An amend that raises a RETAIL buy above its monthly cap is refused, like a new order."""
    ex = build(retail(retail_monthly_cap=450_000, daily_notional=450_000))
    placed = accepted(run(ex, order(cid="c1")))
    before = snapshot(ex)
    reports = run(
        ex,
        AmendOrder(
            ts=TS0 + 2_000,
            participant_id="carol",
            market="BTC-KZT",
            order_id=placed.order_id,
            qty=100 * Q0,
        ),
    )
    assert [r.code for r in of(reports, CommandRejected)] == ["RETAIL_LIMIT_EXCEEDED"]
    assert snapshot(ex) == before


def test_amend_updates_usage_reservation():
    """After an amend to 3 * Q0, the order reserves its new notional in daily usage."""
    ex = build(client())
    placed = accepted(run(ex, order(price=P0 - 200_000, cid="c1")))
    run(
        ex,
        AmendOrder(
            ts=TS0 + 2_000,
            participant_id="carol",
            market="BTC-KZT",
            order_id=placed.order_id,
            qty=3 * Q0,
        ),
    )
    assert usage(ex) == (1, -(-(P0 - 200_000) * 3 * Q0 // 10**8), 0)


def test_order_resting_past_license_expiry_does_not_trade():
    """A maker's resting order does not trade after its licence has expired by date."""
    ex = build(maker(), licenses=(replace(MM_LICENSE, valid_to="2026-09-30"),))
    accepted(run(ex, order(side=Side.SELL, price=P0, cid="c1")))
    reports = run(ex, order("alice", price=P0, ts=almaty_ms(2026, 10, 5, 12, 0)))
    assert not [f for f in of(reports, FillReport) if f.participant_id == "carol"]


@pytest.mark.parametrize("command", [Deposit, Withdraw])
def test_funds_for_an_unknown_participant_are_refused(command):
    """A deposit or withdrawal naming no registered participant is refused and moves nothing."""
    ex = build(client())
    before = snapshot(ex)
    reports = run(ex, command(ts=TS0 + 1000, participant_id="nobody", asset="KZT", amount=100))
    (refused,) = of(reports, CommandRejected)
    assert refused.code == "PARTICIPANT_UNKNOWN"
    assert snapshot(ex) == before
    assert ex.ledger.total("nobody", "KZT") == 0
