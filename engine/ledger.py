"""Balances: per participant and asset, a total and the part of it held for open orders.

``available = total - held``.  Orders hold what they may need when accepted; fills spend
from the holds; cancels and expiry release what is left.  Withdrawals take only available
funds.  All amounts are integers in the asset's minor units.

The venue's own account (``VENUE_ACCOUNT``) collects fees and the rounding remainder of
settlement, so that for every asset the participants' totals plus the venue's total always
equal deposits minus withdrawals.  The ledger records which balances a command changed
(``drain_changed``) so the exchange can report new balances to their owners.
"""

from __future__ import annotations

from .errors import EngineError

VENUE_ACCOUNT = "@venue"


class LedgerError(EngineError):
    """A ledger operation would break an invariant (a bug in the caller: check first)."""


class Ledger:
    def __init__(self) -> None:
        # (account, asset) -> [total, held]
        self._balances: dict[tuple[str, str], list[int]] = {}
        self._net_deposits: dict[str, int] = {}
        # (account, asset) -> its [total, held] entry, for the balances changed since the
        # last drain, in first-change order (a dict keeps insertion order).  Entries are
        # changed in place and never replaced, so the drain reads them as they are then.
        self._changed: dict[tuple[str, str], list[int]] = {}

    # -- reading -----------------------------------------------------------------------

    def total(self, account: str, asset: str) -> int:
        return self._balances.get((account, asset), (0, 0))[0]

    def held(self, account: str, asset: str) -> int:
        return self._balances.get((account, asset), (0, 0))[1]

    def available(self, account: str, asset: str) -> int:
        entry = self._balances.get((account, asset))
        return 0 if entry is None else entry[0] - entry[1]

    def balances(self, account: str) -> dict[str, tuple[int, int, int]]:
        """asset -> (total, available, held) for one account."""
        return {
            asset: (total, total - held, held)
            for (owner, asset), (total, held) in sorted(self._balances.items())
            if owner == account
        }

    def accounts(self) -> list[tuple[str, str, int, int]]:
        """Every (account, asset, total, held), sorted: for state digests and audits."""
        return [(a, s, t, h) for (a, s), (t, h) in sorted(self._balances.items())]

    def net_deposits(self, asset: str) -> int:
        """Deposits minus withdrawals of one asset over the ledger's life."""
        return self._net_deposits.get(asset, 0)

    def assets(self) -> list[str]:
        return sorted({asset for _, asset in self._balances} | set(self._net_deposits))

    def drain_changed(self) -> list[tuple[str, str]]:
        """The (account, asset) pairs changed since the last call, in first-change order."""
        changed = list(self._changed)
        self._changed.clear()
        return changed

    def drain_changed_balances(self) -> list[tuple[str, str, int, int]]:
        """``drain_changed`` with each balance as it is now: (account, asset, total, held).

        A snapshot, safe to keep; the exchange uses ``take_changed``, which copies nothing."""
        changed = self._changed
        if not changed:
            return []
        drained: list[tuple[str, str, int, int]] = []
        for (account, asset), (total, held) in changed.items():  # a loop: no comprehension call
            drained.append((account, asset, total, held))
        changed.clear()
        return drained

    def take_changed(self) -> dict[tuple[str, str], list[int]]:
        """The balances changed since the last call, and a fresh record started: (account,
        asset) -> its live ``[total, held]`` entry, in first-change order.

        What the exchange reports after every command.  It hands over the record itself
        rather than a copy, and the entries are the ledger's own: read them before the
        ledger changes again, and do not change them."""
        changed = self._changed
        if changed:
            self._changed = {}
        return changed

    # -- moving money ------------------------------------------------------------------

    def deposit(self, account: str, asset: str, amount: int) -> None:
        self._require_positive(amount)
        self._entry(account, asset)[0] += amount
        self._net_deposits[asset] = self._net_deposits.get(asset, 0) + amount

    def withdraw(self, account: str, asset: str, amount: int) -> None:
        """Take ``amount`` out of the available part (never from held funds)."""
        self._require_positive(amount)
        if self.available(account, asset) < amount:
            raise LedgerError(f"{account} has {self.available(account, asset)} {asset} available")
        self._entry(account, asset)[0] -= amount
        self._net_deposits[asset] = self._net_deposits.get(asset, 0) - amount

    def hold(self, account: str, asset: str, amount: int) -> None:
        """Move ``amount`` from available to held.  (Every order does this: one lookup.)"""
        if amount == 0:
            return
        key = (account, asset)
        entry = self._balances.get(key)
        if amount < 0 or entry is None or entry[0] - entry[1] < amount:
            raise LedgerError(f"cannot hold {amount} {asset} for {account}")
        self._changed[key] = entry
        entry[1] += amount

    def release(self, account: str, asset: str, amount: int) -> None:
        """Move ``amount`` from held back to available.  (Every closed order: one lookup.)"""
        if amount == 0:
            return
        key = (account, asset)
        entry = self._balances.get(key)
        if amount < 0 or entry is None or entry[1] < amount:
            raise LedgerError(f"cannot release {amount} {asset} for {account}")
        self._changed[key] = entry
        entry[1] -= amount

    def spend_held(self, account: str, asset: str, amount: int) -> None:
        """Pay ``amount`` out of held funds (a fill settling)."""
        if amount == 0:
            return
        key = (account, asset)
        entry = self._balances.get(key)  # _entry, inline: two per fill
        if entry is None:
            entry = self._balances[key] = [0, 0]
        self._changed[key] = entry
        if amount < 0 or entry[1] < amount:
            raise LedgerError(f"cannot spend {amount} held {asset} of {account}")
        entry[0] -= amount
        entry[1] -= amount

    def credit(self, account: str, asset: str, amount: int) -> None:
        """Add ``amount`` (which may be negative for the venue's rounding account) to a total.

        A credit may never leave a total below what is held, nor below zero.
        """
        if amount == 0:
            return
        key = (account, asset)
        entry = self._balances.get(key)  # _entry, inline: four per fill
        if entry is None:
            entry = self._balances[key] = [0, 0]
        self._changed[key] = entry
        if entry[0] + amount < entry[1]:
            raise LedgerError(f"credit of {amount} {asset} would leave {account} negative")
        entry[0] += amount

    # -- helpers -----------------------------------------------------------------------

    def _entry(self, account: str, asset: str) -> list[int]:
        key = (account, asset)
        entry = self._balances.get(key)
        if entry is None:
            entry = self._balances[key] = [0, 0]
        self._changed[key] = entry
        return entry

    @staticmethod
    def _require_positive(amount: int) -> None:
        if amount <= 0:
            raise LedgerError(f"amount must be positive, got {amount}")
