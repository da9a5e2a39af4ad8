# cython: language_level=3
"""A plain ``order.place`` or ``order.cancel`` read straight from its frame.

Those two requests are most of what a venue reads, and reading one the general way costs
more than matching it: msgspec decodes the frame into a ``Place`` and a ``PlaceParams``
Struct (a string object per field), then the session reads each field back by attribute,
looks its market up, and turns the side, the time in force and the self-trade mode into
the engine's enums and the price and quantity into integers, a Python call each (about
12,000 instructions for a place and 5,000 for a cancel, measured with callgrind on
``benchmarks/order_path.py``).  ``plain_order`` does all of it in one pass over the bytes:
the values come out ready for the command, and no object is made that the command does
not keep.

It reads a strict subset of what the general path reads, and declines (returns None)
everything else, so a frame it returns something for means exactly what the general path
would make of it:

* the frame is ``bytes`` (or a ``str`` of ASCII only), one JSON object with the keys
  ``id`` (optional), ``method`` and ``params``, each once, in any order, with JSON
  whitespace anywhere JSON allows it;
* every string is printable ASCII without ``\\`` (no escape sequence to undo) and every
  number an integer of at most 18 digits (no fraction, no exponent);
* ``params`` is one flat object with only that method's keys, each once, each of its
  JSON type (``null`` only where the field is optional), each value one the general path
  accepts: a known market, a listed side, type, time in force and self-trade mode, a
  client order id of the allowed characters, and an order that is complete (a price for a
  limit order and none for a market order; one of ``order_id`` and ``client_order_id``
  for a cancel);
* prices and quantities are numerals that ``engine.fixedpoint.parse_units`` reads on its
  own fast path (digits, at most one point with digits on both sides, no more decimals
  than the market has, at most 18 digits once scaled): the same integers.

Anything else, valid or not (a second ``id``, an escaped character, ``1e3``, an unknown
market, a missing field, a long numeral with leading zeros), goes the general way, which
words the errors.  tests/test_intake.py holds the two paths to the same commands on
randomized frames, near misses included.
"""

from cpython.unicode cimport PyUnicode_DecodeASCII
from libc.string cimport memcmp

from gateway.wire._structs cimport slot_value, struct_slot

from typing import get_args

from engine.markets import Market
from engine.types import OrderType, SelfTradePrevention, Side, TimeInForce
from gateway.wire import protocol


cdef extern from "Python.h":
    Py_ssize_t PyUnicode_GET_LENGTH(object)
    bint PyUnicode_IS_ASCII(object)
    void* PyUnicode_DATA(object)


PLACE = 1
CANCEL = 2

cdef enum:
    MAX_DIGITS = 18  # integers and scaled numerals: always inside a C long long


def _meta(alias):
    """The ``msgspec.Meta`` of one of the protocol's ``Annotated`` field types."""
    return get_args(alias)[1]


# The protocol's own bounds (gateway.wire.protocol), read once: this reader must refuse
# whatever the general path refuses, so it takes them from there rather than repeating
# them, and stops the import if a rule changed into one it does not implement.
cdef Py_ssize_t MAX_ID_LENGTH = protocol.MAX_ID_LENGTH
cdef Py_ssize_t MAX_SYMBOL = _meta(protocol.Symbol).max_length
cdef Py_ssize_t MAX_DECIMAL = _meta(protocol.Decimal).max_length
cdef Py_ssize_t MAX_CLIENT_ORDER_ID = _meta(protocol.ClientOrderId).max_length
if (
    _meta(protocol.Symbol).min_length != 1
    or _meta(protocol.Decimal).min_length != 1
    or _meta(protocol.ClientOrderId).min_length != 1
    or _meta(protocol.ClientOrderId).pattern != r"^[A-Za-z0-9._:\-]+$"
    or _meta(protocol.OrderId).ge != 1
    or _meta(protocol.OrderId).le < 10**MAX_DIGITS
):
    raise ImportError("the protocol's field rules changed: gateway/wire/_intake.pyx reads the old")

# What a JSON value was read as.
cdef enum Kind:
    ABSENT = 0
    STRING
    INTEGER
    JSON_TRUE
    JSON_FALSE
    JSON_NULL

cdef enum:  # the params fields, by index into a ``Field`` array
    F_MARKET = 0
    F_SIDE
    F_QTY
    F_TYPE
    F_PRICE
    F_TIF
    F_POST_ONLY
    F_CLIENT_ORDER_ID
    F_STP
    F_ORDER_ID
    FIELD_COUNT

cdef struct Field:
    Kind kind
    const unsigned char* text  # a string's bytes, without the quotes
    Py_ssize_t length
    long long integer

cdef struct Cursor:
    const unsigned char* at
    const unsigned char* end


cdef object _SIDE_BUY = Side.BUY
cdef object _SIDE_SELL = Side.SELL
cdef object _LIMIT = OrderType.LIMIT
cdef object _MARKET = OrderType.MARKET
cdef object _GTC = TimeInForce.GTC
cdef object _IOC = TimeInForce.IOC
cdef object _FOK = TimeInForce.FOK
cdef object _CANCEL_NEWEST = SelfTradePrevention.CANCEL_NEWEST
cdef object _CANCEL_OLDEST = SelfTradePrevention.CANCEL_OLDEST
cdef object _CANCEL_BOTH = SelfTradePrevention.CANCEL_BOTH

cdef long long[19] _POW10
_POW10[0] = 1
for _i in range(1, 19):
    _POW10[_i] = _POW10[_i - 1] * 10


# The market's scales, read from their slots (gateway/wire/_structs.pxd).
cdef Py_ssize_t M_BASE_SCALE = struct_slot(Market, "base_scale")
cdef Py_ssize_t M_QUOTE_SCALE = struct_slot(Market, "quote_scale")


# -- reading JSON ------------------------------------------------------------------------
# Each reader returns 0 with the cursor past what it read, or -1: decline the frame.

cdef inline void _skip_space(Cursor* c) noexcept nogil:
    cdef unsigned char b
    while c.at < c.end:
        b = c.at[0]
        if b == 32 or b == 9 or b == 10 or b == 13:
            c.at += 1
        else:
            return


cdef inline int _expect(Cursor* c, unsigned char b) noexcept nogil:
    _skip_space(c)
    if c.at < c.end and c.at[0] == b:
        c.at += 1
        return 0
    return -1


cdef int _read_string(Cursor* c, Field* out) noexcept nogil:
    """A string of printable ASCII without escapes; the cursor is on its opening quote."""
    cdef const unsigned char* start = c.at + 1
    cdef const unsigned char* at = start
    cdef unsigned char b
    while at < c.end:
        b = at[0]
        if b == 34:  # the closing quote
            out.kind = STRING
            out.text = start
            out.length = at - start
            c.at = at + 1
            return 0
        if b < 32 or b > 126 or b == 92:  # a control byte, non-ASCII, a backslash
            return -1
        at += 1
    return -1


cdef int _read_integer(Cursor* c, Field* out) noexcept nogil:
    """A JSON integer of at most ``MAX_DIGITS`` digits: ``-?(0|[1-9][0-9]*)``."""
    cdef const unsigned char* at = c.at
    cdef bint negative = False
    cdef long long value = 0
    cdef int digits = 0
    if at < c.end and at[0] == 45:  # "-"
        negative = True
        at += 1
    if at >= c.end or not (48 <= at[0] <= 57):
        return -1
    if at[0] == 48:  # a leading zero is the whole number in JSON
        at += 1
        digits = 1
    else:
        while at < c.end and 48 <= at[0] <= 57:
            digits += 1
            if digits > MAX_DIGITS:
                return -1
            value = value * 10 + (at[0] - 48)
            at += 1
    # A fraction, an exponent or a digit after a leading zero: not an integer we read.
    if at < c.end and (at[0] == 46 or at[0] == 101 or at[0] == 69 or 48 <= at[0] <= 57):
        return -1
    out.kind = INTEGER
    out.integer = -value if negative else value
    out.length = digits
    c.at = at
    return 0


cdef inline int _read_word(Cursor* c, const char* word, Py_ssize_t length) noexcept nogil:
    if c.end - c.at >= length and memcmp(c.at, word, length) == 0:
        c.at += length
        return 0
    return -1


cdef int _read_scalar(Cursor* c, Field* out) noexcept nogil:
    """A string, an integer, ``true``, ``false`` or ``null`` (never an object or array)."""
    _skip_space(c)
    if c.at >= c.end:
        return -1
    cdef unsigned char b = c.at[0]
    if b == 34:
        return _read_string(c, out)
    if b == 45 or 48 <= b <= 57:
        return _read_integer(c, out)
    if b == 116:
        out.kind = JSON_TRUE
        return _read_word(c, "true", 4)
    if b == 102:
        out.kind = JSON_FALSE
        return _read_word(c, "false", 5)
    if b == 110:
        out.kind = JSON_NULL
        return _read_word(c, "null", 4)
    return -1


cdef inline bint _is(const Field* field, const char* word, Py_ssize_t length) noexcept nogil:
    return field.kind == STRING and field.length == length and memcmp(field.text, word, length) == 0


cdef int _param_index(const Field* key) noexcept nogil:
    """The params field a key names, or -1."""
    if _is(key, "market", 6):
        return F_MARKET
    if _is(key, "side", 4):
        return F_SIDE
    if _is(key, "qty", 3):
        return F_QTY
    if _is(key, "price", 5):
        return F_PRICE
    if _is(key, "order_id", 8):
        return F_ORDER_ID
    if _is(key, "type", 4):
        return F_TYPE
    if _is(key, "tif", 3):
        return F_TIF
    if _is(key, "post_only", 9):
        return F_POST_ONLY
    if _is(key, "client_order_id", 15):
        return F_CLIENT_ORDER_ID
    if _is(key, "stp", 3):
        return F_STP
    return -1


cdef int _read_params(Cursor* c, Field* fields) noexcept nogil:
    """The flat params object, each known key once; the cursor is on its ``{``."""
    cdef Field key
    cdef int index
    c.at += 1
    _skip_space(c)
    if c.at < c.end and c.at[0] == 125:  # "}": no field at all
        c.at += 1
        return 0
    while True:
        _skip_space(c)
        if c.at >= c.end or c.at[0] != 34 or _read_string(c, &key) < 0:
            return -1
        index = _param_index(&key)
        if index < 0 or fields[index].kind != ABSENT:  # unknown, or a second time
            return -1
        if _expect(c, 58) < 0 or _read_scalar(c, &fields[index]) < 0:  # ":"
            return -1
        _skip_space(c)
        if c.at >= c.end:
            return -1
        if c.at[0] == 44:  # ","
            c.at += 1
        elif c.at[0] == 125:  # "}"
            c.at += 1
            return 0
        else:
            return -1


cdef int _read_request(Cursor* c, Field* request_id, Field* method, Field* fields,
                       bint* has_params) noexcept nogil:
    """The envelope: ``id``, ``method`` and ``params``, each at most once, then nothing."""
    cdef Field key
    if _expect(c, 123) < 0:  # "{"
        return -1
    while True:
        _skip_space(c)
        if c.at >= c.end or c.at[0] != 34 or _read_string(c, &key) < 0:
            return -1
        if _expect(c, 58) < 0:
            return -1
        if _is(&key, "params", 6):
            if has_params[0]:
                return -1
            _skip_space(c)
            if c.at >= c.end or c.at[0] != 123 or _read_params(c, fields) < 0:
                return -1
            has_params[0] = True
        elif _is(&key, "method", 6):
            if method.kind != ABSENT or _read_scalar(c, method) < 0:
                return -1
        elif _is(&key, "id", 2):
            if request_id.kind != ABSENT or _read_scalar(c, request_id) < 0:
                return -1
        else:
            return -1
        _skip_space(c)
        if c.at >= c.end:
            return -1
        if c.at[0] == 44:
            c.at += 1
        elif c.at[0] == 125:
            c.at += 1
            _skip_space(c)
            return 0 if c.at == c.end else -1
        else:
            return -1


# -- the values --------------------------------------------------------------------------

cdef bint _client_order_id_ok(const Field* field) noexcept nogil:
    """1 to 64 characters of ``[A-Za-z0-9._:-]`` (protocol's ``ClientOrderId``)."""
    cdef Py_ssize_t i
    cdef unsigned char b
    if field.length < 1 or field.length > MAX_CLIENT_ORDER_ID:
        return False
    for i in range(field.length):
        b = field.text[i]
        if not (
            (48 <= b <= 57) or (65 <= b <= 90) or (97 <= b <= 122)
            or b == 46 or b == 95 or b == 58 or b == 45
        ):
            return False
    return True


cdef long long _units(const Field* field, long long scale) noexcept nogil:
    """``parse_units(text, scale)`` where its fast path reads the text (see the module
    docstring), else -1: ``whole[.fraction]``, digits only, ``whole`` not empty, a point
    only with a fraction after it, no more decimals than ``scale``, and the whole part's
    digits plus ``scale`` at most 18."""
    cdef Py_ssize_t point = -1
    cdef Py_ssize_t i
    cdef Py_ssize_t whole, fraction
    cdef long long value = 0
    cdef unsigned char b
    if field.kind != STRING or field.length < 1 or field.length > MAX_DECIMAL:
        return -1
    for i in range(field.length):
        b = field.text[i]
        if b == 46 and point < 0:
            point = i
        elif not (48 <= b <= 57):
            return -1  # a sign, a space, a second point, anything else
    whole = field.length if point < 0 else point
    fraction = 0 if point < 0 else field.length - point - 1
    if whole == 0 or (point >= 0 and fraction == 0) or scale < 0:
        return -1
    if fraction > scale or whole + scale > MAX_DIGITS:
        return -1
    for i in range(field.length):
        b = field.text[i]
        if b != 46:
            value = value * 10 + (b - 48)
    return value * _POW10[scale - fraction]


cdef object _text(const Field* field):
    return PyUnicode_DecodeASCII(<const char*>field.text, field.length, NULL)


cdef inline bint _optional(const Field* field) noexcept nogil:
    return field.kind == ABSENT or field.kind == JSON_NULL


cdef object _request_id(const Field* field):
    """The request's id as msgspec decodes it, or ``_DECLINE``."""
    if field.kind == ABSENT or field.kind == JSON_NULL:
        return None
    if field.kind == INTEGER:
        return field.integer
    if field.kind == STRING and field.length <= MAX_ID_LENGTH:
        return _text(field)
    return _DECLINE


cdef object _DECLINE = object()


cdef object _market(const Field* field, dict markets):
    if field.kind != STRING or field.length < 1 or field.length > MAX_SYMBOL:
        return None
    market = markets.get(_text(field))
    if market is None or type(market) is not Market:
        return None
    return market


cdef object _place(object request_id, Field* f, dict markets):
    if f[F_ORDER_ID].kind != ABSENT:
        return None
    market = _market(&f[F_MARKET], markets)
    if market is None:
        return None
    # side
    if _is(&f[F_SIDE], "buy", 3):
        side = _SIDE_BUY
    elif _is(&f[F_SIDE], "sell", 4):
        side = _SIDE_SELL
    else:
        return None
    # type, and the price it needs or forbids
    cdef bint is_market
    if f[F_TYPE].kind == ABSENT or _is(&f[F_TYPE], "limit", 5):
        is_market = False
    elif _is(&f[F_TYPE], "market", 6):
        is_market = True
    else:
        return None
    cdef long long base_scale = slot_value(market, M_BASE_SCALE)
    cdef long long quote_scale = slot_value(market, M_QUOTE_SCALE)
    cdef long long qty = _units(&f[F_QTY], base_scale)
    if qty < 0:
        return None
    cdef long long price = -1
    if is_market:
        if not _optional(&f[F_PRICE]):
            return None
    else:
        price = _units(&f[F_PRICE], quote_scale)
        if price < 0:
            return None
    # time in force
    if _optional(&f[F_TIF]):
        tif = _IOC if is_market else _GTC
    elif _is(&f[F_TIF], "GTC", 3):
        tif = _GTC
    elif _is(&f[F_TIF], "IOC", 3):
        tif = _IOC
    elif _is(&f[F_TIF], "FOK", 3):
        tif = _FOK
    else:
        return None
    # post_only
    cdef bint post_only
    if f[F_POST_ONLY].kind == ABSENT or f[F_POST_ONLY].kind == JSON_FALSE:
        post_only = False
    elif f[F_POST_ONLY].kind == JSON_TRUE:
        post_only = True
    else:
        return None
    # self-trade prevention
    if f[F_STP].kind == ABSENT or _is(&f[F_STP], "cancel_newest", 13):
        stp = _CANCEL_NEWEST
    elif _is(&f[F_STP], "cancel_oldest", 13):
        stp = _CANCEL_OLDEST
    elif _is(&f[F_STP], "cancel_both", 11):
        stp = _CANCEL_BOTH
    else:
        return None
    # client_order_id
    if _optional(&f[F_CLIENT_ORDER_ID]):
        client_order_id = None
    elif f[F_CLIENT_ORDER_ID].kind == STRING and _client_order_id_ok(&f[F_CLIENT_ORDER_ID]):
        client_order_id = _text(&f[F_CLIENT_ORDER_ID])
    else:
        return None
    return (
        PLACE,
        request_id,
        market,
        side,
        qty,
        _MARKET if is_market else _LIMIT,
        None if is_market else price,
        tif,
        post_only,
        stp,
        client_order_id,
    )


cdef object _cancel(object request_id, Field* f, dict markets):
    if (
        f[F_SIDE].kind != ABSENT or f[F_QTY].kind != ABSENT or f[F_TYPE].kind != ABSENT
        or f[F_PRICE].kind != ABSENT or f[F_TIF].kind != ABSENT
        or f[F_POST_ONLY].kind != ABSENT or f[F_STP].kind != ABSENT
    ):
        return None  # a place's field: CancelParams has none of them
    market = _market(&f[F_MARKET], markets)
    if market is None:
        return None
    order_id = None
    client_order_id = None
    if not _optional(&f[F_ORDER_ID]):
        if (
            f[F_ORDER_ID].kind != INTEGER
            or f[F_ORDER_ID].integer < 1
            or f[F_ORDER_ID].length > MAX_DIGITS  # below the protocol's bound (checked above)
        ):
            return None
        order_id = f[F_ORDER_ID].integer
    if not _optional(&f[F_CLIENT_ORDER_ID]):
        if f[F_CLIENT_ORDER_ID].kind != STRING or not _client_order_id_ok(&f[F_CLIENT_ORDER_ID]):
            return None
        client_order_id = _text(&f[F_CLIENT_ORDER_ID])
    if (order_id is None) == (client_order_id is None):  # exactly one of them
        return None
    return (CANCEL, request_id, market, order_id, client_order_id)


def plain_order(frame, dict markets):
    """``(PLACE, id, market, side, qty, order_type, price, tif, post_only, stp,
    client_order_id)`` or ``(CANCEL, id, market, order_id, client_order_id)`` for a plain
    request (the module docstring says which), the values as the session's general path
    makes them (``market``: the ``Market`` of ``markets``; enums; integer units); None for
    any other frame, which the general path then reads."""
    cdef const unsigned char* data
    cdef Py_ssize_t length
    if type(frame) is bytes:
        data = <const unsigned char*><const char*>frame
        length = len(<bytes>frame)
    elif type(frame) is str and PyUnicode_IS_ASCII(frame):  # its characters are its bytes
        data = <const unsigned char*>PyUnicode_DATA(frame)
        length = PyUnicode_GET_LENGTH(frame)
    else:
        return None
    cdef Cursor cursor
    cursor.at = data
    cursor.end = data + length
    cdef Field request_id_field
    cdef Field method
    cdef Field fields[FIELD_COUNT]
    cdef bint has_params = False
    cdef int i
    request_id_field.kind = ABSENT
    method.kind = ABSENT
    for i in range(FIELD_COUNT):
        fields[i].kind = ABSENT
    if _read_request(&cursor, &request_id_field, &method, fields, &has_params) < 0:
        return None
    if not has_params:
        return None
    request_id = _request_id(&request_id_field)
    if request_id is _DECLINE:
        return None
    if _is(&method, "order.place", 11):
        return _place(request_id, fields, markets)
    if _is(&method, "order.cancel", 12):
        return _cancel(request_id, fields, markets)
    return None
