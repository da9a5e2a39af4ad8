"""Token buckets for request rate limits (per connection and per participant), and a
rate limit for log lines (``LogLimiter``).

A bucket holds up to ``burst`` tokens and refills at ``rate`` tokens a second; a request
takes one.  Time is passed in (``now`` in seconds, monotonic), so the logic is testable
without sleeping.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any


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


class LogLimiter:
    """At most one log line per ``interval_s`` for one kind of event, the others counted and
    the count added to the next line logged: a client that sends a million bad frames, or
    a storm of connections refused, cannot flood the server's log.  ``clock``: monotonic
    seconds (passed in, like the buckets' time, so it is testable without sleeping)."""

    __slots__ = ("clock", "interval_s", "logged", "logger", "next_at", "suppressed")

    def __init__(
        self,
        logger: logging.Logger,
        interval_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.logger = logger
        self.interval_s = interval_s
        self.clock = clock
        self.next_at = float("-inf")
        self.suppressed = 0  # events since the last line that were not logged

    def log(self, level: int, message: str, *args: Any, exc_info: Any = None) -> bool:
        """Log ``message % args`` unless a line was logged less than ``interval_s`` ago;
        True if it was logged."""
        now = self.clock()
        if now < self.next_at:
            self.suppressed += 1
            return False
        self.next_at = now + self.interval_s
        if self.suppressed:
            message += " (and %d more like it not logged in the last %g s)"
            args = (*args, self.suppressed, self.interval_s)
            self.suppressed = 0
        self.logger.log(level, message, *args, exc_info=exc_info)
        return True
