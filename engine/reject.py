"""The one table of reject codes.

Every reason the venue can refuse a command is listed here once: a stable upper-case string
(what clients see on the wire), a small number (what the Cython core puts in its compact
event records) and a default human-readable explanation.  Messages sent to clients add the
field and the value ("price 45000000.50 is not a multiple of the tick 1"); the code never
changes once released.
"""

from __future__ import annotations

from typing import NamedTuple


class RejectCode(NamedTuple):
    number: int
    code: str
    meaning: str


_TABLE: tuple[RejectCode, ...] = (
    # -- the order book (engine._core.book and engine.reference) ---------------------------
    RejectCode(1, "DUPLICATE_ORDER_ID", "an open order already has this order id"),
    RejectCode(2, "INVALID_PRICE", "the price must be a positive number"),
    RejectCode(3, "INVALID_QTY", "the quantity must be a positive number"),
    RejectCode(4, "POST_ONLY_WOULD_TRADE", "a post-only order would have traded on entry"),
    RejectCode(5, "UNKNOWN_ORDER", "no open order has this id"),
    RejectCode(6, "INVALID_TIF", "this time in force is not allowed for this order"),
    # -- market rules (engine.markets) -------------------------------------------------------
    RejectCode(20, "UNKNOWN_MARKET", "the market is unknown or not admitted"),
    RejectCode(21, "MARKET_HALTED", "trading in the market is halted"),
    RejectCode(22, "INVALID_TICK", "the price is not a multiple of the market's tick"),
    RejectCode(23, "INVALID_LOT", "the quantity is not a multiple of the market's lot"),
    RejectCode(24, "BELOW_MIN_QTY", "the quantity is below the market's minimum"),
    RejectCode(25, "BELOW_MIN_NOTIONAL", "price times quantity is below the market's minimum"),
    RejectCode(26, "PRICE_OUT_OF_BAND", "the price is outside the band around the reference"),
    RejectCode(27, "INVALID_NUMBER", "not an exact decimal number the market accepts"),
    # -- licensing and pre-trade checks (the check chain) ------------------------------------
    RejectCode(40, "VENUE_NOT_LICENSED", "the venue's own licence is not active"),
    RejectCode(41, "PARTICIPANT_UNKNOWN", "the participant is unknown"),
    RejectCode(42, "ACCOUNT_SUSPENDED", "the participant's account is suspended or frozen"),
    RejectCode(43, "LICENSE_SUSPENDED", "the licence the participant trades under is suspended"),
    RejectCode(44, "LICENSE_REVOKED", "the licence the participant trades under is revoked"),
    RejectCode(45, "LICENSE_EXPIRED", "the licence the participant trades under has expired"),
    RejectCode(46, "LICENSE_SCOPE", "the licence does not cover this market or activity"),
    RejectCode(47, "KYC_INSUFFICIENT", "the KYC level is too low for this order's notional"),
    RejectCode(48, "JURISDICTION_BLOCKED", "the participant's residency is not allowed"),
    RejectCode(49, "ORDER_SIZE_LIMIT", "the order is above the per-order maximum"),
    RejectCode(50, "CATEGORY_NOT_PERMITTED", "this order type is not permitted for the category"),
    RejectCode(51, "RETAIL_LIMIT_EXCEEDED", "the retail monthly purchase cap would be exceeded"),
    RejectCode(52, "DAILY_LIMIT_EXCEEDED", "the daily notional limit would be exceeded"),
    RejectCode(53, "OPEN_ORDER_LIMIT", "the open-order count limit would be exceeded"),
    RejectCode(54, "INSUFFICIENT_FUNDS", "not enough available balance"),
    # -- the exchange's own request checks --------------------------------------------------
    RejectCode(60, "DUPLICATE_CLIENT_ORDER_ID", "an open order of yours has this client_order_id"),
    RejectCode(61, "NO_REFERENCE_PRICE", "market orders need a reference price for protection"),
    RejectCode(62, "UNKNOWN_ASSET", "no market trades this asset"),
    RejectCode(63, "INVALID_AMOUNT", "the amount must be a positive number"),
    RejectCode(64, "BALANCE_LIMIT", "the venue would hold more of the asset than it can count"),
    # -- the wire protocol (gateway) ----------------------------------------------------------
    RejectCode(80, "INVALID_REQUEST", "the frame is not a JSON object request"),
    RejectCode(81, "UNKNOWN_METHOD", "no such method"),
    RejectCode(82, "INVALID_PARAMS", "a parameter is missing or has the wrong type or value"),
    RejectCode(83, "UNAUTHENTICATED", "log in first"),
    RejectCode(84, "RATE_LIMITED", "too many requests: wait and retry"),
    RejectCode(85, "AUTH_FAILED", "the login was refused (key, signature or time window)"),
    RejectCode(86, "INTERNAL", "the server failed to answer; the request may not have run"),
    RejectCode(
        87, "VENUE_STOPPED", "the venue stopped (a failed journal or engine, or shutting down)"
    ),
    RejectCode(88, "TOO_MANY_CONNECTIONS", "the participant has its maximum of sessions logged in"),
    RejectCode(
        89, "HISTORY_BEHIND", "the order is not open and the order history has not caught up"
    ),
)

BY_NUMBER: dict[int, RejectCode] = {entry.number: entry for entry in _TABLE}
BY_CODE: dict[str, RejectCode] = {entry.code: entry for entry in _TABLE}

# Book codes as module constants: the Cython core and the reference book use these numbers.
DUPLICATE_ORDER_ID = 1
INVALID_PRICE = 2
INVALID_QTY = 3
POST_ONLY_WOULD_TRADE = 4
UNKNOWN_ORDER = 5
INVALID_TIF = 6


def code_name(number: int) -> str:
    """The stable string of a reject number; KeyError for a number not in the table."""
    return BY_NUMBER[number].code


def all_codes() -> tuple[RejectCode, ...]:
    """Every code, in table order (for documentation and tests)."""
    return _TABLE
