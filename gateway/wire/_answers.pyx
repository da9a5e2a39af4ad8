# cython: language_level=3
"""An order's answer written straight to JSON bytes from the engine's reports.

Every ``order.place``, ``order.cancel`` and ``order.amend`` is answered with the order as it
stands and the fills of the request.  Built the general way, that answer is an
``OrderResult`` Struct (``gateway.wire.views.order_result``: a decimal string per price and
quantity, a dict per fill) wrapped in an envelope and encoded by msgspec
(``gateway.wire.protocol.ok``): about 1.2 µs for an order without fills and 2.7 µs with
one, the largest single step of the order path after the exchange.  ``order_answer`` writes
the same bytes in one pass: it reads the reports' fields from their slots (the offsets of
msgspec's member descriptors, checked when this module loads), formats integers and
decimals in C, and copies strings that need no escaping as they are.

It is exact by construction where it can be and by deferring where it cannot: a string
with anything but printable ASCII other than ``"`` and ``\\``, an integer outside 64 bits,
a negative decimal or an unusual scale is handed to msgspec or ``format_units``, whose
output is then copied in.  tests/test_answers.py compares it with the general path on
randomized reports.  Batches (``order.batch``) still build ``OrderResult`` objects: their
items are embedded in a list of dicts.
"""

from cpython.bytes cimport PyBytes_FromStringAndSize
from cpython.long cimport PyLong_AsLongLongAndOverflow
from cpython.mem cimport PyMem_Free, PyMem_Malloc, PyMem_Realloc
from cpython.object cimport Py_EQ, PyObject_IsTrue, PyObject_RichCompareBool
from libc.stdint cimport uint64_t
from libc.string cimport memcpy, strlen

from gateway.wire._structs cimport slot_value, struct_slot

import msgspec

from engine.fixedpoint import format_units
from engine.reports import CommandRejected, FillReport, OrderReport


cdef extern from "Python.h":
    Py_ssize_t PyUnicode_GET_LENGTH(object)
    bint PyUnicode_IS_ASCII(object)
    void* PyUnicode_DATA(object)


cdef object _encode = msgspec.json.Encoder().encode

# -- the reports' slots (gateway/wire/_structs.pxd) ------------------------------------

# OrderReport
cdef Py_ssize_t O_PARTICIPANT_ID = struct_slot(OrderReport, "participant_id")
cdef Py_ssize_t O_ORDER_ID = struct_slot(OrderReport, "order_id")
cdef Py_ssize_t O_CLIENT_ORDER_ID = struct_slot(OrderReport, "client_order_id")
cdef Py_ssize_t O_MARKET = struct_slot(OrderReport, "market")
cdef Py_ssize_t O_SIDE = struct_slot(OrderReport, "side")
cdef Py_ssize_t O_ORDER_TYPE = struct_slot(OrderReport, "order_type")
cdef Py_ssize_t O_PRICE = struct_slot(OrderReport, "price")
cdef Py_ssize_t O_QTY = struct_slot(OrderReport, "qty")
cdef Py_ssize_t O_FILLED_QTY = struct_slot(OrderReport, "filled_qty")
cdef Py_ssize_t O_REMAINING_QTY = struct_slot(OrderReport, "remaining_qty")
cdef Py_ssize_t O_STATUS = struct_slot(OrderReport, "status")
cdef Py_ssize_t O_TS = struct_slot(OrderReport, "ts")
cdef Py_ssize_t O_REASON = struct_slot(OrderReport, "reason")
cdef Py_ssize_t O_MESSAGE = struct_slot(OrderReport, "message")
# FillReport
cdef Py_ssize_t F_ORDER_ID = struct_slot(FillReport, "order_id")
cdef Py_ssize_t F_CLIENT_ORDER_ID = struct_slot(FillReport, "client_order_id")
cdef Py_ssize_t F_MARKET = struct_slot(FillReport, "market")
cdef Py_ssize_t F_SIDE = struct_slot(FillReport, "side")
cdef Py_ssize_t F_TRADE_ID = struct_slot(FillReport, "trade_id")
cdef Py_ssize_t F_FILL_PRICE = struct_slot(FillReport, "fill_price")
cdef Py_ssize_t F_FILL_QTY = struct_slot(FillReport, "fill_qty")
cdef Py_ssize_t F_FEE = struct_slot(FillReport, "fee")
cdef Py_ssize_t F_FEE_ASSET = struct_slot(FillReport, "fee_asset")
cdef Py_ssize_t F_LIQUIDITY = struct_slot(FillReport, "liquidity")
cdef Py_ssize_t F_FILLED_QTY = struct_slot(FillReport, "filled_qty")
cdef Py_ssize_t F_REMAINING_QTY = struct_slot(FillReport, "remaining_qty")
cdef Py_ssize_t F_STATUS = struct_slot(FillReport, "status")
cdef Py_ssize_t F_TS = struct_slot(FillReport, "ts")


# -- which reports an answer is about -----------------------------------------------------
# A command's reports include others' (the maker's side of a fill, a licence sweep, balance
# and book changes): these pick the requesting participant's order out of them, as the
# session's loops over the reports did (tests/test_answers.py keeps those loops and holds
# these to them on randomized report lists), reading the fields from their slots.

cdef object _NEW = "new"
cdef object _REJECTED = "rejected"


cdef inline bint _same(object a, object b) except -1:
    return PyObject_RichCompareBool(a, b, Py_EQ)


def placed_reports(list reports, participant_id):
    """``(mine, last, fills, after)`` of a place command's reports: the participant's new
    (or rejected) order's first report, its last report, its fills in order, and the fill
    after its last report if one came after it (its state is then the fill's); ``mine``
    is None if the order was not reported."""
    cdef object mine = None
    cdef object last = None
    cdef object after = None
    cdef list fills = []
    cdef object status
    for report in reports:
        kind = type(report)
        if kind is OrderReport:
            if not _same(slot_value(report, O_PARTICIPANT_ID), participant_id):
                continue
            # The new order's first report says "new" or "rejected"; reports of older
            # orders (a licence sweep, self-trade cancels) are about something else.
            if mine is None:
                status = slot_value(report, O_STATUS)
                if _same(status, _NEW) or _same(status, _REJECTED):
                    mine = report
            if mine is not None and _same(
                slot_value(report, O_ORDER_ID), slot_value(mine, O_ORDER_ID)
            ):
                last = report
                after = None
        elif kind is FillReport and mine is not None:
            if _same(slot_value(report, F_ORDER_ID), slot_value(mine, O_ORDER_ID)):
                fills.append(report)
                after = report
    return mine, last, fills, after


def changed_reports(list reports, participant_id):
    """``(rejected, target, last, fills, after)`` of a cancel or amend command's reports:
    its first ``CommandRejected`` if it was refused (then nothing else), else None and the
    id of the participant's first reported order, that order's last report, its fills and
    a fill after its last report (``target`` None: no order of the participant was
    reported)."""
    for report in reports:
        if type(report) is CommandRejected:
            return report, None, None, [], None
    cdef object target = None
    cdef object last = None
    cdef object after = None
    cdef list fills = []
    for report in reports:
        kind = type(report)
        if kind is OrderReport:
            if not _same(slot_value(report, O_PARTICIPANT_ID), participant_id):
                continue
            order_id = slot_value(report, O_ORDER_ID)
            if not PyObject_IsTrue(target):
                target = order_id
            if _same(order_id, target):
                last = report
                after = None
        elif kind is FillReport and target is not None:
            if _same(slot_value(report, F_ORDER_ID), target):
                fills.append(report)
                after = report
    return None, target, last, fills, after


# -- the output buffer -------------------------------------------------------------------

cdef enum:
    STACK_BYTES = 2048  # an answer without fills is about 300 bytes, each fill about 330


# One answer being written: a buffer on the caller's stack, moved to the heap only if the
# answer outgrows it (many fills).  Per call, never shared: a thread may call
# ``order_answer`` while another is inside it (msgspec and ``format_units``, which it may
# call, can let the GIL go).
cdef struct Out:
    char* data
    Py_ssize_t length
    Py_ssize_t capacity
    bint on_heap


cdef int _reserve(Out* out, Py_ssize_t more) except -1:
    cdef Py_ssize_t want = out.length + more
    cdef char* grown
    if want <= out.capacity:
        return 0
    want = max(want, 2 * out.capacity)
    if out.on_heap:
        grown = <char*>PyMem_Realloc(out.data, want)
    else:
        grown = <char*>PyMem_Malloc(want)
        if grown is not NULL:
            memcpy(grown, out.data, out.length)
    if grown is NULL:
        raise MemoryError()
    out.data = grown
    out.capacity = want
    out.on_heap = True
    return 0


cdef inline int _put(Out* out, const char* text, Py_ssize_t size) except -1:
    _reserve(out, size)
    memcpy(out.data + out.length, text, size)
    out.length += size
    return 0


cdef inline int _text(Out* out, const char* text) except -1:
    """A constant piece of the answer (the compiler knows its length)."""
    return _put(out, text, strlen(text))


cdef int _put_bytes(Out* out, bytes encoded) except -1:
    return _put(out, encoded, len(encoded))


cdef int _put_digits(Out* out, uint64_t value, int width) except -1:
    """``value`` in decimal, left-padded with zeros to ``width`` digits."""
    cdef char digits[24]
    cdef int n = 0
    while value or n < width or n == 0:
        digits[23 - n] = <char>(48 + value % 10)
        value //= 10
        n += 1
    return _put(out, &digits[24 - n], n)


cdef int _put_int(Out* out, object value) except -1:
    """A JSON integer (``null`` for None); msgspec's own encoding past 64 bits."""
    cdef int overflow = 0
    cdef long long v
    if value is None:
        return _text(out, "null")
    if type(value) is not int:
        return _put_bytes(out, _encode(value))
    v = PyLong_AsLongLongAndOverflow(value, &overflow)
    if overflow:
        return _put_bytes(out, _encode(value))
    if v < 0:
        _text(out, "-")
        return _put_digits(out, <uint64_t>0 - <uint64_t>v, 1)
    return _put_digits(out, <uint64_t>v, 1)


cdef uint64_t _POW10[19]
_POW10[0] = 1
for _i in range(1, 19):
    _POW10[_i] = _POW10[_i - 1] * 10


cdef int _put_decimal(Out* out, object units, int scale) except -1:
    """``units`` of ``10**-scale`` as a quoted decimal string, ``format_units``'s text
    (``null`` for None)."""
    cdef int overflow = 0
    cdef long long v
    if units is None:
        return _text(out, "null")
    if type(units) is int and 0 < scale <= 18:
        v = PyLong_AsLongLongAndOverflow(units, &overflow)
        if not overflow and v >= 0:
            _text(out, "\"")
            _put_digits(out, <uint64_t>v // _POW10[scale], 1)
            _text(out, ".")
            _put_digits(out, <uint64_t>v % _POW10[scale], scale)
            return _text(out, "\"")
    return _put_string(out, format_units(units, scale))


cdef int _put_string(Out* out, object text) except -1:
    """A JSON string (``null`` for None): printable ASCII without ``"`` or ``\\`` is copied
    as it is; anything else is msgspec's encoding (its escapes, its UTF-8)."""
    cdef Py_ssize_t size, i
    cdef const unsigned char* chars
    cdef unsigned char c
    if text is None:
        return _text(out, "null")
    if type(text) is str and PyUnicode_IS_ASCII(text):
        size = PyUnicode_GET_LENGTH(text)
        chars = <const unsigned char*>PyUnicode_DATA(text)
        for i in range(size):
            c = chars[i]
            if c < 32 or c > 126 or c == 34 or c == 92:
                break
        else:
            _text(out, "\"")
            _put(out, <const char*>chars, size)
            return _text(out, "\"")
    return _put_bytes(out, _encode(text))


# -- the answer --------------------------------------------------------------------------

cdef int _put_fill(Out* out, object fill, int quote_scale, int base_scale) except -1:
    """One of ``fills``: ``gateway.wire.views.fill_result``'s fields, in its order."""
    _text(out, "{\"order_id\":")
    _put_int(out, slot_value(fill, F_ORDER_ID))
    _text(out, ",\"client_order_id\":")
    _put_string(out, slot_value(fill, F_CLIENT_ORDER_ID))
    _text(out, ",\"market\":")
    _put_string(out, slot_value(fill, F_MARKET))
    _text(out, ",\"side\":")
    _put_string(out, slot_value(fill, F_SIDE))
    _text(out, ",\"trade_id\":")
    _put_int(out, slot_value(fill, F_TRADE_ID))
    _text(out, ",\"fill_price\":")
    _put_decimal(out, slot_value(fill, F_FILL_PRICE), quote_scale)
    _text(out, ",\"fill_qty\":")
    _put_decimal(out, slot_value(fill, F_FILL_QTY), base_scale)
    _text(out, ",\"fee\":")
    _put_decimal(out, slot_value(fill, F_FEE), quote_scale)
    _text(out, ",\"fee_asset\":")
    _put_string(out, slot_value(fill, F_FEE_ASSET))
    _text(out, ",\"liquidity\":")
    _put_string(out, slot_value(fill, F_LIQUIDITY))
    _text(out, ",\"filled_qty\":")
    _put_decimal(out, slot_value(fill, F_FILLED_QTY), base_scale)
    _text(out, ",\"remaining_qty\":")
    _put_decimal(out, slot_value(fill, F_REMAINING_QTY), base_scale)
    _text(out, ",\"status\":")
    _put_string(out, slot_value(fill, F_STATUS))
    _text(out, ",\"ts\":")
    _put_int(out, slot_value(fill, F_TS))
    return _text(out, "}")


def order_answer(request_id, report, list fills, after, int quote_scale, int base_scale):
    """``protocol.ok(request_id, order_result(report, market, fills, after))`` as bytes,
    written in one pass; the scales are the market's (``quote_scale``, ``base_scale``).

    ``report`` is an ``OrderReport``, ``fills`` ``FillReport``s, ``after`` one of them or
    None (see ``order_result``)."""
    cdef char stack[STACK_BYTES]
    cdef Out out
    if type(report) is not OrderReport:
        raise TypeError(f"order_answer takes an OrderReport, not {type(report).__name__}")
    for fill in fills:
        if type(fill) is not FillReport:
            raise TypeError(f"order_answer's fills are FillReports, not {type(fill).__name__}")
    if after is not None and type(after) is not FillReport:
        raise TypeError(f"order_answer's `after` is a FillReport, not {type(after).__name__}")
    out.data = stack
    out.length = 0
    out.capacity = STACK_BYTES
    out.on_heap = False
    try:
        _put_answer(&out, request_id, report, fills, after, quote_scale, base_scale)
        return PyBytes_FromStringAndSize(out.data, out.length)
    finally:
        if out.on_heap:
            PyMem_Free(out.data)


cdef int _put_answer(
    Out* out, request_id, report, list fills, after, int quote_scale, int base_scale
) except -1:
    cdef bint from_fill = after is not None
    cdef object state = after if from_fill else report
    _text(out, "{\"id\":")
    if request_id is None or type(request_id) is int:
        _put_int(out, request_id)
    else:
        _put_string(out, request_id)
    _text(out, ",\"ok\":true,\"result\":{\"order_id\":")
    _put_int(out, slot_value(report, O_ORDER_ID))
    _text(out, ",\"client_order_id\":")
    _put_string(out, slot_value(report, O_CLIENT_ORDER_ID))
    _text(out, ",\"market\":")
    _put_string(out, slot_value(report, O_MARKET))
    _text(out, ",\"side\":")
    _put_string(out, slot_value(report, O_SIDE))
    _text(out, ",\"order_type\":")
    _put_string(out, slot_value(report, O_ORDER_TYPE))
    _text(out, ",\"price\":")
    _put_decimal(out, slot_value(report, O_PRICE), quote_scale)
    _text(out, ",\"qty\":")
    _put_decimal(out, slot_value(report, O_QTY), base_scale)
    _text(out, ",\"filled_qty\":")
    _put_decimal(out, slot_value(state, F_FILLED_QTY if from_fill else O_FILLED_QTY), base_scale)
    _text(out, ",\"remaining_qty\":")
    _put_decimal(
        out, slot_value(state, F_REMAINING_QTY if from_fill else O_REMAINING_QTY), base_scale
    )
    _text(out, ",\"status\":")
    _put_string(out, slot_value(state, F_STATUS if from_fill else O_STATUS))
    _text(out, ",\"ts\":")
    _put_int(out, slot_value(state, F_TS if from_fill else O_TS))
    reason = slot_value(report, O_REASON)
    if reason is not None:
        _text(out, ",\"reason\":")
        _put_string(out, reason)
    message = slot_value(report, O_MESSAGE)
    if message is not None:
        _text(out, ",\"message\":")
        _put_string(out, message)
    _text(out, ",\"fills\":[")
    for i, fill in enumerate(fills):
        if i:
            _text(out, ",")
        _put_fill(out, fill, quote_scale, base_scale)
    return _text(out, "]}}")
