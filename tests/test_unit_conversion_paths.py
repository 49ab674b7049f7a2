"""The cached conversion paths of ``fhirtis.fhir.units`` (issue 13) give what the factor gives."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fhirtis.fhir.units import UnitError, convert, factor, first_convertible, to_decimal


def test_identity_keeps_the_value_as_written() -> None:
    value = Decimal("5.00")
    assert str(convert(value, "kg", "kg")) == "5.00"
    assert str(convert(value, "{score}", "1")) == "5.00"


@pytest.mark.parametrize(
    ("value", "unit", "target"),
    [("1.5", "g", "mg"), ("60", "mL/min", "mL/h"), ("154", "[lb_av]", "kg"), ("3", "mg/h", "g/h")],
)
def test_conversion_is_the_exact_factor(value: str, unit: str, target: str) -> None:
    expected = to_decimal(Fraction(Decimal(value)) * factor(unit, target))
    assert convert(Decimal(value), unit, target) == expected
    assert str(convert(Decimal(value), unit, target)) == str(expected)


def test_impossible_conversion_raises_each_time() -> None:
    for _ in range(2):
        with pytest.raises(UnitError):
            convert(Decimal(1), "mL", "g")


def test_first_convertible_target_in_order() -> None:
    assert first_convertible("mL/h", ("mg/h", "mL/h", "mg/kg/h")) == "mL/h"
    assert first_convertible("g", ("g", "mL")) == "g"
    assert first_convertible("mg/min", ("mg/h", "mL/h")) == "mg/h"
    assert first_convertible("kg", ("mg/h", "mL/h")) is None


def _plain_to_decimal(value: Fraction) -> Decimal:
    """The conversion as first written: the Fraction product, then the fewest exact places."""
    d = value.denominator
    for p in (2, 5):
        while d % p == 0:
            d //= p
    if d == 1:
        k = 0
        while 10**k % value.denominator:
            k += 1
        return Decimal(value.numerator * (10**k // value.denominator)).scaleb(-k)
    return Decimal(value.numerator) / Decimal(value.denominator)


@given(
    st.decimals(min_value=-(10**7), max_value=10**7, places=6, allow_nan=False),
    st.sampled_from(
        [("mm", "cm"), ("[lb_av]", "kg"), ("mL/min", "mL/h"), ("g/h", "mg/min"), ("mg", "g")]
    ),
)
def test_convert_equals_the_fraction_arithmetic_text_for_text(
    value: Decimal, units: tuple[str, str]
) -> None:
    expected = _plain_to_decimal(Fraction(value) * factor(*units))
    assert str(convert(value, *units)) == str(expected)
    assert str(to_decimal(Fraction(value) * factor(*units))) == str(expected)
