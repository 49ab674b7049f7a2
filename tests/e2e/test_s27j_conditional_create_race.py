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

from typing import Any

import httpx
import pytest
from pytest_httpx import HTTPXMock

from fhirtis.pipeline.server import RunStatus
from tests.e2e._s29c_create_race import (
    IF_NONE_EXIST,
    RaceServer,
    conditional_create_statement,
    searchset,
    settle_on,
)

Json = dict[str, Any]
BASE = "https://hapi5.example.org/fhir"


class _RacyServer(RaceServer):
    """HAPI 5.x / Azure: the other writer's conditional create of the same resource runs at the
    same time as ours; both are answered 201 Created and both copies are stored (``a1``, the
    other writer's, and ``b2``, ours)."""

    def __init__(self, batch: bool) -> None:
        super().__init__(BASE, conditional_create_statement(batch=batch, delete=True))

    def _both(self, body: Json) -> Json:
        theirs = {**body, "id": "a1", "meta": {"versionId": "1"}}
        ours = {**body, "id": "b2", "meta": {"versionId": "1"}}
        self.stored += [theirs, ours]
        return ours

    def create(self, body: Json) -> httpx.Response:
        made = self._both(body)
        return httpx.Response(
            201, json=made, headers={"Location": f"{BASE}/Observation/b2/_history/1"}
        )

    def batch(self, bundle: Json) -> httpx.Response:
        assert bundle["type"] == "batch"
        answers: list[Json] = []
        for entry in bundle["entry"]:
            if entry["request"]["method"] == "GET":  # the batch of searches
                found = self.stored if entry["request"]["url"].startswith("Obs") else []
                answers.append({"resource": searchset(found), "response": {"status": "200"}})
                continue
            assert entry["request"]["ifNoneExist"] == IF_NONE_EXIST
            made = self._both(entry["resource"])
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


@pytest.mark.parametrize("batch", [False, True], ids=["single", "batch"])
async def test_a_conditional_create_answered_201_is_checked_for_a_concurrent_copy(
    httpx_mock: HTTPXMock, batch: bool
) -> None:
    server = _RacyServer(batch)
    run = await settle_on(server, httpx_mock)
    assert run.status is RunStatus.WRITTEN, run.error
    # the copy with the lowest id (the other writer's) is kept; ours is deleted
    assert [r["id"] for r in server.stored] == ["a1"]
    (deleted,) = server.writes("DELETE", "Observation")
    assert deleted.url.path.endswith("/Observation/b2")
    # the copy kept holds what this run wrote: nothing to update (the shared server takes PUTs)
    assert server.writes("PUT", "Observation") == []
