"""The check chain: every reject code, the chain order, expiry, profiles and custom checks."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Iterator, Mapping
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine import reject
from engine.errors import ConfigError, EngineError
from engine.licensing import (
    ACCEPTED,
    AFSA,
    ALATAU,
    BUILTIN_CHECK_IDS,
    BUILTIN_CHECKS,
    NBK,
    PROFILES,
    REQUIRED_CHECKS,
    CheckChain,
    CustomCheckError,
    Decision,
    OrderContext,
    ParticipantUsage,
    Profile,
    Registry,
    chain_from_toml,
    get_profile,
    load_chain,
    load_registry,
)
from engine.licensing.records import License, day_start_ms
from engine.markets import HALTED, Market, Rejection, load_markets
from engine.types import OrderType, Side, TimeInForce

KZT = 100  # tiyn
HOUR = 3_600_000
REGISTRY = load_registry()
MARKETS = load_markets()
BTC = MARKETS["BTC-KZT"]
TS = day_start_ms("2026-06-03") + 12 * HOUR  # a Wednesday, noon in Almaty
FRIDAY_TS = day_start_ms("2026-06-05") + 12 * HOUR
PRICE = 45_000_000 * KZT  # the BTC-KZT reference
QTY = 10_000  # 0.0001 BTC: 4,500 KZT at the reference
CHAINS = {name: CheckChain(name) for name in PROFILES}
_UNSET: Any = object()


def with_participant(participant_id: str, registry: Registry = REGISTRY, **changes) -> Registry:
    """The registry with one participant's fields changed."""
    old = registry.participant(participant_id)
    assert old is not None
    return registry.with_participant(msgspec.structs.replace(old, **changes))


def with_limits(participant_id: str, **changes) -> Registry:
    """The registry with one participant's limits changed."""
    old = REGISTRY.participant(participant_id)
    assert old is not None
    limits = msgspec.structs.replace(old.limits, **changes)
    return REGISTRY.with_participant(msgspec.structs.replace(old, limits=limits))


def with_license(license_id: str, registry: Registry = REGISTRY, **changes) -> Registry:
    """The registry with one licence's fields changed."""
    old = registry.license(license_id)
    assert old is not None
    return registry.with_license(msgspec.structs.replace(old, **changes))


def make_ctx(
    *,
    participant_id: str = "alice",
    registry: Registry = REGISTRY,
    profile: Profile = ALATAU,
    market: str = "BTC-KZT",
    markets: Mapping[str, Market] = MARKETS,
    side: Side = Side.BUY,
    order_type: OrderType = OrderType.LIMIT,
    tif: TimeInForce = TimeInForce.GTC,
    price: int | None = PRICE,
    qty: int = QTY,
    notional: int = _UNSET,
    usage: ParticipantUsage = ParticipantUsage(),  # noqa: B008 - frozen, shared on purpose
    funds_available: int = 10**15,
    ts: int = TS,
    amend: bool = False,
) -> OrderContext:
    """An order context built the way the exchange builds one: defaults are a valid order
    by alice (RETAIL, KYC 2) to buy 0.0001 BTC at 45,000,000 KZT (4,500 KZT notional)."""
    participant = registry.participant(participant_id)
    spec = markets.get(market)
    if order_type == OrderType.MARKET:
        price = None
    fee = 0
    if notional is _UNSET:
        notional = 0
        if spec is not None:
            band = spec.price_band()
            worst = price if price is not None else band[1] if side == Side.BUY else band[0]
            notional = spec.quote_amount(worst, qty, round_up=True)
            fee = spec.fee(worst, qty, spec.taker_fee_ppm)
    if side == Side.BUY:
        funds_asset, funds_required = (spec.quote if spec else "KZT"), notional + fee
    else:
        funds_asset, funds_required = (spec.base if spec else "BTC"), qty
    return OrderContext(
        ts=ts,
        profile=profile,
        registry=registry,
        participant_id=participant_id,
        participant=participant,
        license=registry.license_for(participant),
        venue_license=registry.venue_license,
        market_symbol=market,
        market=spec,
        side=side,
        order_type=order_type,
        tif=tif,
        price=price,
        qty=qty,
        notional=notional,
        usage=usage,
        funds_asset=funds_asset,
        funds_required=funds_required,
        funds_available=funds_available,
        amend=amend,
    )


def decide(chain: CheckChain | None = None, **kwargs: Any) -> Decision:
    """The ALATAU chain's (or ``chain``'s) decision on ``make_ctx(**kwargs)``."""
    profile = kwargs.pop("profile", ALATAU)
    chain = chain or CHAINS[profile.name]
    return chain.evaluate(make_ctx(profile=chain.profile, **kwargs))


def halted(symbol: str = "BTC-KZT") -> dict[str, Market]:
    """The default markets with ``symbol`` halted."""
    return {**MARKETS, symbol: MARKETS[symbol].with_status(HALTED)}


# -- one test per reject code ----------------------------------------------------------------

# (code, check id, make_ctx keyword arguments, a fragment the message must contain)
CASES: list[tuple[str, str, dict[str, Any], str]] = [
    (
        "VENUE_NOT_LICENSED",
        "venue_license",
        {"registry": with_license("ALATAU-VENUE", status="SUSPENDED")},
        "DEMO-NBK-DAE-2026-0001 (NBK) is suspended",
    ),
    (
        "VENUE_NOT_LICENSED",
        "venue_license",
        {"ts": day_start_ms("2031-01-01")},
        "expired at the end of 2030-12-31",
    ),
    (
        "VENUE_NOT_LICENSED",
        "venue_license",
        {"ts": day_start_ms("2026-01-01") - 1},
        "is not valid before 2026-01-01",
    ),
    ("PARTICIPANT_UNKNOWN", "participant", {"participant_id": "mallory"}, "'mallory'"),
    (
        "ACCOUNT_SUSPENDED",
        "account_status",
        {"registry": with_participant("alice", status="suspended")},
        "alice is suspended",
    ),
    (
        "ACCOUNT_SUSPENDED",
        "account_status",
        {"registry": with_participant("alice", status="frozen")},
        "alice is frozen",
    ),
    (
        "LICENSE_SUSPENDED",
        "license_status",
        {"participant_id": "mm1", "registry": with_license("MM1-AFSA", status="SUSPENDED")},
        "DEMO-AFSA-MM-2026-0017 (AFSA) is suspended",
    ),
    (
        "LICENSE_REVOKED",
        "license_status",
        {"participant_id": "mm1", "registry": with_license("MM1-AFSA", status="REVOKED")},
        "is revoked",
    ),
    (
        "LICENSE_EXPIRED",
        "license_status",
        {"participant_id": "broker1", "ts": day_start_ms("2028-01-01")},
        "expired at the end of 2027-12-31",
    ),
    (
        "LICENSE_EXPIRED",
        "license_status",
        {
            "participant_id": "broker1",
            "registry": with_license("BROKER1-NBK", valid_from="2026-07-01"),
        },
        "is not valid before 2026-07-01",
    ),
    (
        "LICENSE_SCOPE",
        "license_scope",
        {"participant_id": "broker1", "market": "USDT-KZT", "price": 515 * KZT, "qty": 10**7},
        "does not cover the market 'USDT-KZT'",
    ),
    (
        "LICENSE_SCOPE",
        "license_scope",
        {
            "participant_id": "mm1",
            "registry": with_license("MM1-AFSA", activities=("trading",)),
        },
        "does not cover the activity market_making",
    ),
    (
        "KYC_INSUFFICIENT",
        "kyc",
        {"registry": with_participant("alice", kyc_level=0)},
        "KYC level 0 may not trade",
    ),
    (
        "KYC_INSUFFICIENT",
        "kyc",
        {"registry": with_participant("alice", kyc_level=1), "qty": 1_200_000},  # 540,000 KZT
        "notional 540000.00 KZT is above the 500000.00 KZT allowed per order at KYC level 1",
    ),
    (
        "JURISDICTION_BLOCKED",
        "jurisdiction",
        {"registry": with_participant("bob", residency="KP"), "participant_id": "bob"},
        "residency KP is blocked under the ALATAU profile",
    ),
    ("UNKNOWN_MARKET", "market_status", {"market": "DOGE-KZT"}, "market 'DOGE-KZT' is unknown"),
    ("MARKET_HALTED", "market_status", {"markets": halted()}, "market BTC-KZT is halted"),
    (
        "INVALID_TICK",
        "market_rules",
        {"price": PRICE + 50},
        "price 45000000.50 is not a multiple of the tick 1",
    ),
    ("INVALID_LOT", "market_rules", {"qty": QTY + 1}, "is not a multiple of the lot 0.00001"),
    (
        "BELOW_MIN_QTY",
        "market_rules",
        {"market": "USDT-KZT", "price": 515 * KZT, "qty": 500_000},  # 0.5 USDT
        "qty 0.5 USDT is below the minimum 1 USDT",
    ),
    (
        "BELOW_MIN_NOTIONAL",
        "market_rules",
        {"qty": 1_000},
        "notional 450.00 KZT is below the minimum 1000.00 KZT",
    ),
    (
        "PRICE_OUT_OF_BAND",
        "price_band",
        {"price": 49_500_001 * KZT},
        "price 49500001.00 is outside the band 40500000.00 to 49500000.00 (10% around the "
        "reference 45000000.00)",
    ),
    (
        "ORDER_SIZE_LIMIT",
        "order_size",
        {"participant_id": "bob", "qty": 1_200_000_000},  # 12 BTC: 540,000,000 KZT
        "above the per-order maximum 500000000.00 KZT for PROFESSIONAL participants",
    ),
    (
        "ORDER_SIZE_LIMIT",
        "order_size",
        {"participant_id": "broker1", "qty": 300_000_000},  # 3 BTC: 135,000,000 KZT
        "above the per-order maximum 100000000.00 KZT of participant broker1",
    ),
    (
        "CATEGORY_NOT_PERMITTED",
        "category_permissions",
        {"order_type": OrderType.MARKET, "tif": TimeInForce.IOC},
        "market orders need the appropriateness test for RETAIL participants",
    ),
    (
        "CATEGORY_NOT_PERMITTED",
        "category_permissions",
        {"tif": TimeInForce.FOK},
        "time in force FOK is not permitted for RETAIL participants under the ALATAU profile",
    ),
    (
        "CATEGORY_NOT_PERMITTED",
        "category_permissions",
        {"participant_id": "mm1", "order_type": OrderType.MARKET, "tif": TimeInForce.IOC},
        "market orders are not permitted for MARKET_MAKER participants",
    ),
    (
        "RETAIL_LIMIT_EXCEEDED",
        "retail_limit",
        {"usage": ParticipantUsage(monthly_retail_buys=511_000 * KZT)},
        "purchases this month 511000.00 KZT plus this order's 4500.00 KZT would exceed the "
        "retail monthly cap 515000.00 KZT",
    ),
    (
        "DAILY_LIMIT_EXCEEDED",
        "daily_limit",
        {"usage": ParticipantUsage(daily_notional=1_996_000 * KZT)},
        "would exceed the daily limit 2000000.00 KZT",
    ),
    (
        "OPEN_ORDER_LIMIT",
        "open_orders",
        {"usage": ParticipantUsage(open_orders=50)},
        "alice has 50 open orders, the limit is 50",
    ),
    (
        "INSUFFICIENT_FUNDS",
        "funds",
        {"funds_available": 4_000 * KZT},
        "the order needs 4504.50 KZT, available 4000.00 KZT",
    ),
    (
        "INSUFFICIENT_FUNDS",
        "funds",
        {"side": Side.SELL, "funds_available": 5_000},
        "the order needs 0.00010000 BTC, available 0.00005000 BTC",
    ),
]


@pytest.mark.parametrize(
    ("code", "check", "kwargs", "fragment"),
    CASES,
    ids=[f"{case[0]}-{i}" for i, case in enumerate(CASES)],
)
def test_each_code_comes_from_its_check(
    code: str, check: str, kwargs: dict[str, Any], fragment: str
) -> None:
    """The chain rejects with the table's code, names the check and the value in the message."""
    decision = decide(**kwargs)
    assert (decision.accepted, decision.check, decision.code) == (False, check, code)
    assert fragment in decision.message
    assert decision.rejection == Rejection(code, decision.message)


def test_cases_cover_every_chain_code() -> None:
    """Every code of the reject table's market and licensing sections is produced above."""
    chain_codes = {e.code for e in reject.all_codes() if 20 <= e.number < 60}
    chain_codes.discard("INVALID_NUMBER")  # the wire's, before any check runs
    assert {case[0] for case in CASES} == chain_codes


def test_a_valid_order_is_accepted() -> None:
    """A valid order passes every check and the decision says so."""
    decision = decide()
    assert decision == ACCEPTED
    assert (decision.accepted, decision.check, decision.code) == (True, "all", None)
    assert decision.rejection is None


@pytest.mark.parametrize("participant_id", ["alice", "bob", "mm1", "broker1"])
def test_every_demo_participant_can_trade(participant_id: str) -> None:
    """Each shipped demo participant's ordinary limit order is accepted under ALATAU."""
    assert decide(participant_id=participant_id).accepted


# -- order of the chain ----------------------------------------------------------------------


def test_the_earlier_check_wins() -> None:
    """With two failures, the code of the check that comes first in the chain is reported."""
    registry = with_participant("alice", status="suspended")
    decision = decide(registry=registry, market="DOGE-KZT", funds_available=0)
    assert decision.code == "ACCOUNT_SUSPENDED"


def test_a_custom_order_changes_which_code_wins() -> None:
    """Reordering the chain puts funds first, so it reports INSUFFICIENT_FUNDS instead."""
    ids = ["funds", *(c for c in BUILTIN_CHECK_IDS if c != "funds")]
    chain = CheckChain("ALATAU", order=ids)
    registry = with_participant("alice", status="suspended")
    assert decide(chain, registry=registry, funds_available=0).code == "INSUFFICIENT_FUNDS"
    assert decide(chain, registry=registry).code == "ACCOUNT_SUSPENDED"


def test_market_rules_leave_the_band_to_price_band() -> None:
    """A price on the tick but out of band fails at price_band, not at market_rules."""
    chain = CheckChain("ALATAU", disabled=["price_band"])
    assert decide(chain, price=60_000_000 * KZT, funds_available=10**18).accepted
    assert decide(price=60_000_000 * KZT).check == "price_band"


# Faults with separate inputs, each failing one check; "participant" hides the checks that
# need a participant (they let an unknown one through, the participant check refuses it).
# alice trades under the venue's licence, so a revoked venue licence also fails her licence;
# an FOK order cannot rest, so it does not count against the open-order limit.
_FAULTS: dict[str, dict[str, Any]] = {
    "venue_license": {"venue": {"status": "REVOKED"}},
    "participant": {"participant_id": "mallory"},
    "account_status": {"alice": {"status": "frozen"}},
    "kyc": {"alice": {"kyc_level": 0}},
    "jurisdiction": {"alice": {"residency": "IR"}},
    "market_status": {"markets": halted()},
    "market_rules": {"qty": QTY + 1},
    "category_permissions": {"tif": TimeInForce.FOK},
    "retail_limit": {"usage": {"monthly_retail_buys": 515_000 * KZT}},
    "daily_limit": {"usage": {"daily_notional": 2_000_000 * KZT}},
    "open_orders": {"usage": {"open_orders": 50}},
    "funds": {"funds_available": 0},
}
_NEEDS_PARTICIPANT = {
    "account_status",
    "kyc",
    "jurisdiction",
    "category_permissions",
    "retail_limit",
    "daily_limit",
    "open_orders",
}


def _with_faults(faults: set[str]) -> dict[str, Any]:
    """make_ctx keyword arguments with every fault in ``faults`` applied."""
    kwargs: dict[str, Any] = {}
    alice: dict[str, Any] = {}
    usage: dict[str, int] = {}
    registry = REGISTRY
    for name in faults:
        for key, value in _FAULTS[name].items():
            if key == "venue":
                registry = with_license("ALATAU-VENUE", registry, **value)
            elif key == "alice":
                alice.update(value)
            elif key == "usage":
                usage.update(value)
            else:
                kwargs[key] = value
    if alice:
        registry = with_participant("alice", registry, **alice)
    return {**kwargs, "registry": registry, "usage": ParticipantUsage(**usage)}


@settings(max_examples=150, deadline=None)
@given(
    faults=st.sets(st.sampled_from(sorted(_FAULTS)), min_size=1),
    order=st.permutations(BUILTIN_CHECK_IDS),
)
def test_the_first_failing_check_in_any_order_decides(faults: set[str], order: list[str]) -> None:
    """For any set of faults and any order of the checks, the first faulty check decides."""
    chain = CheckChain("ALATAU", order=order)
    firing = set(faults)
    if "participant" in faults:
        firing -= _NEEDS_PARTICIPANT
    elif "venue_license" in faults:
        firing.add("license_status")
    if "category_permissions" in faults:
        firing.discard("open_orders")
    expected = next(check for check in order if check in firing)
    assert decide(chain, **_with_faults(faults)).check == expected


# -- licence validity uses ctx.ts -------------------------------------------------------------


def test_a_licence_is_valid_all_of_its_last_day_and_expired_the_next() -> None:
    """broker1's licence (valid to 2027-12-31) trades until 24:00 Almaty time, then expires."""
    last_ms = day_start_ms("2028-01-01") - 1  # 2027-12-31 23:59:59.999 in Almaty
    assert decide(participant_id="broker1", ts=day_start_ms("2027-12-31")).accepted
    assert decide(participant_id="broker1", ts=last_ms).accepted
    assert decide(participant_id="broker1", ts=last_ms + 1).code == "LICENSE_EXPIRED"


def test_a_licence_day_starts_at_almaty_midnight() -> None:
    """The first valid instant of 2026-01-01 is 2025-12-31 19:00 UTC (Almaty is UTC+5)."""
    expected = datetime(2025, 12, 31, 19, tzinfo=UTC)
    assert REGISTRY.venue_license.valid_from_ms == int(expected.timestamp()) * 1000


_ALMATY = timezone(timedelta(hours=5))
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@given(
    first=st.dates(date(2000, 1, 1), date(2090, 1, 1)),
    days=st.integers(0, 4000),
    offset_ms=st.integers(-3 * 86_400_000, 3 * 86_400_000),
    at_end=st.booleans(),
)
def test_validity_matches_the_calendar_in_almaty(
    first: date, days: int, offset_ms: int, at_end: bool
) -> None:
    """A licence is valid exactly at the instants whose Almaty date is within its dates."""
    last = first + timedelta(days=days)
    lic = License(
        license_id="L1",
        regulator="AFSA",
        number="X-1",
        valid_from=first.isoformat(),
        valid_to=last.isoformat(),
    )
    anchor = lic.valid_until_ms if at_end else lic.valid_from_ms
    ts = anchor + offset_ms
    local_day = (_EPOCH + timedelta(milliseconds=ts)).astimezone(_ALMATY).date()
    assert lic.is_valid_at(ts) == (first <= local_day <= last)


# -- retail cap, daily and open-order limits --------------------------------------------------


@given(used=st.integers(0, 10**9), notional=st.integers(0, 10**9))
def test_the_retail_cap_allows_up_to_the_cap_inclusive(used: int, notional: int) -> None:
    """A retail buy passes the cap check exactly when used + notional <= 515,000 KZT."""
    ctx = make_ctx(notional=notional, usage=ParticipantUsage(monthly_retail_buys=used))
    rejection = BUILTIN_CHECKS["retail_limit"](ctx)
    assert (rejection is None) == (used + notional <= 515_000 * KZT)


def test_the_retail_cap_counts_buys_only() -> None:
    """A retail sell is not counted against the monthly purchase cap."""
    usage = ParticipantUsage(monthly_retail_buys=515_000 * KZT)
    assert decide(usage=usage).code == "RETAIL_LIMIT_EXCEEDED"
    assert decide(usage=usage, side=Side.SELL).accepted


def test_the_test_lifts_the_retail_cap_to_the_tested_cap() -> None:
    """After the appropriateness test alice's cap is her tested cap, 5,150,000 KZT."""
    registry = with_participant("alice", appropriateness_passed=True)
    assert decide(registry=registry, usage=ParticipantUsage(monthly_retail_buys=600_000 * KZT))
    near = ParticipantUsage(monthly_retail_buys=5_148_000 * KZT)
    assert decide(registry=registry, usage=near).code == "RETAIL_LIMIT_EXCEEDED"


def test_no_tested_cap_means_no_cap_after_the_test() -> None:
    """With retail_monthly_cap_tested unset, a tested retail client has no monthly cap."""
    registry = with_limits("alice", retail_monthly_cap_tested=None)
    registry = with_participant("alice", registry, appropriateness_passed=True)
    usage = ParticipantUsage(monthly_retail_buys=10**12)
    assert decide(registry=registry, usage=usage).accepted


def test_the_retail_cap_is_for_retail_only() -> None:
    """A professional's purchases are not capped monthly."""
    usage = ParticipantUsage(monthly_retail_buys=10**12)
    assert decide(participant_id="bob", usage=usage).accepted


def test_only_orders_that_may_rest_count_against_open_orders() -> None:
    """IOC, FOK, market orders and amends pass the open-order limit; a new GTC does not."""
    full = ParticipantUsage(open_orders=50)
    assert decide(usage=full).code == "OPEN_ORDER_LIMIT"
    assert decide(usage=full, tif=TimeInForce.IOC).accepted
    assert decide(usage=full, amend=True).accepted
    bob_full = ParticipantUsage(open_orders=500)
    assert decide(participant_id="bob", usage=bob_full, tif=TimeInForce.FOK).accepted
    market = {"order_type": OrderType.MARKET, "tif": TimeInForce.IOC}
    assert decide(participant_id="bob", usage=bob_full, **market).accepted


def test_a_daily_limit_allows_up_to_the_limit_inclusive() -> None:
    """Today's notional plus the order's may equal the daily limit, not exceed it."""
    exact = ParticipantUsage(daily_notional=2_000_000 * KZT - 4_500 * KZT)
    assert decide(usage=exact).accepted
    over = ParticipantUsage(daily_notional=exact.daily_notional + 1)
    assert decide(usage=over).code == "DAILY_LIMIT_EXCEEDED"


def test_a_participant_without_limits_has_none() -> None:
    """mm1 has no daily or per-order limit: a large order and a large day pass."""
    usage = ParticipantUsage(daily_notional=10**15)
    assert decide(participant_id="mm1", qty=1_000_000_000, usage=usage).accepted


def test_a_market_order_is_sized_at_the_band_edge() -> None:
    """A tested retail market buy is checked at the band's top price (49,500,000 KZT)."""
    registry = with_participant("alice", appropriateness_passed=True)
    ctx = make_ctx(registry=registry, order_type=OrderType.MARKET, tif=TimeInForce.IOC)
    assert ctx.notional == 4_950 * KZT
    assert CHAINS["ALATAU"].evaluate(ctx).accepted


# -- profiles ---------------------------------------------------------------------------------


def test_profiles_are_shipped_by_name() -> None:
    """ALATAU, NBK and AFSA are the shipped profiles; another name is a ConfigError."""
    assert set(PROFILES) == {"ALATAU", "NBK", "AFSA"}
    assert get_profile("NBK") is NBK
    with pytest.raises(ConfigError, match="unknown profile 'FCA'"):
        get_profile("FCA")
    with pytest.raises(ConfigError, match="unknown profile"):
        CheckChain("fca")


def test_every_profile_runs_every_builtin_check_once() -> None:
    """Each profile's chain is a permutation of the built-in checks."""
    for profile in PROFILES.values():
        assert sorted(profile.checks) == sorted(BUILTIN_CHECK_IDS)
    assert ALATAU.checks == BUILTIN_CHECK_IDS


def test_nbk_checks_residency_before_kyc() -> None:
    """A blocked, unverified client gets JURISDICTION_BLOCKED under NBK, KYC under ALATAU."""
    registry = with_participant("alice", residency="IR", kyc_level=0)
    assert decide(registry=registry).code == "KYC_INSUFFICIENT"
    assert decide(registry=registry, profile=NBK).code == "JURISDICTION_BLOCKED"


def test_nbk_admits_resident_retail_only() -> None:
    """A retail client resident in Uzbekistan is refused under NBK, admitted elsewhere."""
    registry = with_participant("alice", residency="UZ")
    assert decide(registry=registry, profile=NBK).code == "JURISDICTION_BLOCKED"
    assert decide(registry=registry, profile=ALATAU).accepted
    assert decide(registry=registry, profile=AFSA).accepted
    bob_abroad = with_participant("bob", residency="UZ")
    assert decide(participant_id="bob", registry=bob_abroad, profile=NBK).accepted


def test_nbk_blocks_a_longer_list() -> None:
    """Residency AF is blocked under NBK only."""
    registry = with_participant("bob", residency="AF")
    assert decide(participant_id="bob", registry=registry, profile=NBK).code == (
        "JURISDICTION_BLOCKED"
    )
    assert decide(participant_id="bob", registry=registry).accepted


def test_kyc_thresholds_differ_by_profile() -> None:
    """A 200,000 KZT order at KYC level 1 is too large under NBK, fine under ALATAU."""
    registry = with_participant("alice", kyc_level=1)
    qty = 444_000  # 0.00444 BTC: 199,800 KZT
    assert decide(registry=registry, qty=qty, profile=NBK).code == "KYC_INSUFFICIENT"
    assert decide(registry=registry, qty=qty).accepted
    big = 1_140_000  # 513,000 KZT: above ALATAU's 500,000, below AFSA's 515,000
    assert decide(registry=registry, qty=big).code == "KYC_INSUFFICIENT"
    assert decide(registry=registry, qty=big, profile=AFSA).accepted


def test_under_nbk_the_test_does_not_lift_the_retail_cap() -> None:
    """A tested retail client over 515,000 KZT this month is refused under NBK only."""
    registry = with_participant("alice", appropriateness_passed=True)
    usage = ParticipantUsage(monthly_retail_buys=515_000 * KZT)
    assert decide(registry=registry, usage=usage, profile=NBK).code == "RETAIL_LIMIT_EXCEEDED"
    assert decide(registry=registry, usage=usage, profile=ALATAU).accepted
    assert decide(registry=registry, usage=usage, profile=AFSA).accepted


def test_order_type_permissions_differ_by_profile() -> None:
    """Retail market orders need the test or are refused (NBK); FOK and MM market orders vary."""
    tested = with_participant("alice", appropriateness_passed=True)
    market = {"order_type": OrderType.MARKET, "tif": TimeInForce.IOC}
    assert decide(registry=tested, **market).accepted
    assert decide(registry=tested, profile=AFSA, **market).accepted
    assert decide(registry=tested, profile=NBK, **market).code == "CATEGORY_NOT_PERMITTED"
    assert decide(profile=AFSA, **market).code == "CATEGORY_NOT_PERMITTED"
    assert decide(tif=TimeInForce.FOK, profile=AFSA).accepted
    assert decide(tif=TimeInForce.FOK, profile=NBK).code == "CATEGORY_NOT_PERMITTED"
    assert decide(participant_id="mm1", profile=AFSA, **market).accepted


def test_category_maxima_differ_by_profile() -> None:
    """bob's 270,000,000 KZT order is over NBK's professional maximum, none under AFSA."""
    qty = 600_000_000  # 6 BTC
    assert decide(participant_id="bob", qty=qty, profile=NBK).code == "ORDER_SIZE_LIMIT"
    assert decide(participant_id="bob", qty=qty).accepted
    huge = 2_000_000_000  # 20 BTC: 900,000,000 KZT
    no_daily = with_limits("bob", daily_notional=None)
    assert decide(participant_id="bob", registry=no_daily, qty=huge).code == "ORDER_SIZE_LIMIT"
    assert decide(participant_id="bob", registry=no_daily, qty=huge, profile=AFSA).accepted


def test_a_context_for_another_profile_is_refused() -> None:
    """evaluate raises when the context carries another profile than the chain runs."""
    with pytest.raises(EngineError, match="carries profile NBK"):
        CHAINS["ALATAU"].evaluate(make_ctx(profile=NBK))


def test_a_modified_profile_can_be_run() -> None:
    """A profile changed with msgspec.structs.replace drives a chain of its own."""
    strict = msgspec.structs.replace(ALATAU, name="STRICT", blocked_residencies=frozenset({"KZ"}))
    chain = CheckChain(strict)
    assert decide(chain).code == "JURISDICTION_BLOCKED"
    with pytest.raises(ConfigError, match="unknown built-in checks"):
        msgspec.structs.replace(ALATAU, checks=("kyc", "nope"))


# -- chain options ----------------------------------------------------------------------------


def test_a_disabled_check_does_not_run() -> None:
    """With kyc disabled, an unverified client's order goes on to the next checks."""
    registry = with_participant("alice", kyc_level=0)
    chain = CheckChain("ALATAU", disabled=["kyc"])
    assert "kyc" not in chain.check_ids
    assert len(chain) == len(BUILTIN_CHECK_IDS) - 1
    assert decide(chain, registry=registry).accepted


@pytest.mark.parametrize("check_id", sorted(REQUIRED_CHECKS))
def test_required_checks_cannot_be_disabled(check_id: str) -> None:
    """participant and market_status cannot be disabled."""
    with pytest.raises(ConfigError, match="cannot be disabled"):
        CheckChain("ALATAU", disabled=[check_id])


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"disabled": ["kyx"]}, "cannot disable 'kyx'"),
        ({"disabled": "kyc"}, "must be a list"),
        ({"order": ["kyc"]}, "order leaves out venue_license"),
        ({"order": [*BUILTIN_CHECK_IDS, "kyc"]}, "kyc more than once"),
        ({"order": [*BUILTIN_CHECK_IDS, "nope"]}, "'nope', which is not an enabled check"),
        ({"order": list(BUILTIN_CHECK_IDS), "disabled": ["kyc"]}, "'kyc', which is not"),
        ({"order": "kyc"}, "must be a list"),
    ],
)
def test_bad_chain_options_are_config_errors(options: dict[str, Any], match: str) -> None:
    """Unknown, duplicate, missing or mistyped ids in the options fail at construction."""
    with pytest.raises(ConfigError, match=match):
        CheckChain("ALATAU", **options)


def test_a_disabled_participant_dependent_check_keeps_unknown_participants_out() -> None:
    """A check reordered before 'participant' lets an unknown one through to 'participant'."""
    order = ["kyc", *(c for c in BUILTIN_CHECK_IDS if c != "kyc")]
    chain = CheckChain("ALATAU", order=order)
    assert decide(chain, participant_id="mallory").code == "PARTICIPANT_UNKNOWN"
    market_first = ["market_rules", *(c for c in BUILTIN_CHECK_IDS if c != "market_rules")]
    chain = CheckChain("ALATAU", order=market_first)
    assert decide(chain, market="DOGE-KZT").code == "UNKNOWN_MARKET"


# -- custom checks ----------------------------------------------------------------------------

CUSTOM_MODULE = '''
"""Custom checks of a pretend operator."""

from engine.markets import Rejection

_DAY = 86_400_000
_ALMATY = 5 * 3_600_000


def no_fridays(ctx):
    """Refuse orders on Fridays, Almaty time (1970-01-01 was a Thursday)."""
    if ((ctx.ts + _ALMATY) // _DAY + 3) % 7 == 4:
        return Rejection("NO_TRADING_ON_FRIDAYS", "the venue does not trade on Fridays")
    return None


class MaxQty:
    """A class check: created once with no arguments, then called per order."""

    def __init__(self):
        self.limit = 100_000

    def __call__(self, ctx):
        if ctx.qty > self.limit:
            return Rejection("QTY_TOO_LARGE", f"qty {ctx.qty} is above {self.limit}")
        return None


def lower_case_code(ctx):
    return Rejection("oops", "a code that is not upper-case")


def returns_a_string(ctx):
    return "NO"


def two_args(ctx, other):
    return None


class NeedsArgs:
    def __init__(self, limit):
        self.limit = limit

    def __call__(self, ctx):
        return None


NOT_CALLABLE = 42
'''

CUSTOM = "licensing_custom_checks"


@pytest.fixture
def custom_module(tmp_path, monkeypatch) -> Iterator[str]:
    """A module of custom checks importable by name, removed again after the test."""
    (tmp_path / f"{CUSTOM}.py").write_text(textwrap.dedent(CUSTOM_MODULE), encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield CUSTOM
    sys.modules.pop(CUSTOM, None)


def test_a_custom_check_is_loaded_by_name(custom_module: str) -> None:
    """A function named "module:callable" runs after the built-ins with its own id and code."""
    chain = CheckChain("ALATAU", extra={"no_fridays": f"{custom_module}:no_fridays"})
    assert chain.check_ids[-1] == "no_fridays"
    assert chain.custom_ids == {"no_fridays"}
    assert decide(chain).accepted
    decision = decide(chain, ts=FRIDAY_TS)
    assert (decision.check, decision.code) == ("no_fridays", "NO_TRADING_ON_FRIDAYS")
    assert decision.message == "the venue does not trade on Fridays"


def test_a_custom_check_class_is_instantiated(custom_module: str) -> None:
    """A class with __call__ is created once and called for each order."""
    chain = CheckChain("ALATAU", extra={"max_qty": f"{custom_module}:MaxQty"})
    assert decide(chain, qty=100_000).accepted
    decision = decide(chain, qty=110_000)
    assert (decision.check, decision.code) == ("max_qty", "QTY_TOO_LARGE")


def test_a_custom_check_can_be_placed_in_the_order(custom_module: str) -> None:
    """Listed in ``order``, a custom check runs before the built-ins that follow it."""
    order = ["no_fridays", *BUILTIN_CHECK_IDS]
    chain = CheckChain("ALATAU", extra={"no_fridays": f"{custom_module}:no_fridays"}, order=order)
    assert decide(chain, ts=FRIDAY_TS, funds_available=0).code == "NO_TRADING_ON_FRIDAYS"
    last = CheckChain("ALATAU", extra={"no_fridays": f"{custom_module}:no_fridays"})
    assert decide(last, ts=FRIDAY_TS, funds_available=0).code == "INSUFFICIENT_FUNDS"


def test_a_custom_check_can_be_disabled(custom_module: str) -> None:
    """A custom check named in ``disabled`` is loaded but does not run."""
    chain = CheckChain(
        "ALATAU", extra={"no_fridays": f"{custom_module}:no_fridays"}, disabled=["no_fridays"]
    )
    assert "no_fridays" not in chain.check_ids
    assert decide(chain, ts=FRIDAY_TS).accepted


def test_a_custom_check_can_be_a_callable() -> None:
    """A callable passed directly (not by name) is a custom check too."""

    def no_bob(ctx: OrderContext) -> Rejection | None:
        return Rejection("NO_BOB", "not bob") if ctx.participant_id == "bob" else None

    chain = CheckChain("ALATAU", extra={"no_bob": no_bob})
    assert decide(chain, participant_id="bob").code == "NO_BOB"
    assert decide(chain).accepted


@pytest.mark.parametrize(
    ("check_id", "target", "match"),
    [
        ("x", "no_colon_here", 'is not "package.module:callable"'),
        ("x", "licensing_custom_checks:", 'is not "package.module:callable"'),
        ("x", "no_such_module_xyz:check", "cannot import 'no_such_module_xyz'"),
        ("x", "licensing_custom_checks:missing", "has no 'missing'"),
        ("x", "licensing_custom_checks:NOT_CALLABLE", "is not callable"),
        ("x", "licensing_custom_checks:two_args", "must take one argument"),
        ("x", "licensing_custom_checks:NeedsArgs", "cannot create NeedsArgs"),
        ("NoFridays", "licensing_custom_checks:no_fridays", "lower-case snake_case"),
        ("kyc", "licensing_custom_checks:no_fridays", "taken by a built-in"),
        ("all", "licensing_custom_checks:no_fridays", "taken by a built-in"),
    ],
)
def test_bad_custom_checks_fail_at_construction(
    custom_module: str, check_id: str, target: str, match: str
) -> None:
    """A bad id or a name that does not resolve to a one-argument callable is a ConfigError."""
    with pytest.raises(ConfigError, match=match):
        CheckChain("ALATAU", extra={check_id: target})


@pytest.mark.parametrize(
    ("name", "match"), [("lower_case_code", "the code 'oops'"), ("returns_a_string", "'NO'")]
)
def test_a_misbehaving_custom_check_raises(custom_module: str, name: str, match: str) -> None:
    """A custom check returning a bad code or a non-Rejection raises CustomCheckError."""
    chain = CheckChain("ALATAU", extra={"bad": f"{custom_module}:{name}"})
    with pytest.raises(CustomCheckError, match=match):
        decide(chain)


# -- chain configuration in the venue file ----------------------------------------------------


def test_the_shipped_chain_is_the_default_profile() -> None:
    """load_chain() reads the shipped venue file: ALATAU, every check, spec order."""
    chain = load_chain()
    assert chain.profile is ALATAU
    assert chain.check_ids == BUILTIN_CHECK_IDS


def test_a_checks_table_configures_the_chain(tmp_path, custom_module: str) -> None:
    """[checks] in a venue file sets the profile, disabled checks and custom checks."""
    path = tmp_path / "venue.toml"
    path.write_text(
        '[checks]\nprofile = "NBK"\ndisabled = ["daily_limit"]\n'
        f'[checks.extra]\nno_fridays = "{custom_module}:no_fridays"\n',
        encoding="utf-8",
    )
    chain = load_chain(path)
    assert chain.profile is NBK
    assert "daily_limit" not in chain.check_ids
    assert chain.check_ids[-1] == "no_fridays"
    assert decide(chain, ts=FRIDAY_TS).code == "NO_TRADING_ON_FRIDAYS"


def test_a_file_without_checks_gets_the_default_chain() -> None:
    """A venue file with no [checks] table runs the ALATAU profile."""
    assert chain_from_toml("").check_ids == ALATAU.checks


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ('[checks]\nprofle = "NBK"\n', "unknown keys profle"),
        ('[checks]\nprofile = "FCA"\n', "unknown profile 'FCA'"),
        ('[checks]\ndisabled = "kyc"\n', "disabled must be a list of strings"),
        ('[checks]\ndisabled = ["participant"]\n', r"\[checks\]: the check 'participant'"),
        ("[checks.extra]\nx = 1\n", "x must be a string"),
        ("checks = 1\n", "must be a table"),
        ("[checks\n", "not valid TOML"),
    ],
)
def test_bad_checks_tables_are_config_errors(text: str, match: str) -> None:
    """Every problem in [checks] is a ConfigError naming the source."""
    with pytest.raises(ConfigError, match=match) as info:
        chain_from_toml(text, source="ops.toml")
    assert str(info.value).startswith("ops.toml: ")


def test_load_chain_reports_a_missing_file(tmp_path) -> None:
    """A venue file that cannot be read is a ConfigError naming it."""
    with pytest.raises(ConfigError, match="cannot read the venue file"):
        load_chain(tmp_path / "missing.toml")
