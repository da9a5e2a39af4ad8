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

The gateway side is ``ProcessHost``, the venue's engine host (``gateway.sequencer.host``):
``execute`` sends the batch and hands back a future of its outcomes; the venue (the same
``Venue`` as with the engine in this process) publishes them when it is done.  Many
batches may be in flight; they are published in order.  The engine is started from an
``EngineSettings`` (``gateway.hosts.start``), msgspec-encoded on its command line; it
starts the way the one-process server does (``start_engine``).

Shutdown: the gateway closes its end; the engine answers what it has read, writes its final
snapshot and exits.  The engine ignores SIGINT and SIGTERM, which reach it too when they are
sent to the process group: it stops when the gateway does (SIGKILL stops it at once).  If
the engine process dies, the link breaks, nothing more is acknowledged and the venue stops
(``JournalFailed``), as when a journal write fails.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import socket
import struct
import sys
from collections import deque
from collections.abc import Callable
from typing import Any, cast

import msgspec

from engine.commands import Command, SetLicense, SetMarket, SetParticipant
from engine.exchange import Exchange
from engine.licensing import License, Participant, Registry
from engine.markets import Market
from engine.reports import OrderReport, Report, TradePrinted
from engine.types import Side
from gateway.hosts.start import EngineSettings, settle_collector, start_engine
from gateway.sequencer.host import BookState, Item, Outcomes
from gateway.sequencer.queries import QUERY_KINDS, BalancesQuery, OpenOrdersQuery, Query, answer
from gateway.storage.datadir import Storage
from gateway.storage.sealing import SECRETS_KEY_ENV, SecretBox

log = logging.getLogger("alatau.engine")

_LENGTH = struct.Struct("<I")
_ADMIN_COMMANDS = frozenset((SetMarket, SetLicense, SetParticipant))  # exact types, as QUERY_KINDS
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


class OrderStatusAnswer(msgspec.Struct, tag="order_status", array_like=True):
    order: OrderReport | None = None  # None: no open order by that id


Answer = BalancesAnswer | OpenOrdersAnswer | OrderStatusAnswer


def answer_struct(query: Query, value: Any) -> Answer:
    """A query's answer (``gateway.sequencer.queries.answer``) as the Struct that carries it."""
    if type(query) is BalancesQuery:
        return BalancesAnswer(value)
    if type(query) is OpenOrdersQuery:
        return OpenOrdersAnswer(*value)
    return OrderStatusAnswer(value)


def answer_value(result: Reports | Answer) -> Any:
    """The answer an ``answer_struct`` carries, as ``EngineHost.execute`` gives it (never
    called with ``Reports``: the union is what a ``type() is Reports`` test leaves)."""
    if type(result) is BalancesAnswer:
        return result.rows
    if type(result) is OpenOrdersAnswer:
        return (result.orders, result.next)
    assert type(result) is OrderStatusAnswer
    return result.order


class BatchDone(msgspec.Struct):
    results: list[Reports | Answer]
    config: VenueConfig | None = None


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


def run_engine(sock: socket.socket, settings: EngineSettings) -> int:
    """The engine's loop: recover, say hello, then answer batches until the gateway closes."""
    # The gateway hands over its secrets key in the environment (not the command line,
    # which others can read); the venue file's HMAC secrets are sealed with it.
    key_hex = os.environ.pop(SECRETS_KEY_ENV, None)
    engine = start_engine(settings, SecretBox(bytes.fromhex(key_hex)) if key_hex else None)
    exchange, storage = engine.exchange, engine.storage
    hello = Hello(
        last_seq=engine.last_seq,
        recovered=engine.recovered,
        config=venue_config(exchange),
        books=[
            BookDepth(symbol, book.seq, book.depth(Side.BUY), book.depth(Side.SELL))
            for symbol, book in exchange.books.items()
        ],
        last_price=sorted(exchange.last_price.items()),
    )
    sock.sendall(_frame(_encoder.encode(hello)))
    settle_collector()  # the recovered state stays for good (gateway.hosts.start)
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


def _execute(exchange: Exchange, storage: Storage | None, items: list[Item]) -> BatchDone:
    results: list[Reports | Answer] = []
    commands: list[Command] = []
    executed: list[list[Report]] = []
    config_changed = False
    for item in items:
        if type(item) in QUERY_KINDS:  # not isinstance: see QUERY_KINDS
            query = cast(Query, item)
            results.append(answer_struct(query, answer(exchange, query)))
            continue
        # A command here (no typing.cast: a Python call per command on the order path).
        command: Command = item  # type: ignore[assignment]
        reports = exchange.execute(command)
        results.append(Reports(reports))
        commands.append(command)
        executed.append(reports)
        if type(command) in _ADMIN_COMMANDS:
            config_changed = True
    if storage is not None and commands:
        storage.append_batch(commands, executed)
    return BatchDone(results, venue_config(exchange) if config_changed else None)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="the engine process of `alatau serve`")
    parser.add_argument("--fd", type=int, required=True, help="the socket to the gateway")
    parser.add_argument("--settings", required=True, help="EngineSettings, as JSON")
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
        return run_engine(sock, msgspec.json.decode(args.settings, type=EngineSettings))
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


class ProcessHost:
    """The venue's engine host for an engine in another process (see the module docstring)."""

    send_early = SEND_EARLY
    snapshot_due = False  # the engine process writes its snapshots itself

    def __init__(
        self, link: _EngineLink, hello: Hello, process: asyncio.subprocess.Process
    ) -> None:
        self._link = link
        self._process = process
        self.last_seq = hello.last_seq
        self.recovered = hello.recovered
        self._apply_config(hello.config)
        self._last_price = dict(hello.last_price)
        self._books: list[BookState] = [(b.market, b.seq, b.bids, b.asks) for b in hello.books]
        self._stopping = False
        self._failed: Callable[[BaseException], None] | None = None
        link.closed.add_done_callback(self._link_closed)

    @classmethod
    async def start(cls, settings: EngineSettings, secret_box: SecretBox | None) -> ProcessHost:
        """Start the engine process with ``settings``, wait until it has recovered its state
        and said hello, and return the host that talks to it."""
        gateway_end, engine_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        env = dict(os.environ)
        if secret_box is not None:
            env[SECRETS_KEY_ENV] = secret_box.key_hex()
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "gateway.hosts.process",
            "--fd",
            str(engine_end.fileno()),
            "--settings",
            msgspec.json.encode(settings).decode(),
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
        return cls(link, hello, process)

    def _link_closed(self, _closed: asyncio.Future[None]) -> None:
        """The engine went away: unless we asked it to, the venue stops taking requests."""
        if not self._stopping and self._failed is not None:
            self._failed(EngineGone("the engine process closed the link"))

    def watch(self, failed: Callable[[BaseException], None]) -> None:
        self._failed = failed

    # -- what the sessions read

    @property
    def markets(self) -> dict[str, Market]:
        return self._markets

    @property
    def registry(self) -> Registry:
        return self._registry

    def reference_price(self, symbol: str) -> int | None:
        return self._last_price.get(symbol) or self._markets[symbol].reference_price

    def books(self) -> list[BookState]:
        return self._books

    def _apply_config(self, config: VenueConfig) -> None:
        self._markets = {market.symbol: market for market in config.markets}
        self._registry = Registry(config.venue_license_id, config.licenses, config.participants)

    # -- the batches

    def execute(self, items: list[Item]) -> asyncio.Future[Outcomes]:
        """Send the batch; the future is done when the engine's answer, durable, is back."""
        sent = self._link.send_batch(items)
        ready: asyncio.Future[Outcomes] = asyncio.get_running_loop().create_future()

        def arrived(future: asyncio.Future[BatchDone]) -> None:
            error = future.exception()
            if error is not None:
                ready.set_exception(error)
                return
            batch_done = future.result()
            if batch_done.config is not None:
                self._apply_config(batch_done.config)
            outcomes: Outcomes = []
            last_price = self._last_price
            for result in batch_done.results:
                if type(result) is Reports:
                    reports = result.reports
                    for report in reports:
                        if type(report) is TradePrinted:
                            last_price[report.market] = report.price
                    outcomes.append(reports)
                else:
                    outcomes.append(answer_value(result))
            ready.set_result(outcomes)

        sent.add_done_callback(arrived)
        return ready

    async def commit(self) -> None:
        """Nothing to do: the engine process commits and snapshots on its own."""

    # -- lifecycle

    async def close(self, *, clean: bool) -> None:
        """Let the engine write its final snapshot and exit (it stops when its end of the
        link closes), and wait for it."""
        if clean:
            self._stopping = True
        if self._link.transport is not None:
            self._link.transport.close()
        await self._process.wait()


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
