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
The answers read only what the venue has published (the L2 mirrors of
``gateway.sequencer.marketdata`` and the tapes of ``gateway.sequencer.tape``), never the
engine, so the depth's ``seq`` joins the websocket ``book:`` stream.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

import msgspec

from engine.markets import Market
from gateway.sessions.ratelimit import TokenBucket
from gateway.sessions.session import Gateway
from gateway.wire import protocol
from gateway.wire.views import levels_view, market_view

PREFIX = "/api/v1"
DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
MAX_QUERY_FIELDS = 16
MAX_BUCKETS = 4096  # remote addresses remembered before the idle ones are forgotten

JSON_HEADERS = (("Content-Type", "application/json"), ("Cache-Control", "no-store"))

STATUS_OF = {
    "INVALID_PARAMS": 400,
    "UNKNOWN_MARKET": 404,
    "NOT_FOUND": 404,
    "METHOD_NOT_ALLOWED": 405,
    "RATE_LIMITED": 429,
    "VENUE_STOPPED": 503,
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

    def handle(self, request: HttpRequest) -> HttpResponse:
        """Answer one request.  Never raises for anything a client sends."""
        try:
            self._check_rate(request.remote)
            route = self.routes.get(request.path)
            if route is None:
                raise HttpError("NOT_FOUND", f"no endpoint {request.path[:64]!r}")
            if request.method != "GET":
                raise HttpError(
                    "METHOD_NOT_ALLOWED", f"{request.path} answers GET, not {request.method[:16]}"
                )
            health = self.venue.health()
            if health["status"] != "ok":
                raise HttpError("VENUE_STOPPED", health["reason"])
            return _answer(200, route(_params(request.query)))
        except HttpError as exc:
            return _error(exc)

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
        market = self._market(params)
        limit = _limit(params)
        mirror = self.venue.channels.mirrors.get(market.symbol)
        if mirror is None:
            return {"market": market.symbol, "seq": 0, "bids": [], "asks": []}
        bids = sorted(mirror.bids.items(), reverse=True)[:limit]
        asks = sorted(mirror.asks.items())[:limit]
        return {
            "market": market.symbol,
            "seq": mirror.seq,
            "bids": levels_view(bids, market),
            "asks": levels_view(asks, market),
        }

    def _trades(self, params: dict[str, str]) -> Any:
        _only(params, "market", "limit")
        market = self._market(params)
        limit = _limit(params)
        return self.venue.tapes.get(market.symbol, market).recent(limit)

    def _ticker(self, params: dict[str, str]) -> Any:
        _only(params, "market")
        if "market" in params:
            return self._ticker_of(self._market(params))
        return [self._ticker_of(market) for market in self.venue.markets.values()]

    def _ticker_of(self, market: Market) -> dict[str, Any]:
        venue = self.venue
        mirror = venue.channels.mirrors.get(market.symbol)
        bid = max(mirror.bids) if mirror is not None and mirror.bids else None
        ask = min(mirror.asks) if mirror is not None and mirror.asks else None
        return venue.tapes.get(market.symbol, market).ticker(venue.now_ms(), bid, ask)

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


def _answer(status: int, body: Any, headers: tuple[tuple[str, str], ...] = ()) -> HttpResponse:
    return HttpResponse(status, JSON_HEADERS + headers, protocol.encode(body))


def _error(exc: HttpError) -> HttpResponse:
    status = STATUS_OF[exc.code]
    headers: tuple[tuple[str, str], ...] = ()
    if exc.code == "RATE_LIMITED":
        seconds = max(1, math.ceil(exc.extra["retry_after_ms"] / 1000))
        headers = (("Retry-After", str(seconds)),)
    elif exc.code == "METHOD_NOT_ALLOWED":
        headers = (("Allow", "GET"),)
    error: dict[str, Any] = {"code": exc.code, "message": exc.message, **exc.extra}
    return _answer(status, {"error": error}, headers)
