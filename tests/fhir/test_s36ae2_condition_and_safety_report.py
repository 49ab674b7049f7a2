"""One thromboembolism recorded as a Condition and as another system's AdverseEvent is one event.

A TEE is "a Condition (or an existing AdverseEvent)" (clinical spec §5.3); one clot is one
event. An EHR's encounter diagnosis of a DVT at 08:00 and a safety-reporting system's
AdverseEvent of the same DVT dated only to that day (no ``resultingCondition`` naming the
Condition) were two temporally associated events: fhirtis derived two
``tee-temporally-associated`` AdverseEvents (their conditional creates differ by ``date=``, so
the s31h match, tests/fhir/test_s31h_one_event_twice.py, did not join them) and ``fhirtis
report`` counted two events (their onsets are written differently).

Now such an AdverseEvent joins the Condition's event under the rule that joins Conditions
(thrombosis.one_event_per_clot): one kind, one instant, or one day where one record gives no
time. The derived AdverseEvent stays the Condition's: identified by it, naming it (and only
Conditions) as ``resultingCondition``; the safety report is named among the event's records
(summary ``also``) and as a source entity of the write's Provenance (R4 AdverseEvent has no
element that references another AdverseEvent). Another day, another time of the day, or
another kind stays another event; AdverseEvents with no Condition are as before."""

from __future__ import annotations

from typing import Any

from fhirtis.fhir.derive import IDENTIFIER_SYSTEM, identifier_value
from fhirtis.registry.report import build_report
from tests.fhir.builders import SCT, condition
from tests.fhir.tee_course import DVT, ONSET, PE
from tests.fhir.tee_course import derived_adverse_events as _adverse_events
from tests.fhir.tee_course import evaluate_course as _evaluate
from tests.fhir.tee_course import safety_report as _safety_report
from tests.fhir.tee_course import summary_record as _summary

Json = dict[str, Any]


def _dvt(cid: str = "c2", onset: str = ONSET, code: str = DVT) -> Json:
    return condition(cid, SCT, code, onset)


def _identifier(ref: str) -> Json:
    return {
        "system": IDENTIFIER_SYSTEM,
        "value": identifier_value("tee-temporally-associated", "Patient/p1", ref),
    }


def test_a_timed_condition_and_a_date_only_safety_report_are_one_adverse_event() -> None:
    result = _evaluate(_dvt(), _safety_report())
    (ae,) = _adverse_events(result)
    # the Condition's AdverseEvent: its identifier, its resulting Condition, its onset
    assert ae["identifier"] == _identifier("Condition/c2")
    assert ae["resultingCondition"] == [{"reference": "Condition/c2"}]
    assert ae["date"] == ONSET
    assert ae["extension"][0]["valueBoolean"] is True  # within 24 h of ma2's end
    (derived,) = [d for d in result.derived if d.resource["resourceType"] == "AdverseEvent"]
    assert "resultingcondition=Condition/c2" in (derived.match or "")
    (event,) = result.evaluation.thrombosis.associated_events
    assert event.event.sources == ("Condition/c2", "AdverseEvent/ae1")


def test_the_safety_report_is_named_in_the_summary_and_the_provenance() -> None:
    result = _evaluate(_dvt(), _safety_report())
    record = _summary(result)
    (event,) = record["thrombosis"]["associated_events"]
    assert event["event"] == "Condition/c2"
    assert event["also"] == ["AdverseEvent/ae1"]
    report = build_report([record])
    assert report.tee.events == 1
    assert not any("same kind and onset" in w for w in report.warnings)
    plan = result.plan().bundle
    assert plan is not None
    (prov,) = [
        e["resource"] for e in plan["entry"] if e["resource"]["resourceType"] == "Provenance"
    ]
    entities = {e["what"]["reference"].split("/_history")[0] for e in prov["entity"]}
    assert {"Condition/c2", "AdverseEvent/ae1"} <= entities


def test_a_date_only_condition_and_a_timed_safety_report_stay_the_conditions() -> None:
    """The safety report gives the time (the onset, early); the Condition still identifies the
    derived AdverseEvent and is its only resulting Condition."""
    result = _evaluate(_dvt("c1", "2024-01-10"), _safety_report(date=ONSET))
    (ae,) = _adverse_events(result)
    assert ae["identifier"] == _identifier("Condition/c1")
    assert ae["resultingCondition"] == [{"reference": "Condition/c1"}]
    assert ae["date"] == ONSET
    assert ae["extension"][0]["valueBoolean"] is True
    (event,) = _summary(result)["thrombosis"]["associated_events"]
    assert sorted([event["event"], *event["also"]]) == ["AdverseEvent/ae1", "Condition/c1"]


def test_one_instant_condition_and_safety_report_are_one_event_in_the_summary() -> None:
    """The s31h shape (one coding, one onset): one derived AdverseEvent as before, and now one
    event in the summary too."""
    result = _evaluate(_dvt(), _safety_report(date=ONSET))
    (ae,) = _adverse_events(result)
    assert ae["identifier"] == _identifier("Condition/c2")
    assert ae["resultingCondition"] == [{"reference": "Condition/c2"}]
    (event,) = _summary(result)["thrombosis"]["associated_events"]
    assert event["also"] == ["AdverseEvent/ae1"]


def test_two_conditions_and_a_safety_report_are_one_adverse_event() -> None:
    result = _evaluate(_dvt("c1", "2024-01-10"), _dvt(), _safety_report())
    (ae,) = _adverse_events(result)
    assert ae["identifier"] == _identifier("Condition/c1")
    assert ae["resultingCondition"] == [
        {"reference": "Condition/c1"},
        {"reference": "Condition/c2"},
    ]
    assert ae["date"] == ONSET
    (event,) = _summary(result)["thrombosis"]["associated_events"]
    assert event["event"] == "Condition/c2"
    assert event["also"] == ["AdverseEvent/ae1", "Condition/c1"]


def test_the_result_does_not_depend_on_the_order_records_are_read() -> None:
    one = _evaluate(_dvt(), _safety_report())
    other = _evaluate(_safety_report(), _dvt())
    assert _adverse_events(one) == _adverse_events(other)
    assert _summary(one)["thrombosis"] == _summary(other)["thrombosis"]


def test_another_day_time_or_kind_stays_another_event() -> None:
    """Controls: a safety report of the next day, of another time of the day, or of a PE."""
    for report in (
        _safety_report(date="2024-01-11"),
        _safety_report(date="2024-01-10T20:00:00+01:00"),
        _safety_report(code=PE),
    ):
        result = _evaluate(_dvt(), report)
        events = _adverse_events(result)
        assert len(events) == 2, report
        assert sorted(len(ae.get("resultingCondition", [])) for ae in events) == [0, 1]
        assert len(_summary(result)["thrombosis"]["associated_events"]) == 2


def test_safety_reports_with_no_condition_are_as_before() -> None:
    """Two AdverseEvents and no Condition: one of one onset is derived once (s31h), one dated
    a day and one timed that day are two, as before (no Condition to carry the event)."""
    same = _evaluate(_safety_report("ae1", ONSET), _safety_report("ae2", ONSET))
    (ae,) = _adverse_events(same)
    assert "resultingCondition" not in ae
    assert len(_summary(same)["thrombosis"]["associated_events"]) == 2
    alone = _evaluate(_safety_report("ae1"), _safety_report("ae2", ONSET))
    assert len(_adverse_events(alone)) == 2
    events = _summary(alone)["thrombosis"]["associated_events"]
    assert len(events) == 2 and not any("also" in e for e in events)


def test_a_safety_report_citing_its_condition_is_counted_there_as_before() -> None:
    """Control (s36tee): a report naming the Condition as resultingCondition is not an event of
    its own, whatever its date."""
    cited = {**_safety_report(), "resultingCondition": [{"reference": "Condition/c2"}]}
    result = _evaluate(_dvt(), cited)
    (ae,) = _adverse_events(result)
    assert ae["resultingCondition"] == [{"reference": "Condition/c2"}]
    (event,) = _summary(result)["thrombosis"]["associated_events"]
    assert "also" not in event
