"""The engine in a process of its own: the gateway on one core, matching and journaling on
the other (``alatau serve --engine-process``).

Why: in one process, the exchange and its journal take about half of the server's time per
order and the gateway's work (websocket frames, decoding, answers, fan-out) the other half,
all on one core, while the machine's second core idles.  Split along that line, the two
halves run in parallel, each batch of the gateway's being matched while the next one is
being decoded.

How the two talk, over a Unix socket pair, each message a ``u32`` length (little-endian)
and msgpack:

* engine -> gateway, first: ``Hello``, what the gateway needs to serve (markets, the
  registry, each book's depth and ``seq``, the last trade prices, the last journal seq);
* gateway -> engine: a batch, the list of one loop turn's commands (stamped with their time
  by the gateway, which owns the clock) and queries (``gateway.sequencer.queries``), in
  order; a turn that has queued ``SEND_EARLY`` commands sends them at once, before the turn ends;
* engine -> gateway: for each batch, in order, ``BatchDone``: per item its reports or its
  query's answer, once the batch is durable (one fsync covers the batches read at once, in
  groups of up to ``GROUP_COMMANDS`` commands), and, after an admin command, the new
  markets and registry.

The gateway side is ``RemoteVenue``: the same ``Venue`` to the sessions (``submit``,
``query``, the streams' fan-out), with ``_execute_batch`` sending the batch instead of
executing it.  Many batches may be in flight; they are published in order.

Shutdown: the gateway closes its end; the engine answers what it has read, writes its final
snapshot and exits.  The engine ignores SIGINT and SIGTERM, which reach it too when they are
sent to the process group: it stops when the gateway does (SIGKILL stops it at once).  If
the engine process dies, the link breaks, nothing more is acknowledged and the venue stops
(``JournalFailed``), as when a journal write fails.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import logging
import os
import signal
import socket
import struct
import sys
from collections import deque
from collections.abc import Callable
from typing import Any

import msgspec

from engine.commands import Command, SetLicense, SetMarket, SetParticipant
from engine.exchange import Exchange
from engine.licensing import License, Participant, Registry
from engine.markets import Market
from engine.reports import OrderReport, Report, TradePrinted
from engine.types import Side
from gateway.sequencer.queries import QUERY_TYPES, BalancesQuery, Query, answer
from gateway.sequencer.venue import MAX_UNPUBLISHED_BATCHES, Done, Venue, _answering, wall_clock_ms

log = logging.getLogger("alatau.engine")

_LENGTH = struct.Struct("<I")
_ADMIN_COMMANDS = (SetMarket, SetLicense, SetParticipant)
_READ_SIZE = 1 << 20
GROUP_COMMANDS = 256  # commands per fsync and reply, at most, when a backlog is waiting
SEND_EARLY = 64  # commands: the gateway sends this many at once without waiting for its turn


# -- the messages -----------------------------------------------------------------------------


class BookDepth(msgspec.Struct, array_like=True):
    market: str
    seq: int
    bids: list[tuple[int, int]]
    asks: list[tuple[int, int]]


class VenueConfig(msgspec.Struct):
    """The state the gateway reads to serve: changed only by admin commands."""

    markets: list[Market]
    venue_license_id: str
    licenses: list[License]
    participants: list[Participant]


class Hello(msgspec.Struct):
    last_seq: int
    recovered: str
    config: VenueConfig
    books: list[BookDepth]
    last_price: list[tuple[str, int]]


class Reports(msgspec.Struct, tag="reports", array_like=True):
    reports: list[Report]


class BalancesAnswer(msgspec.Struct, tag="balances", array_like=True):
    rows: list[tuple[str, int, int, int]]


class OpenOrdersAnswer(msgspec.Struct, tag="open_orders", array_like=True):
    orders: list[OrderReport]
    next: int | None = None  # the cursor of the next page (see ``OpenOrdersQuery``)


class BatchDone(msgspec.Struct):
    results: list[Reports | BalancesAnswer | OpenOrdersAnswer]
    config: VenueConfig | None = None


Item = Command | Query

_encoder = msgspec.msgpack.Encoder()


def _frame(payload: bytes) -> bytes:
    return _LENGTH.pack(len(payload)) + payload


def _split_frames(buffer: bytearray) -> list[bytes]:
    """Take every complete frame off the front of ``buffer``."""
    frames = []
    offset = 0
    end = len(buffer)
    while end - offset >= _LENGTH.size:
        (length,) = _LENGTH.unpack_from(buffer, offset)
        start = offset + _LENGTH.size
        if end - start < length:
            break
        frames.append(bytes(buffer[start : start + length]))
        offset = start + length
    del buffer[:offset]
    return frames


def venue_config(exchange: Exchange) -> VenueConfig:
    registry = exchange.registry
    return VenueConfig(
        markets=list(exchange.markets.values()),
        venue_license_id=registry.venue_license_id,
        licenses=list(registry.licenses.values()),
        participants=list(registry.participants.values()),
    )


# -- the engine process -----------------------------------------------------------------------


def run_engine(sock: socket.socket, options: dict[str, Any]) -> int:
    """The engine's loop: recover, say hello, then answer batches until the gateway closes."""
    from gateway.hosts.build import VenueFiles, build_exchange
    from gateway.storage.datadir import Storage
    from gateway.storage.sealing import SECRETS_KEY_ENV, SecretBox

    # The gateway hands over its secrets key in the environment (not the command line,
    # which others can read); the venue file's HMAC secrets are sealed with it.
    key_hex = os.environ.pop(SECRETS_KEY_ENV, None)
    serve_options = VenueFiles(
        venue_file=options.get("venue_file"),
        markets_file=options.get("markets_file"),
        production=options.get("production", False),
        secret_box=SecretBox(bytes.fromhex(key_hex)) if key_hex else None,
    )
    storage = None
    if options.get("data_dir") is None:
        exchange = build_exchange(serve_options)
        last_seq = 0
        recovered = "in memory only: nothing is kept (--ephemeral)"
    else:
        from engine.licensing import load_chain

        storage = Storage(
            options["data_dir"],
            mode=options.get("durability", "fsync"),
            snapshot_every=options.get("snapshot_every", 100_000),
        )
        exchange, last_seq, recovered = storage.recover(
            load_chain(serve_options.venue_file), lambda: build_exchange(serve_options)
        )
    hello = Hello(
        last_seq=last_seq,
        recovered=recovered,
        config=venue_config(exchange),
        books=[
            BookDepth(symbol, book.seq, book.depth(Side.BUY), book.depth(Side.SELL))
            for symbol, book in exchange.books.items()
        ],
        last_price=sorted(exchange.last_price.items()),
    )
    sock.sendall(_frame(_encoder.encode(hello)))
    gc.freeze()  # the recovered state stays for good: see gateway.app.serve
    decoder = msgspec.msgpack.Decoder(list[Item])
    buffer = bytearray()
    try:
        while True:
            data = sock.recv(_READ_SIZE)
            if not data:
                break
            buffer += data
            frames = deque(_split_frames(buffer))
            # The batches read at once are executed and made durable together (one fsync),
            # in groups of about GROUP_COMMANDS commands, so that the first answers go back
            # while the gateway still has a backlog to send: the two processes overlap
            # instead of taking turns.
            while frames:
                group: list[BatchDone] = []
                commands = 0
                while frames and commands < GROUP_COMMANDS:
                    items = decoder.decode(frames.popleft())
                    commands += len(items)
                    group.append(_execute(exchange, storage, items))
                if storage is not None:
                    storage.sync()
                    storage.checkpoint()
                sock.sendall(b"".join(_frame(_encoder.encode(batch)) for batch in group))
                if storage is not None:
                    storage.write_trail()  # the audit lines, once the answers are out
    finally:
        if storage is not None:
            storage.close()
    return 0


def _execute(exchange: Exchange, storage: Any, items: list[Item]) -> BatchDone:
    results: list[Reports | BalancesAnswer | OpenOrdersAnswer] = []
    config_changed = False
    for item in items:
        if isinstance(item, QUERY_TYPES):
            value = answer(exchange, item)
            if type(item) is BalancesQuery:
                results.append(BalancesAnswer(value))
            else:
                results.append(OpenOrdersAnswer(*value))
            continue
        reports = exchange.execute(item)
        results.append(Reports(reports))
        if storage is not None:
            storage.append(item, reports)
        if isinstance(item, _ADMIN_COMMANDS):
            config_changed = True
    return BatchDone(results, venue_config(exchange) if config_changed else None)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="the engine process of `alatau serve`")
    parser.add_argument("--fd", type=int, required=True, help="the socket to the gateway")
    parser.add_argument("--options", required=True, help="JSON: data_dir, durability, ...")
    args = parser.parse_args(argv)
    # Ctrl-C reaches the whole process group, and a service manager's stop signal often the
    # whole service (systemd's default): the gateway decides when the engine stops (it
    # closes the socket, or dies and the socket closes), so the engine answers what it has
    # read and writes its final snapshot after the last batch.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    sock = socket.socket(fileno=args.fd)
    from gateway.storage.datadir import SALVAGE_HINT
    from gateway.storage.journal import JournalCorrupt

    try:
        return run_engine(sock, json.loads(args.options))
    except JournalCorrupt as exc:  # one line, as the one-process server says it
        hint = "" if exc.kind == "old format" else f"; {SALVAGE_HINT}"
        print(f"alatau: cannot start: {exc}{hint}", file=sys.stderr, flush=True)
        return 3


# -- the gateway's side -----------------------------------------------------------------------


class EngineGone(ConnectionError):
    """The engine process closed the link or died: nothing more can be acknowledged."""


class _EngineLink(asyncio.Protocol):
    """The gateway's end of the socket: frames out, ``BatchDone``s back, in order."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.hello: asyncio.Future[Hello] = asyncio.get_running_loop().create_future()
        self._waiting: deque[asyncio.Future[BatchDone]] = deque()
        self._buffer = bytearray()
        self._hello_decoder = msgspec.msgpack.Decoder(Hello)
        self._done_decoder = msgspec.msgpack.Decoder(BatchDone)
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        for frame in _split_frames(self._buffer):
            if not self.hello.done():
                self.hello.set_result(self._hello_decoder.decode(frame))
                continue
            done = self._done_decoder.decode(frame)
            if self._waiting:
                self._waiting.popleft().set_result(done)

    def connection_lost(self, exc: Exception | None) -> None:
        error = EngineGone(f"the engine process closed the link ({exc or 'end of file'})")
        if not self.hello.done():
            self.hello.set_exception(error)
        while self._waiting:
            self._waiting.popleft().set_exception(error)
        if not self.closed.done():
            self.closed.set_result(None)

    def send_batch(self, items: list[Item]) -> asyncio.Future[BatchDone]:
        future: asyncio.Future[BatchDone] = asyncio.get_running_loop().create_future()
        if self.transport is None or self.transport.is_closing():
            future.set_exception(EngineGone("the engine process is gone"))
            return future
        self._waiting.append(future)
        self.transport.write(_frame(_encoder.encode(items)))
        return future


class RemoteVenue(Venue):
    """A ``Venue`` whose engine runs in another process (see the module docstring)."""

    def __init__(
        self,
        link: _EngineLink,
        hello: Hello,
        process: asyncio.subprocess.Process,
        *,
        clock_ms: Callable[[], int] | None = None,
    ) -> None:
        self.exchange = None  # type: ignore[assignment]
        self.journal = None
        self._link = link
        self._process = process
        self.last_seq = hello.last_seq
        self.recovered = hello.recovered
        self._apply_config(hello.config)
        self._last_price = dict(hello.last_price)
        self._setup(
            self._markets,
            [(b.market, b.seq, b.bids, b.asks) for b in hello.books],
            clock_ms or wall_clock_ms,
        )
        self._stopping = False
        link.closed.add_done_callback(self._link_closed)

    def _link_closed(self, _closed: asyncio.Future[None]) -> None:
        """The engine went away: unless we asked it to, stop taking requests at once (what
        was in flight fails with the link and is not acknowledged)."""
        if not self._stopping and not self._failed:
            self._fail(EngineGone("the engine process closed the link"))

    # -- what the sessions read

    @property
    def markets(self) -> dict[str, Market]:
        return self._markets

    @property
    def registry(self) -> Registry:
        return self._registry

    def reference_price(self, symbol: str) -> int | None:
        return self._last_price.get(symbol) or self._markets[symbol].reference_price

    def _apply_config(self, config: VenueConfig) -> None:
        self._markets = {market.symbol: market for market in config.markets}
        self._registry = Registry(config.venue_license_id, config.licenses, config.participants)

    # -- the command stream

    def submit(self, build: Any, done: Done | None = None) -> None:
        """As ``Venue.submit``; and a backlog of ``SEND_EARLY`` commands goes to the engine
        at once, without waiting for the sequencer's turn, so the engine starts on it while
        the gateway is still reading the rest of its sockets.  Not past
        ``MAX_UNPUBLISHED_BATCHES`` in flight: then the commands wait for the sequencer,
        which waits for the engine, so a stalled engine holds new commands back instead of
        filling memory."""
        super().submit(build, done)
        if len(self._pending) >= SEND_EARLY and len(self._unpublished) < MAX_UNPUBLISHED_BATCHES:
            batch = list(self._pending)
            self._pending.clear()
            self._execute_batch(batch)

    def _execute_batch(self, batch: list[tuple[Any, Done | None]]) -> None:
        items: list[Item] = []
        dones: list[Done | None] = []
        stamp = self._stamp
        for build, done in batch:
            items.append(build(stamp()))
            dones.append(done)
        self.commands_executed += len(batch)
        sent = self._link.send_batch(items)
        ready: asyncio.Future[list[tuple[list[Report], Done | None]]]
        ready = asyncio.get_running_loop().create_future()

        def arrived(future: asyncio.Future[BatchDone]) -> None:
            if future.exception() is not None:
                ready.set_exception(future.exception())  # type: ignore[arg-type]
                return
            batch_done = future.result()
            if batch_done.config is not None:
                self._apply_config(batch_done.config)
            results: list[tuple[list[Report], Done | None]] = []
            for result, done in zip(batch_done.results, dones, strict=True):
                if type(result) is Reports:
                    results.append((result.reports, done))
                elif type(result) is BalancesAnswer:
                    results.append(([], _answering(done, result.rows)))
                else:
                    answer = (result.orders, result.next)
                    results.append(([], _answering(done, answer)))
            ready.set_result(results)

        sent.add_done_callback(arrived)
        self._unpublished.append((ready, None, dones))
        ready.add_done_callback(self._on_durable)

    def _publish_public(self, book_changes: Any, trades: dict[str, list[TradePrinted]]) -> None:
        for symbol, printed in trades.items():
            self._last_price[symbol] = printed[-1].price
        super()._publish_public(book_changes, trades)

    # -- lifecycle

    async def stop(self) -> None:
        """Finish what was submitted, then let the engine write its final snapshot and exit."""
        try:
            await super().stop()
            self._stopping = True
        finally:
            if self._link.transport is not None:
                self._link.transport.close()
            await self._process.wait()


async def start_engine_process(options: Any) -> RemoteVenue:
    """Start the engine process for ``options`` (a ``ServeOptions``), wait until it has
    recovered its state and said hello, and return the venue that talks to it."""
    gateway_end, engine_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    settings = {
        "data_dir": options.data_dir,
        "durability": options.durability,
        "snapshot_every": options.snapshot_every,
        "venue_file": options.venue_file,
        "markets_file": options.markets_file,
        "production": options.production,
    }
    env = dict(os.environ)
    if options.secret_box is not None:
        from gateway.storage.sealing import SECRETS_KEY_ENV

        env[SECRETS_KEY_ENV] = options.secret_box.key_hex()
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "gateway.hosts.process",
        "--fd",
        str(engine_end.fileno()),
        "--options",
        json.dumps(settings),
        pass_fds=(engine_end.fileno(),),
        env=env,
    )
    engine_end.close()
    loop = asyncio.get_running_loop()
    _, link = await loop.create_unix_connection(_EngineLink, sock=gateway_end)
    try:
        hello = await link.hello
    except EngineGone:
        code = await process.wait()
        raise EngineGone(f"the engine process exited with {code} before it was ready") from None
    return RemoteVenue(link, hello, process)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
