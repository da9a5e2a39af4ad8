"""Shared helpers for exchange tests: a licensed venue with funded professional participants."""

from __future__ import annotations

from engine.exchange import Exchange
from engine.licensing import CheckChain, License, Participant, ParticipantLimits, Registry
from engine.markets import load_markets

VENUE_LICENSE = License(
    license_id="VENUE",
    regulator="NBK",
    number="TEST-0001",
    activities="*",
    markets="*",
    valid_from="2026-01-01",
    valid_to="2030-12-31",
    status="ACTIVE",
)
TS0 = 1_790_000_000_000  # 2026-09-22, inside the venue licence


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
    registry = Registry("VENUE", [VENUE_LICENSE], [professional(p) for p in participants])
    return Exchange(load_markets(), registry, CheckChain(profile))
