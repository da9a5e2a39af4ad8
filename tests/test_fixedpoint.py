"""Wire decimal strings <-> integer minor units: exact, strict, no floats."""

from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.fixedpoint import MAX_SCALE, MAX_UNITS, NumberFormatError, format_units, parse_units

scales = st.integers(min_value=0, max_value=MAX_SCALE)
units = st.integers(min_value=0, max_value=MAX_UNITS)


@pytest.mark.parametrize(
    ("text", "scale", "expected"),
    [
        ("45000000.00", 2, 4_500_000_000),
        ("45000000", 2, 4_500_000_000),
        ("12.5", 2, 1250),
        ("0.00015", 8, 15_000),
        ("0.00000001", 8, 1),
        ("515.00", 2, 51_500),
        ("007", 0, 7),
        ("007.50", 2, 750),
        ("0", 2, 0),
        ("0.00", 2, 0),
        ("92233720368547758.07", 2, MAX_UNITS),
        ("9223372036854775807", 0, MAX_UNITS),
    ],
)
def test_parse_units_is_exact(text: str, scale: int, expected: int) -> None:
    """A plain decimal parses to the exact integer count of minor units."""
    assert parse_units(text, scale) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        " ",
        " 1",
        "1 ",
        "1\n",
        "+1",
        "-1",
        "-0",
        "1e3",
        "1E3",
        "1_0",
        "1,5",
        "\u0661\u0662",  # Arabic-Indic digits: int() accepts them
        "\uff11\uff12",  # fullwidth digits
        "1.\u0665",  # a non-ASCII digit among the decimals
        "\u00b2",  # superscript two: str.isdigit() says True
        "inf",
        "nan",
        "Infinity",
        ".5",
        "5.",
        ".",
        "1.2.3",
        "0x10",
        "1/2",
    ],
)
def test_parse_units_rejects_anything_but_plain_ascii_decimals(text: str) -> None:
    """Signs, exponents, underscores, whitespace, non-ASCII digits and bare points are refused."""
    with pytest.raises(NumberFormatError) as info:
        parse_units(text, 2, field="price")
    assert info.value.code == "INVALID_NUMBER"
    assert info.value.field == "price"


@pytest.mark.parametrize(("text", "scale"), [("1.001", 2), ("1.000", 2), ("12.5", 0), ("0.0", 0)])
def test_parse_units_rejects_more_decimals_than_the_scale(text: str, scale: int) -> None:
    """More decimals than allowed is an error, even trailing zeros: never rounded."""
    with pytest.raises(NumberFormatError, match="more than"):
        parse_units(text, scale, field="qty")


@pytest.mark.parametrize(
    ("text", "scale"),
    [("92233720368547758.08", 2), ("9223372036854775808", 0), ("1" + "0" * 30, 2)],
)
def test_parse_units_rejects_values_above_int64(text: str, scale: int) -> None:
    """A value that does not fit the core's int64 fields is refused, naming the maximum."""
    with pytest.raises(NumberFormatError, match="above the maximum"):
        parse_units(text, scale)


def test_parse_units_handles_huge_inputs_without_int_limits() -> None:
    """A very long numeral is judged by its digits, not handed to int() (no int-digit limit)."""
    assert parse_units("0" * 100_000 + "1.25", 2) == 125
    with pytest.raises(NumberFormatError, match="above the maximum"):
        parse_units("9" * 100_000, 2)


@pytest.mark.parametrize("value", [12, 12.5, b"12", None, ["12"], Fraction(1, 2)])
def test_parse_units_rejects_non_strings(value: object) -> None:
    """The wire carries strings: a number of any other type is INVALID_NUMBER, not coerced."""
    with pytest.raises(NumberFormatError, match="must be a decimal string"):
        parse_units(value, 2, field="price")  # type: ignore[arg-type]


def test_parse_error_names_the_field_and_the_value() -> None:
    """The message says which field was wrong and echoes what the client sent."""
    with pytest.raises(NumberFormatError) as info:
        parse_units("1e3", 2, field="price")
    assert str(info.value).startswith("price '1e3' ")
    assert info.value.value == "1e3"
    assert isinstance(info.value, ValueError)


def test_parse_error_echo_is_cut_short() -> None:
    """A huge bad value is not echoed back in full."""
    with pytest.raises(NumberFormatError) as info:
        parse_units("x" * 10_000, 2)
    assert len(str(info.value)) < 200


@pytest.mark.parametrize("scale", [-1, MAX_SCALE + 1, True, 2.0])
def test_bad_scale_is_a_programming_error(scale: object) -> None:
    """A scale outside 0..18 is misuse (ValueError), not an INVALID_NUMBER from the client."""
    with pytest.raises(ValueError, match="scale") as info:
        parse_units("1", scale)  # type: ignore[arg-type]
    assert not isinstance(info.value, NumberFormatError)


@pytest.mark.parametrize(
    ("value", "scale", "expected"),
    [
        (4_500_000_000, 2, "45000000.00"),
        (0, 2, "0.00"),
        (5, 0, "5"),
        (1, 8, "0.00000001"),
        (15_000, 8, "0.00015000"),
        (-150, 2, "-1.50"),
        (-1, 2, "-0.01"),
        (MAX_UNITS, 2, "92233720368547758.07"),
        (2**70, 0, str(2**70)),
    ],
)
def test_format_units_always_has_scale_decimals(value: int, scale: int, expected: str) -> None:
    """Output has exactly ``scale`` decimals (no point at scale 0) and keeps a minus sign."""
    assert format_units(value, scale) == expected


def test_format_units_refuses_floats() -> None:
    """A float never becomes a money string."""
    with pytest.raises(TypeError):
        format_units(1.5, 2)  # type: ignore[arg-type]


@given(units, scales)
def test_format_then_parse_round_trips(value: int, scale: int) -> None:
    """Every int64-range count of units survives format -> parse unchanged."""
    assert parse_units(format_units(value, scale), scale) == value


@given(st.integers(min_value=1, max_value=MAX_UNITS), scales)
def test_negative_format_is_the_positive_with_a_sign(value: int, scale: int) -> None:
    """A negative amount prints as minus the positive one."""
    assert format_units(-value, scale) == "-" + format_units(value, scale)


@st.composite
def decimals(draw: st.DrawFn) -> tuple[str, int]:
    """A valid wire decimal and a scale that admits it (leading zeros included)."""
    scale = draw(scales)
    whole = draw(st.from_regex(r"[0-9]{1,12}", fullmatch=True))
    fraction = draw(st.from_regex(rf"[0-9]{{0,{scale}}}", fullmatch=True)) if scale else ""
    return (f"{whole}.{fraction}" if fraction else whole), scale


@given(decimals())
def test_parse_agrees_with_exact_rational_arithmetic(case: tuple[str, int]) -> None:
    """parse_units(s, scale) is exactly s x 10**scale, as a rational number says."""
    text, scale = case
    expected = Fraction(text) * 10**scale
    assert expected.denominator == 1
    if expected <= MAX_UNITS:
        assert parse_units(text, scale) == expected
    else:
        with pytest.raises(NumberFormatError):
            parse_units(text, scale)


@given(st.text(min_size=1, max_size=12), scales)
def test_any_string_with_other_characters_is_rejected(text: str, scale: int) -> None:
    """A string holding anything but ASCII digits and one inner point never parses."""
    stripped = text.replace(".", "", 1)
    if stripped and all("0" <= c <= "9" for c in stripped) and text[0] != "." and text[-1] != ".":
        return  # a valid numeral: covered by the tests above
    with pytest.raises(NumberFormatError):
        parse_units(text, scale)
