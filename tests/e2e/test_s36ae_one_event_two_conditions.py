"""One DVT recorded as two Conditions (problem list and encounter diagnosis), written to a FHIR
server (tests/fhir/test_s36ae_one_event_two_conditions.py says why): one AdverseEvent naming
both, and a re-run writes nothing. Over the output of the version before (one AdverseEvent per
Condition), the first Condition's AdverseEvent is updated in place (same identifier, now naming
both Conditions) and the second, no longer derived, is withdrawn, in one run; then it rests."""

from __future__ import annotations

from typing import Any

import pytest

from fhirtis.clinical import thrombosis
from fhirtis.clinical.facts import TeeEvent
from fhirtis.pipeline.server import RunStatus
from tests.e2e.test_run import load, run, search
from tests.fhir.patients import responder
from tests.fhir.test_conformance import _errors, _run_validator
from tests.fhir_test_server import FhirTestServer

Json = dict[str, Any]
CATEGORY = "http://terminology.hl7.org/CodeSystem/condition-category"


def _two_records() -> Json:
    doc = responder(dvt_after_cycle=2)
    dvt = next(e["resource"] for e in doc["entry"] if e["resource"]["id"] == "dvt")
    dvt["category"] = [{"coding": [{"system": CATEGORY, "code": "problem-list-item"}]}]
    diagnosis = {
        **dvt,
        "id": "dvt-visit",
        # the visit's diagnosis: the same day, no time
        "onsetDateTime": dvt["onsetDateTime"][:10],
        "category": [{"coding": [{"system": CATEGORY, "code": "encounter-diagnosis"}]}],
    }
    doc["entry"].append({"fullUrl": "Condition/dvt-visit", "resource": diagnosis})
    return doc


def test_first_run_writes_one_adverse_event_and_a_rerun_nothing(
    fhir_server: FhirTestServer, fhir_base: str
) -> None:
    load(fhir_base, _two_records())
    first = run(fhir_base)
    assert first.status is RunStatus.WRITTEN, first.error
    ours = [a for a in search(fhir_base, "AdverseEvent") if a.get("identifier")]
    assert len(ours) == 1
    assert sorted(r["reference"].split("/_history")[0] for r in ours[0]["resultingCondition"]) == [
        "Condition/dvt",
        "Condition/dvt-visit",
    ]
    # what a consumer reads conforms to fhirtis's profile (resultingCondition 0..*)
    results = _run_validator([], ours)
    assert not _errors(results), _errors(results)
    fhir_server.reset_stats()
    again = run(fhir_base)
    assert again.status is RunStatus.UNCHANGED, again.error
    assert fhir_server.stats()["committed_writes"] == 0


def test_over_the_old_output_one_update_in_place_and_one_withdrawal(
    fhir_server: FhirTestServer, fhir_base: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    load(fhir_base, _two_records())

    def each_record_an_event(events: Any) -> tuple[TeeEvent, ...]:
        return tuple(events)

    # the version before: one AdverseEvent per Condition
    with monkeypatch.context() as old:
        old.setattr(thrombosis, "one_event_per_clot", each_record_an_event)
        before = run(fhir_base)
    assert before.status is RunStatus.WRITTEN, before.error
    old_events = {
        a["identifier"]["value"]: a
        for a in search(fhir_base, "AdverseEvent")
        if a.get("identifier")
    }
    assert len(old_events) == 2

    upgrade = run(fhir_base)
    assert upgrade.status is RunStatus.WRITTEN, upgrade.error
    events = [w for w in upgrade.written if w.resource_type == "AdverseEvent"]
    assert sorted(w.verb for w in events) == ["updated", "withdrawn"]
    ours = [a for a in search(fhir_base, "AdverseEvent") if a.get("identifier")]
    assert len(ours) == 1
    (kept,) = ours
    # the first Condition's AdverseEvent, in place: its id and identifier
    assert kept["identifier"]["value"] in old_events
    assert kept["id"] == old_events[kept["identifier"]["value"]]["id"]
    assert len(kept["resultingCondition"]) == 2

    fhir_server.reset_stats()
    again = run(fhir_base)
    assert again.status is RunStatus.UNCHANGED, again.error
    assert fhir_server.stats()["committed_writes"] == 0
