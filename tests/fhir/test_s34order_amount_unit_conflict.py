"""An administration's rate or dose whose ``unit`` text and UCUM ``code`` disagree (clinical
spec §4: UCUM code first; §5.2: an administration above the maximum is a finding).

``unit`` "mL/kg/h" with ``code`` "mL/h" (a sending system's unit mapping that drops the
"per kg") was read as the code alone says: 4 mL/kg/h (6.67 mg/kg/min of a 10 % product) became
4 mL/h (0.1 mg/kg/min) and no rate finding was made; "2 g/kg" coded "g" became 2 g. Such a
value is now unknown, with a warning saying why (the administration still counts), never
misread. A unit text that is an alias of the code ("mL/hr" for "mL/h") or no UCUM unit at all
("milliliters per hour") leaves the code as it was."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from fhirtis.fhir.extract.common import PatientData
from fhirtis.fhir.orders import draft_medication_requests, read_ivig_order
from fhirtis.pipeline.offline import extractor_for
from fhirtis.settings import Settings
from tests.fhir.builders import LOINC, administration, medication, obs, patient

UCUM = "http://unitsofmeasure.org"
G = {"value": 70, "unit": "g", "system": UCUM, "code": "g"}


def _q(value: float, unit: str, code: str) -> dict[str, Any]:
    return {"value": value, "unit": unit, "system": UCUM, "code": code}


def _said(data: PatientData, what: str) -> bool:
    return any("disagree" in i.diagnostics and what in i.diagnostics for i in data.issues)


def _read(**dosage: Any) -> PatientData:
    resources = [
        patient(),
        medication(),
        obs("w1", "29463-7", 70, "kg", "2024-01-01", system=LOINC),
        administration("a1", "2024-01-02T08:00:00Z", "2024-01-02T12:00:00Z", **dosage),
    ]
    listed = [(f"{r['resourceType']}/{r['id']}", r) for r in resources]
    return extractor_for(Settings()).extract("Patient/p1", listed, dict(listed))


@pytest.mark.parametrize(
    "rate",
    [
        _q(4, "mL/kg/h", "mL/h"),
        _q(4, "mL/kg/hr", "mL/h"),
        _q(2, "mL/min", "mL/h"),
        _q(300, "mL/h", "mL/kg/h"),
        _q(4, "milliliters per hour", "mL/kg/h"),  # no UCUM text, but not per kg
    ],
)
def test_a_rate_whose_unit_and_code_disagree_is_unknown_and_said(rate: dict[str, Any]) -> None:
    data = _read(dose=G, rate=rate)
    (admin,) = data.administrations
    assert admin.rate_ml_per_h is None and admin.rate_ml_per_kg_per_h is None
    assert admin.dose_g == 70  # only the rate is unknown
    assert _said(data, "rate is unknown")


def test_a_per_kg_dose_coded_in_grams_is_unknown_and_said() -> None:
    data = _read(dose=_q(2, "g/kg", "g"), rate=_q(100, "mL/h", "mL/h"))
    (admin,) = data.administrations
    assert admin.dose_g is None and admin.dose_g_per_kg is None
    assert admin.rate_ml_per_h == 100
    assert _said(data, "dose is unknown")


@pytest.mark.parametrize(
    ("rate", "ml_h"),
    [
        (_q(300, "mL/hr", "mL/h"), Decimal(300)),
        (_q(300, "ml/hr", "mL/h"), Decimal(300)),
        (_q(300, "milliliters per hour", "mL/h"), Decimal(300)),
    ],
)
def test_a_unit_text_that_agrees_or_is_no_ucum_unit_leaves_the_code(
    rate: dict[str, Any], ml_h: Decimal
) -> None:
    data = _read(dose=G, rate=rate)
    (admin,) = data.administrations
    assert admin.rate_ml_per_h == ml_h
    assert not any("disagree" in i.diagnostics for i in data.issues)


def test_a_draft_order_reads_its_rate_the_same_way() -> None:
    order = {
        "resourceType": "MedicationRequest",
        "id": "rx1",
        "status": "draft",
        "intent": "order",
        "subject": {"reference": "Patient/p1"},
        "contained": [medication("m")],
        "medicationReference": {"reference": "#m"},
        "dosageInstruction": [{"doseAndRate": [{"rateQuantity": _q(4, "mL/kg/h", "mL/h")}]}],
    }
    ((ref, request),) = draft_medication_requests({"entry": [{"resource": order}]})
    read = read_ivig_order(extractor_for(Settings()), ref, request, {})
    assert read is not None and read.rates == ()
    (problem,) = read.rate_problems
    assert "disagree" in problem


@pytest.mark.parametrize("unit", ["mL/kg/hr", "milliliter per kilogram per hour", "ML/KG/HR"])
def test_a_per_kg_unit_text_agrees_with_a_per_kg_code(unit: str) -> None:
    data = _read(dose=G, rate=_q(2, unit, "mL/kg/h"))
    (admin,) = data.administrations
    assert admin.rate_ml_per_kg_per_h == 2
    assert not any("disagree" in i.diagnostics for i in data.issues)
