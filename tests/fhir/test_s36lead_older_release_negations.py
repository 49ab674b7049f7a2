"""Negations of earlier FHIR releases in resources read as R4 (found by the s36 version audit).

A server of another release is refused since s36 (its CapabilityStatement's ``fhirVersion``);
a Bundle or NDJSON file says no version, and data converted from STU3 or DSTU2 (or an interface
that kept its old fields) carries their "not done" flags, which R4 replaced by a status:

* STU3 MedicationAdministration ``notGiven`` (boolean, "Set this to true if the record is saying
  that the medication was NOT administered"; https://hl7.org/fhir/STU3/medicationadministration.html),
  DSTU2 ``wasNotGiven`` (https://hl7.org/fhir/DSTU2/medicationadministration.html): R4 says it
  with status ``not-done``;
* STU3 MedicationStatement ``taken`` (code y | n | unk | na: "n" is not taken;
  https://hl7.org/fhir/STU3/medicationstatement.html) and DSTU2 ``wasNotTaken`` (boolean):
  R4 status ``not-taken``;
* STU3 Procedure ``notDone`` (boolean), DSTU2 ``notPerformed`` (boolean): R4 status
  ``not-done``.

Each is a modifier element in its release (isModifier: it changes the meaning of the resource).
Read as R4, the flag was an unknown element and ignored: a 35 g infusion "NOT administered" was
counted as given (the cycle's grams and g/kg, the rate checked), an estrogen "not taken" was a
thrombosis risk factor (the maximum rate lowered to 3.3). As R4 says of an unknown modifier
(extensibility.html#modifierExtension: an application SHALL NOT process the element as if the
modifier were absent), such a resource is not used, with an error naming where; the same
fields saying "done" (``notGiven: false``, ``taken: "y"``) change nothing.
"""

from __future__ import annotations

from typing import Any

import pytest

from fhirtis.clinical.facts import RiskFactorKind
from tests.fhir.builders import administration, medication, patient, qty
from tests.fhir.reading import extract

Json = dict[str, Any]
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"


def _infusion(**extra: Any) -> Json:
    return administration(
        "ma1",
        "2024-03-02T12:00:00Z",
        "2024-03-02T16:00:00Z",
        dose=qty(35, "g"),
        rate=qty(175, "mL/h"),
        **extra,
    )


def _estradiol(**extra: Any) -> Json:
    return {
        "resourceType": "MedicationStatement",
        "id": "ms",
        "status": "active",
        "medicationCodeableConcept": {
            "coding": [{"system": RXNORM, "code": "999999", "display": "Estradiol 1 MG Tablet"}]
        },
        "subject": {"reference": "Patient/p1"},
        "effectivePeriod": {"start": "2023-01-01"},
        **extra,
    }


def _line(**extra: Any) -> Json:
    """A central venous access insertion (CPT 36556): a catheter, a thrombosis risk factor."""
    return {
        "resourceType": "Procedure",
        "id": "cvc",
        "status": "completed",
        "code": {"coding": [{"system": "http://www.ama-assn.org/go/cpt", "code": "36556"}]},
        "subject": {"reference": "Patient/p1"},
        "performedDateTime": "2024-03-01",
        **extra,
    }


@pytest.mark.parametrize(("field", "value"), [("notGiven", True), ("wasNotGiven", True)])
def test_an_administration_not_given_in_an_earlier_release_is_not_counted(
    field: str, value: object
) -> None:
    data = extract(patient(), medication(), _infusion(**{field: value}))
    assert data.administrations == []
    (issue,) = [i for i in data.issues if i.resource == "MedicationAdministration/ma1"]
    assert issue.severity == "error"
    assert issue.expression == f"Bundle.entry[2].resource.{field}"
    assert field in issue.diagnostics and "R4" in issue.diagnostics


@pytest.mark.parametrize(("field", "value"), [("taken", "n"), ("wasNotTaken", True)])
def test_an_estrogen_not_taken_in_an_earlier_release_is_no_risk_factor(
    field: str, value: object
) -> None:
    data = extract(patient(), _estradiol(**{field: value}))
    assert [e for e in data.evidence if e.kind is RiskFactorKind.ESTROGEN] == []
    assert any(
        i.resource == "MedicationStatement/ms" and i.expression.endswith(f".{field}")
        for i in data.issues
    )


@pytest.mark.parametrize(("field", "value"), [("notDone", True), ("notPerformed", True)])
def test_a_procedure_not_done_in_an_earlier_release_is_no_catheter(
    field: str, value: object
) -> None:
    data = extract(patient(), _line(**{field: value}))
    assert data.evidence == []
    assert any(i.resource == "Procedure/cvc" for i in data.issues)


def test_the_same_flags_saying_done_change_nothing() -> None:
    data = extract(
        patient(),
        medication(),
        _infusion(notGiven=False),
        _estradiol(taken="y"),
        _line(notDone=False),
    )
    assert [a.source for a in data.administrations] == ["MedicationAdministration/ma1"]
    assert sorted(e.kind.value for e in data.evidence) == ["central-venous-catheter", "estrogen"]
    assert data.issues == []
