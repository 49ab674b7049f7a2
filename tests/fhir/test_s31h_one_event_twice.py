"""One thromboembolic event recorded twice, and the AdverseEvents fhirtis derives from it.

R4 AdverseEvent has no ``identifier`` search parameter, so the conditional create of a derived
AdverseEvent (and the search for fhirtis's earlier one) matches on patient, fhirtis's category,
the onset, the event's coding and, for an event read from a Condition, the resulting Condition
(tests/fhir/test_derive_plan.py). An EHR that records one DVT both on the problem list (a
Condition) and as an AdverseEvent (a common shape: the safety report beside the diagnosis), or
one event as two AdverseEvents of the same coding and onset, made two derived AdverseEvents
whose conditions match the same stored resource: the first run reported both created while the
server stored one (the second create was answered "exists"), its Provenance named a resource
that was never made, and each later run posted a Provenance again (audit s31d, against the e2e
server).

Now an AdverseEvent is derived once per event as the conditions can tell events apart: where
one derived AdverseEvent's condition would match another's (its search parameters a subset of
the other's), only the more specific one (the Condition's, which names its resulting Condition)
is derived. Events of another coding or onset stay distinct."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

import orjson

from fhirtis.fhir.bundle import read_patient_bundle
from fhirtis.pipeline.offline import PatientResult, evaluate_patient_resources
from fhirtis.settings import Settings
from tests.fhir.builders import (
    LOINC,
    SCT,
    administration,
    bundle,
    condition,
    medication,
    obs,
    patient,
    qty,
)

Json = dict[str, Any]
ONSET = "2024-01-09T08:00:00+01:00"
DVT = "128053003"


def _event(aid: str, code: str = DVT, onset: str = ONSET) -> Json:
    return {
        "resourceType": "AdverseEvent",
        "id": aid,
        "actuality": "actual",
        "subject": {"reference": "Patient/p1"},
        "event": {"coding": [{"system": SCT, "code": code}]},
        "date": onset,
    }


def _evaluate(*events: Json) -> PatientResult:
    doc = bundle(
        patient(),
        obs("w", "29463-7", 70, "kg", "2024-01-06T08:00:00Z", system=LOINC),
        medication(),
        administration(
            "ma0", "2024-01-08T09:00:00+01:00", "2024-01-08T20:00:00+01:00", dose=qty(140, "g")
        ),
        *events,
    )
    return evaluate_patient_resources(read_patient_bundle(orjson.dumps(doc)), Settings())


def _adverse_events(result: PatientResult) -> list[Json]:
    plan = result.plan().bundle
    assert plan is not None
    return [e for e in plan["entry"] if e["resource"]["resourceType"] == "AdverseEvent"]


def _no_condition_matches_another(entries: list[Json]) -> None:
    params = [set(parse_qsl(e["request"]["ifNoneExist"])) for e in entries]
    for i, mine in enumerate(params):
        for j, other in enumerate(params):
            assert i == j or not mine <= other, (entries[i]["request"], entries[j]["request"])


def test_a_dvt_on_the_problem_list_and_as_an_adverse_event_is_one_derived_event() -> None:
    result = _evaluate(condition("dvt", SCT, DVT, ONSET), _event("ae-dvt"))
    # both are read, as one temporally associated event (s36ae2: the safety report joins the
    # Condition's event, thrombosis.one_event_per_clot)
    (event,) = result.evaluation.thrombosis.associated_events
    assert event.event.sources == ("Condition/dvt", "AdverseEvent/ae-dvt")
    entries = _adverse_events(result)
    _no_condition_matches_another(entries)
    (ae,) = [e["resource"] for e in entries]
    assert ae["resultingCondition"] == [{"reference": "Condition/dvt"}]


def test_one_event_as_two_adverse_events_is_one_derived_event() -> None:
    result = _evaluate(_event("dvt-left"), _event("dvt-right"))
    entries = _adverse_events(result)
    _no_condition_matches_another(entries)
    assert len(entries) == 1


def test_events_of_another_coding_or_onset_stay_distinct() -> None:
    """Control: a DVT and a PE of one onset, and two DVTs a day apart, are four events."""
    result = _evaluate(
        _event("dvt1"),
        _event("pe1", code="59282003"),
        _event("dvt2", onset="2024-01-10T08:00:00+01:00"),
        condition("dvt3", SCT, DVT, "2024-01-11T08:00:00+01:00"),
    )
    entries = _adverse_events(result)
    _no_condition_matches_another(entries)
    assert len(entries) == 4
