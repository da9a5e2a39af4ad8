"""The websocket channels ``ticker:{market}`` and ``candles:{market}:{interval}`` on a live
``alatau serve`` with a history database: the ticker after trades, one message per batch
however many trades it had, equal to ``GET /ticker``; candles across an interval boundary
(the venue's clock injected), the closed candle once more and then the new open one, equal
to what ``GET /candles`` computes from the history database; the current state as the first
message of a subscription; bad channel names refused with ``INVALID_PARAMS``."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import pytest
import websockets

from gateway.sequencer import marketdata
from gateway.sequencer import venue as venue_module
from gateway.storage import history

from .gateway_harness import WAIT_TIMEOUT_S, async_test, running_venue
from .test_http_live import Live, Ws, place, trader
from .test_http_private import live_server, request, wait_written

BTC = "BTC-KZT"
DAY_MS = 86_400_000


async def subscribe(client: Ws, channels: list[str]) -> None:
    answer = await client.call("subscribe", {"channels": channels})
    assert answer["ok"], answer


async def take(client: Ws, count: int) -> list[dict[str, Any]]:
    """The next ``count`` stream messages (those already kept first), then none more."""
    while len(client.stream) < count:
        frame = await asyncio.wait_for(client.ws.recv(), WAIT_TIMEOUT_S)
        client.stream.append(json.loads(frame))
    with pytest.raises(TimeoutError):
        frame = await asyncio.wait_for(client.ws.recv(), 0.3)
        client.stream.append(json.loads(frame))
    messages, client.stream[:] = client.stream[:], []
    assert len(messages) == count, messages
    return messages


async def watcher(live: Live) -> Ws:
    return Ws(await websockets.connect(live.ws_url))


def http_candle(row: list[Any], closed: bool) -> dict[str, Any]:
    keys = ("open_time", "open", "high", "low", "close", "volume", "quote_volume", "trades")
    return {**dict(zip(keys, row, strict=True)), "closed": closed}


@async_test
async def test_ticker_and_candles_across_an_interval_boundary_equal_http(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = [0]  # the venue's clock: the wall clock until a test time is set
    monkeypatch.setattr(
        venue_module, "wall_clock_ms", lambda: now[0] or time.time_ns() // 1_000_000
    )
    async with live_server(tmp_path) as live:
        mm = await trader(live, "mm1")
        bob = await trader(live, "bob")
        first = await watcher(live)
        # 30 s before a UTC day starts: one minute later every interval has a new candle.
        t0 = (time.time_ns() // 1_000_000 // DAY_MS + 2) * DAY_MS - 30_000
        now[0] = t0
        channels = [f"ticker:{BTC}", f"candles:{BTC}:1m", f"candles:{BTC}:1d"]
        await subscribe(first, channels)
        ticker, one_m, one_d = await take(first, 3)
        assert ticker["channel"] == "ticker" and ticker["market"] == BTC
        assert ticker["data"]["trades"] == 0 and ticker["data"]["last"] is None
        assert ticker["data"]["ts"] == t0
        assert one_m == {"channel": "candles", "market": BTC, "interval": "1m", "data": None}
        assert one_d["interval"] == "1d" and one_d["data"] is None

        # One command, three trades: one ticker message and one candle per interval.
        for price, qty in (("45000000.00", "0.1"), ("45100000.00", "0.2"), ("45200000.00", "0.3")):
            assert (await mm.call("order.place", place("sell", price, qty)))["ok"]
        assert (await bob.call("order.place", place("buy", "45200000.00", "0.6")))["ok"]
        ticker, one_m, one_d = await take(first, 3)
        assert ticker["channel"] == "ticker"
        assert ticker["data"]["trades"] == 3
        assert ticker["data"]["last"] == "45200000.00"
        assert ticker["data"]["open"] == "45000000.00"
        assert one_m["data"] == {
            "open_time": t0 // 60_000 * 60_000,
            "open": "45000000.00",
            "high": "45200000.00",
            "low": "45000000.00",
            "close": "45200000.00",
            "volume": "0.60000000",
            "quote_volume": "27080000.00",
            "trades": 3,
            "closed": False,
        }
        assert one_d["data"] == {**one_m["data"], "open_time": t0 // DAY_MS * DAY_MS}
        first_minute = one_m["data"]

        # A minute later: a new minute and a new day, so each closed candle comes once more
        # (closed) before the new open one.
        now[0] = t0 + 60_000
        assert (await mm.call("order.place", place("sell", "44000000.00", "0.5")))["ok"]
        assert (await bob.call("order.place", place("buy", "44000000.00", "0.5")))["ok"]
        ticker, m_closed, m_open, d_closed, d_open = await take(first, 5)
        assert ticker["data"]["trades"] == 4 and ticker["data"]["last"] == "44000000.00"
        assert m_closed["data"] == {**first_minute, "closed": True}
        assert d_closed["data"] == {**one_d["data"], "closed": True}
        assert m_open["interval"] == "1m" and d_open["interval"] == "1d"
        assert m_open["data"] == {
            "open_time": (t0 + 60_000) // 60_000 * 60_000,
            "open": "44000000.00",
            "high": "44000000.00",
            "low": "44000000.00",
            "close": "44000000.00",
            "volume": "0.50000000",
            "quote_volume": "22000000.00",
            "trades": 1,
            "closed": False,
        }
        assert d_open["data"] == {**m_open["data"], "open_time": (t0 + 60_000) // DAY_MS * DAY_MS}

        # The same trades, summed by SQL over the history database.
        await wait_written()
        for interval, closed, opened in (("1m", m_closed, m_open), ("1d", d_closed, d_open)):
            status, rows = await request(
                live, "GET", "/candles", f"market={BTC}&interval={interval}"
            )
            assert status == 200
            assert [http_candle(rows[0], True), http_candle(rows[1], False)] == [
                closed["data"],
                opened["data"],
            ]
        status, http_ticker = await request(live, "GET", "/ticker", f"market={BTC}")
        assert status == 200 and http_ticker == ticker["data"]

        # A new subscriber starts in step: the current ticker and the open candles, made
        # from the tape; 5m had no subscriber until now.
        second = await watcher(live)
        await subscribe(second, [f"ticker:{BTC}", f"candles:{BTC}:1m", f"candles:{BTC}:5m"])
        ticker2, m_now, five = await take(second, 3)
        assert ticker2 == ticker
        assert m_now == m_open
        assert five["data"] == {**m_open["data"], "open_time": (t0 + 60_000) // 300_000 * 300_000}
        status, rows = await request(live, "GET", "/candles", f"market={BTC}&interval=5m")
        assert http_candle(rows[-1], False) == five["data"]
        # Once its interval is over, the candle a subscriber gets first says so.
        now[0] = t0 + 10 * 60_000
        await subscribe(second, [f"candles:{BTC}:1m"])
        (again,) = await take(second, 1)
        assert again["data"] == {**m_open["data"], "closed": True}
        for client in (mm, bob, first, second):
            await client.ws.close()


@async_test
async def test_bad_channel_names_are_refused_and_candle_state_is_dropped() -> None:
    async with running_venue() as rv:
        client = await rv.connect()
        for channel in (
            "ticker:NOPE-KZT",
            "ticker:BTC-KZT:1m",
            "candles:BTC-KZT",
            "candles:BTC-KZT:2m",
            "candles:NOPE-KZT:1m",
            "candles:BTC-KZT:1m:x",
        ):
            error = await client.error("subscribe", {"channels": [channel]})
            assert error["code"] == "INVALID_PARAMS"
            assert repr(channel) in error["message"], error
        channels = rv.venue.channels
        await client.ok("subscribe", {"channels": [f"candles:{BTC}:4h", f"ticker:{BTC}"]})
        assert set(channels.candles[BTC]) == {f"candles:{BTC}:4h"}
        await client.ok("unsubscribe", {"channels": [f"candles:{BTC}:4h"]})
        assert channels.candles == {}
        await client.ok("subscribe", {"channels": [f"candles:{BTC}:15m"]})
        await client.close()
        await asyncio.sleep(0.1)
        assert channels.candles == {}


def test_the_intervals_are_the_ones_get_candles_takes() -> None:
    assert marketdata.INTERVALS_MS == history.INTERVALS_MS
