"""A DVT written back while one Condition recorded it, then recorded again by the EHR under an
id that sorts first (tests/fhir/test_s36rev_event_record_added.py says why): the next run
updates the one AdverseEvent in place (its id; now naming both Conditions), withdraws nothing,
and the clot keeps one AdverseEvent; a run after it writes nothing."""

from __future__ import annotations

from typing import Any

from fhirtis.pipeline.server import RunStatus
from tests.e2e.test_run import load, run, search
from tests.fhir.patients import responder
from tests.fhir_test_server import FhirTestServer

Json = dict[str, Any]
CATEGORY = "http://terminology.hl7.org/CodeSystem/condition-category"


def _ours(base: str) -> list[Json]:
    return [a for a in search(base, "AdverseEvent") if a.get("identifier")]


def test_a_condition_added_later_updates_the_adverse_event_in_place(
    fhir_server: FhirTestServer, fhir_base: str
) -> None:
    doc = responder(dvt_after_cycle=2)
    load(fhir_base, doc)
    first = run(fhir_base)
    assert first.status is RunStatus.WRITTEN, first.error
    (before,) = _ours(fhir_base)

    dvt = next(e["resource"] for e in doc["entry"] if e["resource"]["id"] == "dvt")
    listed = {
        **dvt,
        "id": "clot-list",  # sorts before "dvt": the event's first Condition now
        "onsetDateTime": dvt["onsetDateTime"][:10],  # the same day, no time
        "category": [{"coding": [{"system": CATEGORY, "code": "problem-list-item"}]}],
    }
    load(fhir_base, {"entry": [{"resource": listed}]})
    second = run(fhir_base)
    assert second.status is RunStatus.WRITTEN, second.error
    events = [w for w in second.written if w.resource_type == "AdverseEvent"]
    assert [w.verb for w in events] == ["updated"]
    (after,) = _ours(fhir_base)
    assert after["id"] == before["id"]
    assert sorted(r["reference"].split("/_history")[0] for r in after["resultingCondition"]) == [
        "Condition/clot-list",
        "Condition/dvt",
    ]

    fhir_server.reset_stats()
    again = run(fhir_base)
    assert again.status is RunStatus.UNCHANGED, again.error
    assert fhir_server.stats()["committed_writes"] == 0
