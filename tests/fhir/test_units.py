"""UCUM conversion through ucumvert, exact."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

import pytest

from fhirtis.fhir.units import UnitError, convert, factor, to_decimal

D = Decimal


@pytest.mark.parametrize(
    ("value", "src", "dst", "expected"),
    [
        ("45", "mm", "cm", "4.5"),
        ("3.3", "ukat/L", "U/L", "198"),
        ("50", "[IU]/L", "U/L", "50"),
        ("150", "[lb_av]", "kg", "68.0388555"),
        ("65", "[in_i]", "cm", "165.1"),
        ("5", "mL/min", "mL/h", "300"),
        ("16.8", "g/h", "mg/h", "16800"),
        ("280", "mg/min", "mg/h", "16800"),
        ("10", "g/dL", "mg/mL", "100"),
        ("35000", "mg", "g", "35"),
        ("7", "{score}", "1", "7"),
    ],
)
def test_conversions_are_exact(value: str, src: str, dst: str, expected: str) -> None:
    assert convert(D(value), src, dst) == D(expected)


def test_factors_are_fractions() -> None:
    assert factor("g/h", "mg/min") == Fraction(50, 3)
    assert factor("[lb_av]", "kg") == Fraction(45359237, 100_000_000)


def test_non_decimal_factor_rounds_to_28_digits() -> None:
    assert to_decimal(Fraction(1, 3)) == D(1) / D(3)
    assert to_decimal(Fraction(7, 8)) == D("0.875")


@pytest.mark.parametrize(("src", "dst"), [("furlong", "cm"), ("kg", "cm"), ("{score}", "cm")])
def test_unknown_or_incompatible_units(src: str, dst: str) -> None:
    with pytest.raises(UnitError):
        convert(D(1), src, dst)
