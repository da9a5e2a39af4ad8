"""The exchange a venue starts from (seq 0): its markets, its registry, its check chain.

The one place that turns the operator's files into an ``Exchange``, for every engine host
(in this process, or in an engine process of its own) and for tests.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from engine.compiled import exchange_type as default_exchange_type
from engine.errors import ConfigError
from engine.exchange import Exchange
from engine.licensing import Registry, load_chain, load_registry
from engine.markets import load_markets
from gateway.storage.sealing import SecretBox


class EngineSetup(Protocol):
    """What building the exchange reads of the server's options (``ServeOptions`` has it)."""

    @property
    def venue_file(self) -> str | None: ...

    @property
    def markets_file(self) -> str | None: ...

    @property
    def production(self) -> bool: ...

    @property
    def secret_box(self) -> SecretBox | None: ...


@dataclass(frozen=True)
class VenueFiles:
    """An ``EngineSetup`` of its own, where there are no server options (the engine
    process)."""

    venue_file: str | None = None
    markets_file: str | None = None
    production: bool = False
    secret_box: SecretBox | None = None


def venue_registry(options: EngineSetup) -> Registry:
    """The registry to start from: the venue file's; with none, the shipped demo venue, or
    in production the shipped venue licence alone, with no participants."""
    if options.venue_file is None and options.production:
        shipped = load_registry()
        return Registry(shipped.venue_license_id, [shipped.venue_license], [])
    return load_registry(options.venue_file)


def build_exchange(options: EngineSetup, exchange_type: type[Exchange] | None = None) -> Exchange:
    """The exchange at seq 0.  A plaintext HMAC secret of the venue file is sealed with
    ``options.secret_box`` first; without a box such a file is a ``ConfigError``, so no
    plaintext secret ever reaches the engine, the journal or a snapshot.

    ``exchange_type``: by default ``engine.compiled.exchange_type()``, the compiled exchange
    (``ALATAU_EXCHANGE=python`` picks the reference ``engine.exchange.Exchange``); snapshot
    recovery (``engine.state.rebuild``) makes the same choice."""
    if exchange_type is None:
        exchange_type = default_exchange_type()
    registry = venue_registry(options)
    if options.secret_box is not None:
        registry = options.secret_box.seal_registry(registry)
    elif any(p.api_secret is not None for p in registry.participants.values()):
        raise ConfigError(
            "the venue file has api_secret values: they are sealed with the server's secrets "
            "key, and none was given"
        )
    return exchange_type(
        load_markets(options.markets_file), registry, load_chain(options.venue_file)
    )
