"""EHR vendors' documented resource shapes, session 28 "h" (fixtures and sources in
tests/data/s28h-vendor/README.md).

A thromboembolic Condition with no onset (Epic encounter diagnoses and problem-list entries
carry ``recordedDate``; R4 and US Core make ``onset[x]`` optional) is counted as a history of
thrombosis from its recorded date, and fhirtis says so. That recorded date is a clinical time in
the data: the evaluation's own time (its as-of, "the latest record", clinical spec,
implementation decisions on the history of thrombosis) is not before it, so the limit now is
3.3 mg/kg/min (§5.2), as the warning says. Before, the recorded date was left out of the as-of:
an offline evaluation whose latest other record was the last infusion said "counted as a
history of thrombosis" and yet gave no risk factor and a limit now of 4 mg/kg/min.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

from fhirtis.clinical.thrombosis import RiskFactorKind
from fhirtis.fhir.extract import PatientData
from tests.fhir.builders import LOINC, administration, condition, medication, obs, patient, qty
from tests.fhir.reading import extract, unclassified
from tests.fhir.test_published_examples import check_fixture_folder, evaluate_fixture

DATA = Path(__file__).parents[1] / "data" / "s28h-vendor"
DVT = "Condition/eCondVendorDVT2.kP4sEd8Xw3"


def test_every_fixture_is_tested_listed_and_valid_r4() -> None:
    check_fixture_folder(DATA, Path(__file__).read_text())


def test_encounter_diagnosis_without_onset_counts_now_from_its_recorded_date() -> None:
    result = evaluate_fixture(DATA / "epic-encounter-diagnosis-no-onset.json")
    said = [i for i in result.issues if i.resource == DVT]
    assert [(i.severity, i.expression) for i in said] == [
        ("warning", "Bundle.entry[5].resource.onset[x]")
    ]
    assert "counted as a history of thrombosis from its recorded date 2025-10-10" in (
        said[0].diagnostics
    )
    evaluation = result.evaluation
    assert evaluation is not None
    # the recorded day is in the data: the as-of is not before it (a date counts to its end)
    assert evaluation.as_of.astimezone(UTC).date() == date(2025, 10, 10)
    assert evaluation.as_of > datetime(2025, 10, 8, 17, 30, tzinfo=UTC)
    thrombosis = evaluation.thrombosis
    assert [f.kind.value for f in thrombosis.risk_factors] == ["thrombosis-history"]
    assert [f.evidence for f in thrombosis.risk_factors] == [(DVT,)]
    assert thrombosis.max_rate_now.limit_mg_kg_min == Decimal("3.3")
    # not an event temporally associated with IVIG (no onset to place in the window)
    assert thrombosis.associated_events == ()
    # the doses and rates are read as before: 2 x 35 g on 70 kg, 100 mL/h of 10 %
    assert evaluation.exposure.cumulative_grams == 70


def test_catheter_placed_after_the_last_infusion_is_a_risk_factor_now() -> None:
    """A central venous catheter inserted (Oracle Health Procedure, full ``performedDateTime``)
    after the last IVIG infusion, the latest other record: the procedure is a record of the
    data, so the as-of is its time and the catheter is a risk factor now (§5.1), limit now
    3.3 mg/kg/min (§5.2), the limit for the next infusion. Before, the as-of stayed at the last
    infusion's start: no risk factor, no evidence, limit now 4 mg/kg/min, and nothing said."""
    result = evaluate_fixture(DATA / "oracle-catheter-after-last-infusion.json")
    assert [i for i in result.issues if i.severity in ("error", "fatal")] == []
    evaluation = result.evaluation
    assert evaluation is not None
    assert evaluation.as_of == datetime(2025, 9, 16, 10, 20, tzinfo=UTC)
    thrombosis = evaluation.thrombosis
    assert [f.kind.value for f in thrombosis.risk_factors] == ["central-venous-catheter"]
    assert [f.evidence for f in thrombosis.risk_factors] == [("Procedure/2572990111/_history/0",)]
    assert thrombosis.max_rate_now.limit_mg_kg_min == Decimal("3.3")
    # the infusions before it are checked against the limit of their own time (4, no factor)
    assert thrombosis.rate_findings == ()
    assert evaluation.exposure.cumulative_grams == 140


def test_risk_condition_diagnosed_after_the_last_infusion_is_a_risk_factor_now() -> None:
    """The same for an Epic problem-list Condition (hypertension, SNOMED CT 38341003 beside
    ICD-10-CM I10) with a date-only ``onsetDateTime`` after the last infusion: the as-of is
    not before that day (a date counts to its end)."""
    result = evaluate_fixture(DATA / "epic-hypertension-after-last-infusion.json")
    evaluation = result.evaluation
    assert evaluation is not None
    assert evaluation.as_of.astimezone(UTC).date() == date(2025, 10, 20)
    thrombosis = evaluation.thrombosis
    assert [f.kind.value for f in thrombosis.risk_factors] == ["cardiovascular"]
    assert thrombosis.max_rate_now.limit_mg_kg_min == Decimal("3.3")


def _after_infusion(use: dict[str, object], *more: dict[str, object]) -> PatientData:
    return extract(
        patient(birth="1968-04-02"),
        medication(),
        obs("w", "29463-7", 70, "kg", "2025-03-01", system=LOINC),
        administration("a1", "2025-03-03T09:00:00Z", dose=qty(70, "g"), rate=qty(150, "mL/h")),
        *more,
        use,
    )


def test_catheter_use_begun_after_the_last_infusion_moves_the_as_of() -> None:
    """A DeviceUseStatement (R4 ``timingPeriod``; the [R4-DUS] and IPS shape of
    tests/data/device-use-statement-ips.json) of a central venous catheter placed after the
    last infusion: its start is a time of the record (the as-of, data.latest, is not before
    it). A start recorded only to a month is no time of the record: it leaves the as-of."""
    catheter = {
        "resourceType": "Device",
        "id": "cvc",
        "type": {"coding": [{"system": "http://snomed.info/sct", "code": "52124006"}]},
    }

    def use(start: str) -> dict[str, object]:
        return {
            "resourceType": "DeviceUseStatement",
            "id": "dus",
            "status": "active",
            "subject": {"reference": "Patient/p1"},
            "device": {"reference": "Device/cvc"},
            "timingPeriod": {"start": start},
        }

    data = _after_infusion(use("2025-03-09T08:15:00Z"), catheter)
    assert [e.kind for e in data.evidence] == [RiskFactorKind.CENTRAL_VENOUS_CATHETER]
    assert data.latest == datetime(2025, 3, 9, 8, 15, tzinfo=UTC)
    data = _after_infusion(use("2025-03-09"), catheter)
    assert data.latest is not None and data.latest.date() == date(2025, 3, 9)
    data = _after_infusion(use("2025-04"), catheter)
    assert data.latest == datetime(2025, 3, 3, 9, 0, tzinfo=UTC)


def test_estrogen_begun_after_the_last_infusion_moves_the_as_of() -> None:
    """A MedicationStatement of estradiol (R4 ``effectivePeriod``, the Epic Medication text shape
    of test_estrogen) begun after the last infusion: its start is a time of the record."""
    statement = {
        "resourceType": "MedicationStatement",
        "id": "ms",
        "status": "active",
        "medicationCodeableConcept": {"text": "ESTRADIOL 1 MG TABLET"},
        "subject": {"reference": "Patient/p1"},
        "effectivePeriod": {"start": "2025-03-12T10:00:00-05:00"},
    }
    data = _after_infusion(statement)
    assert [e.kind for e in data.evidence] == [RiskFactorKind.ESTROGEN]
    assert data.latest == datetime(2025, 3, 12, 15, 0, tzinfo=UTC)


def test_polymyositis_on_the_problem_list_is_not_reported_unclassified() -> None:
    """Polymyositis as an Epic problem-list entry codes it (SNOMED CT 31384009 beside ICD-10-CM
    M33.20, [EPIC-SS]): both codes are in fhirtis's own shipped ValueSet ``polymyositis``
    (clinical spec §6), so the diagnosis is known, not a code that "could not be classified for
    thromboembolic events and thrombosis risk factors" with advice to configure a terminology
    server. Before, the SNOMED CT code drew that warning on every such patient (the
    dermatomyositis codes never did). A code no ValueSet knows still does."""
    pm = condition("pm", "http://snomed.info/sct", "31384009", "2024-03-01")
    pm["code"] = {
        "coding": [
            {"system": "http://snomed.info/sct", "code": "31384009"},
            {"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "M33.20"},
        ],
        "text": "Polymyositis",
    }
    data = _after_infusion(pm)
    assert unclassified(data) == []
    other = condition("x", "http://snomed.info/sct", "999999999", "2024-03-01")
    assert [i.resource for i in unclassified(_after_infusion(other))] == ["Condition/x"]
