"""A patient recorded deceased with no date (``deceasedBoolean: true``) and no dated record used
(session s36, helper clitidy).

"Now" for the current risk factors is then the start of today (no record, no death date to
take it from), and the patient was aged to today: born 1960 and dead at an unknown time, the
patient was "advanced age" (clinical spec §5.1: age ≥ 65), a thrombosis risk factor citing the
Patient. The age at the evaluation's time is unknown (the death may be decades ago): advanced
age is not assessable, said with why (``tee-risk-unassessed``, a missing-data note), as for a
patient with no birth date. A patient too young today for advanced age is surely not of it; a
dated record keeps "now" at that record (the patient's age then is known); a dated death keeps
the earlier fix (aged to the death)."""

from __future__ import annotations

import orjson

from fhirtis.clinical.facts import RiskFactorKind
from fhirtis.clinical.thrombosis import RiskProfile
from fhirtis.pipeline.offline import evaluate_bundle_bytes
from fhirtis.settings import Settings

AGE = RiskFactorKind.ADVANCED_AGE
UCUM = "http://unitsofmeasure.org"


def _bundle(*resources: dict[str, object]) -> bytes:
    entries = [{"fullUrl": f"urn:uuid:{r['id']}", "resource": r} for r in resources]
    return orjson.dumps({"resourceType": "Bundle", "type": "collection", "entry": entries})


def _patient(birth: str = "1960-04-13", **extra: object) -> dict[str, object]:
    return {"resourceType": "Patient", "id": "p1", "gender": "male", "birthDate": birth, **extra}


def _current(raw: bytes) -> RiskProfile:
    return evaluate_bundle_bytes(raw, "test", Settings()).evaluation.thrombosis.current


def test_deceased_with_no_date_is_not_aged_to_today() -> None:
    current = _current(_bundle(_patient(deceasedBoolean=True)))
    assert AGE not in {f.kind for f in current.factors}
    unassessed = {u.kind: u.reason for u in current.unassessed}
    assert AGE in unassessed, current
    assert "no date of death" in unassessed[AGE]


def test_the_note_says_why() -> None:
    result = evaluate_bundle_bytes(_bundle(_patient(deceasedBoolean=True)), "test", Settings())
    notes = [n.message for n in result.evaluation.thrombosis.current.notes]
    assert any("no date of death" in t and "advanced age" in t for t in notes), notes


def test_a_patient_too_young_today_is_surely_not_of_advanced_age() -> None:
    current = _current(_bundle(_patient(birth="2000-01-01", deceasedBoolean=True)))
    assert AGE not in {f.kind for f in current.factors}
    assert AGE not in {u.kind for u in current.unassessed}


def test_a_living_patient_is_still_aged_to_today() -> None:
    assert AGE in {f.kind for f in _current(_bundle(_patient())).factors}


def test_a_dated_record_keeps_the_age_at_that_record() -> None:
    weight = {
        "resourceType": "Observation",
        "id": "w1",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "29463-7"}]},
        "subject": {"reference": "Patient/p1"},
        "effectiveDateTime": "2025-05-01",
        "valueQuantity": {"value": 80, "unit": "kg", "system": UCUM, "code": "kg"},
    }
    current = _current(_bundle(_patient(deceasedBoolean=True), weight))
    assert AGE in {f.kind for f in current.factors}
