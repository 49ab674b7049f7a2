"""An end dated 9999-12-31: the "no end" placeholder that converters and some EHR exports write
into a Period's end (published FHIR data carries it, e.g. ``"period": {"start": "1900-01-01",
"end": "9999-12-31"}`` on CMS-style Patient addresses and NHS ODS identifiers). On the end of a
use or of a condition it means what an absent end means: not ended. Since the calendar's end
years are refused as dates (tests/fhir/test_s33fuzz_calendar_dates.py: no clinical record is
dated there), such a record was refused whole, and the thrombosis risk factor it shows was lost
(an estradiol in use, a hypertension not abated: the 3.3 mg/kg/min limit became 4, two
infusions at 3.571 mg/kg/min unwarned). It is now read as an open end (clinical spec §5.1:
estrogen use, the risk-factor conditions; §5.2 the limits). A start, an onset, an effective
time or an infusion's end in that year stays refused: those are dates, not placeholders.

Fixture: tests/data/s32-pub/mii-estradiol-intended.json (German MII Medikation shape, see its
README), its statement made one of use."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from fhirtis.clinical.facts import RiskFactorKind
from fhirtis.pipeline.offline import PatientResult, evaluate_bundle_bytes
from fhirtis.settings import Settings

FIXTURE = Path(__file__).parents[1] / "data" / "s32-pub" / "mii-estradiol-intended.json"
STATEMENT = "MedicationStatement/s32-int-estradiol"
PATIENT = "Patient/pt-s32-int"


def _doc() -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(FIXTURE.read_text())
    return doc


def _evaluate(doc: dict[str, Any]) -> PatientResult:
    return evaluate_bundle_bytes(json.dumps(doc).encode(), "open-end", Settings())


def _statement(doc: dict[str, Any]) -> dict[str, Any]:
    return next(
        e["resource"]
        for e in doc["entry"]
        if e["resource"]["resourceType"] == "MedicationStatement"
    )


def _errors(result: PatientResult) -> list[str]:
    return [i.diagnostics for i in result.issues if i.severity in {"error", "fatal"}]


@pytest.mark.parametrize("end", ["9999-12-31", "9999-12-31T23:59:59Z", "9999-12-31T00:00:00+01:00"])
def test_an_estrogen_statement_ending_9999_is_use_not_ended(end: str) -> None:
    """Estradiol in use from 2025-06-02, ``effectivePeriod.end`` the placeholder: in use on
    both infusion days (06-13, 06-14): limit 3.3, both infusions (3.571 mg/kg/min) findings."""
    doc = _doc()
    statement = _statement(doc)
    statement["status"] = "active"
    statement["effectivePeriod"]["end"] = end
    result = _evaluate(doc)
    assert _errors(result) == []
    sources = [e.source for e in result.data.evidence if e.kind is RiskFactorKind.ESTROGEN]
    assert sources == [STATEMENT]
    t = result.evaluation.thrombosis
    assert t.max_rate_now.limit_mg_kg_min == Decimal("3.3")
    assert len(t.rate_findings) == 2


def test_an_estrogen_statement_with_a_real_end_before_the_infusions_is_not() -> None:
    """The control: a real end (06-05) before the infusions: no rate finding."""
    doc = _doc()
    statement = _statement(doc)
    statement["status"] = "completed"
    statement["effectivePeriod"]["end"] = "2025-06-05"
    result = _evaluate(doc)
    assert _errors(result) == []
    assert result.evaluation.thrombosis.rate_findings == ()


@pytest.mark.parametrize(
    "abatement",
    [{"abatementDateTime": "9999-12-31"}, {"abatementPeriod": {"end": "9999-12-31"}}],
)
def test_a_condition_abated_9999_is_not_abated(abatement: dict[str, Any]) -> None:
    """A hypertension (ICD-10-CM I10, a cardiovascular risk factor) since 2020, abatement the
    placeholder: active during the infusions: limit 3.3, two findings."""
    doc = _doc()
    _statement(doc)["status"] = "intended"  # no estrogen use: the hypertension alone
    doc["entry"].append(
        {
            "fullUrl": "Condition/s33-htn",
            "resource": {
                "resourceType": "Condition",
                "id": "s33-htn",
                "clinicalStatus": {
                    "coding": [
                        {
                            "system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                            "code": "active",
                        }
                    ]
                },
                "code": {
                    "coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "I10"}]
                },
                "subject": {"reference": PATIENT},
                "onsetDateTime": "2020-01-01",
                **abatement,
            },
        }
    )
    result = _evaluate(doc)
    assert _errors(result) == []
    kinds = {e.kind for e in result.data.evidence}
    assert RiskFactorKind.CARDIOVASCULAR in kinds
    t = result.evaluation.thrombosis
    assert t.max_rate_now.limit_mg_kg_min == Decimal("3.3")
    assert len(t.rate_findings) == 2


def test_a_start_in_9999_stays_refused() -> None:
    """A start in the placeholder year is no placeholder: the statement is refused, said."""
    doc = _doc()
    statement = _statement(doc)
    statement["status"] = "active"
    statement["effectivePeriod"] = {"start": "9999-12-31"}
    result = _evaluate(doc)
    assert any(
        i.severity == "error" and STATEMENT in i.diagnostics and "year 9999" in i.diagnostics
        for i in result.issues
    )
    assert [e for e in result.data.evidence if e.kind is RiskFactorKind.ESTROGEN] == []
