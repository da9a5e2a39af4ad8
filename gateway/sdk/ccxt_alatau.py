"""A CCXT exchange class for Alatau (id ``alatau``) over the HTTP API (``docs/http.md``).

A script written for another venue with CCXT's unified methods trades here with only the
exchange and its URL changed::

    import ccxt
    import gateway.sdk.ccxt_alatau  # registers ccxt.alatau (register())

    exchange = ccxt.alatau({
        "urls": {"api": "http://127.0.0.1:8766/api/v1"},  # the default
        "apiKey": "demo-bob-key",
        "secret": "f55796f2...",  # an Ed25519 private key (64 hex) or an HMAC secret
    })
    exchange.load_markets()
    exchange.create_order("BTC/KZT", "limit", "buy", 0.01, 45_000_000)

Credentials (``apiKey`` + ``secret``) sign every private request (``sign``): the headers
``X-Alatau-Key``, ``X-Alatau-Timestamp`` and ``X-Alatau-Signature`` over
``f"{timestamp}{METHOD}{path}{query}{body}"``.  ``options["keyType"]`` says how:
``"ed25519"`` (``secret`` is the 32-byte Ed25519 private key as 64 hex characters),
``"hmac"`` (HMAC-SHA256 keyed with ``secret``), or ``"auto"`` (the default): Ed25519 when
``secret`` is exactly 64 hex characters, HMAC otherwise; an HMAC secret that happens to be
64 hex characters needs ``keyType="hmac"``.

Symbols are CCXT's ``BTC/KZT`` for the venue's ``BTC-KZT``; ``precisionMode`` is
``TICK_SIZE`` (the market's ``tick`` and ``lot``).  Order ids are the venue's integers as
strings.  Errors keep their venue code in the message and map to CCXT's exceptions
(``handle_errors``).  ``alatau`` is synchronous (``ccxt.Exchange``); ``alatau_async`` is
the same over ``ccxt.async_support`` (``await exchange.fetch_ticker(...)``, then
``await exchange.close()``).
"""

from __future__ import annotations

import json
import time
from typing import Any
from urllib.parse import urlencode, urlparse

import ccxt
import ccxt.async_support
from ccxt.base.decimal_to_precision import TICK_SIZE

from gateway.wire.auth import ed25519_private_key, request_message, sign_request

DEFAULT_URL = "http://127.0.0.1:8766/api/v1"

STATUSES = {
    "new": "open",
    "partially_filled": "open",
    "filled": "closed",
    "canceled": "canceled",
    "expired": "expired",
    "rejected": "rejected",
}

# The venue's error codes (docs/protocol.md) -> CCXT exceptions; anything else -> ExchangeError
EXACT_ERRORS: dict[str, Any] = {
    "INVALID_PARAMS": ccxt.BadRequest,
    "INVALID_REQUEST": ccxt.BadRequest,
    "NOT_FOUND": ccxt.BadRequest,
    "METHOD_NOT_ALLOWED": ccxt.BadRequest,
    "UNAUTHENTICATED": ccxt.AuthenticationError,
    "AUTH_FAILED": ccxt.AuthenticationError,
    "ACCOUNT_SUSPENDED": ccxt.AccountSuspended,
    "PARTICIPANT_UNKNOWN": ccxt.AuthenticationError,
    "RATE_LIMITED": ccxt.RateLimitExceeded,
    "VENUE_STOPPED": ccxt.ExchangeNotAvailable,
    "HISTORY_BEHIND": ccxt.ExchangeNotAvailable,
    "MARKET_HALTED": ccxt.ExchangeNotAvailable,
    "UNKNOWN_MARKET": ccxt.BadSymbol,
    "UNKNOWN_ORDER": ccxt.OrderNotFound,
    "INSUFFICIENT_FUNDS": ccxt.InsufficientFunds,
    "POST_ONLY_WOULD_TRADE": ccxt.OrderImmediatelyFillable,
    "DUPLICATE_CLIENT_ORDER_ID": ccxt.DuplicateOrderId,
    "DUPLICATE_ORDER_ID": ccxt.DuplicateOrderId,
    "INTERNAL": ccxt.ExchangeError,
}
# Every other refusal of an order by the engine (INVALID_TICK, BELOW_MIN_NOTIONAL,
# PRICE_OUT_OF_BAND, licence and category checks...) is an InvalidOrder.
BROAD_ERRORS: dict[str, Any] = {
    "INVALID_": ccxt.InvalidOrder,
    "BELOW_": ccxt.InvalidOrder,
    "PRICE_": ccxt.InvalidOrder,
    "LIMIT": ccxt.InvalidOrder,
    "EXCEEDED": ccxt.InvalidOrder,
    "LICENSE": ccxt.PermissionDenied,
    "NOT_PERMITTED": ccxt.PermissionDenied,
    "NOT_LICENSED": ccxt.PermissionDenied,
    "BLOCKED": ccxt.PermissionDenied,
    "KYC_": ccxt.PermissionDenied,
    "NO_REFERENCE_PRICE": ccxt.InvalidOrder,
}


class _Alatau:
    """What the sync and async classes share: the description, signing, error mapping and
    the parsers (no request is made here)."""

    # Set by ccxt.Exchange; declared for the type checker (ccxt is untyped).
    urls: dict[str, Any]
    options: dict[str, Any]
    apiKey: str
    secret: str
    id: str
    _last_nonce: int = 0

    def describe(self) -> Any:
        base: Any = super().describe()  # type: ignore[misc]
        return self.deep_extend(  # type: ignore[attr-defined]
            base,
            {
                "id": "alatau",
                "name": "Alatau Exchange",
                "countries": ["KZ"],
                "version": "v1",
                "rateLimit": 1,  # the venue allows 2,000 requests/s an address by default
                "certified": False,
                "pro": False,
                "precisionMode": TICK_SIZE,
                "has": {
                    "CORS": None,
                    "spot": True,
                    "margin": False,
                    "swap": False,
                    "future": False,
                    "option": False,
                    "cancelAllOrders": True,
                    "cancelOrder": True,
                    "createOrder": True,
                    "createMarketOrder": True,
                    "createLimitOrder": True,
                    "createPostOnlyOrder": True,
                    "fetchBalance": True,
                    "fetchClosedOrders": True,
                    "fetchMarkets": True,
                    "fetchMyTrades": True,
                    "fetchOHLCV": True,
                    "fetchOpenOrders": True,
                    "fetchOrder": True,
                    "fetchOrderBook": True,
                    "fetchTicker": True,
                    "fetchTickers": True,
                    "fetchTime": True,
                    "fetchTrades": True,
                    "fetchCurrencies": False,
                    "fetchOrders": False,
                    "fetchDeposits": False,
                    "fetchWithdrawals": False,
                    "withdraw": False,
                    "editOrder": False,
                },
                "timeframes": {tf: tf for tf in ("1m", "5m", "15m", "1h", "4h", "1d")},
                "urls": {
                    "api": {"public": DEFAULT_URL, "private": DEFAULT_URL},
                    "www": "https://github.com/alatau-exchange",
                    "doc": ["docs/http.md"],
                },
                "api": {
                    "public": {"get": ["time", "markets", "depth", "trades", "ticker", "candles"]},
                    "private": {
                        "get": ["balances", "orders/open", "order", "orders/history", "fills"],
                        "post": ["order"],
                        "delete": ["order", "orders"],
                    },
                },
                "requiredCredentials": {"apiKey": True, "secret": True},
                "options": {"keyType": "auto"},  # "ed25519", "hmac" or "auto" (module doc)
                "exceptions": {"exact": EXACT_ERRORS, "broad": BROAD_ERRORS},
            },
        )

    # -- requests --------------------------------------------------------------------------

    def _base_url(self, api: Any) -> str:
        urls = self.urls["api"]
        if isinstance(urls, str):  # one URL for both, as {"urls": {"api": "http://..."}}
            return urls.rstrip("/")
        return str(urls["public" if api == "public" else "private"]).rstrip("/")

    def _key_type(self) -> str:
        kind = str(self.options.get("keyType", "auto")).lower()
        if kind in ("ed25519", "hmac"):
            return kind
        secret = self.secret or ""
        is_hex = len(secret) == 64 and all(c in "0123456789abcdefABCDEF" for c in secret)
        return "ed25519" if is_hex else "hmac"

    def _timestamp(self) -> int:
        """Now in ms, never the same twice: the venue refuses a replayed timestamp."""
        ts = max(time.time_ns() // 1_000_000, self._last_nonce + 1)
        self._last_nonce = ts
        return ts

    def sign(
        self,
        path: str,
        api: Any = "public",
        method: str = "GET",
        params: Any = None,
        headers: Any = None,
        body: Any = None,
    ) -> dict[str, Any]:
        params = dict(params or {})
        url = f"{self._base_url(api)}/{path}"
        query = ""
        raw = ""
        if method in ("GET", "DELETE"):
            if params:
                query = "?" + urlencode(params)
        elif params:
            raw = json.dumps(params, separators=(",", ":"))
        out_headers: dict[str, str] = {}
        if api != "public":
            self.check_required_credentials()  # type: ignore[attr-defined]
            ts = self._timestamp()
            message = request_message(ts, method, urlparse(url).path, query, raw.encode())
            if self._key_type() == "ed25519":
                signature = ed25519_private_key(self.secret).sign(message).hex()
            else:
                signature = sign_request(self.secret, message)
            out_headers = {
                "X-Alatau-Key": self.apiKey,
                "X-Alatau-Timestamp": str(ts),
                "X-Alatau-Signature": signature,
            }
        if raw:
            out_headers["Content-Type"] = "application/json"
        return {
            "url": url + query,
            "method": method,
            "body": raw or None,
            "headers": out_headers or None,
        }

    def handle_errors(
        self,
        code: int,
        reason: str,
        url: str,
        method: str,
        headers: Any,
        body: str,
        response: Any,
        request_headers: Any,
        request_body: Any,
    ) -> None:
        if not isinstance(response, dict) or not isinstance(response.get("error"), dict):
            return None
        error = response["error"]
        venue_code = str(error.get("code", ""))
        feedback = f"{self.id} {venue_code}: {error.get('message', '')}"
        exact = EXACT_ERRORS.get(venue_code)
        if exact is not None:
            raise exact(feedback)
        for fragment, exception in BROAD_ERRORS.items():
            if fragment in venue_code:
                raise exception(feedback)
        raise ccxt.ExchangeError(feedback)

    # -- parsers ---------------------------------------------------------------------------

    def parse_market(self, market: dict[str, Any]) -> Any:
        me: Any = self
        market_id = me.safe_string(market, "symbol")
        base_id = me.safe_string(market, "base")
        quote_id = me.safe_string(market, "quote")
        base = me.safe_currency_code(base_id)
        quote = me.safe_currency_code(quote_id)
        ppm = 1_000_000
        return me.safe_market_structure(
            {
                "id": market_id,
                "symbol": f"{base}/{quote}",
                "base": base,
                "quote": quote,
                "settle": None,
                "baseId": base_id,
                "quoteId": quote_id,
                "settleId": None,
                "type": "spot",
                "spot": True,
                "margin": False,
                "swap": False,
                "future": False,
                "option": False,
                "active": me.safe_string(market, "status") == "open",
                "contract": False,
                "linear": None,
                "inverse": None,
                "taker": me.safe_integer(market, "taker_fee_ppm", 0) / ppm,
                "maker": me.safe_integer(market, "maker_fee_ppm", 0) / ppm,
                "contractSize": None,
                "expiry": None,
                "expiryDatetime": None,
                "strike": None,
                "optionType": None,
                "precision": {
                    "amount": me.safe_number(market, "lot"),
                    "price": me.safe_number(market, "tick"),
                },
                "limits": {
                    "leverage": {"min": None, "max": None},
                    "amount": {"min": me.safe_number(market, "min_qty"), "max": None},
                    "price": {"min": me.safe_number(market, "tick"), "max": None},
                    "cost": {"min": me.safe_number(market, "min_notional"), "max": None},
                },
                "created": None,
                "info": market,
            }
        )

    def parse_ticker(self, ticker: dict[str, Any], market: Any = None) -> Any:
        me: Any = self
        market = me.safe_market(me.safe_string(ticker, "market"), market, "-")
        ts = me.safe_integer(ticker, "ts")
        last = me.safe_string(ticker, "last")
        return me.safe_ticker(
            {
                "symbol": market["symbol"],
                "timestamp": ts,
                "datetime": me.iso8601(ts),
                "high": me.safe_string(ticker, "high"),
                "low": me.safe_string(ticker, "low"),
                "bid": me.safe_string(ticker, "bid"),
                "bidVolume": None,
                "ask": me.safe_string(ticker, "ask"),
                "askVolume": None,
                "vwap": None,
                "open": me.safe_string(ticker, "open"),
                "close": last,
                "last": last,
                "previousClose": None,
                "change": me.safe_string(ticker, "change"),
                "percentage": None,
                "average": None,
                "baseVolume": me.safe_string(ticker, "volume"),
                "quoteVolume": me.safe_string(ticker, "quote_volume"),
                "info": ticker,
            },
            market,
        )

    def parse_trade(self, trade: dict[str, Any], market: Any = None) -> Any:
        """A public trade (``/trades``), a fill (``/fills``) or a fill of ``order.place``."""
        me: Any = self
        market = me.safe_market(me.safe_string(trade, "market"), market, "-")
        ts = me.safe_integer(trade, "ts")
        side = me.safe_string_2(trade, "side", "taker_side")
        liquidity = me.safe_string(trade, "liquidity")
        fee = None
        fee_cost = me.safe_string(trade, "fee")
        if fee_cost is not None:
            fee = {
                "cost": fee_cost,
                "currency": me.safe_currency_code(me.safe_string(trade, "fee_asset")),
            }
        return me.safe_trade(
            {
                "id": me.safe_string(trade, "trade_id"),
                "order": me.safe_string(trade, "order_id"),
                "timestamp": ts,
                "datetime": me.iso8601(ts),
                "symbol": market["symbol"],
                "type": None,
                "side": side,
                "takerOrMaker": liquidity if liquidity is not None else None,
                "price": me.safe_string_2(trade, "price", "fill_price"),
                "amount": me.safe_string_2(trade, "qty", "fill_qty"),
                "cost": None,
                "fee": fee,
                "info": trade,
            },
            market,
        )

    def parse_ohlcv(self, ohlcv: list[Any], market: Any = None) -> list[Any]:
        me: Any = self
        return [
            me.safe_integer(ohlcv, 0),
            me.safe_number(ohlcv, 1),
            me.safe_number(ohlcv, 2),
            me.safe_number(ohlcv, 3),
            me.safe_number(ohlcv, 4),
            me.safe_number(ohlcv, 5),
        ]

    def parse_order(self, order: dict[str, Any], market: Any = None) -> Any:
        me: Any = self
        market = me.safe_market(me.safe_string(order, "market"), market, "-")
        ts = me.safe_integer_2(order, "created_ts", "ts")
        fills = order.get("fills") or []
        return me.safe_order(
            {
                "id": me.safe_string(order, "order_id"),
                "clientOrderId": me.safe_string(order, "client_order_id"),
                "timestamp": ts,
                "datetime": me.iso8601(ts),
                "lastTradeTimestamp": None,
                "lastUpdateTimestamp": me.safe_integer(order, "ts"),
                "status": STATUSES.get(me.safe_string(order, "status", "")),
                "symbol": market["symbol"],
                "type": me.safe_string(order, "order_type"),
                "timeInForce": None,
                "postOnly": None,
                "side": me.safe_string(order, "side"),
                "price": me.safe_string(order, "price"),
                "triggerPrice": None,
                "amount": me.safe_string(order, "qty"),
                "filled": me.safe_string(order, "filled_qty"),
                "remaining": me.safe_string(order, "remaining_qty"),
                "cost": None,
                "average": None,
                "trades": [me.parse_trade(f, market) for f in fills],
                "fee": None,
                "info": order,
            },
            market,
        )

    def parse_balance(self, response: list[dict[str, Any]]) -> Any:
        me: Any = self
        result: dict[str, Any] = {"info": response}
        for entry in response:
            account = me.account()
            account["free"] = me.safe_string(entry, "available")
            account["used"] = me.safe_string(entry, "held")
            account["total"] = me.safe_string(entry, "total")
            result[me.safe_currency_code(me.safe_string(entry, "asset"))] = account
        return me.safe_balance(result)

    # -- requests of the unified methods (shared: each method sends one of these) ------------

    def _order_request(
        self,
        symbol: str,
        type: str,
        side: str,
        amount: Any,
        price: Any,
        params: dict[str, Any],
    ) -> tuple[Any, dict[str, Any]]:
        me: Any = self
        market = me.market(symbol)
        request: dict[str, Any] = {
            "market": market["id"],
            "side": side,
            "type": type,
            "qty": me.amount_to_precision(symbol, amount),
        }
        if type == "limit":
            request["price"] = me.price_to_precision(symbol, price)
        post_only = me.safe_bool_2(params, "postOnly", "post_only")
        tif = me.safe_string_upper_2(params, "timeInForce", "tif")
        if tif == "PO":
            post_only, tif = True, None
        if post_only:
            request["post_only"] = True
        if tif is not None:
            request["tif"] = tif
        client_order_id = me.safe_string_2(params, "clientOrderId", "client_order_id")
        if client_order_id is not None:
            request["client_order_id"] = client_order_id
        rest = me.omit(
            params,
            ["postOnly", "post_only", "timeInForce", "tif", "clientOrderId", "client_order_id"],
        )
        return market, me.extend(request, rest)

    def _order_ref(self, id: Any, params: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        me: Any = self
        client_order_id = me.safe_string_2(params, "clientOrderId", "client_order_id")
        params = me.omit(params, ["clientOrderId", "client_order_id"])
        if client_order_id is not None:
            return {"client_order_id": client_order_id}, params
        return {"order_id": str(id)}, params

    def _history_request(
        self, market: Any, since: Any, limit: Any, params: dict[str, Any]
    ) -> dict[str, Any]:
        me: Any = self
        request: dict[str, Any] = {}
        if market is not None:
            request["market"] = market["id"]
        if since is not None:
            request["start"] = int(since)
        if limit is not None:
            request["limit"] = int(limit)
        return dict(me.extend(request, params))

    def _candles_request(
        self, market: Any, timeframe: str, since: Any, limit: Any, params: dict[str, Any]
    ) -> dict[str, Any]:
        me: Any = self
        request: dict[str, Any] = {
            "market": market["id"],
            "interval": me.safe_string(me.timeframes, timeframe, timeframe),
        }
        if since is not None:
            request["start"] = int(since)
        if limit is not None:
            request["limit"] = min(int(limit), 1000)
        return dict(me.extend(request, params))


def _market_id(exchange: Any, symbol: str | None) -> Any:
    return None if symbol is None else exchange.market(symbol)


class alatau(_Alatau, ccxt.Exchange):  # CCXT names a class by its id
    """Alatau through CCXT's unified API, synchronous."""

    def fetch_time(self, params: Any = None) -> Any:
        response = self.request("time", "public", "GET", params or {})
        return self.safe_integer(response, "server_time")

    def fetch_markets(self, params: Any = None) -> Any:
        response = self.request("markets", "public", "GET", params or {})
        return [self.parse_market(m) for m in response]

    def fetch_order_book(self, symbol: str, limit: Any = None, params: Any = None) -> Any:
        self.load_markets()
        market = self.market(symbol)
        request = {"market": market["id"]}
        if limit is not None:
            request["limit"] = min(int(limit), 1000)
        response = self.request("depth", "public", "GET", self.extend(request, params or {}))
        book = self.parse_order_book(response, market["symbol"], None, "bids", "asks")
        book["nonce"] = self.safe_integer(response, "seq")
        return book

    def fetch_trades(
        self, symbol: str, since: Any = None, limit: Any = None, params: Any = None
    ) -> Any:
        self.load_markets()
        market = self.market(symbol)
        request = {"market": market["id"]}
        if limit is not None:
            request["limit"] = min(int(limit), 1000)
        response = self.request("trades", "public", "GET", self.extend(request, params or {}))
        return self.parse_trades(response, market, since, limit)

    def fetch_ticker(self, symbol: str, params: Any = None) -> Any:
        self.load_markets()
        market = self.market(symbol)
        request = {"market": market["id"]}
        response = self.request("ticker", "public", "GET", self.extend(request, params or {}))
        return self.parse_ticker(response, market)

    def fetch_tickers(self, symbols: Any = None, params: Any = None) -> Any:
        self.load_markets()
        response = self.request("ticker", "public", "GET", params or {})
        return self.parse_tickers(response, symbols)

    def fetch_ohlcv(
        self,
        symbol: str,
        timeframe: str = "1m",
        since: Any = None,
        limit: Any = None,
        params: Any = None,
    ) -> Any:
        self.load_markets()
        market = self.market(symbol)
        request = self._candles_request(market, timeframe, since, limit, params or {})
        response = self.request("candles", "public", "GET", request)
        return self.parse_ohlcvs(response, market, timeframe, since, limit)

    def fetch_balance(self, params: Any = None) -> Any:
        response = self.request("balances", "private", "GET", params or {})
        return self.parse_balance(response)

    def create_order(
        self,
        symbol: str,
        type: str,
        side: str,
        amount: Any,
        price: Any = None,
        params: Any = None,
    ) -> Any:
        self.load_markets()
        market, request = self._order_request(symbol, type, side, amount, price, params or {})
        response = self.request("order", "private", "POST", request)
        return self.parse_order(response, market)

    def cancel_order(self, id: str, symbol: str | None = None, params: Any = None) -> Any:
        self.load_markets()
        request, rest = self._order_ref(id, params or {})
        market = _market_id(self, symbol)
        if market is not None:
            request["market"] = market["id"]
        response = self.request("order", "private", "DELETE", self.extend(request, rest))
        return self.parse_order(response, market)

    def cancel_all_orders(self, symbol: str | None = None, params: Any = None) -> Any:
        self.load_markets()
        market = _market_id(self, symbol)
        request = {} if market is None else {"market": market["id"]}
        response = self.request("orders", "private", "DELETE", self.extend(request, params or {}))
        return [self.safe_order({"info": response})]

    def fetch_order(self, id: str, symbol: str | None = None, params: Any = None) -> Any:
        self.load_markets()
        request, rest = self._order_ref(id, params or {})
        response = self.request("order", "private", "GET", self.extend(request, rest))
        return self.parse_order(response, _market_id(self, symbol))

    def fetch_open_orders(
        self, symbol: str | None = None, since: Any = None, limit: Any = None, params: Any = None
    ) -> Any:
        self.load_markets()
        market = _market_id(self, symbol)
        request: dict[str, Any] = {"limit": 1000 if limit is None else min(int(limit), 1000)}
        if market is not None:
            request["market"] = market["id"]
        request = self.extend(request, params or {})
        orders: list[Any] = []
        while True:  # every page, following `next`
            response = self.request("orders/open", "private", "GET", request)
            orders += response["orders"]
            cursor = response.get("next")
            if cursor is None or (limit is not None and len(orders) >= limit):
                break
            request = self.extend(request, {"cursor": cursor})
        return self.parse_orders(orders, market, since, limit)

    def fetch_closed_orders(
        self, symbol: str | None = None, since: Any = None, limit: Any = None, params: Any = None
    ) -> Any:
        self.load_markets()
        market = _market_id(self, symbol)
        request = self._history_request(market, since, limit, params or {})
        response = self.request("orders/history", "private", "GET", request)
        return self.parse_orders(response["orders"], market, since, limit)

    def fetch_my_trades(
        self, symbol: str | None = None, since: Any = None, limit: Any = None, params: Any = None
    ) -> Any:
        self.load_markets()
        market = _market_id(self, symbol)
        request = self._history_request(market, since, limit, params or {})
        response = self.request("fills", "private", "GET", request)
        return self.parse_trades(response["fills"], market, since, limit)


class alatau_async(_Alatau, ccxt.async_support.Exchange):
    """The same over ``ccxt.async_support`` (aiohttp): every unified method is awaited."""

    async def fetch_time(self, params: Any = None) -> Any:
        response = await self.request("time", "public", "GET", params or {})
        return self.safe_integer(response, "server_time")

    async def fetch_markets(self, params: Any = None) -> Any:
        response = await self.request("markets", "public", "GET", params or {})
        return [self.parse_market(m) for m in response]

    async def fetch_order_book(self, symbol: str, limit: Any = None, params: Any = None) -> Any:
        await self.load_markets()
        market = self.market(symbol)
        request = {"market": market["id"]}
        if limit is not None:
            request["limit"] = min(int(limit), 1000)
        response = await self.request("depth", "public", "GET", self.extend(request, params or {}))
        book = self.parse_order_book(response, market["symbol"], None, "bids", "asks")
        book["nonce"] = self.safe_integer(response, "seq")
        return book

    async def fetch_trades(
        self, symbol: str, since: Any = None, limit: Any = None, params: Any = None
    ) -> Any:
        await self.load_markets()
        market = self.market(symbol)
        request = {"market": market["id"]}
        if limit is not None:
            request["limit"] = min(int(limit), 1000)
        response = await self.request("trades", "public", "GET", self.extend(request, params or {}))
        return self.parse_trades(response, market, since, limit)

    async def fetch_ticker(self, symbol: str, params: Any = None) -> Any:
        await self.load_markets()
        market = self.market(symbol)
        request = {"market": market["id"]}
        response = await self.request("ticker", "public", "GET", self.extend(request, params or {}))
        return self.parse_ticker(response, market)

    async def fetch_tickers(self, symbols: Any = None, params: Any = None) -> Any:
        await self.load_markets()
        response = await self.request("ticker", "public", "GET", params or {})
        return self.parse_tickers(response, symbols)

    async def fetch_ohlcv(
        self,
        symbol: str,
        timeframe: str = "1m",
        since: Any = None,
        limit: Any = None,
        params: Any = None,
    ) -> Any:
        await self.load_markets()
        market = self.market(symbol)
        request = self._candles_request(market, timeframe, since, limit, params or {})
        response = await self.request("candles", "public", "GET", request)
        return self.parse_ohlcvs(response, market, timeframe, since, limit)

    async def fetch_balance(self, params: Any = None) -> Any:
        response = await self.request("balances", "private", "GET", params or {})
        return self.parse_balance(response)

    async def create_order(
        self,
        symbol: str,
        type: str,
        side: str,
        amount: Any,
        price: Any = None,
        params: Any = None,
    ) -> Any:
        await self.load_markets()
        market, request = self._order_request(symbol, type, side, amount, price, params or {})
        response = await self.request("order", "private", "POST", request)
        return self.parse_order(response, market)

    async def cancel_order(self, id: str, symbol: str | None = None, params: Any = None) -> Any:
        await self.load_markets()
        request, rest = self._order_ref(id, params or {})
        market = _market_id(self, symbol)
        if market is not None:
            request["market"] = market["id"]
        response = await self.request("order", "private", "DELETE", self.extend(request, rest))
        return self.parse_order(response, market)

    async def cancel_all_orders(self, symbol: str | None = None, params: Any = None) -> Any:
        await self.load_markets()
        market = _market_id(self, symbol)
        request = {} if market is None else {"market": market["id"]}
        response = await self.request(
            "orders", "private", "DELETE", self.extend(request, params or {})
        )
        return [self.safe_order({"info": response})]

    async def fetch_order(self, id: str, symbol: str | None = None, params: Any = None) -> Any:
        await self.load_markets()
        request, rest = self._order_ref(id, params or {})
        response = await self.request("order", "private", "GET", self.extend(request, rest))
        return self.parse_order(response, _market_id(self, symbol))

    async def fetch_open_orders(
        self, symbol: str | None = None, since: Any = None, limit: Any = None, params: Any = None
    ) -> Any:
        await self.load_markets()
        market = _market_id(self, symbol)
        request: dict[str, Any] = {"limit": 1000 if limit is None else min(int(limit), 1000)}
        if market is not None:
            request["market"] = market["id"]
        request = self.extend(request, params or {})
        orders: list[Any] = []
        while True:  # every page, following `next`
            response = await self.request("orders/open", "private", "GET", request)
            orders += response["orders"]
            cursor = response.get("next")
            if cursor is None or (limit is not None and len(orders) >= limit):
                break
            request = self.extend(request, {"cursor": cursor})
        return self.parse_orders(orders, market, since, limit)

    async def fetch_closed_orders(
        self, symbol: str | None = None, since: Any = None, limit: Any = None, params: Any = None
    ) -> Any:
        await self.load_markets()
        market = _market_id(self, symbol)
        request = self._history_request(market, since, limit, params or {})
        response = await self.request("orders/history", "private", "GET", request)
        return self.parse_orders(response["orders"], market, since, limit)

    async def fetch_my_trades(
        self, symbol: str | None = None, since: Any = None, limit: Any = None, params: Any = None
    ) -> Any:
        await self.load_markets()
        market = _market_id(self, symbol)
        request = self._history_request(market, since, limit, params or {})
        response = await self.request("fills", "private", "GET", request)
        return self.parse_trades(response["fills"], market, since, limit)


def register() -> None:
    """Make the classes reachable the way CCXT scripts find an exchange:
    ``getattr(ccxt, "alatau")``, ``ccxt.alatau(...)``, ``"alatau" in ccxt.exchanges``, and
    ``ccxt.async_support.alatau``.  Done once when this module is imported."""
    for module, cls in ((ccxt, alatau), (ccxt.async_support, alatau_async)):
        module.alatau = cls
        if "alatau" not in module.exchanges:
            module.exchanges.append("alatau")


register()
