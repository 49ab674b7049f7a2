"""Thromboembolic events and risk-factor Conditions whose onset is recorded to the month or year
only, as the PACIO sample data (repository paciowg/sample-data-fsh,
``input/fsh/EX_bsj1_condition.fsh``) publishes problem-list and encounter-diagnosis Conditions:
``onsetDateTime = "2011-08"`` beside a full ``recordedDate`` ("BSJ-HypertensionDiagnosis",
SNOMED CT 38341003; fixtures and sources in tests/data/s27c-pub). "2011-08" is a valid R4
dateTime (http://hl7.org/fhir/R4/datatypes.html#dateTime: YYYY, YYYY-MM, YYYY-MM-DD or
YYYY-MM-DDThh:mm:ss+zz:zz).

Before, such a Condition was excluded with an error, coding and all: the hypertension (a
cardiovascular risk factor, clinical spec §5.1) or the DVT (a history of thrombosis) was not
counted, and the maximum rate stayed 4 mg/kg/min where 3.3 applies. A thromboembolic Condition
with no onset at all is a history of thrombosis from its recordedDate (clinical spec §8: "the
thrombosis happened on or before it"); one with a month is at least as well known: it happened
on or before the month's last day."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path

from fhirtis.clinical.facts import RiskFactorKind
from fhirtis.pipeline.offline import PatientResult
from tests.fhir.builders import (
    LOINC,
    SCT,
    administration,
    condition,
    medication,
    obs,
    patient,
    qty,
)
from tests.fhir.test_published_examples import check_fixture_folder, evaluate_fixture
from tests.fhir.test_s25_pub_onset import _evaluate

DATA = Path(__file__).parents[1] / "data" / "s27c-pub"
ONSET = "Bundle.entry[5].resource.onsetDateTime"


def test_every_fixture_is_tested_listed_and_valid_r4() -> None:
    check_fixture_folder(
        DATA, "".join(p.read_text() for p in Path(__file__).parent.glob("test_s27c_*.py"))
    )


def test_a_hypertension_with_a_month_onset_is_a_cardiovascular_risk_factor() -> None:
    """``pacio-month-onset-hypertension.json``: hypertension (38341003), onset "2011-08",
    recorded 2011-09-17; IVIG 10 g/100 mL, 700 mL at 150 mL/h on 2025-03-03 and -04, 70 kg:
    150 x 100 / (60 x 70) = 3.5714 mg/kg/min. The cardiovascular risk factor applies (it began
    in August 2011), so the maximum is 3.3 and both administrations are rate findings. A warning
    says the onset is known to the month only. Before: excluded with an error, maximum 4, no
    finding."""
    result = evaluate_fixture(DATA / "pacio-month-onset-hypertension.json")
    assert [i for i in result.issues if i.severity == "error"] == []
    assert [(e.kind, e.source, e.start) for e in result.data.evidence] == [
        (RiskFactorKind.CARDIOVASCULAR, "Condition/htn-s27c", date(2011, 8, 1))
    ]
    thrombosis = result.evaluation.thrombosis
    assert thrombosis.max_rate_now.limit_mg_kg_min == Decimal("3.3")
    assert [f.administration_source for f in thrombosis.rate_findings] == [
        "MedicationAdministration/ivig-1",
        "MedicationAdministration/ivig-2",
    ]
    (warning,) = result.issues
    assert (warning.severity, warning.expression, warning.resource) == (
        "warning",
        ONSET,
        "Condition/htn-s27c",
    )
    assert "2011-08" in warning.diagnostics and "2011-08-01" in warning.diagnostics


def test_a_dvt_with_a_month_onset_is_a_history_of_thrombosis_from_that_month() -> None:
    """``pacio-month-onset-dvt.json``: DVT (128053003) in the same shape, onset "2024-08",
    recorded 2024-09-03; the same IVIG in March 2025. The DVT happened on or before
    2024-08-31: a history of thrombosis from then, maximum 3.3, both administrations rate
    findings; it is not placed as an event (no day is known) and a warning says so. Before:
    excluded with an error, maximum 4, no finding."""
    result = evaluate_fixture(DATA / "pacio-month-onset-dvt.json")
    assert [i for i in result.issues if i.severity == "error"] == []
    assert result.data.events == []
    assert [(e.kind, e.source, e.start) for e in result.data.evidence] == [
        (RiskFactorKind.THROMBOSIS_HISTORY, "Condition/dvt-s27c", date(2024, 8, 31))
    ]
    thrombosis = result.evaluation.thrombosis
    assert thrombosis.max_rate_now.limit_mg_kg_min == Decimal("3.3")
    assert len(thrombosis.rate_findings) == 2
    (warning,) = result.issues
    assert (warning.severity, warning.expression) == ("warning", ONSET)
    assert "2024-08" in warning.diagnostics
    assert "not assessed for a temporal association" in warning.diagnostics


def _dvt_during_ivig(onset: str, recorded: str | None) -> PatientResult:
    extra = {"recordedDate": recorded} if recorded else {}
    return _evaluate(
        patient(birth="1968-04-02"),
        medication(),
        obs("w", "29463-7", 70, "kg", "2025-03-01", system=LOINC),
        administration("a1", "2025-03-03T09:00:00Z", dose=qty(70, "g"), rate=qty(150, "mL/h")),
        administration("a2", "2025-03-20T09:00:00Z", dose=qty(70, "g"), rate=qty(150, "mL/h")),
        condition("dvt", SCT, "128053003", onset, **extra),
    )


def test_a_dvt_whose_month_holds_an_infusion_is_reported_as_not_placeable() -> None:
    """A DVT "2025-03" recorded 2025-03-10 and IVIG on 2025-03-03: the DVT may be temporally
    associated but cannot be placed; it is not dropped: a warning says it was not assessed for
    a temporal association, and it is a history of thrombosis from its recordedDate (the day it
    surely had happened, earlier than the month's end), so the 2025-03-20 infusion is checked
    against 3.3 and the 2025-03-03 one against 4."""
    result = _dvt_during_ivig("2025-03", "2025-03-10")
    assert [(e.kind, e.start) for e in result.data.evidence] == [
        (RiskFactorKind.THROMBOSIS_HISTORY, date(2025, 3, 10))
    ]
    assert [
        (f.administration_source, f.limit_mg_kg_min)
        for f in result.evaluation.thrombosis.rate_findings
    ] == [("MedicationAdministration/a2", Decimal("3.3"))]
    (warning,) = [i for i in result.issues if i.resource == "Condition/dvt"]
    assert warning.severity == "warning"
    assert "not assessed for a temporal association" in warning.diagnostics


def test_a_dvt_with_a_year_onset_and_no_recorded_date_counts_from_the_year_end() -> None:
    """Onset "2024" only: a history of thrombosis from 2024-12-31."""
    result = _dvt_during_ivig("2024", None)
    assert [(e.kind, e.start) for e in result.data.evidence] == [
        (RiskFactorKind.THROMBOSIS_HISTORY, date(2024, 12, 31))
    ]
    assert result.evaluation.thrombosis.max_rate_now.limit_mg_kg_min == Decimal("3.3")


# -- a thromboembolic Condition whose onset is an age (R4 onsetAge) -------------------------------


def _years(value: int) -> dict[str, object]:
    """An R4 Age as the HL7 R4 example condition-example-f202-malignancy gives its onsetAge
    (http://hl7.org/fhir/R4/condition-example-f202.json.html): ``{"value": 52, "unit":
    "years", "system": "http://unitsofmeasure.org", "code": "a"}``."""
    return {"value": value, "unit": "years", "system": "http://unitsofmeasure.org", "code": "a"}


def _dvt_at_age(age: int, birth: str | None, recorded: str | None) -> PatientResult:
    extra: dict[str, object] = {"onsetAge": _years(age)}
    if recorded:
        extra["recordedDate"] = recorded
    person = patient(birth=birth) if birth else {"resourceType": "Patient", "id": "p1"}
    return _evaluate(
        person,
        medication(),
        obs("w", "29463-7", 70, "kg", "2024-06-01", system=LOINC),
        administration("a1", "2024-06-03T09:00:00Z", dose=qty(70, "g"), rate=qty(150, "mL/h")),
        condition("dvt", SCT, "128053003", None, **extra),
    )


def test_a_dvt_at_an_age_long_ago_is_a_history_before_its_recorded_date() -> None:
    """Born 1968-04-02, a DVT at 30 years (``onsetAge`` 30 a), entered on the problem list on
    2025-03-01; IVIG at 150 mL/h (3.5714 mg/kg/min, 70 kg) on 2024-06-03. The DVT happened
    before the patient turned 31 (on or before 1999-04-01): a history of thrombosis from then,
    so the 2024 infusion is checked against 3.3 and is a rate finding. Before: the onset age was
    passed over as "no onset", the history counted only from the recordedDate 2025-03-01, and
    the infusion was checked against 4."""
    result = _dvt_at_age(30, "1968-04-02", "2025-03-01")
    assert [(e.kind, e.start) for e in result.data.evidence] == [
        (RiskFactorKind.THROMBOSIS_HISTORY, date(1999, 4, 1))
    ]
    assert [f.limit_mg_kg_min for f in result.evaluation.thrombosis.rate_findings] == [
        Decimal("3.3")
    ]
    (warning,) = [i for i in result.issues if i.resource == "Condition/dvt"]
    assert (warning.severity, warning.expression) == (
        "warning",
        "Bundle.entry[4].resource.onsetAge",
    )
    assert "no onset" not in warning.diagnostics and "1999-04-01" in warning.diagnostics


def test_a_dvt_at_an_age_without_birth_date_keeps_its_recorded_date_and_says_why() -> None:
    """No birth date: the age cannot be placed; the history counts from the recordedDate, as
    for a Condition with no onset, and the warning names the onsetAge (not "no onset")."""
    result = _dvt_at_age(30, None, "2025-03-01")
    assert [(e.kind, e.start) for e in result.data.evidence] == [
        (RiskFactorKind.THROMBOSIS_HISTORY, date(2025, 3, 1))
    ]
    (warning,) = [i for i in result.issues if i.resource == "Condition/dvt"]
    assert warning.expression == "Bundle.entry[4].resource.onsetAge"
    assert "no onset" not in warning.diagnostics and "birth date" in warning.diagnostics


def test_a_dvt_whose_onset_period_has_only_an_end_is_a_history_from_that_end() -> None:
    """R4 ``onsetPeriod`` with only ``end`` (a Period's start is optional): the DVT began on or
    before 2024-01-15, a history of thrombosis from then (not "at every time"), and the warning
    names the period's end rather than saying "no onset"."""
    result = _evaluate(
        patient(birth="1968-04-02"),
        medication(),
        obs("w", "29463-7", 70, "kg", "2024-06-01", system=LOINC),
        administration("a1", "2024-06-03T09:00:00Z", dose=qty(70, "g"), rate=qty(150, "mL/h")),
        condition("dvt", SCT, "128053003", None, onsetPeriod={"end": "2024-01-15T08:00:00Z"}),
    )
    assert [(e.kind, e.start) for e in result.data.evidence] == [
        (RiskFactorKind.THROMBOSIS_HISTORY, date(2024, 1, 15))
    ]
    (warning,) = [i for i in result.issues if i.resource == "Condition/dvt"]
    assert warning.expression == "Bundle.entry[4].resource.onsetPeriod.end"
    assert "no onset" not in warning.diagnostics


def test_a_dvt_at_an_age_range_is_a_history_from_the_range_upper_end() -> None:
    """R4 ``onsetRange`` (an age range, as the Condition search parameter ``onset-age`` reads
    it): a DVT between 28 and 30 years, born 1968-04-02, recorded 2025-03-01, happened on or
    before 1999-04-01 (the day before the 31st birthday): a history from then, the 2024
    infusion checked against 3.3. Before: "at every time"-style "no onset" from its recorded
    date only."""
    result = _evaluate(
        patient(birth="1968-04-02"),
        medication(),
        obs("w", "29463-7", 70, "kg", "2024-06-01", system=LOINC),
        administration("a1", "2024-06-03T09:00:00Z", dose=qty(70, "g"), rate=qty(150, "mL/h")),
        condition(
            "dvt",
            SCT,
            "128053003",
            None,
            onsetRange={"low": _years(28), "high": _years(30)},
            recordedDate="2025-03-01",
        ),
    )
    assert [(e.kind, e.start) for e in result.data.evidence] == [
        (RiskFactorKind.THROMBOSIS_HISTORY, date(1999, 4, 1))
    ]
    (warning,) = [i for i in result.issues if i.resource == "Condition/dvt"]
    assert warning.expression == "Bundle.entry[4].resource.onsetRange.high"


# -- a thromboembolic AdverseEvent without a day (R4 AdverseEvent.date is 0..1) -------------------


def _dvt_event(**when: str) -> PatientResult:
    """An AdverseEvent as the R4 example ``adverseevent-example`` (actuality ``actual``, the
    event coded, ``subject``), http://hl7.org/fhir/R4/adverseevent-example.json.html, with its
    ``date`` left out (R4: 0..1) or given to the month only."""
    event = {
        "resourceType": "AdverseEvent",
        "id": "ae1",
        "actuality": "actual",
        "subject": {"reference": "Patient/p1"},
        "event": {"coding": [{"system": SCT, "code": "128053003"}], "text": "DVT"},
        **when,
    }
    return _evaluate(
        patient(birth="1968-04-02"),
        medication(),
        obs("w", "29463-7", 70, "kg", "2025-03-01", system=LOINC),
        administration("a1", "2025-03-03T09:00:00Z", dose=qty(70, "g"), rate=qty(150, "mL/h")),
        event,
    )


def test_a_thromboembolic_adverse_event_without_date_is_a_history_from_its_recorded_date() -> None:
    """No ``date``, ``recordedDate`` 2024-09-01: as a thromboembolic Condition with no onset
    (clinical spec §8), a history of thrombosis from its recorded date, the 2025 infusion
    checked against 3.3 (a rate finding at 3.5714), with a warning. Before: excluded with an
    error ("no date or detected"), maximum 4, no finding."""
    result = _dvt_event(recordedDate="2024-09-01")
    assert [i for i in result.issues if i.severity == "error"] == []
    assert result.data.events == []
    assert [(e.kind, e.source, e.start) for e in result.data.evidence] == [
        (RiskFactorKind.THROMBOSIS_HISTORY, "AdverseEvent/ae1", date(2024, 9, 1))
    ]
    assert [f.limit_mg_kg_min for f in result.evaluation.thrombosis.rate_findings] == [
        Decimal("3.3")
    ]
    (warning,) = [i for i in result.issues if i.resource == "AdverseEvent/ae1"]
    assert warning.severity == "warning"
    assert "not assessed for a temporal association" in warning.diagnostics


def test_a_thromboembolic_adverse_event_dated_to_the_month_is_a_history_from_its_end() -> None:
    """``date`` "2024-08" (a valid R4 dateTime): a history of thrombosis from 2024-08-31, with a
    warning at the date. Before: excluded with an error ("a partial date")."""
    result = _dvt_event(date="2024-08")
    assert [i for i in result.issues if i.severity == "error"] == []
    assert [(e.kind, e.start) for e in result.data.evidence] == [
        (RiskFactorKind.THROMBOSIS_HISTORY, date(2024, 8, 31))
    ]
    (warning,) = [i for i in result.issues if i.resource == "AdverseEvent/ae1"]
    assert warning.expression == "Bundle.entry[4].resource.date"
