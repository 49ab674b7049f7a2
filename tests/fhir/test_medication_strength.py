"""A Medication strength fhirtis cannot read makes only the concentration unknown (spec §4: "an
unknown unit makes only that value unknown (e.g. the rate), never the whole administration";
"Unknown concentration: grams unknown, with that reason"). It excluded every administration of
the product, including those whose dose is recorded in grams."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import orjson
import pytest

from fhirtis.fhir.bundle import read_patient_bundle
from fhirtis.pipeline.offline import evaluate_patient_resources
from fhirtis.settings import Settings
from tests.fhir.builders import administration, bundle, medication, patient, qty

Json = dict[str, Any]
V3_FORM = "http://terminology.hl7.org/CodeSystem/v3-orderableDrugForm"


def _per_vial() -> Json:
    """HL7 R4 Medication examples 0304/0308/0309: a strength per VIAL (v3-orderableDrugForm)."""
    return {"value": 1, "system": V3_FORM, "code": "VIAL", "unit": "vial"}


STRENGTHS: dict[str, Json] = {
    "per VIAL": {"numerator": qty(10, "g"), "denominator": _per_vial()},
    "unit text 'gram(s)'": {
        "numerator": {"value": 10, "unit": "gram(s)"},
        "denominator": qty(100, "mL"),
    },
    "no denominator": {"numerator": qty(10, "g")},
    "denominator 0": {"numerator": qty(10, "g"), "denominator": qty(0, "mL")},
}


def _evaluate(strength: Json) -> Any:
    med = medication()
    med["ingredient"][0]["strength"] = strength
    resources = [
        patient(),
        {
            "resourceType": "Observation",
            "id": "w",
            "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": "29463-7"}]},
            "subject": {"reference": "Patient/p1"},
            "effectiveDateTime": "2024-03-01T08:00:00Z",
            "valueQuantity": qty(70, "kg"),
        },
        med,
        administration(
            "ma1",
            "2024-03-04T09:00:00Z",
            "2024-03-04T14:00:00Z",
            dose=qty(70, "g"),
            rate=qty(120, "mL/h"),
        ),
        administration(
            "ma2",
            "2024-03-05T09:00:00Z",
            "2024-03-05T14:00:00Z",
            dose=qty(700, "mL"),
            rate=qty(120, "mL/h"),
        ),
    ]
    pr = read_patient_bundle(orjson.dumps(bundle(*resources)))
    return evaluate_patient_resources(pr, Settings())


@pytest.mark.parametrize("case", sorted(STRENGTHS))
def test_an_unreadable_strength_leaves_the_administrations_counted(case: str) -> None:
    result = _evaluate(STRENGTHS[case])
    exposure = result.evaluation.exposure
    assert exposure.administration_count == 2  # neither is excluded
    (cycle,) = exposure.cycles
    by_source = {a.administration.source: a for a in cycle.administrations}
    given_in_grams = by_source["MedicationAdministration/ma1"]
    assert given_in_grams.grams == Decimal(70)  # needs no concentration
    assert given_in_grams.rate_mg_kg_min is None  # mL/h needs one
    given_in_ml = by_source["MedicationAdministration/ma2"]
    assert given_in_ml.grams is None
    assert any(n.code == "concentration-unknown" for n in given_in_ml.notes)
    assert cycle.grams is None and exposure.cumulative_grams_known == Decimal(70)
    # said once per administration, as a warning at the strength, not an exclusion
    said = [i for i in result.issues if "concentration is unknown" in i.diagnostics]
    assert {i.severity for i in said} == {"warning"}
    assert len(said) == 2 and all("strength" in i.expression for i in said)
    assert not [i for i in result.issues if i.severity in {"error", "fatal"}]
