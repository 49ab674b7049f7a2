"""UCUM conversion through ucumvert, exact."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

import pytest

from fhirtis.fhir.units import UnitError, convert, factor, to_decimal, unit_from_text

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


@pytest.mark.parametrize(
    ("text", "value", "kg"),
    [
        # US systems record weights in ounces ("oz"); a Quantity without its UCUM code must still
        # convert: 1 [oz_av] = 28.349523125 g exactly (UCUM: 1/16 [lb_av])
        ("oz", "2352", "66.678078390"),
        ("ounces", "16", "0.453592370"),
        ("lbs", "150", "68.0388555"),
        # Epic's Observation.Create (Vitals) example writes a weight {65, "KG"}: upper case, no
        # code (UCUM's case-insensitive symbol for the kilogram is "KG")
        ("KG", "65", "65"),
        ("Kg", "70.2", "70.2"),
    ],
)
def test_body_weight_unit_text_without_a_code(text: str, value: str, kg: str) -> None:
    assert convert(D(value), unit_from_text(text), "kg") == D(kg)


@pytest.mark.parametrize(
    "text",
    [
        "µkat/L",  # MICRO SIGN, U+00B5
        "μkat/L",  # GREEK SMALL LETTER MU, U+03BC: what NFKC makes of the micro sign, and
        "μkat/l",  # what many keyboards and word processors type
        "µkat/l",
        "ukat/L",
        " ukat/l ",
    ],
)
def test_microkatal_per_litre_as_labs_write_it(text: str) -> None:
    # 1 µkat/L = 60 U/L (clinical spec §1): 3.2 µkat/L = 192 U/L
    assert convert(D("3.2"), unit_from_text(text), "U/L") == D("192")


@pytest.mark.parametrize(
    ("text", "dst", "expected"),
    [
        # UCUM's case-insensitive symbols, as systems bridged from HL7 v2 write unit text
        ("CM", "cm", "1"),
        ("MM", "cm", "0.1"),
        ("MG", "g", "0.001"),
        ("G", "g", "1"),
        ("MG/ML", "mg/mL", "1"),
        ("KG/M2", "kg/m2", "1"),
        ("MG/KG/MIN", "mg/kg/min", "1"),
        ("ML/H", "mL/h", "1"),
        ("[LB_AV]", "kg", "0.45359237"),
        ("U/L", "U/L", "1"),
        ("[IU]/L", "U/L", "1"),  # the enzyme equivalence still applies
    ],
)
def test_upper_case_unit_text(text: str, dst: str, expected: str) -> None:
    assert convert(D(1), unit_from_text(text), dst) == D(expected)


def test_mixed_case_unit_text_is_not_folded() -> None:
    # "Mg" is UCUM's megagram: a text not all in capitals is taken as written, never folded
    assert convert(D(1), unit_from_text("Mg"), "mg") == D(10) ** 9
    with pytest.raises(UnitError):
        convert(D(1), unit_from_text("mG"), "mg")


@pytest.mark.parametrize(
    ("text", "dst", "expected"),
    [
        ("cc", "mL", "1"),  # cubic centimetre: what US infusion records write for mL
        ("cc/hr", "mL/h", "1"),
        ("cc/h", "mL/h", "1"),
        ("mls", "mL", "1"),
        ("mls/hr", "mL/h", "1"),
        ("gm/dl", "mg/mL", "10"),
        ("kg/m^2", "kg/m2", "1"),
        ("kg/m²", "kg/m2", "1"),
    ],
)
def test_more_spellings_of_volumes_rates_and_bmi(text: str, dst: str, expected: str) -> None:
    assert convert(D(1), unit_from_text(text), dst) == D(expected)
