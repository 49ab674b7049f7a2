"""JSON of the wrong shape where FHIR has an array or a code (a number for Medication.ingredient,
``true`` for contained, a list for an id or a status …), each found by damaging corpus Bundles at
random: the patient is still evaluated, derived and summarised; what cannot be read is passed
over or excluded with an issue, never a TypeError or AttributeError that loses the patient."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from fhirtis.fhir.bundle import read_patient_bundle
from fhirtis.pipeline.jsonout import dumps
from fhirtis.pipeline.offline import PatientResult, evaluate_patient_resources
from fhirtis.pipeline.records import patient_summary
from fhirtis.settings import Settings
from tests.fhir import builders as b

Json = dict[str, Any]

START = "2024-03-04T09:00:00Z"


def _evaluate(*resources: Json) -> PatientResult:
    raw = orjson.dumps(b.bundle(b.patient(), *resources))
    result = evaluate_patient_resources(read_patient_bundle(raw), Settings())
    result.plan()
    dumps(patient_summary(result.patient_ref, result.evaluation, result.issues))
    return result


def _infusion(**extra: Any) -> Json:
    return b.administration("a1", START, "2024-03-04T13:00:00Z", dose=b.qty(700, "mL"), **extra)


def _panel(member: Json) -> Json:
    """A vital-signs panel whose weight is a contained member (R4 vitals hasMember)."""
    return {
        **b.obs("vs", "85353-1", 0, "1", "2024-03-01", system=b.LOINC),
        "valueQuantity": None,
        "contained": [member],
        "hasMember": [{"reference": "#m"}],
    }


def _weight(**changes: Any) -> Json:
    return {**b.obs("m", "29463-7", 70, "kg", "2024-03-01", system=b.LOINC), **changes}


CASES: dict[str, tuple[Json, ...]] = {
    "Medication.ingredient a number": (
        {**b.medication(), "ingredient": 5},
        _infusion(),
    ),
    "Medication.meta a string": ({**b.medication(), "meta": "v1"}, _infusion()),
    "contained true, medication by #reference": (
        _infusion(contained=True, medicationReference={"reference": "#med"}),
    ),
    "panel member with a list as id": (_panel(_weight(id=["m"])),),
    "panel member with a list as status": (_panel(_weight(id="m", status=["final"])),),
    "panel component a number": ({**_panel(_weight()), "component": 3, "hasMember": 4},),
    "AdverseEvent.resultingCondition a number": (
        b.medication(),
        _infusion(),
        {
            "resourceType": "AdverseEvent",
            "id": "ae",
            "actuality": "actual",
            "event": {"coding": [{"system": b.SCT, "code": "128053003"}]},
            "subject": {"reference": "Patient/p1"},
            "date": "2024-03-05",
            "resultingCondition": 7,
        },
    ),
    "Medication.code.coding a number": (
        {**b.medication(), "code": {"coding": 1.5, "text": "Privigen 10%"}},
        _infusion(),
    ),
    "Medication.ingredient's coding a number": (
        {
            **b.medication(),
            "ingredient": [{"itemCodeableConcept": {"coding": 1.5, "text": "immune globulin"}}],
        },
        _infusion(),
    ),
    "coding a number in a medication's name": (
        {
            "resourceType": "MedicationStatement",
            "id": "ms",
            "status": "active",
            "medicationCodeableConcept": {"coding": 1.5, "text": "estradiol 1 mg"},
            "subject": {"reference": "Patient/p1"},
            "effectivePeriod": {"start": "2023-01-01"},
        },
    ),
}


@pytest.mark.parametrize("resources", CASES.values(), ids=CASES.keys())
def test_a_wrongly_shaped_element_never_loses_the_patient(resources: tuple[Json, ...]) -> None:
    result = _evaluate(*resources)
    assert result.patient_ref == "Patient/p1"


def test_a_wrongly_shaped_ingredient_leaves_the_grams_unknown_and_says_why() -> None:
    result = _evaluate({**b.medication(), "ingredient": 5}, _infusion())
    [administration] = result.data.administrations
    assert administration.dose_ml is not None and administration.concentration_mg_per_ml is None
    [cycle] = result.evaluation.exposure.cycles
    assert cycle.grams is None


def test_a_panel_member_with_a_list_as_status_is_excluded_naming_the_status() -> None:
    result = _evaluate(_panel(_weight(id="m", status=["final"])))
    assert result.data.weights == []
    [issue] = [i for i in result.issues if i.severity == "error"]
    assert issue.expression is not None and issue.expression.endswith(".hasMember[0].status")


@pytest.mark.parametrize("reference", ["Medication/octa", ["Medication/octa"], {"display": "x"}])
def test_a_malformed_medication_reference_is_named_as_such(reference: object) -> None:
    """A medicationReference that is not a Reference is malformed, and one without a reference
    text cannot be resolved; neither is absent: the issue says which, at the element."""
    result = _evaluate(b.medication(), _infusion(medicationReference=reference))
    [issue] = [i for i in result.issues if i.resource == "MedicationAdministration/a1"]
    assert issue.severity == "error"
    assert issue.expression is not None and issue.expression.endswith(".medicationReference")
    expected = "has no reference" if isinstance(reference, dict) else "is not a Reference"
    assert f"medicationReference {expected}" in issue.diagnostics


@pytest.mark.parametrize("element", ["2024-03-04T09:00:00Z", ["2024-03-04T09:00:00Z"]])
def test_a_period_that_is_not_an_object_is_refused_not_read_as_its_start(element: object) -> None:
    """``effectivePeriod: "2024-03-04T…"`` is malformed FHIR (a Period is an object): guessing
    that the text is the start (or the end) would be a silent guess about when a dose was
    given. The administration is excluded, naming the element."""
    infusion = _infusion()
    del infusion["effectivePeriod"]
    result = _evaluate(b.medication(), {**infusion, "effectivePeriod": element})
    assert result.data.administrations == []
    [issue] = [i for i in result.issues if i.severity == "error"]
    assert issue.expression == "Bundle.entry[2].resource.effectivePeriod"
    assert "not an object" in issue.diagnostics
