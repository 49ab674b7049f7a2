"""A conditional create answered 200 "exists" where the resource its condition found is not
what fhirtis would create: another writer stored it between fhirtis's read of its earlier
output and its create, from other data (fhirtis/pipeline/write.py ``write_singles``,
``write_batch``, ``write_transaction``).

R4 http.html#ccreate, "One Match: The server ignores the post and returns 200 OK" (SAP Health
Data Services for FHIR, "Create a FHIR Resource with Conditional Create": 200, "One match",
"Ignores the request"; Oracle Healthcare Data Repository FHIR guide, "Create": "if a matching
Patient resource is found, no new resource will be created or modified"): nothing of the POST
is stored, so the derived content it carried is on the server only if the resource
found already holds it. Two writers of one patient (two ``fhirtis run --write``, a cohort run
from a Bulk export snapshot and ``$myositis-evaluate write=true`` on live data) that read at
different times derive different content under the same business identifier (what, for whom,
which dates, algorithm version: DOMAIN.md §7 "changed inputs update in place"). Without a
re-read the run reported ``written`` while the server kept the other writer's older value
(here a TIS of 12.5 where the evaluation gives 62.5), and nothing fixes it later where the
registry's ledger skips the patient as unchanged. The created resource is now re-read and
re-planned, as a 412 is: a different one is updated in place (``If-Match`` on the version
found), and the run's Provenance names that update.

A 200 whose body is the resource found (``Prefer: return=representation``, R4 http.html#ops)
holding exactly what fhirtis would create needs no re-read.

Shapes: a single ``POST`` answered 200 with the stored resource and ``Location``
``[base]/Observation/a1/_history/1`` (HAPI FHIR); a batch- or transaction-response entry
``{"status": "200 OK", "location": "Observation/a1/_history/1"}`` and no resource (HAPI FHIR's
``BaseTransactionProcessor``, ``Prefer: return=minimal`` for entries).
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from pytest_httpx import HTTPXMock

from fhirtis.pipeline.server import RunStatus
from tests.e2e._s29c_create_race import (
    IF_NONE_EXIST,
    RaceServer,
    conditional_create_statement,
    derived_observation,
    searchset,
    settle_on,
)

Json = dict[str, Any]
BASE = "https://hapi.example.org/fhir"
OURS = derived_observation().resource["valueQuantity"]  # what this run derives: 62.5
THEIRS = {"value": 12.5}  # what the other writer derived from older data


def _statement(mode: str) -> Json:
    statement = conditional_create_statement(batch=mode == "batch", delete=True)
    if mode == "transaction":
        statement["rest"][0]["interaction"] = [{"code": "transaction"}]
    return statement


class _OtherWriterFirst(RaceServer):
    """HAPI-like: fhirtis's earlier output is searched before any copy is stored; the other
    writer's create lands just before fhirtis's conditional create, which finds it (200)."""

    def __init__(self, mode: str, theirs: Json) -> None:
        super().__init__(BASE, _statement(mode))
        self.theirs = theirs
        self.provenances: list[Json] = []

    def _found(self) -> Json:
        if not self.stored:  # the other writer's create, just before ours
            self.stored.append(
                {**derived_observation().resource, "valueQuantity": self.theirs}
                | {"id": "a1", "meta": {"versionId": "1"}}
            )
        return self.stored[0]

    def _put(self, rid: str, body: Json, if_match: str | None) -> Json:
        (stored,) = [r for r in self.stored if r["id"] == rid]
        assert if_match == f'W/"{stored["meta"]["versionId"]}"'
        version = str(int(stored["meta"]["versionId"]) + 1)
        updated = {**body, "meta": {"versionId": version}}
        self.stored = [updated if r["id"] == rid else r for r in self.stored]
        return updated

    def create(self, body: Json) -> httpx.Response:
        found = self._found()
        return httpx.Response(
            200, json=found, headers={"Location": f"{BASE}/Observation/a1/_history/1"}
        )

    def __call__(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path.removeprefix(httpx.URL(self.base).path).strip("/")
        if request.method == "PUT" and path.startswith("Observation/"):
            self.sent.append(request)
            rid = path.split("/")[1]
            updated = self._put(rid, json.loads(request.content), request.headers.get("If-Match"))
            version = updated["meta"]["versionId"]
            return httpx.Response(
                200,
                json=updated,
                headers={"Location": f"{BASE}/Observation/{rid}/_history/{version}"},
            )
        if request.method == "POST" and path == "Provenance":
            self.provenances.append(json.loads(request.content))
        return super().__call__(request)

    def batch(self, bundle: Json) -> httpx.Response:
        answers: list[Json] = []
        for entry in bundle["entry"]:
            request = entry["request"]
            if request["method"] == "GET":  # a batch of searches
                found = self.stored if request["url"].startswith("Obs") else []
                answers.append({"resource": searchset(found), "response": {"status": "200"}})
            elif request["method"] == "POST" and request["url"] == "Observation":
                assert request["ifNoneExist"] == IF_NONE_EXIST
                self._found()
                location = "Observation/a1/_history/1"
                answers.append({"response": {"status": "200 OK", "location": location}})
            elif request["method"] == "PUT":
                rid = request["url"].split("/")[1]
                updated = self._put(rid, entry["resource"], request.get("ifMatch"))
                location = f"Observation/{rid}/_history/{updated['meta']['versionId']}"
                answers.append({"response": {"status": "200 OK", "location": location}})
            elif request["method"] == "POST" and request["url"] == "Provenance":
                self.provenances.append(entry["resource"])
                location = f"Provenance/prov{len(self.provenances)}/_history/1"
                answers.append({"response": {"status": "201 Created", "location": location}})
            else:
                raise AssertionError(request)
        kind = f"{bundle['type']}-response"
        return httpx.Response(200, json={"resourceType": "Bundle", "type": kind, "entry": answers})


MODES = ["single", "batch", "transaction"]


@pytest.mark.parametrize("mode", MODES)
async def test_a_create_answered_exists_with_other_content_is_updated_in_place(
    httpx_mock: HTTPXMock, mode: str
) -> None:
    server = _OtherWriterFirst(mode, THEIRS)
    run = await settle_on(server, httpx_mock)
    assert run.status is RunStatus.WRITTEN, run.error
    (stored,) = server.stored
    assert stored["id"] == "a1"
    assert stored["valueQuantity"] == OURS  # what this run derived, not the other writer's
    # what the run reports written is what it wrote: the update of the resource found
    assert [(w.action.value, w.reference) for w in run.written] == [("update", "Observation/a1")]
    # the last Provenance names the update
    assert {"reference": "Observation/a1"} in server.provenances[-1]["target"]


async def test_a_create_answered_exists_with_this_content_is_not_read_again(
    httpx_mock: HTTPXMock,
) -> None:
    """The 200's body is the resource found and holds what fhirtis would create: nothing to
    re-read, update or name (the other writer's Provenance names it)."""
    server = _OtherWriterFirst("single", OURS)
    run = await settle_on(server, httpx_mock)
    assert run.status is RunStatus.WRITTEN, run.error
    assert server.stored[0]["valueQuantity"] == OURS
    assert server.writes("PUT", "Observation") == []
    searches = server.writes("GET", "Observation")
    assert len(searches) == 1  # the one read of earlier output before the create
    assert server.provenances == []
