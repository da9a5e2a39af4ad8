"""The HTTP API of a live ``alatau serve`` (websocket port 0, HTTP port 0): orders and trades
placed over websockets, then every public endpoint read over plain HTTP, compared with the
engine's book and the websocket ``book:`` stream; bad input, wrong methods, the rate limit
and a stopped venue."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import websockets

from gateway.app import serve as app
from gateway.sessions.http import HttpApi
from gateway.sessions.session import Limits
from gateway.transport.http_server import run_http_server

from .gateway_harness import ADMIN_KEY, WAIT_TIMEOUT_S, async_test, login_params, running_venue

BTC = "BTC-KZT"


@dataclass
class Live:
    ws_url: str
    http_host: str
    http_port: int
    stop: asyncio.Event


@asynccontextmanager
async def live_server(limits: Limits | None = None) -> AsyncIterator[Live]:
    loop = asyncio.get_running_loop()
    started: asyncio.Future[tuple[str, int]] = loop.create_future()
    http_started: asyncio.Future[tuple[str, int]] = loop.create_future()
    stop = asyncio.Event()
    options = app.ServeOptions(
        port=0, http_port=0, quiet=True, admin_key=ADMIN_KEY, limits=limits or Limits()
    )
    task = asyncio.create_task(
        app.serve(options, started=started, stop=stop, http_started=http_started)
    )
    host, port = await asyncio.wait_for(started, WAIT_TIMEOUT_S)
    http_host, http_port = await asyncio.wait_for(http_started, WAIT_TIMEOUT_S)
    try:
        yield Live(f"ws://{host}:{port}", http_host, http_port, stop)
    finally:
        stop.set()
        assert await asyncio.wait_for(task, WAIT_TIMEOUT_S) == 0


async def http(live: Live, method: str, target: str) -> tuple[int, dict[str, str], Any]:
    """One request on a connection of its own: (status, headers lower-cased, JSON body)."""
    reader, writer = await asyncio.open_connection(live.http_host, live.http_port)
    writer.write(
        f"{method} {target} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n".encode()
    )
    raw = await asyncio.wait_for(reader.read(), WAIT_TIMEOUT_S)
    writer.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return status, headers, json.loads(body) if body else None


async def get(live: Live, path: str) -> Any:
    status, _headers, body = await http(live, "GET", f"/api/v1{path}")
    assert status == 200, (path, status, body)
    return body


class Ws:
    """A websocket client: ``call`` waits for its answer; stream messages are kept."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.next_id = 0
        self.stream: list[dict[str, Any]] = []

    async def call(self, method: str, params: dict[str, Any] | None = None) -> Any:
        self.next_id += 1
        frame: dict[str, Any] = {"id": self.next_id, "method": method}
        if params is not None:
            frame["params"] = params
        await self.ws.send(json.dumps(frame))
        while True:
            message = json.loads(await asyncio.wait_for(self.ws.recv(), WAIT_TIMEOUT_S))
            if message.get("id") == self.next_id:
                return message
            self.stream.append(message)


async def trader(live: Live, name: str) -> Ws:
    client = Ws(await websockets.connect(live.ws_url))
    answer = await client.call("auth.login", login_params(name))
    assert answer["ok"], answer
    return client


def place(side: str, price: str, qty: str) -> dict[str, Any]:
    return {"market": BTC, "side": side, "type": "limit", "price": price, "qty": qty}


async def trade_some(live: Live) -> Ws:
    mm = await trader(live, "mm1")
    bob = await trader(live, "bob")
    for params in (
        place("sell", "45000000.00", "1.00000000"),
        place("sell", "45100000.00", "2.00000000"),
        place("buy", "44900000.00", "1.00000000"),
        place("buy", "44800000.00", "1.00000000"),
    ):
        assert (await mm.call("order.place", params))["ok"]
    assert (await bob.call("order.place", place("buy", "45000000.00", "0.25000000")))["ok"]
    assert (await bob.call("order.place", place("sell", "44900000.00", "0.50000000")))["ok"]
    await bob.ws.close()
    return mm


@async_test
async def test_every_endpoint_after_trading() -> None:
    async with live_server() as live:
        watcher = Ws(await websockets.connect(live.ws_url))
        mm = await trade_some(live)
        assert (await watcher.call("subscribe", {"channels": [f"book:{BTC}"]}))["ok"]
        snapshot = await asyncio.wait_for(watcher.ws.recv(), WAIT_TIMEOUT_S)
        book = json.loads(snapshot)

        server_time = (await get(live, "/time"))["server_time"]
        assert isinstance(server_time, int) and server_time > 1_700_000_000_000

        markets = await get(live, "/markets")
        ws_markets = (await mm.call("markets.list"))["result"]
        assert markets == ws_markets

        depth = await get(live, f"/depth?market={BTC}")
        assert depth == {
            "market": BTC,
            "seq": book["seq"],  # joins the websocket book stream
            "bids": [["44900000.00", "0.50000000"], ["44800000.00", "1.00000000"]],
            "asks": [["45000000.00", "0.75000000"], ["45100000.00", "2.00000000"]],
        }
        assert depth["bids"] == book["data"]["bids"] and depth["asks"] == book["data"]["asks"]
        top = await get(live, f"/depth?market={BTC}&limit=1")
        assert top["bids"] == depth["bids"][:1] and top["asks"] == depth["asks"][:1]

        # a later change: its stream update continues from the depth's seq
        assert (await mm.call("order.place", place("sell", "45200000.00", "1.00000000")))["ok"]
        update = json.loads(await asyncio.wait_for(watcher.ws.recv(), WAIT_TIMEOUT_S))
        assert update["first_seq"] == depth["seq"] + 1
        assert (await get(live, f"/depth?market={BTC}"))["seq"] == update["seq"]

        trades = await get(live, f"/trades?market={BTC}")
        assert [(t["price"], t["qty"], t["taker_side"]) for t in trades] == [
            ("44900000.00", "0.50000000", "sell"),
            ("45000000.00", "0.25000000", "buy"),
        ]
        assert set(trades[0]) == {"trade_id", "price", "qty", "taker_side", "ts"}
        assert trades[0]["trade_id"] > trades[1]["trade_id"]
        assert await get(live, f"/trades?market={BTC}&limit=1") == trades[:1]

        ticker = await get(live, f"/ticker?market={BTC}")
        assert ticker["ts"] >= server_time
        assert {k: v for k, v in ticker.items() if k != "ts"} == {
            "market": BTC,
            "last": "44900000.00",
            "bid": "44900000.00",
            "ask": "45000000.00",
            "open": "45000000.00",
            "high": "45000000.00",
            "low": "44900000.00",
            "volume": "0.75000000",
            "quote_volume": "33700000.00",
            "trades": 2,
            "change": "-100000.00",
        }
        every = await get(live, "/ticker")
        assert [t["market"] for t in every] == [m["symbol"] for m in markets]
        await mm.ws.close()
        await watcher.ws.close()


@async_test
async def test_bad_input_gets_its_status_and_changes_nothing() -> None:
    async with live_server() as live:
        await (await trade_some(live)).ws.close()
        before = [await get(live, f"/depth?market={BTC}"), await get(live, f"/trades?market={BTC}")]
        cases = [
            ("GET", "/api/v1/depth?market=NOPE-KZT", 404, "UNKNOWN_MARKET"),
            ("GET", "/api/v1/trades?market=NOPE-KZT", 404, "UNKNOWN_MARKET"),
            ("GET", "/api/v1/ticker?market=NOPE-KZT", 404, "UNKNOWN_MARKET"),
            ("GET", "/api/v1/depth", 400, "INVALID_PARAMS"),
            ("GET", "/api/v1/trades", 400, "INVALID_PARAMS"),
            ("GET", f"/api/v1/depth?market={BTC}&limit=0", 400, "INVALID_PARAMS"),
            ("GET", f"/api/v1/depth?market={BTC}&limit=1001", 400, "INVALID_PARAMS"),
            ("GET", f"/api/v1/depth?market={BTC}&limit=x", 400, "INVALID_PARAMS"),
            ("GET", f"/api/v1/trades?market={BTC}&limit=0", 400, "INVALID_PARAMS"),
            ("GET", f"/api/v1/trades?market={BTC}&limit=1001", 400, "INVALID_PARAMS"),
            ("GET", f"/api/v1/trades?market={BTC}&limit=x", 400, "INVALID_PARAMS"),
            ("GET", "/api/v1/time?x=1", 400, "INVALID_PARAMS"),
            ("GET", "/api/v1/markets?x=1", 400, "INVALID_PARAMS"),
            ("GET", "/api/v1/nothing", 404, "NOT_FOUND"),
            ("GET", "/no-such-page", 404, "NOT_FOUND"),  # outside /api/: the web page's
            ("POST", f"/api/v1/depth?market={BTC}", 405, "METHOD_NOT_ALLOWED"),
            ("DELETE", "/api/v1/trades", 405, "METHOD_NOT_ALLOWED"),
        ]
        for method, target, status, code in cases:
            got, headers, body = await http(live, method, target)
            assert (got, body["error"]["code"]) == (status, code), (method, target, body)
            assert headers["content-type"] == "application/json"
            if status == 405:
                assert headers["allow"] == "GET"
        after = [await get(live, f"/depth?market={BTC}"), await get(live, f"/trades?market={BTC}")]
        assert after == before


@async_test
async def test_rate_limited_with_retry_after() -> None:
    async with live_server(Limits(connection_rate=1.0, connection_burst=3.0)) as live:
        statuses = []
        for _ in range(4):
            status, headers, body = await http(live, "GET", "/api/v1/time")
            statuses.append(status)
        assert statuses == [200, 200, 200, 429]
        assert headers["retry-after"] == "1"
        assert body["error"]["code"] == "RATE_LIMITED" and body["error"]["retry_after_ms"] > 0


@async_test
async def test_stopped_venue_answers_503() -> None:
    """The HTTP server on a running venue that then stops taking commands (``serve`` gives
    no handle on its venue, so the venue is the harness's here)."""
    async with running_venue() as running:
        loop = asyncio.get_running_loop()
        started: asyncio.Future[tuple[str, int]] = loop.create_future()
        stop = asyncio.Event()
        server = asyncio.create_task(
            run_http_server(HttpApi(running.gateway), "127.0.0.1", 0, started=started, stop=stop)
        )
        host, port = await asyncio.wait_for(started, WAIT_TIMEOUT_S)
        live = Live("", host, port, stop)
        assert (await http(live, "GET", f"/api/v1/depth?market={BTC}"))[0] == 200
        running.venue._closed = True  # as Venue.stop() and a failed journal write leave it
        status, _, body = await http(live, "GET", f"/api/v1/depth?market={BTC}")
        assert status == 503 and body["error"]["code"] == "VENUE_STOPPED"
        assert "shutting down" in body["error"]["message"]
        stop.set()
        await asyncio.wait_for(server, WAIT_TIMEOUT_S)


@async_test
async def test_http_stops_with_the_server() -> None:
    async with live_server() as live:
        assert await get(live, "/time")
    try:
        await asyncio.open_connection(live.http_host, live.http_port)
    except OSError:
        return
    raise AssertionError("the HTTP port still accepts connections after the server stopped")
