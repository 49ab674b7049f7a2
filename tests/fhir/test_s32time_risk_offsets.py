"""A risk factor's start and the time it is judged at, recorded in different UTC offsets.

Clinical spec §5.1-5.2: with any thrombosis risk factor the maximum rate is 3.3 mg/kg/min. A
hypertension whose onset lies before an infusion's start is a risk factor at that infusion
and at the evaluation's time, whatever offset each is written in (implementation decisions,
§5: "Where both have a time, the times decide, whatever offsets they are recorded in"; a
thromboembolic history already was judged so). Before, coded evidence was compared by the
calendar dates of the two texts only: an onset written as 2024-05-11T01:00:00Z, an hour before
an infusion written as 2024-05-10T21:00:00-05:00, was "on the 11th", after "the 10th", and
the factor was left out at the infusion and in the tee-risk Flag (4 mg/kg/min, no finding),
while the same instant written as 2024-05-10T20:00:00-05:00 gave 3.3 and a finding.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import orjson
import pytest

from fhirtis.clinical.facts import RiskFactorKind
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

ACTIVE = {
    "coding": [
        {"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "active"}
    ]
}
HYPERTENSION = "38341003"  # Hypertensive disorder, systemic arterial (disorder)
CARDIOVASCULAR = RiskFactorKind.CARDIOVASCULAR


def _evaluate(*extra: dict[str, Any]) -> PatientResult:
    """70 kg, a 10% product at 147 mL/h from 21:00 (UTC-5) on 10 May 2024: 3.5 mg/kg/min,
    above 3.3 (with a risk factor), not above 4."""
    resources = [
        patient(),
        medication(),
        obs("w", "29463-7", 70, "kg", "2024-05-01", system=LOINC),
        administration(
            "a1",
            "2024-05-10T21:00:00-05:00",
            "2024-05-10T23:00:00-05:00",
            dose=qty(70, "g"),
            rate=qty(147, "mL/h"),
        ),
        *extra,
    ]
    return evaluate_patient_resources(
        read_patient_bundle(orjson.dumps(bundle(*resources))), Settings()
    )


# one instant, an hour before the infusion's start (02:00Z on 11 May), four ways
BEFORE = [
    "2024-05-10T20:00:00-05:00",
    "2024-05-11T01:00:00Z",
    "2024-05-11T01:00:00+00:00",
    "2024-05-11T06:45:00.000+05:45",
]


@pytest.mark.parametrize("onset", BEFORE)
def test_a_factor_begun_before_the_infusion_counts_in_any_offset(onset: str) -> None:
    result = _evaluate(condition("htn", SCT, HYPERTENSION, onset, clinicalStatus=ACTIVE))
    tee = result.evaluation.thrombosis
    [finding] = tee.rate_findings
    assert finding.administration_source == "MedicationAdministration/a1"
    assert finding.limit_mg_kg_min == Decimal("3.3")
    assert CARDIOVASCULAR in {f.kind for f in finding.limit.factors}
    assert CARDIOVASCULAR in {f.kind for f in tee.current.factors}
    assert tee.max_rate_now.limit_mg_kg_min == Decimal("3.3")


def test_a_factor_begun_after_the_infusion_is_not_applied_to_it() -> None:
    # 00:30 on 11 May (UTC-5), after the infusion's day: not at the infusion, but now
    onset = "2024-05-11T05:30:00Z"
    result = _evaluate(condition("htn", SCT, HYPERTENSION, onset, clinicalStatus=ACTIVE))
    tee = result.evaluation.thrombosis
    assert tee.rate_findings == ()
    assert CARDIOVASCULAR in {f.kind for f in tee.current.factors}


def test_the_same_day_rule_is_kept_for_a_later_onset_on_the_infusions_day() -> None:
    # coded evidence counts when its start is on or before the date of t (the decision's rule)
    onset = "2024-05-10T22:00:00-05:00"
    result = _evaluate(condition("htn", SCT, HYPERTENSION, onset, clinicalStatus=ACTIVE))
    [finding] = result.evaluation.thrombosis.rate_findings
    assert finding.limit_mg_kg_min == Decimal("3.3")
