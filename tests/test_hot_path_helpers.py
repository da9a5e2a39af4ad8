"""The helpers the exchange's hot path was made faster with give what the slower forms gave.

* ``Market.check_rules`` is ``check_order`` without the band test: ``market_rules`` (step 9
  of the chain) calls it rather than filtering ``PRICE_OUT_OF_BAND`` out of ``check_order``.
* ``_ceil_div`` and the inline ``(n + d - 1) // d`` equal ``-(-n // d)`` for every integer
  numerator (fees can be negative rebates) and positive denominator.
* ``Ledger.take_changed`` hands over what ``drain_changed_balances`` would have copied.
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from engine.exchange import _FEE_SCALE, _ceil_div
from engine.fixedpoint import POW10
from engine.ledger import Ledger
from engine.markets import PPM, load_markets

MARKETS = load_markets()


@given(
    symbol=st.sampled_from(sorted(MARKETS)),
    price=st.none() | st.integers(-10, 10**12),
    qty=st.integers(-10, 10**12),
    reference=st.none() | st.integers(1, 10**12),
)
def test_check_rules_is_check_order_without_the_band(symbol, price, qty, reference) -> None:
    market = MARKETS[symbol].with_reference(reference)
    full = market.check_order(price, qty)
    expected = None if full is not None and full.code == "PRICE_OUT_OF_BAND" else full
    assert market.check_rules(price, qty) == expected


@given(numerator=st.integers(-(10**30), 10**30), denominator=st.integers(1, 10**20))
def test_ceil_div_is_the_exact_ceiling(numerator, denominator) -> None:
    assert _ceil_div(numerator, denominator) == -(-numerator // denominator)


def test_fee_scale_is_the_fee_denominator() -> None:
    assert tuple(power * PPM for power in POW10) == _FEE_SCALE


def test_take_changed_hands_over_the_changed_balances_once() -> None:
    ledger = Ledger()
    ledger.deposit("a", "KZT", 100)
    ledger.deposit("b", "USDT", 5)
    ledger.hold("a", "KZT", 30)
    ledger.take_changed()
    assert ledger.take_changed() == {}
    ledger.hold("a", "KZT", 20)
    ledger.credit("b", "USDT", 1)
    changed = ledger.take_changed()
    assert {key: tuple(entry) for key, entry in changed.items()} == {
        ("a", "KZT"): (100, 50),
        ("b", "USDT"): (6, 0),
    }
    assert list(changed) == [("a", "KZT"), ("b", "USDT")]  # first-change order
    assert ledger.take_changed() == {}
    assert ledger.drain_changed_balances() == []
