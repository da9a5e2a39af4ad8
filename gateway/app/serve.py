"""Assemble a running exchange: configuration, the demo venue, the gateway and the server.

``alatau serve`` with no options runs the default KZT markets and a demo venue: the
shipped participants (``engine/licensing/venue.toml``) funded with demo balances, their API
keys and Ed25519 private keys printed, and a random admin key printed, so a newcomer can
connect and trade at once.  ``--production`` refuses to start without an admin key, funds
nobody and never has the demo participants: it uses the venue file it is given, or starts
with no participants at all, and refuses a state that holds a published demo key.

HMAC secrets are sealed under the server's secrets key before anything is sequenced
(``gateway.storage.sealing``); ``--tls-cert``/``--tls-key`` serve ``wss://``.

State is kept in the data directory (``./alatau-data`` by default): every command is
journaled before it is acknowledged, and a restart recovers exactly what was acknowledged
(``gateway.storage.datadir``).  Demo funds are deposited once, when the data directory is new,
through the journal like any other command.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import functools
import logging
import os
import secrets
import signal
import sqlite3
import ssl
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import msgspec

from engine.commands import Command, Deposit, SetParticipant
from engine.errors import ConfigError, EngineError
from engine.exchange import Exchange
from engine.licensing import Registry
from gateway.app import compiled
from gateway.app.history import open_history
from gateway.hosts.build import VenueFiles, build_exchange
from gateway.hosts.local import LocalHost
from gateway.hosts.process import EngineGone, ProcessHost
from gateway.hosts.start import (
    DURABILITY_MODES,
    ENGINE_DEFAULTS,
    Durability,
    EngineSettings,
    settle_collector,
)
from gateway.sequencer.host import EngineHost
from gateway.sequencer.venue import JournalFailed, Venue
from gateway.sessions.session import Gateway, Limits
from gateway.storage.datadir import SALVAGE_HINT
from gateway.storage.history import HistoryWriter
from gateway.storage.journal import JournalCorrupt
from gateway.storage.sealing import (
    SECRETS_KEY_ENV,
    SECRETS_KEY_FILE_ENV,
    SecretBox,
    resolve_secret_box,
)
from gateway.wire.auth import public_key_hex

log = logging.getLogger("alatau")

__all__ = ["build_exchange"]  # the tests build the exchange the server starts from with it

ADMIN_KEY_ENV = "ALATAU_ADMIN_KEY"
ENGINE_PROCESS_ENV = "ALATAU_ENGINE_PROCESS"  # "1": as --engine-process

# Demo balances, in whole units of each asset (the venue file's participants get them all).
DEMO_FUNDS = {"KZT": 1_000_000_000, "BTC": 100, "ETH": 1_000, "USDT": 1_000_000, "USDC": 1_000_000}

# The demo participants' Ed25519 private keys (32 raw bytes, hex), by api_key.  PUBLIC: they
# are in the source tree and printed at start; their public keys are in
# engine/licensing/venue.toml.  Each is sha256("alatau demo key: " + participant id).
DEMO_PRIVATE_KEYS = {
    "demo-mm1-key": "c7650ab932afce8e5421f891306e8850b4ea0f2660a213a0503a30358bf17aa5",
    "demo-alice-key": "b831bdb5c926cf0066a069653cea09472ab33ff40a6e68a53ccd005560f2870a",
    "demo-bob-key": "f55796f2bba599cf880b8322587f2916b255d5406819167eb361bbb24412f863",
    "demo-broker1-key": "790337dbc6ddf12fe2b90185ab3672a0203cdab6f2c48c1f545edc46cbe9af1d",
}
DEMO_PUBLIC_KEYS = frozenset(public_key_hex(key) for key in DEMO_PRIVATE_KEYS.values())


class StartupError(Exception):
    """The server cannot start (a busy port, a data directory in use or damaged): said in
    one line, with a non-zero exit, never as a traceback."""


def _number(
    kind: type, minimum: float, maximum: float | None = None, *, above: bool = False
) -> Callable[[str], Any]:
    """An argparse ``type``: a number of ``kind`` from ``minimum`` (or above it) to
    ``maximum``, else a clear error naming the range."""

    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a {kind.__name__}") from None
        low_ok = value > minimum if above else value >= minimum
        if value != value or not low_ok or (maximum is not None and value > maximum):
            low = f"above {minimum}" if above else f"at least {minimum}"
            bound = low if maximum is None else f"{low} and at most {maximum:g}"
            raise argparse.ArgumentTypeError(f"{text} is out of range: use a value {bound}")
        return value

    return parse


DATA_DIR = "alatau-data"  # the command line's data directory (ServeOptions: None, in memory)


@dataclass
class ServeOptions:
    """The server's options and their defaults (the command line takes its defaults from
    here, and the engine's from ``EngineSettings``)."""

    host: str = "127.0.0.1"
    port: int = 8765
    # The HTTP API's port (gateway.transport.http_server); 0: any free port; None: the
    # websocket port + 1 (8766 by default), or any free port when that one is 0.
    http_port: int | None = None
    venue_file: str | None = ENGINE_DEFAULTS.venue_file
    markets_file: str | None = ENGINE_DEFAULTS.markets_file
    data_dir: str | None = ENGINE_DEFAULTS.data_dir  # None: in memory only (tests)
    durability: Durability = ENGINE_DEFAULTS.durability
    snapshot_every: int = ENGINE_DEFAULTS.snapshot_every
    admin_key: str | None = None
    production: bool = ENGINE_DEFAULTS.production
    quiet: bool = False
    transport: str | None = None  # None: gateway.transport.server's default
    engine_process: bool = False  # the engine in a process of its own (gateway.hosts.process)
    limits: Limits = field(default_factory=Limits)
    secrets_key_file: str | None = None  # None: $ALATAU_SECRETS_KEY(_FILE) or the data dir's
    secret_box: SecretBox | None = None  # resolved by serve(); seals the venue file's secrets
    tls_cert: str | None = None  # PEM certificate chain: serve wss://
    tls_key: str | None = None  # PEM private key of the certificate
    history_days: int = 365  # the history database's retention (0: keep all)
    # Cluster mode (docs/cluster.md): the NATS URLs of the command log; None: the engine
    # runs here (LocalHost/ProcessHost).  gateway_id: this gateway's id on the log.
    cluster: list[str] | None = None
    gateway_id: str = "g1"

    def validate(self) -> None:
        """``ConfigError`` for options that do not go together."""
        if self.cluster is None:
            return
        if not self.cluster or not all(
            url.startswith(("nats://", "tls://")) and len(url) > 7 for url in self.cluster
        ):
            raise ConfigError(
                f"--cluster takes NATS URLs, comma separated (nats://HOST:PORT,...), "
                f"not {','.join(self.cluster)!r}"
            )
        if self.engine_process:
            raise ConfigError(
                "--cluster and --engine-process do not go together: in cluster "
                "mode the engine runs in the replicas"
            )
        if not self.gateway_id or ":" in self.gateway_id or not self.gateway_id.isprintable():
            raise ConfigError(f"--gateway-id {self.gateway_id!r}: use a short name without ':'")

    def engine_settings(self) -> EngineSettings:
        """What the engine is started with."""
        return EngineSettings(
            data_dir=self.data_dir,
            durability=self.durability,
            snapshot_every=self.snapshot_every,
            venue_file=self.venue_file,
            markets_file=self.markets_file,
            production=self.production,
        )

    def http_listen_port(self) -> int:
        """The port the HTTP API listens on (see ``http_port``)."""
        if self.http_port is not None:
            return self.http_port
        return self.port + 1 if self.port else 0


_DEFAULTS = ServeOptions()


def add_serve_arguments(parser: argparse.ArgumentParser) -> None:
    """The command line of ``alatau serve``: every default is ``ServeOptions``'s."""
    defaults = _DEFAULTS
    limits = defaults.limits
    parser.add_argument("--host", default=defaults.host, help="address to listen on")
    parser.add_argument(
        "--port", type=_number(int, 0, 65535), default=defaults.port, help="port (0: any free port)"
    )
    parser.add_argument(
        "--http-port",
        type=_number(int, 0, 65535),
        default=defaults.http_port,
        help="port of the HTTP API, /api/v1 (0: any free port; default: --port + 1, or any "
        "free port when --port is 0)",
    )
    parser.add_argument(
        "--config", dest="venue_file", help="venue file: licences, participants, checks"
    )
    parser.add_argument("--markets", dest="markets_file", help="markets file")
    parser.add_argument(
        "--data-dir",
        default=DATA_DIR,
        help=f"where the journal and snapshots live (default: ./{DATA_DIR})",
    )
    parser.add_argument(
        "--ephemeral", action="store_true", help="keep nothing on disk (demos and tests only)"
    )
    parser.add_argument(
        "--durability",
        choices=DURABILITY_MODES,
        default=defaults.durability,
        help=f"fsync: each batch on disk before it is acknowledged; buffered: handed to the OS "
        f"only; off: no journal (benchmarks only); default {defaults.durability}",
    )
    parser.add_argument(
        "--snapshot-every",
        type=_number(int, 1),
        default=defaults.snapshot_every,
        help="commands between snapshots",
    )
    parser.add_argument("--admin-key", help=f"operator key for auth.admin (or set {ADMIN_KEY_ENV})")
    parser.add_argument(
        "--production",
        action="store_true",
        help="no demo participants and no demo funds (the --config venue file's participants, "
        "or none); refuse to start without an admin key",
    )
    parser.add_argument(
        "--secrets-key-file",
        help="the key that seals HMAC api secrets at rest (created 0600 if missing; default: "
        f"${SECRETS_KEY_FILE_ENV}, ${SECRETS_KEY_ENV}, or DATA_DIR/secrets.key)",
    )
    parser.add_argument("--tls-cert", help="PEM certificate (chain): serve wss:// (with --tls-key)")
    parser.add_argument("--tls-key", help="PEM private key of --tls-cert")
    parser.add_argument(
        "--rate",
        type=_number(float, 0, 1e9, above=True),
        default=limits.connection_rate,
        help="requests/s per connection (above 0)",
    )
    parser.add_argument(
        "--participant-rate",
        type=_number(float, 0, 1e9, above=True),
        default=limits.participant_rate,
        help="requests/s per participant (above 0)",
    )
    parser.add_argument(
        "--max-connections-per-address",
        type=int,
        default=limits.max_connections_per_address,
        help="connections open at once from one IP address (more are closed with 1008)",
    )
    parser.add_argument(
        "--max-sessions-per-participant",
        type=int,
        default=limits.max_sessions_per_participant,
        help="sessions one participant may have logged in at once (TOO_MANY_CONNECTIONS)",
    )
    parser.add_argument(
        "--history-days",
        type=_number(int, 0),
        default=defaults.history_days,
        help="days of trades, fills and closed orders the history database keeps (0: all)",
    )
    parser.add_argument("--quiet", action="store_true", help="print only the listening line")
    parser.add_argument(
        "--transport",
        choices=("picows", "websockets"),
        default=defaults.transport,
        help="websocket server implementation (default picows, the faster one measured)",
    )
    parser.add_argument(
        "--engine-process",
        action="store_true",
        help="run the engine (matching, journal, snapshots) in a process of its own, so the "
        "gateway and the engine each get a core",
    )
    parser.add_argument(
        "--cluster",
        metavar="NATS_URLS",
        help="cluster mode: a gateway on the replicated command log at these NATS URLs "
        "(nats://127.0.0.1:4222,...; docs/cluster.md); the engine runs in the replicas",
    )
    parser.add_argument(
        "--gateway-id",
        default=defaults.gateway_id,
        help=f"this gateway's id on the command log, unique per gateway (default "
        f"{defaults.gateway_id})",
    )


def options_from_args(args: argparse.Namespace) -> ServeOptions:
    return ServeOptions(
        host=args.host,
        port=args.port,
        http_port=args.http_port,
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
        secrets_key_file=args.secrets_key_file,
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
        history_days=args.history_days,
        cluster=args.cluster.split(",") if args.cluster is not None else None,
        gateway_id=args.gateway_id,
        limits=Limits(
            connection_rate=args.rate,
            connection_burst=args.rate * 2,
            participant_rate=args.participant_rate,
            participant_burst=args.participant_rate * 2,
            max_connections_per_address=args.max_connections_per_address,
            max_sessions_per_participant=args.max_sessions_per_participant,
        ),
    )


def demo_credentials(registry: Registry) -> list[str]:
    """Participants whose published demo credential would log in (api key or public key)."""
    return sorted(
        participant_id
        for participant_id, p in registry.participants.items()
        if p.api_key in DEMO_PRIVATE_KEYS or p.api_public_key in DEMO_PUBLIC_KEYS
    )


def reseal_commands(registry: Registry, box: SecretBox) -> list[SetParticipant]:
    """For a registry recovered from data written before secrets were sealed: commands (ts
    filled in by the caller) that register each plaintext secret again, sealed."""
    return [
        SetParticipant(ts=0, participant=box.seal_participant(p))
        for _, p in sorted(registry.participants.items())
        if p.api_secret is not None
    ]


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
            private = DEMO_PRIVATE_KEYS.get(participant.api_key)
            if private is not None and participant.api_public_key == public_key_hex(private):
                credential = f"private_key={private}"  # Ed25519
            elif participant.api_public_key is not None:
                credential = "Ed25519, private key not known here"
            else:
                credential = "HMAC, api_secret as in the venue file"
            lines.append(
                f"  {participant_id:10} {participant.category:13} api_key={participant.api_key}"
                f"  {credential}"
            )
    return deposits, lines


def fund_demo_participants(exchange: Exchange, ts: int) -> list[str]:
    """Fund the demo participants directly (an exchange without a journal, e.g. tests)."""
    deposits, lines = demo_deposits(exchange)
    for deposit in deposits:
        exchange.execute(msgspec.structs.replace(deposit, ts=ts))
    return lines


async def serve(
    options: ServeOptions,
    *,
    started: asyncio.Future[tuple[str, int]] | None = None,
    stop: asyncio.Event | None = None,
    http_started: asyncio.Future[tuple[str, int]] | None = None,
) -> int:
    """Run the server until ``stop`` is set (or SIGINT/SIGTERM): open the engine host, set
    the venue up (demo or production), listen (websockets on ``port``, the HTTP API on
    ``http_port``; ``started`` and ``http_started`` get their bound addresses).  Returns the
    exit code; raises ``StartupError`` when it cannot start and ``JournalFailed`` when it
    stopped on a failed write or a dead engine."""
    if options.production and not options.admin_key:
        print(
            f"alatau serve --production needs an admin key (--admin-key or {ADMIN_KEY_ENV})",
            file=sys.stderr,
        )
        return 2
    try:
        options.validate()
        tls = tls_context(options.tls_cert, options.tls_key)
        options = with_secret_box(options)
    except ConfigError as exc:
        print(f"alatau serve: {exc}", file=sys.stderr)
        return 2
    for why in compiled.stale():  # an edited module whose old build would run instead
        log.warning("%s: the server runs the old build; rebuild with %s", why, compiled.REBUILD)
    host = await open_engine_host(options)
    venue = Venue(host)
    history, history_line = _open_history(options, host)
    venue.on_published = history.offer
    setup = set_up_venue(venue, options, host)
    if setup is None:  # refused, and said why
        await venue.stop()
        history.close()
        return 2
    banner, admin_key = setup
    banner.append(history_line)
    gateway = Gateway(
        venue, admin_key=admin_key, limits=options.limits, secret_box=options.secret_box
    )
    gateway.history = history
    history.start()
    venue.start()
    settle_collector()  # what start-up built is frozen; young objects collected less often
    stop = stop or asyncio.Event()
    _stop_on_signals(stop)
    try:
        server, (bound_host, port) = await listen(gateway, options, tls, stop)
        http_server, (http_host, http_port) = await listen_http(
            gateway, options, tls, stop, server, websocket_port=port
        )
    except BaseException:
        history.close()  # its writer process ends with what it was given
        raise
    if not options.quiet:
        print(f"markets: {', '.join(venue.markets)}")
        for line in banner:
            print(line)
    scheme = "ws" if tls is None else "wss"
    print(f"alatau: listening on {scheme}://{bound_host}:{port}", flush=True)
    http_scheme = "http" if tls is None else "https"
    print(f"alatau: HTTP on {http_scheme}://{http_host}:{http_port}/api/v1", flush=True)
    print(f"alatau: web page on {http_scheme}://{http_host}:{http_port}/", flush=True)
    if started is not None and not started.done():
        started.set_result((bound_host, port))
    if http_started is not None and not http_started.done():
        http_started.set_result((http_host, http_port))
    try:
        await server
    finally:
        stop.set()
        await http_server
    try:
        await venue.stop()
    finally:
        history.close()
    return 0


def _open_history(options: ServeOptions, host: EngineHost) -> tuple[HistoryWriter, str]:
    """The history database (``gateway.app.history``), caught up with the journal."""
    files = VenueFiles(
        venue_file=options.venue_file,
        markets_file=options.markets_file,
        production=options.production,
        secret_box=options.secret_box,
    )
    if options.cluster is not None:
        # A cluster gateway has no journal of its own to catch a database up from, and it
        # does not yet feed other gateways' batches to it (docs/cluster.md): in memory.
        writer, _line = open_history(None, files, host.last_seq, options.history_days)
        return writer, "history: in memory (cluster mode: this gateway's orders only)"
    try:
        return open_history(options.data_dir, files, host.last_seq, options.history_days)
    except (EngineError, OSError, sqlite3.Error) as exc:
        raise StartupError(f"the history database: {exc}") from exc


def with_secret_box(options: ServeOptions) -> ServeOptions:
    """``options`` with the secrets key resolved (``gateway.storage.sealing``)."""
    if options.secret_box is not None:
        return options
    box = resolve_secret_box(key_file=options.secrets_key_file, data_dir=options.data_dir)
    return dataclasses.replace(options, secret_box=box)


async def open_engine_host(options: ServeOptions) -> EngineHost:
    """The engine, recovered from the data directory or built in memory, in this process
    or in a process of its own (``--engine-process``); ``StartupError`` if it cannot be."""
    settings = options.engine_settings()
    try:
        if options.cluster is not None:
            from gateway.cluster.host import ClusterHost
            from gateway.hosts.build import VenueFiles

            # The replicas build the exchange from the same files (docs/cluster.md).
            files = VenueFiles(options.venue_file, options.markets_file)
            try:
                return await ClusterHost.start(options.cluster, options.gateway_id, files)
            except (EngineError, OSError):
                raise
            except Exception as exc:  # NATS unreachable, no JetStream
                raise StartupError(f"cluster {','.join(options.cluster)}: {exc!r}") from exc
        if options.engine_process:
            return await ProcessHost.start(settings, options.secret_box)
        return LocalHost.start(settings, options.secret_box)
    except (EngineError, OSError) as exc:  # in use, damaged, unreadable, the engine gone
        raise StartupError(_why_not_started(exc, options.data_dir)) from exc


def set_up_venue(
    venue: Venue, options: ServeOptions, host: EngineHost
) -> tuple[list[str], str | None] | None:
    """Queue the start-up commands (secrets sealed again, demo funds on a new venue) and
    return the start-up lines to print and the admin key; None (said on stderr) if a
    production venue holds published demo keys."""
    recovered = host.recovered
    banner = [
        recovered if options.data_dir is None else f"data dir {options.data_dir}: {recovered}"
    ]
    box = options.secret_box
    assert box is not None
    banner.append(f"secrets key {box.key_id}: {box.source}")
    if options.production:
        demo = demo_credentials(venue.registry)
        if demo:
            print(
                "alatau serve --production: the venue has participants with published demo "
                f"keys ({', '.join(demo)}); use your own venue file and a fresh data dir",
                file=sys.stderr,
            )
            return None
        if options.venue_file is None:
            banner.append(
                "production: no venue file (--config), so no participants: register them "
                "with admin.participant"
            )
    resealed = reseal_commands(venue.registry, box)
    for command in resealed:
        venue.submit(functools.partial(_stamped, command))
    if resealed:
        banner.append(
            f"sealed the plaintext HMAC secrets of {len(resealed)} participants recovered "
            "from older data (older journal files and snapshots still hold them)"
        )
    admin_key = options.admin_key
    if not options.production:
        deposits, lines = demo_deposits(venue)
        fund_once = getattr(host, "fund_once", None)  # a cluster: once for all gateways
        if host.last_seq == 0 and fund_once is not None:
            ts = venue.now_ms()
            fund_once([_stamped(deposit, ts) for deposit in deposits])
        elif host.last_seq == 0:
            for deposit in deposits:
                venue.submit(functools.partial(_stamped, deposit))
            banner.append("demo venue: participants funded with demo balances (not for production)")
        banner.extend(lines)
        if admin_key is None:
            admin_key = secrets.token_urlsafe(18)
            banner.append(f"  admin key (auth.admin): {admin_key}")
    return banner, admin_key


def _stamped(command: Command, ts: int) -> Command:
    return msgspec.structs.replace(command, ts=ts)


def _stop_on_signals(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(signum, stop.set)
        except (NotImplementedError, RuntimeError):  # not the main thread
            break


async def listen(
    gateway: Gateway, options: ServeOptions, tls: ssl.SSLContext | None, stop: asyncio.Event
) -> tuple[asyncio.Task[None], tuple[str, int]]:
    """Start the websocket server: its task and the address it is bound to.  If it cannot
    listen (a busy port, a bad address), the venue stops and ``StartupError`` says why."""
    from gateway.transport.server import run_server

    bound: asyncio.Future[tuple[str, int]] = asyncio.get_running_loop().create_future()
    server = asyncio.create_task(
        run_server(
            gateway,
            options.host,
            options.port,
            transport=options.transport,
            started=bound,
            stop=stop,
            ssl=tls,
        )
    )
    first: set[asyncio.Future[Any]] = {bound, server}
    await asyncio.wait(first, return_when=asyncio.FIRST_COMPLETED)
    if not bound.done():
        error = server.exception()
        await gateway.venue.stop()
        reason = getattr(error, "strerror", None) or error
        raise StartupError(f"cannot listen on {options.host}:{options.port}: {reason}")
    return server, bound.result()


async def listen_http(
    gateway: Gateway,
    options: ServeOptions,
    tls: ssl.SSLContext | None,
    stop: asyncio.Event,
    websocket_server: asyncio.Task[None],
    *,
    websocket_port: int,
) -> tuple[asyncio.Task[None], tuple[str, int]]:
    """Start the HTTP API and the trading page beside the websocket server on
    ``websocket_port`` (``gateway.transport.http_server``, ``web_page``): its task and
    bound address.  If it cannot listen, the websocket server and the venue stop and
    ``StartupError`` says why."""
    from gateway.sessions.http import HttpApi
    from gateway.transport.http_server import run_http_server
    from gateway.transport.web_page import WebPage

    page = WebPage.load(
        websocket_port=websocket_port, websocket_scheme="ws" if tls is None else "wss"
    )

    bound: asyncio.Future[tuple[str, int]] = asyncio.get_running_loop().create_future()
    server = asyncio.create_task(
        run_http_server(
            HttpApi(gateway),
            options.host,
            options.http_listen_port(),
            started=bound,
            stop=stop,
            ssl=tls,
            page=page,
        )
    )
    first: set[asyncio.Future[Any]] = {bound, server}
    await asyncio.wait(first, return_when=asyncio.FIRST_COMPLETED)
    if not bound.done():
        error = server.exception()
        stop.set()
        await websocket_server
        await gateway.venue.stop()
        reason = getattr(error, "strerror", None) or error
        raise StartupError(
            f"cannot listen for HTTP on {options.host}:{options.http_listen_port()}: {reason}"
        )
    return server, bound.result()


def _why_not_started(error: BaseException, data_dir: str | None) -> str:
    """The one line for a venue that could not be built (after ``alatau: cannot start: ``)."""
    if isinstance(error, EngineGone):  # the engine process said why on stderr before this
        return str(error)
    if isinstance(error, JournalCorrupt):  # damage, or an earlier version's data
        hint = "" if error.kind == "old format" else f"; {SALVAGE_HINT}"
        return f"{error}{hint}"
    return f"data dir {data_dir}: {error}"


def tls_context(cert: str | None, key: str | None) -> ssl.SSLContext | None:
    """The server's TLS context for ``--tls-cert``/``--tls-key`` (None: plain ws://)."""
    if cert is None and key is None:
        return None
    if cert is None or key is None:
        raise ConfigError("--tls-cert and --tls-key go together: give both, or neither")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"cannot load the TLS certificate {cert} and key {key}: {exc}") from None
    return context


def run_serve(args: argparse.Namespace) -> int:
    import uvloop

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("picows").setLevel(logging.WARNING)  # it logs every connection at INFO
    try:
        return uvloop.run(serve(options_from_args(args)))
    except StartupError as exc:
        print(f"alatau: cannot start: {exc}", file=sys.stderr, flush=True)
        return 1
    except JournalFailed as exc:  # already logged when it happened; this is the exit
        print(f"alatau: stopped: {exc}", file=sys.stderr, flush=True)
        return 1
