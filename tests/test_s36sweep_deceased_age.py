"""A patient recorded deceased is not aged past the death (sweep s36).

smart-on-fhir/sample-bulk-fhir-datasets, branch ``10-patients`` (Synthea R4 bulk export),
``Patient.000.ndjson``: Patient ``3af3708d-41f1-cd80-f3dd-ec5ac76072bf``, ``birthDate``
1960-04-13, ``deceasedDateTime`` 1971-10-01T13:44:40-04:00; its Conditions, Device,
MedicationRequests and Procedures code nothing fhirtis uses (the repository keeps the patient as
``tests/data/published/synthea/patient-3af3708d.json``). With no dated record used, "now" for the
current risk factors was the start of today, so the boy who died at 11 was 66: ``fhirtis evaluate``
and the cohort summary said "TEE risk factors: advanced-age" (clinical spec §5.1: advanced age
≥ 65), cited the Patient, and lowered the maximum rate to 3.3 mg/kg/min. The record shows no
such factor: the patient's age ends at the death. "Now" is then the death's time."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import orjson

from fhirtis.clinical.facts import RiskFactorKind
from fhirtis.pipeline.offline import evaluate_bundle_bytes
from fhirtis.settings import Settings

SYNTHEA = Path(__file__).parent / "data" / "published" / "synthea" / "patient-3af3708d.json"


def _bundle(patient: dict[str, object]) -> bytes:
    entry = {"fullUrl": f"urn:uuid:{patient['id']}", "resource": patient}
    return orjson.dumps({"resourceType": "Bundle", "type": "collection", "entry": [entry]})


def _patient(**extra: object) -> dict[str, object]:
    """The published Patient's shape, reduced to what the evaluation reads."""
    return {
        "resourceType": "Patient",
        "id": "3af3708d-41f1-cd80-f3dd-ec5ac76072bf",
        "gender": "male",
        "birthDate": "1960-04-13",
        **extra,
    }


def _factors(raw: bytes) -> set[RiskFactorKind]:
    result = evaluate_bundle_bytes(raw, "synthea", Settings())
    return {f.kind for f in result.evaluation.thrombosis.current.factors}


def test_a_child_who_died_is_not_of_advanced_age() -> None:
    raw = _bundle(_patient(deceasedDateTime="1971-10-01T13:44:40-04:00"))
    result = evaluate_bundle_bytes(raw, "synthea", Settings())
    assert result.evaluation.as_of == datetime.fromisoformat("1971-10-01T13:44:40-04:00")
    assert RiskFactorKind.ADVANCED_AGE not in _factors(raw)


def test_the_published_synthea_patient() -> None:
    assert RiskFactorKind.ADVANCED_AGE not in _factors(SYNTHEA.read_bytes())


def test_a_death_recorded_as_a_date_counts_to_the_end_of_that_day() -> None:
    raw = _bundle(_patient(deceasedDateTime="1971-10-01"))
    result = evaluate_bundle_bytes(raw, "synthea", Settings())
    assert result.evaluation.as_of == datetime(1971, 10, 1, 23, 59, 59, 999999, tzinfo=UTC)


def test_a_patient_who_died_old_keeps_the_factor() -> None:
    raw = _bundle(_patient(birthDate="1930-04-13", deceasedDateTime="2010-01-18"))
    assert RiskFactorKind.ADVANCED_AGE in _factors(raw)


def test_a_living_patient_is_aged_to_today() -> None:
    raw = _bundle(_patient(birthDate="1950-04-13"))
    assert RiskFactorKind.ADVANCED_AGE in _factors(raw)
