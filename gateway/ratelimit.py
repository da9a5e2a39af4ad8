"""Token buckets for request rate limits (per connection and per participant).

A bucket holds up to ``burst`` tokens and refills at ``rate`` tokens a second; a request
takes one.  Time is passed in (``now`` in seconds, monotonic), so the logic is testable
without sleeping.
"""

from __future__ import annotations


class TokenBucket:
    __slots__ = ("burst", "rate", "tokens", "updated")

    def __init__(self, rate: float, burst: float, now: float) -> None:
        self.rate = rate
        self.burst = burst
        self.tokens = burst
        self.updated = now

    def take(self, now: float) -> float:
        """Take one token: 0.0 if granted, else the seconds to wait before retrying."""
        elapsed = now - self.updated
        if elapsed > 0:
            self.tokens = min(self.burst, self.tokens + elapsed * self.rate)
            self.updated = now
        if self.tokens >= 1:
            self.tokens -= 1
            return 0.0
        return (1 - self.tokens) / self.rate
