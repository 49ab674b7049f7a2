"""The Condition pull on a server that returns only active conditions when no clinical-status is
given (Epic: "If no status is specified all active (confirmed) conditions will be returned",
condition.search, https://docs.nerve.run/functions/condition-search): a resolved DVT (a history
of thrombosis, DOMAIN.md §5) is read by a second search of the non-active statuses wherever the
server may search Condition by clinical-status; a server that refuses that search is still read."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from pytest_httpx import HTTPXMock

from fhirtis.fhir.bundle import PatientResources
from fhirtis.io import FhirClient, FhirClientConfig, describe_reads, parse_statement
from fhirtis.pipeline.pull import pull_patient
from fhirtis.settings import Settings
from tests.io._s25_srv_fake import SCT, FakeServer, outcome, patient, resource_entry, statement
from tests.io._support import BASE

Json = dict[str, Any]
CLINICAL = "http://terminology.hl7.org/CodeSystem/condition-clinical"
NOT_ACTIVE = "recurrence,relapse,inactive,remission,resolved"
WITH_STATUS = ("subject", "patient", "_id", "clinical-status")


def _condition(cid: str, code: str, status: str) -> Json:
    return {
        "resourceType": "Condition",
        "id": cid,
        "clinicalStatus": {"coding": [{"system": CLINICAL, "code": status}]},
        "code": {"coding": [{"system": SCT, "code": code}]},
        "subject": {"reference": "Patient/p1"},
        "onsetDateTime": "2019-03-01",
    }


DVT = _condition("dvt", "128053003", "resolved")  # deep venous thrombosis, resolved
DIABETES = _condition("dm", "44054006", "active")


def _status(c: Json) -> str:
    return str(c["clinicalStatus"]["coding"][0]["code"])


def _epic_conditions(server: FakeServer) -> Any:
    """Condition searches answered as Epic does: without clinical-status, active ones only."""

    def handle(request: httpx.Request) -> httpx.Response | None:
        if request.method != "GET" or not request.url.path.endswith("/Condition"):
            return None
        wanted = request.url.params.get("clinical-status")
        statuses = {"active"} if wanted is None else set(wanted.split(","))
        found = [r for r in server.data if r["resourceType"] == "Condition"]
        entries = [
            {"resource": r, "search": {"mode": "match"}} for r in found if _status(r) in statuses
        ]
        return httpx.Response(
            200, json={"resourceType": "Bundle", "type": "searchset", "entry": entries}
        )

    return handle


def _server(caps: Json, *, batch: bool = False, refuse: Any = None) -> FakeServer:
    server = FakeServer(caps, [patient(), DVT, DIABETES], batch=batch)
    server.before = [h for h in (refuse, _epic_conditions(server)) if h is not None]
    return server


async def _pull(server: FakeServer, httpx_mock: HTTPXMock) -> tuple[PatientResources, list[str]]:
    httpx_mock.add_callback(server, is_reusable=True)
    async with FhirClient(FhirClientConfig(base_url=BASE)) as client:
        pulled = await pull_patient(client, "p1", Settings(), {})
        notes = list((await client.capabilities()).notes)
    return pulled, notes


def _conditions(server: FakeServer) -> list[str]:
    return [p for p in server.paths() if p.startswith("GET Condition")]


@pytest.mark.parametrize("batch", [False, True])
async def test_a_resolved_dvt_is_read_where_the_server_searches_by_clinical_status(
    httpx_mock: HTTPXMock, batch: bool
) -> None:
    caps = statement({"Condition": resource_entry("Condition", WITH_STATUS)}, batch=batch)
    server = _server(caps, batch=batch)
    pulled, _ = await _pull(server, httpx_mock)
    assert {"Condition/dvt", "Condition/dm"} <= set(pulled.resolve)
    assert sorted(_conditions(server)) == [
        f"GET Condition?clinical-status={NOT_ACTIVE}&subject=Patient/p1&_count=100",
        "GET Condition?subject=Patient/p1&_count=100",
    ]
    lines = describe_reads(parse_statement(caps), 100)
    assert any(
        line.startswith("  Condition: by subject, _count=100")
        and f"also clinical-status={NOT_ACTIVE}" in line
        for line in lines
    ), lines


async def test_a_server_not_searching_by_clinical_status_gets_the_one_search(
    httpx_mock: HTTPXMock,
) -> None:
    """Its statement lists Condition's parameters without clinical-status: one search, as before
    (such a server returns every condition: nothing is lost)."""
    caps = statement()  # Condition: subject, patient, _id
    server = FakeServer(caps, [patient(), DVT, DIABETES])
    pulled, _ = await _pull(server, httpx_mock)
    assert {"Condition/dvt", "Condition/dm"} <= set(pulled.resolve)
    assert _conditions(server) == ["GET Condition?subject=Patient/p1&_count=100"]
    lines = describe_reads(parse_statement(caps), 100)
    assert "  Condition: by subject, _count=100" in lines


def _refuse_status(status: int, code: str) -> Any:
    def handle(request: httpx.Request) -> httpx.Response | None:
        if "clinical-status" in str(request.url):
            return httpx.Response(status, json=outcome(code, "Unknown search parameter"))
        return None

    return handle


@pytest.mark.parametrize("batch", [False, True])
@pytest.mark.parametrize(
    ("status", "code"), [(400, "processing"), (422, "invalid"), (400, "not-supported")]
)
async def test_a_refused_clinical_status_search_is_learned_and_the_rest_read(
    httpx_mock: HTTPXMock, batch: bool, status: int, code: str
) -> None:
    """The statement declares clinical-status, the server refuses it (HAPI answers an unknown
    parameter 400 ``processing``): learned, the pull goes on with the one search."""
    caps = statement({"Condition": resource_entry("Condition", WITH_STATUS)}, batch=batch)
    server = _server(caps, batch=batch, refuse=_refuse_status(status, code))
    pulled, notes = await _pull(server, httpx_mock)
    assert "Condition/dm" in pulled.resolve  # the active ones, as before
    assert any("search parameter clinical-status of Condition" in n for n in notes), notes
    later = _conditions(server)[-1]
    assert later == "GET Condition?subject=Patient/p1&_count=100"
