"""One thromboembolism recorded twice is one event in the cohort report.

EHRs record one DVT more than once: on the problem list and as the encounter diagnosis of the
visit that found it (two Conditions), or as a Condition and as a safety report (an AdverseEvent of
the same coding and onset; tests/fhir/test_s31h_one_event_twice.py). The summary record lists
each record as a temporally associated event (and fhirtis writes one AdverseEvent for the
Condition and the report), but `fhirtis report` counted every record: one DVT in one cycle was
"2 events, 200 per 100 infusion cycles" (its Wilson interval dropped as events > cycles), two
events by kind, and two in the patient's row. A registry analyst reads that as two thromboses
(clinical spec §5.3: a TEE is "a Condition (or an existing AdverseEvent)" coded as one of the
events; fhirtis itself derives one AdverseEvent for the Condition and the report).

Records of one kind and one onset now count as one event, with a warning naming the patient;
events of another kind or onset stay distinct."""

from __future__ import annotations

from typing import Any

from fhirtis.registry.report import build_report
from tests.fhir.builders import SCT, condition
from tests.fhir.tee_course import DVT, ONSET, PE, evaluate_course, summary_record
from tests.fhir.tee_course import in_category as _in

Json = dict[str, Any]


def _summary(*events: Json) -> Json:
    return summary_record(evaluate_course(*events))


def _report_of(*events: Json) -> Any:
    return build_report([_summary(*events)])


def test_a_dvt_on_the_problem_list_and_as_an_encounter_diagnosis_is_one_event() -> None:
    report = _report_of(
        condition("c1", SCT, DVT, "2024-01-10", **_in("problem-list-item")),
        condition("c2", SCT, DVT, "2024-01-10", **_in("encounter-diagnosis")),
    )
    assert report.tee.events == 1
    assert report.tee.per_100_cycles == 100
    assert report.tee.events_by_kind == {"deep-vein-thrombosis": 1}
    (row,) = report.rows
    assert row.associated_tee == 1
    # (s36ae: the two Conditions are one event in the summary record already, which names the
    # other as `also`; the report merges records of one kind and onset left in older records)
    (event,) = _summary(
        condition("c1", SCT, DVT, "2024-01-10", **_in("problem-list-item")),
        condition("c2", SCT, DVT, "2024-01-10", **_in("encounter-diagnosis")),
    )["thrombosis"]["associated_events"]
    assert event["also"] == ["Condition/c2"]


def test_a_dvt_as_a_condition_and_as_a_safety_report_is_one_event() -> None:
    safety_report = {
        "resourceType": "AdverseEvent",
        "id": "ae1",
        "actuality": "actual",
        "subject": {"reference": "Patient/p1"},
        "event": {"coding": [{"system": SCT, "code": DVT}]},
        "date": ONSET,
    }
    report = _report_of(condition("c1", SCT, DVT, ONSET), safety_report)
    assert report.tee.events == 1
    assert report.tee.early_events == 1
    assert [s.events for s in report.tee.strata if s.cycles] == [1]


def test_events_of_another_kind_or_onset_stay_distinct() -> None:
    """Control: a DVT and a PE of one onset, and a DVT the next day, are three events."""
    report = _report_of(
        condition("c1", SCT, DVT, ONSET),
        condition("c2", SCT, PE, ONSET),
        condition("c3", SCT, DVT, "2024-01-11T08:00:00+01:00"),
    )
    assert report.tee.events == 3
    assert not any("same kind and onset" in w for w in report.warnings)
