"""Clinical spec §4/§5.2 rate units at the 4 mg/kg/min edge, through FHIR (s29 audit).

70 kg, 10 % product (100 mg/mL): 4 mg/kg/min = 168 mL/h = 2.8 mL/min = 16.8 g/h."""

from __future__ import annotations

import json
from typing import Any

import pytest

from fhirtis.fhir.bundle import read_patient_bundle
from fhirtis.pipeline.offline import PatientResult, evaluate_patient_resources
from fhirtis.settings import Settings
from tests.fhir.builders import (
    LOINC,
    SCT,
    administration,
    bundle,
    condition,
    medication,
    obs,
    patient,
    qty,
)

Json = dict[str, Any]


def _evaluate(*resources: Json) -> PatientResult:
    dm = condition("dm", SCT, "396230008", "2023-06-01")
    raw = json.dumps(bundle(patient(), dm, medication(), *resources))
    return evaluate_patient_resources(read_patient_bundle(raw), Settings())


def _flagged(dosage: Json) -> bool:
    a = administration("a", "2024-01-09T09:00:00Z", "2024-01-09T13:00:00Z", dose=qty(350, "mL"))
    a["dosage"].update(dosage)
    r = _evaluate(obs("w", "29463-7", 70, "kg", "2024-01-08", system=LOINC), a)
    return any(d.resource["resourceType"] == "DetectedIssue" for d in r.derived)


def _ratio(ml: Any, minutes: Any) -> Json:
    return {
        "rateRatio": {
            "numerator": qty(ml, "mL"),
            "denominator": qty(minutes, "min"),
        }
    }


@pytest.mark.parametrize(
    ("dosage", "flagged"),
    [
        ({"rateQuantity": qty(2.8, "mL/min")}, False),
        ({"rateQuantity": qty(2.81, "mL/min")}, True),
        ({"rateQuantity": qty(16.8, "g/h")}, False),
        ({"rateQuantity": qty(16.81, "g/h")}, True),
        ({"rateQuantity": {"value": 168, "unit": "mL/hr"}}, False),
        ({"rateQuantity": {"value": 169, "unit": "ml/hr"}}, True),
        (_ratio(168, 60), False),
        (_ratio(169, 60), True),
        (_ratio("2.8", 1), False),
        ({"rateQuantity": qty(240, "mg/kg/h")}, False),
        ({"rateQuantity": qty(241, "mg/kg/h")}, True),
    ],
)
def test_rate_units_at_the_4_mg_kg_min_edge(dosage: Json, flagged: bool) -> None:
    assert _flagged(dosage) is flagged
