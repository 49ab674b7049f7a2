"""A conditional create whose condition matches several resources on the server, on the
Medplum-based test server.

R4 http.html#ccreate: "Multiple matches: The server returns a 412 Precondition Failed error
indicating the client's criteria were not selective enough" -- nothing is created, and sending
it again changes nothing while those resources stay. fhirtis's AdverseEvent is created on
subject, fhirtis's category, onset and coding (R4 AdverseEvent has no ``identifier`` search),
so two AdverseEvents that someone else stored in that shape (a copy of fhirtis's output made
by a migration or an interface engine, without fhirtis's identifier) make its create a 412.
That is not a version conflict to re-read and re-plan (fhirtis did, three times, then said
"still conflicting"): the run fails at once, saying which resource was not written and why,
and never sends the create again.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from fhirtis.fhir.plan import Action
from fhirtis.pipeline.server import RunStatus
from tests.e2e.test_run import load, search
from tests.e2e.test_s29a_replaced_event import CASES, _ours, run_case
from tests.e2e.test_write_withdraw import DERIVED_SYSTEM, STALE, _observation, run_once
from tests.fhir.patients import responder
from tests.fhir_test_server import FhirTestServer

Json = dict[str, Any]


def _copy_without_identifier(event: Json, rid: str) -> Json:
    copy = {k: v for k, v in event.items() if k not in ("id", "meta", "identifier")}
    return {**copy, "id": rid}


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_conditional_create_matching_several_is_not_written_and_said(
    fhir_server: FhirTestServer, fhir_base: str, case: str
) -> None:
    profile = CASES[case][0]
    load(fhir_base, responder(dvt_after_cycle=2, fast_admin=True))
    # fhirtis's AdverseEvent, then two copies of it without its identifier, then it is gone
    assert run_once(fhir_base).status is RunStatus.WRITTEN
    (event,) = _ours(fhir_base)
    for rid in ("copy-1", "copy-2"):
        httpx.put(
            f"{fhir_base}/AdverseEvent/{rid}", json=_copy_without_identifier(event, rid)
        ).raise_for_status()
    httpx.delete(f"{fhir_base}/AdverseEvent/{event['id']}").raise_for_status()
    # and fhirtis's earlier output it no longer derives: withdrawn all the same
    stale = _observation("stale", DERIVED_SYSTEM, STALE)
    httpx.put(f"{fhir_base}/Observation/stale", json=stale).raise_for_status()
    fhir_server.set_profile(profile)

    creates: list[int] = []

    def count(request: httpx.Request, response: httpx.Response) -> None:
        body = request.content.decode() if request.content else ""
        refused = response.status_code == 405  # a transaction, before it is learnt
        if (
            request.method == "POST"
            and not refused
            and (
                request.url.path.endswith("/AdverseEvent")
                or ('"url":"AdverseEvent"' in body.replace(" ", ""))
            )
        ):
            creates.append(response.status_code)

    run = run_case(fhir_base, case, after=count)
    assert run.status is RunStatus.FAILED
    assert len(creates) == 1, creates  # sent once: no re-plan, no retry
    error = run.error or ""
    assert "AdverseEvent" in error and event["identifier"]["value"] in error, error
    assert "several" in error and "412" in error, error
    assert "still conflicting" not in error, error
    assert run.error_code == "multiple-matches"
    ident = event["identifier"]["value"]
    assert [(n.resource_type, n.identifier) for n in run.not_written] == [("AdverseEvent", ident)]
    assert not run.unconfirmed
    fhir_server.set_profile("full")
    assert _ours(fhir_base) == []
    assert len(search(fhir_base, "AdverseEvent")) == 2
    # the rest was written and named
    assert ("Observation", STALE, Action.WITHDRAW) in {
        (w.resource_type, w.identifier, w.action) for w in run.written
    }
    assert httpx.get(f"{fhir_base}/Observation/stale").json()["status"] == "entered-in-error"
    named = {t["reference"] for p in search(fhir_base, "Provenance") for t in p["target"]}
    assert "Observation/stale" in named
