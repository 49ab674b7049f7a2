"""The extraction's fast paths (issue 13, one core) answer exactly as the general readers do."""

from __future__ import annotations

from decimal import Decimal

import pytest

from fhirtis.fhir.codes import UCUM, terminology
from fhirtis.fhir.extract import Extractor
from fhirtis.fhir.extract.common import (
    ExcludedError,
    TimeElements,
    coded_quantity,
    first_fhir_time,
    first_time,
    read_quantity,
)
from fhirtis.fhir.extract.medications import _DOSE_UNITS, _RATE_UNITS, _coded_amount
from fhirtis.fhir.primitives import PrimitiveError, parse_decimal


def test_float_decimals_keep_the_sign_of_zero_and_the_digits_written() -> None:
    assert str(parse_decimal(0.0)) == "0.0"
    assert str(parse_decimal(-0.0)) == "-0.0"
    assert str(parse_decimal(0.0)) == "0.0"
    assert str(parse_decimal(7.10)) == "7.1"
    assert str(parse_decimal(7.1)) == "7.1"
    assert str(parse_decimal(1.0)) == "1.0"
    assert str(parse_decimal(1)) == "1"  # an int is not the float 1.0 that equals it
    for bad in (float("nan"), float("inf"), True):
        with pytest.raises(PrimitiveError):
            parse_decimal(bad)


@pytest.mark.parametrize(
    "quantity",
    [
        {"value": 7.1, "code": "cm", "system": UCUM},
        {"value": 80, "code": "kg"},
        {"value": -0.0, "code": "kg"},
        {"value": 2.5, "unit": "lbs"},  # text only: the general reader
        {"value": 2.5, "code": "", "unit": "kg"},
        {"value": 3, "code": "kg", "system": "http://example.org/units"},
        {"value": "3", "code": "kg"},
        {"value": float("inf"), "code": "kg"},
        {"value": True, "code": "kg"},
        {"code": "kg"},
        [1],
    ],
)
def test_coded_quantity_agrees_with_read_quantity(quantity: object) -> None:
    fast = coded_quantity(quantity)
    try:
        general: tuple[Decimal, str | None] | ExcludedError = read_quantity(quantity, "q")
    except ExcludedError as exc:
        general = exc
    if fast is None:
        return  # read by read_quantity itself
    assert not isinstance(general, ExcludedError)
    assert (str(fast[0]), fast[1]) == (str(general[0]), general[1])


def test_time_elements_in_turn_and_at_their_precision() -> None:
    elements = TimeElements.of("effectiveDateTime", "effectivePeriod.start")
    period = {"effectivePeriod": {"start": "2024-01-02"}}
    when, date_only, key = first_time(period, elements, "O")
    assert (when.isoformat(), date_only, key) == (
        "2024-01-02T00:00:00+00:00",
        True,
        "effectivePeriod.start",
    )
    assert first_fhir_time(period, elements, "O").isoformat() == "2024-01-02"
    instant = {"effectiveDateTime": "2024-01-02T10:00:00+01:00", "effectivePeriod": {"start": "x"}}
    assert first_fhir_time(instant, elements, "O").isoformat() == "2024-01-02T10:00:00+01:00"
    with pytest.raises(ExcludedError) as missing:
        first_fhir_time({}, elements, "O")
    assert (missing.value.message, missing.value.path) == (
        "no effectiveDateTime or effectivePeriod.start",
        "O",
    )
    for bad, message in (("2024", "a partial date"), (5, "not a FHIR dateTime")):
        with pytest.raises(ExcludedError) as refused:
            first_fhir_time({"effectiveDateTime": bad}, elements, "O")
        assert refused.value.message.startswith(f"effectiveDateTime: {message}")
        assert refused.value.path == "O.effectiveDateTime"


@pytest.mark.parametrize("what", ["dose", "rate"])
@pytest.mark.parametrize(
    "quantity",
    [
        {"value": 842, "code": "mL", "system": UCUM},
        {"value": 30.5, "code": "g"},
        {"value": 0.4, "code": "g/kg"},
        {"value": 60, "code": "mL/h"},
        {"value": 2.5, "code": "mg/kg/min"},
        {"value": 1.0, "code": "[lb_av]"},  # converts to none of the targets
        {"value": 5, "code": "furlongs"},  # not UCUM
        {"value": 5, "unit": "mL/hr"},  # text only: the general reader
        {"value": 5, "code": "mL", "system": "http://example.org/units"},
        {"value": "5", "code": "mL"},
        {"code": "mL"},
        [5],
    ],
)
def test_coded_amount_agrees_with_the_dose_and_rate_readers(what: str, quantity: object) -> None:

    reader = Extractor(terminology())
    general_read = reader._dose if what == "dose" else reader._rate
    fast = _coded_amount(quantity, _DOSE_UNITS if what == "dose" else _RATE_UNITS)
    try:
        general: tuple[str, Decimal] | ExcludedError = general_read(quantity, "q")
    except ExcludedError as exc:
        general = exc
    if fast is None:
        return  # read (and reported) by the general reader itself
    assert not isinstance(general, ExcludedError)
    assert (fast[0], str(fast[1])) == (general[0], str(general[1]))


def test_the_estrogen_answer_is_kept_per_codings_list_not_per_address() -> None:

    reader = Extractor(terminology())
    index = reader._risk[next(k for k in reader._risk if k.value == "estrogen")]
    estrogen = next(iter(index.codes))  # a coding the ValueSet lists
    yes: list[tuple[str | None, str | None]] = [estrogen]
    no: list[tuple[str | None, str | None]] = [("http://loinc.org", "2157-6")]
    assert reader._is_estrogen(yes) is True
    assert reader._is_estrogen(yes) is True  # remembered
    assert reader._is_estrogen(no) is False
    # a list at a reused address is not taken for the one remembered there
    reader._estrogen_codings[id(no)] = (yes, True)
    assert reader._is_estrogen(no) is False
