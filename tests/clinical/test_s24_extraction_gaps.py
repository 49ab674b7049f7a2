"""Clinical consequences of extraction gaps found in session 24 (fixed outside the clinical
core, in ``fhirtis/fhir/extract/events.py``).

A thromboembolic Condition with no ``onset[x]`` (R4 Condition.onset[x] is 0..1; US Core
Condition requires neither it nor ``recordedDate``, and problem lists often carry only
``recordedDate``) was excluded entirely: the patient then had no history-of-thrombosis risk
factor (clinical spec §5.1) and the maximum rate was 4 mg/kg/min instead of 3.3 (§5.2). It is now
a history of thrombosis from its ``recordedDate`` (at every time without one), with a warning."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import orjson
import pytest

from fhirtis.clinical.facts import RiskFactorKind
from fhirtis.clinical.policy import Policy
from fhirtis.clinical.thrombosis import RiskInputs, applicable_max_rate, risk_profile
from fhirtis.fhir.bundle import read_patient_bundle
from fhirtis.fhir.codes import terminology
from fhirtis.fhir.extract import Extractor, ExtractSettings
from tests.fhir.builders import SCT, bundle, condition, patient

# SNOMED CT 128053003 |Deep venous thrombosis (disorder)|, in ValueSet tee-dvt
DVT = "128053003"


@pytest.mark.parametrize("recorded", ["2023-05-01", None])
def test_a_dvt_recorded_without_an_onset_is_a_history_of_thrombosis(recorded: str | None) -> None:
    extra = {"recordedDate": recorded} if recorded else {}
    dvt = condition("dvt1", SCT, DVT, None, **extra)
    pr = read_patient_bundle(orjson.dumps(bundle(patient(), dvt)))
    data = Extractor(terminology(), ExtractSettings(default_uln_u_per_l={})).extract(
        pr.patient_ref, pr.resources, pr.resolve
    )
    history = [e for e in data.evidence if e.kind is RiskFactorKind.THROMBOSIS_HISTORY]
    assert [e.source for e in history] == ["Condition/dvt1"]
    # the rate limit a year later: 3.3 mg/kg/min (§5.2: with any risk factor)
    profile = risk_profile(
        datetime(2024, 5, 1, tzinfo=UTC),
        RiskInputs(patient=data.patient, patient_source="Patient/p1", evidence=tuple(history)),
    )
    assert applicable_max_rate(profile, Policy()).limit_mg_kg_min == Decimal("3.3")
