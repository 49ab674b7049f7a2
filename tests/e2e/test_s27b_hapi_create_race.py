"""Two writers' conditional creates of the same derived resource on HAPI FHIR 6.6+, in
single-request write mode (no transaction, no batch: fhirtis/pipeline/write.py
``write_singles``). HAPI keeps a unique index of conditional-create match URLs
(``HFJ_RES_SEARCH_URL``, hapifhir/hapi-fhir PR #4598 "Possible duplication of resources on
conditional create/update"; hapifhir/hapi-fhir-jpaserver-starter issue #826: a unique constraint
violation in hfj_res_search_url answered as ``ResourceVersionConflictException``): the loser of
the race gets **409** and an OperationOutcome whose diagnostics start "HAPI-0550:" (hapi-fhir
HapiTransactionService: ``throw new ResourceVersionConflictException(Msg.code(550) +
e.getMessage(), e, oo)``; ResourceVersionConflictException.STATUS_CODE is 409; the DAO's message
for a unique-index failure is "HAPI-0824: The operation has failed with a unique index
constraint failure ...", hapi-fhir's FhirResourceDaoR4ComboUniqueParamTest).

The create was not made; the other writer's resource is the one. As the transaction and batch
paths do on a 409 (re-read and re-plan), the run searches the identifier again and re-plans:
identical → nothing more is written; different → an If-Match update of that resource. Never a
second create. If the search finds none, or several, the run fails and says why.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from pytest_httpx import HTTPXMock

from fhirtis.pipeline.server import RunStatus
from tests.e2e._s29c_create_race import (
    RaceServer,
    conditional_create_statement,
    derived_observation,
    settle_on,
)

Json = dict[str, Any]
BASE = "https://hapi.example.org/fhir"
HAPI_0550 = (
    "HAPI-0550: HAPI-0824: The operation has failed with a unique index constraint failure. "
    "This probably means that the operation was trying to create/update a resource that would "
    "have resulted in a duplicate value for a unique index."
)


def _copy(rid: str, value: float) -> Json:
    """The other writer's copy, as HAPI stores it (id, meta)."""
    resource = derived_observation().resource
    return {
        **resource,
        "id": rid,
        "meta": {"versionId": "1", "lastUpdated": "2026-01-05T12:00:01.000+00:00"},
        "valueQuantity": {"value": value},
    }


class _Hapi(RaceServer):
    """A HAPI-like server where another writer's conditional create wins the race: the first
    POST of the Observation stores ``theirs`` (the other writer's) and is answered 409
    HAPI-0550; later POSTs would create (so a duplicate shows)."""

    def __init__(self, theirs: list[Json]) -> None:
        super().__init__(BASE, conditional_create_statement())
        self.theirs = theirs

    def create(self, body: Json) -> httpx.Response:
        if not self.stored:
            self.stored = [dict(r) for r in self.theirs]  # the other writer won
            outcome = {
                "resourceType": "OperationOutcome",
                "issue": [{"severity": "error", "code": "processing", "diagnostics": HAPI_0550}],
            }
            return httpx.Response(409, json=outcome)
        made = {**body, "id": "dup", "meta": {"versionId": "1"}}
        self.stored.append(made)
        return httpx.Response(
            201, json=made, headers={"Location": f"{BASE}/Observation/dup/_history/1"}
        )


async def test_the_race_lost_to_an_identical_resource_writes_nothing_more(
    httpx_mock: HTTPXMock,
) -> None:
    server = _Hapi([_copy("theirs", 62.5)])
    run = await settle_on(server, httpx_mock)
    assert run.status is RunStatus.UNCHANGED, run.error
    assert len(server.writes("POST", "Observation")) == 1  # never created a second time
    assert server.writes("PUT", "Observation") == []
    assert server.writes("POST", "Provenance") == []  # the other writer names what it made
    assert [r["id"] for r in server.stored] == ["theirs"]


async def test_the_race_lost_to_a_different_resource_updates_it_with_if_match(
    httpx_mock: HTTPXMock,
) -> None:
    server = _Hapi([_copy("theirs", 40)])
    run = await settle_on(server, httpx_mock)
    assert run.status is RunStatus.WRITTEN, run.error
    assert len(server.writes("POST", "Observation")) == 1
    (put,) = server.writes("PUT", "Observation")
    assert put.url.path.endswith("/Observation/theirs")
    assert put.headers["If-Match"] == 'W/"1"'
    assert json.loads(put.content)["valueQuantity"] == {"value": 62.5}
    (prov,) = server.writes("POST", "Provenance")
    assert [t["reference"] for t in json.loads(prov.content)["target"]] == ["Observation/theirs"]
    assert [r["id"] for r in server.stored] == ["theirs"]
    assert [w.reference for w in run.written] == ["Observation/theirs"]


@pytest.mark.parametrize(
    ("theirs", "says"),
    [([], "found none"), ([_copy("a1", 62.5), _copy("a2", 40)], "found 2")],
    ids=["none", "several"],
)
async def test_a_409_the_search_does_not_explain_fails_the_run_and_says_why(
    httpx_mock: HTTPXMock, theirs: list[Json], says: str
) -> None:
    server = _Hapi(theirs)
    run = await settle_on(server, httpx_mock)
    assert run.status is RunStatus.FAILED
    assert run.error is not None and "409" in run.error and says in run.error, run.error
    assert len(server.writes("POST", "Observation")) == 1  # not created a second time
    assert server.writes("PUT", "Observation") == []
