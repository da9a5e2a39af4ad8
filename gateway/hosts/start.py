"""The engine's settings, and its start: recover from the data directory, or build in memory.

``EngineSettings`` is the one place the engine's defaults live: the server's options
(``gateway.app.serve.ServeOptions``) and its command line take theirs from it, and an
engine process gets its settings as this Struct, msgspec-encoded.  ``start_engine`` is
written once, for every host: the engine in the gateway's process (``gateway.hosts.local``)
and in a process of its own (``gateway.hosts.process``).
"""

from __future__ import annotations

import gc
from dataclasses import dataclass
from typing import Literal, get_args

import msgspec

from engine.exchange import Exchange
from engine.licensing import load_chain
from gateway.hosts.build import VenueFiles, build_exchange
from gateway.storage.datadir import Storage
from gateway.storage.sealing import SecretBox

Durability = Literal["fsync", "buffered", "off"]
DURABILITY_MODES: tuple[str, ...] = get_args(Durability)
EPHEMERAL = "in memory only: nothing is kept (--ephemeral)"


class EngineSettings(msgspec.Struct, frozen=True, kw_only=True):
    """What the engine is started with, and its defaults."""

    data_dir: str | None = None  # None: in memory only (tests; the CLI defaults to a dir)
    # fsync: each batch on disk before it is acknowledged; buffered: handed to the OS only;
    # off: no journal (benchmarks only)
    durability: Durability = "fsync"
    snapshot_every: int = 100_000  # commands between snapshots
    venue_file: str | None = None  # licences, participants, checks (None: the shipped ones)
    markets_file: str | None = None  # None: the shipped KZT markets
    production: bool = False  # no demo participants (see gateway.hosts.build)


ENGINE_DEFAULTS = EngineSettings()


@dataclass
class Engine:
    """A started engine: the exchange, the storage it is journaled in (None: in memory),
    the last journal seq and a one-line account of what was recovered."""

    exchange: Exchange
    storage: Storage | None
    last_seq: int
    recovered: str


def start_engine(settings: EngineSettings, secret_box: SecretBox | None) -> Engine:
    """Recover the exchange from ``settings.data_dir``, or build it in memory with none.
    ``secret_box`` seals the venue file's HMAC secrets (``gateway.hosts.build``).  Raises
    ``EngineError`` or ``OSError`` (the data directory in use, damaged or unreadable), with
    the data directory closed again."""
    files = VenueFiles(
        venue_file=settings.venue_file,
        markets_file=settings.markets_file,
        production=settings.production,
        secret_box=secret_box,
    )
    if settings.data_dir is None:
        return Engine(build_exchange(files), None, 0, EPHEMERAL)
    storage = Storage(
        settings.data_dir, mode=settings.durability, snapshot_every=settings.snapshot_every
    )
    try:
        exchange, last_seq, recovered = storage.recover(
            load_chain(settings.venue_file), lambda: build_exchange(files)
        )
    except BaseException:
        storage.close(final_snapshot=False)
        raise
    return Engine(exchange, storage, last_seq, recovered)


COLLECTOR_THRESHOLD = 10_000
"""Young-generation threshold of Python's cyclic garbage collector once a server has
started (the default is 700).  Nearly everything the order path allocates dies by
reference counting within its turn, so with the default the collector ran about every 70
orders only to find the young objects gone (1,423 collections per 100,000 orders, 0.9 µs
of CPU per order); at 10,000 it ran once per 100,000 orders of
``benchmarks/order_path.py`` (0.02 µs per order), that one collection taking 2 ms."""


def settle_collector() -> None:
    """Once start-up is done: move what it built (the recovered state, modules, tables)
    out of the collector's generations for good, so a full collection no longer walks it
    (which halved the longest collection pause under load, 26 -> 13 ms), and collect the
    young generation only every ``COLLECTOR_THRESHOLD`` net allocations."""
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(COLLECTOR_THRESHOLD, middle, old)
