"""An Observation's value whose ``unit`` text and UCUM ``code`` disagree (clinical spec §4:
"never guess silently"; a weight feeds every g/kg, an enzyme the TIS's enzyme measure).

Since s34 a dose or a rate with a disagreeing unit text and code is unknown, said; the values of
Observations (weights, heights, enzymes, VAS lengths) still read the code alone: a weight shown
as "70 kg" but coded ``[lb_av]`` became 31.75 kg (every g/kg more than doubled), a CK shown
"250 U/L" but coded ``ukat/L`` became 15,000 U/L. Such a value is now not read, with the reason,
as a dose is. What a unit text that agrees looks like in published data stays as it was:
US Core's body weight example (``"lbs"`` coded ``[lb_av]``), HL7 v2-bridged capitals
(``"KG"``), enzyme texts ``"IU/L"`` coded ``U/L``, a height in feet written ``"ft"`` (UCUM's
``ft`` is a femtotonne; the text means ``[ft_i]``), and a score's scale written as its unit
text (``"/150"`` coded ``{score}``: the instrument comes from the code, clinical spec §6)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from fhirtis.fhir.extract.common import PatientData
from fhirtis.pipeline.offline import extractor_for
from fhirtis.settings import Settings
from tests.fhir.builders import LOINC, UCUM, obs, patient


def _q(value: float, unit: str, code: str) -> dict[str, Any]:
    return {"value": value, "unit": unit, "system": UCUM, "code": code}


def _read(*resources: dict[str, Any]) -> PatientData:
    listed = [(f"{r['resourceType']}/{r['id']}", r) for r in (patient(), *resources)]
    return extractor_for(Settings()).extract("Patient/p1", listed, dict(listed))


def _said(data: PatientData, source: str) -> bool:
    return any("disagree" in i.diagnostics and source == i.resource for i in data.issues)


def _weight(quantity: dict[str, Any]) -> dict[str, Any]:
    return obs("w1", "29463-7", 0, "kg", "2024-01-01", system=LOINC, valueQuantity=quantity)


def _height(quantity: dict[str, Any]) -> dict[str, Any]:
    return obs("h1", "8302-2", 0, "cm", "2024-01-01", system=LOINC, valueQuantity=quantity)


@pytest.mark.parametrize(
    "quantity",
    [
        _q(70, "kg", "[lb_av]"),  # shown kg, coded pounds: 31.75 kg
        _q(154, "lb", "kg"),  # shown pounds, coded kg: 154 kg
        _q(70000, "g", "kg"),  # shown grams, coded kg
    ],
)
def test_a_weight_whose_unit_and_code_disagree_is_not_read_and_said(
    quantity: dict[str, Any],
) -> None:
    data = _read(_weight(quantity))
    assert data.weights == []
    assert _said(data, "Observation/w1")


def test_a_height_shown_in_cm_but_coded_in_inches_is_not_read() -> None:
    data = _read(_height(_q(170, "cm", "[in_i]")))
    assert data.heights == []
    assert _said(data, "Observation/h1")


def test_an_enzyme_shown_in_u_per_l_but_coded_in_microkatal_is_not_read() -> None:
    ck = obs("ck1", "2157-6", 0, "U/L", "2024-01-01", system=LOINC)
    ck["valueQuantity"] = _q(250, "U/L", "ukat/L")
    data = _read(ck)
    assert [m for m in data.measures if m.source.startswith("Observation/ck1")] == []
    assert _said(data, "Observation/ck1")


@pytest.mark.parametrize(
    ("quantity", "kg"),
    [
        (_q(154, "lbs", "[lb_av]"), Decimal("69.85322498")),  # US Core's weight example
        (_q(70, "KG", "kg"), Decimal(70)),
        (_q(70, "kilograms", "kg"), Decimal(70)),  # no UCUM text: the code
        (_q(70, "kg", "kg"), Decimal(70)),
    ],
)
def test_a_weight_whose_unit_text_agrees_is_read_as_before(
    quantity: dict[str, Any], kg: Decimal
) -> None:
    data = _read(_weight(quantity))
    (weight,) = data.weights
    assert weight.kg == kg
    assert not _said(data, "Observation/w1")


def test_a_height_in_feet_written_ft_is_read() -> None:
    data = _read(_height(_q(5.5, "ft", "[ft_i]")))
    (height,) = data.heights
    assert height.cm == Decimal("167.64")


def test_an_enzyme_text_iu_per_l_coded_u_per_l_is_read() -> None:
    ck = obs("ck1", "2157-6", 0, "U/L", "2024-01-01", system=LOINC)
    ck["valueQuantity"] = _q(250, "IU/L", "U/L")
    data = _read(ck)
    (m,) = [m for m in data.measures if m.source.startswith("Observation/ck1")]
    assert m.value == 250


def test_a_score_with_its_scale_as_unit_text_is_read() -> None:
    mmt = obs("m1", "mmt8-150", 0, "{score}", "2024-01-01")
    mmt["valueQuantity"] = _q(120, "/150", "{score}")
    data = _read(mmt)
    (m,) = [m for m in data.measures if m.source.startswith("Observation/m1")]
    assert m.value == 120
