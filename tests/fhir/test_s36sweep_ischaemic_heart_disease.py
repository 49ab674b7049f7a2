"""Ischaemic heart disease on a problem list is coronary disease, a cardiovascular risk factor
(clinical spec §5.1: "cardiovascular risk factors (hypertension, diabetes, dyslipidaemia,
smoking, coronary disease)"; sweep s36).

smart-on-fhir/sample-bulk-fhir-datasets, branch ``10-patients`` (Synthea R4 bulk export),
``Condition.000.ndjson``: Conditions ``1201ae3d-b3fd-4773-1c39-aca32d9b9cd8`` (Patient 129c6ac7,
onset 1977-05-21) and ``609a5dc9-9148-e4d2-1a44-636d78b97325`` (Patient 79a66c97, onset
1992-10-17), coded SNOMED CT 414545008 "Ischemic heart disease (disorder)", clinicalStatus
active, verificationStatus confirmed. ValueSet ``risk-cardiovascular`` held ICD-10 I25 (chronic
ischaemic heart disease, I25.9 "unspecified" included) and SNOMED CT 53741008 "Coronary
arteriosclerosis" with its descendants, but not 414545008, which is their parent: without a
terminology server the Condition was "could not be classified ... not counted"; with one, the
server answers that 414545008 is no descendant of 53741008 and it was left out without a word.
The patient's maximum rate stayed 4 mg/kg/min where the label allows 3.3."""

from __future__ import annotations

from typing import Any

from fhirtis.clinical.facts import RiskFactorKind
from fhirtis.fhir.codes import Membership, terminology
from tests.fhir.builders import SCT, condition, patient
from tests.fhir.reading import extract, unclassified

IHD = "414545008"
ACUTE_MI = "22298006"  # a descendant of 414545008: a thromboembolic event, not this factor


class _NoDescendants:
    """A terminology server that finds no code below any parent."""

    def is_a(self, system: str, code: str, parent: str) -> bool | None:
        return code == parent


def _synthea_ihd(**extra: Any) -> dict[str, Any]:
    return condition(
        "1201ae3d-b3fd-4773-1c39-aca32d9b9cd8",
        SCT,
        IHD,
        "1977-05-21T23:58:16-04:00",
        clinicalStatus={
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                    "code": "active",
                }
            ]
        },
        verificationStatus={
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/condition-ver-status",
                    "code": "confirmed",
                }
            ]
        },
        category=[
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/condition-category",
                        "code": "encounter-diagnosis",
                    }
                ]
            }
        ],
        **extra,
    )


def test_the_synthea_ischaemic_heart_disease_is_a_cardiovascular_risk_factor() -> None:
    data = extract(patient(birth="1927-05-21"), _synthea_ihd())
    assert [(e.kind, e.source) for e in data.evidence] == [
        (RiskFactorKind.CARDIOVASCULAR, "Condition/1201ae3d-b3fd-4773-1c39-aca32d9b9cd8")
    ]
    assert unclassified(data) == []
    assert data.events == []


def test_it_is_a_member_whatever_a_terminology_server_answers() -> None:
    t = terminology().with_oracle(_NoDescendants())
    assert t.classify("risk-cardiovascular", [(SCT, IHD)]) is Membership.MEMBER


def test_its_descendants_are_not_drawn_in() -> None:
    """Listed as the concept itself, not as an is-a parent: an acute myocardial infarction stays
    a thromboembolic event (history after its onset), not a cardiovascular risk factor."""
    t = terminology()
    assert t.classify("risk-cardiovascular", [(SCT, ACUTE_MI)]) is not Membership.MEMBER
    assert t.value_set("tee-myocardial-infarction").contains(SCT, ACUTE_MI)
