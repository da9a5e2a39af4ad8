"""Exact conversion between wire decimal strings and integer minor units.

On the wire a price or a quantity is a decimal string (``"45000000.00"``, ``"0.00015"``);
inside the engine it is an integer count of minor units (tiyn, satoshi-like units), so that
no float ever touches money.  ``scale`` is the number of decimals one unit stands for:
``parse_units("45000000.00", 2) == 4500000000``.

Parsing is deliberately strict, because a lenient parser is where money bugs come from:

* only ASCII ``0-9`` with at most one ``.`` followed by 1..``scale`` digits;
* no sign, exponent, underscore, whitespace, ``inf``/``nan``, ``.5`` or ``5.``;
* more decimals than ``scale`` is an error and is never rounded (even ``"1.000"`` at scale 2:
  the market says how many decimals it accepts, and a client sending more has a bug);
* at most ``2**63 - 1`` units, so every value fits the int64 fields of the Cython core.

Python's own ``int()`` is not used on raw input: it accepts ``"1_0"``, ``" 12 "`` and
non-ASCII digits such as ``"١٢"``.  The pattern below matches code points 0x30-0x39 only.
"""

from __future__ import annotations

import operator
import re

__all__ = [
    "MAX_SCALE",
    "MAX_UNITS",
    "POW10",
    "NumberFormatError",
    "format_units",
    "parse_units",
]

MAX_UNITS = 2**63 - 1
"""The largest count of units a value may have: the int64 fields of the core."""

_MAX_DIGITS = len(str(MAX_UNITS))  # 19

MAX_SCALE = 18
"""The most decimals a scale may have: 10**19 would not fit an int64 at all."""

# fullmatch, so no trailing newline slips through as ``$`` would allow.  [0-9] is a literal
# code point range: it never matches Arabic-Indic or other Unicode digits.
_NUMERAL = re.compile(r"([0-9]+)(?:\.([0-9]+))?")

# Echo at most this much of a bad value in an error message: the value comes from a client.
_ECHO_LIMIT = 40


class NumberFormatError(ValueError):
    """A wire value is not an exact decimal the field accepts.

    ``code`` is the reject code from ``engine.reject`` the gateway sends back, so a caller
    turns this into a rejection without a lookup table of its own.
    """

    code = "INVALID_NUMBER"

    def __init__(self, field: str, value: object, reason: str) -> None:
        self.field = field
        self.value = value
        super().__init__(f"{field} {_echo(value)} {reason}")


def _echo(value: object) -> str:
    """``repr`` of a client's value, cut short so a huge input cannot bloat the reply."""
    text = repr(value)
    if len(text) > _ECHO_LIMIT:
        text = text[: _ECHO_LIMIT - 3] + "..."
    return text


def _check_scale(scale: int) -> None:
    """Reject a bad scale: that is a programming or configuration error, not client input."""
    if not isinstance(scale, int) or isinstance(scale, bool) or not 0 <= scale <= MAX_SCALE:
        raise ValueError(f"scale must be an int in 0..{MAX_SCALE}, got {scale!r}")


POW10: tuple[int, ...] = tuple(10**exponent for exponent in range(MAX_SCALE + 1))
"""``POW10[scale] == 10**scale`` for every allowed scale: the engine scales amounts on every
order and fill, and indexing this is several times cheaper than computing the power."""

_FAST_DIGITS = 18
"""A numeral of at most this many digits (decimals padded to the scale) is below
``10**18 < MAX_UNITS``, so the fast paths need no overflow test."""

_ZEROS = tuple("0" * width for width in range(MAX_SCALE + 1))


def parse_units(text: str, scale: int, *, field: str = "value") -> int:
    """Parse a decimal string into an integer count of ``10**-scale`` units, exactly.

    ``parse_units("45000000.00", 2) == 4500000000``; ``parse_units("0.00015", 8) == 15000``.
    Raises ``NumberFormatError`` (code ``INVALID_NUMBER``, message naming ``field`` and the
    value) for anything that is not a plain non-negative decimal with at most ``scale``
    decimals and at most ``MAX_UNITS`` units.  Leading zeros are accepted (``"007"``).

    The gateway parses every price and quantity it receives with this, so the common case
    (a short, valid numeral) takes a fast path of string methods; anything else, valid or
    not, goes through ``_parse_strict``, the one place that words the errors.
    """
    if type(text) is str and type(scale) is int:
        whole, point, fraction = text.partition(".")
        places = scale - len(fraction)  # zeros to append: negative for too many decimals
        if places >= 0 and len(whole) + scale <= _FAST_DIGITS and scale >= 0:
            digits = whole + fraction
            # ASCII isdigit() is exactly [0-9]: no sign, space, "_", or Unicode digit.  A
            # point needs digits on both sides ("5." and ".5" are refused), a second point
            # is left in ``fraction`` and fails isdigit().
            if digits.isdigit() and digits.isascii() and whole and (fraction or not point):
                return int(digits) * POW10[places]
    return _parse_strict(text, scale, field)


def _parse_strict(text: str, scale: int, field: str) -> int:
    """``parse_units`` for any input: the grammar as a regular expression, every error."""
    _check_scale(scale)
    if not isinstance(text, str):
        raise NumberFormatError(field, text, f"must be a decimal string, not {type(text).__name__}")
    match = _NUMERAL.fullmatch(text)
    if match is None:
        raise NumberFormatError(field, text, "is not a plain decimal number such as 12 or 0.5")
    whole, fraction = match.group(1), match.group(2) or ""
    if len(fraction) > scale:
        raise NumberFormatError(field, text, f"has more than {scale} decimals")
    # Strip leading zeros before int(): a long run of zeros is still a small number, and the
    # length test keeps int() away from huge inputs (and Python's int-digits limit).
    digits = (whole + fraction.ljust(scale, "0")).lstrip("0")
    if len(digits) > _MAX_DIGITS or (digits and int(digits) > MAX_UNITS):
        raise NumberFormatError(
            field, text, f"is above the maximum {format_units(MAX_UNITS, scale)}"
        )
    return int(digits) if digits else 0


def format_units(units: int, scale: int) -> str:
    """Format an integer count of ``10**-scale`` units as a decimal string, exactly.

    Always exactly ``scale`` decimals, no point at scale 0: ``format_units(4500000000, 2)``
    is ``"45000000.00"``.  Negative values keep their sign (``"-1.50"``) because balance
    deltas are shown with this too; the output of a non-negative value parses back with
    ``parse_units`` to the same integer.

    Every number the gateway sends goes through this: a plain non-negative ``int`` at a
    valid scale takes a fast path; anything else goes through ``_format_checked``.
    """
    if type(units) is int and type(scale) is int and units >= 0 and 0 < scale <= MAX_SCALE:
        whole, fraction = divmod(units, POW10[scale])
        decimals = str(fraction)
        return f"{whole}.{_ZEROS[scale - len(decimals)]}{decimals}"
    return _format_checked(units, scale)


def _format_checked(units: int, scale: int) -> str:
    """``format_units`` for any input: int-likes, negatives, scale 0, bad scales."""
    _check_scale(scale)
    units = operator.index(units)  # ints and int-likes (numpy); a float is a TypeError
    sign = "-" if units < 0 else ""
    whole, fraction = divmod(abs(units), 10**scale)
    if scale == 0:
        return f"{sign}{whole}"
    return f"{sign}{whole}.{fraction:0{scale}d}"
