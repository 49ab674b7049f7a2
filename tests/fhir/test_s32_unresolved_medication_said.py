"""A medication record whose Medication cannot be resolved is said, on every path.

Clinical spec §4: what "cannot be used (unknown route, unknown amount, an unresolvable
Medication) is reported, never ignored silently". ``fhirtis cohort`` (registry
``missing_shared``) and ``fhirtis run`` (pull) already said "its Medication (…) is not in the
input" / "could not be read" as information for a Medication that names no immune globulin;
``fhirtis evaluate`` of the same patient's Bundle said nothing (found by the cross-path audit
s32bulk): an IVIG administration whose Medication resource was left out of the Bundle (and
whose reference carries no display) vanished, no cycle, no word. A MedicationStatement of an
estrogen so recorded likewise (no risk factor, no word). Now an information issue names each
(an error where it looks like an immune globulin, as before); a void record (not given,
entered in error) is not one to report. The server and registry paths keep one issue per
record (tests/fhir/test_extract.py, the test of a Medication the server could not fetch).
"""

from __future__ import annotations

from fhirtis.fhir.extract import PatientData
from tests.fhir.builders import PATIENT, administration, patient, qty
from tests.fhir.reading import extract


def _issues(data: PatientData) -> list[tuple[str, str, str | None]]:
    return [(i.severity, i.code, i.resource) for i in data.issues]


def test_an_administration_of_an_unresolvable_medication_is_said() -> None:
    given = administration("a1", "2024-01-03", med="Medication/absent", dose=qty(60, "g"))
    data = extract(patient(), given)
    assert data.administrations == []
    assert _issues(data) == [("information", "not-found", "MedicationAdministration/a1")]
    [issue] = data.issues
    assert "Medication/absent" in issue.diagnostics
    assert issue.expression is not None and issue.expression.endswith(".medicationReference")


def test_a_void_administration_of_an_unresolvable_medication_is_not_said() -> None:
    void = administration(
        "a1", "2024-01-03", med="Medication/absent", dose=qty(60, "g"), status="entered-in-error"
    )
    assert extract(patient(), void).issues == []


def test_a_statement_of_an_unresolvable_medication_is_said() -> None:
    statement = {
        "resourceType": "MedicationStatement",
        "id": "s1",
        "status": "active",
        "medicationReference": {"reference": "Medication/absent"},
        "subject": {"reference": PATIENT},
        "effectiveDateTime": "2024-01-01",
    }
    data = extract(patient(), statement)
    assert data.evidence == []
    assert _issues(data) == [("information", "not-found", "MedicationStatement/s1")]
    stopped = {**statement, "status": "not-taken"}
    assert extract(patient(), stopped).issues == []
