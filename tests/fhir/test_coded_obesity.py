"""A coded obesity diagnosis (a Condition in profiles/ValueSet-risk-obesity.json: SNOMED CT,
ICD-10-CM E66 obesity codes and adult BMI 30+ Z68 codes, WHO ICD-10 E66) is the obesity
thrombosis risk factor, as a BMI ≥ 30 is (clinical spec §5.1 "obesity (BMI ≥ 30)"; §6: the codes
live in a ValueSet in profiles/). Before, obesity came from a BMI only: a Synthea patient with an
active "Body mass index 30+ - obesity (finding)" and no BMI had no risk factor (4 mg/kg/min, not
3.3) and was told "no BMI; obesity not assessable"."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

import orjson
import pytest

from fhirtis.clinical.facts import RiskFactorKind
from fhirtis.clinical.thrombosis import RiskProfile, ThrombosisAssessment
from fhirtis.fhir.bundle import read_patient_bundle
from fhirtis.fhir.codes import ICD10, terminology
from fhirtis.pipeline.offline import PatientResult, evaluate_patient_resources
from fhirtis.settings import Settings
from tests.fhir.builders import (
    ICD,
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
from tests.fhir.reading import extract as _extract
from tests.fhir.reading import unclassified as _unclassified

WHO = ICD10
OBESITY = RiskFactorKind.OBESITY
ACTIVE = {
    "coding": [
        {"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "active"}
    ]
}
RESOLVED = {
    "coding": [
        {"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "resolved"}
    ]
}
NOT_ASSESSABLE = "obesity not assessable"
START = "2024-03-04T09:00:00Z"

# every code the ValueSet lists (profiles/TERMINOLOGY.md, `risk-obesity`, gives each source)
OBESITY_CODES = [
    (SCT, "414916001"),  # Obesity (disorder): the is-a parent
    (SCT, "162864005"),  # Body mass index 30+ - obesity (finding): Synthea's code, an is-a parent
    (SCT, "408512008"),  # Body mass index 40+ - severely obese (finding)
    (SCT, "238136002"),  # Morbid obesity (disorder)
    (SCT, "83911000119104"),  # Severe obesity (disorder)
    (SCT, "190966007"),  # Extreme obesity with alveolar hypoventilation (disorder)
    (SCT, "414915002"),  # Obese (finding)
    (SCT, "415530009"),  # Simple obesity (disorder)
    (SCT, "443371000124107"),  # Obese class I (finding)
    (SCT, "443381000124105"),  # Obese class II (finding)
    (SCT, "819948005"),  # Obese class III (finding)
    (SCT, "1187531009"),  # Obesity due to pituitary disease (disorder)
    (SCT, "785722006"),  # Obesity due to leptin receptor gene deficiency (disorder)
    (ICD, "E66.01"),  # Morbid (severe) obesity due to excess calories
    (ICD, "E66.09"),  # Other obesity due to excess calories
    (ICD, "E66.1"),  # Drug-induced obesity
    (ICD, "E66.2"),  # Morbid (severe) obesity with alveolar hypoventilation
    (ICD, "E66.8"),  # Other obesity (before FY2025, when it was divided)
    (ICD, "E66.811"),  # Obesity, class 1
    (ICD, "E66.812"),  # Obesity, class 2
    (ICD, "E66.813"),  # Obesity, class 3
    (ICD, "E66.89"),  # Other obesity not elsewhere classified
    (ICD, "E66.9"),  # Obesity, unspecified
    (ICD, "Z68.30"),  # BMI 30.0-30.9, adult
    (ICD, "Z68.35"),  # BMI 35.0-35.9, adult
    (ICD, "Z68.39"),  # BMI 39.0-39.9, adult
    (ICD, "Z68.41"),  # BMI 40.0-44.9, adult
    (ICD, "Z68.45"),  # BMI 70 or greater, adult
    (WHO, "E66"),  # Obesity (the WHO category holds obesity only)
    (WHO, "E66.0"),  # Obesity due to excess calories
    (WHO, "E66.1"),  # Drug-induced obesity
    (WHO, "E66.2"),  # Extreme obesity with alveolar hypoventilation
    (WHO, "E66.8"),  # Other obesity
    (WHO, "E66.9"),  # Obesity, unspecified
]

# one of each system for the whole pipeline
PIPELINE_CODES = [(SCT, "162864005"), (SCT, "414916001"), (ICD, "E66.9"), (WHO, "E66.9")]


def _evaluate(*extra: dict[str, Any]) -> PatientResult:
    """A 54-year-old at 70 kg (no height, no BMI) given 700 mL of a 10% product at 150 mL/h:
    250 mg/min / 70 kg = 3.571 mg/kg/min, above 3.3 (with a risk factor), not above 4."""
    resources = [
        patient(),
        medication(),
        obs("w", "29463-7", 70, "kg", "2024-03-01", system=LOINC),
        administration(
            "a1", START, "2024-03-04T13:40:00Z", dose=qty(700, "mL"), rate=qty(150, "mL/h")
        ),
        *extra,
    ]
    return evaluate_patient_resources(
        read_patient_bundle(orjson.dumps(bundle(*resources))), Settings()
    )


def _thrombosis(result: PatientResult) -> ThrombosisAssessment:
    return result.evaluation.thrombosis


def _obesity(profile: RiskProfile) -> tuple[str, ...] | None:
    """The sources of the obesity factor, or None when there is none."""
    return next((f.evidence for f in profile.factors if f.kind is OBESITY), None)


def _said_not_assessable(assessment: ThrombosisAssessment) -> bool:
    return (
        any(NOT_ASSESSABLE in n.message for n in assessment.notes)
        or any(u.kind is OBESITY for u in assessment.current.unassessed)
        or any(u.kind is OBESITY for f in assessment.rate_findings for u in f.limit.unassessed)
        or any(u.kind is OBESITY for u in assessment.max_rate_now.unassessed)
    )


# -- classification ----------------------------------------------------------------------------


@pytest.mark.parametrize(("system", "code"), OBESITY_CODES)
def test_a_coded_obesity_is_the_obesity_risk_factor(system: str, code: str) -> None:
    data = _extract(patient(), condition("ob", system, code, "2020-01-01", clinicalStatus=ACTIVE))
    assert [(e.kind, e.source, e.end) for e in data.evidence] == [(OBESITY, "Condition/ob", None)]
    assert _unclassified(data) == []


@pytest.mark.parametrize(
    ("system", "code", "reported"),
    [
        (ICD, "E66.3", True),  # Overweight: in the E66 range, so reported as unclassified
        (ICD, "E66", True),  # the ICD-10-CM category is "Overweight and obesity"
        (WHO, "E66.3", True),  # no such WHO code (ICD-10-CM's overweight sent as WHO)
        (ICD, "Z68.29", False),  # BMI 29.0-29.9, adult: below 30
        (ICD, "Z68.1", False),  # BMI 19.9 or less, adult
        (ICD, "Z68.54", False),  # pediatric percentile: not a BMI ≥ 30 (spec §5.1)
        (SCT, "162863004", True),  # Body mass index 25-29 - overweight (finding)
        (SCT, "238131007", True),  # Overweight (finding)
    ],
)
def test_overweight_and_a_bmi_below_30_are_not_obesity(
    system: str, code: str, reported: bool
) -> None:
    data = _extract(patient(), condition("ow", system, code, "2020-01-01", clinicalStatus=ACTIVE))
    assert data.evidence == []
    # a code in a range the risk ValueSets draw on is reported, never silently dropped
    assert [i.resource for i in _unclassified(data)] == (["Condition/ow"] if reported else [])


def test_the_obesity_value_set_is_the_obesity_risk_factor_and_ships_its_members() -> None:
    t = terminology()
    vs = t.with_value_sets("risk-")["obesity"]
    assert RiskFactorKind("obesity") is OBESITY
    assert {h.parent for h in vs.hierarchies} == {"414916001", "162864005"}
    for system, code in OBESITY_CODES:
        assert vs.contains(system, code), (system, code)
    # WHO codes are read in WHO form only; a CM-only code sent as WHO is not read as one
    assert not vs.contains(WHO, "E66.01")
    assert not vs.contains(WHO, "Z68.41")
    # overweight, the ICD-10-CM category and pediatric percentiles are not members
    assert not vs.contains(ICD, "E66.3") and not vs.contains(ICD, "E66")
    assert not vs.contains(ICD, "Z68.29") and not vs.contains(ICD, "Z68.54")


# -- the pipeline: the factor, the limit, the rate finding, no "not assessable" ----------------


@pytest.mark.parametrize(("system", "code"), PIPELINE_CODES)
def test_an_active_coded_obesity_without_a_bmi_lowers_the_limit_to_3_3(
    system: str, code: str
) -> None:
    result = _evaluate(
        condition("ob", system, code, "2019-06-01", clinicalStatus=ACTIVE),
    )
    tee = _thrombosis(result)
    assert _obesity(tee.current) == ("Condition/ob",)
    assert tee.max_rate_now.limit_mg_kg_min == Decimal("3.3")
    [finding] = tee.rate_findings
    assert finding.administration_source == "MedicationAdministration/a1"
    assert finding.limit.limit_mg_kg_min == Decimal("3.3")
    assert round(finding.rate_mg_kg_min, 3) == Decimal("3.571")
    assert [f.evidence for f in finding.limit.factors if f.kind is OBESITY] == [("Condition/ob",)]
    assert not _said_not_assessable(tee)


def test_without_a_coded_obesity_nor_a_bmi_obesity_is_still_not_assessable() -> None:
    """The baseline: the same patient with overweight (E66.3) only has no risk factor, 4
    mg/kg/min, no rate finding, and is told that obesity could not be assessed."""
    result = _evaluate(condition("ow", ICD, "E66.3", "2019-06-01", clinicalStatus=ACTIVE))
    tee = _thrombosis(result)
    assert tee.current.factors == ()
    assert tee.max_rate_now.limit_mg_kg_min == Decimal(4)
    assert tee.rate_findings == ()
    assert _said_not_assessable(tee)


def test_a_resolved_obesity_does_not_count_after_its_abatement() -> None:
    """Resolved (after bariatric surgery, say) with abatementDateTime 2023-06-01: it was the
    obesity factor until that day, not at the administration of 2024-03-04."""
    resolved = condition(
        "ob",
        SCT,
        "414916001",
        "2015-01-01",
        clinicalStatus=RESOLVED,
        abatementDateTime="2023-06-01",
    )
    data = _extract(patient(), resolved)
    assert [(e.kind, e.start, e.end) for e in data.evidence] == [
        (OBESITY, date(2015, 1, 1), date(2023, 6, 1))
    ]
    tee = _thrombosis(_evaluate(resolved))
    assert tee.rate_findings == ()
    assert tee.max_rate_now.limit_mg_kg_min == Decimal(4)
    assert _obesity(tee.current) is None
    # no BMI either: obesity is not assessable at that time, and is said to be
    assert _said_not_assessable(tee)


def test_an_obesity_resolved_after_the_administration_counts_at_it() -> None:
    """The same Condition resolved the day after the administration: active at its start."""
    resolved = condition(
        "ob",
        SCT,
        "414916001",
        "2015-01-01",
        clinicalStatus=RESOLVED,
        abatementDateTime="2024-03-05",
    )
    tee = _thrombosis(_evaluate(resolved))
    [finding] = tee.rate_findings
    assert finding.limit.limit_mg_kg_min == Decimal("3.3")
    assert [f.evidence for f in finding.limit.factors] == [("Condition/ob",)]


def test_a_bmi_below_30_does_not_undo_an_active_obesity_diagnosis() -> None:
    """A BMI of 27 recorded beside an active coded obesity: the active diagnosis stands and the
    obesity factor is counted (3.3 mg/kg/min). The problem list says the patient is obese until
    the diagnosis is resolved (clinicalStatus, abatement); one BMI below 30 (a low reading, a
    weight lost for a while) does not end it, and the lower limit is the safe side. The factor
    cites the Condition only: the BMI does not show it."""
    result = _evaluate(
        condition("ob", ICD, "E66.9", "2019-06-01", clinicalStatus=ACTIVE),
        obs("bmi", "39156-5", 27, "kg/m2", "2024-03-01", system=LOINC),
    )
    tee = _thrombosis(result)
    assert _obesity(tee.current) == ("Condition/ob",)
    assert tee.max_rate_now.limit_mg_kg_min == Decimal("3.3")
    [finding] = tee.rate_findings
    assert finding.limit.limit_mg_kg_min == Decimal("3.3")
    assert not _said_not_assessable(tee)


def test_a_bmi_of_30_or_more_is_cited_beside_the_coded_obesity() -> None:
    result = _evaluate(
        condition("ob", SCT, "162864005", "2019-06-01", clinicalStatus=ACTIVE),
        obs("bmi", "39156-5", 32, "kg/m2", "2024-03-01", system=LOINC),
    )
    tee = _thrombosis(result)
    assert _obesity(tee.current) == ("Condition/ob", "Observation/bmi")
    assert tee.max_rate_now.limit_mg_kg_min == Decimal("3.3")
    assert not _said_not_assessable(tee)
