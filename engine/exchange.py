"""The exchange: one ordered command stream over the books, the ledger and the check chain.

``Exchange.execute(command)`` takes one command (``engine.commands``) and returns the
reports it caused (``engine.reports``).  It reads no clock and does no I/O: the timestamp
comes in with the command, so the same commands in the same order always give the same
reports and state.  The journal and its replay rely on exactly that.

How a new order goes through:

1. Protocol-level checks that need no licensing context (client order id unique among the
   participant's open orders, time in force allowed for the order type).
2. The pre-trade check chain (``engine.licensing``): licences, KYC, market rules, band,
   limits, funds.  The first failure rejects the order; every decision is an ``Audit``.
   The checks whose verdict only an admin command or midnight can change (licences,
   account, permissions, limits the participant does not have) run once per participant
   and shape of order, and the registry's records are looked up once (``_Admission``):
   this is the hot path of every order, and what is skipped could only have passed.
3. Accept: hold the funds the order may need, reserve its usage (open orders, daily
   notional, retail monthly buys), then hand it to the market's book.
4. Settle each trade the book reports, release what a closed order no longer needs, and
   report fills, order states, balances, trades and book changes.

Holds and fees (the rules are the product's, written here and in docs/exchange.md):

* A sell holds its base quantity.  A buy holds ``ceil(P * Q)`` of quote plus the largest
  fee it could pay, ``ceil(P * Q * max(maker, taker) rate)``, where P is its limit price.
  A market buy has no limit, so it is held (and protected) at the top of the price band
  around the reference price; a market sell is protected at the bottom.  A market order
  in a market with no reference price is rejected (``NO_REFERENCE_PRICE``).
* A buy order pays cumulatively: after each fill, what the order has paid in total is its
  exact cost so far rounded up to the minor unit, and the same for its fee.  So a buy never
  pays more than its hold, however its fills split.
* A sell receives each fill's proceeds rounded down, less the fee rounded up (never more
  than the proceeds of that fill).
* Fees and the rounding remainder go to the venue account; for every asset participants'
  totals plus the venue's equal deposits minus withdrawals.
"""

from __future__ import annotations

import datetime
import heapq
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, Literal, Protocol

import msgspec

from .commands import (
    AmendOrder,
    CancelAll,
    CancelOrder,
    Command,
    Deposit,
    PlaceOrder,
    SetLicense,
    SetMarket,
    SetParticipant,
    Withdraw,
)
from .errors import BookIntegrityError, EngineError
from .events import (
    AmendRejected,
    BookLevel,
    CancelRejected,
    Event,
    OrderAccepted,
    OrderAmended,
    OrderCanceled,
    OrderExpired,
    OrderFilled,
    OrderRejected,
    Trade,
)
from .fixedpoint import POW10
from .ledger import VENUE_ACCOUNT, Ledger
from .licensing import (
    ChainPlan,
    CheckChain,
    Decision,
    OrderContext,
    ParticipantUsage,
    Registry,
)
from .markets import HALTED, OPEN, PPM, Market, MarketStatus, Rejection
from .reports import (
    AdminApplied,
    Audit,
    BalanceReport,
    BookChanged,
    CommandRejected,
    FillReport,
    OrderReport,
    OrderStatus,
    Report,
    TradePrinted,
)
from .types import SIDE_NAMES, OrderType, Side, TimeInForce

DAY_MS = 86_400_000
MAX_AMOUNT = 10**15  # units; keeps every book aggregate far inside int64
MAX_ASSET_UNITS = 2**63 - 1
"""The most of one asset the venue may hold, deposits less withdrawals, in minor units.
Fills only move an asset between accounts, so no balance can pass this: balances stay
64-bit integers in snapshots and on every consumer's side (a deposit past it is refused
``BALANCE_LIMIT``)."""
ALMATY_OFFSET_MS = 5 * 3_600_000  # days and months roll over at Almaty midnight (UTC+5)
_EPOCH_ORDINAL = datetime.date(1970, 1, 1).toordinal()

# Enum members read through their class cost ~0.1 us each on CPython 3.11 (the enum
# metaclass's attribute lookup), and the hot path tests them several times per command.
_BUY, _SELL = Side.BUY, Side.SELL
_LIMIT, _MARKET = OrderType.LIMIT, OrderType.MARKET
_GTC = TimeInForce.GTC
_MARKET_STATUSES: dict[str, MarketStatus] = {"open": OPEN, "halted": HALTED}

_replace = msgspec.structs.replace

_FEE_SCALE: tuple[int, ...] = tuple(power * PPM for power in POW10)
"""``_FEE_SCALE[base_scale] == 10**base_scale * PPM``: what a fee's numerator (price x qty x
rate) is divided by, precomputed because the product is a multi-digit int."""

_OPEN_STATUSES = frozenset(("new", "partially_filled"))
"""The statuses of an order still on the book: its report shows what remains open."""

_BAND_COPIES = 64
"""Copies of a market with a last trade price as the band's reference kept per market."""


class Usage:
    """A participant's reserved capacity: open orders, today's notional, this month's
    retail purchases (tiyn).  Reserved on accept, converted on fills, released on close."""

    __slots__ = ("daily_notional", "day", "month", "monthly_retail_buys", "open_orders")

    def __init__(self) -> None:
        self.open_orders = 0
        self.day = -1
        self.daily_notional = 0
        self.month = -1
        self.monthly_retail_buys = 0

    def roll(self, ts: int) -> None:
        """Start a new day (and month) of counters if ``ts`` (ms) is in a later one."""
        day = (ts + ALMATY_OFFSET_MS) // DAY_MS  # day_of(ts), inline: every order rolls
        if day == self.day:
            return  # the month can only change when the day does
        self.day, self.daily_notional = day, 0
        month = month_of(ts)
        if month != self.month:
            self.month, self.monthly_retail_buys = month, 0


class _Order(msgspec.Struct, gc=False):
    """The exchange's record of one open order (the book knows only ids and numbers).

    A mutable msgspec Struct: one is made per accepted order, and its C constructor takes
    the fields positionally for a fraction of what a Python ``__init__`` assigning them
    costs.  ``gc=False``: it holds only strings and integers, so it can be in no cycle.
    The counters start at 0 for a new order; ``engine.state.rebuild`` names every field.
    """

    order_id: int  # engine-assigned
    participant_id: str
    market: str
    side: int
    order_type: int
    limit: int  # the worst price it may trade at, quote minor units
    qty: int  # base minor units, filled part included
    client_order_id: str | None
    hold_asset: str
    hold: int  # minor units of hold_asset the ledger holds for it
    counts_retail: bool  # a retail buy: counts against the monthly cap
    day: int  # the Almaty day and month its usage was reserved in
    month: int
    filled_qty: int = 0  # base minor units
    paid: int = 0  # quote minor units paid so far (buys), rounded up cumulatively
    fee_paid: int = 0  # quote minor units of fees paid so far (buys)
    spent_num: int = 0  # exact sum of price * qty over its fills
    fee_num: int = 0  # exact sum of price * qty * rate over its fills (buys)
    usage_notional: int = 0  # tiyn it counts against the daily notional

    @property
    def remaining(self) -> int:
        return self.qty - self.filled_qty


class _Admission:
    """The registry's view of one participant, for one registry, chain and Almaty day.

    Orders are checked against records that change only with admin commands (the registry
    is replaced then) and licence dates that change only at midnight, so the exchange looks
    them up once per participant and keeps:

    * ``blank``: the participant's part of every ``OrderContext`` (time, profile, registry,
      participant, licences), the order's fields empty.  A new order's context is a copy
      with the 14 order fields replaced: CPython passes a call of 16 or more keyword
      arguments through a dict, and the full 20-argument constructor cost ~1 us more.
    * ``plans``: per shape of order (market, order type, time in force), the checks still
      to run once the static ones have passed (``CheckChain.plan``).
    """

    __slots__ = ("blank", "plans")

    def __init__(self, blank: OrderContext) -> None:
        self.blank = blank
        self.plans: dict[tuple[str, int, int], ChainPlan] = {}


def day_of(ts: int) -> int:
    """The Almaty calendar day number of a timestamp (ms)."""
    return (ts + ALMATY_OFFSET_MS) // DAY_MS


def month_of(ts: int) -> int:
    """The Almaty calendar month number (year * 12 + month - 1) of a timestamp (ms)."""
    date = datetime.date.fromordinal(_EPOCH_ORDINAL + day_of(ts))
    return date.year * 12 + date.month - 1


def _ceil_div(numerator: int, denominator: int) -> int:
    """``ceil(numerator / denominator)`` exactly, for a positive ``denominator``.

    Written ``(n + d - 1) // d`` rather than ``-(-n // d)``: the numerators here are past
    2**30 (several CPython digits), where floor-dividing a negative number costs an extra
    correction step and two more allocations, ~80 ns on a fee's numbers.  The hot paths
    write the same expression inline."""
    return (numerator + denominator - 1) // denominator


def _buy_hold(
    market: Market, spent_num: int, fee_num: int, paid: int, fee_paid: int, price: int, qty: int
) -> int:
    """What a buy must still hold (quote minor units) to pay for ``qty`` more at ``price``
    at the highest fee rate, given what it has traded (``spent_num``, ``fee_num``: exact
    numerators) and paid so far.  Buys pay cumulatively rounded up, so this is exact."""
    scale = POW10[market.base_scale]
    maker, taker = market.maker_fee_ppm, market.taker_fee_ppm
    rate = maker if maker > taker else taker
    cost = _ceil_div(spent_num + price * qty, scale) - paid
    fee = _ceil_div(fee_num + price * qty * rate, _FEE_SCALE[market.base_scale]) - fee_paid
    return cost + fee


def _new_order_amounts(
    market: Market, side: int, limit: int | None, qty: int
) -> tuple[int, str, int]:
    """(notional, asset, hold) of a new order at its ``limit`` (quote minor units; None when
    a market order has no reference) for ``qty`` (base minor units).

    The notional is ``limit * qty`` in tiyn rounded up (0 without a positive limit).  A sell
    holds its base quantity; a buy the quote cost at its limit rounded up plus the largest
    fee it could pay (``_buy_hold`` of an order that has traded nothing), both from the one
    product ``limit * qty``: every order computes these.
    """
    price = limit or 0
    gross = price * qty  # quote minor units x 10**base_scale
    base_scale = market.base_scale
    scale = POW10[base_scale]
    cost = (gross + scale - 1) // scale  # _ceil_div, inline (every order)
    notional = cost if limit is not None and limit > 0 else 0
    if side == _SELL:
        return notional, market.base, qty
    maker, taker = market.maker_fee_ppm, market.taker_fee_ppm
    fee_scale = _FEE_SCALE[base_scale]
    fee = (gross * (maker if maker > taker else taker) + fee_scale - 1) // fee_scale
    return notional, market.quote, cost + fee


class Book(Protocol):
    """What the exchange asks of a market's book: ``engine.OrderBook`` (the compiled core)
    and ``engine.ReferenceBook`` (the oracle) both are one."""

    def place(
        self,
        order_id: int,
        owner: int,
        side: int,
        price: int,
        qty: int,
        order_type: int = ...,
        tif: int = ...,
        post_only: bool = ...,
        stp: int = ...,
    ) -> list[Event]: ...
    def cancel(self, order_id: int) -> list[Event]: ...
    def amend(self, order_id: int, price: int, qty: int) -> list[Event]: ...
    def cancel_all(self, owner: int, side: int | None = None) -> list[Event]: ...
    @property
    def seq(self) -> int: ...
    @property
    def last_trade_id(self) -> int: ...
    def __len__(self) -> int: ...
    def best_bid(self) -> tuple[int, int] | None: ...
    def best_ask(self) -> tuple[int, int] | None: ...
    def depth(self, side: int, levels: int | None = None) -> list[tuple[int, int]]: ...
    def export_orders(self) -> list[tuple[int, int, int, int, int, bool, int]]: ...
    def restore(
        self, orders: list[tuple[int, int, int, int, int, bool, int]], seq: int, last_trade_id: int
    ) -> None: ...
    def check_integrity(self) -> None: ...


class Exchange:
    """The venue's state machine.  Feed it commands in sequence order; read its reports."""

    # What a snapshot's open orders and usage counters are rebuilt as (``engine.state``):
    # the compiled exchange (``engine.compiled``) keeps its own, typed, records.
    _ORDER_RECORD: ClassVar[type[Any]] = _Order
    _USAGE_RECORD: ClassVar[type[Any]] = Usage

    def __init__(
        self,
        markets: Mapping[str, Market],
        registry: Registry,
        chain: CheckChain,
        *,
        book_factory: Callable[[], Book] | None = None,
    ) -> None:
        if book_factory is None:
            from . import OrderBook

            book_factory = OrderBook
        self.markets: dict[str, Market] = dict(markets)
        self.books: dict[str, Book] = {symbol: book_factory() for symbol in self.markets}
        self.ledger = Ledger()
        self.registry = registry
        self.chain = chain
        self.last_price: dict[str, int] = {}
        self._band_markets: dict[str, tuple[Market, dict[int, Market]]] = {}
        self._orders: dict[int, _Order] = {}
        self._by_client_id: dict[tuple[str, str], int] = {}
        self._owner_numbers: dict[str, int] = {}
        self._usage: dict[str, Usage] = {}
        self._next_order_id = 1
        self._reports: list[Report] = []
        self._ts = 0
        # The registry's view per participant (see _Admission), for the registry, the day
        # and the chain they were made for: a change of any of them starts afresh.
        self._admissions: dict[str, _Admission] = {}
        self._admitted_for: tuple[Registry, int, CheckChain] | None = None
        # The next moment a licence runs out: commands at or after it cancel orders first.
        self._license_deadline = self._next_license_deadline()

    # -- the command stream --------------------------------------------------------------

    def execute(self, command: Command) -> list[Report]:
        """Apply one command and return its reports (never raises for a client's mistake)."""
        reports: list[Report] = []
        self._reports = reports
        ts = self._ts = command.ts
        handler = self._HANDLERS.get(type(command))
        if handler is None:
            raise EngineError(f"not a command: {type(command).__name__}")
        if ts >= self._license_deadline:
            self._cancel_unlicensed()
        handler(self, command)
        # The balances the command changed, one BalanceReport each to their owners (the
        # venue's own account is not reported).  Nearly every command changes one or more.
        changed = self.ledger.take_changed()
        if changed:
            append = reports.append
            for (account, asset), (total, held) in changed.items():
                if account != VENUE_ACCOUNT:
                    append(
                        BalanceReport(
                            participant_id=account,
                            asset=asset,
                            total=total,
                            available=total - held,
                            held=held,
                        )
                    )
        return reports

    # -- queries -------------------------------------------------------------------------

    def open_orders(self, participant_id: str, market: str | None = None) -> list[OrderReport]:
        return [
            self._order_report(o, self._status(o))
            for o in self._orders.values()
            if o.participant_id == participant_id and (market is None or o.market == market)
        ]

    def open_orders_page(
        self, participant_id: str, market: str | None, after_order_id: int, limit: int
    ) -> tuple[list[OrderReport], int | None]:
        """A page of ``open_orders`` in order id order: at most ``limit`` with an id above
        ``after_order_id``, and the cursor of the next page (this page's last id) or None.
        The ids are picked with a bounded heap, and only the page's orders become reports:
        O(open orders) comparisons, O(limit) memory, whatever the participant holds."""
        orders = self._orders
        ids = heapq.nsmallest(
            limit + 1,
            (
                order_id
                for order_id, order in orders.items()
                if order_id > after_order_id
                and order.participant_id == participant_id
                and (market is None or order.market == market)
            ),
        )
        page = ids[:limit]
        reports = [self._order_report(orders[i], self._status(orders[i])) for i in page]
        return reports, (page[-1] if len(ids) > limit else None)

    def open_order(
        self, participant_id: str, order_id: int | None, client_order_id: str | None
    ) -> OrderReport | None:
        """One of the participant's open orders, by its id or its client order id, as it
        stands; None if it has none open by that id (closed, another's, or never placed)."""
        if order_id is None and client_order_id is not None:
            order_id = self._by_client_id.get((participant_id, client_order_id))
        order = self._orders.get(order_id) if order_id is not None else None
        if order is None or order.participant_id != participant_id:
            return None
        return self._order_report(order, self._status(order))

    def order_id_for(self, participant_id: str, client_order_id: str) -> int | None:
        return self._by_client_id.get((participant_id, client_order_id))

    def usage(self, participant_id: str) -> Usage:
        usage = self._usage.get(participant_id)
        if usage is None:
            usage = self._usage[participant_id] = Usage()
        return usage

    def reference_price(self, symbol: str) -> int | None:
        """The band's reference: the last trade, else the operator's reference price."""
        return self.last_price.get(symbol) or self.markets[symbol].reference_price

    def check_integrity(self) -> None:
        """Raise ``BookIntegrityError`` if an invariant of the venue's state is broken.  O(n).

        * for every asset, participants' totals plus the venue's equal deposits - withdrawals;
        * no total or held amount is negative, nothing holds more than its total;
        * what the ledger holds per participant and asset is exactly what open orders hold;
        * open-order counters match the open orders; every book passes its own check.
        """
        ledger = self.ledger
        sums: dict[str, int] = {}
        for account, asset, total, held in ledger.accounts():
            if total < 0 or held < 0 or held > total:
                raise BookIntegrityError(f"{account} {asset}: total {total}, held {held}")
            sums[asset] = sums.get(asset, 0) + total
        for asset in ledger.assets():
            if sums.get(asset, 0) != ledger.net_deposits(asset):
                raise BookIntegrityError(
                    f"{asset}: balances add up to {sums.get(asset, 0)}, deposits less "
                    f"withdrawals are {ledger.net_deposits(asset)}"
                )
        held_by_orders = self.held_by_orders()
        for account, asset, _total, held in ledger.accounts():
            if held != held_by_orders.get((account, asset), 0):
                raise BookIntegrityError(
                    f"{account} {asset}: ledger holds {held}, open orders hold "
                    f"{held_by_orders.get((account, asset), 0)}"
                )
        open_counts: dict[str, int] = {}
        for order in self._orders.values():
            open_counts[order.participant_id] = open_counts.get(order.participant_id, 0) + 1
        for participant_id, usage in self._usage.items():
            if usage.open_orders != open_counts.get(participant_id, 0):
                raise BookIntegrityError(f"{participant_id}: open-order counter is off")
        for symbol, book in self.books.items():
            book.check_integrity()
            if len(book) != sum(1 for o in self._orders.values() if o.market == symbol):
                raise BookIntegrityError(f"{symbol}: the book and the exchange disagree")

    def held_by_orders(self) -> dict[tuple[str, str], int]:
        """(participant, asset) -> what open orders hold: must equal the ledger's held."""
        out: dict[tuple[str, str], int] = {}
        for o in self._orders.values():
            key = (o.participant_id, o.hold_asset)
            out[key] = out.get(key, 0) + o.hold
        return out

    # -- orders --------------------------------------------------------------------------

    def _place(self, cmd: PlaceOrder) -> None:
        market = self.markets.get(cmd.market)
        code, message, check = self._precheck(cmd, market)
        intent = None
        limit = None
        if code is None:
            day = (cmd.ts + ALMATY_OFFSET_MS) // DAY_MS  # day_of, inline
            admission = self._admission(cmd.participant_id, day)
            if market is not None:
                limit = cmd.price if cmd.order_type == _LIMIT else self._limit_price(cmd, market)
            intent = self._intent(cmd, market, limit, admission, day)
            decision = self._evaluate(intent, admission)
            check = decision.check
            if not decision.accepted:
                code, message = decision.code, decision.message
            elif (
                cmd.post_only
                and market is not None
                and self._would_cross(self.books[cmd.market], cmd.side, limit or 0)
            ):
                code, check = "POST_ONLY_WOULD_TRADE", "post_only"
                message = "the post-only order would trade on entry"
        self._reports.append(
            Audit(
                ts=cmd.ts,
                participant_id=cmd.participant_id,
                market=cmd.market,
                order_id=None if code else self._next_order_id,
                client_order_id=cmd.client_order_id,
                action="place",
                decision="reject" if code else "accept",
                check=check,
                code=code,
            )
        )
        if code is not None or intent is None or market is None:
            self._reject_place(cmd, code or "INVALID_PARAMS", message)
            return
        self._accept(cmd, market, limit or 0, intent)

    def _precheck(self, cmd: PlaceOrder, market: Market | None) -> tuple[str | None, str, str]:
        """Checks of the request's own shape, before the licensing chain."""
        client_order_id = cmd.client_order_id
        if (
            client_order_id is not None
            and (cmd.participant_id, client_order_id) in self._by_client_id
        ):
            return (
                "DUPLICATE_CLIENT_ORDER_ID",
                f"client_order_id {client_order_id!r} is already used by an open order",
                "client_order_id",
            )
        order_type, price = cmd.order_type, cmd.price
        if order_type == _MARKET and cmd.tif == _GTC:
            return "INVALID_TIF", "a market order cannot rest: use IOC or FOK", "order_type"
        if cmd.post_only and (order_type == _MARKET or cmd.tif != _GTC):
            return "INVALID_TIF", "post_only needs a limit GTC order", "order_type"
        if order_type == _LIMIT and price is None:
            return "INVALID_PRICE", "a limit order needs a price", "order_type"
        if cmd.qty > MAX_AMOUNT or (price or 0) > MAX_AMOUNT:
            return "ORDER_SIZE_LIMIT", f"price and qty must be at most {MAX_AMOUNT} units", "size"
        if order_type == _MARKET:
            if price is not None:
                return "INVALID_PRICE", "a market order takes no price", "order_type"
            if market is not None and self.reference_price(cmd.market) is None:
                return (
                    "NO_REFERENCE_PRICE",
                    f"{cmd.market} has no reference price yet: market orders are refused",
                    "price_protection",
                )
        return None, "", "precheck"

    def _intent(
        self,
        cmd: PlaceOrder,
        market: Market | None,
        limit: int | None,
        admission: _Admission,
        day: int,
    ) -> OrderContext:
        """The check chain's view of a new order, with the numbers the exchange computes.

        ``limit`` is ``_limit_price`` of the order (None without a market or a reference);
        ``day`` the Almaty day of ``cmd.ts`` (``day_of``).
        """
        participant_id = cmd.participant_id
        usage = self._usage.get(participant_id)
        if usage is None:
            usage = self.usage(participant_id)
        if usage.day != day:
            usage.roll(cmd.ts)
        notional = 0
        funds_asset = ""
        required = 0
        available = 0
        if market is not None:
            market = self._market_for_checks(cmd.market)
            notional, funds_asset, required = _new_order_amounts(market, cmd.side, limit, cmd.qty)
            available = self.ledger.available(participant_id, funds_asset)
        return _replace(
            admission.blank,
            ts=cmd.ts,
            market_symbol=cmd.market,
            market=market,
            side=cmd.side,
            order_type=cmd.order_type,
            tif=cmd.tif,
            post_only=cmd.post_only,
            price=cmd.price,
            qty=cmd.qty,
            notional=notional,
            usage=ParticipantUsage(
                open_orders=usage.open_orders,
                daily_notional=usage.daily_notional,
                monthly_retail_buys=usage.monthly_retail_buys,
            ),
            funds_asset=funds_asset,
            funds_required=required,
            funds_available=available,
        )

    @staticmethod
    def _context(admission: _Admission, ts: int, **order: Any) -> OrderContext:
        """An ``OrderContext``: the participant's ``blank`` one with the order's fields."""
        return _replace(admission.blank, ts=ts, **order)

    def _admission(self, participant_id: str, day: int) -> _Admission:
        """The registry's view of ``participant_id`` on the Almaty ``day`` (``day_of``). O(1).

        Kept per participant until the registry, the day or the chain changes (the registry
        is replaced, never changed in place, so an identity test sees every admin change).
        An unknown participant's view is not kept: any number of ids may be sent.
        """
        registry, chain = self.registry, self.chain
        admitted = self._admitted_for
        if (
            admitted is None
            or admitted[0] is not registry
            or admitted[1] != day
            or admitted[2] is not chain
        ):
            self._admissions.clear()
            self._admitted_for = (registry, day, chain)
        admission = self._admissions.get(participant_id)
        if admission is None:
            participant = registry.participant(participant_id)
            blank = OrderContext(
                ts=0,
                profile=chain.profile,
                registry=registry,
                participant_id=participant_id,
                participant=participant,
                license=registry.license_for(participant),
                venue_license=registry.venue_license,
                market_symbol="",
                market=None,
                side=_BUY,
                order_type=_LIMIT,
                tif=_GTC,
                price=None,
                qty=0,
                notional=0,
                funds_asset="",
                funds_required=0,
                funds_available=0,
            )
            admission = _Admission(blank)
            if participant is not None:
                self._admissions[participant_id] = admission
        return admission

    def _evaluate(self, ctx: OrderContext, admission: _Admission) -> Decision:
        """The chain's decision on ``ctx``.  The checks whose verdict is static for the
        participant (licences, account, permissions, limits it does not have) run once per
        shape of order it sends in a day under one registry (``CheckChain.plan``)."""
        shape = (ctx.market_symbol, ctx.order_type, ctx.tif)
        plan = admission.plans.get(shape)
        if plan is None:
            plan = self.chain.plan(ctx)
            if ctx.market is not None:  # known markets only: a client may send any symbol
                admission.plans[shape] = plan
        return self.chain.evaluate(ctx, plan=plan)

    def _market_for_checks(self, symbol: str) -> Market:
        """The market with the band's live reference (the last trade, once there is one)."""
        market = self.markets[symbol]
        last = self.last_price.get(symbol)
        if last is None or last == market.reference_price:
            return market
        # A validated copy per last price, not per order, kept while the market's own spec
        # is unchanged: trades move the last price back and forth among a few ticks.
        cached = self._band_markets.get(symbol)
        if cached is None or cached[0] is not market:
            cached = self._band_markets[symbol] = (market, {})
        copies = cached[1]
        band_market = copies.get(last)
        if band_market is None:
            if len(copies) >= _BAND_COPIES:
                copies.clear()
            band_market = copies[last] = market.with_reference(last)
        return band_market

    def _limit_price(self, cmd: PlaceOrder, market: Market) -> int | None:
        """The worst price the order may trade at: its limit, or for a market order the
        edge of the band around the reference (its price protection)."""
        if cmd.order_type == _LIMIT:
            return cmd.price
        reference = self.reference_price(cmd.market)
        if reference is None:
            return None
        span = reference * market.band_bps // 10_000
        if cmd.side == _BUY:
            return reference + span
        return max(reference - span, market.tick)

    def _accept(self, cmd: PlaceOrder, market: Market, limit: int, intent: OrderContext) -> None:
        """Hold the funds, record the order and its usage, and hand it to the book.

        ``limit``: the worst price it may trade at (``_limit_price``), quote minor units."""
        participant_id = cmd.participant_id
        client_order_id = cmd.client_order_id
        side = cmd.side
        order_id = self._next_order_id
        self._next_order_id = order_id + 1
        usage = self._usage[participant_id]  # _intent made it and rolled it to today
        participant = intent.participant  # the registry's record as of this command
        counts_retail = (
            side == _BUY and participant is not None and participant.category == "RETAIL"
        )
        notional = intent.notional
        order = _Order(
            order_id,
            participant_id,
            cmd.market,
            side,
            cmd.order_type,
            limit,
            cmd.qty,
            client_order_id,
            intent.funds_asset,
            intent.funds_required,
            counts_retail,
            usage.day,
            usage.month,
            usage_notional=notional,
        )
        self.ledger.hold(participant_id, order.hold_asset, order.hold)
        self._orders[order_id] = order
        if client_order_id is not None:
            self._by_client_id[(participant_id, client_order_id)] = order_id
        # Its usage, reserved in today's and this month's counters (_count_notional of a new
        # order, inline: its day and month are the counters').
        usage.open_orders += 1
        usage.daily_notional += notional
        if counts_retail:
            usage.monthly_retail_buys += notional
        owner = self._owner_numbers.get(participant_id)
        if owner is None:
            owner = self._owner_number(participant_id)
        # The enums go in as they are: an IntEnum is an int, which the book's int64_t
        # parameters take without an int() call each.
        events = self.books[cmd.market].place(
            order_id, owner, side, limit, cmd.qty, cmd.order_type, cmd.tif, cmd.post_only, cmd.stp
        )
        self._apply_book_events(market, events)

    def _cancel(self, cmd: CancelOrder) -> None:
        # _find_order's common case first: the id of one of the sender's open orders.
        order_id = cmd.order_id
        order = self._orders.get(order_id) if order_id is not None else None
        if (
            order is None
            or order.participant_id != cmd.participant_id
            or order.market != cmd.market
        ):
            order = self._find_order(cmd, "cancel")
            if order is None:
                return
        symbol = order.market
        events = self.books[symbol].cancel(order.order_id)
        self._apply_book_events(self.markets[symbol], events, cmd.reason)

    def _amend(self, cmd: AmendOrder) -> None:
        order = self._find_order(cmd, "amend")
        if order is None:
            return
        market = self._market_for_checks(order.market)
        price = order.limit if cmd.price is None else cmd.price
        qty = order.qty if cmd.qty is None else cmd.qty
        if order.order_type != OrderType.LIMIT:
            return self._reject_command(cmd, "amend", "UNKNOWN_ORDER", "only limit orders rest")
        rejection = market.check_order(price, qty)
        if rejection is None and qty <= order.filled_qty:
            rejection = Rejection(
                "INVALID_QTY",
                f"qty {market.format_qty(qty)} is not above the filled "
                f"{market.format_qty(order.filled_qty)}: cancel the order instead",
            )
        if rejection is not None:
            return self._reject_command(cmd, "amend", rejection.code, rejection.message, order)
        remaining = qty - order.filled_qty
        # What the order must hold at its new price and quantity, given what it has paid,
        # and what it will count against the participant's notional limits.
        new_hold = self._hold_needed(market, order, price, remaining)
        open_notional = _ceil_div(price * remaining, POW10[market.base_scale])
        new_usage = self._filled_notional(market, order) + open_notional
        if new_hold > order.hold or new_usage > order.usage_notional or qty > order.qty:
            rejection = self._check_amend(cmd, market, order, price, remaining, new_hold)
            if rejection is not None:
                return self._reject_command(cmd, "amend", rejection.code, rejection.message, order)
        events = self.books[order.market].amend(order.order_id, price, remaining)
        if events and isinstance(events[0], AmendRejected):
            return self._reject_command(
                cmd, "amend", events[0].code, "the book refused the amend", order
            )
        extra = new_hold - order.hold
        if extra > 0:
            self.ledger.hold(order.participant_id, order.hold_asset, extra)
        else:
            self.ledger.release(order.participant_id, order.hold_asset, -extra)
        order.hold = new_hold
        order.limit = price
        order.qty = qty
        self._count_notional(order, new_usage)
        self._apply_book_events(self.markets[order.market], events)

    def _check_amend(
        self,
        cmd: AmendOrder,
        market: Market,
        order: _Order,
        price: int,
        remaining: int,
        new_hold: int,
    ) -> Rejection | None:
        """Run the check chain on an amend that raises exposure, as if the open part were a
        new order: the order's own reservations are left out of usage and funds."""
        usage = self.usage(order.participant_id)
        usage.roll(cmd.ts)
        own_open = order.usage_notional - self._filled_notional(market, order)
        admission = self._admission(order.participant_id, day_of(cmd.ts))
        context = self._context(
            admission,
            cmd.ts,
            market_symbol=order.market,
            market=market,
            side=Side(order.side),
            order_type=OrderType.LIMIT,
            tif=TimeInForce.GTC,
            price=price,
            qty=remaining,
            notional=_ceil_div(price * remaining, POW10[market.base_scale]),
            usage=ParticipantUsage(
                open_orders=usage.open_orders,
                daily_notional=usage.daily_notional - (own_open if usage.day == order.day else 0),
                monthly_retail_buys=usage.monthly_retail_buys
                - (own_open if order.counts_retail and usage.month == order.month else 0),
            ),
            funds_asset=order.hold_asset,
            funds_required=new_hold,
            funds_available=self.ledger.available(order.participant_id, order.hold_asset)
            + order.hold,
            amend=True,
        )
        decision = self._evaluate(context, admission)
        self._reports.append(
            Audit(
                ts=cmd.ts,
                participant_id=order.participant_id,
                market=order.market,
                order_id=order.order_id,
                client_order_id=order.client_order_id,
                action="amend",
                decision="accept" if decision.accepted else "reject",
                check=decision.check,
                code=decision.code,
            )
        )
        return decision.rejection

    def _hold_needed(self, market: Market, order: _Order, price: int, remaining: int) -> int:
        """What an order must still hold to pay for ``remaining`` at ``price`` (tiyn)."""
        if order.side == Side.SELL:
            return remaining
        return _buy_hold(
            market, order.spent_num, order.fee_num, order.paid, order.fee_paid, price, remaining
        )

    def _cancel_all(self, cmd: CancelAll) -> None:
        owner = self._owner_numbers.get(cmd.participant_id)
        if owner is None:
            return
        markets = [cmd.market] if cmd.market is not None else list(self.books)
        for symbol in markets:
            if symbol not in self.books:
                self._reject_command(cmd, "cancel_all", "UNKNOWN_MARKET", f"no market {symbol!r}")
                return
        for symbol in markets:
            events = self.books[symbol].cancel_all(
                owner, None if cmd.side is None else int(cmd.side)
            )
            self._apply_book_events(self.markets[symbol], events, cancel_reason=cmd.reason)

    def _find_order(self, cmd: CancelOrder | AmendOrder, action: str) -> _Order | None:
        order_id = cmd.order_id
        if order_id is None and cmd.client_order_id is not None:
            order_id = self._by_client_id.get((cmd.participant_id, cmd.client_order_id))
        order = self._orders.get(order_id) if order_id is not None else None
        if (
            order is None
            or order.participant_id != cmd.participant_id
            or order.market != cmd.market
        ):
            wanted = cmd.order_id if cmd.order_id is not None else repr(cmd.client_order_id)
            self._reject_command(
                cmd, action, "UNKNOWN_ORDER", f"no open order {wanted} of yours in {cmd.market}"
            )
            return None
        return order

    # -- settlement ----------------------------------------------------------------------

    def _apply_book_events(
        self, market: Market, events: list[Any], cancel_reason: str = "cancel_all"
    ) -> None:
        # events: list[Any] rather than list[Event] because the loop dispatches on
        # ``kind = type(event)`` (one type() call per event on the hot path), a test mypy
        # does not narrow through.
        bids: list[tuple[int, int]] = []
        asks: list[tuple[int, int]] = []
        seq = 0
        orders = self._orders
        append = self._reports.append
        # The most frequent kinds first: a resting order (accepted, level) and a cancel.
        for event in events:
            kind = type(event)
            if kind is BookLevel:
                (bids if event.side == "buy" else asks).append((event.price, event.qty))
                seq = event.seq
            elif kind is OrderAccepted:
                append(self._order_report(orders[event.order_id], "new"))
            elif kind is OrderCanceled:
                reason = event.reason if event.reason == "self_trade" else cancel_reason
                self._close(orders[event.order_id], market, "canceled", reason)
            elif kind is Trade:
                self._settle(market, event)
            elif kind is OrderFilled:
                # Settled with its Trade (which wrote the fill report); close it if done.
                if event.remaining_qty == 0:
                    self._close(orders[event.order_id], market, "filled", None)
            elif kind is OrderExpired:
                self._close(orders[event.order_id], market, "expired", None)
            elif kind is OrderAmended:
                order = orders[event.order_id]
                append(self._order_report(order, self._status(order)))
            elif kind in (OrderRejected, CancelRejected, AmendRejected):
                raise BookIntegrityError(f"the book refused a checked command: {event}")
        if seq:
            append(BookChanged(market=market.symbol, seq=seq, bids=bids, asks=asks))

    def _settle(self, market: Market, trade: Trade) -> None:
        maker = self._orders[trade.maker_order_id]
        taker = self._orders[trade.taker_order_id]
        symbol = market.symbol
        price, qty, trade_id = trade.price, trade.qty, trade.trade_id
        ts = self._ts
        self.last_price[symbol] = price
        append = self._reports.append
        append(
            TradePrinted(
                ts=ts,
                market=symbol,
                trade_id=trade_id,
                price=price,
                qty=qty,
                taker_side=trade.taker_side,
            )
        )
        scale = POW10[market.base_scale]
        legs: tuple[tuple[_Order, Literal["maker", "taker"], int], ...] = (
            (maker, "maker", market.maker_fee_ppm),
            (taker, "taker", market.taker_fee_ppm),
        )
        for order, liquidity, rate in legs:
            if order.side == _BUY:
                fee = self._settle_buy(market, order, price, qty, rate)
                filled_notional = order.paid  # _filled_notional, inline
            else:
                fee = self._settle_sell(market, order, price, qty, rate)
                filled_notional = (order.spent_num + scale - 1) // scale
            filled_qty = order.filled_qty = order.filled_qty + qty
            remaining = order.qty - filled_qty
            # What it counts against the day's notional: what it traded, at its fill prices,
            # plus its open part at its limit (both rounded up).
            self._count_notional(
                order, filled_notional + (order.limit * remaining + scale - 1) // scale
            )
            append(
                FillReport(
                    ts=ts,
                    participant_id=order.participant_id,
                    market=symbol,
                    order_id=order.order_id,
                    client_order_id=order.client_order_id,
                    side=SIDE_NAMES[order.side],
                    trade_id=trade_id,
                    fill_price=price,
                    fill_qty=qty,
                    fee=fee,
                    fee_asset=market.quote,
                    liquidity=liquidity,
                    filled_qty=filled_qty,
                    remaining_qty=remaining,
                    status="partially_filled" if remaining else "filled",
                )
            )

    def _settle_buy(self, market: Market, order: _Order, price: int, qty: int, rate: int) -> int:
        """The buyer pays from its hold, cumulatively rounded up; gets the base."""
        scale = POW10[market.base_scale]
        gross = price * qty
        spent_num = order.spent_num = order.spent_num + gross
        fee_num = order.fee_num = order.fee_num + gross * rate
        paid = _ceil_div(spent_num, scale)
        fee_paid = _ceil_div(fee_num, _FEE_SCALE[market.base_scale])
        cost, fee = paid - order.paid, fee_paid - order.fee_paid
        order.paid, order.fee_paid = paid, fee_paid
        ledger = self.ledger
        ledger.spend_held(order.participant_id, market.quote, cost + fee)
        order.hold -= cost + fee
        ledger.credit(order.participant_id, market.base, qty)
        # The seller is credited the floor of the exact proceeds; the venue keeps the rest.
        ledger.credit(VENUE_ACCOUNT, market.quote, cost - gross // scale + fee)
        return fee

    def _settle_sell(self, market: Market, order: _Order, price: int, qty: int, rate: int) -> int:
        """The seller delivers held base; gets proceeds rounded down less its fee."""
        scale = POW10[market.base_scale]
        gross = price * qty
        order.spent_num += gross
        proceeds = gross // scale
        fee = min(_ceil_div(gross * rate, _FEE_SCALE[market.base_scale]), proceeds)
        ledger = self.ledger
        ledger.spend_held(order.participant_id, market.base, qty)
        order.hold -= qty
        ledger.credit(order.participant_id, market.quote, proceeds - fee)
        ledger.credit(VENUE_ACCOUNT, market.quote, fee)
        return fee

    def _close(
        self, order: _Order, market: Market, status: OrderStatus, reason: str | None
    ) -> None:
        """An order of ``market`` left the book: release its hold and the usage its open
        part reserved."""
        participant_id = order.participant_id
        self.ledger.release(participant_id, order.hold_asset, order.hold)
        order.hold = 0
        # It now counts only what it traded (_filled_notional, inline: every close).
        if order.side == _BUY:
            filled_notional = order.paid
        else:
            scale = POW10[market.base_scale]
            filled_notional = (order.spent_num + scale - 1) // scale
        usage = self._count_notional(order, filled_notional)
        usage.open_orders -= 1
        del self._orders[order.order_id]
        if order.client_order_id is not None:
            self._by_client_id.pop((participant_id, order.client_order_id), None)
        self._reports.append(self._order_report(order, status, reason))

    # -- usage (daily notional, retail monthly purchases) --------------------------------

    def _filled_notional(self, market: Market, order: _Order) -> int:
        """Notional of what an order has traded, at its fill prices, rounded up (tiyn)."""
        if order.side == _BUY:
            return order.paid
        return _ceil_div(order.spent_num, POW10[market.base_scale])

    def _count_notional(self, order: _Order, notional: int) -> Usage:
        """Set what this order counts against today's notional (and the retail cap), and
        return its participant's usage."""
        usage = self._usage.get(order.participant_id)
        if usage is None:
            usage = self.usage(order.participant_id)
        delta = notional - order.usage_notional
        order.usage_notional = notional
        if usage.day == order.day:
            usage.daily_notional += delta
        if order.counts_retail and usage.month == order.month:
            usage.monthly_retail_buys += delta
        return usage

    # -- admin ---------------------------------------------------------------------------

    def _deposit(self, cmd: Deposit) -> None:
        if not self._valid_amount(cmd, "deposit"):
            return
        held_by_venue = self.ledger.net_deposits(cmd.asset)
        if cmd.amount > MAX_ASSET_UNITS - held_by_venue:
            self._reject_command(
                cmd,
                "deposit",
                "BALANCE_LIMIT",
                f"the venue would hold more than {MAX_ASSET_UNITS} units of {cmd.asset} "
                f"(it holds {held_by_venue}): deposit at most {MAX_ASSET_UNITS - held_by_venue}",
            )
            return
        self.ledger.deposit(cmd.participant_id, cmd.asset, cmd.amount)
        self._applied(cmd.ts, "deposit", f"{cmd.amount} {cmd.asset} to {cmd.participant_id}")

    def _withdraw(self, cmd: Withdraw) -> None:
        if not self._valid_amount(cmd, "withdraw"):
            return
        available = self.ledger.available(cmd.participant_id, cmd.asset)
        if available < cmd.amount:
            self._reject_command(
                cmd,
                "withdraw",
                "INSUFFICIENT_FUNDS",
                f"{cmd.participant_id} has {available} {cmd.asset} available, "
                f"{cmd.amount} asked (held funds cannot be withdrawn)",
            )
            return
        self.ledger.withdraw(cmd.participant_id, cmd.asset, cmd.amount)
        self._applied(cmd.ts, "withdraw", f"{cmd.amount} {cmd.asset} from {cmd.participant_id}")

    def _valid_amount(self, cmd: Deposit | Withdraw, action: str) -> bool:
        if self.registry.participant(cmd.participant_id) is None:
            self._reject_command(
                cmd,
                action,
                "PARTICIPANT_UNKNOWN",
                f"no participant {cmd.participant_id!r}: register it first (admin.participant)",
            )
            return False
        assets = {m.base for m in self.markets.values()} | {m.quote for m in self.markets.values()}
        if cmd.asset not in assets:
            self._reject_command(
                cmd, action, "UNKNOWN_ASSET", f"no asset {cmd.asset!r} is traded here"
            )
            return False
        if cmd.amount <= 0:
            self._reject_command(
                cmd, action, "INVALID_AMOUNT", f"amount must be positive, got {cmd.amount}"
            )
            return False
        return True

    def _set_market(self, cmd: SetMarket) -> None:
        market = self.markets.get(cmd.market)
        if market is None:
            self._reject_command(cmd, "market", "UNKNOWN_MARKET", f"no market {cmd.market!r}")
            return
        if cmd.status is not None and cmd.status not in _MARKET_STATUSES:
            self._reject_command(
                cmd, "market", "INVALID_PARAMS", f"status {cmd.status!r} is not open or halted"
            )
            return
        if cmd.reference_price is not None and cmd.reference_price <= 0:
            self._reject_command(cmd, "market", "INVALID_PRICE", "reference_price must be positive")
            return
        if cmd.status is not None:
            market = market.with_status(_MARKET_STATUSES[cmd.status])
        if cmd.reference_price is not None:
            market = market.with_reference(cmd.reference_price)
            self.last_price.pop(cmd.market, None)
        self.markets[cmd.market] = market
        self._applied(
            cmd.ts,
            "market",
            f"{cmd.market} status {market.status} reference {market.reference_price}",
        )

    def _set_license(self, cmd: SetLicense) -> None:
        self.registry = self.registry.with_license(cmd.license)
        self._applied(cmd.ts, "license", f"{cmd.license.license_id} {cmd.license.status}")
        self._cancel_unlicensed()

    def _set_participant(self, cmd: SetParticipant) -> None:
        if (
            cmd.participant.license_id is not None
            and self.registry.license(cmd.participant.license_id) is None
        ):
            self._reject_command(
                cmd,
                "participant",
                "INVALID_PARAMS",
                f"licence {cmd.participant.license_id!r} is not registered",
            )
            return
        self.registry = self.registry.with_participant(cmd.participant)
        self._applied(
            cmd.ts, "participant", f"{cmd.participant.participant_id} {cmd.participant.status}"
        )
        self._cancel_unlicensed()

    def _next_license_deadline(self) -> int:
        """The earliest end of validity of any licence still valid at the current time."""
        ends = [
            lic.valid_until_ms
            for lic in self.registry.licenses.values()
            if lic.valid_until_ms > self._ts
        ]
        return min(ends, default=2**63)

    def _cancel_unlicensed(self) -> None:
        """The venue's policy: when a participant may no longer trade (account suspended or
        frozen, or the licence it trades under no longer active, by an admin command or
        because its valid-to date has passed), its resting orders are canceled at once, with
        reason ``license``, rather than left to trade.  Expiry takes effect with the first
        command whose timestamp is past the licence's end (the engine reads no clock)."""
        self._license_deadline = self._next_license_deadline()
        participants = {o.participant_id for o in self._orders.values()}
        for participant_id in sorted(participants):
            participant = self.registry.participant(participant_id)
            lic = self.registry.license_for(participant)
            venue = self.registry.venue_license
            if (
                participant is not None
                and participant.status == "active"
                and lic is not None
                and lic.is_active_at(self._ts)
                and venue is not None
                and venue.is_active_at(self._ts)
            ):
                continue
            self._cancel_all(
                CancelAll(ts=self._ts, participant_id=participant_id, reason="license")
            )

    def _applied(self, ts: int, command: str, detail: str) -> None:
        self._reports.append(AdminApplied(ts=ts, command=command, detail=detail))

    # -- reporting -----------------------------------------------------------------------

    def _reject_place(self, cmd: PlaceOrder, code: str, message: str) -> None:
        self._reports.append(
            OrderReport(
                ts=cmd.ts,
                participant_id=cmd.participant_id,
                market=cmd.market,
                order_id=None,
                client_order_id=cmd.client_order_id,
                side=SIDE_NAMES[cmd.side],
                order_type="market" if cmd.order_type == _MARKET else "limit",
                price=cmd.price,
                qty=cmd.qty,
                filled_qty=0,
                remaining_qty=0,
                status="rejected",
                reason=code,
                message=message,
            )
        )

    def _reject_command(
        self, cmd: Any, action: str, code: str, message: str, order: _Order | None = None
    ) -> None:
        self._reports.append(
            CommandRejected(
                ts=cmd.ts,
                participant_id=getattr(cmd, "participant_id", None),
                command=action,
                code=code,
                message=message,
                order_id=order.order_id if order else getattr(cmd, "order_id", None),
                client_order_id=getattr(cmd, "client_order_id", None),
            )
        )

    def _order_report(
        self, order: _Order, status: OrderStatus, reason: str | None = None
    ) -> OrderReport:
        order_type = order.order_type
        qty = order.qty
        filled_qty = order.filled_qty
        return OrderReport(
            ts=self._ts,
            participant_id=order.participant_id,
            market=order.market,
            order_id=order.order_id,
            client_order_id=order.client_order_id,
            side=SIDE_NAMES[order.side],
            order_type="market" if order_type == _MARKET else "limit",
            price=order.limit if order_type == _LIMIT else None,
            qty=qty,
            filled_qty=filled_qty,
            remaining_qty=qty - filled_qty if status in _OPEN_STATUSES else 0,
            status=status,
            reason=reason,
        )

    @staticmethod
    def _status(order: _Order) -> OrderStatus:
        return "partially_filled" if order.filled_qty else "new"

    def _owner_number(self, participant_id: str) -> int:
        number = self._owner_numbers.get(participant_id)
        if number is None:
            number = self._owner_numbers[participant_id] = len(self._owner_numbers) + 1
        return number

    @staticmethod
    def _would_cross(book: Book, side: int, price: int) -> bool:
        best = book.best_ask() if side == _BUY else book.best_bid()
        if best is None:
            return False
        return best[0] <= price if side == _BUY else best[0] >= price

    _HANDLERS: ClassVar[dict[type, Callable[[Exchange, Any], None]]] = {
        PlaceOrder: _place,
        CancelOrder: _cancel,
        AmendOrder: _amend,
        CancelAll: _cancel_all,
        Deposit: _deposit,
        Withdraw: _withdraw,
        SetMarket: _set_market,
        SetLicense: _set_license,
        SetParticipant: _set_participant,
    }
