"""``alatau demo``: the exchange with a few bots, printing trades and book changes live.

It starts an in-memory demo venue on 127.0.0.1, then, over real websocket connections
with the client SDK:

* a market maker (``mm1``) quoting three post-only levels a side around the reference
  price and re-quoting every second;
* two takers (``bob`` and ``alice``) sending small IOC orders that cross the spread now
  and then;
* a watcher that follows ``trades:MARKET`` and ``book:MARKET`` (through a ``LocalBook``)
  and prints every trade and the top of the book as it changes.

It prints the URL of the trading page (``docs/web.md``), opened on MARKET, and demo keys
to log in there with.

Everything stops after ``--duration`` seconds, or at Ctrl-C, with the bots' orders
canceled.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import signal
from decimal import Decimal

from gateway.app.serve import DEMO_PRIVATE_KEYS, ServeOptions, serve
from gateway.sdk.client import ApiError, Client

# name -> (api_key, Ed25519 private key): the demo venue's published keys
BOTS = {
    name: (f"demo-{name}-key", DEMO_PRIVATE_KEYS[f"demo-{name}-key"])
    for name in ("mm1", "bob", "alice")
}


async def market_maker(url: str, market: str, tick: Decimal, stop: asyncio.Event) -> None:
    key, private_key = BOTS["mm1"]
    async with Client(url) as client:
        await client.login(key, private_key=private_key)
        await client.cancel_on_disconnect(True)
        info = next(m for m in await client.markets() if m["symbol"] == market)
        reference = Decimal(info["reference_price"])
        rnd = random.Random(1)
        while not stop.is_set():
            mid = reference + tick * rnd.randint(-3, 3)
            await client.cancel_all(market)
            orders = []
            for level in range(1, 4):
                for side, sign in (("buy", -1), ("sell", 1)):
                    orders.append(
                        {
                            "market": market,
                            "side": side,
                            "type": "limit",
                            "post_only": True,
                            "price": str(mid + sign * tick * level),
                            "qty": str(10 * level),
                        }
                    )
            await client.batch(orders)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), 1.0)
        await client.cancel_all(market)


async def taker(name: str, url: str, market: str, tick: Decimal, stop: asyncio.Event) -> None:
    key, private_key = BOTS[name]
    rnd = random.Random(name)
    async with Client(url) as client:
        await client.login(key, private_key=private_key)
        info = next(m for m in await client.markets() if m["symbol"] == market)
        reference = Decimal(info["reference_price"])
        while not stop.is_set():
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), rnd.uniform(0.3, 1.2))
            if stop.is_set():
                break
            side = rnd.choice(["buy", "sell"])
            price = reference + (tick * 4 if side == "buy" else -tick * 4)
            with contextlib.suppress(ApiError):
                await client.place(market, side, str(rnd.randint(1, 8)), str(price), tif="IOC")


async def watcher(url: str, market: str, stop: asyncio.Event) -> None:
    async with (
        Client(url) as client,
        client.stream(f"trades:{market}") as trades,
        client.local_book(market) as book,
    ):
        last_top = None

        async def show_trades() -> None:
            async for message in trades:
                for t in message["data"]:  # the trades of one batch, in order
                    print(
                        f"trade #{t['trade_id']:<5} {market} {t['taker_side']:4} "
                        f"{t['qty']:>12} @ {t['price']}",
                        flush=True,
                    )

        printer = asyncio.create_task(show_trades())
        while not stop.is_set():
            top = (book.best_bid(), book.best_ask(), book.seq)
            if top[:2] != (last_top or (None, None, 0))[:2]:
                bid, ask, seq = top
                print(
                    f"book  seq {seq:<6} {market} bid {_level(bid)} | ask {_level(ask)}",
                    flush=True,
                )
                last_top = top
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.2)
        printer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await printer


def _level(level: tuple[Decimal, Decimal] | None) -> str:
    return "-" if level is None else f"{level[1]} @ {level[0]}"


async def demo(duration: float, market: str, port: int) -> int:
    started: asyncio.Future[tuple[str, int]] = asyncio.get_running_loop().create_future()
    http_started: asyncio.Future[tuple[str, int]] = asyncio.get_running_loop().create_future()
    server_stop = asyncio.Event()
    server = asyncio.create_task(
        serve(
            ServeOptions(port=port, quiet=True),
            started=started,
            stop=server_stop,
            http_started=http_started,
        )
    )
    host, bound_port = await started
    http_host, http_port = await http_started
    url = f"ws://{host}:{bound_port}"
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signum, stop.set)
    async with Client(url) as probe:
        info = next(m for m in await probe.markets() if m["symbol"] == market)
    tick = Decimal(info["tick"])
    print(f"demo: {market} on {url}; bots mm1 (maker), bob and alice (takers); Ctrl-C stops")
    print(f"demo: watch and trade in a browser: http://{http_host}:{http_port}/#{market}")
    print(
        f"demo: log in there with api key demo-broker1-key and Ed25519 private key "
        f"{DEMO_PRIVATE_KEYS['demo-broker1-key']} (BTC-KZT, ETH-KZT), or demo-bob-key and "
        f"{DEMO_PRIVATE_KEYS['demo-bob-key']} (every market; the bob bot uses it too)",
        flush=True,
    )
    bots = [
        asyncio.create_task(market_maker(url, market, tick, stop)),
        asyncio.create_task(taker("bob", url, market, tick, stop)),
        asyncio.create_task(taker("alice", url, market, tick, stop)),
        asyncio.create_task(watcher(url, market, stop)),
    ]
    if duration:
        loop.call_later(duration, stop.set)
    await stop.wait()
    await asyncio.gather(*bots, return_exceptions=True)
    server_stop.set()
    await server
    failures = [b.exception() for b in bots if b.done() and b.exception() is not None]
    for failure in failures:
        print(f"a bot failed: {failure!r}")
    return 1 if failures else 0


def run_demo(args: argparse.Namespace) -> int:
    import uvloop

    return uvloop.run(demo(args.duration, args.market, args.port))
