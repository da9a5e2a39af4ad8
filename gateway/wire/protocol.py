"""The wire protocol: typed request Structs, one reusable decoder, error classification.

A request is ``{"id": 7, "method": "order.place", "params": {...}}``.  Every method is a
msgspec Struct in one tagged union keyed on ``method``, so a single ``Decoder`` parses and
validates a frame in one pass, and a bad field's error names its path
(``$.params.qty``).  Numbers that are money stay decimal *strings* here; the session turns
them into integers with the market's exact parser, so no float ever appears.

This module does no I/O: bytes in, Structs or ``WireError`` out (see ``decode_request``).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

# A request's id, echoed in its answer: a signed 64-bit integer or a string of at most 256
# characters (bounded, so an answer never carries a huge number or a megabyte of id back).
MAX_ID_LENGTH = 256
RequestId = (
    Annotated[int, Meta(ge=-(2**63), le=2**63 - 1)]
    | Annotated[str, Meta(max_length=MAX_ID_LENGTH)]
    | None
)
ClientOrderId = Annotated[str, Meta(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._:\-]+$")]
Symbol = Annotated[str, Meta(min_length=1, max_length=32)]
Decimal = Annotated[str, Meta(min_length=1, max_length=40)]
OrderId = Annotated[int, Meta(ge=1, le=2**62)]

MAX_BATCH = 50


class _Params(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """Base of every params object: unknown fields are errors, not silently ignored.

    Subclasses repeat ``frozen=True`` (as the request classes do under ``Request``):
    msgspec inherits it, but type checkers read a Struct subclass as a dataclass transform
    that is not frozen unless it says so."""


class NoParams(_Params, frozen=True):
    pass


class LoginParams(_Params, frozen=True):
    api_key: Annotated[str, Meta(min_length=1, max_length=128)]
    timestamp: Annotated[int, Meta(ge=0, le=2**63 - 1)]  # ms since the epoch, in the window
    # hex: 64 characters (HMAC-SHA256) or 128 (Ed25519); gateway.wire.auth checks which applies.
    # ASCII only: a non-ASCII string must never reach a constant-time comparison.
    signature: Annotated[
        str, Meta(min_length=64, max_length=128, pattern=r"^(?:[0-9a-fA-F]{64}){1,2}$")
    ]


class AdminLoginParams(_Params, frozen=True):
    admin_key: Annotated[str, Meta(min_length=1, max_length=256)]


class PlaceParams(_Params, frozen=True):
    market: Symbol
    side: Literal["buy", "sell"]
    qty: Decimal
    type: Literal["limit", "market"] = "limit"
    price: Decimal | None = None
    tif: Literal["GTC", "IOC", "FOK"] | None = None  # default: GTC for limit, IOC for market
    post_only: bool = False
    client_order_id: ClientOrderId | None = None
    stp: Literal["cancel_newest", "cancel_oldest", "cancel_both"] = "cancel_newest"


class CancelParams(_Params, frozen=True):
    market: Symbol
    order_id: OrderId | None = None
    client_order_id: ClientOrderId | None = None


class AmendParams(_Params, frozen=True):
    market: Symbol
    order_id: OrderId | None = None
    client_order_id: ClientOrderId | None = None
    qty: Decimal | None = None  # the new total quantity (filled part included)
    price: Decimal | None = None


class CancelAllParams(_Params, frozen=True):
    market: Symbol | None = None
    side: Literal["buy", "sell"] | None = None


class BatchParams(_Params, frozen=True):
    orders: Annotated[list[PlaceParams], Meta(min_length=1, max_length=MAX_BATCH)]


class CancelBatchParams(_Params, frozen=True):
    orders: Annotated[list[CancelParams], Meta(min_length=1, max_length=MAX_BATCH)]


MAX_OPEN_ORDERS_PAGE = 1000


class OpenOrdersParams(_Params, frozen=True):
    market: Symbol | None = None
    limit: Annotated[int, Meta(ge=1, le=MAX_OPEN_ORDERS_PAGE)] = 500
    after_order_id: Annotated[int, Meta(ge=0, le=2**62)] = 0  # the cursor: the last page's `next`


MAX_LOOKUP_LIMIT = 1000  # depth levels a side, trades, history rows: as HTTP's `limit`
LookupLimit = Annotated[int, Meta(ge=1, le=MAX_LOOKUP_LIMIT)]
TimeMs = Annotated[int, Meta(ge=0, le=10**18 - 1)]  # ms since the epoch
Cursor = Annotated[str, Meta(min_length=1, max_length=64)]  # a page's `next`, as given


class MarketLookupParams(_Params, frozen=True):
    """``market.depth`` (``limit`` levels a side) and ``trades.recent`` (``limit`` trades)."""

    market: Symbol
    limit: LookupLimit = 100


class HistoryParams(_Params, frozen=True):
    """``orders.history`` and ``fills.history``: newest first, ``cursor`` the ``next`` of
    the previous page; ``start`` and ``end`` bound ``ts`` (ms, both inclusive)."""

    market: Symbol | None = None
    start: TimeMs | None = None
    end: TimeMs | None = None
    limit: LookupLimit = 100
    cursor: Cursor | None = None


class OrderStatusParams(_Params, frozen=True):
    order_id: OrderId | None = None
    client_order_id: ClientOrderId | None = None


class CancelOnDisconnectParams(_Params, frozen=True):
    enabled: bool


class CancelAllAfterParams(_Params, frozen=True):
    timeout_ms: Annotated[int, Meta(ge=0, le=3_600_000)]


class ChannelsParams(_Params, frozen=True):
    channels: Annotated[
        list[Annotated[str, Meta(max_length=64)]], Meta(min_length=1, max_length=64)
    ]


class DepositParams(_Params, frozen=True):
    participant_id: Annotated[str, Meta(min_length=1, max_length=64)]
    asset: Annotated[str, Meta(min_length=1, max_length=10)]
    amount: Decimal


class MarketParams(_Params, frozen=True):
    market: Symbol
    status: Literal["open", "halted"] | None = None
    reference_price: Decimal | None = None


class Request(
    msgspec.Struct, tag_field="method", forbid_unknown_fields=True, frozen=True, kw_only=True
):
    id: RequestId = None


class Login(Request, tag="auth.login", frozen=True):
    params: LoginParams


class AdminLogin(Request, tag="auth.admin", frozen=True):
    params: AdminLoginParams


class MarketsList(Request, tag="markets.list", frozen=True):
    params: NoParams = NoParams()


class Place(Request, tag="order.place", frozen=True):
    params: PlaceParams


class Cancel(Request, tag="order.cancel", frozen=True):
    params: CancelParams


class Amend(Request, tag="order.amend", frozen=True):
    params: AmendParams


class CancelAllOrders(Request, tag="order.cancel_all", frozen=True):
    params: CancelAllParams = CancelAllParams()


class Batch(Request, tag="order.batch", frozen=True):
    params: BatchParams


class CancelBatch(Request, tag="order.cancel_batch", frozen=True):
    params: CancelBatchParams


class OpenOrders(Request, tag="orders.open", frozen=True):
    params: OpenOrdersParams = OpenOrdersParams()


class OrderStatus(Request, tag="order.status", frozen=True):
    params: OrderStatusParams


class OrdersHistory(Request, tag="orders.history", frozen=True):
    params: HistoryParams = HistoryParams()


class FillsHistory(Request, tag="fills.history", frozen=True):
    params: HistoryParams = HistoryParams()


class RecentTrades(Request, tag="trades.recent", frozen=True):
    params: MarketLookupParams


class MarketDepth(Request, tag="market.depth", frozen=True):
    params: MarketLookupParams


class Balances(Request, tag="account.balances", frozen=True):
    params: NoParams = NoParams()


class CancelOnDisconnect(Request, tag="session.cancel_on_disconnect", frozen=True):
    params: CancelOnDisconnectParams


class CancelAllAfter(Request, tag="session.cancel_all_after", frozen=True):
    params: CancelAllAfterParams


class Subscribe(Request, tag="subscribe", frozen=True):
    params: ChannelsParams


class Unsubscribe(Request, tag="unsubscribe", frozen=True):
    params: ChannelsParams


class Ping(Request, tag="ping", frozen=True):
    params: NoParams = NoParams()


class Health(Request, tag="health", frozen=True):
    """For monitors: whether the venue is accepting commands (``ping`` only checks the
    connection, and answers ``VENUE_STOPPED`` once the venue has stopped)."""

    params: NoParams = NoParams()


class AdminLicense(Request, tag="admin.license", frozen=True):
    params: dict[str, Any]  # validated by engine.licensing.license_from_mapping


class AdminParticipant(Request, tag="admin.participant", frozen=True):
    params: dict[str, Any]  # validated by engine.licensing.participant_from_mapping


class AdminDeposit(Request, tag="admin.deposit", frozen=True):
    params: DepositParams


class AdminWithdraw(Request, tag="admin.withdraw", frozen=True):
    params: DepositParams


class AdminMarket(Request, tag="admin.market", frozen=True):
    params: MarketParams


AnyRequest = (
    Login
    | AdminLogin
    | MarketsList
    | Place
    | Cancel
    | Amend
    | CancelAllOrders
    | Batch
    | CancelBatch
    | OpenOrders
    | OrderStatus
    | OrdersHistory
    | FillsHistory
    | RecentTrades
    | MarketDepth
    | Balances
    | CancelOnDisconnect
    | CancelAllAfter
    | Subscribe
    | Unsubscribe
    | Ping
    | Health
    | AdminLicense
    | AdminParticipant
    | AdminDeposit
    | AdminWithdraw
    | AdminMarket
)


def _method_of(cls: type[msgspec.Struct]) -> str:
    method = cls.__struct_config__.tag
    if not isinstance(method, str):
        raise TypeError(f"{cls.__name__} has no method tag")
    return method


METHOD_OF: dict[type[msgspec.Struct], str] = {cls: _method_of(cls) for cls in AnyRequest.__args__}
"""The ``method`` of each request class (its msgspec tag)."""
METHODS: tuple[str, ...] = tuple(METHOD_OF.values())
PUBLIC_METHODS = frozenset(
    {
        "auth.login",
        "auth.admin",
        "markets.list",
        "trades.recent",
        "market.depth",
        "subscribe",
        "unsubscribe",
        "ping",
        "health",
    }
)


class WireError(Exception):
    """A request that cannot be served: its stable code, a message and the id to echo."""

    def __init__(self, code: str, message: str, request_id: RequestId = None, **extra: Any) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.request_id = request_id
        self.extra = extra  # more fields of the error object, e.g. retry_after_ms


class _Envelope(msgspec.Struct):
    """Just enough of a frame to echo its id and name its method after a failed decode.

    Both are kept raw (not parsed) here: a huge number or a wrong type in either must not
    stop the rest of the frame from being classified; they are parsed on their own below."""

    id: msgspec.Raw = msgspec.Raw(b"null")
    method: msgspec.Raw = msgspec.Raw(b"null")


_request_decoder = msgspec.json.Decoder(AnyRequest)
_envelope_decoder = msgspec.json.Decoder(_Envelope)
_id_decoder = msgspec.json.Decoder(RequestId)
_method_decoder = msgspec.json.Decoder(str)
_METHOD_SET = frozenset(METHODS)
_BAD_ID = object()  # an id that is there but is not a RequestId


def _not_json(exc: Exception) -> WireError:
    if isinstance(exc, RecursionError):
        return WireError("INVALID_REQUEST", "the frame is nested too deeply")
    return WireError("INVALID_REQUEST", f"the frame is not valid JSON: {exc}")


def _read_envelope(frame: bytes | str) -> _Envelope:
    """The frame's envelope, or ``WireError`` ``INVALID_REQUEST`` if the frame is not a
    JSON object at all (not JSON, nested too deeply, or another JSON value)."""
    try:
        return _envelope_decoder.decode(frame)
    except msgspec.ValidationError:
        raise WireError("INVALID_REQUEST", "a request must be a JSON object") from None
    except (msgspec.DecodeError, UnicodeError, RecursionError) as exc:
        raise _not_json(exc) from None


def _id_of(envelope: _Envelope) -> Any:
    """The envelope's id as a ``RequestId``, or ``_BAD_ID``."""
    try:
        return _id_decoder.decode(envelope.id)
    except (msgspec.DecodeError, RecursionError):  # ValidationError is a DecodeError
        return _BAD_ID


def decode_request(frame: bytes | str) -> AnyRequest:
    """Parse and validate one frame; raise ``WireError`` with the right code if it is bad:
    ``INVALID_REQUEST`` (not JSON, not an object, nested too deeply, a bad ``id`` or
    ``method``), ``UNKNOWN_METHOD`` or ``INVALID_PARAMS`` (with msgspec's message, which
    names the field's path).  Raises nothing else, whatever the frame."""
    try:
        return _request_decoder.decode(frame)
    except msgspec.ValidationError as exc:
        first_error = exc
    except (msgspec.DecodeError, UnicodeError, RecursionError) as exc:
        raise _not_json(exc) from None
    # msgspec stops at the first error, so the rest of the frame is unread: it may not even
    # be JSON (``{"id": 1.5, "method": "ping"`` fails on the id before the end is seen).
    envelope = _read_envelope(frame)
    request_id = _id_of(envelope)
    if request_id is _BAD_ID:
        raise WireError(
            "INVALID_REQUEST",
            f"`id` must be a 64-bit integer or a string of at most {MAX_ID_LENGTH} characters"
            " - at `$.id`",
        )
    try:
        method = _method_decoder.decode(envelope.method)
    except (msgspec.DecodeError, RecursionError):
        raise WireError(
            "INVALID_REQUEST", "a request needs a string `method`", request_id
        ) from None
    if method not in _METHOD_SET:
        raise WireError("UNKNOWN_METHOD", f"no method {method[:64]!r}", request_id) from None
    raise WireError("INVALID_PARAMS", str(first_error), request_id) from None


def request_id_of(frame: bytes | str) -> RequestId:
    """The id of a frame, if it has a usable one (for errors raised before decoding)."""
    try:
        request_id = _id_of(_read_envelope(frame))
    except WireError:
        return None
    return None if request_id is _BAD_ID else request_id


# -- responses and stream messages ---------------------------------------------------------

_encoder = msgspec.json.Encoder()


def encode(message: Any) -> bytes:
    """Encode one outgoing message (dicts and Structs of plain values)."""
    return _encoder.encode(message)


class _OkAnswer(msgspec.Struct):
    """A successful answer's envelope: a Struct, so it is encoded without building a dict
    (field names encoded once, by msgspec)."""

    id: RequestId
    ok: bool
    result: Any


def ok(request_id: RequestId, result: Any) -> bytes:
    return _encoder.encode(_OkAnswer(request_id, True, result))


def error(request_id: RequestId, code: str, message: str, **extra: Any) -> bytes:
    body: dict[str, Any] = {"code": code, "message": message}
    body.update(extra)
    return _encoder.encode({"id": request_id, "ok": False, "error": body})
