"""An EHR's AdverseEvent re-recorded under a new id (same onset, same coding), written back with
single requests or a batch, on the Medplum-based test server.

fhirtis's AdverseEvent is identified by the event it is derived from (its business identifier
names the source), but R4 AdverseEvent has no ``identifier`` search parameter, so its
conditional create (``If-None-Exist``) matches on subject, fhirtis's category, the onset and the
event's coding (fhirtis.fhir.derive). When the EHR replaces its AdverseEvent (deleted and
entered again, as a corrected record is), the next run derives a new AdverseEvent and withdraws
the old one (deleted: R4 AdverseEvent has no status). The new one's condition matches the old
one: a create sent before that delete is answered "exists" (R4 http.html#ccreate: one match →
200, nothing created) and the delete then removes the only copy. R4 http.html#trules processes
a transaction's DELETEs before its POSTs for exactly this reason; single requests and batches
must leave the server as a transaction would: after ONE run it holds the new AdverseEvent.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from fhirtis.fhir.plan import Action
from fhirtis.pipeline import stored_output
from fhirtis.pipeline.server import PatientRun, RunStatus
from tests.e2e.test_run import load, search
from tests.e2e.test_write_outcome import _Hooked
from tests.e2e.test_write_withdraw import DERIVED_SYSTEM, run_once
from tests.fhir.patients import responder
from tests.fhir_test_server import FhirTestServer

Json = dict[str, Any]
SCT = "http://snomed.info/sct"


def _ehr_event(rid: str) -> Json:
    """A hospital-recorded DVT (the shape of tests/data/dvt-cited-by-adverse-event.json's
    AdverseEvent, without a resulting Condition), after cycle 2 of ``responder``."""
    return {
        "resourceType": "AdverseEvent",
        "id": rid,
        "actuality": "actual",
        "event": {
            "coding": [{"system": SCT, "code": "128053003"}],
            "text": "Deep vein thrombosis, left leg",
        },
        "subject": {"reference": "Patient/p1"},
        "date": "2024-02-13T10:00:00Z",
    }


def _ours(base: str) -> list[Json]:
    """fhirtis's AdverseEvents on the server."""
    return [
        r
        for r in search(base, "AdverseEvent")
        if (r.get("identifier") or {}).get("system") == DERIVED_SYSTEM
    ]


def _load_with_ehr_event(base: str) -> None:
    """``responder``'s patient and the EHR's AdverseEvent ``ehr-ae-1`` on the server."""
    patient = responder()
    patient["entry"].append({"resource": _ehr_event("ehr-ae-1")})
    load(base, patient)


def _replace_ehr_event(fhir_server: FhirTestServer, base: str) -> None:
    """The EHR's record deleted and the same event entered again as ``ehr-ae-2`` (the server
    left on its ``full`` profile)."""
    fhir_server.set_profile("full")
    httpx.delete(f"{base}/AdverseEvent/ehr-ae-1").raise_for_status()
    httpx.put(f"{base}/AdverseEvent/ehr-ae-2", json=_ehr_event("ehr-ae-2")).raise_for_status()


def refuse_transactions(request: httpx.Request) -> httpx.Response | None:
    """A server with batch but no transaction (R4 CapabilityStatement.rest.interaction): a
    transaction Bundle is answered 405 ``not-supported``, so fhirtis learns it and writes in a
    batch."""
    if request.method == "POST" and b'"type":"transaction"' in request.content.replace(b" ", b""):
        outcome = {
            "resourceType": "OperationOutcome",
            "issue": [{"severity": "error", "code": "not-supported"}],
        }
        return httpx.Response(405, json=outcome)
    return None


#: case → test-server profile, and whether transactions are refused (writes in a batch)
CASES: dict[str, tuple[str, bool]] = {
    "single": ("no-transaction", False),
    "batch": ("full", True),
    "transaction": ("full", False),
}


def run_case(
    base: str,
    case: str,
    after: Callable[[httpx.Request, httpx.Response], httpx.Response | None] | None = None,
) -> PatientRun:
    """``run_once`` as ``case`` writes (single requests, or a batch), ``after`` seeing every
    answer."""
    batch = CASES[case][1]
    return run_once(base, transport=_Hooked(refuse_transactions if batch else None, after))


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_replaced_ehr_event_keeps_its_adverse_event_after_one_run(
    fhir_server: FhirTestServer, fhir_base: str, case: str
) -> None:
    profile = CASES[case][0]
    _load_with_ehr_event(fhir_base)
    fhir_server.set_profile(profile)
    first = run_case(fhir_base, case)
    assert first.status is RunStatus.WRITTEN, first.error
    (old,) = _ours(fhir_base)

    # the EHR replaces its record: the old one deleted, the same event entered again
    _replace_ehr_event(fhir_server, fhir_base)
    fhir_server.set_profile(profile)

    sent: list[str] = []

    def count(request: httpx.Request, response: httpx.Response) -> None:
        if request.method == "POST" and request.url.path.endswith("/fhir"):
            sent.append(json.loads(request.content).get("type"))

    second = run_case(fhir_base, case, after=count)
    assert second.status is RunStatus.WRITTEN, second.error
    assert ("transaction" in sent) is (case == "transaction")
    assert ("batch" in sent) is (case != "single")
    fhir_server.set_profile("full")
    (new,) = _ours(fhir_base)  # one run: the old one updated in place to name its new source
    assert new["identifier"]["value"] != old["identifier"]["value"]
    assert new["id"] == old["id"]  # s30: updated, not deleted and created (HAPI refuses that)
    assert new["suspectEntity"] == old["suspectEntity"]
    # the run's Provenance names the update
    provenances = search(fhir_base, "Provenance")
    named = {t["reference"] for p in provenances for t in p["target"]}
    assert f"AdverseEvent/{new['id']}" in named

    fhir_server.set_profile(profile)
    fhir_server.reset_stats()
    third = run_case(fhir_base, case)
    assert third.status is RunStatus.UNCHANGED, third.error
    assert fhir_server.stats()["committed_writes"] == 0


def _not_taken_for_its_successor(monkeypatch: pytest.MonkeyPatch) -> None:
    """fhirtis does not take its stored AdverseEvent for its successor's copy (s30: one that the
    successor's condition finds, compared as the server's search compares, is updated in place
    instead), as where a server stores it in a form fhirtis cannot compare: the successor's
    conditional create still finds it, so the delete must make way first."""
    monkeypatch.setattr(stored_output, "_successor", lambda *_: None)


def _written_then_replaced(
    fhir_server: FhirTestServer, base: str, monkeypatch: pytest.MonkeyPatch
) -> Json:
    """fhirtis's AdverseEvent written with single requests, then the EHR's event replaced, the
    old AdverseEvent not taken for its successor, and the server back on single requests."""
    _load_with_ehr_event(base)
    fhir_server.set_profile("no-transaction")
    assert run_once(base).status is RunStatus.WRITTEN
    (old,) = _ours(base)
    _replace_ehr_event(fhir_server, base)
    _not_taken_for_its_successor(monkeypatch)
    fhir_server.set_profile("no-transaction")
    return old


def test_a_create_failing_after_the_delete_that_made_way_for_it_is_said(
    fhir_server: FhirTestServer, fhir_base: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The delete goes first; when the create after it fails (422, a validating server), the
    run fails, reports the withdrawal written and the create unconfirmed, its Provenance names
    the withdrawal, and the next run writes the new AdverseEvent."""
    old = _written_then_replaced(fhir_server, fhir_base, monkeypatch)

    def refuse_event_create(request: httpx.Request) -> httpx.Response | None:
        if request.method == "POST" and request.url.path.endswith("/AdverseEvent"):
            outcome = {
                "resourceType": "OperationOutcome",
                "issue": [{"severity": "error", "code": "processing"}],
            }
            return httpx.Response(422, json=outcome)
        return None

    failed = run_once(fhir_base, transport=_Hooked(before=refuse_event_create))
    assert failed.status is RunStatus.FAILED
    assert ("AdverseEvent", Action.WITHDRAW) in {
        (w.resource_type, w.action) for w in failed.written
    }
    assert [(t, a) for t, _, a in failed.unconfirmed if t == "AdverseEvent"] == [
        ("AdverseEvent", Action.CREATE)
    ]
    fhir_server.set_profile("full")
    assert _ours(fhir_base) == []
    named = {t["reference"] for p in search(fhir_base, "Provenance") for t in p["target"]}
    assert f"AdverseEvent/{old['id']}" in named
    fhir_server.set_profile("no-transaction")

    again = run_once(fhir_base)
    assert again.status is RunStatus.WRITTEN, again.error
    fhir_server.set_profile("full")
    (new,) = _ours(fhir_base)
    assert new["identifier"]["value"] != old["identifier"]["value"]


def test_a_delete_whose_answers_are_lost_still_lets_its_successor_be_created(
    fhir_server: FhirTestServer, fhir_base: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The delete that makes way is made but every answer to it is lost (a gateway's 504; a
    DELETE is sent again until the retries run out): the run fails saying the delete failed,
    yet the successor's create is still sent (and made: the old one is gone), so the server is
    never left without the AdverseEvent; the withdrawal is reported unconfirmed."""
    old = _written_then_replaced(fhir_server, fhir_base, monkeypatch)

    def lose_delete(request: httpx.Request, response: httpx.Response) -> httpx.Response | None:
        if request.method == "DELETE" and request.url.path.endswith(f"/AdverseEvent/{old['id']}"):
            return httpx.Response(504, text="gateway timeout")
        return None

    failed = run_once(
        fhir_base,
        transport=_Hooked(after=lose_delete),
        retry_budget_seconds=1,
        retry_backoff_base_seconds=0.01,
        retry_backoff_max_seconds=0.02,
    )
    assert failed.status is RunStatus.FAILED
    assert "DELETE" in (failed.error or ""), failed.error
    assert [(t, a) for t, _, a in failed.unconfirmed] == [("AdverseEvent", Action.WITHDRAW)]
    fhir_server.set_profile("full")
    (new,) = _ours(fhir_base)
    assert new["identifier"]["value"] != old["identifier"]["value"]
    assert ("AdverseEvent", Action.CREATE) in {(w.resource_type, w.action) for w in failed.written}
