"""Licensed venues for exchange tests: the default markets, and participants that pass every
licensing check (resident professional clients with full KYC, under an active venue licence).
"""

from __future__ import annotations

from collections.abc import Iterable

from engine.exchange import Exchange
from engine.licensing import CheckChain, License, Participant, ParticipantLimits, Registry
from engine.markets import load_markets

__all__ = ["TS0", "VENUE_LICENSE", "licensed_venue", "new_venue", "professional"]

TS0 = 1_790_000_000_000  # 2026-09-22, inside the venue licence

VENUE_LICENSE = License(
    license_id="VENUE",
    regulator="NBK",
    number="SOAK-0001",
    activities="*",
    markets="*",
    valid_from="2026-01-01",
    valid_to="2030-12-31",
    status="ACTIVE",
)


def licensed_venue(
    participants: Iterable[str],
    profile: str = "ALATAU",
    exchange_type: type[Exchange] = Exchange,
) -> Exchange:
    """The default markets and a chain of ``profile``, with resident professional clients
    (full KYC, no limits of their own) trading under an active venue licence, in an
    ``exchange_type`` (the reference ``Exchange`` or ``engine.compiled.CompiledExchange``)."""
    clients = [
        Participant(participant_id=p, category="PROFESSIONAL", residency="KZ", kyc_level=3)
        for p in participants
    ]
    registry = Registry("VENUE", [VENUE_LICENSE], clients)
    return exchange_type(load_markets(), registry, CheckChain(profile))


def professional(participant_id: str) -> Participant:
    """A resident professional client with full KYC and no limits of its own."""
    return Participant(
        participant_id=participant_id,
        category="PROFESSIONAL",
        residency="KZ",
        kyc_level=3,
        limits=ParticipantLimits(),
    )


def new_venue(participants: tuple[str, ...], profile: str = "ALATAU") -> Exchange:
    """An exchange on the default markets whose participants pass every licensing check."""
    return licensed_venue(participants, profile)
