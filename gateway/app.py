"""Assemble a running exchange: configuration, the demo venue, the gateway and the server.

``alatau serve`` with no options runs the default KZT markets and a demo venue: the
shipped participants (``engine/licensing/venue.toml``) funded with demo balances, their API
keys printed, and a random admin key printed, so a newcomer can connect and trade at
once.  ``--production`` refuses to start without an admin key and funds nobody.

State is kept in the data directory (``./alatau-data`` by default): every command is
journaled before it is acknowledged, and a restart recovers exactly what was acknowledged
(``gateway.storage``).  Demo funds are deposited once, when the data directory is new,
through the journal like any other command.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import os
import secrets
import signal
import sys
from dataclasses import dataclass, field

from engine.commands import Deposit
from engine.exchange import Exchange
from engine.licensing import load_chain, load_registry
from engine.markets import load_markets

from .session import Gateway, Limits
from .venue import Venue

log = logging.getLogger("alatau")

ADMIN_KEY_ENV = "ALATAU_ADMIN_KEY"
ENGINE_PROCESS_ENV = "ALATAU_ENGINE_PROCESS"  # "1": as --engine-process

# Demo balances, in whole units of each asset (the venue file's participants get them all).
DEMO_FUNDS = {"KZT": 1_000_000_000, "BTC": 100, "ETH": 1_000, "USDT": 1_000_000, "USDC": 1_000_000}


@dataclass
class ServeOptions:
    host: str = "127.0.0.1"
    port: int = 8765
    venue_file: str | None = None
    markets_file: str | None = None
    data_dir: str | None = None  # None: in memory only (tests); the CLI defaults to a dir
    durability: str = "fsync"
    snapshot_every: int = 100_000
    admin_key: str | None = None
    production: bool = False
    quiet: bool = False
    transport: str | None = None  # None: gateway.server's default
    engine_process: bool = False  # the engine in a process of its own (gateway.engine_process)
    limits: Limits = field(default_factory=Limits)


def add_serve_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=8765, help="port (0: any free port)")
    parser.add_argument(
        "--config", dest="venue_file", help="venue file: licences, participants, checks"
    )
    parser.add_argument("--markets", dest="markets_file", help="markets file")
    parser.add_argument(
        "--data-dir",
        default="alatau-data",
        help="where the journal and snapshots live (default: ./alatau-data)",
    )
    parser.add_argument(
        "--ephemeral", action="store_true", help="keep nothing on disk (demos and tests only)"
    )
    parser.add_argument(
        "--durability",
        choices=("fsync", "buffered", "off"),
        default="fsync",
        help="fsync: each batch on disk before it is acknowledged (default); buffered: "
        "handed to the OS only; off: no journal (benchmarks only)",
    )
    parser.add_argument(
        "--snapshot-every", type=int, default=100_000, help="commands between snapshots"
    )
    parser.add_argument("--admin-key", help=f"operator key for auth.admin (or set {ADMIN_KEY_ENV})")
    parser.add_argument(
        "--production",
        action="store_true",
        help="no demo funds; refuse to start without an admin key",
    )
    parser.add_argument("--rate", type=float, default=2000.0, help="requests/s per connection")
    parser.add_argument(
        "--participant-rate", type=float, default=5000.0, help="requests/s per participant"
    )
    parser.add_argument(
        "--max-connections-per-address",
        type=int,
        default=256,
        help="connections open at once from one IP address (more are closed with 1008)",
    )
    parser.add_argument(
        "--max-sessions-per-participant",
        type=int,
        default=32,
        help="sessions one participant may have logged in at once (TOO_MANY_CONNECTIONS)",
    )
    parser.add_argument("--quiet", action="store_true", help="print only the listening line")
    parser.add_argument(
        "--transport",
        choices=("picows", "websockets"),
        default=None,
        help="websocket server implementation (default picows, the faster one measured)",
    )
    parser.add_argument(
        "--engine-process",
        action="store_true",
        help="run the engine (matching, journal, snapshots) in a process of its own, so the "
        "gateway and the engine each get a core",
    )


def options_from_args(args: argparse.Namespace) -> ServeOptions:
    return ServeOptions(
        host=args.host,
        port=args.port,
        venue_file=args.venue_file,
        markets_file=args.markets_file,
        data_dir=None if args.ephemeral else args.data_dir,
        durability=args.durability,
        snapshot_every=args.snapshot_every,
        admin_key=args.admin_key or os.environ.get(ADMIN_KEY_ENV),
        production=args.production,
        quiet=args.quiet,
        transport=args.transport,
        engine_process=args.engine_process or os.environ.get(ENGINE_PROCESS_ENV) == "1",
        limits=Limits(
            connection_rate=args.rate,
            connection_burst=args.rate * 2,
            participant_rate=args.participant_rate,
            participant_burst=args.participant_rate * 2,
            max_connections_per_address=args.max_connections_per_address,
            max_sessions_per_participant=args.max_sessions_per_participant,
        ),
    )


def build_exchange(options: ServeOptions) -> Exchange:
    return Exchange(
        load_markets(options.markets_file),
        load_registry(options.venue_file),
        load_chain(options.venue_file),
    )


def demo_deposits(exchange: Exchange | Venue) -> tuple[list[Deposit], list[str]]:
    """Deposits that give every registered participant the demo balances (ts filled in by
    the caller), and printable lines with the participants' demo keys.  ``exchange``: what
    has ``markets`` and ``registry`` (an exchange, or a venue whose engine is elsewhere)."""
    scales = {}
    for market in exchange.markets.values():
        scales[market.base] = market.base_scale
        scales[market.quote] = market.quote_scale
    deposits = []
    lines = []
    for participant_id, participant in sorted(exchange.registry.participants.items()):
        for asset, units in DEMO_FUNDS.items():
            if asset in scales:
                deposits.append(
                    Deposit(
                        ts=0,
                        participant_id=participant_id,
                        asset=asset,
                        amount=units * 10 ** scales[asset],
                    )
                )
        if participant.api_key:
            lines.append(
                f"  {participant_id:10} {participant.category:13} api_key={participant.api_key}"
                f"  api_secret={participant.api_secret}"
            )
    return deposits, lines


def fund_demo_participants(exchange: Exchange, ts: int) -> list[str]:
    """Fund the demo participants directly (an exchange without a journal, e.g. tests)."""
    import msgspec

    deposits, lines = demo_deposits(exchange)
    for deposit in deposits:
        exchange.execute(msgspec.structs.replace(deposit, ts=ts))
    return lines


async def serve(
    options: ServeOptions,
    *,
    started: asyncio.Future | None = None,
    stop: asyncio.Event | None = None,
) -> int:
    from .server import run_server

    if options.production and not options.admin_key:
        print(
            f"alatau serve --production needs an admin key (--admin-key or {ADMIN_KEY_ENV})",
            file=sys.stderr,
        )
        return 2
    storage = None
    venue: Venue
    if options.engine_process:
        from .engine_process import start_engine_process

        remote = await start_engine_process(options)
        venue, last_seq, recovered = remote, remote.last_seq, remote.recovered
    elif options.data_dir is None:
        venue = Venue(build_exchange(options))
        last_seq = 0
        recovered = "in memory only: nothing is kept (--ephemeral)"
    else:
        from .storage import Storage

        storage = Storage(
            options.data_dir, mode=options.durability, snapshot_every=options.snapshot_every
        )
        exchange, last_seq, recovered = storage.recover(
            load_chain(options.venue_file), lambda: build_exchange(options)
        )
        venue = Venue(exchange, journal=storage)
    admin_key = options.admin_key
    banner = [
        recovered if options.data_dir is None else f"data dir {options.data_dir}: {recovered}"
    ]
    if not options.production:
        import msgspec

        deposits, lines = demo_deposits(venue)
        if last_seq == 0:
            for deposit in deposits:
                venue.submit(lambda ts, d=deposit: msgspec.structs.replace(d, ts=ts))
            banner.append("demo venue: participants funded with demo balances (not for production)")
        banner.extend(lines)
        if admin_key is None:
            admin_key = secrets.token_urlsafe(18)
            banner.append(f"  admin key (auth.admin): {admin_key}")
    gateway = Gateway(venue, admin_key=admin_key, limits=options.limits)
    venue.start()
    # What startup built (the recovered state, modules, tables) lives as long as the
    # process: moved out of the collector's generations, a full collection no longer walks
    # it, which halved the longest collection pause under load (26 -> 13 ms).
    gc.freeze()
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(signum, stop.set)
        except (NotImplementedError, RuntimeError):  # not the main thread
            break
    bound: asyncio.Future = loop.create_future()
    server = asyncio.create_task(
        run_server(
            gateway,
            options.host,
            options.port,
            transport=options.transport,
            started=bound,
            stop=stop,
        )
    )
    host, port = await asyncio.wait_for(asyncio.shield(bound), timeout=30)
    if not options.quiet:
        print(f"markets: {', '.join(venue.markets)}")
        for line in banner:
            print(line)
    print(f"alatau: listening on ws://{host}:{port}", flush=True)
    if started is not None and not started.done():
        started.set_result((host, port))
    await server
    await venue.stop()
    if storage is not None:
        storage.close()
    return 0


def run_serve(args: argparse.Namespace) -> int:
    import uvloop

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("picows").setLevel(logging.WARNING)  # it logs every connection at INFO
    return uvloop.run(serve(options_from_args(args)))
