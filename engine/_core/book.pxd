# Declarations of the compiled order book (book.pyx), so other compiled modules (the
# exchange, exchange.pyx) can cimport OrderBook and call its commands in C: c_place,
# c_cancel, c_cancel_all run a command and leave its event records (EVENT_WIDTH int64 each,
# the engine.batch format) in the book's own buffer, ``_events``, valid until its next
# command, returning how many there are.  No event objects, no Python arguments.

cimport cython
from libc.stdint cimport int8_t, int32_t, int64_t

from engine._core.idmap cimport IdMap


cdef struct Order:
    int64_t order_id
    int64_t owner
    int64_t price        # quote minor units (tiyn)
    int64_t qty          # open quantity, base minor units
    int32_t prev         # neighbours in the level's FIFO queue (-1: none)
    int32_t next         # also the free-list link while the slot is unused
    int32_t owner_prev   # neighbours in the owner's list of open orders
    int32_t owner_next
    int32_t owner_slot   # the owner's list in OrderBook._owner_lists
    int32_t level        # the level slot, -1 while the order is not on a level
    int8_t side
    int8_t post_only
    int8_t stp


cdef struct Level:
    int64_t price
    int64_t total        # aggregate open quantity of the level's orders
    int64_t epoch        # the command that last touched it (for L2 change tracking)
    int32_t head         # oldest order (first to trade)
    int32_t tail         # newest order
    int32_t count        # orders on the level; also the free-list link when unused
    int32_t touched      # its entry in OrderBook._touched while epoch is the current command's
    int8_t side


cdef struct OwnerList:
    int32_t head
    int32_t tail
    int64_t owner


# Enumerations (engine.types) and record kinds (engine.batch): the numbers are a format.
cdef enum:
    BUY = 0
    SELL = 1
    LIMIT = 0
    MARKET = 1
    GTC = 0
    IOC = 1
    FOK = 2
    STP_NONE = 0
    STP_CANCEL_NEWEST = 1
    STP_CANCEL_OLDEST = 2
    STP_CANCEL_BOTH = 3

    OP_PLACE = 1
    OP_CANCEL = 2
    OP_AMEND = 3
    OP_CANCEL_ALL = 4
    COMMAND_WIDTH = 10

    EV_ACCEPTED = 1
    EV_REJECTED = 2
    EV_FILLED = 3
    EV_CANCELED = 4
    EV_EXPIRED = 5
    EV_AMENDED = 6
    EV_AMEND_REJECTED = 7
    EV_CANCEL_REJECTED = 8
    EV_TRADE = 9
    EV_LEVEL = 10
    EVENT_WIDTH = 8

    MAKER = 0
    TAKER = 1
    REASON_USER = 0
    REASON_SELF_TRADE = 1
    REASON_CANCEL_ALL = 2

    TOUCHED_WIDTH = 5  # side, price, aggregate before, aggregate after, level slot (-1: gone)

    R_DUPLICATE_ORDER_ID = 1
    R_INVALID_PRICE = 2
    R_INVALID_QTY = 3
    R_POST_ONLY_WOULD_TRADE = 4
    R_UNKNOWN_ORDER = 5
    R_INVALID_TIF = 6


# final: nothing subclasses the book, so its own cdef methods are called directly (and the C
# compiler may inline them) rather than through the method table; callers in other modules
# (exchange.pyx) still go through the table.
@cython.final
cdef class OrderBook:
    # The commands in C (see the top): the count of event records left in _events.
    cdef Py_ssize_t c_place(self, int64_t order_id, int64_t owner, int side, int64_t price,
                            int64_t qty, int order_type, int tif, bint post_only,
                            int stp) except -1
    cdef Py_ssize_t c_cancel(self, int64_t order_id) except -1
    cdef Py_ssize_t c_amend(self, int64_t order_id, int64_t price, int64_t qty) except -1
    cdef Py_ssize_t c_cancel_all(self, int64_t owner, int side) except -1

    # Pools of orders, levels and owner lists; slots are reused through free lists.
    cdef Order* _orders
    cdef int32_t _orders_cap
    cdef int32_t _orders_free
    cdef int32_t _orders_used
    cdef Level* _levels
    cdef int32_t _levels_cap
    cdef int32_t _levels_free
    cdef OwnerList* _owner_lists
    cdef int32_t _owner_lists_cap
    cdef int32_t _owner_lists_free

    # Each side: level slots sorted so that the best price is the last element.
    cdef int32_t* _sides[2]
    cdef int32_t _side_len[2]
    cdef int32_t _side_cap[2]

    cdef IdMap _index         # order_id -> order slot
    cdef IdMap _owner_index   # owner -> owner list slot

    # Event records of the current call (EVENT_WIDTH int64 each).
    cdef int64_t* _events
    cdef Py_ssize_t _events_len
    cdef Py_ssize_t _events_cap

    # Levels touched by the current command: side, price, aggregate before, after.
    cdef int64_t* _touched
    cdef Py_ssize_t _touched_len
    cdef Py_ssize_t _touched_cap

    cdef int64_t _epoch
    cdef int64_t _seq
    cdef int64_t _last_trade_id

    cdef int _place(self, int64_t order_id, int64_t owner, int side, int64_t price, int64_t qty,
                    int order_type, int tif, bint post_only, int stp) except -1
    cdef int _cancel(self, int64_t order_id) except -1
    cdef int _amend(self, int64_t order_id, int64_t price, int64_t qty) except -1
    cdef int _cancel_all(self, int64_t owner, int side) except -1
    cdef bint _crosses(self, int side, int64_t price) noexcept
    cdef int64_t _fillable(self, int64_t owner, int side, int64_t price, int64_t qty,
                           int stp) noexcept
    cdef int _execute(self, int32_t taker_slot, bint rests) except -1
    cdef Py_ssize_t _level_position(self, int side, int64_t price) noexcept
    cdef int32_t _open_level(self, int side, int64_t price) except -2
    cdef void _close_level(self, int32_t slot) noexcept
    cdef object _best(self, int side)
    cdef int _link(self, int32_t slot) except -1
    cdef int _unlink(self, int32_t slot) except -1
    cdef int _owner_append(self, int32_t slot) except -1
    cdef void _forget(self, int32_t slot) noexcept
    cdef int _remove(self, int32_t slot) except -1
    cdef int32_t _alloc_order(self) except -1
    cdef int32_t _alloc_level(self) except -1
    cdef int32_t _alloc_owner_list(self) except -1
    cdef inline void _begin_command(self) noexcept
    cdef int _touched_append(self, int32_t level_slot, int64_t before) except -1
    cdef inline int _touch(self, int32_t level_slot) except -1
    cdef int _touch_new(self, int32_t level_slot) except -1
    cdef int _emit_levels(self) except -1
    cdef inline int _emit(self, int64_t kind, int64_t a, int64_t b, int64_t c, int64_t d,
                          int64_t e, int64_t f, int64_t g) except -1
    cdef list _event_list(self, Py_ssize_t start, Py_ssize_t end)
    cdef tuple _order_tuple(self, int32_t slot)
