"""HMAC API secrets at rest: sealed (AES-256-GCM) under the server's secrets key.

An HMAC login needs the secret itself, so the server must keep it; it keeps it *sealed*.
The gateway seals a plaintext ``api_secret`` (from the venue file or an
``admin.participant`` request) before the record is sequenced, so the command in the
journal, the registry in the engine and every snapshot hold only ``api_secret_sealed``;
the engine stays deterministic and never sees the key.  At login the gateway opens the
sealed secret and keeps the plaintext in its own memory only (``SecretBox.open`` caches it).

The key is 32 random bytes.  Where it comes from (``resolve_secret_box``), first match:

1. ``--secrets-key-file PATH`` (or ``$ALATAU_SECRETS_KEY_FILE``): read, or created there
   (mode 0600, its directory 0700 when this creates it) if it does not exist;
2. ``$ALATAU_SECRETS_KEY``: the key itself, 64 hex characters;
3. the data directory's ``secrets.key``, created (0600, the directory made 0700) on first
   start;
4. with no data directory (``--ephemeral``): a random key in memory.

A copy or backup of the journal and snapshots without the key file discloses no HMAC
secret; an operator who keeps the key file outside the data directory (option 1) gets that
protection for the whole data directory.  Ed25519 keys need none of this: the server
stores only public keys.

Sealed form: ``aesgcm1:<key id>:<base64url(nonce || ciphertext || tag)>``, with the api
key as associated data (a sealed secret does not work for another key).  The key id (8 hex
characters of a hash of the key) says which key sealed it, so a wrong key file gives a
clear error instead of failed logins.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import secrets
import stat
from pathlib import Path

import msgspec
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from engine.errors import ConfigError
from engine.licensing import Participant, Registry

log = logging.getLogger("alatau.sealing")

SECRETS_KEY_ENV = "ALATAU_SECRETS_KEY"  # the key itself, 64 hex characters
SECRETS_KEY_FILE_ENV = "ALATAU_SECRETS_KEY_FILE"
KEY_FILE_NAME = "secrets.key"
_PREFIX = "aesgcm1"
_NONCE_BYTES = 12


class SealError(Exception):
    """A sealed secret that this server's key cannot open."""


class SecretBox:
    """Seals and opens HMAC API secrets with the server's 32-byte key."""

    def __init__(self, key: bytes, *, source: str = "in memory") -> None:
        if not isinstance(key, bytes) or len(key) != 32:
            raise ConfigError("the secrets key must be 32 bytes (64 hex characters)")
        self._aead = AESGCM(key)
        self._key = key
        self.key_id = hashlib.sha256(b"alatau secrets key id\0" + key).hexdigest()[:8]
        self.source = source
        self._opened: dict[tuple[str, str], str] = {}  # (api_key, sealed) -> plaintext

    @classmethod
    def random(cls) -> SecretBox:
        """A key that lives in this process only (``--ephemeral``, tests)."""
        return cls(secrets.token_bytes(32), source="random, in memory only (--ephemeral)")

    def key_hex(self) -> str:
        """The key itself, to hand it to the engine process (``gateway.hosts.process``)."""
        return self._key.hex()

    def __repr__(self) -> str:
        return f"SecretBox(key_id={self.key_id!r}, source={self.source!r})"

    @staticmethod
    def _associated_data(api_key: str) -> bytes:
        return b"alatau api secret v1\0" + api_key.encode()

    def seal(self, api_key: str, secret: str) -> str:
        nonce = secrets.token_bytes(_NONCE_BYTES)
        sealed = self._aead.encrypt(nonce, secret.encode(), self._associated_data(api_key))
        body = base64.urlsafe_b64encode(nonce + sealed).decode().rstrip("=")
        return f"{_PREFIX}:{self.key_id}:{body}"

    def open(self, api_key: str, sealed: str) -> str:
        """The plaintext secret (cached in memory); ``SealError`` if it cannot be opened."""
        cached = self._opened.get((api_key, sealed))
        if cached is not None:
            return cached
        try:
            prefix, key_id, body = sealed.split(":", 2)
        except ValueError:
            raise SealError("not a sealed secret") from None
        if prefix != _PREFIX:
            raise SealError(f"unknown sealing {prefix[:16]!r}")
        if key_id != self.key_id:
            raise SealError(
                f"sealed under secrets key {key_id[:8]!r}, but the server's key is "
                f"{self.key_id!r} ({self.source}): start it with the key file that sealed it"
            )
        try:
            raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
            plain = self._aead.decrypt(
                raw[:_NONCE_BYTES], raw[_NONCE_BYTES:], self._associated_data(api_key)
            )
            secret = plain.decode()
        except (ValueError, InvalidTag, UnicodeDecodeError):
            raise SealError("the sealed secret does not open with the server's key") from None
        if len(self._opened) > 100_000:
            self._opened.clear()
        self._opened[(api_key, sealed)] = secret
        return secret

    def seal_participant(self, participant: Participant) -> Participant:
        """The record with a plaintext ``api_secret`` replaced by ``api_secret_sealed``."""
        if participant.api_secret is None or participant.api_key is None:
            return participant
        sealed = self.seal(participant.api_key, participant.api_secret)
        self._opened[(participant.api_key, sealed)] = participant.api_secret
        return msgspec.structs.replace(participant, api_secret=None, api_secret_sealed=sealed)

    def seal_registry(self, registry: Registry) -> Registry:
        """The registry with every plaintext secret sealed (a venue file's, at start)."""
        participants = list(registry.participants.values())
        if not any(p.api_secret is not None for p in participants):
            return registry
        return Registry(
            registry.venue_license_id,
            registry.licenses.values(),
            [self.seal_participant(p) for p in participants],
        )


# -- the key --------------------------------------------------------------------------------


def _parse_key(text: str, where: str) -> bytes:
    text = text.strip()
    try:
        key = bytes.fromhex(text)
    except ValueError:
        key = b""
    if len(key) != 32:
        raise ConfigError(f"{where}: the secrets key must be 64 hex characters (32 bytes)")
    return key


def load_or_create_key_file(path: str | Path) -> tuple[bytes, bool]:
    """(the key in ``path``, whether this call created it).

    A new file is written with mode 0600 (its directory made 0700 when this creates it or
    when it is the data directory); an existing one that others may read is refused, as
    ssh refuses a private key file that is not private.
    """
    path = Path(path)
    if path.exists():
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            raise ConfigError(
                f"the secrets key file {path} may be read by others (mode {mode:04o}): "
                f"chmod 600 {path}"
            )
        try:
            return _parse_key(path.read_text(encoding="ascii"), str(path)), False
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"cannot read the secrets key file {path}: {exc}") from None
    directory = path.parent
    if not directory.exists():
        directory.mkdir(mode=0o700, parents=True)
    key = secrets.token_bytes(32)
    temporary = directory / f".{path.name}.{os.getpid()}.tmp"
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.fchmod(fd, 0o600)  # whatever the umask
        os.write(fd, key.hex().encode() + b"\n")
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.link(temporary, path)  # never replaces a key file another process just created
    except FileExistsError:
        os.unlink(temporary)
        return load_or_create_key_file(path)
    os.unlink(temporary)
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return key, True


def resolve_secret_box(
    *,
    key_file: str | None,
    data_dir: str | None,
    environ: dict[str, str] | os._Environ[str] | None = None,
) -> SecretBox:
    """The server's ``SecretBox``, from the first source that applies (module docstring)."""
    environ = os.environ if environ is None else environ
    key_file = key_file or environ.get(SECRETS_KEY_FILE_ENV) or None
    if key_file is not None:
        key, created = load_or_create_key_file(key_file)
        return SecretBox(key, source=f"{key_file}{' (created)' if created else ''}")
    if environ.get(SECRETS_KEY_ENV):
        return SecretBox(
            _parse_key(environ[SECRETS_KEY_ENV], f"${SECRETS_KEY_ENV}"),
            source=f"${SECRETS_KEY_ENV}",
        )
    if data_dir is not None:
        directory = Path(data_dir)
        if not directory.exists():
            directory.mkdir(mode=0o700, parents=True)
        _make_private(directory)
        path = directory / KEY_FILE_NAME
        key, created = load_or_create_key_file(path)
        return SecretBox(key, source=f"{path}{' (created)' if created else ''}")
    return SecretBox.random()


def _make_private(directory: Path) -> None:
    """Mode 0700 for the directory that holds the key file (if this user owns it)."""
    try:
        info = directory.stat()
        if info.st_uid == os.getuid() and stat.S_IMODE(info.st_mode) & 0o077:
            directory.chmod(0o700)
    except OSError as exc:
        log.warning("cannot make %s private (0700): %s", directory, exc)
