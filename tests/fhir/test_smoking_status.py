"""Smoking status Observations (US Core: LOINC 72166-2) → the cardiovascular risk factor
(clinical spec §5.1): a current smoker is one from its date until a later non-smoker status; a
status that cannot be classified is reported and ends nothing."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from fhirtis.clinical.facts import RiskEvidence, RiskFactorKind
from fhirtis.fhir.extract import PatientData
from tests.fhir.builders import LOINC, SCT, patient
from tests.fhir.test_extract import _extract

# the US Core smoking status answers (ValueSet us-core-observation-smokingstatus, HL7/US-Core
# input/Archives/valueset-us-core-observation-smokingstatus.xml)
CURRENT = {
    "449868002": "Current every day smoker",
    "428041000124106": "Current some day smoker",
    "77176002": "Smoker, current status unknown",
    "428071000124103": "Current Heavy tobacco smoker",
    "428061000124105": "Current Light tobacco smoker",
}
NOT_SMOKING = {"8517006": "Former smoker", "266919005": "Never smoker"}
UNKNOWN = {"266927001": "Unknown if ever smoked"}


def _status(sid: str, code: str, day: str, system: str = SCT) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "id": sid,
        "status": "final",
        "code": {"coding": [{"system": LOINC, "code": "72166-2"}]},
        "subject": {"reference": "Patient/p1"},
        "effectiveDateTime": day,
        "valueCodeableConcept": {"coding": [{"system": system, "code": code}]},
    }


def _smoking(data: PatientData) -> list[RiskEvidence]:
    return [e for e in data.evidence if e.kind is RiskFactorKind.CARDIOVASCULAR]


@pytest.mark.parametrize("code", sorted(CURRENT))
def test_a_current_smoker_answer_is_the_risk_factor(code: str) -> None:
    data = _extract(patient(), _status("s", code, "2024-06-01"))
    assert [(e.source, e.start, e.end) for e in _smoking(data)] == [
        ("Observation/s", date(2024, 6, 1), None)
    ]
    assert data.issues == []


def test_cigarette_smoker_is_a_current_smoker() -> None:
    data = _extract(patient(), _status("s", "65568007", "2024-06-01"))
    assert [e.source for e in _smoking(data)] == ["Observation/s"]


def test_a_heavy_smoker_after_a_daily_smoker_does_not_end_it() -> None:
    data = _extract(
        patient(),
        _status("smk1", "449868002", "2024-06-01"),
        _status("smk2", "428071000124103", "2025-02-01"),
    )
    assert sorted((e.source, e.start, e.end) for e in _smoking(data)) == [
        ("Observation/smk1", date(2024, 6, 1), None),
        ("Observation/smk2", date(2025, 2, 1), None),
    ]


@pytest.mark.parametrize("code", sorted(NOT_SMOKING))
def test_a_non_smoker_answer_ends_an_earlier_smoker_status(code: str) -> None:
    data = _extract(
        patient(),
        _status("smk", "449868002", "2023-12-01"),
        _status("quit", code, "2024-01-02"),
    )
    assert [(e.source, e.end) for e in _smoking(data)] == [("Observation/smk", date(2024, 1, 1))]
    assert data.issues == []


@pytest.mark.parametrize("code", sorted(NOT_SMOKING))
def test_a_non_smoker_answer_alone_is_nothing(code: str) -> None:
    data = _extract(patient(), _status("s", code, "2024-01-02"))
    assert _smoking(data) == []
    assert data.issues == []


@pytest.mark.parametrize(
    ("system", "code"),
    [
        (SCT, "266927001"),  # US Core "Unknown if ever smoked"
        (SCT, "FAKE-smoking-finding"),  # made up: a SNOMED CT code no ValueSet lists
        ("http://loinc.org", "LA18980-5"),  # LOINC "Unknown if ever smoked" (IPS answer list)
        ("http://example.org/local-smoking", "S1"),
    ],
)
def test_an_unclassified_answer_is_reported_and_ends_nothing(system: str, code: str) -> None:
    data = _extract(
        patient(),
        _status("smk", "449868002", "2023-12-01"),
        _status("odd", code, "2024-01-02", system=system),
    )
    assert [(e.source, e.end) for e in _smoking(data)] == [("Observation/smk", None)]
    (issue,) = data.issues
    assert issue.severity == "warning"
    assert issue.resource == "Observation/odd"
    assert issue.expression == "Bundle.entry[2].resource.valueCodeableConcept"
    assert code in issue.diagnostics


def test_an_answer_without_a_code_is_reported_and_ends_nothing() -> None:
    odd = _status("odd", "x", "2024-01-02")
    odd["valueCodeableConcept"] = {"text": "smokes at weekends"}
    data = _extract(patient(), _status("smk", "449868002", "2023-12-01"), odd)
    assert [(e.source, e.end) for e in _smoking(data)] == [("Observation/smk", None)]
    (issue,) = data.issues
    assert issue.resource == "Observation/odd"
    assert "weekends" not in issue.diagnostics
