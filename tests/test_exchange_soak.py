"""The soak script's invariant checks pass on a seeded stream that really trades."""

from benchmarks.soak_exchange import soak


def test_soak_keeps_invariants_and_trades():
    """6,000 random commands: every invariant holds after each, and trades and rejects occur."""
    stats = soak(6000, seed=11)
    assert stats["invariant checks passed"] == 6000
    assert stats["trades"] >= 20
    assert stats["fees_charged"] > 0
    assert stats["reject INSUFFICIENT_FUNDS"] > 0
