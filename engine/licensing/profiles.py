"""Regime profiles: which built-in checks run, in which order, with which parameters.

Three profiles ship: ``ALATAU`` (the default), ``NBK`` and ``AFSA``.  They differ in check
order, KYC thresholds, blocked residencies, whether non-resident retail clients are admitted,
whether passing the appropriateness test lifts the retail monthly cap, per-category order
maxima and the order types each category may send.  The numbers and lists are the product's
design, chosen to make the regimes' emphasis concrete; they are not a statement of what the
law or a regulator requires, and an operator must review them with its compliance officer.

A profile is a frozen Struct: a variant is ``msgspec.structs.replace(ALATAU, ...)`` passed to
``CheckChain``.  Amounts are in tiyn (1 KZT = 100 tiyn).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

import msgspec

from ..errors import ConfigError
from ..types import OrderType, TimeInForce
from .records import CATEGORIES, KYC_LEVELS

__all__ = [
    "AFSA",
    "ALATAU",
    "BUILTIN_CHECK_IDS",
    "DEFAULT_PROFILE",
    "FATF_CALL_FOR_ACTION",
    "NBK",
    "PROFILES",
    "CategoryRules",
    "Profile",
    "get_profile",
]

BUILTIN_CHECK_IDS: tuple[str, ...] = (
    "venue_license",  # 1  VENUE_NOT_LICENSED
    "participant",  # 2  PARTICIPANT_UNKNOWN
    "account_status",  # 3  ACCOUNT_SUSPENDED
    "license_status",  # 4  LICENSE_SUSPENDED / LICENSE_REVOKED / LICENSE_EXPIRED
    "license_scope",  # 5  LICENSE_SCOPE
    "kyc",  # 6  KYC_INSUFFICIENT
    "jurisdiction",  # 7  JURISDICTION_BLOCKED
    "market_status",  # 8  UNKNOWN_MARKET / MARKET_HALTED
    "market_rules",  # 9  INVALID_TICK / INVALID_LOT / BELOW_MIN_QTY / BELOW_MIN_NOTIONAL
    "price_band",  # 10 PRICE_OUT_OF_BAND
    "order_size",  # 11 ORDER_SIZE_LIMIT
    "category_permissions",  # 12 CATEGORY_NOT_PERMITTED
    "retail_limit",  # 13 RETAIL_LIMIT_EXCEEDED
    "daily_limit",  # 14 DAILY_LIMIT_EXCEEDED
    "open_orders",  # 14 OPEN_ORDER_LIMIT
    "funds",  # 15 INSUFFICIENT_FUNDS
)
"""Every built-in check id, in the spec's order (the ALATAU profile's order)."""

FATF_CALL_FOR_ACTION: frozenset[str] = frozenset(("KP", "IR", "MM"))
"""FATF "high-risk jurisdictions subject to a call for action" (DPRK, Iran, Myanmar) when
this was written; the list changes, so the operator reviews it."""

_ALL_TYPES = frozenset(OrderType)
_ALL_TIFS = frozenset(TimeInForce)
_LIMIT_ONLY = frozenset((OrderType.LIMIT,))
_NO_FOK = frozenset((TimeInForce.GTC, TimeInForce.IOC))

_KZT = 100  # tiyn per KZT, for readable constants below


class CategoryRules(msgspec.Struct, frozen=True, kw_only=True):
    """What a category may send (step 12) and its per-order maximum (step 11)."""

    max_order_notional: int | None = None  # tiyn; None: no category maximum
    order_types: frozenset[OrderType] = _ALL_TYPES
    time_in_force: frozenset[TimeInForce] = _ALL_TIFS
    market_orders_need_test: bool = False  # market orders only after the appropriateness test


class Profile(msgspec.Struct, frozen=True, kw_only=True):
    """A regime profile: the built-in checks to run, in order, and their parameters."""

    name: str
    description: str
    checks: tuple[str, ...]  # built-in check ids, in order
    kyc_max_notional: tuple[int | None, ...]  # tiyn per order at KYC level 0..3; None: no max
    blocked_residencies: frozenset[str]  # ISO 3166 codes refused outright
    home_country: str = "KZ"  # residency that counts as resident
    nonresident_retail: bool  # RETAIL participants resident elsewhere are admitted
    test_lifts_retail_cap: bool  # passing the test moves RETAIL to retail_monthly_cap_tested
    categories: Mapping[str, CategoryRules]  # one entry per participant category

    def __post_init__(self) -> None:
        where = f"profile {self.name}"
        unknown = [c for c in self.checks if c not in BUILTIN_CHECK_IDS]
        if unknown:
            raise ConfigError(f"{where}: unknown built-in checks {unknown}")
        if len(set(self.checks)) != len(self.checks):
            raise ConfigError(f"{where}: a check is listed twice in {list(self.checks)}")
        if len(self.kyc_max_notional) != len(KYC_LEVELS):
            raise ConfigError(f"{where}: kyc_max_notional needs one entry per level 0..3")
        if set(self.categories) != set(CATEGORIES):
            raise ConfigError(f"{where}: categories must be exactly {', '.join(CATEGORIES)}")


def _categories(**rules: CategoryRules) -> Mapping[str, CategoryRules]:
    return MappingProxyType(dict(rules))


ALATAU = Profile(
    name="ALATAU",
    description=(
        "The default for the Alatau pilot zone: the spec's check order, non-resident retail "
        "admitted, the appropriateness test lifts the retail cap."
    ),
    checks=BUILTIN_CHECK_IDS,
    kyc_max_notional=(0, 500_000 * _KZT, 5_000_000 * _KZT, None),
    blocked_residencies=FATF_CALL_FOR_ACTION,
    nonresident_retail=True,
    test_lifts_retail_cap=True,
    categories=_categories(
        RETAIL=CategoryRules(
            max_order_notional=5_000_000 * _KZT,
            time_in_force=_NO_FOK,
            market_orders_need_test=True,
        ),
        PROFESSIONAL=CategoryRules(max_order_notional=500_000_000 * _KZT),
        MARKET_MAKER=CategoryRules(order_types=_LIMIT_ONLY),
        BROKER=CategoryRules(),
    ),
)

NBK = Profile(
    name="NBK",
    description=(
        "For a venue under a National Bank licence: residency is checked before KYC, lower "
        "KYC thresholds, a longer blocked list, resident retail only, limit orders only for "
        "retail, and the retail cap applies whether or not the test was passed."
    ),
    checks=tuple(
        {"kyc": "jurisdiction", "jurisdiction": "kyc"}.get(c, c) for c in BUILTIN_CHECK_IDS
    ),
    kyc_max_notional=(0, 100_000 * _KZT, 1_000_000 * _KZT, None),
    blocked_residencies=FATF_CALL_FOR_ACTION | {"AF", "SY", "YE"},
    nonresident_retail=False,
    test_lifts_retail_cap=False,
    categories=_categories(
        RETAIL=CategoryRules(
            max_order_notional=1_000_000 * _KZT,
            order_types=_LIMIT_ONLY,
            time_in_force=_NO_FOK,
        ),
        PROFESSIONAL=CategoryRules(max_order_notional=200_000_000 * _KZT),
        MARKET_MAKER=CategoryRules(order_types=_LIMIT_ONLY),
        BROKER=CategoryRules(),
    ),
)

AFSA = Profile(
    name="AFSA",
    description=(
        "For a venue in the AIFC under an AFSA licence: non-resident retail admitted, the "
        "appropriateness test lifts the retail cap, higher KYC thresholds (level 1 up to "
        "515,000 KZT, about the USD 1,000 CDD threshold), FOK for retail, no professional "
        "maximum."
    ),
    checks=BUILTIN_CHECK_IDS,
    kyc_max_notional=(0, 515_000 * _KZT, 10_000_000 * _KZT, None),
    blocked_residencies=FATF_CALL_FOR_ACTION,
    nonresident_retail=True,
    test_lifts_retail_cap=True,
    categories=_categories(
        RETAIL=CategoryRules(max_order_notional=10_000_000 * _KZT, market_orders_need_test=True),
        PROFESSIONAL=CategoryRules(),
        MARKET_MAKER=CategoryRules(),
        BROKER=CategoryRules(),
    ),
)

PROFILES: Mapping[str, Profile] = MappingProxyType({p.name: p for p in (ALATAU, NBK, AFSA)})
DEFAULT_PROFILE = ALATAU


def get_profile(name: str) -> Profile:
    """The shipped profile ``name`` ("ALATAU", "NBK", "AFSA"); ``ConfigError`` otherwise."""
    try:
        return PROFILES[name]
    except (KeyError, TypeError):
        raise ConfigError(
            f"unknown profile {name!r}: choose one of {', '.join(PROFILES)}"
        ) from None
