"""The built-in pre-trade checks, one plain function per step of the spec's check chain.

Each check is ``(ctx: OrderContext) -> Rejection | None``: None lets the order through to the
next check, a ``Rejection`` (code from ``engine.reject``, message naming the value) stops the
chain.  Checks are pure: they read ``ctx`` (and its profile's parameters) and nothing else.

A check whose input is missing lets the order through: the licence checks when the
participant is unknown, the market checks when the market is unknown.  The chain makes sure
an order with an unknown participant or market is still refused, because ``participant`` and
``market_status`` cannot be disabled (``engine.licensing.chain.REQUIRED_CHECKS``).

``BUILTIN_CHECKS`` maps each stable id to its function, in the spec's order.

``STATIC_CHECKS`` says, for a participant, which checks give every order of the same market,
order type and time in force the same verdict on one Almaty day under one registry: the
licence, account, jurisdiction and permission checks always, and a limit check when the
participant has no limit of that kind.  The exchange runs those once per such shape of order
rather than on every order (``CheckChain.plan``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType

from ..fixedpoint import format_units
from ..markets import BPS, OPEN, Market, Rejection, check_market
from ..types import OrderType, Side, TimeInForce
from .context import OrderContext
from .profiles import BUILTIN_CHECK_IDS, Profile
from .records import License, Participant, activity_for

__all__ = ["BUILTIN_CHECKS", "STATIC_CHECKS", "Check", "StaticWhen"]

Check = Callable[[OrderContext], "Rejection | None"]
"""The type of a check: built-in or custom."""

StaticWhen = Callable[[Participant, Profile], bool]
"""When a check's verdict is static for a participant under a profile (``STATIC_CHECKS``)."""

_ECHO_LIMIT = 40

# Enum members read through their class cost ~0.1 us each on CPython 3.11 (the enum
# metaclass's attribute lookup); the checks run on every order, so they compare with these.
_LIMIT = OrderType.LIMIT
_MARKET = OrderType.MARKET
_BUY = Side.BUY
_GTC = TimeInForce.GTC


def _echo(text: str) -> str:
    """A client's string, quoted and cut short."""
    return repr(text) if len(text) <= _ECHO_LIMIT else repr(text[:_ECHO_LIMIT]) + "..."


def _kzt(tiyn: int) -> str:
    """An amount in tiyn as KZT for messages: "515000.00 KZT"."""
    return f"{format_units(tiyn, 2)} KZT"


def _licence_name(lic: License) -> str:
    return f"licence {lic.number} ({lic.regulator})"


def _period_problem(lic: License, ts: int) -> str | None:
    """Why ``lic`` is not valid at ``ts`` by its dates, or None."""
    if lic.is_valid_at(ts):
        return None
    if ts < lic.valid_from_ms:
        return f"is not valid before {lic.valid_from}"
    return f"expired at the end of {lic.valid_to}"


# -- steps 1 to 5: venue, participant, licence ---------------------------------------------------


def venue_license(ctx: OrderContext) -> Rejection | None:
    """1: the venue's own licence is ACTIVE and valid at ``ctx.ts``."""
    lic = ctx.venue_license
    if lic is None:
        return Rejection("VENUE_NOT_LICENSED", "the venue holds no licence")
    if lic.status != "ACTIVE":
        return Rejection(
            "VENUE_NOT_LICENSED", f"the venue's {_licence_name(lic)} is {lic.status.lower()}"
        )
    problem = _period_problem(lic, ctx.ts)
    if problem is not None:
        return Rejection("VENUE_NOT_LICENSED", f"the venue's {_licence_name(lic)} {problem}")
    return None


def participant(ctx: OrderContext) -> Rejection | None:
    """2: the participant is in the registry."""
    if ctx.participant is None:
        return Rejection(
            "PARTICIPANT_UNKNOWN", f"participant {_echo(ctx.participant_id)} is unknown"
        )
    return None


def account_status(ctx: OrderContext) -> Rejection | None:
    """3: the participant's account is active (not suspended or frozen)."""
    p = ctx.participant
    if p is not None and p.status != "active":
        return Rejection(
            "ACCOUNT_SUSPENDED", f"the account of participant {p.participant_id} is {p.status}"
        )
    return None


def license_status(ctx: OrderContext) -> Rejection | None:
    """4: the licence the participant trades under is ACTIVE and within its dates.

    Not yet valid (``ts`` before ``valid_from``) is reported as ``LICENSE_EXPIRED`` too: the
    table has no separate code, and both mean "outside its validity period"; the message
    says which.
    """
    lic = ctx.license
    if lic is None or ctx.participant is None:
        return None  # no licence at all is license_scope's to report
    if lic.status == "SUSPENDED":
        return Rejection("LICENSE_SUSPENDED", f"{_licence_name(lic)} is suspended")
    if lic.status == "REVOKED":
        return Rejection("LICENSE_REVOKED", f"{_licence_name(lic)} is revoked")
    problem = _period_problem(lic, ctx.ts)
    if problem is not None:
        return Rejection("LICENSE_EXPIRED", f"{_licence_name(lic)} {problem}")
    return None


def license_scope(ctx: OrderContext) -> Rejection | None:
    """5: the licence covers the market and the participant's activity.

    A market maker needs ``market_making``, a broker ``brokerage``, any other ``trading``.
    """
    p = ctx.participant
    if p is None:
        return None
    lic = ctx.license
    activity = activity_for(p.category)
    if lic is None:
        return Rejection(
            "LICENSE_SCOPE", f"participant {p.participant_id} holds no licence for {activity}"
        )
    if not lic.covers_market(ctx.market_symbol):
        return Rejection(
            "LICENSE_SCOPE",
            f"{_licence_name(lic)} does not cover the market {_echo(ctx.market_symbol)}",
        )
    if not lic.covers_activity(activity):
        return Rejection(
            "LICENSE_SCOPE", f"{_licence_name(lic)} does not cover the activity {activity}"
        )
    return None


# -- steps 6 and 7: the client --------------------------------------------------------------------


def kyc(ctx: OrderContext) -> Rejection | None:
    """6: the order's KZT notional is within the maximum of the participant's KYC level."""
    p = ctx.participant
    if p is None:
        return None
    limit = ctx.profile.kyc_max_notional[p.kyc_level]
    if limit is None or ctx.notional <= limit:
        return None
    if limit == 0:
        return Rejection(
            "KYC_INSUFFICIENT", f"KYC level {p.kyc_level} may not trade: complete KYC first"
        )
    return Rejection(
        "KYC_INSUFFICIENT",
        f"notional {_kzt(ctx.notional)} is above the {_kzt(limit)} allowed per order at "
        f"KYC level {p.kyc_level}",
    )


def jurisdiction(ctx: OrderContext) -> Rejection | None:
    """7: the residency is not blocked; non-resident retail only where the profile allows."""
    p = ctx.participant
    if p is None:
        return None
    profile = ctx.profile
    if p.residency in profile.blocked_residencies:
        return Rejection(
            "JURISDICTION_BLOCKED",
            f"residency {p.residency} is blocked under the {profile.name} profile",
        )
    nonresident = p.residency != profile.home_country
    if p.category == "RETAIL" and nonresident and not profile.nonresident_retail:
        return Rejection(
            "JURISDICTION_BLOCKED",
            f"retail participants resident in {p.residency} are not admitted under the "
            f"{profile.name} profile (residents of {profile.home_country} only)",
        )
    return None


# -- steps 8 to 10: the market --------------------------------------------------------------------


def market_status(ctx: OrderContext) -> Rejection | None:
    """8: the market is known and open (``engine.markets.check_market``)."""
    market = ctx.market
    if market is not None and market.status == OPEN:  # Market.is_open, without its call
        return None  # the common case, without building a mapping for check_market
    markets = {} if market is None else {ctx.market_symbol: market}
    return check_market(markets, ctx.market_symbol)


def market_rules(ctx: OrderContext) -> Rejection | None:
    """9: tick, lot, minimum quantity and minimum notional (``Market.check_rules``).

    ``Market.check_order`` without its band test, which is step 10's job.
    """
    market = ctx.market
    if market is None:
        return None
    return market.check_rules(ctx.price, ctx.qty)


def price_band(ctx: OrderContext) -> Rejection | None:
    """10: a limit price is within the band around the market's reference (inclusive)."""
    market = ctx.market
    price = ctx.price
    if market is None or price is None or ctx.order_type != _LIMIT:
        return None
    ref = market.reference_price
    # The rule of Market.price_band(), without building the bounds for an order that passes.
    if ref is None or abs(price - ref) * BPS <= market.band_bps * ref:
        return None
    band = market.price_band()
    assert band is not None
    return Rejection("PRICE_OUT_OF_BAND", _band_message(market, price, band))


def _band_message(market: Market, price: int, band: tuple[int, int]) -> str:
    ref = market.reference_price
    assert ref is not None  # a band exists only with a reference
    pct = format_units(market.band_bps, 2).rstrip("0").rstrip(".")
    return (
        f"price {market.format_price(price)} is outside the band {market.format_price(band[0])} "
        f"to {market.format_price(band[1])} ({pct}% around the reference "
        f"{market.format_price(ref)})"
    )


# -- steps 11 to 14: size, permissions and limits ------------------------------------------------


def order_size(ctx: OrderContext) -> Rejection | None:
    """11: the KZT notional is within the category's and the participant's per-order maximum."""
    p = ctx.participant
    if p is None:
        return None
    category_max = ctx.profile.categories[p.category].max_order_notional
    if category_max is not None and ctx.notional > category_max:
        return Rejection(
            "ORDER_SIZE_LIMIT",
            f"notional {_kzt(ctx.notional)} is above the per-order maximum "
            f"{_kzt(category_max)} for {p.category} participants",
        )
    own_max = p.limits.max_order_notional
    if own_max is not None and ctx.notional > own_max:
        return Rejection(
            "ORDER_SIZE_LIMIT",
            f"notional {_kzt(ctx.notional)} is above the per-order maximum "
            f"{_kzt(own_max)} of participant {p.participant_id}",
        )
    return None


def category_permissions(ctx: OrderContext) -> Rejection | None:
    """12: the order type and time in force are permitted for the participant's category."""
    p = ctx.participant
    if p is None:
        return None
    rules = ctx.profile.categories[p.category]
    if ctx.order_type not in rules.order_types:
        return Rejection(
            "CATEGORY_NOT_PERMITTED",
            f"{ctx.order_type.name.lower()} orders are not permitted for {p.category} "
            f"participants under the {ctx.profile.name} profile",
        )
    if ctx.order_type == _MARKET and rules.market_orders_need_test and not p.appropriateness_passed:
        return Rejection(
            "CATEGORY_NOT_PERMITTED",
            f"market orders need the appropriateness test for {p.category} participants",
        )
    if ctx.tif not in rules.time_in_force:
        return Rejection(
            "CATEGORY_NOT_PERMITTED",
            f"time in force {ctx.tif.name} is not permitted for {p.category} participants "
            f"under the {ctx.profile.name} profile",
        )
    return None


def retail_limit(ctx: OrderContext) -> Rejection | None:
    """13: a RETAIL buy keeps the month's purchases within the retail cap.

    The cap is ``limits.retail_monthly_cap``; after the appropriateness test it is
    ``limits.retail_monthly_cap_tested`` (None: no cap) where the profile lets the test lift
    it.  Sells do not count.
    """
    p = ctx.participant
    if p is None or p.category != "RETAIL" or ctx.side != _BUY:
        return None
    tested = p.appropriateness_passed and ctx.profile.test_lifts_retail_cap
    cap = p.limits.retail_monthly_cap_tested if tested else p.limits.retail_monthly_cap
    used = ctx.usage.monthly_retail_buys
    if cap is None or used + ctx.notional <= cap:
        return None
    return Rejection(
        "RETAIL_LIMIT_EXCEEDED",
        f"purchases this month {_kzt(used)} plus this order's {_kzt(ctx.notional)} would "
        f"exceed the retail monthly cap {_kzt(cap)}",
    )


def daily_limit(ctx: OrderContext) -> Rejection | None:
    """14a: today's notional (reserved + filled) plus this order's stays within the limit."""
    p = ctx.participant
    if p is None or p.limits.daily_notional is None:
        return None
    limit, used = p.limits.daily_notional, ctx.usage.daily_notional
    if used + ctx.notional <= limit:
        return None
    return Rejection(
        "DAILY_LIMIT_EXCEEDED",
        f"notional today {_kzt(used)} plus this order's {_kzt(ctx.notional)} would exceed "
        f"the daily limit {_kzt(limit)}",
    )


def open_orders(ctx: OrderContext) -> Rejection | None:
    """14b: an order that may rest (a new limit GTC) keeps the open-order count in its limit."""
    p = ctx.participant
    if p is None or p.limits.max_open_orders is None:
        return None
    if ctx.amend or ctx.order_type != _LIMIT or ctx.tif != _GTC:
        return None
    limit = p.limits.max_open_orders
    if ctx.usage.open_orders < limit:
        return None
    return Rejection(
        "OPEN_ORDER_LIMIT",
        f"participant {p.participant_id} has {ctx.usage.open_orders} open orders, "
        f"the limit is {limit}",
    )


# -- step 15: funds -------------------------------------------------------------------------------


def funds(ctx: OrderContext) -> Rejection | None:
    """15: the available balance covers what the order needs (quote + fee, or base)."""
    if ctx.funds_required <= ctx.funds_available:
        return None
    shown = _amount_formatter(ctx.market, ctx.funds_asset)
    return Rejection(
        "INSUFFICIENT_FUNDS",
        f"the order needs {shown(ctx.funds_required)}, available {shown(ctx.funds_available)}",
    )


def _amount_formatter(market: Market | None, asset: str) -> Callable[[int], str]:
    """Formats minor units of ``asset`` as "4500.45 KZT", using the market's scales."""
    if market is not None and asset == market.quote:
        return lambda units: f"{market.format_price(units)} {asset}"
    if market is not None and asset == market.base:
        return lambda units: f"{market.format_qty(units)} {asset}"
    return lambda units: f"{units} minor units of {asset}"


BUILTIN_CHECKS: Mapping[str, Check] = MappingProxyType(
    {
        "venue_license": venue_license,
        "participant": participant,
        "account_status": account_status,
        "license_status": license_status,
        "license_scope": license_scope,
        "kyc": kyc,
        "jurisdiction": jurisdiction,
        "market_status": market_status,
        "market_rules": market_rules,
        "price_band": price_band,
        "order_size": order_size,
        "category_permissions": category_permissions,
        "retail_limit": retail_limit,
        "daily_limit": daily_limit,
        "open_orders": open_orders,
        "funds": funds,
    }
)
"""Every built-in check by its stable id, in the spec's order."""

# -- static checks ---------------------------------------------------------------------------------


def _always(participant: Participant, profile: Profile) -> bool:
    """The check reads only the registry's records (``participant``, ``license``,
    ``venue_license``, ``participant_id``), the profile, ``market_symbol``, ``order_type``,
    ``tif``, and ``ts`` only through a licence's validity dates, which are whole Almaty days."""
    return True


def _no_kyc_maximum(participant: Participant, profile: Profile) -> bool:
    """``kyc`` lets every order through at a KYC level with no maximum."""
    return profile.kyc_max_notional[participant.kyc_level] is None


def _no_order_maximum(participant: Participant, profile: Profile) -> bool:
    """``order_size`` lets every order through with neither a category nor an own maximum."""
    return (
        profile.categories[participant.category].max_order_notional is None
        and participant.limits.max_order_notional is None
    )


def _not_retail(participant: Participant, profile: Profile) -> bool:
    """``retail_limit`` lets every order of a participant that is not RETAIL through."""
    return participant.category != "RETAIL"


def _no_daily_limit(participant: Participant, profile: Profile) -> bool:
    """``daily_limit`` lets every order through without a daily notional limit."""
    return participant.limits.daily_notional is None


def _no_open_order_limit(participant: Participant, profile: Profile) -> bool:
    """``open_orders`` lets every order through without an open-order limit."""
    return participant.limits.max_open_orders is None


STATIC_CHECKS: Mapping[str, StaticWhen] = MappingProxyType(
    {
        "venue_license": _always,
        "participant": _always,
        "account_status": _always,
        "license_status": _always,
        "license_scope": _always,
        "kyc": _no_kyc_maximum,
        "jurisdiction": _always,
        "order_size": _no_order_maximum,
        "category_permissions": _always,
        "retail_limit": _not_retail,
        "daily_limit": _no_daily_limit,
        "open_orders": _no_open_order_limit,
    }
)
"""Built-in check id -> when its verdict is static for a (known) participant under a profile:
the same for every order of that participant with the same market, order type and time in
force on one Almaty day, as long as the registry is the same.  Each predicate restates the
condition under which its check reads nothing but those inputs: change them together.  The
market checks and ``funds`` read the order's numbers and are never static."""

if tuple(BUILTIN_CHECKS) != BUILTIN_CHECK_IDS:  # pragma: no cover - a broken edit
    raise ImportError("engine.licensing.checks: BUILTIN_CHECKS and BUILTIN_CHECK_IDS differ")
if not set(STATIC_CHECKS).issubset(BUILTIN_CHECK_IDS):  # pragma: no cover - a broken edit
    raise ImportError("engine.licensing.checks: STATIC_CHECKS names an unknown check")
