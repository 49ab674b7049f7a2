"""An AdverseEvent's ``resultingCondition`` is what the event led to, not always the event.

R4 AdverseEvent.resultingCondition: "Information about the condition that occurred as a result
of the adverse event, such as hives due to the exposure to a substance (for example, a drug or a
chemical) or a broken leg as a result of the fall." A safety report of a pulmonary embolism from
another system often cites the hypoxaemia, the right heart strain or the chronic thromboembolic
pulmonary hypertension it caused. fhirtis took any Condition an AdverseEvent cites for "the same
event, counted once, there" and dropped the AdverseEvent: a pulmonary embolism during IVIG that
led to a non-thromboembolic Condition was no event, no AdverseEvent was derived, no history of
thrombosis counted (tee-risk Flag "none found", 4 mg/kg/min), and nothing said so (clinical spec
§5.3: "A TEE is a Condition (or an existing AdverseEvent) coded as one of …"; §5.1 history of
thrombosis; preamble "never guess silently"). The same when the Condition cited was a thrombosis
of another kind (a DVT cited by a PE report: the PE was lost), or one with no onset that places
it on a day (the report's own date was never assessed for a temporal association).

The AdverseEvent is now left out only where the Condition it cites carries the same event: a
Condition of the same kind of thromboembolism that places it on a day (or withdraws it)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from tests.fhir.builders import SCT, condition
from tests.fhir.tee_course import DVT, ONSET, PE
from tests.fhir.tee_course import derived_adverse_events as _derived_events
from tests.fhir.tee_course import evaluate_course as _evaluate

Json = dict[str, Any]
HYPOXAEMIA = "389087006"


def _report(code: str = PE, cites: str = "Condition/c1") -> Json:
    """A safety report of another system: an actual thromboembolic event citing a Condition."""
    return {
        "resourceType": "AdverseEvent",
        "id": "ae1",
        "actuality": "actual",
        "subject": {"reference": "Patient/p1"},
        "event": {"coding": [{"system": SCT, "code": code}], "text": "Pulmonary embolism"},
        "date": ONSET,
        "suspectEntity": [{"instance": {"reference": "MedicationAdministration/ma2"}}],
        "resultingCondition": [{"reference": cites}],
    }


def test_a_pe_that_led_to_another_condition_is_a_temporally_associated_event() -> None:
    result = _evaluate(condition("c1", SCT, HYPOXAEMIA, ONSET), _report())
    t = result.evaluation.thrombosis
    assert [a.event.source for a in t.associated_events] == ["AdverseEvent/ae1"]
    (ae,) = _derived_events(result)
    assert ae["event"]["coding"] == [{"system": SCT, "code": PE}]
    assert [s["instance"]["reference"] for s in ae["suspectEntity"]] == [
        "MedicationAdministration/ma1",
        "MedicationAdministration/ma2",
    ]
    # a history of thrombosis from its onset: the applicable maximum is the lower one
    assert [f.kind.value for f in t.risk_factors] == ["thrombosis-history"]
    assert t.max_rate_now.limit_mg_kg_min == Decimal("3.3")


def test_a_pe_citing_a_dvt_condition_is_an_event_of_its_own() -> None:
    result = _evaluate(condition("c1", SCT, DVT, ONSET), _report())
    t = result.evaluation.thrombosis
    kinds = sorted(a.event.kind.value for a in t.associated_events)
    assert kinds == ["deep-vein-thrombosis", "pulmonary-embolism"]
    codes = sorted(ae["event"]["coding"][0]["code"] for ae in _derived_events(result))
    assert codes == sorted([DVT, PE])


def test_a_dated_report_of_a_condition_without_onset_is_assessed_by_its_date() -> None:
    """The problem-list DVT has no onset (US Core makes it optional): the report's date places
    the event in the cycle's window."""
    result = _evaluate(condition("c1", SCT, DVT, None), _report(code=DVT))
    t = result.evaluation.thrombosis
    assert [a.event.source for a in t.associated_events] == ["AdverseEvent/ae1"]
    assert len(_derived_events(result)) == 1


def test_a_report_citing_the_condition_of_its_own_event_is_counted_once() -> None:
    """Control (unchanged): the Condition of the same kind, with its onset, carries the event."""
    result = _evaluate(condition("c1", SCT, PE, ONSET), _report())
    t = result.evaluation.thrombosis
    assert [a.event.source for a in t.associated_events] == ["Condition/c1"]
    (ae,) = _derived_events(result)
    assert ae["resultingCondition"] == [{"reference": "Condition/c1"}]


def test_a_report_citing_a_refuted_condition_of_its_event_stays_withdrawn() -> None:
    """Control (unchanged): the Condition of the event, refuted, withdraws it."""
    refuted = condition(
        "c1",
        SCT,
        PE,
        ONSET,
        verificationStatus={
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/condition-ver-status",
                    "code": "refuted",
                }
            ]
        },
    )
    result = _evaluate(refuted, _report())
    assert result.evaluation.thrombosis.associated_events == ()
    assert _derived_events(result) == []
