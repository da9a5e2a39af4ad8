"""The compiled exchange: ``engine.exchange.Exchange`` with its per-order path in Cython.

``CompiledExchange`` behaves exactly as the reference ``Exchange`` (the differential tests,
``tests/test_exchange_differential.py``, feed both the same randomized command streams and
require equal reports, balances, audit decisions and state digests) at a fraction of its
cost per order.  It is the reference class with a compiled core in front of it in the
method resolution order::

    class CompiledExchange(ExchangeCore, Exchange)

``ExchangeCore`` (``engine/_core/exchange.pyx``) holds the state the reference holds, under
the same attribute names, in typed fields, and replaces the per-order methods: ``execute``
and the four order commands, the pre-trade checks, holds, settlement and the reports.  The
commands that are rare and not on any order's path (deposits, withdrawals, market, licence
and participant changes, licence expiry) and the queries are the reference's own methods,
inherited: one copy of that code, not two to keep in step.  Why this shape rather than a
second implementation: see docs/exchange.md ("The compiled exchange").

``exchange_type()`` names the class the gateway builds (``CompiledExchange`` unless the
environment variable ``ALATAU_EXCHANGE`` is ``python``), so an operator can run the
reference for a comparison without a code change.
"""

from __future__ import annotations

import os
from typing import Any, ClassVar

from ._core.exchange import ExchangeCore, LedgerCore, OrderRecord, UsageRecord
from .errors import ConfigError
from .exchange import Exchange
from .ledger import Ledger

__all__ = ["EXCHANGE_ENV", "CompiledExchange", "CompiledLedger", "exchange_type"]

EXCHANGE_ENV = "ALATAU_EXCHANGE"
"""The environment variable that picks the exchange the gateway builds: ``compiled`` (the
default) or ``python`` (the reference, ``engine.exchange.Exchange``)."""


class CompiledLedger(LedgerCore, Ledger):
    """``Ledger`` with the moves every order makes compiled (``LedgerCore``); its other
    methods are ``Ledger``'s own, on the same dictionaries."""


class CompiledExchange(ExchangeCore, Exchange):
    """``Exchange``, compiled on the per-order path.  Same constructor, commands, reports,
    queries and snapshots (``engine.state``) as the reference."""

    _ORDER_RECORD: ClassVar[type[Any]] = OrderRecord
    _USAGE_RECORD: ClassVar[type[Any]] = UsageRecord


def exchange_type(name: str | None = None) -> type[Exchange]:
    """The exchange class called ``name`` (``"compiled"`` or ``"python"``); by default the
    one ``ALATAU_EXCHANGE`` names, else ``CompiledExchange``.  ``ConfigError`` otherwise."""
    if name is None:
        name = os.environ.get(EXCHANGE_ENV, "compiled") or "compiled"
    if name == "compiled":
        return CompiledExchange
    if name == "python":
        return Exchange
    raise ConfigError(f"{EXCHANGE_ENV}={name!r}: the exchange is 'compiled' or 'python'")
