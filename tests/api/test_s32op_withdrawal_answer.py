"""$myositis-evaluate when every input behind earlier output has been withdrawn.

A patient's IVIG administrations and core set Observations, evaluated and written back once,
are later all marked ``entered-in-error`` (charted on the wrong patient). The next evaluation
can read nothing, yet it has work to do: the derived resources written from those records are
withdrawn (clinical spec §7: "changed inputs update in place"; README: withdrawn output is
marked ``entered-in-error`` or deleted). The service answered ``422 this patient's data cannot be
evaluated`` all the same: with ``write=true`` after it had written the withdrawals (updates, a
delete and a Provenance), so an operation that changed the server's state was reported failed
(FHIR R4 http.html / operations.html: a 4xx says the request failed) and its answer did not say
what it had withdrawn; a dry run hid what would be withdrawn. A patient with no data at all,
evaluated with ``write=true``, had its tee-risk Flag and a Provenance written, then was answered
422 too. Now such a run is answered 200 with
its Bundle (what was written, or would be withdrawn); 422 stays for a run with nothing to
evaluate that changed nothing and finds nothing to withdraw or update.
"""

from __future__ import annotations

import copy
from typing import Any

import httpx

from tests.api.test_evaluate_api import AUTH, OP, service
from tests.e2e.test_run import load
from tests.fhir.builders import bundle, patient
from tests.fhir.patients import responder
from tests.fhir_test_server import FhirTestServer

Json = dict[str, Any]
WRITE: Json = {"resourceType": "Parameters", "parameter": [{"name": "write", "valueBoolean": True}]}
DRY: Json = {"resourceType": "Parameters"}


def _inputs_withdrawn(data: Json) -> Json:
    gone = copy.deepcopy(data)
    for e in gone["entry"]:
        if e["resource"]["resourceType"] in ("Observation", "MedicationAdministration"):
            e["resource"]["status"] = "entered-in-error"
    return gone


def _outcome(r: httpx.Response) -> list[Json]:
    body = r.json()
    assert body["resourceType"] == "Bundle", r.text
    first = body["entry"][0]["resource"]
    assert first["resourceType"] == "OperationOutcome"
    issues: list[Json] = first["issue"]
    return issues


async def _written_then_withdrawn(api: httpx.AsyncClient, fhir_base: str) -> None:
    data = responder(dvt_after_cycle=2)
    load(fhir_base, data)
    first = await api.post(OP, headers=AUTH, json=WRITE)
    assert first.status_code == 200, first.text
    load(fhir_base, _inputs_withdrawn(data))


async def test_a_write_that_withdraws_earlier_output_is_answered_with_what_it_did(
    fhir_base: str, fhir_server: FhirTestServer
) -> None:
    async with service(fhir_base) as api:
        await _written_then_withdrawn(api, fhir_base)
        fhir_server.reset_stats()
        r = await api.post(OP, headers=AUTH, json=WRITE)
        committed = fhir_server.stats()["committed_writes"]
        assert committed > 0  # the withdrawals were made ...
        assert r.status_code == 200, r.text  # ... so the operation did not fail
        issues = _outcome(r)
        assert issues[0]["diagnostics"] == "written"
        withdrawn = [i for i in issues if i["diagnostics"].endswith(": withdrawn")]
        assert any(i["diagnostics"].startswith("Observation ") for i in withdrawn)
        assert any(i["diagnostics"].startswith("AdverseEvent ") for i in withdrawn)
        derived = {e["resource"]["resourceType"] for e in r.json()["entry"][1:]}
        assert not derived & {"Observation", "AdverseEvent", "DetectedIssue"}
        assert any(i["code"] == "required" and i["severity"] == "warning" for i in issues)
        # nothing is left to do: the same call again writes nothing
        fhir_server.reset_stats()
        again = await api.post(OP, headers=AUTH, json=WRITE)
        assert again.status_code in (200, 422), again.text
        assert fhir_server.stats()["committed_writes"] == 0


async def test_a_dry_run_says_what_would_be_withdrawn(
    fhir_base: str, fhir_server: FhirTestServer
) -> None:
    async with service(fhir_base) as api:
        await _written_then_withdrawn(api, fhir_base)
        fhir_server.reset_stats()
        r = await api.post(OP, headers=AUTH, json=DRY)
        assert r.status_code == 200, r.text
        issues = _outcome(r)
        assert issues[0]["diagnostics"] == "dry run: nothing was written"
        assert any(i["diagnostics"].endswith(": would be withdrawn") for i in issues)
        assert fhir_server.stats()["committed_writes"] == 0
        get = await api.get(OP, headers=AUTH)
        assert get.status_code == 200, get.text


async def test_a_422_never_follows_a_write(fhir_base: str, fhir_server: FhirTestServer) -> None:
    load(fhir_base, bundle(patient()))
    async with service(fhir_base) as api:
        dry = await api.post(OP, headers=AUTH, json=DRY)
        assert dry.status_code == 422, dry.text  # nothing to evaluate, nothing done
        fhir_server.reset_stats()
        r = await api.post(OP, headers=AUTH, json=WRITE)
        if fhir_server.stats()["committed_writes"]:
            assert r.status_code == 200, r.text
            assert _outcome(r)[0]["diagnostics"] == "written"
        else:
            assert r.status_code == 422, r.text
        fhir_server.reset_stats()
        again = await api.post(OP, headers=AUTH, json=WRITE)
        assert fhir_server.stats()["committed_writes"] == 0
        assert again.status_code == 422, again.text  # nothing to evaluate, nothing left to do
