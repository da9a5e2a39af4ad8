"""Market specifications: the shipped defaults, order checks, exact amounts and config loading."""

from __future__ import annotations

import math
from fractions import Fraction
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine import reject
from engine.errors import ConfigError
from engine.fixedpoint import NumberFormatError
from engine.markets import (
    FIAT_CURRENCIES,
    HALTED,
    OPEN,
    Market,
    Rejection,
    check_market,
    load_markets,
    markets_from_toml,
)

DEFAULTS = load_markets()
BTC = DEFAULTS["BTC-KZT"]
USDT = DEFAULTS["USDT-KZT"]


def codes(rejection: Rejection | None) -> str | None:
    """The code of a check result, None when the order passes."""
    return None if rejection is None else rejection.code


# -- the shipped defaults ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("symbol", "base_scale", "tick", "lot", "min_qty", "band_bps"),
    [
        # tick in tiyn, lot and min qty in base minor units (spec table, "Default markets")
        ("BTC-KZT", 8, 100, 1_000, 1_000, 1_000),  # 1 KZT, 0.00001 BTC, +-10 %
        ("ETH-KZT", 8, 100, 10_000, 10_000, 1_000),  # 1 KZT, 0.0001 ETH, +-10 %
        ("USDT-KZT", 6, 1, 10_000, 1_000_000, 500),  # 0.01 KZT, 0.01 USDT, 1 USDT, +-5 %
        ("USDC-KZT", 6, 1, 10_000, 1_000_000, 500),  # 0.01 KZT, 0.01 USDC, 1 USDC, +-5 %
    ],
)
def test_defaults_match_the_spec_table(
    symbol: str, base_scale: int, tick: int, lot: int, min_qty: int, band_bps: int
) -> None:
    """The shipped markets carry the spec's scales, ticks, lots, minimums, bands and fees."""
    market = DEFAULTS[symbol]
    assert (market.base, market.quote) == tuple(symbol.split("-"))
    assert market.base_scale == base_scale
    assert market.quote_scale == 2  # tiyn
    assert (market.tick, market.lot, market.min_qty) == (tick, lot, min_qty)
    assert market.min_notional == 100_000  # 1,000 KZT
    assert market.band_bps == band_bps
    assert market.maker_fee_ppm == market.taker_fee_ppm == 1_000  # 0.10 %
    assert market.status == OPEN


def test_defaults_are_exactly_the_four_spec_markets() -> None:
    """No market is shipped beyond the spec's four, and all are quoted in KZT."""
    assert sorted(DEFAULTS) == ["BTC-KZT", "ETH-KZT", "USDC-KZT", "USDT-KZT"]
    assert {market.quote for market in DEFAULTS.values()} == {"KZT"}


def test_default_reference_prices_are_realistic_demo_levels() -> None:
    """Reference prices sit at the spec's demo levels, so the band works from the start."""
    assert BTC.reference_price == BTC.parse_price("45000000.00")
    assert USDT.reference_price == DEFAULTS["USDC-KZT"].reference_price == 51_500
    assert DEFAULTS["ETH-KZT"].reference_price == 170_000_000


def test_loading_twice_gives_equal_markets() -> None:
    """Markets are values: loading the defaults again gives equal, hashable objects."""
    again = load_markets()
    assert again == DEFAULTS
    assert hash(again["BTC-KZT"]) == hash(BTC)


# -- wire conversions ----------------------------------------------------------------------


def test_price_and_qty_use_the_market_scales() -> None:
    """Prices parse at the quote's scale and quantities at the base's, both ways."""
    assert BTC.parse_price("45000000.00") == 4_500_000_000
    assert BTC.parse_qty("0.00015") == 15_000
    assert USDT.parse_qty("1.5") == 1_500_000
    assert BTC.format_price(4_500_000_000) == "45000000.00"
    assert BTC.format_qty(15_000) == "0.00015000"


@pytest.mark.parametrize(("method", "field"), [("parse_price", "price"), ("parse_qty", "qty")])
def test_parse_errors_name_the_field(method: str, field: str) -> None:
    """A bad wire number is INVALID_NUMBER and names price or qty."""
    with pytest.raises(NumberFormatError) as info:
        getattr(BTC, method)("1e3")
    assert info.value.code == "INVALID_NUMBER"
    assert str(info.value).startswith(f"{field} ")


def test_too_many_decimals_on_the_wire_is_rejected() -> None:
    """A price with a third decimal of KZT, or a qty below a satoshi-unit, is refused."""
    with pytest.raises(NumberFormatError):
        BTC.parse_price("45000000.001")
    with pytest.raises(NumberFormatError):
        BTC.parse_qty("0.000000001")


# -- check_order: every rejection path, its code and its message ----------------------------


def test_a_good_limit_order_passes() -> None:
    """An order on tick, on lot, above the minimums and inside the band is accepted."""
    assert BTC.check_order(BTC.parse_price("45000000"), BTC.parse_qty("0.001")) is None
    assert USDT.check_order(USDT.parse_price("515.37"), USDT.parse_qty("10.01")) is None


def test_price_off_tick_is_invalid_tick() -> None:
    """A price that is not a multiple of the tick is INVALID_TICK, naming price and tick."""
    result = BTC.check_order(BTC.parse_price("45000000.50"), BTC.parse_qty("0.001"))
    assert result == Rejection("INVALID_TICK", "price 45000000.50 is not a multiple of the tick 1")


@pytest.mark.parametrize("price", [0, -100])
def test_non_positive_price_is_invalid_tick(price: int) -> None:
    """A zero or negative price is INVALID_TICK, even though 0 is on every tick grid."""
    result = BTC.check_order(price, BTC.parse_qty("0.001"))
    assert codes(result) == "INVALID_TICK"
    assert "is not positive" in result.message  # type: ignore[union-attr]


def test_qty_off_lot_is_invalid_lot() -> None:
    """A quantity that is not a multiple of the lot is INVALID_LOT, naming qty and lot."""
    result = BTC.check_order(BTC.parse_price("45000000"), BTC.parse_qty("0.000015"))
    assert result == Rejection("INVALID_LOT", "qty 0.000015 is not a multiple of the lot 0.00001")


@pytest.mark.parametrize("qty", [0, -1_000])
def test_non_positive_qty_is_invalid_lot(qty: int) -> None:
    """A zero or negative quantity is INVALID_LOT."""
    assert codes(BTC.check_order(BTC.parse_price("45000000"), qty)) == "INVALID_LOT"


def test_qty_below_minimum_is_below_min_qty() -> None:
    """A quantity on the lot grid but under min_qty is BELOW_MIN_QTY with both values."""
    result = USDT.check_order(USDT.parse_price("515.00"), USDT.parse_qty("0.99"))
    assert result == Rejection("BELOW_MIN_QTY", "qty 0.99 USDT is below the minimum 1 USDT")


def test_small_notional_is_below_min_notional() -> None:
    """price x qty under 1,000 KZT is BELOW_MIN_NOTIONAL, shown in KZT and rounded down."""
    # 515.00 KZT x 1.94 USDT = 999.10 KZT
    result = USDT.check_order(USDT.parse_price("515.00"), USDT.parse_qty("1.94"))
    assert result == Rejection(
        "BELOW_MIN_NOTIONAL", "notional 999.10 KZT is below the minimum 1000.00 KZT"
    )
    assert USDT.check_order(USDT.parse_price("515.00"), USDT.parse_qty("1.95")) is None


def test_min_notional_is_exact_to_a_fraction_of_a_tiyn() -> None:
    """A notional 0.001 tiyn under the minimum is rejected; exactly the minimum passes."""
    market = BTC.with_reference(None)  # the band would reject these prices first
    lot = market.parse_qty("0.00001")
    # 99,999,999 KZT x 0.00001 BTC = 999.99999 KZT: rounding to tiyn would say 1000.00
    result = market.check_order(market.parse_price("99999999"), lot)
    assert codes(result) == "BELOW_MIN_NOTIONAL"
    assert "notional 999.99 KZT" in result.message  # type: ignore[union-attr]
    assert market.check_order(market.parse_price("100000000"), lot) is None


def test_notional_beyond_int64_is_checked_without_overflow() -> None:
    """price x qty far above 2**63 is still compared exactly (Python ints)."""
    market = BTC.with_reference(None)
    price, qty = 10**15, 10**15  # 10 trillion KZT x 10 million BTC
    assert price * qty > 2**63
    assert market.check_order(price, qty) is None
    assert market.quote_amount(price, qty, round_up=False) == 10**22


@pytest.mark.parametrize(
    ("price", "accepted"),
    [
        ("49500000", True),  # +10 % exactly
        ("49500001", False),
        ("40500000", True),  # -10 % exactly
        ("40499999", False),
    ],
)
def test_band_edges_are_inclusive(price: str, accepted: bool) -> None:
    """A limit exactly 10 % from the reference passes; one tick further is PRICE_OUT_OF_BAND."""
    result = BTC.check_order(BTC.parse_price(price), BTC.parse_qty("0.001"))
    assert codes(result) == (None if accepted else "PRICE_OUT_OF_BAND")


def test_band_message_names_the_price_the_band_and_the_reference() -> None:
    """The band rejection says which prices would have been accepted."""
    result = BTC.check_order(BTC.parse_price("50000000"), BTC.parse_qty("0.001"))
    assert result == Rejection(
        "PRICE_OUT_OF_BAND",
        "price 50000000.00 is outside the band 40500000.00 to 49500000.00 "
        "(10% around the reference 45000000.00)",
    )


def test_no_reference_means_no_band() -> None:
    """Without a reference price any positive on-tick price passes the band."""
    market = BTC.with_reference(None)
    assert market.price_band() is None
    assert market.check_order(market.parse_price("90000000"), market.parse_qty("0.001")) is None


def test_market_orders_skip_price_checks() -> None:
    """A market order (price None) is checked for lot and minimum quantity only."""
    assert BTC.check_order(None, BTC.parse_qty("0.00001")) is None
    assert codes(BTC.check_order(None, BTC.parse_qty("0.000015"))) == "INVALID_LOT"
    assert codes(USDT.check_order(None, USDT.parse_qty("0.5"))) == "BELOW_MIN_QTY"


def test_checks_run_in_the_spec_order() -> None:
    """With several faults the first in the order tick, lot, min qty, notional, band wins."""
    far_off_tick = BTC.parse_price("90000000.50")
    assert codes(BTC.check_order(far_off_tick, BTC.parse_qty("0.000015"))) == "INVALID_TICK"
    # off lot and too small: INVALID_LOT before BELOW_MIN_QTY
    assert codes(USDT.check_order(USDT.parse_price("900"), 5_000)) == "INVALID_LOT"
    # too small and out of band: BELOW_MIN_QTY before PRICE_OUT_OF_BAND
    assert codes(USDT.check_order(USDT.parse_price("900"), 990_000)) == "BELOW_MIN_QTY"
    # small notional and out of band: BELOW_MIN_NOTIONAL before PRICE_OUT_OF_BAND
    assert codes(BTC.check_order(BTC.parse_price("90000000"), 1_000)) == "BELOW_MIN_NOTIONAL"


def test_every_code_used_is_in_the_reject_table() -> None:
    """Market rejections carry codes from the one table, with their numbers."""
    for code in (
        "INVALID_NUMBER",
        "INVALID_TICK",
        "INVALID_LOT",
        "BELOW_MIN_QTY",
        "BELOW_MIN_NOTIONAL",
        "PRICE_OUT_OF_BAND",
        "UNKNOWN_MARKET",
        "MARKET_HALTED",
    ):
        assert code in reject.BY_CODE
    assert Rejection("INVALID_TICK", "x").number == reject.BY_CODE["INVALID_TICK"].number


def first_failure(market: Market, price: int, qty: int) -> str | None:
    """An independent oracle of check_order: rational arithmetic, written from the spec."""
    if price <= 0 or price % market.tick:
        return "INVALID_TICK"
    if qty <= 0 or qty % market.lot:
        return "INVALID_LOT"
    if qty < market.min_qty:
        return "BELOW_MIN_QTY"
    notional = Fraction(price * qty, 10**market.base_scale)
    if notional < market.min_notional:
        return "BELOW_MIN_NOTIONAL"
    ref = market.reference_price
    if ref is not None and abs(Fraction(price, ref) - 1) > Fraction(market.band_bps, 10_000):
        return "PRICE_OUT_OF_BAND"
    return None


@st.composite
def orders(draw: st.DrawFn) -> tuple[Market, int, int]:
    """A default market and an order near its rules: mostly on tick and lot, near the band."""
    market = draw(st.sampled_from(list(DEFAULTS.values())))
    ref = market.reference_price or 1
    near_ref = st.integers(
        min_value=ref * 8 // 10 // market.tick, max_value=ref * 12 // 10 // market.tick
    )
    on_grid_price = (st.integers(min_value=0, max_value=2 * ref // market.tick) | near_ref).map(
        lambda ticks: ticks * market.tick
    )
    on_grid_qty = st.integers(min_value=0, max_value=1_000 * market.min_qty // market.lot).map(
        lambda lots: lots * market.lot
    )
    price = draw(on_grid_price | st.integers(min_value=-10, max_value=2 * ref))
    qty = draw(on_grid_qty | st.integers(min_value=-10, max_value=1_000 * market.min_qty))
    return market, price, qty


@given(orders())
def test_check_order_agrees_with_the_rational_oracle(order: tuple[Market, int, int]) -> None:
    """check_order gives the same first failure as exact rational arithmetic."""
    market, price, qty = order
    assert codes(market.check_order(price, qty)) == first_failure(market, price, qty)


@given(st.integers(min_value=1, max_value=10**12), st.integers(min_value=1, max_value=9_999))
def test_price_band_bounds_match_the_band_rule(ref: int, band_bps: int) -> None:
    """price_band's bounds are the last prices the band check accepts on either side."""
    market = BTC.with_reference(None)
    market = Market(**{**_fields(market), "band_bps": band_bps, "reference_price": ref})
    low, high = market.price_band()  # type: ignore[misc]
    assert market._check_band(low) is None
    assert market._check_band(high) is None
    assert market._check_band(high + 1) is not None
    if low > 1:
        assert market._check_band(low - 1) is not None


def _fields(market: Market) -> dict[str, object]:
    """A market's fields as keyword arguments, to build variants."""
    return {name: getattr(market, name) for name in market.__struct_fields__}


# -- amounts -------------------------------------------------------------------------------


def test_quote_amount_rounds_a_fractional_tiyn_as_asked() -> None:
    """45,000,001 KZT x 0.00001 BTC = 45000.001 tiyn: 45001 rounded up, 45000 down."""
    price, qty = BTC.parse_price("45000001"), BTC.parse_qty("0.00001")
    assert BTC.quote_amount(price, qty, round_up=True) == 45_001
    assert BTC.quote_amount(price, qty, round_up=False) == 45_000


def test_quote_amount_is_not_rounded_when_exact() -> None:
    """An exact notional comes back unchanged both ways."""
    price, qty = BTC.parse_price("45000000"), BTC.parse_qty("0.00001")
    assert BTC.quote_amount(price, qty, round_up=True) == 45_000
    assert BTC.quote_amount(price, qty, round_up=False) == 45_000


@given(st.integers(min_value=0, max_value=2**63 - 1), st.integers(min_value=0, max_value=2**63 - 1))
def test_quote_amount_is_the_exact_floor_or_ceiling(price: int, qty: int) -> None:
    """quote_amount is floor / ceil of the exact rational notional, for any int64 inputs."""
    exact = Fraction(price * qty, 10**BTC.base_scale)
    assert BTC.quote_amount(price, qty, round_up=False) == math.floor(exact)
    assert BTC.quote_amount(price, qty, round_up=True) == math.ceil(exact)


def test_fee_rounds_up_in_the_venues_favour() -> None:
    """0.10 % of 450.00001 KZT is 45.000001 tiyn, charged as 46 tiyn."""
    price, qty = BTC.parse_price("45000001"), BTC.parse_qty("0.00001")
    assert BTC.fee(price, qty, BTC.taker_fee_ppm) == 46


def test_fee_is_exact_when_it_divides() -> None:
    """0.10 % of 450.00 KZT is exactly 45 tiyn: no extra tiyn is added."""
    price, qty = BTC.parse_price("45000000"), BTC.parse_qty("0.00001")
    assert BTC.fee(price, qty, BTC.maker_fee_ppm) == 45


def test_fee_at_zero_rate_is_zero() -> None:
    """A zero fee rate charges nothing, however large the trade."""
    assert BTC.fee(10**12, 10**12, 0) == 0


@given(
    st.integers(min_value=0, max_value=2**63 - 1),
    st.integers(min_value=0, max_value=2**63 - 1),
    st.integers(min_value=0, max_value=1_000_000),
)
def test_fee_is_the_ceiling_of_the_exact_fee(price: int, qty: int, fee_ppm: int) -> None:
    """fee == ceil(price x qty x rate) computed in rationals, never below the exact fee."""
    exact = Fraction(price * qty * fee_ppm, 10**USDT.base_scale * 10**6)
    assert USDT.fee(price, qty, fee_ppm) == math.ceil(exact)


# -- status, reference and market lookup ----------------------------------------------------


def test_with_status_and_with_reference_return_changed_copies() -> None:
    """Admin changes produce new markets; the original is untouched."""
    halted = BTC.with_status(HALTED)
    assert halted.status == HALTED and not halted.is_open
    assert BTC.status == OPEN and BTC.is_open
    moved = BTC.with_reference(4_600_000_000)
    assert moved.reference_price == 4_600_000_000
    assert BTC.reference_price == 4_500_000_000


def test_changed_copies_are_validated() -> None:
    """An unknown status or a non-positive reference is refused like a bad config."""
    with pytest.raises(ConfigError, match="status"):
        BTC.with_status("closed")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="reference price"):
        BTC.with_reference(0)


def test_check_market_unknown_and_halted() -> None:
    """An unknown symbol is UNKNOWN_MARKET, a halted one MARKET_HALTED, an open one passes."""
    markets = {**DEFAULTS, "BTC-KZT": BTC.with_status(HALTED)}
    assert codes(check_market(markets, "DOGE-KZT")) == "UNKNOWN_MARKET"
    assert check_market(markets, "DOGE-KZT").message == "market 'DOGE-KZT' is unknown"  # type: ignore[union-attr]
    assert codes(check_market(markets, "BTC-KZT")) == "MARKET_HALTED"
    assert check_market(markets, "USDT-KZT") is None


# -- building markets directly -------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"tick": 0}, "tick must be positive"),
        ({"lot": -1}, "lot must be positive"),
        ({"min_qty": 1_500}, "multiple of the lot"),
        ({"band_bps": 0}, "band"),
        ({"taker_fee_ppm": -1}, "taker_fee_ppm"),
        ({"tick": True}, "tick must be an integer"),
        ({"quote_scale": 3}, "KZT has 2 decimals"),
        ({"symbol": "BTC/KZT"}, "BASE-QUOTE"),
        ({"symbol": "ETH-KZT"}, "does not match"),
    ],
)
def test_market_construction_validates(change: dict[str, object], message: str) -> None:
    """A Market built in code is held to the same rules as one loaded from a file."""
    with pytest.raises(ConfigError, match=message):
        Market(**{**_fields(BTC), **change})


def test_market_construction_refuses_a_foreign_fiat_quote() -> None:
    """A Market quoted in USD cannot be built even without a config file."""
    with pytest.raises(ConfigError, match="fiat"):
        Market(**{**_fields(BTC), "symbol": "BTC-USD", "quote": "USD"})


# -- loading a markets file ----------------------------------------------------------------

_ASSETS = {"KZT": 2, "BTC": 8, "USDT": 6}
_BTC_TABLE: dict[str, object] = {
    "symbol": "BTC-KZT",
    "tick": "1",
    "lot": "0.00001",
    "min_qty": "0.00001",
    "min_notional": "1000",
    "band_pct": "10",
    "maker_fee_pct": "0.10",
    "taker_fee_pct": "0.10",
}


def _toml(value: object) -> str:
    if isinstance(value, str):
        return f'"{value}"'
    return str(value).lower() if isinstance(value, bool) else repr(value)


def render(markets: list[dict[str, object]], assets: dict[str, object] | None = None) -> str:
    """A markets file in TOML, values written as given (str quoted, float/int bare)."""
    lines = ["[assets]"]
    lines += [f"{code} = {_toml(scale)}" for code, scale in (assets or _ASSETS).items()]
    for table in markets:
        lines += ["", "[[markets]]"]
        lines += [f"{key} = {_toml(value)}" for key, value in table.items()]
    return "\n".join(lines) + "\n"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "markets.toml"
    path.write_text(text, encoding="utf-8")
    return path


def load_one(tmp_path: Path, **change: object) -> Market:
    """Load a one-market file: the BTC-KZT table with ``change`` applied."""
    table = {key: value for key, value in {**_BTC_TABLE, **change}.items() if value is not None}
    markets = load_markets(write(tmp_path, render([table])))
    (market,) = markets.values()
    return market


def test_a_markets_file_loads_with_decimal_strings(tmp_path: Path) -> None:
    """Decimal strings in whole units become the integer minor units of each asset."""
    market = load_one(tmp_path, status="halted", reference_price="45000000.50")
    assert (market.tick, market.lot, market.min_qty, market.min_notional) == (
        100,
        1_000,
        1_000,
        100_000,
    )
    assert (market.band_bps, market.maker_fee_ppm, market.taker_fee_ppm) == (1_000, 1_000, 1_000)
    assert market.status == HALTED
    assert market.reference_price == 4_500_000_050


def test_the_shipped_file_is_what_load_markets_none_reads() -> None:
    """load_markets() and load_markets(<path of engine/markets.toml>) agree."""
    import engine.markets

    shipped = Path(engine.markets.__file__).with_name("markets.toml")
    assert load_markets(shipped) == DEFAULTS


@pytest.mark.parametrize("fiat", ["USD", "EUR", "RUB", "CNY", "UZS", "KGS"])
def test_a_market_quoted_in_foreign_fiat_is_refused(tmp_path: Path, fiat: str) -> None:
    """Only KZT may be the fiat a market is quoted in, even if the asset is declared."""
    text = render([{**_BTC_TABLE, "symbol": f"BTC-{fiat}"}], {**_ASSETS, fiat: 2})
    with pytest.raises(ConfigError, match=f"quoted in {fiat}, a fiat currency other than KZT"):
        load_markets(write(tmp_path, text))


def test_the_fiat_list_is_iso_codes_and_includes_the_neighbours() -> None:
    """The refusal list covers major and regional fiat codes but no crypto asset."""
    assert {"USD", "EUR", "RUB", "CNY", "GBP", "JPY", "CHF", "TRY", "UZS", "KGS", "AED"} < (
        FIAT_CURRENCIES
    )
    assert not {"BTC", "ETH", "USDT", "USDC"} & FIAT_CURRENCIES


def test_a_crypto_quoted_market_is_allowed(tmp_path: Path) -> None:
    """The fiat rule is about fiat: BTC-USDT, quoted in a stablecoin, loads."""
    table = {**_BTC_TABLE, "symbol": "BTC-USDT", "tick": "0.01", "min_notional": "10"}
    markets = load_markets(write(tmp_path, render([table])))
    assert markets["BTC-USDT"].tick == 10_000  # 0.01 USDT at 6 decimals


@pytest.mark.parametrize("key", ["tick", "lot", "min_notional", "band_pct", "reference_price"])
def test_a_toml_float_in_a_money_field_is_refused(tmp_path: Path, key: str) -> None:
    """tick = 0.01 (a binary float) is a ConfigError that says to write a string."""
    with pytest.raises(ConfigError, match=f"{key} = 1.0 is a TOML float"):
        load_one(tmp_path, **{key: 1.0})


def test_a_toml_integer_in_a_money_field_is_refused(tmp_path: Path) -> None:
    """tick = 1 is ambiguous (KZT or tiyn?) and refused: decimals are strings."""
    with pytest.raises(ConfigError, match='must be a decimal string, such as tick = "1"'):
        load_one(tmp_path, tick=1)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"tick": "0"}, "tick must be positive"),
        ({"lot": "0"}, "lot must be positive"),
        ({"min_qty": "0.000015"}, "min_qty 0.000015 must be a positive multiple of the lot"),
        ({"tick": "0.001"}, "tick '0.001' has more than 2 decimals"),
        ({"tick": "-1"}, "tick '-1' is not a plain decimal"),
        ({"band_pct": "0"}, "band"),
        ({"maker_fee_pct": "101"}, "maker_fee_ppm"),
        ({"status": "closed"}, "status"),
        ({"reference_price": "0"}, "reference price must be positive"),
        ({"symbol": "BTCKZT"}, "is not BASE-QUOTE"),
        ({"symbol": "btc-kzt"}, "is not BASE-QUOTE"),
        ({"symbol": "BTC/KZT"}, "is not BASE-QUOTE"),
        ({"symbol": "DOGE-KZT"}, "unknown asset DOGE"),
        ({"symbol": "BTC-BTC"}, "same asset"),
        ({"tick_size": "1"}, "unknown keys tick_size"),
        ({"taker_fee_pct": None}, "missing taker_fee_pct"),
    ],
)
def test_invalid_market_tables_are_refused(
    tmp_path: Path, change: dict[str, object], message: str
) -> None:
    """Each broken market rule is a ConfigError naming the file, the market and the field."""
    with pytest.raises(ConfigError, match=message) as info:
        load_one(tmp_path, **change)
    assert str(info.value).startswith(str(tmp_path / "markets.toml"))


def test_duplicate_symbols_are_refused(tmp_path: Path) -> None:
    """The same market twice is an error, not a silent override."""
    with pytest.raises(ConfigError, match="BTC-KZT is defined twice"):
        load_markets(write(tmp_path, render([_BTC_TABLE, _BTC_TABLE])))


@pytest.mark.parametrize(
    ("assets", "message"),
    [
        ({"KZT": 3, "BTC": 8}, "KZT has 2 decimals"),
        ({"KZT": 2, "BTC": 8.0}, "decimals must be an integer"),
        ({"KZT": 2, "BTC": 19}, "decimals must be an integer"),
        ({"KZT": 2, "btc": 8}, "capital letters"),
    ],
)
def test_invalid_assets_are_refused(
    tmp_path: Path, assets: dict[str, object], message: str
) -> None:
    """Asset scales must be integers in 0..18 and KZT must have its 2 ISO decimals."""
    with pytest.raises(ConfigError, match=message):
        load_markets(write(tmp_path, render([_BTC_TABLE], assets)))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[assets]\nKZT = 2\n", "no markets"),
        ("[[markets]]\nsymbol = 'BTC-KZT'\n", r"no \[assets\] table"),
        ("[assets]\nKZT = 2\n[venue]\nname = 'x'\n", "unknown top-level keys"),
        ("[assets\n", "not valid TOML"),
    ],
)
def test_malformed_files_are_refused(text: str, message: str) -> None:
    """Broken TOML, a missing section or a stray section is a ConfigError."""
    with pytest.raises(ConfigError, match=message):
        markets_from_toml(text)


def test_a_missing_file_is_a_config_error(tmp_path: Path) -> None:
    """A path that does not exist is reported as a configuration problem with the path."""
    with pytest.raises(ConfigError, match="cannot read the markets file"):
        load_markets(tmp_path / "nope.toml")
