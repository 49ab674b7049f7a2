"""A DVT recorded as a Condition with a time and as another system's AdverseEvent dated only to
that day (no resultingCondition), written to a FHIR server
(tests/fhir/test_s36ae2_condition_and_safety_report.py says why). Before, two
``tee-temporally-associated`` AdverseEvents were created for one clot (their conditional creates
differ by ``date=``). Now one, the Condition's, is created; every Provenance target exists and
names the safety report among its sources; a re-run writes nothing."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import httpx
import pytest

from fhirtis.clinical import thrombosis
from fhirtis.clinical.facts import TeeEvent
from fhirtis.pipeline.server import RunStatus
from tests.e2e.test_run import load, run, search
from tests.fhir.patients import responder
from tests.fhir_test_server import FhirTestServer


def _condition_and_report() -> dict[str, Any]:
    doc = responder(dvt_after_cycle=2)
    dvt = next(e["resource"] for e in doc["entry"] if e["resource"]["id"] == "dvt")
    assert "T" in dvt["onsetDateTime"]  # the Condition gives a time; the report a day only
    doc["entry"].append(
        {
            "fullUrl": "AdverseEvent/dvt-report",
            "resource": {
                "resourceType": "AdverseEvent",
                "id": "dvt-report",
                "actuality": "actual",
                "subject": {"reference": "Patient/p1"},
                "event": {"coding": [dvt["code"]["coding"][0]], "text": "DVT"},
                "date": dvt["onsetDateTime"][:10],
            },
        }
    )
    return doc


def test_first_run_writes_one_adverse_event_and_a_rerun_nothing(
    fhir_server: FhirTestServer, fhir_base: str
) -> None:
    doc = _condition_and_report()
    dvt = next(e["resource"] for e in doc["entry"] if e["resource"]["id"] == "dvt")
    load(fhir_base, doc)
    first = run(fhir_base)
    assert first.status is RunStatus.WRITTEN, first.error
    ours = [a for a in search(fhir_base, "AdverseEvent") if a.get("identifier")]
    assert len(ours) == 1
    assert [r["reference"].split("/_history")[0] for r in ours[0]["resultingCondition"]] == [
        "Condition/dvt"
    ]
    assert ours[0]["date"] == dvt["onsetDateTime"].replace("Z", "+00:00")  # the Condition's
    assert first.plan is not None
    assert first.plan.summary.get("create") == len(first.written)
    provenances = search(fhir_base, "Provenance")
    assert any(
        e["what"]["reference"].split("/_history")[0] == "AdverseEvent/dvt-report"
        for p in provenances
        for e in p["entity"]
    )
    for p in provenances:
        for target in p["target"]:
            reference = target["reference"].split("/_history")[0]
            assert httpx.get(f"{fhir_base}/{reference}").status_code == 200, reference
    fhir_server.reset_stats()
    again = run(fhir_base)
    assert again.status is RunStatus.UNCHANGED, again.error
    assert fhir_server.stats()["committed_writes"] == 0


def test_over_the_old_output_one_run_settles_on_the_conditions_adverse_event(
    fhir_server: FhirTestServer, fhir_base: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The version before stored one AdverseEvent for the pair, whichever conditional create
    came first (the other's ``date=`` of the day matched it): here the safety report's, without
    ``resultingCondition``. The upgrade's run writes the Condition's and withdraws that one;
    then it rests."""
    load(fhir_base, _condition_and_report())
    merge = thrombosis.one_event_per_clot

    def conditions_only(events: Iterable[TeeEvent]) -> tuple[TeeEvent, ...]:
        records = tuple(events)
        reports = tuple(e for e in records if not e.source.startswith("Condition/"))
        return merge(e for e in records if e.source.startswith("Condition/")) + reports

    with monkeypatch.context() as old:
        old.setattr(thrombosis, "one_event_per_clot", conditions_only)
        before = run(fhir_base)
    assert before.status is RunStatus.WRITTEN, before.error
    (stored,) = [a for a in search(fhir_base, "AdverseEvent") if a.get("identifier")]
    assert "resultingCondition" not in stored  # the defect: the Condition's was "exists"

    upgrade = run(fhir_base)
    assert upgrade.status is RunStatus.WRITTEN, upgrade.error
    events = [w for w in upgrade.written if w.resource_type == "AdverseEvent"]
    assert sorted(w.verb for w in events) == ["created", "withdrawn"]
    ours = [a for a in search(fhir_base, "AdverseEvent") if a.get("identifier")]
    assert len(ours) == 1
    assert [r["reference"].split("/_history")[0] for r in ours[0]["resultingCondition"]] == [
        "Condition/dvt"
    ]

    fhir_server.reset_stats()
    again = run(fhir_base)
    assert again.status is RunStatus.UNCHANGED, again.error
    assert fhir_server.stats()["committed_writes"] == 0
