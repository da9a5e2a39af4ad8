# The compiled exchange: engine.exchange.Exchange's per-order path in Cython.
#
# ``engine.compiled.CompiledExchange`` is ``class CompiledExchange(ExchangeCore, Exchange)``:
# this module's ExchangeCore first, the Python reference second.  Every method the core
# defines wins; every other one is the reference's own code, running on the same attributes.
# So the hot commands (PlaceOrder, CancelOrder, AmendOrder, CancelAll) and everything they do
# per order (records, holds, the built-in checks, settlement, reports) are compiled here, and
# the cold ones (deposits, withdrawals, SetMarket, SetLicense, SetParticipant, licence
# expiry, the queries) are the reference's methods, unchanged.  See docs/exchange.md.
#
# Money stays in Python ints.  Amounts multiply past 64 bits (price x qty x fee rate reaches
# 10**36 at the MAX_AMOUNT bounds, a settlement numerator accumulates such products, a sell's
# notional in a market with base_scale 0 reaches 10**30), and a Python int is exact at any
# size with the reference's floor-division semantics, so the compiled arithmetic is the
# reference's by construction.  What is compiled is everything around it: dispatch, field
# access on typed records, the check chain's loop and its built-in predicates, the ledger's
# dictionary work and the reports' construction.  Measured, that is where the time went
# (benchmarks/RESULTS.md, Issue 16).

cimport cython
from cpython.object cimport PyObject
from libc.stdint cimport int64_t

from engine._core cimport book as _cbook

import msgspec

from engine import exchange as _reference
from engine.commands import AmendOrder, CancelAll, CancelOrder, PlaceOrder
from engine.errors import BookIntegrityError, EngineError
from engine.events import (
    AmendRejected,
    BookLevel,
    CancelRejected,
    OrderAccepted,
    OrderAmended,
    OrderCanceled,
    OrderExpired,
    OrderFilled,
    OrderRejected,
    Trade,
)
from engine.fixedpoint import POW10
from engine.ledger import VENUE_ACCOUNT, LedgerError
from engine.licensing import OrderContext, ParticipantUsage
from engine.licensing.chain import _check_custom_result
from engine.licensing.checks import BUILTIN_CHECKS
from engine.markets import BPS, OPEN, PPM, Rejection
from engine.reports import (
    Audit,
    BalanceReport,
    BookChanged,
    CommandRejected,
    FillReport,
    OrderReport,
    TradePrinted,
)
from engine.types import OrderType, Side, TimeInForce

cdef object _Exchange = _reference.Exchange
cdef object _replace = msgspec.structs.replace
cdef object _month_of = _reference.month_of
cdef object _new_order_amounts_py = _reference._new_order_amounts
cdef object _MAX_AMOUNT = _reference.MAX_AMOUNT
cdef object _ALMATY_OFFSET_MS = _reference.ALMATY_OFFSET_MS
cdef object _DAY_MS = _reference.DAY_MS
cdef object _BAND_COPIES = _reference._BAND_COPIES
cdef tuple _POW10 = POW10
cdef tuple _FEE_SCALE = tuple(power * PPM for power in POW10)
cdef object _BPS = BPS
cdef object _OPEN = OPEN
cdef str _VENUE = VENUE_ACCOUNT
cdef object _LedgerError = LedgerError
cdef object _EngineError = EngineError
cdef object _BookIntegrityError = BookIntegrityError
cdef object _Rejection = Rejection
cdef object _OrderContext = OrderContext
cdef object _ParticipantUsage = ParticipantUsage
cdef object _check_custom = _check_custom_result

cdef object _PlaceOrder = PlaceOrder
cdef object _CancelOrder = CancelOrder
cdef object _AmendOrder = AmendOrder
cdef object _CancelAll = CancelAll
cdef dict _HANDLERS = dict(_reference.Exchange._HANDLERS)

cdef object _BookLevel = BookLevel
cdef object _OrderAccepted = OrderAccepted
cdef object _OrderCanceled = OrderCanceled
cdef object _Trade = Trade
cdef object _OrderFilled = OrderFilled
cdef object _OrderExpired = OrderExpired
cdef object _OrderAmended = OrderAmended
cdef tuple _REFUSALS = (OrderRejected, CancelRejected, AmendRejected)

cdef object _OrderReport = OrderReport
cdef object _FillReport = FillReport
cdef object _BalanceReport = BalanceReport
cdef object _TradePrinted = TradePrinted
cdef object _BookChanged = BookChanged
cdef object _CommandRejected = CommandRejected
cdef object _Audit = Audit

cdef object _SIDE_BUY = Side.BUY
cdef object _TYPE_LIMIT = OrderType.LIMIT
cdef object _TIF_GTC = TimeInForce.GTC
cdef tuple _SIDE_NAMES = ("buy", "sell")
cdef frozenset _OPEN_STATUSES = frozenset(("new", "partially_filled"))

cdef enum:
    BUY = 0
    SELL = 1
    LIMIT = 0
    MARKET = 1
    GTC = 0

# The built-in checks the core decides itself (a predicate that passes exactly when the
# Python check returns None); any other step, custom or built-in, is called as it is.
cdef enum:
    CHECK_CALL = 0
    CHECK_PARTICIPANT = 1
    CHECK_MARKET_STATUS = 2
    CHECK_MARKET_RULES = 3
    CHECK_PRICE_BAND = 4
    CHECK_FUNDS = 5
    CHECK_KYC = 6
    CHECK_ORDER_SIZE = 7
    CHECK_RETAIL_LIMIT = 8
    CHECK_DAILY_LIMIT = 9
    CHECK_OPEN_ORDERS = 10

cdef dict _PREDICATES = {
    "participant": CHECK_PARTICIPANT,
    "market_status": CHECK_MARKET_STATUS,
    "market_rules": CHECK_MARKET_RULES,
    "price_band": CHECK_PRICE_BAND,
    "funds": CHECK_FUNDS,
    "kyc": CHECK_KYC,
    "order_size": CHECK_ORDER_SIZE,
    "retail_limit": CHECK_RETAIL_LIMIT,
    "daily_limit": CHECK_DAILY_LIMIT,
    "open_orders": CHECK_OPEN_ORDERS,
}


cdef extern from *:
    # GCC's and Clang's 128-bit integer.  Cython is told it is a long long, so it is only
    # ever used in the C expressions of the helpers below, never converted implicitly.
    ctypedef long long i128 "__int128"
    ctypedef unsigned long long u64 "unsigned long long"

cdef extern from "Python.h":
    long long PyLong_AsLongLongAndOverflow(object value, int* overflow) except? -1
    # A borrowed reference or NULL, without PyDict_GetItem's saving and restoring of the
    # error state (a third of a lookup's cost); Cython checks for an error on NULL.
    PyObject* PyDict_GetItem "PyDict_GetItemWithError" (object mp, object key) except? NULL

cdef long long _MAX_AMOUNT_C = 10**15  # engine.exchange.MAX_AMOUNT (checked at import)
if _MAX_AMOUNT_C != _reference.MAX_AMOUNT:
    raise ImportError("engine._core.exchange: MAX_AMOUNT differs from engine.exchange's")
cdef long long _DAY_MS_C = _reference.DAY_MS
cdef long long _OFFSET_MS_C = _reference.ALMATY_OFFSET_MS


cdef inline bint _small(object value, long long* out) except -1:
    """Whether ``value`` is an int in [0, MAX_AMOUNT] (then stored in ``out``): the range
    in which the amounts below are exact in 128 bits (10**15 x 10**15 x 10**6 < 2**127)."""
    cdef int overflow = 0
    if type(value) is not int:
        return False
    out[0] = PyLong_AsLongLongAndOverflow(value, &overflow)
    return overflow == 0 and 0 <= out[0] <= _MAX_AMOUNT_C


cdef object _i128_to_int(i128 value):
    """A non-negative 128-bit integer as a Python int."""
    if value <= <i128>0x7FFFFFFFFFFFFFFF:
        return <long long>value
    return (int(<u64>(value >> 64)) << 64) | int(<u64>value)


@cython.cdivision(True)
cdef inline i128 _div_i128(i128 numerator, i128 denominator) noexcept:
    """``numerator // denominator`` for a non-negative numerator and a positive denominator
    (C's division truncates, which is the floor for those)."""
    return numerator / denominator


cdef object _day_of(object ts):
    """``engine.exchange.day_of``: the Almaty day of ``ts`` (ms), in C when it fits."""
    cdef int overflow = 0
    cdef long long ts_c
    if type(ts) is int:
        ts_c = PyLong_AsLongLongAndOverflow(ts, &overflow)
        if overflow == 0 and -(1 << 62) < ts_c < (1 << 62):
            return (ts_c + _OFFSET_MS_C) // _DAY_MS_C  # floor division: cdivision is off
    return (ts + _ALMATY_OFFSET_MS) // _DAY_MS


cdef inline object _ceil_div(object numerator, object denominator):
    """``ceil(numerator / denominator)`` for a positive denominator (the reference's
    ``(n + d - 1) // d``), in Python ints."""
    return (numerator + denominator - 1) // denominator


# -- records ----------------------------------------------------------------------------------


@cython.no_gc
@cython.freelist(256)
cdef class OrderRecord:
    """The exchange's record of one open order: ``engine.exchange._Order``'s fields, typed.

    The enumerations and counters are C fields; every amount is a Python int (see the
    module comment).  The attributes are public under the reference's names, so the
    reference's own code (queries, ``engine.state.capture``) reads a record as it reads an
    ``_Order``.  The constructor takes the same arguments as ``_Order``'s.

    ``no_gc``: it holds strings, integers and one tuple of two strings, so it can be in no
    cycle, and the collector need not track the thousands of them a venue keeps open (the
    reference's ``_Order`` is ``gc=False`` for the same reason).  ``hold_key`` is the
    ledger's key of its hold, ``(participant_id, hold_asset)``, made once per order.
    """

    cdef public long long order_id
    cdef public str participant_id
    cdef public str market
    cdef public int side
    cdef public int order_type
    cdef public object limit  # quote minor units
    cdef public object qty  # base minor units, filled part included
    cdef public object client_order_id
    cdef public str hold_asset
    cdef public object hold  # minor units of hold_asset
    cdef public bint counts_retail
    cdef public object day
    cdef public object month
    cdef public object filled_qty
    cdef public object paid
    cdef public object fee_paid
    cdef public object spent_num
    cdef public object fee_num
    cdef public object usage_notional
    cdef tuple hold_key

    def __init__(
        self,
        order_id,
        participant_id,
        market,
        side,
        order_type,
        limit,
        qty,
        client_order_id,
        hold_asset,
        hold,
        counts_retail,
        day,
        month,
        filled_qty=0,
        paid=0,
        fee_paid=0,
        spent_num=0,
        fee_num=0,
        usage_notional=0,
    ):
        self.order_id = order_id
        self.participant_id = participant_id
        self.market = market
        self.side = side
        self.order_type = order_type
        self.limit = limit
        self.qty = qty
        self.client_order_id = client_order_id
        self.hold_asset = hold_asset
        self.hold = hold
        self.counts_retail = counts_retail
        self.day = day
        self.month = month
        self.filled_qty = filled_qty
        self.paid = paid
        self.fee_paid = fee_paid
        self.spent_num = spent_num
        self.fee_num = fee_num
        self.usage_notional = usage_notional
        self.hold_key = (participant_id, hold_asset)

    @property
    def remaining(self):
        return self.qty - self.filled_qty

    def __repr__(self):
        return (
            f"OrderRecord(order_id={self.order_id}, participant_id={self.participant_id!r}, "
            f"market={self.market!r}, side={self.side}, limit={self.limit}, qty={self.qty}, "
            f"filled_qty={self.filled_qty}, hold={self.hold})"
        )


@cython.no_gc
cdef class UsageRecord:
    """``engine.exchange.Usage``, compiled: a participant's open orders, today's notional
    and this month's retail purchases (tiyn), under the same attribute names."""

    cdef public long long open_orders
    cdef public object day
    cdef public object daily_notional
    cdef public object month
    cdef public object monthly_retail_buys

    def __init__(self):
        self.open_orders = 0
        self.day = -1
        self.daily_notional = 0
        self.month = -1
        self.monthly_retail_buys = 0

    def roll(self, ts):
        """Start a new day (and month) of counters if ``ts`` (ms) is in a later one."""
        self._roll(ts)

    cdef int _roll(self, object ts) except -1:
        day = (ts + _ALMATY_OFFSET_MS) // _DAY_MS
        if day == self.day:
            return 0
        self.day = day
        self.daily_notional = 0
        month = _month_of(ts)
        if month != self.month:
            self.month = month
            self.monthly_retail_buys = 0
        return 0


# -- the ledger ---------------------------------------------------------------------------------


cdef class LedgerCore:
    """The hot half of ``engine.ledger.Ledger``: the same three dictionaries, and the moves
    every order makes (hold, release, spend, credit) as C-level methods.

    ``engine.compiled.CompiledLedger`` is ``class CompiledLedger(LedgerCore, Ledger)``: the
    reference's methods (deposits, queries, ``take_changed``, ...) run on these
    dictionaries as they are, the exchange core calls the ``c_*`` methods directly.
    """

    cdef public dict _balances  # (account, asset) -> [total, held]
    cdef public dict _net_deposits
    cdef public dict _changed

    def __init__(self):
        self._balances = {}
        self._net_deposits = {}
        self._changed = {}

    cdef object c_available(self, tuple key):
        """What ``key`` = (account, asset) has available (``Ledger.available``)."""
        cdef PyObject* entry = PyDict_GetItem(self._balances, key)
        if entry is NULL:
            return 0
        e = <list>entry
        return e[0] - e[1]

    cdef int c_hold(self, tuple key, object amount) except -1:
        """``Ledger.hold`` of ``key`` = (account, asset): the order's key, made once."""
        if amount == 0:
            return 0
        cdef PyObject* found = PyDict_GetItem(self._balances, key)
        if amount < 0 or found is NULL or (<list>found)[0] - (<list>found)[1] < amount:
            raise _LedgerError(f"cannot hold {amount} {key[1]} for {key[0]}")
        entry = <list>found
        self._changed[key] = entry
        entry[1] = entry[1] + amount
        return 0

    cdef int c_release(self, tuple key, object amount) except -1:
        """``Ledger.release`` of ``key`` = (account, asset)."""
        if amount == 0:
            return 0
        cdef PyObject* found = PyDict_GetItem(self._balances, key)
        if amount < 0 or found is NULL or (<list>found)[1] < amount:
            raise _LedgerError(f"cannot release {amount} {key[1]} for {key[0]}")
        entry = <list>found
        self._changed[key] = entry
        entry[1] = entry[1] - amount
        return 0

    cdef list _entry(self, tuple key):
        cdef PyObject* found = PyDict_GetItem(self._balances, key)
        if found is NULL:
            entry = [0, 0]
            self._balances[key] = entry
            return entry
        return <list>found

    cdef int c_spend_held(self, str account, str asset, object amount) except -1:
        if amount == 0:
            return 0
        key = (account, asset)
        cdef list entry = self._entry(key)
        self._changed[key] = entry
        if amount < 0 or entry[1] < amount:
            raise _LedgerError(f"cannot spend {amount} held {asset} of {account}")
        entry[0] = entry[0] - amount
        entry[1] = entry[1] - amount
        return 0

    cdef int c_credit(self, str account, str asset, object amount) except -1:
        if amount == 0:
            return 0
        key = (account, asset)
        cdef list entry = self._entry(key)
        self._changed[key] = entry
        if entry[0] + amount < entry[1]:
            raise _LedgerError(f"credit of {amount} {asset} would leave {account} negative")
        entry[0] = entry[0] + amount
        return 0


# -- what the core keeps per market, participant and shape of order ---------------------------


cdef class _MarketView:
    """A ``Market``'s fields the per-order path reads, read once per Market object (a
    Market is immutable: a change is a new object, and a new view)."""

    cdef object market
    cdef object book
    cdef _cbook.OrderBook cbook  # the book if it is the compiled one (its C API), else None
    cdef str symbol
    cdef str base
    cdef str quote
    cdef bint is_open
    cdef object scale  # 10**base_scale
    cdef object fee_scale  # 10**base_scale * PPM
    cdef object maker
    cdef object taker
    cdef object max_rate
    cdef object tick
    cdef object lot
    cdef object min_qty
    cdef object min_notional_scaled  # min_notional * 10**base_scale
    cdef object band_bps
    cdef object reference_price
    cdef long long scale_c  # 10**base_scale (base_scale <= 18: it fits)
    cdef i128 fee_scale_c  # 10**base_scale * PPM
    cdef long long max_rate_c
    cdef bint fast  # the fee rates are in 0..PPM (Market validates it): the C path applies
    cdef object band_last  # the last price band_view was made for (its object)
    cdef _MarketView band_view  # the view of this market with band_last as its reference

    def __cinit__(self, market, book):
        self.market = market
        self.book = book
        self.cbook = book if type(book) is _cbook.OrderBook else None
        self.symbol = market.symbol
        self.base = market.base
        self.quote = market.quote
        self.is_open = market.status == _OPEN
        base_scale = market.base_scale
        self.scale = _POW10[base_scale]
        self.fee_scale = _FEE_SCALE[base_scale]
        self.maker = market.maker_fee_ppm
        self.taker = market.taker_fee_ppm
        self.max_rate = self.maker if self.maker > self.taker else self.taker
        self.tick = market.tick
        self.lot = market.lot
        self.min_qty = market.min_qty
        self.min_notional_scaled = market.min_notional * self.scale
        self.band_bps = market.band_bps
        self.reference_price = market.reference_price
        self.fast = type(self.max_rate) is int and 0 <= self.max_rate <= PPM
        self.scale_c = self.scale
        self.fee_scale_c = <i128>self.scale_c * <i128>PPM
        self.max_rate_c = self.max_rate if self.fast else 0


cdef class _BandViews:
    """A market's views with the last trade price as the band's reference, per price."""

    cdef object market
    cdef dict copies

    def __cinit__(self, market):
        self.market = market
        self.copies = {}


cdef class _Plan:
    """``CheckChain.plan`` of one shape of order, compiled: per step, whether the core
    decides it (and the participant's limits the predicate compares with) or calls it."""

    cdef tuple steps
    cdef Py_ssize_t n
    cdef bytes kinds
    cdef object kyc_limit
    cdef object category_max
    cdef object own_max
    cdef bint retail
    cdef object retail_cap
    cdef object daily_limit
    cdef object max_open

    def __cinit__(self, tuple steps, object participant, object profile):
        self.steps = steps
        self.n = len(steps)
        kinds = bytearray()
        self.kyc_limit = None
        self.category_max = None
        self.own_max = None
        self.retail = False
        self.retail_cap = None
        self.daily_limit = None
        self.max_open = None
        for check_id, check, custom in steps:
            kind = CHECK_CALL
            if not custom and BUILTIN_CHECKS.get(check_id) is check:
                kind = _PREDICATES.get(check_id, CHECK_CALL)
            if participant is None and kind >= CHECK_KYC:
                kind = CHECK_CALL  # the reference lets these through: calling it is exact
            if kind == CHECK_KYC:
                self.kyc_limit = profile.kyc_max_notional[participant.kyc_level]
            elif kind == CHECK_ORDER_SIZE:
                self.category_max = profile.categories[participant.category].max_order_notional
                self.own_max = participant.limits.max_order_notional
            elif kind == CHECK_RETAIL_LIMIT:
                self.retail = participant.category == "RETAIL"
                if self.retail:
                    tested = participant.appropriateness_passed and profile.test_lifts_retail_cap
                    limits = participant.limits
                    self.retail_cap = (
                        limits.retail_monthly_cap_tested if tested else limits.retail_monthly_cap
                    )
            elif kind == CHECK_DAILY_LIMIT:
                self.daily_limit = participant.limits.daily_notional
            elif kind == CHECK_OPEN_ORDERS:
                self.max_open = participant.limits.max_open_orders
            kinds.append(kind)
        self.kinds = bytes(kinds)


cdef class _Admission:
    """The reference's ``_Admission`` (the participant's blank ``OrderContext``) with the
    compiled plans per shape of order, for one registry, chain and Almaty day."""

    cdef public object blank
    cdef public dict plans
    cdef object participant
    cdef bint retail

    def __cinit__(self, blank, participant):
        self.blank = blank
        self.plans = {}
        self.participant = participant
        self.retail = participant is not None and participant.category == "RETAIL"


cdef class _Intent:
    """One new order as the core checks it: ``OrderContext``'s fields, without building one
    (the context is made only when a step is called: a custom check, or a rejection whose
    message the reference's check words)."""

    cdef object cmd
    cdef object ts
    cdef str participant_id
    cdef str symbol
    cdef object market  # the market with the band's live reference, or None
    cdef _MarketView view
    cdef _MarketView base_view  # of the market itself (its book, fees, scales)
    cdef int side
    cdef int order_type
    cdef int tif
    cdef object side_obj  # the command's own values (enumerations), for the context
    cdef object order_type_obj
    cdef object tif_obj
    cdef object post_only
    cdef object client_order_id
    cdef object price
    cdef object qty
    cdef object notional
    cdef object funds_asset
    cdef tuple funds_key  # (participant_id, funds_asset): the ledger's key
    cdef object funds_required
    cdef object funds_available
    cdef UsageRecord usage
    cdef object context


# -- the exchange ---------------------------------------------------------------------------


cdef int _report_levels(
    list reports, _MarketView view, object seq, list bids, list asks
) except -1:
    """The ``BookChanged`` of one book call: the levels it changed, its last ``seq``."""
    reports.append(
        _BookChanged(
            market=view.symbol,
            seq=seq,
            bids=[] if bids is None else bids,
            asks=[] if asks is None else asks,
        )
    )
    return 0


cdef class ExchangeCore:
    """The compiled half of ``engine.compiled.CompiledExchange`` (see the module comment).

    Its attributes are the reference ``Exchange``'s, under the same names, so that the
    reference's methods the core does not replace run on them unchanged; it is not meant to
    be created on its own.
    """

    cdef public dict markets
    cdef public dict books
    cdef public LedgerCore ledger
    cdef public object registry
    cdef public object chain
    cdef public dict last_price
    cdef public dict _orders
    cdef public dict _by_client_id
    cdef public dict _owner_numbers
    cdef public dict _usage
    cdef public long long _next_order_id
    cdef public list _reports
    cdef public object _ts
    cdef public object _license_deadline
    # The core's own caches (never state): views per market, admissions per participant.
    cdef dict _views
    cdef dict _band_views
    cdef dict _cadmissions
    cdef object _cadmitted_registry
    cdef object _cadmitted_day
    cdef object _cadmitted_chain
    cdef _Intent _intent

    def __init__(self, markets, registry, chain, *, book_factory=None):
        if book_factory is None:
            from engine import OrderBook

            book_factory = OrderBook
        from engine.compiled import CompiledLedger

        self.markets = dict(markets)
        self.books = {symbol: book_factory() for symbol in self.markets}
        self.ledger = CompiledLedger()
        self.registry = registry
        self.chain = chain
        self.last_price = {}
        self._orders = {}
        self._by_client_id = {}
        self._owner_numbers = {}
        self._usage = {}
        self._next_order_id = 1
        self._reports = []
        self._ts = 0
        self._views = {}
        self._band_views = {}
        self._cadmissions = {}
        self._intent = _Intent()
        # The reference's own caches, for its methods that run here (amend's checks).
        self._band_markets = {}
        self._admissions = {}
        self._admitted_for = None
        self._license_deadline = self._next_license_deadline()

    # -- the command stream ------------------------------------------------------------------

    def execute(self, command):
        """Apply one command and return its reports (``Exchange.execute``)."""
        cdef list reports = []
        self._reports = reports
        ts = command.ts
        self._ts = ts
        kind = type(command)
        handler = None
        if (
            kind is not _PlaceOrder
            and kind is not _CancelOrder
            and kind is not _AmendOrder
            and kind is not _CancelAll
        ):
            handler = _HANDLERS.get(kind)
            if handler is None:
                raise _EngineError(f"not a command: {kind.__name__}")
        if ts >= self._license_deadline:
            self._cancel_unlicensed()
        if kind is _PlaceOrder:
            self._c_place(command)
        elif kind is _CancelOrder:
            self._c_cancel(command)
        elif kind is _AmendOrder:
            self._c_amend(command)
        elif kind is _CancelAll:
            self._c_cancel_all(command)
        else:
            handler(self, command)
        self._c_report_balances(reports)
        return reports

    cdef int _c_report_balances(self, list reports) except -1:
        ledger = self.ledger
        cdef dict changed = ledger._changed
        if not changed:
            return 0
        for key, entry in changed.items():
            account = (<tuple>key)[0]
            if account != _VENUE:
                total = (<list>entry)[0]
                held = (<list>entry)[1]
                reports.append(
                    _BalanceReport(
                        participant_id=account,
                        asset=(<tuple>key)[1],
                        total=total,
                        available=total - held,
                        held=held,
                    )
                )
        changed.clear()  # the reference hands it out and starts another: here nobody holds it
        return 0

    # -- what the reference creates, made here -----------------------------------------------

    def usage(self, participant_id):
        """The participant's ``UsageRecord`` (``Exchange.usage``)."""
        usage = self._usage.get(participant_id)
        if usage is None:
            usage = self._usage[participant_id] = UsageRecord()
        return usage

    def _accept(self, *args):
        raise _EngineError("the compiled exchange accepts orders in its core only")

    def _apply_book_events(self, market, events, cancel_reason="cancel_all"):
        """``Exchange._apply_book_events``, for the reference's methods that run here."""
        self._c_apply(self._c_view(market.symbol), events, cancel_reason)

    # -- markets ---------------------------------------------------------------------------

    cdef _MarketView _c_view(self, str symbol):
        """The view of ``self.markets[symbol]`` (KeyError for an unknown symbol)."""
        market = self.markets[symbol]
        cdef PyObject* found = PyDict_GetItem(self._views, symbol)
        cdef _MarketView view
        if found is not NULL:
            view = <_MarketView>found
            if view.market is market:
                return view
        view = _MarketView(market, self.books[symbol])
        self._views[symbol] = view
        return view

    cdef _MarketView _c_view_for_checks(self, _MarketView view):
        """``Exchange._market_for_checks``'s market (the band's live reference), as a view
        (``view``: the market's own)."""
        symbol = view.symbol
        market = view.market
        cdef PyObject* found_last = PyDict_GetItem(self.last_price, symbol)
        if found_last is NULL:
            return view
        last = <object>found_last
        if last is view.band_last:  # the common case: no trade since the last order
            return view.band_view
        if last == view.reference_price:
            return view
        cdef PyObject* found = PyDict_GetItem(self._band_views, symbol)
        cdef _BandViews band
        if found is NULL or (<_BandViews>found).market is not market:
            band = _BandViews(market)
            self._band_views[symbol] = band
        else:
            band = <_BandViews>found
        cdef _MarketView band_view
        found = PyDict_GetItem(band.copies, last)
        if found is not NULL:
            band_view = <_MarketView>found
        else:
            if len(band.copies) >= _BAND_COPIES:
                band.copies.clear()
            band_view = _MarketView(market.with_reference(last), view.book)
            band.copies[last] = band_view
        view.band_last = last
        view.band_view = band_view
        return band_view

    # -- place -------------------------------------------------------------------------------

    cdef int _c_place(self, object cmd) except -1:
        # Every field read once (a Struct attribute read is a generic getattr).
        participant_id = cmd.participant_id
        symbol = cmd.market
        cdef PyObject* found_market = PyDict_GetItem(self.markets, symbol)
        market = None if found_market is NULL else <object>found_market
        side = cmd.side
        qty = cmd.qty
        order_type_obj = cmd.order_type
        tif_obj = cmd.tif
        cdef int order_type = order_type_obj
        cdef int tif = tif_obj
        post_only = cmd.post_only
        price = cmd.price
        client_order_id = cmd.client_order_id
        ts = self._ts
        # Exchange._precheck: the request's own shape, before the licensing chain.
        code = None
        message = ""
        check = "precheck"
        if client_order_id is not None and (participant_id, client_order_id) in self._by_client_id:
            code = "DUPLICATE_CLIENT_ORDER_ID"
            message = f"client_order_id {client_order_id!r} is already used by an open order"
            check = "client_order_id"
        elif order_type == MARKET and tif == GTC:
            code, message = "INVALID_TIF", "a market order cannot rest: use IOC or FOK"
            check = "order_type"
        elif post_only and (order_type == MARKET or tif != GTC):
            code, message, check = "INVALID_TIF", "post_only needs a limit GTC order", "order_type"
        elif order_type == LIMIT and price is None:
            code, message, check = "INVALID_PRICE", "a limit order needs a price", "order_type"
        elif qty > _MAX_AMOUNT or (price or 0) > _MAX_AMOUNT:
            code = "ORDER_SIZE_LIMIT"
            message = f"price and qty must be at most {_MAX_AMOUNT} units"
            check = "size"
        elif order_type == MARKET:
            if price is not None:
                code, message = "INVALID_PRICE", "a market order takes no price"
                check = "order_type"
            elif market is not None and self.reference_price(symbol) is None:
                code = "NO_REFERENCE_PRICE"
                message = f"{symbol} has no reference price yet: market orders are refused"
                check = "price_protection"
        cdef _Intent intent = None
        cdef _Admission admission = None
        limit = None
        if code is None:
            day = _day_of(ts)
            admission = self._c_admission(participant_id, day)
            if market is not None:
                limit = price if order_type == LIMIT else self._limit_price(cmd, market)
            intent = self._intent
            intent.cmd = cmd
            intent.ts = ts
            intent.participant_id = participant_id
            intent.symbol = symbol
            intent.side_obj = side
            intent.side = side
            intent.order_type_obj = order_type_obj
            intent.order_type = order_type
            intent.tif_obj = tif_obj
            intent.tif = tif
            intent.post_only = post_only
            intent.price = price
            intent.qty = qty
            intent.client_order_id = client_order_id
            self._c_intent(intent, market, limit, day)
            rejection = self._c_evaluate(intent, admission)
            if rejection is not None:
                check, code, message = rejection
            else:
                check = "all"
                if (
                    post_only
                    and market is not None
                    and self._c_would_cross(intent.view.book, intent.side, limit or 0)
                ):
                    code, check = "POST_ONLY_WOULD_TRADE", "post_only"
                    message = "the post-only order would trade on entry"
        self._reports.append(
            _Audit(
                ts=ts,
                participant_id=participant_id,
                market=symbol,
                order_id=None if code else self._next_order_id,
                client_order_id=client_order_id,
                action="place",
                decision="reject" if code else "accept",
                check=check,
                code=code,
            )
        )
        if code is not None or intent is None or market is None:
            self._reports.append(
                _OrderReport(
                    ts=ts,
                    participant_id=participant_id,
                    market=symbol,
                    order_id=None,
                    client_order_id=client_order_id,
                    side=_SIDE_NAMES[side],
                    order_type="market" if order_type == MARKET else "limit",
                    price=price,
                    qty=qty,
                    filled_qty=0,
                    remaining_qty=0,
                    status="rejected",
                    reason=code or "INVALID_PARAMS",
                    message=message,
                )
            )
            return 0
        self._c_accept(cmd.stp, intent, admission, limit or 0)
        return 0

    cdef _Admission _c_admission(self, str participant_id, object day):
        """``Exchange._admission``: the registry's view of the participant on ``day``."""
        registry = self.registry
        chain = self.chain
        if (
            self._cadmitted_registry is not registry
            or self._cadmitted_chain is not chain
            or self._cadmitted_day != day
        ):
            self._cadmissions.clear()
            self._cadmitted_registry = registry
            self._cadmitted_chain = chain
            self._cadmitted_day = day
        cdef PyObject* found = PyDict_GetItem(self._cadmissions, participant_id)
        if found is not NULL:
            return <_Admission>found
        participant = registry.participant(participant_id)
        blank = _OrderContext(
            ts=0,
            profile=chain.profile,
            registry=registry,
            participant_id=participant_id,
            participant=participant,
            license=registry.license_for(participant),
            venue_license=registry.venue_license,
            market_symbol="",
            market=None,
            side=_SIDE_BUY,
            order_type=_TYPE_LIMIT,
            tif=_TIF_GTC,
            price=None,
            qty=0,
            notional=0,
            funds_asset="",
            funds_required=0,
            funds_available=0,
        )
        cdef _Admission admission = _Admission(blank, participant)
        if participant is not None:
            self._cadmissions[participant_id] = admission
        return admission

    cdef int _c_intent(self, _Intent intent, object market, object limit, object day) except -1:
        """``Exchange._intent``: the new order's numbers, reserved nothing yet (``intent``
        holds the command's fields)."""
        participant_id = intent.participant_id
        cdef UsageRecord usage
        cdef PyObject* found = PyDict_GetItem(self._usage, participant_id)
        if found is NULL:
            usage = self.usage(participant_id)
        else:
            usage = <UsageRecord>found
        if usage.day != day:
            usage._roll(intent.ts)
        intent.usage = usage
        intent.context = None
        cdef _MarketView view
        if market is None:
            intent.market = None
            intent.view = None
            intent.notional = 0
            intent.funds_asset = ""
            intent.funds_required = 0
            intent.funds_available = 0
            return 0
        intent.base_view = self._c_view(intent.symbol)
        view = self._c_view_for_checks(intent.base_view)
        intent.view = view
        intent.market = view.market
        # _new_order_amounts: the notional at the limit, the asset and amount to hold.
        qty = intent.qty
        price = limit or 0
        cdef long long price_c, qty_c
        cdef i128 gross_c, cost_c
        if view.fast and _small(price, &price_c) and _small(qty, &qty_c):
            # Exact in 128 bits: price x qty x rate < 10**36 (see _small); all non-negative,
            # so C's truncating division is the floor division the reference does.
            gross_c = <i128>price_c * <i128>qty_c
            cost_c = _div_i128(gross_c + view.scale_c - 1, view.scale_c)
            cost = _i128_to_int(cost_c)
            intent.notional = cost if price_c > 0 else 0
            if intent.side == SELL:
                intent.funds_asset = view.base
                intent.funds_required = qty
            else:
                intent.funds_asset = view.quote
                intent.funds_required = _i128_to_int(
                    cost_c
                    + _div_i128(gross_c * view.max_rate_c + view.fee_scale_c - 1, view.fee_scale_c)
                )
        else:
            gross = price * qty
            scale = view.scale
            cost = (gross + scale - 1) // scale
            intent.notional = cost if limit is not None and limit > 0 else 0
            if intent.side == SELL:
                intent.funds_asset = view.base
                intent.funds_required = qty
            else:
                fee_scale = view.fee_scale
                intent.funds_asset = view.quote
                intent.funds_required = cost + (gross * view.max_rate + fee_scale - 1) // fee_scale
        intent.funds_key = (participant_id, intent.funds_asset)
        intent.funds_available = self.ledger.c_available(intent.funds_key)
        return 0

    cdef object _c_context(self, _Intent intent, _Admission admission):
        """The ``OrderContext`` the reference builds for this order (made once, on demand)."""
        if intent.context is not None:
            return intent.context
        usage = intent.usage
        intent.context = _replace(
            admission.blank,
            ts=intent.ts,
            market_symbol=intent.symbol,
            market=intent.market,
            side=intent.side_obj,
            order_type=intent.order_type_obj,
            tif=intent.tif_obj,
            post_only=intent.post_only,
            price=intent.price,
            qty=intent.qty,
            notional=intent.notional,
            usage=_ParticipantUsage(
                open_orders=usage.open_orders,
                daily_notional=usage.daily_notional,
                monthly_retail_buys=usage.monthly_retail_buys,
            ),
            funds_asset=intent.funds_asset,
            funds_required=intent.funds_required,
            funds_available=intent.funds_available,
        )
        return intent.context

    cdef object _c_evaluate(self, _Intent intent, _Admission admission):
        """``Exchange._evaluate``: None when the chain accepts, else (check, code, message).

        The plan per shape of order is ``CheckChain.plan``'s, compiled (``_Plan``).  A step
        the core decides passes without a call; one that does not pass is called (the
        reference words the rejection); every other step is called as it is."""
        # The plans of one market in a list of six, by order type and time in force: no key
        # tuple per order.  Values outside the enumerations have a tuple key of their own.
        cdef Py_ssize_t slot = -1
        if 0 <= intent.order_type <= 1 and 0 <= intent.tif <= 2:
            slot = intent.order_type * 3 + intent.tif
        key = intent.symbol if slot >= 0 else (intent.symbol, intent.order_type, intent.tif)
        cdef PyObject* found = PyDict_GetItem(admission.plans, key)
        cdef object cached = None
        if found is not NULL:
            cached = (<list>found)[slot] if slot >= 0 else <object>found
        cdef _Plan plan
        if cached is None:
            steps = self.chain.plan(self._c_context(intent, admission))
            plan = _Plan(steps, admission.participant, self.chain.profile)
            if intent.market is not None:  # known markets only: a client may send any symbol
                if slot < 0:
                    admission.plans[key] = plan
                else:
                    if found is NULL:
                        admission.plans[key] = [None] * 6
                    admission.plans[key][slot] = plan
        else:
            plan = <_Plan>cached
        cdef const unsigned char* kinds = plan.kinds
        cdef Py_ssize_t i
        cdef int kind
        cdef bint passes
        cdef _MarketView view = intent.view
        for i in range(plan.n):
            kind = kinds[i]
            passes = False
            if kind == CHECK_MARKET_STATUS:
                passes = view is not None and view.is_open
            elif kind == CHECK_MARKET_RULES:
                passes = view is None or _rules_pass(view, intent.price, intent.qty)
            elif kind == CHECK_PRICE_BAND:
                passes = (
                    view is None
                    or intent.price is None
                    or intent.order_type != LIMIT
                    or _band_passes(view, intent.price)
                )
            elif kind == CHECK_FUNDS:
                passes = intent.funds_required <= intent.funds_available
            elif kind == CHECK_PARTICIPANT:
                passes = admission.participant is not None
            elif kind == CHECK_KYC:
                passes = plan.kyc_limit is None or intent.notional <= plan.kyc_limit
            elif kind == CHECK_ORDER_SIZE:
                passes = (plan.category_max is None or intent.notional <= plan.category_max) and (
                    plan.own_max is None or intent.notional <= plan.own_max
                )
            elif kind == CHECK_RETAIL_LIMIT:
                passes = (
                    not plan.retail
                    or intent.side != BUY
                    or plan.retail_cap is None
                    or intent.usage.monthly_retail_buys + intent.notional <= plan.retail_cap
                )
            elif kind == CHECK_DAILY_LIMIT:
                passes = (
                    plan.daily_limit is None
                    or intent.usage.daily_notional + intent.notional <= plan.daily_limit
                )
            elif kind == CHECK_OPEN_ORDERS:
                passes = (
                    plan.max_open is None
                    or intent.order_type != LIMIT
                    or intent.tif != GTC
                    or intent.usage.open_orders < plan.max_open
                )
            if passes:
                continue
            check_id, check, custom = <tuple>plan.steps[i]
            rejection = check(self._c_context(intent, admission))
            if rejection is not None:
                if custom:
                    _check_custom(check_id, rejection)
                return (check_id, rejection.code, rejection.message)
        return None

    cdef bint _c_would_cross(self, object book, int side, object price) except -1:
        best = book.best_ask() if side == BUY else book.best_bid()
        if best is None:
            return False
        return best[0] <= price if side == BUY else best[0] >= price

    cdef int _c_accept(
        self, object stp, _Intent intent, _Admission admission, object limit
    ) except -1:
        """``Exchange._accept``: hold the funds, record the order and its usage, and hand it
        to the book.  ``limit``: the worst price it may trade at, quote minor units."""
        participant_id = intent.participant_id
        client_order_id = intent.client_order_id
        cdef long long order_id = self._next_order_id
        self._next_order_id = order_id + 1
        cdef UsageRecord usage = intent.usage
        cdef bint counts_retail = intent.side == BUY and admission.retail
        notional = intent.notional
        cdef OrderRecord order = OrderRecord.__new__(OrderRecord)
        order.order_id = order_id
        order.participant_id = participant_id
        order.market = intent.symbol
        order.side = intent.side
        order.order_type = intent.order_type
        order.limit = limit
        order.qty = intent.qty
        order.client_order_id = client_order_id
        order.hold_asset = intent.funds_asset
        order.hold = intent.funds_required
        order.counts_retail = counts_retail
        order.day = usage.day
        order.month = usage.month
        order.filled_qty = 0
        order.paid = 0
        order.fee_paid = 0
        order.spent_num = 0
        order.fee_num = 0
        order.usage_notional = notional
        order.hold_key = intent.funds_key
        self.ledger.c_hold(order.hold_key, order.hold)
        self._orders[order_id] = order
        if client_order_id is not None:
            self._by_client_id[(participant_id, client_order_id)] = order_id
        usage.open_orders += 1
        usage.daily_notional = usage.daily_notional + notional
        if counts_retail:
            usage.monthly_retail_buys = usage.monthly_retail_buys + notional
        cdef PyObject* found_owner = PyDict_GetItem(self._owner_numbers, participant_id)
        if found_owner is NULL:
            owner = self._owner_numbers[participant_id] = len(self._owner_numbers) + 1
        else:
            owner = <object>found_owner
        cdef _MarketView view = intent.base_view
        cdef _cbook.OrderBook cbook = view.cbook
        cdef Py_ssize_t n
        if cbook is not None:
            n = cbook.c_place(order_id, owner, intent.side, limit, intent.qty, intent.order_type,
                              intent.tif, intent.post_only, stp)
            self._c_apply_records(view, cbook, n, "cancel_all")
        else:
            events = view.book.place(
                order_id,
                owner,
                intent.side_obj,
                limit,
                intent.qty,
                intent.order_type_obj,
                intent.tif_obj,
                intent.post_only,
                stp,
            )
            self._c_apply(view, events, "cancel_all")
        intent.cmd = None
        intent.context = None
        return 0

    # -- cancel, amend, cancel all -------------------------------------------------------------

    cdef int _c_cancel(self, object cmd) except -1:
        order_id = cmd.order_id
        cdef PyObject* found = NULL
        if order_id is not None:
            found = PyDict_GetItem(self._orders, order_id)
        cdef OrderRecord order
        if (
            found is NULL
            or (<OrderRecord>found).participant_id != cmd.participant_id
            or (<OrderRecord>found).market != cmd.market
        ):
            record = self._find_order(cmd, "cancel")
            if record is None:
                return 0
            order = <OrderRecord?>record
        else:
            order = <OrderRecord>found
        cdef _MarketView view = self._c_view(order.market)
        cdef _cbook.OrderBook cbook = view.cbook
        cdef Py_ssize_t n
        if cbook is not None:
            n = cbook.c_cancel(order.order_id)
            self._c_apply_records(view, cbook, n, cmd.reason)
        else:
            events = view.book.cancel(order.order_id)
            self._c_apply(view, events, cmd.reason)
        return 0

    cdef int _c_amend(self, object cmd) except -1:
        _Exchange._amend(self, cmd)
        return 0

    cdef int _c_cancel_all(self, object cmd) except -1:
        owner = self._owner_numbers.get(cmd.participant_id)
        if owner is None:
            return 0
        markets = [cmd.market] if cmd.market is not None else list(self.books)
        for symbol in markets:
            if symbol not in self.books:
                self._reject_command(cmd, "cancel_all", "UNKNOWN_MARKET", f"no market {symbol!r}")
                return 0
        side = None if cmd.side is None else int(cmd.side)
        cdef _MarketView view
        cdef _cbook.OrderBook cbook
        cdef Py_ssize_t n
        for symbol in markets:
            view = self._c_view(symbol)
            cbook = view.cbook
            if cbook is not None:
                n = cbook.c_cancel_all(owner, -1 if side is None else side)
                self._c_apply_records(view, cbook, n, cmd.reason)
            else:
                events = view.book.cancel_all(owner, side)
                self._c_apply(view, events, cmd.reason)
        return 0

    # -- settlement ----------------------------------------------------------------------------

    cdef int _c_apply(self, _MarketView view, list events, object cancel_reason) except -1:
        """``Exchange._apply_book_events``: settle and report one book call's events."""
        cdef list bids = None
        cdef list asks = None
        seq = 0
        cdef dict orders = self._orders
        cdef list reports = self._reports
        cdef OrderRecord order
        for event in events:
            kind = type(event)
            if kind is _BookLevel:
                if event.side == "buy":
                    if bids is None:
                        bids = []
                    bids.append((event.price, event.qty))
                else:
                    if asks is None:
                        asks = []
                    asks.append((event.price, event.qty))
                seq = event.seq
            elif kind is _OrderAccepted:
                order = <OrderRecord>orders[event.order_id]
                reports.append(self._c_order_report(order, "new", None))
            elif kind is _OrderCanceled:
                reason = event.reason
                if reason != "self_trade":
                    reason = cancel_reason
                self._c_close(<OrderRecord>orders[event.order_id], view, "canceled", reason)
            elif kind is _Trade:
                self._c_settle(
                    view,
                    event.trade_id,
                    event.price,
                    event.qty,
                    event.maker_order_id,
                    event.taker_order_id,
                    event.taker_side,
                )
            elif kind is _OrderFilled:
                if event.remaining_qty == 0:
                    self._c_close(<OrderRecord>orders[event.order_id], view, "filled", None)
            elif kind is _OrderExpired:
                self._c_close(<OrderRecord>orders[event.order_id], view, "expired", None)
            elif kind is _OrderAmended:
                order = <OrderRecord>orders[event.order_id]
                reports.append(
                    self._c_order_report(
                        order, "partially_filled" if order.filled_qty else "new", None
                    )
                )
            elif kind in _REFUSALS:
                raise _BookIntegrityError(f"the book refused a checked command: {event}")
        if seq:
            _report_levels(reports, view, seq, bids, asks)
        return 0

    cdef int _c_apply_records(
        self, _MarketView view, _cbook.OrderBook book, Py_ssize_t n, object cancel_reason
    ) except -1:
        """``_c_apply`` on the event records of the compiled book's last command (its C API,
        book.pxd): the same reports in the same order, read from int64 fields, no event
        objects.  Nothing here calls the book, so its record buffer stays as it is."""
        cdef list bids = None
        cdef list asks = None
        cdef int64_t seq = 0
        cdef dict orders = self._orders
        cdef list reports = self._reports
        cdef OrderRecord order
        cdef const int64_t* r
        cdef int64_t kind
        cdef Py_ssize_t i
        for i in range(n):
            r = &book._events[i * _cbook.EVENT_WIDTH]
            kind = r[0]
            if kind == _cbook.EV_LEVEL:
                if r[1] == _cbook.BUY:
                    if bids is None:
                        bids = []
                    bids.append((r[2], r[3]))
                else:
                    if asks is None:
                        asks = []
                    asks.append((r[2], r[3]))
                seq = r[4]
            elif kind == _cbook.EV_ACCEPTED:
                order = <OrderRecord>orders[r[1]]
                reports.append(self._c_order_report(order, "new", None))
            elif kind == _cbook.EV_CANCELED:
                self._c_close(
                    <OrderRecord>orders[r[1]],
                    view,
                    "canceled",
                    "self_trade" if r[3] == _cbook.REASON_SELF_TRADE else cancel_reason,
                )
            elif kind == _cbook.EV_TRADE:
                self._c_settle(
                    view, r[1], r[2], r[3], r[4], r[5], _SIDE_NAMES[r[6]]
                )
            elif kind == _cbook.EV_FILLED:
                if r[5] == 0:
                    self._c_close(<OrderRecord>orders[r[1]], view, "filled", None)
            elif kind == _cbook.EV_EXPIRED:
                self._c_close(<OrderRecord>orders[r[1]], view, "expired", None)
            elif kind == _cbook.EV_AMENDED:
                order = <OrderRecord>orders[r[1]]
                reports.append(
                    self._c_order_report(
                        order, "partially_filled" if order.filled_qty else "new", None
                    )
                )
            else:  # a refusal (or a kind this does not know): as the object path raises
                event = book._event_list(i, i + 1)[0]
                raise _BookIntegrityError(f"the book refused a checked command: {event}")
        if seq:
            _report_levels(reports, view, seq, bids, asks)
        return 0

    cdef int _c_settle(
        self,
        _MarketView view,
        object trade_id,
        object price,
        object qty,
        object maker_order_id,
        object taker_order_id,
        object taker_side,
    ) except -1:
        cdef OrderRecord maker = <OrderRecord>self._orders[maker_order_id]
        cdef OrderRecord taker = <OrderRecord>self._orders[taker_order_id]
        symbol = view.symbol
        ts = self._ts
        self.last_price[symbol] = price
        cdef list reports = self._reports
        reports.append(
            _TradePrinted(
                ts=ts,
                market=symbol,
                trade_id=trade_id,
                price=price,
                qty=qty,
                taker_side=taker_side,
            )
        )
        scale = view.scale
        cdef OrderRecord order
        cdef int leg
        for leg in range(2):
            if leg == 0:
                order, liquidity, rate = maker, "maker", view.maker
            else:
                order, liquidity, rate = taker, "taker", view.taker
            if order.side == BUY:
                fee = self._c_settle_buy(view, order, price, qty, rate)
                filled_notional = order.paid
            else:
                fee = self._c_settle_sell(view, order, price, qty, rate)
                filled_notional = (order.spent_num + scale - 1) // scale
            filled_qty = order.filled_qty = order.filled_qty + qty
            remaining = order.qty - filled_qty
            self._c_count_notional(
                order, filled_notional + (order.limit * remaining + scale - 1) // scale
            )
            reports.append(
                _FillReport(
                    ts=ts,
                    participant_id=order.participant_id,
                    market=symbol,
                    order_id=order.order_id,
                    client_order_id=order.client_order_id,
                    side=_SIDE_NAMES[order.side],
                    trade_id=trade_id,
                    fill_price=price,
                    fill_qty=qty,
                    fee=fee,
                    fee_asset=view.quote,
                    liquidity=liquidity,
                    filled_qty=filled_qty,
                    remaining_qty=remaining,
                    status="partially_filled" if remaining else "filled",
                )
            )
        return 0

    cdef object _c_settle_buy(
        self, _MarketView view, OrderRecord order, object price, object qty, object rate
    ):
        """The buyer pays from its hold, cumulatively rounded up; gets the base."""
        scale = view.scale
        gross = price * qty
        spent_num = order.spent_num = order.spent_num + gross
        fee_num = order.fee_num = order.fee_num + gross * rate
        paid = _ceil_div(spent_num, scale)
        fee_paid = _ceil_div(fee_num, view.fee_scale)
        cost = paid - order.paid
        fee = fee_paid - order.fee_paid
        order.paid = paid
        order.fee_paid = fee_paid
        ledger = self.ledger
        participant_id = order.participant_id
        ledger.c_spend_held(participant_id, view.quote, cost + fee)
        order.hold = order.hold - (cost + fee)
        ledger.c_credit(participant_id, view.base, qty)
        ledger.c_credit(_VENUE, view.quote, cost - gross // scale + fee)
        return fee

    cdef object _c_settle_sell(
        self, _MarketView view, OrderRecord order, object price, object qty, object rate
    ):
        """The seller delivers held base; gets proceeds rounded down less its fee."""
        scale = view.scale
        gross = price * qty
        order.spent_num = order.spent_num + gross
        proceeds = gross // scale
        fee = _ceil_div(gross * rate, view.fee_scale)
        if proceeds < fee:
            fee = proceeds
        ledger = self.ledger
        participant_id = order.participant_id
        ledger.c_spend_held(participant_id, view.base, qty)
        order.hold = order.hold - qty
        ledger.c_credit(participant_id, view.quote, proceeds - fee)
        ledger.c_credit(_VENUE, view.quote, fee)
        return fee

    cdef int _c_close(
        self, OrderRecord order, _MarketView view, str status, object reason
    ) except -1:
        """``Exchange._close``: release the hold and the usage the open part reserved."""
        participant_id = order.participant_id
        self.ledger.c_release(order.hold_key, order.hold)
        order.hold = 0
        if order.side == BUY:
            filled_notional = order.paid
        else:
            scale = view.scale
            filled_notional = (order.spent_num + scale - 1) // scale
        cdef UsageRecord usage = self._c_count_notional(order, filled_notional)
        usage.open_orders -= 1
        del self._orders[order.order_id]
        if order.client_order_id is not None:
            self._by_client_id.pop((participant_id, order.client_order_id), None)
        self._reports.append(self._c_order_report(order, status, reason))
        return 0

    cdef UsageRecord _c_count_notional(self, OrderRecord order, object notional):
        """``Exchange._count_notional``: what the order counts against today's notional
        (and the retail cap) becomes ``notional``; returns the participant's usage."""
        cdef PyObject* found = PyDict_GetItem(self._usage, order.participant_id)
        cdef UsageRecord usage
        if found is NULL:
            usage = self.usage(order.participant_id)
        else:
            usage = <UsageRecord>found
        delta = notional - order.usage_notional
        order.usage_notional = notional
        if usage.day == order.day:
            usage.daily_notional = usage.daily_notional + delta
        if order.counts_retail and usage.month == order.month:
            usage.monthly_retail_buys = usage.monthly_retail_buys + delta
        return usage

    cdef object _c_order_report(self, OrderRecord order, str status, object reason):
        cdef int order_type = order.order_type
        qty = order.qty
        filled_qty = order.filled_qty
        return _OrderReport(
            ts=self._ts,
            participant_id=order.participant_id,
            market=order.market,
            order_id=order.order_id,
            client_order_id=order.client_order_id,
            side=_SIDE_NAMES[order.side],
            order_type="market" if order_type == MARKET else "limit",
            price=order.limit if order_type == LIMIT else None,
            qty=qty,
            filled_qty=filled_qty,
            remaining_qty=qty - filled_qty if status in _OPEN_STATUSES else 0,
            status=status,
            reason=reason,
        )


cdef bint _rules_pass(_MarketView view, object price, object qty) except -1:
    """``Market.check_rules(price, qty) is None``: tick, lot, minimum qty and notional."""
    if price is not None and (price <= 0 or price % view.tick):
        return False
    if qty <= 0 or qty % view.lot or qty < view.min_qty:
        return False
    if price is not None and price * qty < view.min_notional_scaled:
        return False
    return True


cdef bint _band_passes(_MarketView view, object price) except -1:
    """The limit ``price`` is within the band around the view's reference (inclusive)."""
    ref = view.reference_price
    return ref is None or abs(price - ref) * _BPS <= view.band_bps * ref
