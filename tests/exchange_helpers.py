"""Shared helpers for exchange tests: a licensed venue with funded professional participants."""

from __future__ import annotations

from benchmarks.soak_exchange import VENUE_LICENSE, licensed_venue
from engine.exchange import Exchange
from engine.licensing import Participant, ParticipantLimits

__all__ = ["TS0", "VENUE_LICENSE", "new_venue", "professional"]

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
    return licensed_venue(participants, profile)
