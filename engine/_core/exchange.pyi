# Type stub of the compiled exchange core (engine/_core/exchange.pyx), for type checkers only.
#
# ExchangeCore is only ever used as the first base of engine.compiled.CompiledExchange,
# whose second base is the reference engine.exchange.Exchange: the methods the core
# replaces have the reference's signatures, so the stub names only what a type checker
# needs beyond the reference (the constructor and execute, as the reference's).  The core
# also defines usage (which returns a UsageRecord: Usage's attributes and roll),
# _apply_book_events and _accept (which refuses: the core accepts orders itself).

from collections.abc import Callable, Mapping

from engine.commands import Command
from engine.exchange import Book
from engine.licensing import CheckChain, Registry
from engine.markets import Market
from engine.reports import Report

class OrderRecord:
    """One open order: the fields of engine.exchange._Order (amounts are Python ints)."""

    order_id: int
    participant_id: str
    market: str
    side: int
    order_type: int
    limit: int
    qty: int
    client_order_id: str | None
    hold_asset: str
    hold: int
    counts_retail: bool
    day: int
    month: int
    filled_qty: int
    paid: int
    fee_paid: int
    spent_num: int
    fee_num: int
    usage_notional: int
    def __init__(
        self,
        order_id: int,
        participant_id: str,
        market: str,
        side: int,
        order_type: int,
        limit: int,
        qty: int,
        client_order_id: str | None,
        hold_asset: str,
        hold: int,
        counts_retail: bool,
        day: int,
        month: int,
        filled_qty: int = ...,
        paid: int = ...,
        fee_paid: int = ...,
        spent_num: int = ...,
        fee_num: int = ...,
        usage_notional: int = ...,
    ) -> None: ...
    @property
    def remaining(self) -> int: ...

class UsageRecord:
    """engine.exchange.Usage, compiled."""

    open_orders: int
    day: int
    daily_notional: int
    month: int
    monthly_retail_buys: int
    def __init__(self) -> None: ...
    def roll(self, ts: int) -> None: ...

class LedgerCore:
    """The hot half of engine.ledger.Ledger (see engine.compiled.CompiledLedger)."""

    def __init__(self) -> None: ...

class ExchangeCore:
    """The compiled half of engine.compiled.CompiledExchange."""

    def __init__(
        self,
        markets: Mapping[str, Market],
        registry: Registry,
        chain: CheckChain,
        *,
        book_factory: Callable[[], Book] | None = None,
    ) -> None: ...
    def execute(self, command: Command) -> list[Report]: ...
