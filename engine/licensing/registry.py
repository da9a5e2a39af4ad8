"""The registry of licences and participants, and its TOML loader.

``Registry`` is **copy-on-write**: ``with_license`` and ``with_participant`` return a new
registry and leave the old one as it was.  The exchange keeps the current registry in one
attribute and replaces it when it applies an ``admin.license`` / ``admin.participant``
command, so an ``OrderContext`` that holds a registry always sees one consistent state, and a
replay of the journal rebuilds the same sequence of registries.  A change costs O(n) (a dict
copy); admin commands are rare and lookups, which every order makes, are O(1).

``load_registry()`` reads the shipped ``venue.toml`` (a demo venue); ``load_registry(path)``
reads the operator's file.  See ``docs/licensing.md`` for the format.  Every problem is a
``ConfigError`` naming the file, the record and the field.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable, Mapping
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import Any

from ..errors import ConfigError
from . import _config as cfg
from .records import License, Participant, ParticipantLimits

__all__ = [
    "Registry",
    "license_from_mapping",
    "limits_from_mapping",
    "load_registry",
    "participant_from_mapping",
    "registry_from_toml",
]


class Registry:
    """The venue's licence, every licence and every participant; immutable (copy-on-write).

    Invariants, checked on construction and on every change (``ConfigError`` otherwise):
    ids are unique, the venue licence exists, every participant's ``license_id`` names a
    licence in the registry, and no two participants share an ``api_key``.
    """

    __slots__ = ("_by_api_key", "_licenses", "_participants", "venue_license_id")

    def __init__(
        self,
        venue_license_id: str,
        licenses: Iterable[License],
        participants: Iterable[Participant] = (),
    ) -> None:
        by_id: dict[str, License] = {}
        for lic in licenses:
            if not isinstance(lic, License):
                raise ConfigError(f"not a License: {lic!r}")
            if lic.license_id in by_id:
                raise ConfigError(f"licence {lic.license_id} is defined twice")
            by_id[lic.license_id] = lic
        if venue_license_id not in by_id:
            raise ConfigError(f"the venue licence {venue_license_id!r} is not among the licences")
        self.venue_license_id = venue_license_id
        self._licenses = by_id
        self._participants: dict[str, Participant] = {}
        self._by_api_key: dict[str, str] = {}
        for participant in participants:
            if not isinstance(participant, Participant):
                raise ConfigError(f"not a Participant: {participant!r}")
            if participant.participant_id in self._participants:
                raise ConfigError(f"participant {participant.participant_id} is defined twice")
            self._add(participant)

    def _add(self, participant: Participant) -> None:
        """Insert or replace ``participant`` in this (not yet shared) registry."""
        where = f"participant {participant.participant_id}"
        if participant.license_id is not None and participant.license_id not in self._licenses:
            raise ConfigError(f"{where}: licence {participant.license_id!r} is unknown")
        old = self._participants.get(participant.participant_id)
        if old is not None and old.api_key is not None:
            del self._by_api_key[old.api_key]
        key = participant.api_key
        if key is not None:
            owner = self._by_api_key.get(key)
            if owner is not None:
                raise ConfigError(f"{where}: api_key is already used by participant {owner}")
            self._by_api_key[key] = participant.participant_id
        self._participants[participant.participant_id] = participant

    def _copy(self) -> Registry:
        new = object.__new__(Registry)
        new.venue_license_id = self.venue_license_id
        new._licenses = dict(self._licenses)
        new._participants = dict(self._participants)
        new._by_api_key = dict(self._by_api_key)
        return new

    # -- lookups, O(1) ------------------------------------------------------------------------

    @property
    def venue_license(self) -> License:
        """The venue's own licence (retail and professional clients trade under it)."""
        return self._licenses[self.venue_license_id]

    @property
    def licenses(self) -> Mapping[str, License]:
        """Every licence by id (a read-only view)."""
        return MappingProxyType(self._licenses)

    @property
    def participants(self) -> Mapping[str, Participant]:
        """Every participant by id (a read-only view)."""
        return MappingProxyType(self._participants)

    def license(self, license_id: str) -> License | None:
        """The licence ``license_id``, or None."""
        return self._licenses.get(license_id)

    def participant(self, participant_id: str) -> Participant | None:
        """The participant ``participant_id``, or None."""
        return self._participants.get(participant_id)

    def participant_by_api_key(self, api_key: str) -> Participant | None:
        """The participant whose ``api_key`` this is, or None (for ``auth.login``)."""
        participant_id = self._by_api_key.get(api_key)
        return None if participant_id is None else self._participants[participant_id]

    def license_for(self, participant: Participant | None) -> License | None:
        """The licence ``participant`` trades under: its own, or the venue's for RETAIL and
        PROFESSIONAL clients; None for no participant."""
        if participant is None:
            return None
        if participant.license_id is None:
            return self.venue_license
        return self._licenses.get(participant.license_id)

    # -- changes, copy-on-write, O(n) -----------------------------------------------------------

    def with_license(self, lic: License) -> Registry:
        """A new registry with ``lic`` added, or replacing the licence of the same id."""
        if not isinstance(lic, License):
            raise ConfigError(f"not a License: {lic!r}")
        new = self._copy()
        new._licenses[lic.license_id] = lic
        return new

    def with_participant(self, participant: Participant) -> Registry:
        """A new registry with ``participant`` added, or replacing the one of the same id.

        ``ConfigError`` when its licence is unknown or its api_key belongs to another
        participant; this registry is unchanged either way.
        """
        if not isinstance(participant, Participant):
            raise ConfigError(f"not a Participant: {participant!r}")
        new = self._copy()
        new._add(participant)
        return new

    def __repr__(self) -> str:
        return (
            f"Registry(venue_license_id={self.venue_license_id!r}, "
            f"licenses={len(self._licenses)}, participants={len(self._participants)})"
        )


# -- records from tables (TOML files and admin command params share this shape) ---------------

_LICENSE_REQUIRED = frozenset(("license_id", "regulator", "number", "valid_from", "valid_to"))
_LICENSE_OPTIONAL = frozenset(("activities", "markets", "status"))
_PARTICIPANT_REQUIRED = frozenset(("participant_id", "category", "residency", "kyc_level"))
_PARTICIPANT_OPTIONAL = frozenset(
    (
        "status",
        "appropriateness_passed",
        "license_id",
        "api_key",
        "api_secret",
        "api_public_key",
        "limits",
    )
)
_LIMIT_MONEY = frozenset(
    ("max_order_notional", "daily_notional", "retail_monthly_cap", "retail_monthly_cap_tested")
)
_LIMIT_COUNTS = frozenset(("max_open_orders",))


def license_from_mapping(data: Mapping[str, Any], where: str = "licence") -> License:
    """A ``License`` from a table: the TOML ``[[licenses]]`` shape or ``admin.license`` params.

    ``activities`` and ``markets`` default to ``"*"``; ``status`` to ``"ACTIVE"``.
    """
    data = cfg.table(data, where)
    if isinstance(data.get("license_id"), str):
        where = f"licence {data['license_id']}"
    cfg.check_keys(data, where, _LICENSE_REQUIRED, _LICENSE_OPTIONAL)
    fields: dict[str, Any] = {
        "license_id": cfg.string(data, "license_id", where),
        "regulator": cfg.string(data, "regulator", where),
        "number": cfg.string(data, "number", where),
        "valid_from": cfg.iso_date(data, "valid_from", where),
        "valid_to": cfg.iso_date(data, "valid_to", where),
    }
    for key in ("activities", "markets"):
        if key in data:
            fields[key] = cfg.names(data, key, where, star=True)
    if "status" in data:
        fields["status"] = cfg.string(data, "status", where)
    return License(**fields)


def limits_from_mapping(data: Mapping[str, Any], where: str = "limits") -> ParticipantLimits:
    """``ParticipantLimits`` from a table: amounts as KZT strings, counts as integers.

    A key left out means the default: no limit, except ``retail_monthly_cap`` (515,000 KZT).
    """
    data = cfg.table(data, where)
    cfg.check_keys(data, where, frozenset(), _LIMIT_MONEY | _LIMIT_COUNTS)
    fields = {key: cfg.money(data, key, where) for key in _LIMIT_MONEY if key in data}
    fields.update({key: cfg.integer(data, key, where) for key in _LIMIT_COUNTS if key in data})
    try:
        return ParticipantLimits(**fields)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def participant_from_mapping(data: Mapping[str, Any], where: str = "participant") -> Participant:
    """A ``Participant`` from a table: the TOML ``[[participants]]`` shape or the params of
    ``admin.participant`` (with an optional ``limits`` table)."""
    data = cfg.table(data, where)
    if isinstance(data.get("participant_id"), str):
        where = f"participant {data['participant_id']}"
    cfg.check_keys(data, where, _PARTICIPANT_REQUIRED, _PARTICIPANT_OPTIONAL)
    fields: dict[str, Any] = {
        "participant_id": cfg.string(data, "participant_id", where),
        "category": cfg.string(data, "category", where),
        "residency": cfg.string(data, "residency", where),
        "kyc_level": cfg.integer(data, "kyc_level", where),
        "license_id": cfg.optional_string(data, "license_id", where),
        "api_key": cfg.optional_string(data, "api_key", where),
        "api_secret": cfg.optional_string(data, "api_secret", where),
        "api_public_key": cfg.optional_string(data, "api_public_key", where),
    }
    if isinstance(fields["api_public_key"], str):
        fields["api_public_key"] = fields["api_public_key"].lower()
    if "status" in data:
        fields["status"] = cfg.string(data, "status", where)
    if "appropriateness_passed" in data:
        fields["appropriateness_passed"] = cfg.boolean(data, "appropriateness_passed", where)
    if "limits" in data:
        fields["limits"] = limits_from_mapping(data["limits"], f"{where}: limits")
    return Participant(**fields)


# -- loading ------------------------------------------------------------------------------------

_DEFAULT_FILE = "venue.toml"
_TOP_LEVEL = frozenset(("venue", "licenses", "participants", "checks"))
# [checks] belongs to engine.licensing.chain.load_chain, which reads the same file.


def load_registry(path: str | Path | None = None) -> Registry:
    """The registry of a TOML file; None loads the shipped demo venue ``venue.toml``."""
    if path is None:
        text = resources.files(__package__).joinpath(_DEFAULT_FILE).read_text(encoding="utf-8")
        return registry_from_toml(text, source=f"engine/licensing/{_DEFAULT_FILE}")
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read the venue file {path}: {exc}") from exc
    return registry_from_toml(text, source=str(path))


def registry_from_toml(text: str, *, source: str = "<string>") -> Registry:
    """The registry of a TOML document (``load_registry`` without the file)."""
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML: {exc}") from exc
    try:
        return _registry_from_document(document)
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None


def _registry_from_document(document: dict[str, Any]) -> Registry:
    unknown = set(document) - _TOP_LEVEL
    if unknown:
        raise ConfigError(
            f"unknown top-level keys {', '.join(sorted(unknown))} "
            f"(known: {', '.join(sorted(_TOP_LEVEL))})"
        )
    venue = cfg.table(document.get("venue"), "[venue]")
    cfg.check_keys(venue, "[venue]", frozenset(("license_id",)), frozenset())
    venue_license_id = cfg.string(venue, "license_id", "[venue]")
    licenses = _tables(document, "licenses")
    participants = _tables(document, "participants") if "participants" in document else []
    return Registry(
        venue_license_id,
        (license_from_mapping(t, f"licenses[{i}]") for i, t in enumerate(licenses)),
        (participant_from_mapping(t, f"participants[{i}]") for i, t in enumerate(participants)),
    )


def _tables(document: Mapping[str, Any], key: str) -> list[Any]:
    value = document.get(key)
    if not isinstance(value, list) or not value:
        raise ConfigError(f"no {key}: write each one as a [[{key}]] table")
    return value
