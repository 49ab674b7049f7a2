"""A DVT recorded both as a Condition and as an AdverseEvent, written to a FHIR server
(tests/fhir/test_s31h_one_event_twice.py says why). Before, the first run reported two
AdverseEvents created while the server stored one, its Provenance named a resource that did not
exist (404), and the next run created the other: three runs to settle, two derived AdverseEvents
for one clot. Now one AdverseEvent, every Provenance target exists, and the second run writes
nothing."""

from __future__ import annotations

import httpx

from fhirtis.pipeline.server import RunStatus
from tests.e2e.test_run import load, run, search
from tests.fhir.patients import responder
from tests.fhir_test_server import FhirTestServer


def test_one_clot_two_records_one_adverse_event_settled_in_one_run(
    fhir_server: FhirTestServer, fhir_base: str
) -> None:
    doc = responder(dvt_after_cycle=2)
    dvt = next(e["resource"] for e in doc["entry"] if e["resource"]["id"] == "dvt")
    doc["entry"].append(
        {
            "resource": {
                "resourceType": "AdverseEvent",
                "id": "dvt-ae",
                "actuality": "actual",
                "subject": {"reference": "Patient/p1"},
                "event": {"coding": [dvt["code"]["coding"][0]], "text": "DVT"},
                "date": dvt["onsetDateTime"],
            }
        }
    )
    load(fhir_base, doc)
    first = run(fhir_base)
    assert first.status is RunStatus.WRITTEN, first.error
    ours = [a for a in search(fhir_base, "AdverseEvent") if a.get("identifier")]
    assert len(ours) == 1 and ours[0]["resultingCondition"][0]["reference"].startswith(
        "Condition/dvt"
    )
    assert first.plan is not None
    assert first.plan.summary.get("create") == len(first.written)
    for p in search(fhir_base, "Provenance"):
        for target in p["target"]:
            reference = target["reference"].split("/_history")[0]
            assert httpx.get(f"{fhir_base}/{reference}").status_code == 200, reference
    fhir_server.reset_stats()
    again = run(fhir_base)
    assert again.status is RunStatus.UNCHANGED, again.error
    assert fhir_server.stats()["committed_writes"] == 0
