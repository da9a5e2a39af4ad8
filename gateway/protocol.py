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

RequestId = int | str | None
ClientOrderId = Annotated[str, Meta(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._:\-]+$")]
Symbol = Annotated[str, Meta(min_length=1, max_length=32)]
Decimal = Annotated[str, Meta(min_length=1, max_length=40)]
OrderId = Annotated[int, Meta(ge=1, le=2**62)]

MAX_BATCH = 50


class _Params(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """Base of every params object: unknown fields are errors, not silently ignored."""


class NoParams(_Params):
    pass


class LoginParams(_Params):
    api_key: Annotated[str, Meta(min_length=1, max_length=128)]
    timestamp: int  # ms since the epoch, must be within the server's window
    # hex: 64 characters (HMAC-SHA256) or 128 (Ed25519); gateway.auth checks which applies
    signature: Annotated[
        str, Meta(min_length=64, max_length=128, pattern=r"^(?:[0-9a-fA-F]{64}){1,2}$")
    ]


class AdminLoginParams(_Params):
    admin_key: Annotated[str, Meta(min_length=1, max_length=256)]


class PlaceParams(_Params):
    market: Symbol
    side: Literal["buy", "sell"]
    qty: Decimal
    type: Literal["limit", "market"] = "limit"
    price: Decimal | None = None
    tif: Literal["GTC", "IOC", "FOK"] | None = None  # default: GTC for limit, IOC for market
    post_only: bool = False
    client_order_id: ClientOrderId | None = None
    stp: Literal["cancel_newest", "cancel_oldest", "cancel_both"] = "cancel_newest"


class CancelParams(_Params):
    market: Symbol
    order_id: OrderId | None = None
    client_order_id: ClientOrderId | None = None


class AmendParams(_Params):
    market: Symbol
    order_id: OrderId | None = None
    client_order_id: ClientOrderId | None = None
    qty: Decimal | None = None  # the new total quantity (filled part included)
    price: Decimal | None = None


class CancelAllParams(_Params):
    market: Symbol | None = None
    side: Literal["buy", "sell"] | None = None


class BatchParams(_Params):
    orders: Annotated[list[PlaceParams], Meta(min_length=1, max_length=MAX_BATCH)]


class CancelBatchParams(_Params):
    orders: Annotated[list[CancelParams], Meta(min_length=1, max_length=MAX_BATCH)]


class OpenOrdersParams(_Params):
    market: Symbol | None = None


class CancelOnDisconnectParams(_Params):
    enabled: bool


class CancelAllAfterParams(_Params):
    timeout_ms: Annotated[int, Meta(ge=0, le=3_600_000)]


class ChannelsParams(_Params):
    channels: Annotated[
        list[Annotated[str, Meta(max_length=64)]], Meta(min_length=1, max_length=64)
    ]


class DepositParams(_Params):
    participant_id: Annotated[str, Meta(min_length=1, max_length=64)]
    asset: Annotated[str, Meta(min_length=1, max_length=10)]
    amount: Decimal


class MarketParams(_Params):
    market: Symbol
    status: Literal["open", "halted"] | None = None
    reference_price: Decimal | None = None


class Request(
    msgspec.Struct, tag_field="method", forbid_unknown_fields=True, frozen=True, kw_only=True
):
    id: RequestId = None


class Login(Request, tag="auth.login"):
    params: LoginParams


class AdminLogin(Request, tag="auth.admin"):
    params: AdminLoginParams


class MarketsList(Request, tag="markets.list"):
    params: NoParams = NoParams()


class Place(Request, tag="order.place"):
    params: PlaceParams


class Cancel(Request, tag="order.cancel"):
    params: CancelParams


class Amend(Request, tag="order.amend"):
    params: AmendParams


class CancelAllOrders(Request, tag="order.cancel_all"):
    params: CancelAllParams = CancelAllParams()


class Batch(Request, tag="order.batch"):
    params: BatchParams


class CancelBatch(Request, tag="order.cancel_batch"):
    params: CancelBatchParams


class OpenOrders(Request, tag="orders.open"):
    params: OpenOrdersParams = OpenOrdersParams()


class Balances(Request, tag="account.balances"):
    params: NoParams = NoParams()


class CancelOnDisconnect(Request, tag="session.cancel_on_disconnect"):
    params: CancelOnDisconnectParams


class CancelAllAfter(Request, tag="session.cancel_all_after"):
    params: CancelAllAfterParams


class Subscribe(Request, tag="subscribe"):
    params: ChannelsParams


class Unsubscribe(Request, tag="unsubscribe"):
    params: ChannelsParams


class Ping(Request, tag="ping"):
    params: NoParams = NoParams()


class Health(Request, tag="health"):
    """For monitors: whether the venue is accepting commands (``ping`` only checks the
    connection, and answers ``VENUE_STOPPED`` once the venue has stopped)."""

    params: NoParams = NoParams()


class AdminLicense(Request, tag="admin.license"):
    params: dict[str, Any]  # validated by engine.licensing.license_from_mapping


class AdminParticipant(Request, tag="admin.participant"):
    params: dict[str, Any]  # validated by engine.licensing.participant_from_mapping


class AdminDeposit(Request, tag="admin.deposit"):
    params: DepositParams


class AdminWithdraw(Request, tag="admin.withdraw"):
    params: DepositParams


class AdminMarket(Request, tag="admin.market"):
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

METHODS: tuple[str, ...] = tuple(
    cls.__struct_config__.tag  # type: ignore[attr-defined]
    for cls in AnyRequest.__args__  # type: ignore[attr-defined]
)
PUBLIC_METHODS = frozenset(
    {"auth.login", "auth.admin", "markets.list", "subscribe", "unsubscribe", "ping", "health"}
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
    """Just enough of a frame to echo its id and name its method after a failed decode."""

    id: Any = None
    method: Any = None


_request_decoder = msgspec.json.Decoder(AnyRequest)
_envelope_decoder = msgspec.json.Decoder(_Envelope)
_METHOD_SET = frozenset(METHODS)


def decode_request(frame: bytes | str) -> AnyRequest:
    """Parse and validate one frame; raise ``WireError`` with the right code if it is bad:
    ``INVALID_REQUEST`` (not JSON, not an object), ``UNKNOWN_METHOD`` or ``INVALID_PARAMS``
    (with msgspec's message, which names the field's path)."""
    try:
        return _request_decoder.decode(frame)
    except msgspec.ValidationError as exc:
        first_error = exc
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        raise WireError("INVALID_REQUEST", f"the frame is not valid JSON: {exc}") from None
    try:
        envelope = _envelope_decoder.decode(frame)
    except msgspec.ValidationError:
        raise WireError("INVALID_REQUEST", "a request must be a JSON object") from None
    request_id = envelope.id if isinstance(envelope.id, int | str) else None
    if not isinstance(envelope.method, str):
        raise WireError("INVALID_REQUEST", "a request needs a string `method`", request_id)
    if envelope.method not in _METHOD_SET:
        raise WireError(
            "UNKNOWN_METHOD", f"no method {envelope.method[:64]!r}", request_id
        ) from None
    message = str(first_error)
    if "`$.id`" in message:
        raise WireError("INVALID_REQUEST", f"`id` must be an integer or a string: {message}")
    raise WireError("INVALID_PARAMS", message, request_id) from None


def request_id_of(frame: bytes | str) -> RequestId:
    """The id of a frame, if it has a usable one (for errors raised before decoding)."""
    try:
        envelope = _envelope_decoder.decode(frame)
    except (msgspec.DecodeError, UnicodeDecodeError):
        return None
    return envelope.id if isinstance(envelope.id, int | str) else None


# -- responses and stream messages ---------------------------------------------------------

_encoder = msgspec.json.Encoder()


def encode(message: Any) -> bytes:
    """Encode one outgoing message (dicts and Structs of plain values)."""
    return _encoder.encode(message)


def ok(request_id: RequestId, result: Any) -> bytes:
    return _encoder.encode({"id": request_id, "ok": True, "result": result})


def error(request_id: RequestId, code: str, message: str, **extra: Any) -> bytes:
    body: dict[str, Any] = {"code": code, "message": message}
    body.update(extra)
    return _encoder.encode({"id": request_id, "ok": False, "error": body})
