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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from pytest_httpx import HTTPXMock

from fhirtis.fhir.codes import IDENTIFIER_SYSTEM
from fhirtis.fhir.derive import Derived
from fhirtis.fhir.plan import WritePlan, plan_writes
from fhirtis.io import FhirClient, FhirClientConfig
from fhirtis.pipeline.server import PatientRun, RunStatus, settle
from tests.io._s25_srv_fake import resource_entry

Json = dict[str, Any]
BASE = "https://hapi.example.org/fhir"
IDENT = "tis-0123456789abcdef01234567"
RECORDED = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
HAPI_0550 = (
    "HAPI-0550: HAPI-0824: The operation has failed with a unique index constraint failure. "
    "This probably means that the operation was trying to create/update a resource that would "
    "have resulted in a duplicate value for a unique index."
)


def derived_observation() -> Derived:
    resource = {
        "resourceType": "Observation",
        "identifier": [{"system": IDENTIFIER_SYSTEM, "value": IDENT}],
        "status": "final",
        "code": {
            "coding": [{"system": "http://fhirtis.org/fhir/CodeSystem/fhirtis", "code": "tis"}]
        },
        "subject": {"reference": "Patient/p1"},
        "valueQuantity": {"value": 62.5},
    }
    return Derived(resource, IDENT)


@dataclass
class Evaluated:
    """One derived Observation, planned as an evaluation plans its output."""

    derived: Sequence[Derived] = field(default_factory=lambda: [derived_observation()])

    def plan(self, existing: Mapping[str, Json] | None = None) -> WritePlan:
        return plan_writes(self.derived, ["Observation/src"], RECORDED, existing)


def conditional_create_statement(*, batch: bool = False, delete: bool = False) -> Json:
    """HAPI's statement, as far as this write goes: Observation with conditional create and an
    identifier search (and ``delete``); Provenance created; no transaction; batch only with
    ``batch`` (else single requests)."""
    interactions = ("read", "search-type", "create", "update") + (("delete",) if delete else ())
    observation = resource_entry(
        "Observation", ("identifier", "subject", "patient"), interactions=interactions
    )
    observation["conditionalCreate"] = True
    provenance = resource_entry("Provenance", ("target",), interactions=("create",))
    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "kind": "instance",
        "fhirVersion": "4.0.1",
        "format": ["json"],
        "rest": [
            {
                "mode": "server",
                "interaction": [{"code": "batch"}] if batch else [],
                "resource": [observation, provenance],
            }
        ],
    }


def _copy(rid: str, value: float) -> Json:
    """The other writer's copy, as HAPI stores it (id, meta)."""
    resource = derived_observation().resource
    return {
        **resource,
        "id": rid,
        "meta": {"versionId": "1", "lastUpdated": "2026-01-05T12:00:01.000+00:00"},
        "valueQuantity": {"value": value},
    }


class _Hapi:
    """A HAPI-like server where another writer's conditional create wins the race: the first
    POST of the Observation stores ``theirs`` (the other writer's) and is answered 409
    HAPI-0550; later POSTs would create (so a duplicate shows)."""

    def __init__(self, theirs: list[Json]) -> None:
        self.theirs = theirs
        self.stored: list[Json] = []
        self.sent: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.sent.append(request)
        path = request.url.path.removeprefix(httpx.URL(BASE).path).strip("/")
        if path == "metadata":
            return httpx.Response(200, json=conditional_create_statement())
        if request.method == "GET" and path in ("Observation", "Provenance"):
            found = self.stored if path == "Observation" else []
            return httpx.Response(
                200,
                json={
                    "resourceType": "Bundle",
                    "type": "searchset",
                    "entry": [{"resource": r, "search": {"mode": "match"}} for r in found],
                },
            )
        if request.method == "POST" and path == "Observation":
            assert request.headers.get("If-None-Exist") == (
                f"identifier={IDENTIFIER_SYSTEM}|{IDENT}"
            )
            if not self.stored:
                self.stored = [dict(r) for r in self.theirs]  # the other writer won
                outcome = {
                    "resourceType": "OperationOutcome",
                    "issue": [
                        {"severity": "error", "code": "processing", "diagnostics": HAPI_0550}
                    ],
                }
                return httpx.Response(409, json=outcome)
            made = {**json.loads(request.content), "id": "dup", "meta": {"versionId": "1"}}
            self.stored.append(made)
            return httpx.Response(
                201, json=made, headers={"Location": f"{BASE}/Observation/dup/_history/1"}
            )
        if request.method == "PUT" and path.startswith("Observation/"):
            rid = path.split("/")[1]
            body = json.loads(request.content)
            updated = {**body, "meta": {"versionId": "2"}}
            self.stored = [updated if r["id"] == rid else r for r in self.stored]
            return httpx.Response(
                200, json=updated, headers={"Location": f"{BASE}/Observation/{rid}/_history/2"}
            )
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


async def _settle(server: _Hapi, httpx_mock: HTTPXMock) -> PatientRun:
    httpx_mock.add_callback(server, is_reusable=True)
    async with FhirClient(FhirClientConfig(base_url=BASE)) as client:
        return await settle(client, "p1", Evaluated(), write=True)


async def test_the_race_lost_to_an_identical_resource_writes_nothing_more(
    httpx_mock: HTTPXMock,
) -> None:
    server = _Hapi([_copy("theirs", 62.5)])
    run = await _settle(server, httpx_mock)
    assert run.status is RunStatus.UNCHANGED, run.error
    assert len(server.writes("POST", "Observation")) == 1  # never created a second time
    assert server.writes("PUT", "Observation") == []
    assert server.writes("POST", "Provenance") == []  # the other writer names what it made
    assert [r["id"] for r in server.stored] == ["theirs"]


async def test_the_race_lost_to_a_different_resource_updates_it_with_if_match(
    httpx_mock: HTTPXMock,
) -> None:
    server = _Hapi([_copy("theirs", 40)])
    run = await _settle(server, httpx_mock)
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
    run = await _settle(server, httpx_mock)
    assert run.status is RunStatus.FAILED
    assert run.error is not None and "409" in run.error and says in run.error, run.error
    assert len(server.writes("POST", "Observation")) == 1  # not created a second time
    assert server.writes("PUT", "Observation") == []
