"""Smoking status answered in LOINC (LL2201-3, the answers of 72166-2), as the International
Patient Summary STU1/STU1.1 ValueSet current-smoking-status-uv-ips lists them and as the German
GECCO dataset's SmokingStatus examples send them (fixture in tests/data/s26sb-pub, its source in
the README). Before, every LOINC answer was reported as unclassifiable: a current every-day
smoker was no cardiovascular risk factor (clinical spec §5.1), the maximum rate stayed
4 mg/kg/min instead of 3.3 (§5.2), and a former smoker did not end an earlier smoker status."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from fhirtis.clinical.facts import RiskFactorKind
from tests.fhir.builders import LOINC, patient
from tests.fhir.reading import extract
from tests.fhir.test_published_examples import evaluate_fixture
from tests.fhir.test_smoking_status import _status as smoking_status

DATA = Path(__file__).parents[1] / "data" / "s26sb-pub"

# IPS current-smoking-status-uv-ips (LOINC) and its ConceptMap to SNOMED CT
# (https://hl7.org/fhir/uv/ips/STU1.1/ValueSet-current-smoking-status-uv-ips.html)
CURRENT = {
    "LA18976-3": "Current every day smoker",  # ~ 449868002
    "LA18977-1": "Current some day smoker",  # ~ 428041000124106
    "LA18979-7": "Smoker, current status unknown",  # ~ 77176002
    "LA18981-3": "Heavy tobacco smoker",  # ~ 428071000124103
    "LA18982-1": "Light tobacco smoker",  # ~ 428061000124105
}
NOT_SMOKING = {"LA15920-4": "Former smoker", "LA18978-9": "Never smoker"}
UNKNOWN = "LA18980-5"  # Unknown if ever smoked (~ 266927001)


def _status(sid: str, code: str, day: str) -> dict[str, Any]:
    """A smoking status Observation (72166-2) answered in LOINC."""
    return smoking_status(sid, code, day, system=LOINC)


def _smoking(*resources: dict[str, Any]) -> list[tuple[str, date | None, date | None]]:
    data = extract(patient(), *resources)
    assert data.issues == []
    return [
        (e.source, e.start, e.end) for e in data.evidence if e.kind is RiskFactorKind.CARDIOVASCULAR
    ]


@pytest.mark.parametrize("code", sorted(CURRENT))
def test_a_current_smoker_loinc_answer_is_the_risk_factor(code: str) -> None:
    assert _smoking(_status("s", code, "2024-06-01")) == [("Observation/s", date(2024, 6, 1), None)]


@pytest.mark.parametrize("code", sorted(NOT_SMOKING))
def test_a_non_smoker_loinc_answer_ends_an_earlier_smoker_status(code: str) -> None:
    smoker = _status("s1", "LA18976-3", "2024-06-01")
    later = _status("s2", code, "2024-09-01")
    assert _smoking(smoker, later) == [("Observation/s1", date(2024, 6, 1), date(2024, 8, 31))]


def test_unknown_if_ever_smoked_is_still_reported() -> None:
    data = extract(patient(), _status("s", UNKNOWN, "2024-06-01"))
    assert [e for e in data.evidence if e.kind is RiskFactorKind.CARDIOVASCULAR] == []
    (issue,) = data.issues
    assert "could not be classified" in issue.diagnostics


def test_gecco_smoker_lowers_the_maximum_rate() -> None:
    """``gecco-loinc-smoker-ivig-rate.json``: a current every-day smoker (LOINC LA18976-3,
    2025-02-20), 70 kg, IVIG 70 g at 14700 mg/h on 2025-03-03 and -04 (MII KDS
    MedicationAdministration shape): 140 g, 2.0 g/kg; 14700 / (60 x 70) = 3.5 mg/kg/min, above
    3.3 with the cardiovascular risk factor: a finding at each administration; no issue.
    Before: no risk factor, maximum 4 mg/kg/min, no finding, and a warning."""
    result = evaluate_fixture(DATA / "gecco-loinc-smoker-ivig-rate.json")
    (cycle,) = result.evaluation.exposure.cycles
    assert cycle.grams == Decimal(140)
    assert cycle.g_per_kg == Decimal(2)
    assert cycle.max_rate_mg_kg_min == Decimal("3.5")
    thrombosis = result.evaluation.thrombosis
    assert [f.kind for f in thrombosis.risk_factors] == [RiskFactorKind.CARDIOVASCULAR]
    assert thrombosis.max_rate_now.limit_mg_kg_min == Decimal("3.3")
    assert [f.administration_source for f in thrombosis.rate_findings] == [
        "MedicationAdministration/mii-ma-1",
        "MedicationAdministration/mii-ma-2",
    ]
    assert result.issues == []
