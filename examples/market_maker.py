"""An example market maker on the Alatau client SDK (``gateway.sdk.client``), and nothing else.

It logs in, turns on cancel-on-disconnect (and a dead-man switch), and quotes both sides
of one KZT market around a reference price: ``--levels`` post-only limit orders a side,
the first ``--spread-ticks`` ticks from the reference and each next one ``--step-ticks``
further out.  It quotes again whenever one of its orders fills (it follows its private
``orders`` stream) and every ``--requote-interval`` seconds.  It keeps its inventory
within ``--max-position`` (base units, bought minus sold since it started): the quotes
on a side never add up to more than the room left on that side, and a long position
shifts both sides down (``--skew-ticks`` at the limit), a short one up.  On exit
(Ctrl-C, SIGTERM or after ``--duration`` seconds) it cancels all its orders in the
market and prints what it did.

Start a demo venue (it prints the demo keys: mm1's Ed25519 private key), then the bot::

    alatau serve --ephemeral
    python examples/market_maker.py --url ws://127.0.0.1:8765 \\
        --api-key demo-mm1-key --private-key <mm1's private_key, as printed>

The key and credential may come from ``ALATAU_API_KEY`` and ``ALATAU_PRIVATE_KEY`` (Ed25519)
or ``ALATAU_API_SECRET`` (an HMAC key's secret, with ``--api-secret``) instead.  For a
``wss://`` URL with a self-signed certificate, ``--cafile cert.pem`` trusts it.
Under the default ALATAU profile a MARKET_MAKER participant may send limit orders only,
which is all this bot sends (GTC, post-only, so it never takes liquidity).

The reference is the market's ``reference_price`` from ``markets.list`` (the last trade,
or the operator's reference before the first trade); with ``--reference mid`` it is the
mid of the local order book, falling back to the market's reference when a side is empty.
Quotes outside the market's price band are left out.

This is an example, not a trading strategy: it has no fair-value model, no fee or
risk accounting beyond the position limit, and re-quotes by cancel-all then place.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import decimal
import logging
import os
import signal
import ssl
import sys
from decimal import Decimal
from typing import Any

from gateway.sdk.client import ApiError, Client, ConnectionLost, LocalBook, Stream

log = logging.getLogger("market_maker")

BPS = Decimal(10_000)
# Cancel reasons (the ``orders`` stream) other than our own cancel and cancel_all.
_CANCELED_BY_OTHERS = frozenset(("self_trade", "disconnect", "dead_man_switch", "license"))


class MarketMaker:
    """Quotes one market from one logged-in ``Client``; ``run(stop)`` until ``stop`` is set."""

    def __init__(self, client: Client, args: argparse.Namespace) -> None:
        self.client = client
        self.market: str = args.market
        self.levels: int = args.levels
        self.spread_ticks: int = args.spread_ticks
        self.step_ticks: int = args.step_ticks
        self.level_qty = Decimal(args.qty)
        self.max_position = Decimal(args.max_position)
        self.skew_ticks: int = args.skew_ticks
        self.reference_mode: str = args.reference
        self.requote_interval: float = args.requote_interval
        self.dead_man_ms: int = args.dead_man_ms
        self.position = Decimal(0)  # base units bought minus sold since the start
        self.fills = 0
        self.requotes = 0
        self.orders_placed = 0
        self.rejected: dict[str, int] = {}
        self.spec: dict[str, Any] = {}
        self.book: LocalBook | None = None
        self._wake = asyncio.Event()
        self._generation = 0

    # -- the loop

    async def run(self, stop: asyncio.Event) -> None:
        client = self.client
        self.spec = await self._market_spec()
        await client.cancel_on_disconnect(True)
        await client.cancel_all(self.market)  # start from no quotes of ours
        async with client.orders() as orders, client.local_book(self.market) as book:
            self.book = book
            follower = asyncio.create_task(self._follow(orders), name="follow-orders")
            heartbeat = None
            if self.dead_man_ms:
                heartbeat = asyncio.create_task(self._heartbeat(), name="dead-man-heartbeat")
            try:
                while not stop.is_set():
                    await self._requote_once()
                    await self._sleep(stop)
            finally:
                for task in (follower, heartbeat):
                    if task is not None:
                        task.cancel()
                        with contextlib.suppress(asyncio.CancelledError, ConnectionLost):
                            await task
                await self._cancel_everything()

    async def _sleep(self, stop: asyncio.Event) -> None:
        """Until a fill asks for new quotes, the re-quote interval passes, or ``stop``."""
        waits = [asyncio.create_task(self._wake.wait()), asyncio.create_task(stop.wait())]
        try:
            await asyncio.wait(
                waits, timeout=self.requote_interval, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            for task in waits:
                task.cancel()
        self._wake.clear()

    async def _requote_once(self) -> None:
        try:
            await self.requote()
        except ApiError as exc:  # e.g. RATE_LIMITED or MARKET_HALTED: try again later
            log.warning("re-quote refused: %s %s", exc.code, exc.message)
            if exc.retry_after_ms is not None:
                await asyncio.sleep(exc.retry_after_ms / 1000)

    async def _cancel_everything(self) -> None:
        try:
            result = await self.client.cancel_all(self.market)
        except ConnectionLost:
            log.warning("connection lost: the server's cancel-on-disconnect cancels our orders")
            return
        log.info(
            "exit: canceled %d orders in %s; %d re-quotes, %d orders placed, %d fills, "
            "position %s %s, rejects %s",
            result["count"],
            self.market,
            self.requotes,
            self.orders_placed,
            self.fills,
            _signed(self.position),
            self.spec["base"],
            self.rejected or "none",
        )

    async def _heartbeat(self) -> None:
        """Keep the dead-man switch from firing while we are alive."""
        while True:
            try:
                await self.client.cancel_all_after(self.dead_man_ms)
            except ApiError as exc:  # RATE_LIMITED: the next beat is soon enough
                log.warning("dead-man refresh refused: %s %s", exc.code, exc.message)
            await asyncio.sleep(self.dead_man_ms / 3000)

    async def _follow(self, orders: Stream) -> None:
        """Track fills (position) and wake the loop to quote again."""
        async for message in orders:
            data = message["data"]
            if data.get("market") != self.market:
                continue
            if data["type"] == "fill":
                qty = Decimal(data["fill_qty"])
                self.position += qty if data["side"] == "buy" else -qty
                self.fills += 1
                log.info(
                    "fill: %s %s at %s (%s), position %s",
                    data["side"],
                    data["fill_qty"],
                    data["fill_price"],
                    data["liquidity"],
                    _signed(self.position),
                )
                self._wake.set()
            elif data["type"] == "order" and data.get("reason") in _CANCELED_BY_OTHERS:
                self._wake.set()  # quotes canceled by someone else: quote again

    # -- quoting

    async def _market_spec(self) -> dict[str, Any]:
        for market in await self.client.markets():
            if market["symbol"] == self.market:
                return market
        raise SystemExit(f"no market {self.market!r} on this venue")

    async def reference(self) -> Decimal | None:
        """The price to quote around (see the module docstring)."""
        if self.reference_mode == "mid" and self.book is not None:
            mid = self.book.mid()
            if mid is not None:
                return mid
        self.spec = await self._market_spec()  # its reference moves with the last trade
        price = self.spec["reference_price"]
        return None if price is None else Decimal(price)

    def quotes(self, reference: Decimal) -> list[dict[str, Any]]:
        """The orders to rest: ``levels`` a side, within the position limit and the band."""
        spec = self.spec
        tick, lot = Decimal(spec["tick"]), Decimal(spec["lot"])
        min_qty, min_notional = Decimal(spec["min_qty"]), Decimal(spec["min_notional"])
        band = Decimal(spec["band_bps"]) / BPS
        band_ref = Decimal(spec["reference_price"] or reference)
        low, high = band_ref * (1 - band), band_ref * (1 + band)
        ref_ticks = int((reference / tick).to_integral_value(decimal.ROUND_HALF_EVEN))
        # Long: both sides move down (sell sooner, buy later); short: up.
        skew = 0
        if self.max_position:
            skew = int(
                (-self.position / self.max_position * self.skew_ticks).to_integral_value(
                    decimal.ROUND_HALF_EVEN
                )
            )
        self._generation += 1
        orders = []
        for side, sign, room in (
            ("buy", -1, self.max_position - self.position),
            ("sell", 1, self.max_position + self.position),
        ):
            for level in range(self.levels):
                price = (
                    ref_ticks + skew + sign * (self.spread_ticks + level * self.step_ticks)
                ) * tick
                qty = (min(self.level_qty, room) // lot) * lot
                if qty < min_qty or price * qty < min_notional or price <= 0:
                    break  # no room left on this side (the position limit)
                if not low <= price <= high:
                    continue
                room -= qty
                orders.append(
                    {
                        "market": self.market,
                        "side": side,
                        "qty": qty,
                        "price": price,
                        "post_only": True,
                        "client_order_id": f"mm{self._generation}-{side[0]}{level}",
                    }
                )
        return orders

    async def requote(self) -> None:
        """Cancel our quotes and place new ones: two pipelined requests, run in order."""
        reference = await self.reference()
        if reference is None:
            log.warning("%s has no reference price: not quoting", self.market)
            return
        orders = self.quotes(reference)
        self.requotes += 1
        if not orders:
            await self.client.cancel_all(self.market)
            log.info("no quotes: position %s is at the limit", _signed(self.position))
            return
        _, results = await asyncio.gather(
            self.client.cancel_all(self.market), self.client.batch(orders)
        )
        placed = []
        for order, result in zip(orders, results, strict=True):
            if isinstance(result, ApiError):
                self.rejected[result.code] = self.rejected.get(result.code, 0) + 1
            else:
                placed.append(f"{order['side']} {order['qty']}@{order['price']}")
        self.orders_placed += len(placed)
        log.info(
            "quotes around %s (position %s): %s",
            reference,
            _signed(self.position),
            ", ".join(placed) or "none accepted",
        )


def _signed(value: Decimal) -> str:
    return f"{value:+f}"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="An example market maker for the Alatau exchange (see the docstring)."
    )
    parser.add_argument("--url", default="ws://127.0.0.1:8765", help="gateway websocket URL")
    parser.add_argument("--api-key", default=os.environ.get("ALATAU_API_KEY"))
    parser.add_argument(
        "--private-key",
        default=os.environ.get("ALATAU_PRIVATE_KEY"),
        help="Ed25519 private key, 64 hex characters",
    )
    parser.add_argument(
        "--api-secret", default=os.environ.get("ALATAU_API_SECRET"), help="HMAC secret"
    )
    parser.add_argument("--cafile", help="CA or self-signed certificate to trust for wss://")
    parser.add_argument("--market", default="USDT-KZT")
    parser.add_argument("--levels", type=int, default=3, help="orders per side")
    parser.add_argument(
        "--spread-ticks", type=int, default=10, help="ticks from the reference to the 1st level"
    )
    parser.add_argument("--step-ticks", type=int, default=5, help="ticks between levels")
    parser.add_argument("--qty", default="10", help="base quantity per level (decimal)")
    parser.add_argument(
        "--max-position", default="100", help="inventory limit, base units either way"
    )
    parser.add_argument(
        "--skew-ticks", type=int, default=5, help="price shift at the position limit"
    )
    parser.add_argument("--reference", choices=("market", "mid"), default="market")
    parser.add_argument(
        "--requote-interval", type=float, default=5.0, help="seconds between re-quotes"
    )
    parser.add_argument(
        "--dead-man-ms",
        type=int,
        default=15_000,
        help="dead-man switch timeout, refreshed every third of it (0: off)",
    )
    parser.add_argument(
        "--duration", type=float, default=0.0, help="stop after this many seconds (0: never)"
    )
    args = parser.parse_args(argv)
    if not args.api_key or bool(args.private_key) == bool(args.api_secret):
        parser.error(
            "give --api-key and one of --private-key (Ed25519) or --api-secret (HMAC) "
            "(or ALATAU_API_KEY and ALATAU_PRIVATE_KEY / ALATAU_API_SECRET)"
        )
    for name in ("qty", "max_position"):
        try:
            if Decimal(getattr(args, name)) < 0:
                raise decimal.InvalidOperation
        except decimal.InvalidOperation:
            parser.error(f"--{name.replace('_', '-')} must be a non-negative decimal")
    return args


async def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):  # not the main thread
            loop.add_signal_handler(signum, stop.set)
    if args.duration > 0:
        loop.call_later(args.duration, stop.set)
    options: dict[str, Any] = {}  # the websockets.connect options Client passes on
    if args.cafile:
        options["ssl"] = ssl.create_default_context(cafile=args.cafile)
    async with Client(args.url, **options) as client:
        if args.private_key:
            who = await client.login(args.api_key, private_key=args.private_key)
        else:
            who = await client.login(args.api_key, args.api_secret)
        log.info("logged in as %s (%s) on %s", who["participant"], who["category"], args.url)
        bot = MarketMaker(client, args)
        try:
            await bot.run(stop)
        except ConnectionLost as exc:
            log.error("%s", exc)
            return 1
    return 0


if __name__ == "__main__":
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stdout
    )
    sys.exit(asyncio.run(main()))
