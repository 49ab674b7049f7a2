"""One thromboembolism recorded as two Conditions is one AdverseEvent written back.

Epic and Cerner record one DVT twice: as a problem-list item and as the encounter diagnosis of
the visit that found it (two Conditions of one kind, one onset day, often one with a time and
one with a date only). fhirtis derived one ``tee-temporally-associated`` AdverseEvent per
Condition, so the EHR got two adverse events for one clot (while ``fhirtis report`` counted it
once, tests/registry/test_s36tee_report_one_event_twice.py, and a Condition with a safety report
of it was one AdverseEvent, tests/e2e/test_s31h_one_event_twice.py). A pharmacovigilance reader
of the record counts adverse events (clinical spec §5.3: a TEE becomes *an* AdverseEvent; §7:
"the event, its onset, the suspect administrations").

Now Conditions of one TEE kind whose onsets are one instant, or fall on one calendar day where
one of them gives no time, are one event: one AdverseEvent whose ``resultingCondition`` names
each Condition (R4 0..*), with the onset of the most precise record, identified by the first
Condition in sorted order (the identifier the first Condition's AdverseEvent had, so an earlier
run's output is updated in place and the other withdrawn). Another kind, another day, or
another time of the same day (two TIAs an hour apart: one early, one not) stays another
event."""

from __future__ import annotations

from typing import Any

from rich.console import Console

from fhirtis.cli.render import print_patient
from fhirtis.fhir.derive import IDENTIFIER_SYSTEM, identifier_value
from fhirtis.pipeline.records import patient_summary
from fhirtis.pipeline.stored_output import _found_by_condition
from fhirtis.registry.report import build_report
from tests.fhir.builders import SCT, condition
from tests.fhir.tee_course import DVT, ONSET, PE
from tests.fhir.tee_course import derived_adverse_events as _adverse_events
from tests.fhir.tee_course import evaluate_course as _evaluate
from tests.fhir.tee_course import in_category as _in
from tests.fhir.tee_course import summary_record as _summary

Json = dict[str, Any]


def _problem(onset: str = "2024-01-10", code: str = DVT) -> Json:
    return condition("c1", SCT, code, onset, **_in("problem-list-item"))


def _diagnosis(onset: str = ONSET, code: str = DVT, cid: str = "c2") -> Json:
    return condition(cid, SCT, code, onset, **_in("encounter-diagnosis"))


def test_a_problem_list_dvt_and_its_encounter_diagnosis_are_one_adverse_event() -> None:
    result = _evaluate(_problem(), _diagnosis())
    (ae,) = _adverse_events(result)
    assert [r["reference"] for r in ae["resultingCondition"]] == ["Condition/c1", "Condition/c2"]
    # the onset of the record that gives its time: early (within 24 h of ma2's end)
    assert ae["date"] == ONSET
    assert ae["extension"][0]["valueBoolean"] is True
    assert ae["event"]["coding"] == [{"system": SCT, "code": DVT}]
    # identified by the first Condition in sorted order: what its own AdverseEvent was called
    assert ae["identifier"] == {
        "system": IDENTIFIER_SYSTEM,
        "value": identifier_value("tee-temporally-associated", "Patient/p1", "Condition/c1"),
    }
    (event,) = result.evaluation.thrombosis.associated_events
    assert event.event.sources == ("Condition/c2", "Condition/c1")


def test_the_adverse_event_does_not_depend_on_the_order_records_are_read() -> None:
    one = _adverse_events(_evaluate(_problem(), _diagnosis()))
    other = _adverse_events(_evaluate(_diagnosis(), _problem()))
    assert one == other
    derived = [d for d in _evaluate(_diagnosis(), _problem()).derived if d.match]
    assert all("resultingcondition=Condition/c1" in (d.match or "") for d in derived)


def test_two_conditions_of_one_instant_are_one_adverse_event() -> None:
    result = _evaluate(_problem(ONSET), _diagnosis(ONSET))
    (ae,) = _adverse_events(result)
    assert len(ae["resultingCondition"]) == 2


def test_one_instant_recorded_in_two_time_zones_is_one_event() -> None:
    """23:30 at UTC-5 on the 9th is 04:30Z on the 10th: their calendar days differ."""
    result = _evaluate(
        _problem("2024-01-09T23:30:00-05:00"), _diagnosis("2024-01-10T04:30:00+00:00")
    )
    (ae,) = _adverse_events(result)
    assert len(ae["resultingCondition"]) == 2


def test_the_summary_cli_and_report_count_it_once() -> None:
    result = _evaluate(_problem(), _diagnosis())
    record = _summary(result)
    (event,) = record["thrombosis"]["associated_events"]
    assert event["event"] == "Condition/c2"
    assert event["also"] == ["Condition/c1"]
    report = build_report([record])
    assert report.tee.events == 1
    assert report.tee.events_by_kind == {"deep-vein-thrombosis": 1}
    # counted once where the records are read, not merged afterwards by the report
    assert not any("same kind and onset" in w for w in report.warnings)


def test_the_tee_risk_flag_cites_every_record_of_the_thrombosis() -> None:
    result = _evaluate(_problem(), _diagnosis())
    (history,) = [
        f for f in result.evaluation.thrombosis.risk_factors if f.kind.value == "thrombosis-history"
    ]
    assert {e.split("/_history")[0] for e in history.evidence} == {"Condition/c1", "Condition/c2"}


def test_another_kind_or_another_day_stays_another_event() -> None:
    """Control: a PE on the same day, and a DVT the next day, are events of their own."""
    result = _evaluate(
        _problem(),
        _diagnosis(),
        _diagnosis(ONSET, PE, cid="c3"),
        _diagnosis("2024-01-11T08:00:00+01:00", cid="c4"),
    )
    events = _adverse_events(result)
    assert sorted(len(ae["resultingCondition"]) for ae in events) == [1, 1, 2]
    record = _summary(result)
    assert len(record["thrombosis"]["associated_events"]) == 3
    assert build_report([record]).tee.events == 3


def test_one_condition_alone_is_unchanged() -> None:
    """Control: one Condition, one AdverseEvent naming it, no ``also`` in the summary."""
    result = _evaluate(_diagnosis())
    (ae,) = _adverse_events(result)
    assert ae["resultingCondition"] == [{"reference": "Condition/c2"}]
    (event,) = _summary(result)["thrombosis"]["associated_events"]
    assert "also" not in event


def test_history_before_ivig_lists_every_record() -> None:
    result = _evaluate(_problem("2023-05-01"), _diagnosis("2023-05-01T10:00:00+02:00"))
    assert _adverse_events(result) == []
    assert sorted(_summary(result)["thrombosis"]["history_events"]) == [
        "Condition/c1",
        "Condition/c2",
    ]


def test_two_times_of_one_day_stay_two_events() -> None:
    """Control: two recorded times are two events (a crescendo of TIAs; tests/clinical
    test_onset_exactly_24_hours_after_is_early_25_is_not)."""
    result = _evaluate(
        _problem("2024-01-10T08:00:00+01:00"), _diagnosis("2024-01-10T20:00:00+01:00")
    )
    assert len(_adverse_events(result)) == 2


def test_a_date_alone_between_two_times_joins_the_first() -> None:
    """A date-only record on a day with two recorded times is one of them: the first (the
    choice is deterministic); the other time stays its own event."""
    result = _evaluate(
        _problem("2024-01-10"),
        _diagnosis("2024-01-10T08:00:00+01:00"),
        _diagnosis("2024-01-10T20:00:00+01:00", cid="c3"),
    )
    by_date = {ae["date"]: ae for ae in _adverse_events(result)}
    assert sorted(by_date) == ["2024-01-10T08:00:00+01:00", "2024-01-10T20:00:00+01:00"]
    assert [r["reference"] for r in by_date["2024-01-10T08:00:00+01:00"]["resultingCondition"]] == [
        "Condition/c1",
        "Condition/c2",
    ]


def test_the_write_condition_finds_a_stored_adverse_event_naming_the_first_condition() -> None:
    """The conditional create searches ``resultingcondition=Condition/c1``: a stored
    AdverseEvent of the event naming that Condition (and no other) is found, as the server's
    search finds it (what fhirtis predicts of the search must agree: withdrawal or update in
    place of earlier output, stored_output._successor)."""
    (derived,) = [
        d
        for d in _evaluate(_problem(), _diagnosis()).derived
        if d.resource["resourceType"] == "AdverseEvent"
    ]
    stored = {**derived.resource, "resultingCondition": [{"reference": "Condition/c1"}]}
    assert _found_by_condition(derived, stored)
    other = {**derived.resource, "resultingCondition": [{"reference": "Condition/c9"}]}
    assert not _found_by_condition(derived, other)


def test_fhirtis_evaluate_prints_one_line_naming_both_records() -> None:
    console = Console(record=True, width=250)
    result = _evaluate(_problem(), _diagnosis())
    print_patient(console, patient_summary(result.patient_ref, result.evaluation, []))
    lines = [x for x in console.export_text().splitlines() if "TEE temporally associated" in x]
    assert len(lines) == 1
    assert "(Condition/c2, Condition/c1)" in lines[0]
