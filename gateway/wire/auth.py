"""Login checks: Ed25519 or HMAC-SHA256 signatures, a timestamp window, replay refusal, and
the operator's admin key.

Every login signs the same message, ``f"{timestamp}{api_key}"`` (ASCII, no separator), and
sends the signature as lowercase or uppercase hex:

* **Ed25519** (recommended): the participant registered an Ed25519 *public* key
  (``api_public_key``, the 32 raw bytes as 64 hex characters) and signs with its private
  key; ``signature`` is the 64-byte Ed25519 signature as 128 hex characters.  The server
  holds nothing secret.
* **HMAC-SHA256**: the participant has a shared secret (``api_secret``); ``signature`` is
  the HMAC-SHA256 of the message keyed with the secret's UTF-8 bytes, 64 hex characters.
  The server must know the secret, so it keeps it sealed at rest (``gateway.storage.sealing``).

The timestamp must be within ``window_ms`` of the server's clock, and a login frame is good
once: ``ReplayGuard`` remembers, per api key, the timestamps of the logins it accepted until
they leave the window, so a captured frame replayed on another connection is refused.

Nothing here raises on what a client sent: a signature of the wrong length, not hex, or a
key that is not a valid point gives a reason, and the session answers ``AUTH_FAILED``.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

HMAC_SIGNATURE_HEX = 64
ED25519_SIGNATURE_HEX = 128
ED25519_KEY_HEX = 64
MAX_LOGINS_PER_WINDOW = 4096
"""Logins one api key may make within one window; beyond, the replay memory would grow."""

_HEX = frozenset("0123456789abcdefABCDEF")


def login_message(api_key: str, timestamp: int) -> bytes:
    """What a login signs: ``f"{timestamp}{api_key}"`` as bytes."""
    return f"{timestamp}{api_key}".encode()


def sign(api_secret: str, api_key: str, timestamp: int) -> str:
    """The HMAC-SHA256 login signature (64 hex characters) for an HMAC key."""
    return hmac.new(
        api_secret.encode(), login_message(api_key, timestamp), hashlib.sha256
    ).hexdigest()


def ed25519_private_key(private_key: str | bytes | Ed25519PrivateKey) -> Ed25519PrivateKey:
    """An Ed25519 private key from its 32 raw bytes, as 64 hex characters or bytes (or the
    key object itself).  ``ValueError`` for anything else."""
    if isinstance(private_key, Ed25519PrivateKey):
        return private_key
    if isinstance(private_key, str):
        if len(private_key) != ED25519_KEY_HEX or not _is_hex(private_key):
            raise ValueError("an Ed25519 private key is 64 hex characters (its 32 raw bytes)")
        private_key = bytes.fromhex(private_key)
    if not isinstance(private_key, bytes) or len(private_key) != 32:
        raise ValueError("an Ed25519 private key is 32 raw bytes")
    return Ed25519PrivateKey.from_private_bytes(private_key)


def sign_ed25519(private_key: str | bytes | Ed25519PrivateKey, api_key: str, timestamp: int) -> str:
    """The Ed25519 login signature (128 hex characters)."""
    key = ed25519_private_key(private_key)
    return key.sign(login_message(api_key, timestamp)).hex()


def public_key_hex(private_key: str | bytes | Ed25519PrivateKey) -> str:
    """The ``api_public_key`` (64 hex characters) that goes with ``private_key``."""
    public = ed25519_private_key(private_key).public_key()
    return public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw).hex()


def generate_ed25519_key() -> tuple[str, str]:
    """A new key pair: (private key, public key), each as 64 hex characters."""
    key = Ed25519PrivateKey.generate()
    raw = key.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    return raw.hex(), public_key_hex(key)


def check_public_key(api_public_key: str) -> str | None:
    """None if ``api_public_key`` is a usable Ed25519 public key, else why not."""
    if not _is_hex(api_public_key) or len(api_public_key) != ED25519_KEY_HEX:
        return "api_public_key must be 64 hex characters (the 32 raw bytes of an Ed25519 key)"
    try:
        Ed25519PublicKey.from_public_bytes(bytes.fromhex(api_public_key))
    except ValueError:
        return "api_public_key is not a valid Ed25519 public key"
    return None


def _is_hex(text: object) -> bool:
    return isinstance(text, str) and bool(text) and all(c in _HEX for c in text)


def check_window(timestamp: int, now_ms: int, window_ms: int) -> str | None:
    if abs(now_ms - timestamp) > window_ms:
        return f"timestamp {timestamp} is more than {window_ms} ms from the server's time"
    return None


def request_message(timestamp: int, method: str, path: str, query: str, body: bytes) -> bytes:
    """What a signed HTTP request signs: ``f"{timestamp}{METHOD}{path}{query}{body}"``, the
    query with its leading ``?`` (empty when there is none), the body raw."""
    return f"{timestamp}{method.upper()}{path}{query}".encode() + body


def sign_request(api_secret: str, message: bytes) -> str:
    """The HMAC-SHA256 signature (64 hex characters) of a signed HTTP request's message."""
    return hmac.new(api_secret.encode(), message, hashlib.sha256).hexdigest()


def verify_hmac(
    api_secret: str, api_key: str, timestamp: int, signature: str, message: bytes | None = None
) -> str | None:
    """None if ``signature`` is the HMAC signature of ``message`` (default: the login
    message), else the reason it is not."""
    if len(signature) != HMAC_SIGNATURE_HEX or not _is_hex(signature):
        return f"an HMAC key's signature is {HMAC_SIGNATURE_HEX} hex characters"
    if message is None:
        message = login_message(api_key, timestamp)
    expected = sign_request(api_secret, message)
    if not hmac.compare_digest(expected, signature.lower()):
        return "the signature does not match"
    return None


def verify_ed25519(
    api_public_key: str, api_key: str, timestamp: int, signature: str, message: bytes | None = None
) -> str | None:
    """None if ``signature`` is the Ed25519 signature of ``message`` (default: the login
    message), else the reason it is not."""
    if len(signature) != ED25519_SIGNATURE_HEX or not _is_hex(signature):
        return f"an Ed25519 key's signature is {ED25519_SIGNATURE_HEX} hex characters"
    try:
        public = Ed25519PublicKey.from_public_bytes(bytes.fromhex(api_public_key))
        if message is None:
            message = login_message(api_key, timestamp)
        public.verify(bytes.fromhex(signature), message)
    except (InvalidSignature, ValueError, TypeError):
        return "the signature does not match"
    return None


class ReplayGuard:
    """Refuses a login frame seen before: per api key, the timestamps of accepted logins,
    kept until they are outside the window (then the window check refuses them anyway).

    Signatures are deterministic (HMAC and Ed25519 alike), so for one key a timestamp names
    one valid signature: remembering the timestamp is remembering (timestamp, signature),
    and a replay with the hex in another case is caught too.  A client that logs in on
    several connections at once gives each login its own timestamp (the SDK does).
    Bounded: at most ``max_per_key`` logins per key within a window.
    """

    def __init__(
        self, window_ms: Callable[[], int] | int, max_per_key: int = MAX_LOGINS_PER_WINDOW
    ) -> None:
        self._window = window_ms if callable(window_ms) else (lambda: window_ms)
        self.max_per_key = max_per_key
        self._seen: dict[str, dict[int, None]] = {}

    def check_and_remember(self, api_key: str, timestamp: int, now_ms: int) -> str | None:
        """Call after the signature and window checks passed: None (and remember the login)
        if it is new, else the reason to refuse it."""
        seen = self._seen.setdefault(api_key, {})
        if timestamp in seen:
            return "replayed: this login frame (timestamp and signature) was already used"
        if len(seen) >= 16:
            oldest = now_ms - self._window()
            for ts in [ts for ts in seen if ts < oldest]:
                del seen[ts]
        if len(seen) >= self.max_per_key:
            return "too many logins with this api_key within the time window"
        seen[timestamp] = None
        return None


def admin_key_matches(expected: str | None, given: str) -> bool:
    """Constant-time comparison; no admin login at all when the server has no key."""
    return expected is not None and hmac.compare_digest(expected.encode(), given.encode())
