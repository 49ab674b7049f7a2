"""Medications and Devices that no ``_include`` brought, on a server that reads them by id only.

A server that offers ``read`` of Medication but no search of it says so in its
CapabilityStatement (``rest.resource`` Medication, ``interaction`` read only: R4
capabilitystatement.html). HAPI FHIR's plain server (``RestfulServer``), on which many EHR
facades are built, generates exactly that statement for a provider with only a ``@Read``
method, and answers any search of that type 400 with an OperationOutcome of code
``processing``: "Invalid request: The FHIR endpoint on this server does not know how to handle
GET operation[...] with parameters [...]" (hapifhir/hapi-fhir#1935, #405; RestfulServer
``determineResourceMethod``).

fhirtis searched ``Medication?_id=…`` anyway; the 400 (not ``not-supported``) was taken for the
server's failure and the whole patient failed, though ``GET Medication/[id]`` would have read
every Medication. The plan now asks by id directly where the statement allows no search of the
type by ``_id``, and a by-id search refused 400/422 whatever its issue code falls back to the
reads.
"""

from __future__ import annotations

from typing import Any

import httpx
from pytest_httpx import HTTPXMock

from fhirtis.fhir.bundle import PatientResources
from fhirtis.io import FhirClient, FhirClientConfig
from fhirtis.pipeline.pull import pull_patient
from fhirtis.settings import Settings
from tests.io._s25_srv_fake import (
    FakeServer,
    catheter,
    ivig_medication,
    patient,
    resource_entry,
    statement,
    use_statement,
)
from tests.io._support import BASE

Json = dict[str, Any]
MA = "MedicationAdministration"

#: HAPI FHIR plain server's answer to a search it has no method for (hapi-fhir#1935).
HAPI_NO_SEARCH: Json = {
    "resourceType": "OperationOutcome",
    "issue": [
        {
            "severity": "error",
            "code": "processing",
            "diagnostics": "Invalid request: The FHIR endpoint on this server does not know how "
            "to handle GET operation[Medication] with parameters [[_id, _count]]",
        }
    ],
}


def _administration() -> Json:
    return {
        "resourceType": MA,
        "id": "ma1",
        "status": "completed",
        "subject": {"reference": "Patient/p1"},
        "medicationReference": {"reference": "Medication/med1", "display": "IVIG"},
        "effectivePeriod": {"start": "2024-01-05T10:00:00Z", "end": "2024-01-05T14:00:00Z"},
    }


def _no_search(request: httpx.Request) -> httpx.Response | None:
    """A search of Medication answered as HAPI's plain server does."""
    if request.method == "GET" and request.url.path.endswith("/Medication"):
        return httpx.Response(400, json=HAPI_NO_SEARCH)
    return None


async def _pull(server: FakeServer, httpx_mock: HTTPXMock) -> PatientResources:
    httpx_mock.add_callback(server, is_reusable=True)
    async with FhirClient(FhirClientConfig(base_url=BASE)) as client:
        return await pull_patient(client, "p1", Settings(), {})


def _unread(pulled: PatientResources) -> list[str]:
    return [i.diagnostics for i in pulled.issues if "could not be read" in i.diagnostics]


async def test_a_read_only_medication_is_read_by_id_not_searched(httpx_mock: HTTPXMock) -> None:
    caps = statement(
        {
            MA: resource_entry(MA, includes=[]),
            "Medication": resource_entry("Medication", params=(), interactions=("read",)),
        }
    )
    server = FakeServer(caps, [patient(), _administration()], [ivig_medication()], [_no_search])
    pulled = await _pull(server, httpx_mock)
    assert "GET Medication/med1" in server.paths(), server.paths()
    assert not [p for p in server.paths() if p.startswith("GET Medication?")], server.paths()
    assert "Medication/med1" in pulled.resolve
    assert _unread(pulled) == []


async def test_a_by_id_search_refused_400_processing_falls_back_to_reads(
    httpx_mock: HTTPXMock,
) -> None:
    # the statement lists no interactions or parameters of Medication: the search is tried
    caps = statement({MA: resource_entry(MA, includes=[]), "Medication": {"type": "Medication"}})
    server = FakeServer(caps, [patient(), _administration()], [ivig_medication()], [_no_search])
    pulled = await _pull(server, httpx_mock)
    assert "GET Medication/med1" in server.paths(), server.paths()
    assert "Medication/med1" in pulled.resolve
    assert _unread(pulled) == []


async def test_a_by_id_search_refused_in_a_batch_falls_back_to_reads(
    httpx_mock: HTTPXMock,
) -> None:
    caps = statement(
        {MA: resource_entry(MA, includes=[]), "Medication": {"type": "Medication"}}, batch=True
    )
    server = FakeServer(
        caps, [patient(), _administration()], [ivig_medication()], [_no_search], batch=True
    )
    pulled = await _pull(server, httpx_mock)
    assert "GET Medication/med1" in server.paths(), server.paths()
    assert "Medication/med1" in pulled.resolve
    assert _unread(pulled) == []


async def test_a_device_search_by_id_refused_400_is_learned_and_read_by_id(
    httpx_mock: HTTPXMock,
) -> None:
    # Device searched by patient (declared); ``_id`` not declared for it, and refused 400
    caps = statement(
        {
            "DeviceUseStatement": resource_entry("DeviceUseStatement", includes=[]),
            "Device": resource_entry("Device", params=("patient",)),
        }
    )
    server = FakeServer(caps, [patient(), use_statement()], [catheter()], [_no_search_by_id])
    httpx_mock.add_callback(server, is_reusable=True)
    async with FhirClient(FhirClientConfig(base_url=BASE)) as client:
        first = await pull_patient(client, "p1", Settings(), {})
        searched = [p for p in server.paths() if p.startswith("GET Device?_id")]
        again = await pull_patient(client, "p1", Settings(), {})
    assert "GET Device/line" in server.paths(), server.paths()
    for pulled in (first, again):
        assert "Device/line" in pulled.resolve
        assert not [i for i in pulled.issues if "could not be read" in i.diagnostics]
    # learned: the second patient's Devices are read by id without searching again
    assert [p for p in server.paths() if p.startswith("GET Device?_id")] == searched


def _no_search_by_id(request: httpx.Request) -> httpx.Response | None:
    """Device searched by patient (declared), but not by ``_id`` (not declared): 400."""
    if request.method == "GET" and "_id" in request.url.params:
        return httpx.Response(400, json=HAPI_NO_SEARCH)
    return None


async def test_a_by_id_search_that_is_taken_is_still_used(httpx_mock: HTTPXMock) -> None:
    caps = statement({MA: resource_entry(MA, includes=[])})
    server = FakeServer(caps, [patient(), _administration()], [ivig_medication()])
    pulled = await _pull(server, httpx_mock)
    assert "GET Medication?_id=med1&_count=1" in server.paths(), server.paths()
    assert "GET Medication/med1" not in server.paths()
    assert "Medication/med1" in pulled.resolve
