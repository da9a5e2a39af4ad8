# cython: language_level=3, binding=False
"""The Cython order book: price-time priority, one instance per market.

Same interface and same events as ``engine.reference.ReferenceBook`` (the oracle of the
differential tests); read that module first for the rules, this one for how they are made
fast:

* Orders live in a pool of C structs and are found by id through a C hash map
  (``idmap.h``), so cancel is O(1).  Each price level is an intrusive doubly linked FIFO of
  order slots: adding at the tail, removing any order and taking the head are O(1) whatever
  the queue's length.
* Each side keeps its level slots in an array sorted so that the best price is the last
  element: best bid/ask is O(1); finding a level is a binary search; adding or removing a
  level moves only the levels behind it, which near the touch (where nearly all activity
  is) are few.
* Every command writes compact int64 event records into one reusable buffer.  The per-call
  API turns them into ``engine.events`` objects; ``execute_batch`` hands the raw records to
  the caller, crossing the Python boundary once for many commands.

Numbers must fit in int64: the exchange bounds prices and quantities per market before a
command reaches the book.
"""

from cpython cimport array
from cpython.object cimport PyObject
from libc.stdint cimport int32_t, int64_t
from libc.stdlib cimport free, realloc
from libc.string cimport memcpy, memmove

from engine._core.idmap cimport (
    idmap_del,
    idmap_find,
    idmap_free,
    idmap_get,
    idmap_init,
    idmap_put,
    idmap_put_at,
)


cdef extern from "eventobjects.h":
    # Builds the per-call API's event objects from records (see the header's notes).
    int evo_register(int kind, object type, Py_ssize_t nfields,
                     const Py_ssize_t* offsets) except -1
    Py_ssize_t evo_member_offset(object descr)
    int evo_set_names(object buy, object sell, object maker, object taker, object reasons,
                      object reject_names, object integrity_error) except -1
    list evo_list(const int64_t* records, Py_ssize_t n, Py_ssize_t width)
    list evo_list_args(const int64_t* records, Py_ssize_t n, Py_ssize_t width,
                       PyObject* const* args, const int64_t* values, Py_ssize_t nargs)
    ctypedef struct EvoRef:
        int64_t v
        PyObject* o  # borrowed, an exact int; NULL: none
    list evo_list_refs(const int64_t* records, Py_ssize_t n, Py_ssize_t width,
                       EvoRef id, EvoRef price, EvoRef qty)

cdef extern from "percall.h":
    # OrderBook.place's entry for five exact ints by position (see the header's notes).
    int pc_install(object type, void* core) except -1

import array as py_array

from engine import reject as _reject
from engine.errors import BookIntegrityError
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

# The event types by record kind, with the field order the records (and evo_list) use.
_EVENT_TYPES = (
    (EV_ACCEPTED, OrderAccepted, ("order_id", "side", "price", "qty")),
    (EV_REJECTED, OrderRejected, ("order_id", "code")),
    (EV_FILLED, OrderFilled,
     ("order_id", "counter_order_id", "price", "qty", "remaining_qty", "liquidity")),
    (EV_CANCELED, OrderCanceled, ("order_id", "remaining_qty", "reason")),
    (EV_EXPIRED, OrderExpired, ("order_id", "remaining_qty")),
    (EV_AMENDED, OrderAmended, ("order_id", "price", "qty", "priority_kept")),
    (EV_AMEND_REJECTED, AmendRejected, ("order_id", "code")),
    (EV_CANCEL_REJECTED, CancelRejected, ("order_id", "code")),
    (EV_TRADE, Trade, ("trade_id", "price", "qty", "maker_order_id", "taker_order_id",
                       "taker_side")),
    (EV_LEVEL, BookLevel, ("side", "price", "qty", "seq")),
)


cdef int _register_event_types() except -1:
    """Hand every event type's slot offsets to eventobjects.h, then build one event of each
    kind both ways (from a record, and by calling the type) and require them equal."""
    cdef Py_ssize_t offsets[6]
    cdef Py_ssize_t i
    cdef int64_t records[10 * EVENT_WIDTH]
    evo_set_names("buy", "sell", "maker", "taker", ("user", "self_trade", "cancel_all"),
                  (None,) + tuple(_reject.code_name(code) for code in range(1, 7)),
                  BookIntegrityError)
    for kind, cls, names in _EVENT_TYPES:
        if tuple(cls.__struct_fields__) != names or hasattr(cls, "__post_init__"):
            raise ImportError(f"{cls.__name__} has fields {cls.__struct_fields__}, the "
                              f"compiled book builds {names}")
        for i, name in enumerate(names):
            offsets[i] = evo_member_offset(cls.__dict__[name])
            if offsets[i] < 0:
                raise ImportError(f"{cls.__name__}.{name} is not an object slot")
        evo_register(kind, cls, len(names), offsets)
    samples = (
        (EV_ACCEPTED, 1_000_001, SELL, 4_500_000_100, 7_000, 0, 0, 0),
        (EV_REJECTED, 1_000_002, R_UNKNOWN_ORDER, 0, 0, 0, 0, 0),
        (EV_FILLED, 1_000_003, 1_000_004, 4_500_000_200, 3_000, 4_000, TAKER, 0),
        (EV_CANCELED, 1_000_005, 6_000, REASON_CANCEL_ALL, 0, 0, 0, 0),
        (EV_EXPIRED, 1_000_006, 9_000, 0, 0, 0, 0, 0),
        (EV_AMENDED, 1_000_007, 4_500_000_300, 2_000, 1, 0, 0, 0),
        (EV_AMEND_REJECTED, 1_000_008, R_INVALID_QTY, 0, 0, 0, 0, 0),
        (EV_CANCEL_REJECTED, 1_000_009, R_UNKNOWN_ORDER, 0, 0, 0, 0, 0),
        (EV_TRADE, 77, 4_500_000_400, 5_000, 1_000_010, 1_000_011, BUY, 0),
        (EV_LEVEL, SELL, 4_500_000_500, 12_000, 88, 0, 0, 0),
    )
    for i, sample in enumerate(samples):
        for j, value in enumerate(sample):
            records[i * EVENT_WIDTH + j] = value
    built = evo_list(records, len(samples), EVENT_WIDTH)
    expected = [
        OrderAccepted(1_000_001, "sell", 4_500_000_100, 7_000),
        OrderRejected(1_000_002, "UNKNOWN_ORDER"),
        OrderFilled(1_000_003, 1_000_004, 4_500_000_200, 3_000, 4_000, "taker"),
        OrderCanceled(1_000_005, 6_000, "cancel_all"),
        OrderExpired(1_000_006, 9_000),
        OrderAmended(1_000_007, 4_500_000_300, 2_000, True),
        AmendRejected(1_000_008, "INVALID_QTY"),
        CancelRejected(1_000_009, "UNKNOWN_ORDER"),
        Trade(77, 4_500_000_400, 5_000, 1_000_010, 1_000_011, "buy"),
        BookLevel("sell", 4_500_000_500, 12_000, 88),
    ]
    if built != expected or [repr(e) for e in built] != [repr(e) for e in expected]:
        raise ImportError(f"events built from records differ from the types' own: {built}")
    return 0


cdef array.array _INT64_TEMPLATE = py_array.array("q")


cdef inline int64_t _key(int side, int64_t price) noexcept nogil:
    """Sort key of a level on its side: ascending key = worse to better price."""
    return price if side == BUY else -price


cdef inline bint _price_ok(int side, int64_t limit, int64_t level_price) noexcept nogil:
    """Does a resting price satisfy an incoming order's limit (0 = no limit)?"""
    if limit == 0:
        return True
    if side == BUY:
        return level_price <= limit
    return level_price >= limit


cdef inline void* _grow(void* ptr, Py_ssize_t count, size_t item_size) except NULL:
    cdef void* out = realloc(ptr, <size_t>count * item_size)
    if out == NULL:
        raise MemoryError()
    return out


cdef int _check_enums(int64_t side, int64_t order_type, int64_t tif, int64_t stp) except -1:
    """Out-of-range enumerations are a caller's bug, not a client's: raise."""
    if side != BUY and side != SELL:
        raise ValueError(f"{side} is not a valid Side")
    if order_type != LIMIT and order_type != MARKET:
        raise ValueError(f"{order_type} is not a valid OrderType")
    if tif < GTC or tif > FOK:
        raise ValueError(f"{tif} is not a valid TimeInForce")
    if stp < STP_NONE or stp > STP_CANCEL_BOTH:
        raise ValueError(f"{stp} is not a valid SelfTradePrevention")
    return 0


cdef class OrderBook:
    """One market's limit order book with price-time priority (the compiled core)."""

    def __cinit__(self):
        self._orders_cap = 1024
        self._orders = <Order*>_grow(NULL, self._orders_cap, sizeof(Order))
        self._orders_free = -1
        self._orders_used = 0
        # The level and owner-list pools start empty and grow on first use (_alloc_*).
        self._levels_cap = 0
        self._levels = NULL
        self._levels_free = -1
        self._owner_lists_cap = 0
        self._owner_lists = NULL
        self._owner_lists_free = -1
        cdef int side
        for side in range(2):
            self._side_cap[side] = 256
            self._side_len[side] = 0
            self._sides[side] = <int32_t*>_grow(NULL, self._side_cap[side], sizeof(int32_t))
        self._events_cap = 64
        self._events = <int64_t*>_grow(NULL, self._events_cap * EVENT_WIDTH, sizeof(int64_t))
        self._events_len = 0
        self._touched_cap = 16
        self._touched = <int64_t*>_grow(NULL, self._touched_cap * TOUCHED_WIDTH, sizeof(int64_t))
        self._touched_len = 0
        self._epoch = 0
        self._seq = 0
        self._last_trade_id = 0
        if idmap_init(&self._index, 4096) or idmap_init(&self._owner_index, 64):
            raise MemoryError()

    def __dealloc__(self):
        free(self._orders)
        free(self._levels)
        free(self._owner_lists)
        free(self._sides[0])
        free(self._sides[1])
        free(self._events)
        free(self._touched)
        idmap_free(&self._index)
        idmap_free(&self._owner_index)

    # -- commands: the per-call API ---------------------------------------------------------

    # order_id, price and qty arrive as objects, converted here: the events reuse the
    # argument objects for fields of equal value (evo_list_args) rather than new ints.
    # The common call of place, five exact ints by position, does not come through this
    # method's wrapper: percall.h's pc_place reads them and calls _place_ints (below the
    # class); this method is its general path (keywords, other arguments, every error).

    def place(
        self,
        order_id,
        int64_t owner,
        int64_t side,
        price,
        qty,
        int64_t order_type=LIMIT,
        int64_t tif=GTC,
        bint post_only=False,
        int64_t stp=STP_NONE,
    ):
        """Enter a new order and return its events.  ``price`` in tiyn (0 on a market order
        means no limit), ``qty`` in base minor units.  O(log L + fills) for L levels."""
        cdef int64_t values[3]
        values[0] = order_id
        values[1] = price
        values[2] = qty
        _check_enums(side, order_type, tif, stp)
        self._events_len = 0
        self._place(values[0], owner, <int>side, values[1], values[2], <int>order_type, <int>tif,
                    post_only, <int>stp)
        cdef PyObject* args[3]
        args[0] = <PyObject*>order_id
        args[1] = <PyObject*>price
        args[2] = <PyObject*>qty
        return evo_list_args(self._events, self._events_len, EVENT_WIDTH, args, values, 3)

    def cancel(self, order_id):
        """Cancel an open order and return its events.  O(1), or O(L) if its level empties."""
        cdef EvoRef id, none
        id.v = order_id
        id.o = <PyObject*>order_id if type(order_id) is int else NULL
        none.v, none.o = 0, NULL
        self._events_len = 0
        self._cancel(id.v)
        return evo_list_refs(self._events, self._events_len, EVENT_WIDTH, id, none, none)

    def amend(self, order_id, price, qty):
        """Change an open order's price (tiyn) and/or open qty; see ReferenceBook.amend."""
        cdef int64_t values[3]
        values[0] = order_id
        values[1] = price
        values[2] = qty
        self._events_len = 0
        self._amend(values[0], values[1], values[2])
        cdef PyObject* args[3]
        args[0] = <PyObject*>order_id
        args[1] = <PyObject*>price
        args[2] = <PyObject*>qty
        return evo_list_args(self._events, self._events_len, EVENT_WIDTH, args, values, 3)

    def cancel_all(self, int64_t owner, side=None):
        """Cancel the owner's open orders (one side if given) in the order they were
        accepted.  O(orders canceled)."""
        cdef int c_side = -1
        if side is not None:
            if side != BUY and side != SELL:
                raise ValueError(f"{side} is not a valid Side")
            c_side = side
        self._events_len = 0
        self._cancel_all(owner, c_side)
        return self._event_list(0, self._events_len)

    # -- commands: the C API (book.pxd), for compiled callers --------------------------------
    # Each runs one command and returns the count of its event records, left in _events
    # until the book's next command.  Out-of-range enumerations raise ValueError, as above.

    cdef Py_ssize_t c_place(self, int64_t order_id, int64_t owner, int side, int64_t price,
                            int64_t qty, int order_type, int tif, bint post_only,
                            int stp) except -1:
        _check_enums(side, order_type, tif, stp)
        self._events_len = 0
        self._place(order_id, owner, side, price, qty, order_type, tif, post_only, stp)
        return self._events_len

    cdef Py_ssize_t c_cancel(self, int64_t order_id) except -1:
        self._events_len = 0
        self._cancel(order_id)
        return self._events_len

    cdef Py_ssize_t c_amend(self, int64_t order_id, int64_t price, int64_t qty) except -1:
        self._events_len = 0
        self._amend(order_id, price, qty)
        return self._events_len

    cdef Py_ssize_t c_cancel_all(self, int64_t owner, int side) except -1:
        if side < -1 or side > SELL:
            raise ValueError(f"{side} is not a valid Side")
        self._events_len = 0
        self._cancel_all(owner, side)
        return self._events_len

    def execute_batch(self, const int64_t[::1] commands not None):
        """Run many commands (``engine.batch`` records) and return ``(events, offsets)``:
        the flat int64 event records and, per command, the index of its first record.

        Every command is checked for out-of-range enumerations before any runs, so a bad
        batch raises ValueError and changes nothing.
        """
        if commands.shape[0] % COMMAND_WIDTH:
            raise ValueError(f"command array length {commands.shape[0]} is not a multiple of "
                             f"{COMMAND_WIDTH}")
        cdef Py_ssize_t n = commands.shape[0] // COMMAND_WIDTH
        cdef Py_ssize_t i
        cdef const int64_t* c
        for i in range(n):
            c = &commands[i * COMMAND_WIDTH]
            if c[0] == OP_PLACE:
                _check_enums(c[3], c[6], c[7], c[9])
            elif c[0] == OP_CANCEL_ALL:
                if c[3] < -1 or c[3] > SELL:
                    raise ValueError(f"{c[3]} is not a valid Side")
            elif c[0] != OP_CANCEL and c[0] != OP_AMEND:
                raise ValueError(f"command {i}: unknown op {c[0]}")
        cdef array.array offsets = array.clone(_INT64_TEMPLATE, n, zero=False)
        cdef int64_t* offsets_data = <int64_t*>offsets.data.as_voidptr
        self._events_len = 0
        for i in range(n):
            c = &commands[i * COMMAND_WIDTH]
            offsets_data[i] = self._events_len
            if c[0] == OP_PLACE:
                self._place(c[1], c[2], <int>c[3], c[4], c[5], <int>c[6], <int>c[7], c[8] != 0,
                            <int>c[9])
            elif c[0] == OP_CANCEL:
                self._cancel(c[1])
            elif c[0] == OP_AMEND:
                self._amend(c[1], c[4], c[5])
            else:
                self._cancel_all(c[2], <int>c[3])
        cdef array.array events = array.clone(
            _INT64_TEMPLATE, self._events_len * EVENT_WIDTH, zero=False)
        if self._events_len:
            memcpy(events.data.as_voidptr, self._events,
                   self._events_len * EVENT_WIDTH * sizeof(int64_t))
        self._events_len = 0
        return events, offsets

    # -- queries ----------------------------------------------------------------------------

    @property
    def seq(self):
        """The sequence number of the last L2 change (0 before any)."""
        return self._seq

    def __len__(self):
        """The number of open orders."""
        return self._index.size

    def __contains__(self, order_id):
        # Anything that is not an int64 cannot be an order id here (as in a dict of ints).
        if not isinstance(order_id, int) or not -(2**63) <= order_id < 2**63:
            return False
        return idmap_get(&self._index, order_id) != -1

    def best_bid(self):
        """(price, aggregate qty) of the best bid, or None.  O(1)."""
        return self._best(BUY)

    def best_ask(self):
        """(price, aggregate qty) of the best ask, or None.  O(1)."""
        return self._best(SELL)

    def depth(self, side, levels=None):
        """(price, aggregate qty) per level of one side, best first."""
        if side != BUY and side != SELL:
            raise ValueError(f"{side} is not a valid Side")
        cdef int c_side = side
        cdef Py_ssize_t i
        cdef Level* level
        out = []
        for i in range(self._side_len[c_side] - 1, -1, -1):
            if levels is not None and len(out) >= levels:
                break
            level = &self._levels[self._sides[c_side][i]]
            out.append((level.price, level.total))
        return out

    def order(self, int64_t order_id):
        """(order_id, owner, side, price, open qty) of an open order, or None."""
        cdef int32_t slot = idmap_get(&self._index, order_id)
        return None if slot == -1 else self._order_tuple(slot)

    def orders(self):
        """Every open order as (order_id, owner, side, price, open qty): bids then asks,
        each side best price first, each level in time priority."""
        out = []
        cdef int side
        cdef Py_ssize_t i
        cdef int32_t slot
        for side in range(2):
            for i in range(self._side_len[side] - 1, -1, -1):
                slot = self._levels[self._sides[side][i]].head
                while slot != -1:
                    out.append(self._order_tuple(slot))
                    slot = self._orders[slot].next
        return out

    def export_orders(self):
        """Every open order with all it needs to be rebuilt, as (order_id, owner, side, price,
        open qty, post_only, stp): bids then asks, best price first, time priority within a
        level.  With ``seq`` and ``last_trade_id`` this is the whole state (for snapshots)."""
        out = []
        cdef int side
        cdef Py_ssize_t i
        cdef int32_t slot
        cdef Order* order
        for side in range(2):
            for i in range(self._side_len[side] - 1, -1, -1):
                slot = self._levels[self._sides[side][i]].head
                while slot != -1:
                    order = &self._orders[slot]
                    out.append((order.order_id, order.owner, order.side, order.price, order.qty,
                                order.post_only != 0, order.stp))
                    slot = order.next
        return out

    @property
    def last_trade_id(self):
        """The id of the last trade this book printed (0 before any)."""
        return self._last_trade_id

    def restore(self, orders, int64_t seq, int64_t last_trade_id):
        """Rebuild an empty book from ``export_orders()`` output and its counters.

        Orders rest in the given order (so time priority is kept); no events, no matching.
        Each owner's cancel-all order becomes ascending order id, which is acceptance order
        when ids are handed out in sequence (as the exchange does).  ValueError if the book
        is not empty or a record would cross the book or repeat an id.
        """
        if self._index.size:
            raise ValueError("restore needs an empty book")
        cdef int32_t slot
        cdef Order* order
        self._begin_command()
        for order_id, owner, side, price, qty, post_only, stp in orders:
            _check_enums(side, LIMIT, GTC, stp)
            if idmap_get(&self._index, order_id) != -1 or qty <= 0 or price <= 0:
                raise ValueError(f"bad order record {order_id}")
            if self._crosses(side, price):
                raise ValueError(f"order {order_id} would cross the book")
            slot = self._alloc_order()
            order = &self._orders[slot]
            order.order_id = order_id
            order.owner = owner
            order.side = side
            order.price = price
            order.qty = qty
            order.post_only = post_only
            order.stp = stp
            order.prev = -1
            order.next = -1
            order.level = -1
            if idmap_put(&self._index, order_id, slot):
                raise MemoryError()
            self._link(slot)
        for order_id in sorted(record[0] for record in orders):
            self._owner_append(idmap_get(&self._index, order_id))
        self._touched_len = 0
        self._seq = seq
        self._last_trade_id = last_trade_id

    def owner_orders(self, int64_t owner):
        """The owner's open order ids, in the order they were accepted."""
        out = []
        cdef int32_t list_slot = idmap_get(&self._owner_index, owner)
        if list_slot == -1:
            return out
        cdef int32_t slot = self._owner_lists[list_slot].head
        while slot != -1:
            out.append(self._orders[slot].order_id)
            slot = self._orders[slot].owner_next
        return out

    def check_integrity(self):
        """Raise BookIntegrityError if any invariant of the book is broken.  O(n)."""
        cdef int side
        cdef Py_ssize_t i
        cdef int32_t slot, prev
        cdef Level* level
        cdef Order* order
        cdef int64_t total, count, seen = 0, owned = 0
        bid, ask = self.best_bid(), self.best_ask()
        if bid is not None and ask is not None and bid[0] >= ask[0]:
            raise BookIntegrityError(f"book is crossed: bid {bid[0]} >= ask {ask[0]}")
        for side in range(2):
            for i in range(self._side_len[side]):
                level = &self._levels[self._sides[side][i]]
                if i and _key(side, level.price) <= _key(
                        side, self._levels[self._sides[side][i - 1]].price):
                    raise BookIntegrityError(f"side {side} levels out of order at {level.price}")
                if level.side != side or level.count <= 0:
                    raise BookIntegrityError(f"level {level.price} misplaced or empty")
                total = 0
                count = 0
                prev = -1
                slot = level.head
                while slot != -1:
                    order = &self._orders[slot]
                    if order.prev != prev or order.qty <= 0 or order.price != level.price \
                            or order.side != side or order.level != self._sides[side][i]:
                        raise BookIntegrityError(f"order {order.order_id} misplaced or empty")
                    if idmap_get(&self._index, order.order_id) != slot:
                        raise BookIntegrityError(f"order {order.order_id} is not indexed")
                    total += order.qty
                    count += 1
                    prev = slot
                    slot = order.next
                if prev != level.tail or count != level.count:
                    raise BookIntegrityError(f"level {level.price}: queue links broken")
                if total != level.total:
                    raise BookIntegrityError(
                        f"level {level.price}: aggregate {level.total} != sum of orders {total}")
                seen += count
        if seen != <int64_t>self._index.size:
            raise BookIntegrityError(f"{self._index.size} orders indexed, {seen} on levels")
        cdef size_t cell
        cdef int64_t owner
        cdef int32_t list_slot
        for cell in range(self._owner_index.mask + 1):
            list_slot = self._owner_index.cells[cell].value
            if list_slot == -1:
                continue
            owner = self._owner_index.cells[cell].key
            slot = self._owner_lists[list_slot].head
            prev = -1
            while slot != -1:
                if self._orders[slot].owner != owner or self._orders[slot].owner_prev != prev:
                    raise BookIntegrityError(f"owner {owner}: list links broken")
                owned += 1
                prev = slot
                slot = self._orders[slot].owner_next
            if prev != self._owner_lists[list_slot].tail or prev == -1:
                raise BookIntegrityError(f"owner {owner}: list tail broken")
        if owned != seen:
            raise BookIntegrityError(f"{owned} orders by owner, {seen} open")

    # -- the commands, in C -----------------------------------------------------------------

    cdef int _place(self, int64_t order_id, int64_t owner, int side, int64_t price,
                    int64_t qty, int order_type, int tif, bint post_only, int stp) except -1:
        cdef int code = 0
        cdef size_t cell  # where order_id goes in the index (idmap_put_at below)
        if idmap_find(&self._index, order_id, &cell) != -1:
            code = R_DUPLICATE_ORDER_ID
        elif qty <= 0:
            code = R_INVALID_QTY
        elif price < 0 or (price == 0 and order_type == LIMIT):
            code = R_INVALID_PRICE
        elif order_type == MARKET and tif == GTC:
            code = R_INVALID_TIF
        elif post_only and (order_type == MARKET or tif != GTC):
            code = R_INVALID_TIF
        elif post_only and self._crosses(side, price):
            code = R_POST_ONLY_WOULD_TRADE
        if code:
            self._emit(EV_REJECTED, order_id, code, 0, 0, 0, 0, 0)
            return 0
        self._emit(EV_ACCEPTED, order_id, side, price, qty, 0, 0, 0)
        self._begin_command()
        if tif == FOK and self._fillable(owner, side, price, qty, stp) < qty:
            self._emit(EV_EXPIRED, order_id, qty, 0, 0, 0, 0, 0)
            return 0
        cdef int32_t slot = self._alloc_order()
        cdef Order* order = &self._orders[slot]
        order.order_id = order_id
        order.owner = owner
        order.side = side
        order.price = price
        order.qty = qty
        order.post_only = post_only
        order.stp = stp
        order.prev = -1
        order.next = -1
        order.level = -1
        if idmap_put_at(&self._index, cell, order_id, slot):
            raise MemoryError()
        self._owner_append(slot)
        self._execute(slot, order_type == LIMIT and tif == GTC)
        self._emit_levels()
        return 0

    cdef int _cancel(self, int64_t order_id) except -1:
        cdef int32_t slot = idmap_get(&self._index, order_id)
        if slot == -1:
            self._emit(EV_CANCEL_REJECTED, order_id, R_UNKNOWN_ORDER, 0, 0, 0, 0, 0)
            return 0
        self._begin_command()
        self._emit(EV_CANCELED, order_id, self._orders[slot].qty, REASON_USER, 0, 0, 0, 0)
        self._remove(slot)
        self._emit_levels()
        return 0

    cdef int _amend(self, int64_t order_id, int64_t price, int64_t qty) except -1:
        cdef int code = 0
        cdef int32_t slot = idmap_get(&self._index, order_id)
        cdef Order* order = NULL
        if slot == -1:
            code = R_UNKNOWN_ORDER
        else:
            order = &self._orders[slot]
            if qty <= 0:
                code = R_INVALID_QTY
            elif price <= 0:
                code = R_INVALID_PRICE
            elif order.post_only and price != order.price and self._crosses(order.side, price):
                code = R_POST_ONLY_WOULD_TRADE
        if code:
            self._emit(EV_AMEND_REJECTED, order_id, code, 0, 0, 0, 0, 0)
            return 0
        self._begin_command()
        cdef Level* level
        if price == order.price and qty <= order.qty:
            self._emit(EV_AMENDED, order_id, price, qty, 1, 0, 0, 0)
            if qty < order.qty:
                self._touch(order.level)
                level = &self._levels[order.level]
                level.total -= order.qty - qty
                order.qty = qty
            self._emit_levels()
            return 0
        self._emit(EV_AMENDED, order_id, price, qty, 0, 0, 0, 0)
        self._unlink(slot)
        order.price = price
        order.qty = qty
        self._execute(slot, True)
        self._emit_levels()
        return 0

    cdef int _cancel_all(self, int64_t owner, int side) except -1:
        self._begin_command()
        cdef int32_t list_slot = idmap_get(&self._owner_index, owner)
        if list_slot == -1:
            return 0
        cdef int32_t slot = self._owner_lists[list_slot].head
        cdef int32_t next_slot
        cdef Order* order
        while slot != -1:
            order = &self._orders[slot]
            next_slot = order.owner_next
            if side < 0 or order.side == side:
                self._emit(EV_CANCELED, order.order_id, order.qty, REASON_CANCEL_ALL, 0, 0, 0, 0)
                self._remove(slot)
            slot = next_slot
        self._emit_levels()
        return 0

    # -- matching ---------------------------------------------------------------------------

    cdef bint _crosses(self, int side, int64_t price) noexcept:
        """Would an order on ``side`` with limit ``price`` meet the opposite best?"""
        cdef int opposite = 1 - side
        if self._side_len[opposite] == 0:
            return False
        cdef int32_t best = self._sides[opposite][self._side_len[opposite] - 1]
        return _price_ok(side, price, self._levels[best].price)

    cdef int64_t _fillable(self, int64_t owner, int side, int64_t price, int64_t qty,
                           int stp) noexcept:
        """How much a FOK order could fill right now, self-trade prevention included."""
        cdef int opposite = 1 - side
        cdef Py_ssize_t i
        cdef int32_t slot
        cdef Level* level
        cdef Order* maker
        cdef int64_t total = 0
        for i in range(self._side_len[opposite] - 1, -1, -1):
            level = &self._levels[self._sides[opposite][i]]
            if not _price_ok(side, price, level.price):
                return total
            slot = level.head
            while slot != -1:
                maker = &self._orders[slot]
                if maker.owner == owner and stp != STP_NONE:
                    if stp != STP_CANCEL_OLDEST:
                        return total  # matching would stop here
                else:
                    total += maker.qty
                    if total >= qty:
                        return total
                slot = maker.next
        return total

    cdef int _execute(self, int32_t taker_slot, bint rests) except -1:
        """Match the taker (indexed, not on a level); then rest, expire or cancel its rest."""
        cdef Order* taker = &self._orders[taker_slot]
        cdef int opposite = 1 - taker.side
        cdef int32_t level_slot, maker_slot
        cdef Level* level
        cdef Order* maker
        cdef int64_t fill
        cdef bint canceled_by_stp = False
        while taker.qty > 0 and self._side_len[opposite] > 0:
            level_slot = self._sides[opposite][self._side_len[opposite] - 1]
            level = &self._levels[level_slot]
            if not _price_ok(taker.side, taker.price, level.price):
                break
            maker_slot = level.head
            maker = &self._orders[maker_slot]
            if maker.owner == taker.owner and taker.stp != STP_NONE:
                if taker.stp == STP_CANCEL_OLDEST or taker.stp == STP_CANCEL_BOTH:
                    self._emit(EV_CANCELED, maker.order_id, maker.qty, REASON_SELF_TRADE,
                               0, 0, 0, 0)
                    self._remove(maker_slot)
                if taker.stp == STP_CANCEL_NEWEST or taker.stp == STP_CANCEL_BOTH:
                    canceled_by_stp = True
                    break
                continue
            fill = taker.qty if taker.qty < maker.qty else maker.qty
            self._last_trade_id += 1
            self._emit(EV_TRADE, self._last_trade_id, maker.price, fill, maker.order_id,
                       taker.order_id, taker.side, 0)
            self._touch(level_slot)
            maker.qty -= fill
            taker.qty -= fill
            level.total -= fill
            self._emit(EV_FILLED, maker.order_id, taker.order_id, maker.price, fill, maker.qty,
                       MAKER, 0)
            self._emit(EV_FILLED, taker.order_id, maker.order_id, maker.price, fill, taker.qty,
                       TAKER, 0)
            if maker.qty == 0:
                self._remove(maker_slot)
        if taker.qty == 0:
            self._forget(taker_slot)
        elif canceled_by_stp:
            self._emit(EV_CANCELED, taker.order_id, taker.qty, REASON_SELF_TRADE, 0, 0, 0, 0)
            self._forget(taker_slot)
        elif rests:
            self._link(taker_slot)
        else:
            self._emit(EV_EXPIRED, taker.order_id, taker.qty, 0, 0, 0, 0, 0)
            self._forget(taker_slot)
        return 0

    # -- levels -----------------------------------------------------------------------------

    cdef Py_ssize_t _level_position(self, int side, int64_t price) noexcept:
        """Index in the side's array of the level at ``price`` or where it would go."""
        cdef int64_t target = _key(side, price)
        cdef Py_ssize_t lo = 0, hi = self._side_len[side], mid
        cdef int32_t* levels = self._sides[side]
        # Most activity is at or next to the touch, at the end of the array: look there first.
        if hi and _key(side, self._levels[levels[hi - 1]].price) <= target:
            return hi - 1 if _key(side, self._levels[levels[hi - 1]].price) == target else hi
        while lo < hi:
            mid = (lo + hi) >> 1
            if _key(side, self._levels[levels[mid]].price) < target:
                lo = mid + 1
            else:
                hi = mid
        return lo

    cdef int32_t _open_level(self, int side, int64_t price) except -2:
        """The level at ``price``, created (and marked touched at 0) if missing."""
        cdef Py_ssize_t pos = self._level_position(side, price)
        cdef int32_t* levels = self._sides[side]
        if pos < self._side_len[side] and self._levels[levels[pos]].price == price:
            return levels[pos]
        cdef int32_t slot = self._alloc_level()
        cdef Level* level = &self._levels[slot]
        level.price = price
        level.total = 0
        level.head = -1
        level.tail = -1
        level.count = 0
        level.side = side
        level.epoch = self._epoch
        self._touch_new(slot)
        if self._side_len[side] == self._side_cap[side]:
            self._side_cap[side] *= 2
            self._sides[side] = <int32_t*>_grow(
                self._sides[side], self._side_cap[side], sizeof(int32_t))
        levels = self._sides[side]
        memmove(&levels[pos + 1], &levels[pos], (self._side_len[side] - pos) * sizeof(int32_t))
        levels[pos] = slot
        self._side_len[side] += 1
        return slot

    cdef void _close_level(self, int32_t slot) noexcept:
        """Take an empty level off its side and free its slot."""
        cdef Level* level = &self._levels[slot]
        cdef int side = level.side
        cdef Py_ssize_t pos = self._level_position(side, level.price)
        cdef int32_t* levels = self._sides[side]
        memmove(&levels[pos], &levels[pos + 1], (self._side_len[side] - pos - 1) * sizeof(int32_t))
        self._side_len[side] -= 1
        if level.epoch == self._epoch:  # its L2 entry now reads 0 (see _emit_levels)
            self._touched[level.touched * TOUCHED_WIDTH + 4] = -1
        level.count = self._levels_free
        self._levels_free = slot

    cdef object _best(self, int side):
        if self._side_len[side] == 0:
            return None
        cdef Level* level = &self._levels[self._sides[side][self._side_len[side] - 1]]
        return (level.price, level.total)

    # -- orders on levels and in owner lists -------------------------------------------------

    cdef int _link(self, int32_t slot) except -1:
        """Append a resting order at the back of its price level's queue."""
        cdef int32_t level_slot = self._open_level(
            self._orders[slot].side, self._orders[slot].price)
        self._touch(level_slot)
        cdef Level* level = &self._levels[level_slot]
        cdef Order* order = &self._orders[slot]
        order.level = level_slot
        order.next = -1
        order.prev = level.tail
        if level.tail != -1:
            self._orders[level.tail].next = slot
        else:
            level.head = slot
        level.tail = slot
        level.count += 1
        level.total += order.qty
        return 0

    cdef int _unlink(self, int32_t slot) except -1:
        """Take an order out of its level's queue (closing the level if it empties)."""
        cdef Order* order = &self._orders[slot]
        cdef int32_t level_slot = order.level
        self._touch(level_slot)
        cdef Level* level = &self._levels[level_slot]
        if order.prev != -1:
            self._orders[order.prev].next = order.next
        else:
            level.head = order.next
        if order.next != -1:
            self._orders[order.next].prev = order.prev
        else:
            level.tail = order.prev
        level.count -= 1
        level.total -= order.qty
        order.level = -1
        if level.count == 0:
            self._close_level(level_slot)
        return 0

    cdef int _owner_append(self, int32_t slot) except -1:
        cdef Order* order = &self._orders[slot]
        cdef int32_t list_slot = idmap_get(&self._owner_index, order.owner)
        if list_slot == -1:
            list_slot = self._alloc_owner_list()
            order = &self._orders[slot]
            self._owner_lists[list_slot].head = -1
            self._owner_lists[list_slot].tail = -1
            self._owner_lists[list_slot].owner = order.owner
            if idmap_put(&self._owner_index, order.owner, list_slot):
                raise MemoryError()
        cdef OwnerList* owned = &self._owner_lists[list_slot]
        order.owner_slot = list_slot
        order.owner_next = -1
        order.owner_prev = owned.tail
        if owned.tail != -1:
            self._orders[owned.tail].owner_next = slot
        else:
            owned.head = slot
        owned.tail = slot
        return 0

    cdef void _forget(self, int32_t slot) noexcept:
        """Drop an order (already off its level) from the index and its owner's list."""
        cdef Order* order = &self._orders[slot]
        cdef OwnerList* owned = &self._owner_lists[order.owner_slot]
        if order.owner_prev != -1:
            self._orders[order.owner_prev].owner_next = order.owner_next
        else:
            owned.head = order.owner_next
        if order.owner_next != -1:
            self._orders[order.owner_next].owner_prev = order.owner_prev
        else:
            owned.tail = order.owner_prev
        if owned.head == -1:
            idmap_del(&self._owner_index, order.owner)
            owned.head = self._owner_lists_free  # free-list link
            self._owner_lists_free = order.owner_slot
        idmap_del(&self._index, order.order_id)
        order.next = self._orders_free
        self._orders_free = slot
        self._orders_used -= 1

    cdef int _remove(self, int32_t slot) except -1:
        self._unlink(slot)
        self._forget(slot)
        return 0

    # -- pools ------------------------------------------------------------------------------

    cdef int32_t _alloc_order(self) except -1:
        cdef int32_t slot
        if self._orders_free != -1:
            slot = self._orders_free
            self._orders_free = self._orders[slot].next
        else:
            if self._orders_used == self._orders_cap:
                self._orders_cap *= 2
                self._orders = <Order*>_grow(self._orders, self._orders_cap, sizeof(Order))
            slot = self._orders_used
        self._orders_used += 1
        return slot

    cdef int32_t _alloc_level(self) except -1:
        cdef int32_t slot
        if self._levels_free != -1:
            slot = self._levels_free
            self._levels_free = self._levels[slot].count
            return slot
        # The pool is full: double it, return the first new slot, chain the rest as free.
        slot = self._levels_cap
        self._levels_cap = self._levels_cap * 2 if self._levels_cap else 256
        self._levels = <Level*>_grow(self._levels, self._levels_cap, sizeof(Level))
        cdef int32_t i
        for i in range(self._levels_cap - 1, slot, -1):
            self._levels[i].count = self._levels_free
            self._levels_free = i
        return slot

    cdef int32_t _alloc_owner_list(self) except -1:
        cdef int32_t slot
        if self._owner_lists_free != -1:
            slot = self._owner_lists_free
            self._owner_lists_free = self._owner_lists[slot].head
            return slot
        slot = self._owner_lists_cap
        self._owner_lists_cap = self._owner_lists_cap * 2 if self._owner_lists_cap else 64
        self._owner_lists = <OwnerList*>_grow(
            self._owner_lists, self._owner_lists_cap, sizeof(OwnerList))
        cdef int32_t i
        for i in range(self._owner_lists_cap - 1, slot, -1):
            self._owner_lists[i].head = self._owner_lists_free
            self._owner_lists_free = i
        return slot

    # -- L2 change tracking -----------------------------------------------------------------

    cdef inline void _begin_command(self) noexcept:
        self._epoch += 1
        self._touched_len = 0

    cdef int _touched_append(self, int32_t level_slot, int64_t before) except -1:
        if self._touched_len == self._touched_cap:
            self._touched_cap *= 2
            self._touched = <int64_t*>_grow(
                self._touched, self._touched_cap * TOUCHED_WIDTH, sizeof(int64_t))
        cdef Level* level = &self._levels[level_slot]
        cdef int64_t* entry = &self._touched[self._touched_len * TOUCHED_WIDTH]
        entry[0] = level.side
        entry[1] = level.price
        entry[2] = before
        entry[4] = level_slot
        level.touched = <int32_t>self._touched_len
        self._touched_len += 1
        return 0

    cdef inline int _touch(self, int32_t level_slot) except -1:
        """Remember a level's aggregate before this command first changes it."""
        cdef Level* level = &self._levels[level_slot]
        if level.epoch != self._epoch:
            level.epoch = self._epoch
            self._touched_append(level_slot, level.total)
        return 0

    cdef int _touch_new(self, int32_t level_slot) except -1:
        """A level was created: its 'before' is 0, unless this command already saw a level
        at that price (emptied and closed earlier in the same command), whose entry then
        follows the new level."""
        cdef Py_ssize_t i
        cdef Level* level = &self._levels[level_slot]
        cdef int64_t* entry
        for i in range(self._touched_len):
            entry = &self._touched[i * TOUCHED_WIDTH]
            if entry[0] == level.side and entry[1] == level.price:
                entry[4] = level_slot
                level.touched = <int32_t>i
                return 0
        self._touched_append(level_slot, 0)
        return 0

    cdef int _emit_levels(self) except -1:
        """Emit a LEVEL record per touched level whose aggregate changed, with a new seq."""
        cdef Py_ssize_t i
        cdef int64_t* entry
        cdef int32_t slot
        cdef bint changed = False
        for i in range(self._touched_len):
            entry = &self._touched[i * TOUCHED_WIDTH]
            slot = <int32_t>entry[4]
            entry[3] = self._levels[slot].total if slot != -1 else 0
            if entry[3] != entry[2]:
                changed = True
        if not changed:
            return 0
        self._seq += 1
        for i in range(self._touched_len):
            entry = &self._touched[i * TOUCHED_WIDTH]
            if entry[3] != entry[2]:
                self._emit(EV_LEVEL, entry[0], entry[1], entry[3], self._seq, 0, 0, 0)
        return 0

    # -- events -----------------------------------------------------------------------------

    cdef inline int _emit(self, int64_t kind, int64_t a, int64_t b, int64_t c, int64_t d,
                          int64_t e, int64_t f, int64_t g) except -1:
        if self._events_len == self._events_cap:
            self._events_cap *= 2
            self._events = <int64_t*>_grow(
                self._events, self._events_cap * EVENT_WIDTH, sizeof(int64_t))
        cdef int64_t* r = &self._events[self._events_len * EVENT_WIDTH]
        r[0] = kind
        r[1] = a
        r[2] = b
        r[3] = c
        r[4] = d
        r[5] = e
        r[6] = f
        r[7] = g
        self._events_len += 1
        return 0

    cdef list _event_list(self, Py_ssize_t start, Py_ssize_t end):
        """The records start..end as ``engine.events`` objects (eventobjects.h)."""
        return evo_list(&self._events[start * EVENT_WIDTH], end - start, EVENT_WIDTH)

    cdef tuple _order_tuple(self, int32_t slot):
        cdef Order* order = &self._orders[slot]
        return (order.order_id, order.owner, order.side, order.price, order.qty)


cdef object _place_ints(object self, const int64_t* v, PyObject* const* args):
    """percall.h's fast path of ``place``: order id, owner, side, price and qty read from
    five exact ints (``args``, borrowed from the caller), the side already checked, every
    other parameter its default.  ``self`` is an OrderBook: pc_place is only reached through
    the type's method descriptor, which checks it."""
    cdef OrderBook book = <OrderBook>self
    book._events_len = 0
    book._place(v[0], v[1], <int>v[2], v[3], v[4], LIMIT, GTC, False, STP_NONE)
    cdef EvoRef id, price, qty
    id.v, id.o = v[0], args[0]
    price.v, price.o = v[3], args[3]
    qty.v, qty.o = v[4], args[4]
    return evo_list_refs(book._events, book._events_len, EVENT_WIDTH, id, price, qty)


_register_event_types()
pc_install(OrderBook, <void*>_place_ints)
