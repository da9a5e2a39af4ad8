"""``gateway.sessions.http`` without a network: requests in, (status, headers, JSON) out, on
the demo venue with a fixed wall clock and a hand-moved monotonic clock.  The tape of
``gateway.sequencer.tape`` is checked here too (ticker arithmetic, bounds)."""

from __future__ import annotations

from typing import Any

import pytest

from engine.reports import TradePrinted
from engine.types import Side
from gateway.sequencer.tape import DAY_MS, MINUTE_MS, TRADES_KEPT, Tape
from gateway.sessions.http import HttpApi, HttpRequest, HttpResponse
from gateway.sessions.session import Limits

from .test_gateway_session import BTC, NOW_MS, Rig

COIN = 10**8  # BTC minor units
KZT = 100  # KZT minor units (tiyn)


def get(api: HttpApi, path: str, query: str = "", *, method: str = "GET") -> HttpResponse:
    return api.handle(
        HttpRequest(method=method, path=f"/api/v1{path}", query=query, remote="127.0.0.1")
    )


def error_of(response: HttpResponse) -> dict[str, Any]:
    body = response.json()
    assert set(body) == {"error"}, body
    return body["error"]  # type: ignore[no-any-return]


@pytest.fixture
def rig() -> Rig:
    return Rig()


def trading_rig() -> tuple[Rig, HttpApi]:
    rig = Rig()
    rig.place("mm1", Side.SELL, 45_000_000 * KZT, COIN)  # ask 45,000,000.00 x 1 BTC
    rig.place("mm1", Side.SELL, 45_100_000 * KZT, 2 * COIN)
    rig.place("mm1", Side.BUY, 44_900_000 * KZT, COIN)
    rig.place("mm1", Side.BUY, 44_800_000 * KZT, COIN)
    rig.place("bob", Side.BUY, 45_000_000 * KZT, COIN // 4)  # trades 0.25 at 45,000,000
    rig.place("bob", Side.SELL, 44_900_000 * KZT, COIN // 2)  # trades 0.5 at 44,900,000
    return rig, HttpApi(rig.gateway, monotonic=rig.clock)


def test_time_and_markets(rig: Rig) -> None:
    api = HttpApi(rig.gateway, monotonic=rig.clock)
    response = get(api, "/time")
    assert response.status == 200
    assert ("Content-Type", "application/json") in response.headers
    assert response.json() == {"server_time": NOW_MS}
    markets = get(api, "/markets").json()
    assert [m["symbol"] for m in markets] == list(rig.venue.markets)
    assert markets[0]["tick"] == rig.venue.markets[markets[0]["symbol"]].format_price(
        rig.venue.markets[markets[0]["symbol"]].tick
    )


def test_depth_is_the_published_book_best_first() -> None:
    rig, api = trading_rig()
    body = get(api, "/depth", f"market={BTC}").json()
    assert body == {
        "market": BTC,
        "seq": rig.venue.channels.mirrors[BTC].seq,
        "bids": [["44900000.00", "0.50000000"], ["44800000.00", "1.00000000"]],
        "asks": [["45000000.00", "0.75000000"], ["45100000.00", "2.00000000"]],
    }
    assert body["seq"] > 0
    one = get(api, "/depth", f"market={BTC}&limit=1").json()
    assert one["bids"] == body["bids"][:1] and one["asks"] == body["asks"][:1]


def test_trades_newest_first_and_ticker() -> None:
    rig, api = trading_rig()
    trades = get(api, "/trades", f"market={BTC}").json()
    assert [(t["price"], t["qty"], t["taker_side"]) for t in trades] == [
        ("44900000.00", "0.50000000", "sell"),
        ("45000000.00", "0.25000000", "buy"),
    ]
    assert trades[0]["trade_id"] > trades[1]["trade_id"]
    assert all(t["ts"] == NOW_MS for t in trades)
    assert len(get(api, "/trades", f"market={BTC}&limit=1").json()) == 1
    ticker = get(api, "/ticker", f"market={BTC}").json()
    assert ticker == {
        "market": BTC,
        "last": "44900000.00",
        "bid": "44900000.00",
        "ask": "45000000.00",
        "open": "45000000.00",
        "high": "45000000.00",
        "low": "44900000.00",
        "volume": "0.75000000",
        "quote_volume": "33700000.00",  # 0.25 x 45,000,000 + 0.5 x 44,900,000
        "trades": 2,
        "change": "-100000.00",
        "ts": NOW_MS,
    }
    every = get(api, "/ticker").json()
    assert [t["market"] for t in every] == list(rig.venue.markets)
    quiet = next(t for t in every if t["market"] != BTC)
    assert quiet["last"] is None and quiet["trades"] == 0 and quiet["change"] is None


@pytest.mark.parametrize(
    ("path", "query", "status", "code"),
    [
        ("/depth", "market=NOPE-KZT", 404, "UNKNOWN_MARKET"),
        ("/trades", "market=NOPE-KZT", 404, "UNKNOWN_MARKET"),
        ("/ticker", "market=NOPE-KZT", 404, "UNKNOWN_MARKET"),
        ("/depth", "", 400, "INVALID_PARAMS"),
        ("/trades", "limit=5", 400, "INVALID_PARAMS"),
        ("/depth", f"market={BTC}&limit=0", 400, "INVALID_PARAMS"),
        ("/depth", f"market={BTC}&limit=1001", 400, "INVALID_PARAMS"),
        ("/depth", f"market={BTC}&limit=x", 400, "INVALID_PARAMS"),
        ("/depth", f"market={BTC}&limit=-1", 400, "INVALID_PARAMS"),
        ("/depth", f"market={BTC}&limit= 5", 400, "INVALID_PARAMS"),
        ("/trades", f"market={BTC}&limit=0", 400, "INVALID_PARAMS"),
        ("/trades", f"market={BTC}&limit=1001", 400, "INVALID_PARAMS"),
        ("/trades", f"market={BTC}&limit=x", 400, "INVALID_PARAMS"),
        ("/depth", f"market={BTC}&market={BTC}", 400, "INVALID_PARAMS"),
        ("/depth", f"market={BTC}&limt=5", 400, "INVALID_PARAMS"),
        ("/time", "x=1", 400, "INVALID_PARAMS"),
        ("/markets", "x=1", 400, "INVALID_PARAMS"),
        ("/ticker", "limit=5", 400, "INVALID_PARAMS"),
        ("/depth", "market=%ff", 400, "INVALID_PARAMS"),
        ("/nothing", "", 404, "NOT_FOUND"),
        ("", "", 404, "NOT_FOUND"),
    ],
)
def test_bad_input_gets_its_code_and_status(path: str, query: str, status: int, code: str) -> None:
    _rig, api = trading_rig()
    before = get(api, "/depth", f"market={BTC}").json(), get(api, "/trades", f"market={BTC}").json()
    response = get(api, path, query)
    assert response.status == status
    error = error_of(response)
    assert error["code"] == code and error["message"]
    after = get(api, "/depth", f"market={BTC}").json(), get(api, "/trades", f"market={BTC}").json()
    assert after == before


def test_wrong_method_is_405_with_allow(rig: Rig) -> None:
    api = HttpApi(rig.gateway, monotonic=rig.clock)
    response = get(api, "/depth", f"market={BTC}", method="POST")
    assert response.status == 405
    assert ("Allow", "GET") in response.headers
    assert error_of(response)["code"] == "METHOD_NOT_ALLOWED"


def test_rate_limited_per_address_with_retry_after() -> None:
    rig = Rig(Limits(connection_rate=2.0, connection_burst=3.0))
    api = HttpApi(rig.gateway, monotonic=rig.clock)
    assert [get(api, "/time").status for _ in range(3)] == [200, 200, 200]
    limited = get(api, "/nothing")  # every request counts, whatever it asks
    assert limited.status == 429
    assert ("Retry-After", "1") in limited.headers
    error = error_of(limited)
    assert error["code"] == "RATE_LIMITED" and error["retry_after_ms"] == 500
    other = api.handle(HttpRequest("GET", "/api/v1/time", remote="10.0.0.2"))
    assert other.status == 200  # another address has a bucket of its own
    rig.clock.advance(0.5)
    assert get(api, "/time").status == 200


def test_stopped_venue_is_503(rig: Rig) -> None:
    api = HttpApi(rig.gateway, monotonic=rig.clock)
    rig.venue._closed = True  # as Venue.stop() leaves it
    response = get(api, "/depth", f"market={BTC}")
    assert response.status == 503
    assert error_of(response)["code"] == "VENUE_STOPPED"


def _trade(ts: int, price: int, qty: int, trade_id: int) -> TradePrinted:
    return TradePrinted(
        ts=ts, market=BTC, trade_id=trade_id, price=price, qty=qty, taker_side="buy"
    )


def test_ticker_window_rolls_by_the_minute(rig: Rig) -> None:
    tape = Tape(rig.venue.markets[BTC])
    start = NOW_MS - DAY_MS - 2 * MINUTE_MS  # out of the window at NOW_MS
    tape.extend([_trade(start, 100 * KZT, COIN, 1)])
    tape.extend([_trade(NOW_MS - 1000, 300 * KZT, COIN, 2), _trade(NOW_MS, 200 * KZT, COIN, 3)])
    ticker = tape.ticker(NOW_MS, None, None)
    assert (ticker["open"], ticker["high"], ticker["low"], ticker["last"]) == (
        "300.00",
        "300.00",
        "200.00",
        "200.00",
    )
    assert ticker["trades"] == 2 and ticker["change"] == "-100.00"
    assert ticker["volume"] == "2.00000000" and ticker["quote_volume"] == "500.00"
    later = tape.ticker(NOW_MS + DAY_MS + MINUTE_MS, None, None)
    assert later["trades"] == 0 and later["last"] == "200.00" and later["open"] is None


def test_tape_is_bounded(rig: Rig) -> None:
    tape = Tape(rig.venue.markets[BTC])
    tape.extend([_trade(NOW_MS + i * MINUTE_MS, KZT, 1, i) for i in range(TRADES_KEPT + 2000)])
    assert len(tape.trades) == TRADES_KEPT
    assert len(tape.minutes) == tape.minutes.maxlen
    assert tape.recent(1)[0]["trade_id"] == TRADES_KEPT + 1999
