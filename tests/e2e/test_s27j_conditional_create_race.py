"""Two writers' conditional creates of the same derived resource on a server whose conditional
create is not atomic, in single-request and batch write mode (fhirtis/pipeline/write.py
``write_singles``, ``write_batch``).

Published shapes: hapifhir/hapi-fhir issue #3141 ("Duplicate record creation possible with
conditional create (ifNoneExist / If-None-Exist parameter); race condition?", HAPI 5.4.1 to
5.5.1): parallel conditional creates of the same resource each answer **201 Created**, and >1
"identical" records are stored; later conditional creates then fail with "Failed to CREATE
resource with match URL ... because this search matched 2 resources" (hapifhir/hapi-fhir issue
#4597 and PR #4598: fixed in HAPI 6.6 by a unique index). microsoft/fhir-server issue #1382
("Concurrent conditional creates results in duplicate data", Azure API for FHIR, open): the
same. A batch-response entry as HAPI answers a create: ``status`` "201 Created", ``location``
"Observation/<id>/_history/1" (hapi.fhir.org transaction/batch responses).

A 201 to a conditional create therefore does not prove the resource is the only copy: as after
a transaction's conditional creates and after search-then-create, the writer searches the
identifier again, keeps the copy with the lowest id (every writer picks the same) and deletes the
others where the server allows delete.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import httpx
import pytest
from pytest_httpx import HTTPXMock

from fhirtis.fhir.codes import IDENTIFIER_SYSTEM
from fhirtis.io import FhirClient, FhirClientConfig
from fhirtis.pipeline.server import PatientRun, RunStatus, settle
from tests.e2e.test_s27b_hapi_create_race import (
    IDENT,
    Evaluated,
    conditional_create_statement,
)

Json = dict[str, Any]
BASE = "https://hapi5.example.org/fhir"


def _searchset(found: Sequence[Json]) -> Json:
    return {
        "resourceType": "Bundle",
        "type": "searchset",
        "entry": [{"resource": r, "search": {"mode": "match"}} for r in found],
    }


class _RacyServer:
    """HAPI 5.x / Azure: the other writer's conditional create of the same resource runs at the
    same time as ours; both are answered 201 Created and both copies are stored (``a1``, the
    other writer's, and ``b2``, ours)."""

    def __init__(self, batch: bool) -> None:
        self.batch = batch
        self.stored: list[Json] = []
        self.sent: list[httpx.Request] = []

    def _create(self, body: Json) -> Json:
        theirs = {**body, "id": "a1", "meta": {"versionId": "1"}}
        ours = {**body, "id": "b2", "meta": {"versionId": "1"}}
        self.stored += [theirs, ours]
        return ours

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.sent.append(request)
        path = request.url.path.removeprefix(httpx.URL(BASE).path).strip("/")
        if path == "metadata":
            return httpx.Response(
                200, json=conditional_create_statement(batch=self.batch, delete=True)
            )
        if request.method == "GET" and path in ("Observation", "Provenance"):
            found = self.stored if path == "Observation" else []
            return httpx.Response(200, json=_searchset(found))
        if request.method == "POST" and path == "Observation":
            assert request.headers.get("If-None-Exist") == f"identifier={IDENTIFIER_SYSTEM}|{IDENT}"
            made = self._create(json.loads(request.content))
            return httpx.Response(
                201, json=made, headers={"Location": f"{BASE}/Observation/b2/_history/1"}
            )
        if request.method == "POST" and path == "":
            bundle = json.loads(request.content)
            assert bundle["type"] == "batch"
            answers: list[Json] = []
            for entry in bundle["entry"]:
                if entry["request"]["method"] == "GET":  # the batch of searches
                    found = self.stored if entry["request"]["url"].startswith("Obs") else []
                    answers.append({"resource": _searchset(found), "response": {"status": "200"}})
                    continue
                assert entry["request"]["ifNoneExist"] == f"identifier={IDENTIFIER_SYSTEM}|{IDENT}"
                made = self._create(entry["resource"])
                answers.append(
                    {
                        "response": {
                            "status": "201 Created",
                            "location": f"Observation/{made['id']}/_history/1",
                            "etag": "1",
                        }
                    }
                )
            return httpx.Response(
                200, json={"resourceType": "Bundle", "type": "batch-response", "entry": answers}
            )
        if request.method == "DELETE" and path.startswith("Observation/"):
            rid = path.split("/")[1]
            self.stored = [r for r in self.stored if r["id"] != rid]
            return httpx.Response(204)
        if request.method == "POST" and path == "Provenance":
            return httpx.Response(
                201,
                json={**json.loads(request.content), "id": "prov"},
                headers={"Location": f"{BASE}/Provenance/prov/_history/1"},
            )
        return httpx.Response(404, json={"resourceType": "OperationOutcome", "issue": []})

    def writes(self, method: str, path: str) -> list[httpx.Request]:
        return [
            r
            for r in self.sent
            if r.method == method and r.url.path.removeprefix("/fhir/").startswith(path)
        ]


async def _settle(server: _RacyServer, httpx_mock: HTTPXMock) -> PatientRun:
    httpx_mock.add_callback(server, is_reusable=True)
    async with FhirClient(FhirClientConfig(base_url=BASE)) as client:
        return await settle(client, "p1", Evaluated(), write=True)


@pytest.mark.parametrize("batch", [False, True], ids=["single", "batch"])
async def test_a_conditional_create_answered_201_is_checked_for_a_concurrent_copy(
    httpx_mock: HTTPXMock, batch: bool
) -> None:
    server = _RacyServer(batch)
    run = await _settle(server, httpx_mock)
    assert run.status is RunStatus.WRITTEN, run.error
    # the copy with the lowest id (the other writer's) is kept; ours is deleted
    assert [r["id"] for r in server.stored] == ["a1"]
    (deleted,) = server.writes("DELETE", "Observation")
    assert deleted.url.path.endswith("/Observation/b2")
