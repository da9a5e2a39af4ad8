"""Market specifications: scales, tick, lot, minimums, price band and fees, all in integers.

A ``Market`` is the one place that knows how a market's wire decimals map to the engine's
integers and which orders the market accepts.  Units, used by every integer below:

* prices, ticks, notionals and fees are in the quote asset's minor units (tiyn for KZT,
  ``10**-quote_scale`` of a unit);
* quantities, lots and minimum quantities are in the base asset's minor units
  (``10**-base_scale`` of a BTC, ETH, ...);
* the band is in basis points (1 % = 100 bps), fee rates in parts per million
  (0.10 % = 1000 ppm).

price x qty is in quote minor units x 10**base_scale.  It can pass 2**63 on a large BTC-KZT
order, so it is only ever formed here, in Python ints, and the minimum notional is checked by
cross-multiplying rather than by dividing (nothing is rounded before a decision).

Markets come from a TOML file (``load_markets``); the shipped defaults are ``markets.toml``
next to this module.  Every decimal in the file is a string parsed with ``engine.fixedpoint``;
a TOML float in a money field is refused, as is a market quoted in a fiat currency other than
the tenge (the only legal tender in the pilot zone).  Configuration problems raise
``ConfigError``; what a client did wrong comes back as a ``Rejection`` with a code from
``engine.reject``.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any, Literal, NamedTuple

import msgspec

from . import reject
from .errors import ConfigError
from .fixedpoint import MAX_SCALE, POW10, NumberFormatError, format_units, parse_units

__all__ = [
    "FIAT_CURRENCIES",
    "HALTED",
    "LOCAL_FIAT",
    "OPEN",
    "Market",
    "MarketStatus",
    "Rejection",
    "check_market",
    "load_markets",
    "markets_from_toml",
]

MarketStatus = Literal["open", "halted"]
OPEN: MarketStatus = "open"
HALTED: MarketStatus = "halted"

LOCAL_FIAT = "KZT"
"""The only fiat currency a market may be quoted in: the tenge, 2 minor digits (tiyn)."""

_LOCAL_FIAT_SCALE = 2

_FIAT_CODES = (
    # ISO 4217 codes of national currencies (current, plus a few recently replaced ones an
    # operator might still type) and CNH, the offshore yuan.  Precious metals and other X-codes
    # that are not money of a country (XAU, XDR, ...) are left out on purpose.
    """
    AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BRL BSD BTN
    BWP BYN BYR BZD CAD CDF CHF CLP CNH CNY COP CRC CUC CUP CVE CZK DJF DKK DOP DZD EGP ERN
    ETB EUR FJD FKP GBP GEL GHS GIP GMD GNF GTQ GYD HKD HNL HRK HTG HUF IDR ILS INR IQD IRR
    ISK JMD JOD JPY KES KGS KHR KMF KPW KRW KWD KYD KZT LAK LBP LKR LRD LSL LYD MAD MDL MGA
    MKD MMK MNT MOP MRO MRU MUR MVR MWK MXN MYR MZN NAD NGN NIO NOK NPR NZD OMR PAB PEN PGK
    PHP PKR PLN PYG QAR RON RSD RUB RWF SAR SBD SCR SDG SEK SGD SHP SLE SLL SOS SRD SSP STD
    STN SVC SYP SZL THB TJS TMT TND TOP TRY TTD TWD TZS UAH UGX USD UYU UZS VED VEF VES VND
    VUV WST XAF XCD XCG XOF XPF YER ZAR ZMW ZWG ZWL
    """
)
FIAT_CURRENCIES: frozenset[str] = frozenset(_FIAT_CODES.split())
"""Fiat currency codes: a market quoted in one of these other than ``LOCAL_FIAT`` is refused."""

BPS = 10_000
"""Basis points in one: a band of ``band_bps`` allows ``band_bps / BPS`` around the reference."""

PPM = 1_000_000
"""Parts per million in one: a fee rate of ``fee_ppm`` charges ``fee_ppm / PPM`` of notional."""

_ECHO_LIMIT = 40  # echo at most this much of a client's market symbol

_ASSET = r"[A-Z0-9]{2,10}"
_ASSET_RE = re.compile(_ASSET)
_SYMBOL_RE = re.compile(rf"({_ASSET})-({_ASSET})")


class Rejection(NamedTuple):
    """Why an order is refused: a stable code from ``engine.reject`` and a message for people.

    The message names the field and the value in wire format, so a client can fix its order
    without reading the market's configuration.
    """

    code: str
    message: str

    @property
    def number(self) -> int:
        """The code's compact number (what the Cython core puts in its event records)."""
        return reject.BY_CODE[self.code].number


def _plain(units: int, scale: int) -> str:
    """A decimal without trailing zeros ("0.00001", "1"): how people write steps and sizes."""
    text = format_units(units, scale)
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


class Market(msgspec.Struct, frozen=True, kw_only=True):
    """One spot market's specification; immutable, so a change is a new object.

    Every integer is in the unit the module docstring names.  Construction validates the
    invariants the engine relies on (positive tick and lot, a minimum quantity on the lot
    grid, a quote that is not a foreign fiat currency, ...) and raises ``ConfigError``.
    """

    symbol: str  # "BTC-KZT": always f"{base}-{quote}"
    base: str
    quote: str
    base_scale: int  # decimals of the base asset: qty units are 10**-base_scale of a unit
    quote_scale: int  # decimals of the quote asset: price units are 10**-quote_scale
    tick: int  # price step, quote minor units (BTC-KZT: 100 tiyn = 1 KZT)
    lot: int  # quantity step, base minor units (BTC-KZT: 1000 = 0.00001 BTC)
    min_qty: int  # base minor units, a multiple of the lot
    min_notional: int  # quote minor units (100000 tiyn = 1,000 KZT)
    band_bps: int  # limit prices within this many basis points of the reference
    maker_fee_ppm: int  # fee rate of the resting side, millionths of the notional
    taker_fee_ppm: int  # fee rate of the incoming side, millionths of the notional
    status: MarketStatus = OPEN
    reference_price: int | None = None  # quote minor units; None: no band check yet

    def __post_init__(self) -> None:
        _validate(self)

    # -- wire conversions -------------------------------------------------------------------

    def parse_price(self, text: str) -> int:
        """A wire price ("45000000.00") in quote minor units; ``NumberFormatError`` if bad."""
        return parse_units(text, self.quote_scale, field="price")

    def parse_qty(self, text: str) -> int:
        """A wire quantity ("0.00015") in base minor units; ``NumberFormatError`` if bad."""
        return parse_units(text, self.base_scale, field="qty")

    def format_price(self, price: int) -> str:
        """A price in quote minor units as a wire string with all ``quote_scale`` decimals."""
        return format_units(price, self.quote_scale)

    def format_qty(self, qty: int) -> str:
        """A quantity in base minor units as a wire string with all ``base_scale`` decimals."""
        return format_units(qty, self.base_scale)

    # -- order checks -----------------------------------------------------------------------

    def check_order(self, price: int | None, qty: int) -> Rejection | None:
        """The first market rule a new order breaks, or None if it passes them all.

        ``price`` in quote minor units, None for a market order (no tick, notional or band
        check then); ``qty`` in base minor units.  The order of the checks is part of the
        contract (the spec's check chain, steps 9 and 10): ``INVALID_TICK``,
        ``INVALID_LOT``, ``BELOW_MIN_QTY``, ``BELOW_MIN_NOTIONAL``, ``PRICE_OUT_OF_BAND``.
        Halted and unknown markets are ``check_market``'s job, one step earlier.

        Each rule is tested inline (``check_rules``, then the band) and only a broken one
        calls its ``_check_*`` helper, which words the rejection.
        """
        rejection = self.check_rules(price, qty)
        if rejection is not None or price is None:
            return rejection
        ref = self.reference_price
        if ref is None or abs(price - ref) * BPS <= self.band_bps * ref:
            return None
        return self._check_band(price)

    def check_rules(self, price: int | None, qty: int) -> Rejection | None:
        """``check_order`` without its last test, the band: ``INVALID_TICK``, ``INVALID_LOT``,
        ``BELOW_MIN_QTY``, ``BELOW_MIN_NOTIONAL``, in that order, or None.

        The check chain's step 9 (``market_rules``) on every order: the band is step 10's,
        which tests it itself, so step 9 need not compute it too."""
        if price is not None and (price <= 0 or price % self.tick):
            return self._check_tick(price)
        if qty <= 0 or qty % self.lot or qty < self.min_qty:
            return self._check_qty(qty)
        # Exact: both sides in quote minor units x 10**base_scale, no division, no rounding.
        if price is not None and price * qty < self.min_notional * POW10[self.base_scale]:
            return self._check_notional(price, qty)
        return None

    def _check_tick(self, price: int) -> Rejection | None:
        if price <= 0:
            return Rejection("INVALID_TICK", f"price {self.format_price(price)} is not positive")
        if price % self.tick:
            return Rejection(
                "INVALID_TICK",
                f"price {self.format_price(price)} is not a multiple of the tick "
                f"{_plain(self.tick, self.quote_scale)}",
            )
        return None

    def _check_qty(self, qty: int) -> Rejection | None:
        if qty <= 0:
            return Rejection("INVALID_LOT", f"qty {_plain(qty, self.base_scale)} is not positive")
        if qty % self.lot:
            return Rejection(
                "INVALID_LOT",
                f"qty {_plain(qty, self.base_scale)} is not a multiple of the lot "
                f"{_plain(self.lot, self.base_scale)}",
            )
        if qty < self.min_qty:
            return Rejection(
                "BELOW_MIN_QTY",
                f"qty {_plain(qty, self.base_scale)} {self.base} is below the minimum "
                f"{_plain(self.min_qty, self.base_scale)} {self.base}",
            )
        return None

    def _check_notional(self, price: int, qty: int) -> Rejection | None:
        if price * qty >= self.min_notional * POW10[self.base_scale]:
            return None
        # Shown rounded down, so the message never prints a notional equal to the minimum.
        notional = self.format_price(self.quote_amount(price, qty, round_up=False))
        minimum = self.format_price(self.min_notional)
        return Rejection(
            "BELOW_MIN_NOTIONAL",
            f"notional {notional} {self.quote} is below the minimum {minimum} {self.quote}",
        )

    def _check_band(self, price: int) -> Rejection | None:
        ref = self.reference_price
        if ref is None or abs(price - ref) * BPS <= self.band_bps * ref:
            return None
        low, high = _band_bounds(ref, self.band_bps)
        return Rejection(
            "PRICE_OUT_OF_BAND",
            f"price {self.format_price(price)} is outside the band {self.format_price(low)} "
            f"to {self.format_price(high)} ({_plain(self.band_bps, 2)}% around the reference "
            f"{self.format_price(ref)})",
        )

    def price_band(self) -> tuple[int, int] | None:
        """The lowest and highest limit price accepted (quote minor units, inclusive).

        None while the market has no reference price.  The bounds are the integers p with
        ``|p - ref| * 10000 <= band_bps * ref``, the same rule ``check_order`` applies.
        """
        ref = self.reference_price
        return None if ref is None else _band_bounds(ref, self.band_bps)

    # -- amounts ----------------------------------------------------------------------------

    def quote_amount(self, price: int, qty: int, *, round_up: bool) -> int:
        """price x qty in quote minor units, rounded up or down exactly.

        ``price`` in quote minor units, ``qty`` in base minor units.  The exact value can
        have a fraction of a minor unit (45,000,001 KZT x 0.00001 BTC = 45000.001 tiyn), so
        the caller says which way it goes: up for what a buyer must hold or pay, down for
        what a seller receives, so the venue never pays out a tiyn it did not take in.
        """
        numerator = price * qty
        denominator = POW10[self.base_scale]
        if round_up:
            return -(-numerator // denominator)
        return numerator // denominator

    def fee(self, price: int, qty: int, fee_ppm: int) -> int:
        """The fee on one fill in quote minor units: ceil(price x qty x rate), rounded once.

        ``price`` in quote minor units, ``qty`` in base minor units, ``fee_ppm`` the rate in
        millionths (``maker_fee_ppm`` or ``taker_fee_ppm``).  The rule, as the spec asks it
        to be written down: the fee is computed from the exact notional (not from a rounded
        ``quote_amount``) and rounded up to the next minor unit, in the venue's favour::

            fee = ceil(price * qty * fee_ppm / (10**base_scale * 10**6))

        So any non-zero trade at a non-zero rate pays at least 1 tiyn.  With a negative rate
        (a rebate) the same ceiling rounds the rebate towards zero, still the venue's way.
        """
        return -(-(price * qty * fee_ppm) // (POW10[self.base_scale] * PPM))

    # -- changed copies (for admin commands) ------------------------------------------------

    def with_status(self, status: MarketStatus) -> Market:
        """A copy with ``status`` ("open" or "halted"); validated like a new market."""
        return msgspec.structs.replace(self, status=status)

    def with_reference(self, reference_price: int | None) -> Market:
        """A copy with a new reference price (quote minor units; None clears the band)."""
        return msgspec.structs.replace(self, reference_price=reference_price)

    @property
    def is_open(self) -> bool:
        """True when the market accepts orders."""
        return self.status == OPEN


def check_market(markets: Mapping[str, Market], symbol: str) -> Rejection | None:
    """``UNKNOWN_MARKET`` or ``MARKET_HALTED`` for an order on ``symbol``, else None.

    Step 8 of the check chain, before ``Market.check_order``.  ``symbol`` comes from the
    client, so it is echoed quoted and cut short.
    """
    market = markets.get(symbol)
    if market is None:
        shown = repr(symbol) if len(symbol) <= _ECHO_LIMIT else repr(symbol[:_ECHO_LIMIT]) + "..."
        return Rejection("UNKNOWN_MARKET", f"market {shown} is unknown")
    if not market.is_open:
        return Rejection("MARKET_HALTED", f"market {symbol} is halted")
    return None


def _band_bounds(ref: int, band_bps: int) -> tuple[int, int]:
    """The integer prices p with ``|p - ref| * BPS <= band_bps * ref``, as (lowest, highest)."""
    low = -(-ref * (BPS - band_bps) // BPS)  # ceil
    high = ref * (BPS + band_bps) // BPS  # floor
    return low, high


# -- validation of a Market -----------------------------------------------------------------


def _validate(market: Market) -> None:
    """Raise ``ConfigError`` naming the market and the field for a broken invariant."""
    problem = _symbol_problem(market) or _scale_problem(market) or _rule_problem(market)
    if problem:
        raise ConfigError(f"market {market.symbol}: {problem}")


def _symbol_problem(market: Market) -> str | None:
    if not isinstance(market.symbol, str) or _SYMBOL_RE.fullmatch(market.symbol) is None:
        return "the symbol must be BASE-QUOTE in capitals, such as BTC-KZT"
    if market.symbol != f"{market.base}-{market.quote}":
        return f"the symbol does not match base {market.base} and quote {market.quote}"
    if market.base == market.quote:
        return "base and quote are the same asset"
    if market.quote in FIAT_CURRENCIES and market.quote != LOCAL_FIAT:
        return (
            f"quoted in {market.quote}, a fiat currency other than {LOCAL_FIAT}; "
            f"{LOCAL_FIAT} is the only fiat a market may be quoted in"
        )
    return None


def _scale_problem(market: Market) -> str | None:
    for name in ("base_scale", "quote_scale"):
        value = getattr(market, name)
        if not _is_int(value) or not 0 <= value <= MAX_SCALE:
            return f"{name} must be an integer in 0..{MAX_SCALE}, not {value!r}"
    if LOCAL_FIAT in (market.base, market.quote):
        scale = market.base_scale if market.base == LOCAL_FIAT else market.quote_scale
        if scale != _LOCAL_FIAT_SCALE:
            return f"{LOCAL_FIAT} has {_LOCAL_FIAT_SCALE} decimals (tiyn), not {scale}"
    return None


def _rule_problem(market: Market) -> str | None:
    """Ticks, lots, minimums, band, fees, status and reference, in the order of the file."""
    qty_scale, price_scale = market.base_scale, market.quote_scale
    for name in ("tick", "lot", "min_qty", "min_notional", "band_bps"):
        if not _is_int(getattr(market, name)):
            return f"{name} must be an integer, not {getattr(market, name)!r}"
    if market.tick <= 0:
        return f"the tick must be positive, not {_plain(market.tick, price_scale)}"
    if market.lot <= 0:
        return f"the lot must be positive, not {_plain(market.lot, qty_scale)}"
    if market.min_qty <= 0 or market.min_qty % market.lot:
        return (
            f"min_qty {_plain(market.min_qty, qty_scale)} must be a positive multiple of "
            f"the lot {_plain(market.lot, qty_scale)}"
        )
    if market.min_notional < 0:
        shown = format_units(market.min_notional, market.quote_scale)
        return f"min_notional must not be negative, not {shown}"
    if not 0 < market.band_bps <= BPS:
        return f"the band must be above 0 and at most 100 %, not {market.band_bps} bps"
    for name in ("maker_fee_ppm", "taker_fee_ppm"):
        rate = getattr(market, name)
        if not _is_int(rate) or not 0 <= rate <= PPM:
            return f"{name} must be an integer in 0..{PPM} (0 % to 100 %), not {rate!r}"
    if market.status not in (OPEN, HALTED):
        return f"status must be {OPEN!r} or {HALTED!r}, not {market.status!r}"
    ref = market.reference_price
    if ref is not None and (not _is_int(ref) or ref <= 0):
        return f"the reference price must be positive, not {ref!r}"
    return None


def _is_int(value: object) -> bool:
    """An int and not a bool (True is an int to Python, never a tick to us)."""
    return isinstance(value, int) and not isinstance(value, bool)


# -- loading --------------------------------------------------------------------------------

_DEFAULT_FILE = "markets.toml"

_REQUIRED_KEYS = frozenset(
    (
        "symbol",
        "tick",
        "lot",
        "min_qty",
        "min_notional",
        "band_pct",
        "maker_fee_pct",
        "taker_fee_pct",
    )
)
_OPTIONAL_KEYS = frozenset(("status", "reference_price"))

# Scales of the percentages in the file: "10" % at scale 2 is 1000 bps, "0.10" % at scale 4
# is 1000 ppm, so a percent string maps onto the integer unit without any arithmetic.
_BPS_PER_PCT_SCALE = 2
_PPM_PER_PCT_SCALE = 4


def load_markets(path: str | Path | None = None) -> dict[str, Market]:
    """The markets of a TOML file, by symbol; None loads the shipped ``markets.toml``.

    Raises ``ConfigError`` naming the file, the market and the field for anything invalid:
    see ``docs/markets.md`` for the format.
    """
    if path is None:
        text = resources.files(__package__).joinpath(_DEFAULT_FILE).read_text(encoding="utf-8")
        return markets_from_toml(text, source=f"engine/{_DEFAULT_FILE}")
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read the markets file {path}: {exc}") from exc
    return markets_from_toml(text, source=str(path))


def markets_from_toml(text: str, *, source: str = "<string>") -> dict[str, Market]:
    """The markets of a TOML document, by symbol (``load_markets`` without the file)."""
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML: {exc}") from exc
    try:
        return _markets_from_document(document)
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from exc


def _markets_from_document(document: dict[str, Any]) -> dict[str, Market]:
    unknown = set(document) - {"assets", "markets"}
    if unknown:
        raise ConfigError(f"unknown top-level keys {sorted(unknown)}: expected assets, markets")
    scales = _asset_scales(document.get("assets"))
    tables = document.get("markets")
    if not isinstance(tables, list) or not tables:
        raise ConfigError("no markets: write each market as a [[markets]] table")
    markets: dict[str, Market] = {}
    for index, table in enumerate(tables):
        market = _market_from_table(table, scales, index)
        if market.symbol in markets:
            raise ConfigError(f"market {market.symbol} is defined twice")
        markets[market.symbol] = market
    return markets


def _asset_scales(table: object) -> dict[str, int]:
    """The [assets] table: asset code -> decimals of its minor unit."""
    if not isinstance(table, dict) or not table:
        raise ConfigError("no [assets] table: list each asset with its decimals, e.g. BTC = 8")
    for code, scale in table.items():
        if _ASSET_RE.fullmatch(code) is None:
            raise ConfigError(f"asset {code!r} must be 2 to 10 capital letters or digits")
        if not _is_int(scale) or not 0 <= scale <= MAX_SCALE:
            raise ConfigError(f"asset {code}: decimals must be an integer in 0..{MAX_SCALE}")
    return dict(table)


def _market_from_table(table: object, scales: Mapping[str, int], index: int) -> Market:
    if not isinstance(table, dict):
        raise ConfigError(f"markets[{index}] must be a table")
    symbol = table.get("symbol")
    where = f"market {symbol}" if isinstance(symbol, str) else f"markets[{index}]"
    missing = _REQUIRED_KEYS - set(table)
    if missing:
        raise ConfigError(f"{where}: missing {', '.join(sorted(missing))}")
    unknown = set(table) - _REQUIRED_KEYS - _OPTIONAL_KEYS
    if unknown:
        raise ConfigError(f"{where}: unknown keys {', '.join(sorted(unknown))}")
    symbol, base, quote = _split_symbol(symbol, scales, where)
    base_scale, quote_scale = scales[base], scales[quote]
    reference = table.get("reference_price")
    return Market(
        symbol=symbol,
        base=base,
        quote=quote,
        base_scale=base_scale,
        quote_scale=quote_scale,
        tick=_decimal(table, "tick", quote_scale, where),
        lot=_decimal(table, "lot", base_scale, where),
        min_qty=_decimal(table, "min_qty", base_scale, where),
        min_notional=_decimal(table, "min_notional", quote_scale, where),
        band_bps=_decimal(table, "band_pct", _BPS_PER_PCT_SCALE, where),
        maker_fee_ppm=_decimal(table, "maker_fee_pct", _PPM_PER_PCT_SCALE, where),
        taker_fee_ppm=_decimal(table, "taker_fee_pct", _PPM_PER_PCT_SCALE, where),
        status=table.get("status", OPEN),
        reference_price=None
        if reference is None
        else _decimal(table, "reference_price", quote_scale, where),
    )


def _split_symbol(symbol: object, scales: Mapping[str, int], where: str) -> tuple[str, str, str]:
    """(symbol, base, quote) of a "BASE-QUOTE" symbol whose assets are both in [assets].

    The fiat test comes before the unknown-asset test: "USD is not in [assets]" would send
    the operator to add USD, when the real answer is that no such market is allowed.
    """
    match = _SYMBOL_RE.fullmatch(symbol) if isinstance(symbol, str) else None
    if match is None:
        raise ConfigError(f"{where}: symbol {symbol!r} is not BASE-QUOTE, such as BTC-KZT")
    base, quote = match.groups()
    if quote in FIAT_CURRENCIES and quote != LOCAL_FIAT:
        raise ConfigError(
            f"{where}: quoted in {quote}, a fiat currency other than {LOCAL_FIAT}; "
            f"{LOCAL_FIAT} is the only fiat a market may be quoted in"
        )
    for asset in (base, quote):
        if asset not in scales:
            raise ConfigError(f"{where}: unknown asset {asset}: add it to [assets]")
    return f"{base}-{quote}", base, quote


def _decimal(table: Mapping[str, Any], key: str, scale: int, where: str) -> int:
    """A decimal string field of a market table, in integer units of ``10**-scale``.

    A TOML float is refused (it would have been rounded to binary already, which is what the
    strings are for), and so is a TOML integer: ``tick = 1`` reads as 1 KZT to one person and
    1 tiyn to another, ``tick = "1"`` is whole units by the rule of the file.
    """
    value = table[key]
    if isinstance(value, float):
        raise ConfigError(
            f"{where}: {key} = {value!r} is a TOML float; write decimals as strings, "
            f'such as {key} = "{value}"'
        )
    if not isinstance(value, str):
        raise ConfigError(
            f'{where}: {key} = {value!r} must be a decimal string, such as {key} = "{value}"'
        )
    try:
        return parse_units(value, scale, field=key)
    except NumberFormatError as exc:
        raise ConfigError(f"{where}: {exc}") from exc
