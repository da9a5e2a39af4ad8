"""Typed reads of fields from a parsed TOML (or JSON) table, each failure a ``ConfigError``.

Shared by the registry loader and the chain loader.  ``where`` names the table in messages
("participant alice", "[checks]").  The rules follow ``engine.markets``: money is a decimal
string in whole KZT ("515000.00") parsed exactly to tiyn; a TOML float is refused because it
went through binary rounding already, and a TOML integer because "1000" could mean KZT or
tiyn.  Unknown keys are errors (a typo is never a silent default).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from typing import Any

from ..errors import ConfigError
from ..fixedpoint import NumberFormatError, parse_units

KZT_SCALE = 2
"""Decimals of the tenge: amounts in the files are KZT, inside the engine tiyn."""


def table(value: object, where: str) -> Mapping[str, Any]:
    """``value`` itself when it is a table (a dict), else a ``ConfigError``."""
    if not isinstance(value, Mapping):
        raise ConfigError(f"{where} must be a table, not {type(value).__name__}")
    return value


def check_keys(
    data: Mapping[str, Any], where: str, required: frozenset[str], optional: frozenset[str]
) -> None:
    """Every required key is there and no other key than the optional ones."""
    missing = required - set(data)
    if missing:
        raise ConfigError(f"{where}: missing {', '.join(sorted(missing))}")
    unknown = set(data) - required - optional
    if unknown:
        known = ", ".join(sorted(required | optional))
        raise ConfigError(f"{where}: unknown keys {', '.join(sorted(unknown))} (known: {known})")


def string(data: Mapping[str, Any], key: str, where: str) -> str:
    """A string field."""
    value = data[key]
    if not isinstance(value, str):
        raise ConfigError(f"{where}: {key} must be a string, not {value!r}")
    return value


def optional_string(data: Mapping[str, Any], key: str, where: str) -> str | None:
    """A string field that may be absent, or None (JSON null, from admin command params)."""
    return string(data, key, where) if data.get(key) is not None else None


def integer(data: Mapping[str, Any], key: str, where: str) -> int:
    """An integer field (a count or a level, never money); bools and floats are refused."""
    value = data[key]
    if not isinstance(value, int) or isinstance(value, bool):
        raise ConfigError(f"{where}: {key} must be an integer, not {value!r}")
    return value


def boolean(data: Mapping[str, Any], key: str, where: str) -> bool:
    """A true / false field."""
    value = data[key]
    if not isinstance(value, bool):
        raise ConfigError(f"{where}: {key} must be true or false, not {value!r}")
    return value


def money(data: Mapping[str, Any], key: str, where: str) -> int:
    """A KZT amount written as a decimal string ("515000.00"), in tiyn, exactly."""
    value = data[key]
    if isinstance(value, float):
        raise ConfigError(
            f"{where}: {key} = {value!r} is a TOML float; write KZT amounts as strings, "
            f'such as {key} = "{value}"'
        )
    if not isinstance(value, str):
        raise ConfigError(
            f'{where}: {key} = {value!r} must be a KZT decimal string, such as {key} = "{value}"'
        )
    try:
        return parse_units(value, KZT_SCALE, field=key)
    except NumberFormatError as exc:
        raise ConfigError(f"{where}: {exc} (an amount in KZT)") from None


def iso_date(data: Mapping[str, Any], key: str, where: str) -> str:
    """A date field, as a TOML date (2026-01-01) or a string ("2026-01-01"): the ISO string.

    Checked for being a real date by ``License`` itself.
    """
    value = data[key]
    if isinstance(value, date) and type(value) is date:  # a TOML local date, not a datetime
        return value.isoformat()
    if not isinstance(value, str):
        raise ConfigError(f"{where}: {key} must be a date such as 2026-01-01, not {value!r}")
    return value


def names(data: Mapping[str, Any], key: str, where: str, *, star: bool) -> tuple[str, ...] | str:
    """A list of strings as a tuple; ``"*"`` as itself when ``star`` allows it."""
    value = data[key]
    if star and value == "*":
        return "*"
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        allowed = '"*" or a list of strings' if star else "a list of strings"
        raise ConfigError(f"{where}: {key} must be {allowed}, not {value!r}")
    return tuple(value)
