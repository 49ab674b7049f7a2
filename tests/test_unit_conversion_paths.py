"""The cached conversion paths of ``fhirtis.fhir.units`` (issue 13) give what the factor gives."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

import pytest

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
