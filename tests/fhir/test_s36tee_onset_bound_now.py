"""A thromboembolic event dated only "on or before" a day after the data's latest time is a
history of thrombosis at the evaluation's time.

A thromboembolic Condition or AdverseEvent whose onset gives no day (recorded to the month only,
an ``onsetPeriod`` with only an end, an ``onsetAge``) and no ``recordedDate`` is read as a
history of thrombosis "from" the last day it may have begun (the month's last day, the period's
end, the day before the next birthday). That day is no time of the record, so the evaluation's
time (the latest record, as ``fhirtis evaluate`` and ``fhirtis run`` take it) may lie before it:
a pulmonary embolism reported for "2024-01" by another system, after infusions on 8 and 9
January, left the tee-risk Flag "none found" at 4 mg/kg/min, while the warning beside it said the
embolism was counted as a history of thrombosis (clinical spec §5.1 history of thrombosis, §5.2
3.3 mg/kg/min with any risk factor, §5.3 "an event during treatment is also, from its onset on,
a history risk factor"). The same event recorded with a day counts then, as the rule at the
evaluation's time says (an event counts there from the first instant its onset may be: "one at
that instant, or on that day with no time, has happened").

At the evaluation's time such an event now counts when it may have begun by then (its first
possible day on or before it); at an administration's start it still counts only from the last
day it may have begun (no rate finding rests on an onset that may have come after the start)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import orjson

from fhirtis.fhir.bundle import read_patient_bundle
from fhirtis.pipeline.offline import PatientResult, evaluate_patient_resources
from fhirtis.settings import Settings
from tests.fhir.builders import (
    LOINC,
    SCT,
    UCUM,
    administration,
    bundle,
    condition,
    medication,
    obs,
    patient,
    qty,
)
from tests.fhir.tee_course import DVT, PE, evaluate_course

Json = dict[str, Any]
HISTORY = "thrombosis-history"


def _flag(result: PatientResult) -> Json:
    (flag,) = [d.resource for d in result.derived if d.resource["resourceType"] == "Flag"]
    return flag


def _assert_history_now(result: PatientResult, source: str) -> None:
    t = result.evaluation.thrombosis
    assert [(f.kind.value, f.evidence) for f in t.risk_factors] == [(HISTORY, (source,))]
    assert t.max_rate_now.limit_mg_kg_min == Decimal("3.3")
    flag = _flag(result)
    assert flag["status"] == "active"
    assert HISTORY in flag["code"]["text"]


def test_an_adverse_event_dated_to_the_month_counts_now() -> None:
    report = {
        "resourceType": "AdverseEvent",
        "id": "ae1",
        "actuality": "actual",
        "subject": {"reference": "Patient/p1"},
        "event": {"coding": [{"system": SCT, "code": PE}]},
        "date": "2024-01",
    }
    _assert_history_now(evaluate_course(report), "AdverseEvent/ae1")


def test_a_condition_with_onset_to_the_month_counts_now() -> None:
    _assert_history_now(evaluate_course(condition("c1", SCT, DVT, "2024-01")), "Condition/c1")


def test_a_condition_whose_onset_period_has_only_an_end_counts_now() -> None:
    c = condition("c1", SCT, DVT, None, onsetPeriod={"end": "2024-01-10"})
    _assert_history_now(evaluate_course(c), "Condition/c1")


def test_a_condition_with_an_onset_age_counts_now() -> None:
    age = {"value": 53, "unit": "a", "system": UCUM, "code": "a"}
    c = condition("c1", SCT, DVT, None, onsetAge=age)
    _assert_history_now(evaluate_course(c), "Condition/c1")


def test_an_onset_that_cannot_have_begun_by_the_evaluation_does_not_count() -> None:
    """Control: recorded to a month after the data's latest time, the event surely came later."""
    result = evaluate_course(condition("c1", SCT, DVT, "2024-03"))
    assert result.evaluation.thrombosis.risk_factors == ()


def test_at_an_administration_it_counts_from_the_last_day_it_may_have_begun() -> None:
    """Control (unchanged): a rate above 3.3 mg/kg/min on 9 January is no finding for a DVT
    that may have begun on 10 January (onset period ending then)."""
    fast = administration(
        "ma2",
        "2024-01-09T09:00:00+01:00",
        "2024-01-09T15:00:00+01:00",
        dose=qty(70, "g"),
        rate={"value": 150, "unit": "mL/h", "system": UCUM, "code": "mL/h"},
    )
    c = condition("c1", SCT, DVT, None, onsetPeriod={"end": "2024-01-10"})
    doc = bundle(
        patient(),
        obs("w", "29463-7", 70, "kg", "2024-01-06T08:00:00Z", system=LOINC),
        medication(),
        fast,
        c,
    )
    result = evaluate_patient_resources(read_patient_bundle(orjson.dumps(doc)), Settings())
    assert result.evaluation.thrombosis.rate_findings == ()
