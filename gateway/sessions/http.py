"""The HTTP API's requests and answers, sans-I/O: an ``HttpRequest`` in, an ``HttpResponse``
out, with no socket and no server library (``gateway.transport.http_server`` puts it on one).

Public market data under ``/api/v1`` (``docs/http.md``): ``GET /time``, ``/markets``,
``/depth``, ``/trades`` and ``/ticker``.  Every answer is JSON encoded by msgspec, with the
same decimal strings as the websocket protocol; every failure is ``{"error": {"code",
"message"}}`` with the websocket protocol's code and a fitting status:

=====  =====================================================================
400    ``INVALID_PARAMS``: a missing, repeated, unknown or malformed parameter
404    ``UNKNOWN_MARKET`` (no such market), ``NOT_FOUND`` (no such path)
405    ``METHOD_NOT_ALLOWED`` (with ``Allow``)
429    ``RATE_LIMITED`` (with ``Retry-After`` in seconds and ``retry_after_ms``)
503    ``VENUE_STOPPED``: the venue stopped (``Venue.health``)
=====  =====================================================================

Every request takes a token from its remote address's bucket (``TokenBucket``, at the
server's per-connection rate and burst), whatever it asks, before anything else is done.
The market data answers read what the venue has published (the L2 mirrors of
``gateway.sequencer.marketdata`` and the tapes of ``gateway.sequencer.tape``), never the
engine, so the depth's ``seq`` joins the websocket ``book:`` stream; ``/candles`` and the
signed histories read the history database, on its reader thread (``HistoryWriter.read``),
never on the event loop's.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import parse_qsl

import msgspec

from engine.markets import Market
from gateway.sessions import lookups
from gateway.sessions.ratelimit import TokenBucket
from gateway.sessions.session import Gateway, Session
from gateway.storage.history import INTERVALS_MS
from gateway.wire import protocol
from gateway.wire.auth import request_message
from gateway.wire.protocol import WireError
from gateway.wire.views import decimal_text, market_view

PREFIX = "/api/v1"
DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
MAX_QUERY_FIELDS = 16
MAX_BUCKETS = 4096  # remote addresses remembered before the idle ones are forgotten

R = TypeVar("R")

JSON_HEADERS = (("Content-Type", "application/json"), ("Cache-Control", "no-store"))

STATUS_OF = {
    "INVALID_PARAMS": 400,
    "INVALID_REQUEST": 400,
    "UNAUTHENTICATED": 401,
    "AUTH_FAILED": 401,
    "UNKNOWN_ORDER": 404,
    "INTERNAL": 500,
    "UNKNOWN_MARKET": 404,
    "NOT_FOUND": 404,
    "METHOD_NOT_ALLOWED": 405,
    "RATE_LIMITED": 429,
    "VENUE_STOPPED": 503,
    "HISTORY_BEHIND": 503,
}


@dataclass(frozen=True)
class HttpRequest:
    """One request as the server read it: the query string raw, without its ``?``."""

    method: str
    path: str
    query: str = ""
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""
    remote: str | None = None  # the peer's address: the rate limit's key


@dataclass(frozen=True)
class HttpResponse:
    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes

    def json(self) -> Any:
        """The body, decoded (for tests and tools)."""
        return msgspec.json.decode(self.body)


class HttpError(Exception):
    """A request that gets an error answer: its code (and so its status) and message."""

    def __init__(self, code: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.extra = extra


class HttpApi:
    """The public HTTP endpoints of one venue, sans-I/O (``handle``)."""

    def __init__(self, gateway: Gateway, *, monotonic: Callable[[], float] | None = None) -> None:
        self.gateway = gateway
        self.venue = gateway.venue
        self.monotonic = monotonic or time.monotonic
        self._buckets: dict[str, TokenBucket] = {}
        self.routes: dict[str, Callable[[dict[str, str]], Any]] = {
            f"{PREFIX}/time": self._time,
            f"{PREFIX}/markets": self._markets,
            f"{PREFIX}/depth": self._depth,
            f"{PREFIX}/trades": self._trades,
            f"{PREFIX}/ticker": self._ticker,
        }
        # Public, from the history database: awaited (``respond``), the query running on
        # the database's reader thread while the loop serves everyone else
        self.reads: dict[str, Callable[[dict[str, str]], Coroutine[Any, Any, Any]]] = {
            f"{PREFIX}/candles": self._candles,
        }
        # Signed: (method, path) -> handler(participant, params, body) -> answer (awaited)
        self.private: dict[tuple[str, str], Callable[[str, dict[str, str], bytes], Any]] = {
            ("GET", f"{PREFIX}/balances"): self._balances,
            ("GET", f"{PREFIX}/orders/open"): self._open_orders,
            ("GET", f"{PREFIX}/order"): self._order,
            ("GET", f"{PREFIX}/orders/history"): self._orders_history,
            ("GET", f"{PREFIX}/fills"): self._fills,
            ("POST", f"{PREFIX}/order"): self._place,
            ("DELETE", f"{PREFIX}/order"): self._cancel,
            ("DELETE", f"{PREFIX}/orders"): self._cancel_all,
        }
        self._private_paths: dict[str, list[str]] = {}
        for method, path in self.private:
            self._private_paths.setdefault(path, []).append(method)

    async def respond(self, request: HttpRequest) -> HttpResponse:
        """Answer one request, public or signed.  Never raises for anything a client sends."""
        if request.path in self.reads:
            return await self._read(request)
        if request.path not in self._private_paths:
            return self.handle(request)
        try:
            self._check_rate(request.remote)
            route = self.private.get((request.method, request.path))
            if route is None:
                allowed = self._private_paths[request.path]
                raise HttpError(
                    "METHOD_NOT_ALLOWED",
                    f"{request.path} answers {', '.join(allowed)}, not {request.method[:16]}",
                    allow=", ".join(allowed),
                )
            health = self.venue.health()
            if health["status"] != "ok":
                raise HttpError("VENUE_STOPPED", health["reason"])
            participant = self._authenticate(request)
            answer = route(participant, _params(request.query), request.body)
            if asyncio.iscoroutine(answer):
                answer = await answer
            return _answer(200, answer)
        except HttpError as exc:
            return _error(exc)
        except WireError as exc:  # a shared lookup's (gateway.sessions.lookups)
            return _error(HttpError(exc.code, exc.message, **exc.extra))

    def handle(self, request: HttpRequest) -> HttpResponse:
        """Answer one public request from what is in memory (``routes``; ``respond`` answers
        all).  Never raises for anything a client sends."""
        try:
            route = self._public(request, self.routes)
            return _answer(200, route(_params(request.query)))
        except HttpError as exc:
            return _error(exc)
        except WireError as exc:  # a shared lookup's (gateway.sessions.lookups)
            return _error(HttpError(exc.code, exc.message, **exc.extra))

    async def _read(self, request: HttpRequest) -> HttpResponse:
        """Answer one public request that reads the history database (``reads``)."""
        try:
            route = self._public(request, self.reads)
            return _answer(200, await route(_params(request.query)))
        except HttpError as exc:
            return _error(exc)
        except WireError as exc:  # a shared lookup's (gateway.sessions.lookups)
            return _error(HttpError(exc.code, exc.message, **exc.extra))

    def _public(self, request: HttpRequest, routes: dict[str, R]) -> R:
        """The route of a public request in ``routes``, once the request has passed the
        checks: its address's rate, the path, ``GET``, a venue that runs."""
        self._check_rate(request.remote)
        route = routes.get(request.path)
        if route is None:
            raise HttpError("NOT_FOUND", f"no endpoint {request.path[:64]!r}")
        if request.method != "GET":
            raise HttpError(
                "METHOD_NOT_ALLOWED", f"{request.path} answers GET, not {request.method[:16]}"
            )
        health = self.venue.health()
        if health["status"] != "ok":
            raise HttpError("VENUE_STOPPED", health["reason"])
        return route

    # -- signed requests -------------------------------------------------------------------

    def _authenticate(self, request: HttpRequest) -> str:
        """The participant whose key signed ``request`` (``gateway.wire.auth``)."""
        headers = request.headers
        api_key = headers.get("X-Alatau-Key")
        timestamp = headers.get("X-Alatau-Timestamp")
        signature = headers.get("X-Alatau-Signature")
        if api_key is None or timestamp is None or signature is None:
            raise HttpError(
                "UNAUTHENTICATED",
                "a signed request needs X-Alatau-Key, X-Alatau-Timestamp and X-Alatau-Signature",
            )
        try:
            params = msgspec.convert(
                {
                    "api_key": api_key,
                    "timestamp": int(timestamp) if timestamp.isascii() else -1,
                    "signature": signature,
                },
                protocol.LoginParams,
            )
        except (ValueError, msgspec.ValidationError) as exc:
            raise HttpError("AUTH_FAILED", f"request refused: {exc}") from None
        participant = self.venue.registry.participant_by_api_key(api_key)
        reason: str | None = "unknown api_key"
        if participant is not None:
            query = f"?{request.query}" if request.query else ""
            message = request_message(
                params.timestamp, request.method, request.path, query, request.body
            )
            reason = self.gateway.check_signature(
                participant,
                params,
                self.venue.now_ms(),
                message,
                self.gateway.http_replay_guard,
            )
        if participant is None or reason is not None:
            raise HttpError("AUTH_FAILED", f"request refused: {reason}")
        participant_id: str = participant.participant_id
        return participant_id

    async def _call(self, participant: str, method: str, params: Any) -> Any:
        """Run one websocket method as ``participant`` through a session of its own (the
        same checks, commands, sequencer and journal as a websocket request); its result,
        or ``HttpError`` with its error."""
        reply = _Reply()
        session = Session(self.gateway, reply)
        session.participant_id = participant
        frame: dict[str, Any] = {"id": 1, "method": method}
        if params is not None:
            frame["params"] = params
        session.on_frame(protocol.encode(frame))
        message = await reply.answer
        if message.get("ok"):
            return message["result"]
        error = message.get("error") or {}
        code = str(error.get("code", "INTERNAL"))
        extra = {k: v for k, v in error.items() if k not in ("code", "message")}
        raise HttpError(code, str(error.get("message", code)), **extra)

    # -- private endpoints ---------------------------------------------------------------

    async def _balances(self, participant: str, params: dict[str, str], _body: bytes) -> Any:
        _only(params)
        return await self._call(participant, "account.balances", None)

    async def _open_orders(self, participant: str, params: dict[str, str], _body: bytes) -> Any:
        _only(params, "market", "limit", "cursor")
        wire: dict[str, Any] = {"limit": _limit(params)}
        if "market" in params:
            wire["market"] = self._market(params).symbol
        if "cursor" in params:
            wire["after_order_id"] = _whole(params, "cursor")
        return await self._call(participant, "orders.open", wire)

    async def _order(self, participant: str, params: dict[str, str], _body: bytes) -> Any:
        _only(params, "order_id", "client_order_id")
        order_id, client_order_id = _order_ref(params)
        found: asyncio.Future[dict[str, Any] | WireError] = (
            asyncio.get_running_loop().create_future()
        )
        lookups.order_status(
            self.venue,
            self.gateway.history,
            participant,
            order_id,
            client_order_id,
            found.set_result,
        )
        answer = await found
        if isinstance(answer, WireError):
            raise answer
        return answer

    async def _orders_history(self, participant: str, params: dict[str, str], _body: bytes) -> Any:
        _only(params, "market", "start", "end", "limit", "cursor")
        return await lookups.orders_history(
            self.venue,
            self.gateway.history,
            participant,
            self._market(params).symbol if "market" in params else None,
            _time(params, "start"),
            _time(params, "end"),
            _limit(params),
            params.get("cursor"),
        )

    async def _fills(self, participant: str, params: dict[str, str], _body: bytes) -> Any:
        _only(params, "market", "start", "end", "limit", "cursor")
        return await lookups.fills_history(
            self.venue,
            self.gateway.history,
            participant,
            self._market(params).symbol if "market" in params else None,
            _time(params, "start"),
            _time(params, "end"),
            _limit(params),
            params.get("cursor"),
        )

    async def _place(self, participant: str, params: dict[str, str], body: bytes) -> Any:
        _only(params)
        try:
            wire = msgspec.json.decode(body)
        except msgspec.DecodeError:
            raise HttpError("INVALID_PARAMS", "the body must be a JSON object") from None
        if not isinstance(wire, dict):
            raise HttpError("INVALID_PARAMS", "the body must be a JSON object")
        return await self._call(participant, "order.place", wire)

    async def _cancel(self, participant: str, params: dict[str, str], _body: bytes) -> Any:
        _only(params, "market", "order_id", "client_order_id")
        order_id, client_order_id = _order_ref(params)
        if "market" in params:
            symbol = self._market(params).symbol
        else:
            symbol = await lookups.open_order_market(
                self.venue, participant, order_id, client_order_id
            )
        wire: dict[str, Any] = {"market": symbol}
        if order_id is not None:
            wire["order_id"] = order_id
        else:
            wire["client_order_id"] = client_order_id
        return await self._call(participant, "order.cancel", wire)

    async def _cancel_all(self, participant: str, params: dict[str, str], _body: bytes) -> Any:
        _only(params, "market", "side")
        wire: dict[str, Any] = {}
        if "market" in params:
            wire["market"] = self._market(params).symbol
        if "side" in params:
            wire["side"] = params["side"]
        return await self._call(participant, "order.cancel_all", wire)

    # -- rate limit ----------------------------------------------------------------------

    def _check_rate(self, remote: str | None) -> None:
        now = self.monotonic()
        key = remote or ""
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= MAX_BUCKETS:
                self._forget_idle(now)
            limits = self.gateway.limits
            bucket = self._buckets[key] = TokenBucket(
                limits.connection_rate, limits.connection_burst, now
            )
        wait = bucket.take(now)
        if wait:
            ms = max(1, math.ceil(wait * 1000))
            raise HttpError(
                "RATE_LIMITED",
                f"too many requests from this address: retry after {ms} ms",
                retry_after_ms=ms,
            )

    def _forget_idle(self, now: float) -> None:
        """Drop the buckets that have refilled (forgetting them changes nothing)."""
        for key, bucket in list(self._buckets.items()):
            if bucket.tokens + (now - bucket.updated) * bucket.rate >= bucket.burst:
                del self._buckets[key]

    # -- endpoints -----------------------------------------------------------------------

    def _time(self, params: dict[str, str]) -> Any:
        _only(params)
        return {"server_time": self.venue.now_ms()}

    def _markets(self, params: dict[str, str]) -> Any:
        _only(params)
        venue = self.venue
        return [market_view(m, venue.reference_price(s)) for s, m in venue.markets.items()]

    def _depth(self, params: dict[str, str]) -> Any:
        _only(params, "market", "limit")
        return lookups.depth(self.venue, self._market(params).symbol, _limit(params))

    def _trades(self, params: dict[str, str]) -> Any:
        _only(params, "market", "limit")
        return lookups.recent_trades(self.venue, self._market(params).symbol, _limit(params))

    def _ticker(self, params: dict[str, str]) -> Any:
        _only(params, "market")
        if "market" in params:
            return self._ticker_of(self._market(params))
        return [self._ticker_of(market) for market in self.venue.markets.values()]

    def _ticker_of(self, market: Market) -> dict[str, Any]:
        return self.venue.channels.ticker(market.symbol, self.venue.now_ms())

    async def _candles(self, params: dict[str, str]) -> Any:
        _only(params, "market", "interval", "start", "end", "limit")
        market = self._market(params)
        interval = params.get("interval")
        interval_ms = INTERVALS_MS.get(interval or "")
        if interval_ms is None:
            raise HttpError(
                "INVALID_PARAMS", f"interval is one of {', '.join(INTERVALS_MS)}, e.g. interval=1m"
            )
        history = lookups.history_of(self.gateway.history)  # NOT_FOUND before bad params
        start, end, limit = _time(params, "start"), _time(params, "end"), _limit(params)
        rows = await lookups.read(
            history,
            lambda w: w.candles(
                market.symbol, interval_ms, start, end, limit, 10**market.base_scale
            ),
        )
        price = market.format_price
        return [
            [
                t,
                price(o),
                price(h),
                price(lo),
                price(c),
                decimal_text(v, market.base_scale),
                price(q),
                n,
            ]
            for t, o, h, lo, c, v, q, n in rows
        ]

    def _market(self, params: dict[str, str]) -> Market:
        symbol = params.get("market")
        if symbol is None:
            raise HttpError("INVALID_PARAMS", "market is required, e.g. market=BTC-KZT")
        market = self.venue.markets.get(symbol)
        if market is None:
            raise HttpError("UNKNOWN_MARKET", f"no market {symbol[:32]!r}")
        return market


def _params(query: str) -> dict[str, str]:
    """The query string's parameters; each at most once."""
    try:
        pairs = parse_qsl(
            query,
            keep_blank_values=True,
            strict_parsing=False,
            max_num_fields=MAX_QUERY_FIELDS,
            errors="strict",
        )
    except (ValueError, UnicodeError):
        raise HttpError("INVALID_PARAMS", "the query string cannot be read") from None
    params: dict[str, str] = {}
    for name, value in pairs:
        if name in params:
            raise HttpError("INVALID_PARAMS", f"{name[:32]} is given twice")
        params[name] = value
    return params


def _only(params: dict[str, str], *names: str) -> None:
    for name in params:
        if name not in names:
            allowed = ", ".join(names) if names else "none"
            raise HttpError(
                "INVALID_PARAMS", f"unknown parameter {name[:32]!r} (this endpoint takes {allowed})"
            )


def _limit(params: dict[str, str]) -> int:
    text = params.get("limit")
    if text is None:
        return DEFAULT_LIMIT
    if not (text.isascii() and text.isdigit() and len(text) <= 4) or not (
        1 <= int(text) <= MAX_LIMIT
    ):
        raise HttpError(
            "INVALID_PARAMS",
            f"limit must be a whole number from 1 to {MAX_LIMIT}, not {text[:16]!r}",
        )
    return int(text)


def _whole(params: dict[str, str], name: str) -> int:
    text = params[name]
    if not (text.isascii() and text.isdigit() and len(text) <= 18):
        raise HttpError("INVALID_PARAMS", f"{name} must be a whole number, not {text[:16]!r}")
    return int(text)


def _time(params: dict[str, str], name: str) -> int | None:
    return _whole(params, name) if name in params else None


def _order_ref(params: dict[str, str]) -> tuple[int | None, str | None]:
    if ("order_id" in params) == ("client_order_id" in params):
        raise HttpError("INVALID_PARAMS", "give exactly one of order_id and client_order_id")
    if "order_id" in params:
        return _whole(params, "order_id"), None
    client_order_id = params["client_order_id"]
    if not 1 <= len(client_order_id) <= 64:
        raise HttpError("INVALID_PARAMS", "client_order_id is 1 to 64 characters")
    return None, client_order_id


class _Reply:
    """The connection of a signed request's session: it keeps the one answer."""

    def __init__(self) -> None:
        self.answer: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()

    def send(self, data: bytes) -> None:
        message = msgspec.json.decode(data)
        if isinstance(message, dict) and message.get("id") == 1 and not self.answer.done():
            self.answer.set_result(message)

    def buffered(self) -> int:
        return 0

    def close(self, code: int, reason: str) -> None:
        if not self.answer.done():
            self.answer.set_result({"ok": False, "error": {"code": "INTERNAL", "message": reason}})


def _answer(status: int, body: Any, headers: tuple[tuple[str, str], ...] = ()) -> HttpResponse:
    return HttpResponse(status, JSON_HEADERS + headers, protocol.encode(body))


def _error(exc: HttpError) -> HttpResponse:
    status = STATUS_OF.get(exc.code, 400)  # an engine's refusal (INSUFFICIENT_FUNDS...): 400
    headers: tuple[tuple[str, str], ...] = ()
    if exc.code == "RATE_LIMITED":
        seconds = max(1, math.ceil(exc.extra["retry_after_ms"] / 1000))
        headers = (("Retry-After", str(seconds)),)
    elif exc.code == "METHOD_NOT_ALLOWED":
        headers = (("Allow", exc.extra.pop("allow", "GET")),)
    elif exc.code in ("UNAUTHENTICATED", "AUTH_FAILED"):
        headers = (("WWW-Authenticate", "X-Alatau-Signature"),)
    error: dict[str, Any] = {"code": exc.code, "message": exc.message, **exc.extra}
    return _answer(status, {"error": error}, headers)
