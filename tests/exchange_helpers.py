"""Shared helpers for exchange tests: a venue with funded participants and invariant checks."""

from __future__ import annotations

from engine.exchange import Exchange
from engine.ledger import VENUE_ACCOUNT


def check_ledger_invariants(exchange: Exchange) -> None:
    """The invariants every command must keep (raise AssertionError naming the broken one).

    * for every asset, participants' totals plus the venue's equal deposits - withdrawals;
    * no total or held amount is negative and nothing holds more than its total;
    * what the ledger holds per participant and asset is exactly what open orders hold;
    * every book passes its integrity check.
    """
    ledger = exchange.ledger
    sums: dict[str, int] = {}
    for account, asset, total, held in ledger.accounts():
        assert total >= 0, f"{account} {asset} total {total} < 0"
        assert 0 <= held <= total, f"{account} {asset} held {held} of total {total}"
        if account == VENUE_ACCOUNT:
            assert held == 0, "the venue account never holds"
        sums[asset] = sums.get(asset, 0) + total
    for asset in ledger.assets():
        assert sums.get(asset, 0) == ledger.net_deposits(asset), (
            f"{asset}: totals {sums.get(asset, 0)} != deposits - withdrawals "
            f"{ledger.net_deposits(asset)}"
        )
    held_by_orders = exchange.held_by_orders()
    for account, asset, _total, held in ledger.accounts():
        assert held == held_by_orders.get((account, asset), 0), (
            f"{account} {asset}: ledger holds {held}, open orders need "
            f"{held_by_orders.get((account, asset), 0)}"
        )
    for book in exchange.books.values():
        book.check_integrity()
