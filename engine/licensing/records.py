"""The registry's records: licences, participants and their limits, as frozen msgspec Structs.

Records are data: the operator writes them in TOML (``engine.licensing.registry``) or sends
them with the ``admin.license`` / ``admin.participant`` commands, and the check chain reads
them.  A record is immutable; a change is a new record put into the registry.

Construction validates every field (msgspec checks ``Literal`` types only when decoding, so
``__post_init__`` does it for records built in Python too) and raises ``ConfigError`` naming
the record and the field.

Units: every amount is in tiyn (1 KZT = 100 tiyn); times are milliseconds since the epoch.
A licence's dates are calendar days in Almaty time, UTC+5 (Kazakhstan has kept one time zone,
UTC+5, since 1 March 2024): a licence "valid from 2026-01-01 to 2030-12-31" is valid from
2026-01-01 00:00 to 2030-12-31 24:00 local time.  The conversion is integer day arithmetic;
nothing here reads a clock.
"""

from __future__ import annotations

import functools
import re
from datetime import date
from typing import Literal

import msgspec

from ..errors import ConfigError

__all__ = [
    "ACCOUNT_STATUSES",
    "ACTIVITIES",
    "ALMATY_UTC_OFFSET_MS",
    "CATEGORIES",
    "DEFAULT_RETAIL_MONTHLY_CAP",
    "KYC_LEVELS",
    "LICENSE_STATUSES",
    "MS_PER_DAY",
    "REGULATORS",
    "AccountStatus",
    "Activity",
    "Category",
    "License",
    "LicenseStatus",
    "Participant",
    "ParticipantLimits",
    "Regulator",
    "activity_for",
    "day_start_ms",
]

Regulator = Literal["NBK", "AFSA"]
LicenseStatus = Literal["ACTIVE", "SUSPENDED", "REVOKED"]
Activity = Literal["trading", "market_making", "brokerage"]
Category = Literal["RETAIL", "PROFESSIONAL", "MARKET_MAKER", "BROKER"]
AccountStatus = Literal["active", "suspended", "frozen"]

REGULATORS: tuple[str, ...] = ("NBK", "AFSA")
LICENSE_STATUSES: tuple[str, ...] = ("ACTIVE", "SUSPENDED", "REVOKED")
ACTIVITIES: tuple[str, ...] = ("trading", "market_making", "brokerage")
CATEGORIES: tuple[str, ...] = ("RETAIL", "PROFESSIONAL", "MARKET_MAKER", "BROKER")
ACCOUNT_STATUSES: tuple[str, ...] = ("active", "suspended", "frozen")
KYC_LEVELS: range = range(4)  # 0 (none) .. 3 (full)

OWN_LICENSE_CATEGORIES: frozenset[str] = frozenset(("MARKET_MAKER", "BROKER"))
"""Categories that trade under their own licence; the others trade under the venue's."""

_ACTIVITY_OF_CATEGORY = {
    "RETAIL": "trading",
    "PROFESSIONAL": "trading",
    "MARKET_MAKER": "market_making",
    "BROKER": "brokerage",
}

DEFAULT_RETAIL_MONTHLY_CAP = 51_500_000
"""515,000.00 KZT in tiyn (about USD 1,000): the retail monthly purchase cap without the test."""

MS_PER_DAY = 86_400_000
ALMATY_UTC_OFFSET_MS = 5 * 3_600_000
"""Almaty is UTC+5: local midnight is 19:00 UTC of the day before."""

_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}")
_COUNTRY = re.compile(r"[A-Z]{2}")
_SYMBOL = re.compile(r"[A-Z0-9]{2,10}-[A-Z0-9]{2,10}")
_PUBLIC_KEY = re.compile(r"[0-9a-f]{64}")
MAX_SEALED_SECRET = 1024


def activity_for(category: str) -> str:
    """The licence activity a participant of ``category`` trades under.

    A market maker needs ``market_making``, a broker ``brokerage``; retail and professional
    clients need ``trading`` (on the venue's licence).
    """
    return _ACTIVITY_OF_CATEGORY[category]


@functools.lru_cache(maxsize=4096)
def day_start_ms(iso_date: str) -> int:
    """00:00 Almaty time (UTC+5) of ``iso_date`` ("2026-01-01"), in ms since the epoch.

    Integer arithmetic on the proleptic Gregorian day number; cached, because every order
    asks for its licences' bounds.  ``ValueError`` for anything but a real YYYY-MM-DD date.
    """
    if not isinstance(iso_date, str) or _ISO_DATE.fullmatch(iso_date) is None:
        raise ValueError(f"{iso_date!r} is not an ISO date such as 2026-01-01")
    days = date.fromisoformat(iso_date).toordinal() - _EPOCH_ORDINAL
    return days * MS_PER_DAY - ALMATY_UTC_OFFSET_MS


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_id(value: object, what: str) -> None:
    if not isinstance(value, str) or _ID.fullmatch(value) is None:
        raise ConfigError(
            f"{what} {value!r} must be 1 to 64 letters, digits or _ . : - "
            "starting with a letter or digit"
        )


def _check_choice(where: str, field: str, value: object, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigError(f"{where}: {field} must be one of {', '.join(choices)}, not {value!r}")


class License(msgspec.Struct, frozen=True, kw_only=True):
    """A licence issued by a regulator: what it covers and when it is valid.

    ``activities`` and ``markets`` are tuples of names, or ``"*"`` for all of them.
    ``valid_from`` / ``valid_to`` are ISO dates, both days included, in Almaty time.
    """

    license_id: str
    regulator: Regulator
    number: str  # the regulator's licence number, shown in messages
    activities: tuple[Activity, ...] | Literal["*"] = "*"
    markets: tuple[str, ...] | Literal["*"] = "*"
    valid_from: str  # "2026-01-01", first valid day
    valid_to: str  # "2030-12-31", last valid day
    status: LicenseStatus = "ACTIVE"

    def __post_init__(self) -> None:
        _check_id(self.license_id, "license_id")
        where = f"licence {self.license_id}"
        _check_choice(where, "regulator", self.regulator, REGULATORS)
        _check_choice(where, "status", self.status, LICENSE_STATUSES)
        if not isinstance(self.number, str) or not self.number.strip():
            raise ConfigError(f"{where}: number must be a non-empty string, not {self.number!r}")
        _check_scope(where, "activities", self.activities, ACTIVITIES)
        _check_scope(where, "markets", self.markets, None)
        for field in ("valid_from", "valid_to"):
            try:
                day_start_ms(getattr(self, field))
            except ValueError as exc:
                raise ConfigError(f"{where}: {field} {exc}") from None
        if self.valid_to < self.valid_from:  # ISO dates order as strings
            raise ConfigError(
                f"{where}: valid_to {self.valid_to} is before valid_from {self.valid_from}"
            )

    @property
    def valid_from_ms(self) -> int:
        """First valid instant: 00:00 Almaty time of ``valid_from``, ms since the epoch."""
        return day_start_ms(self.valid_from)

    @property
    def valid_until_ms(self) -> int:
        """First instant no longer valid: 00:00 Almaty time of the day after ``valid_to``."""
        return day_start_ms(self.valid_to) + MS_PER_DAY

    def is_valid_at(self, ts: int) -> bool:
        """True when ``ts`` (ms since the epoch) is within the licence's validity period.

        Only the dates: ``status`` is separate (see ``is_active_at``).
        """
        return day_start_ms(self.valid_from) <= ts < day_start_ms(self.valid_to) + MS_PER_DAY

    def is_active_at(self, ts: int) -> bool:
        """True when the licence is ``ACTIVE`` and valid at ``ts`` (ms since the epoch)."""
        return self.status == "ACTIVE" and self.is_valid_at(ts)

    def covers_market(self, symbol: str) -> bool:
        """True when the licence covers the market ``symbol`` ("BTC-KZT"). O(markets)."""
        return self.markets == "*" or symbol in self.markets

    def covers_activity(self, activity: str) -> bool:
        """True when the licence covers ``activity`` ("trading", ...). O(activities)."""
        return self.activities == "*" or activity in self.activities


def _check_scope(where: str, field: str, value: object, choices: tuple[str, ...] | None) -> None:
    """``"*"`` or a non-empty tuple of distinct names (``choices``, or market symbols)."""
    if value == "*":
        return
    if not isinstance(value, tuple) or not value:
        raise ConfigError(f'{where}: {field} must be "*" or a non-empty list, not {value!r}')
    for item in value:
        if choices is not None:
            _check_choice(where, field, item, choices)
        elif not isinstance(item, str) or _SYMBOL.fullmatch(item) is None:
            raise ConfigError(f"{where}: {field}: {item!r} is not a market such as BTC-KZT")
    if len(set(value)) != len(value):
        raise ConfigError(f"{where}: {field} lists a name twice: {list(value)}")


class ParticipantLimits(msgspec.Struct, frozen=True, kw_only=True):
    """A participant's own limits, in tiyn and counts; None means no limit of that kind.

    The check chain compares them with ``ctx.usage``, which the exchange keeps.
    """

    max_order_notional: int | None = None  # tiyn, per order
    daily_notional: int | None = None  # tiyn, reserved + filled in one Almaty day
    max_open_orders: int | None = None  # orders resting on the books at once
    retail_monthly_cap: int = DEFAULT_RETAIL_MONTHLY_CAP  # tiyn of retail buys a month
    retail_monthly_cap_tested: int | None = None  # tiyn, after the test; None: no cap

    def __post_init__(self) -> None:
        for field in msgspec.structs.fields(self):
            value = getattr(self, field.name)
            if value is None and field.name != "retail_monthly_cap":
                continue
            if not _is_int(value) or value < 0:
                raise ConfigError(f"{field.name} must be a non-negative integer, not {value!r}")


class Participant(msgspec.Struct, frozen=True, kw_only=True):
    """A member of the venue: who it is, what it may do, and under which licence.

    Market makers and brokers trade under their own licence (``license_id`` required);
    retail and professional clients trade under the venue's licence (``license_id`` must be
    None).

    ``api_key`` and exactly one credential authenticate its sessions (``auth.login``):

    * ``api_public_key``: an Ed25519 public key, the 32 raw bytes as 64 lowercase hex
      characters (the recommended kind: nothing secret is stored);
    * ``api_secret_sealed``: an HMAC secret sealed (encrypted) by the gateway under the
      server's secrets key, opaque to the engine (``gateway.storage.sealing``);
    * ``api_secret``: an HMAC secret in plaintext.  Only an *input* form (a venue file, an
      ``admin.participant`` request): the gateway seals it before the record reaches the
      engine, so journals and snapshots never hold it.  A registry recovered from data
      written before sealing existed may still hold one (see docs/operations.md).
    """

    participant_id: str
    category: Category
    residency: str  # ISO 3166-1 alpha-2 country code, "KZ"
    kyc_level: int  # 0 (none) .. 3 (full)
    status: AccountStatus = "active"
    appropriateness_passed: bool = False  # the retail knowledge / appropriateness test
    license_id: str | None = None
    api_key: str | None = None
    api_secret: str | None = None
    api_public_key: str | None = None
    api_secret_sealed: str | None = None
    limits: ParticipantLimits = msgspec.field(default_factory=ParticipantLimits)

    def __post_init__(self) -> None:
        _check_id(self.participant_id, "participant_id")
        where = f"participant {self.participant_id}"
        _check_choice(where, "category", self.category, CATEGORIES)
        _check_choice(where, "status", self.status, ACCOUNT_STATUSES)
        if not isinstance(self.residency, str) or _COUNTRY.fullmatch(self.residency) is None:
            raise ConfigError(
                f"{where}: residency {self.residency!r} must be an ISO 3166 country code such as KZ"
            )
        if not _is_int(self.kyc_level) or self.kyc_level not in KYC_LEVELS:
            raise ConfigError(f"{where}: kyc_level must be 0, 1, 2 or 3, not {self.kyc_level!r}")
        if not isinstance(self.appropriateness_passed, bool):
            raise ConfigError(f"{where}: appropriateness_passed must be true or false")
        if self.category in OWN_LICENSE_CATEGORIES:
            if self.license_id is None:
                raise ConfigError(
                    f"{where}: a {self.category} trades under its own licence: set license_id"
                )
            _check_id(self.license_id, f"{where}: license_id")
        elif self.license_id is not None:
            raise ConfigError(
                f"{where}: a {self.category} client trades under the venue's licence: "
                f"remove license_id {self.license_id!r}"
            )
        for field in ("api_key", "api_secret"):
            value = getattr(self, field)
            if value is not None and (not isinstance(value, str) or len(value) < 8):
                raise ConfigError(f"{where}: {field} must be a string of at least 8 characters")
        if self.api_public_key is not None and (
            not isinstance(self.api_public_key, str)
            or _PUBLIC_KEY.fullmatch(self.api_public_key) is None
        ):
            raise ConfigError(
                f"{where}: api_public_key must be an Ed25519 public key: 64 hex characters "
                "(the 32 raw bytes)"
            )
        sealed = self.api_secret_sealed
        if sealed is not None and (
            not isinstance(sealed, str) or not sealed or len(sealed) > MAX_SEALED_SECRET
        ):
            raise ConfigError(f"{where}: api_secret_sealed must be a non-empty string")
        credentials = sum(
            value is not None
            for value in (self.api_secret, self.api_public_key, self.api_secret_sealed)
        )
        if self.api_key is None and credentials:
            raise ConfigError(f"{where}: a credential without an api_key")
        if self.api_key is not None and credentials != 1:
            raise ConfigError(
                f"{where}: api_key needs exactly one credential: api_public_key (Ed25519, "
                "recommended) or api_secret (HMAC)"
            )
        if not isinstance(self.limits, ParticipantLimits):
            raise ConfigError(f"{where}: limits must be a ParticipantLimits")

    def __repr__(self) -> str:
        """Like msgspec's, with the api secret masked: records end up in logs."""
        shown = []
        for field in msgspec.structs.fields(self):
            value = getattr(self, field.name)
            if field.name == "api_secret" and value is not None:
                value = "***"
            shown.append(f"{field.name}={value!r}")
        return f"Participant({', '.join(shown)})"
