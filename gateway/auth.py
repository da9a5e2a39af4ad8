"""Login checks: HMAC-SHA256 signatures with a timestamp window, and the operator's admin key.

A client signs ``f"{timestamp}{api_key}"`` with its API secret and sends the hex digest;
the server recomputes it and compares in constant time.  The timestamp must be within
``window_ms`` of the server's clock, so a captured login cannot be replayed later.
"""

from __future__ import annotations

import hashlib
import hmac

DEFAULT_WINDOW_MS = 30_000


def sign(api_secret: str, api_key: str, timestamp: int) -> str:
    """The signature a client sends with ``auth.login`` (used by the SDK and the tests)."""
    message = f"{timestamp}{api_key}".encode()
    return hmac.new(api_secret.encode(), message, hashlib.sha256).hexdigest()


def verify_signature(
    api_secret: str,
    api_key: str,
    timestamp: int,
    signature: str,
    now_ms: int,
    window_ms: int = DEFAULT_WINDOW_MS,
) -> str | None:
    """None if the login is good, else the reason it is not (for the error message)."""
    if abs(now_ms - timestamp) > window_ms:
        return f"timestamp {timestamp} is more than {window_ms} ms from the server's time"
    expected = sign(api_secret, api_key, timestamp)
    if not hmac.compare_digest(expected, signature.lower()):
        return "the signature does not match"
    return None


def admin_key_matches(expected: str | None, given: str) -> bool:
    """Constant-time comparison; no admin login at all when the server has no key."""
    return expected is not None and hmac.compare_digest(expected.encode(), given.encode())
