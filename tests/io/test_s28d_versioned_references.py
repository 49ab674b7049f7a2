"""A medication or device named by a version-specific reference on a server pull.

R4 references.html ("Literal References"): a reference may be version specific,
``Medication/med1/_history/2``; it names the resource ``Medication/med1`` (that version of it).
A HAPI FHIR JPA server configured with ``auto_version_reference_at_paths`` (for example
``MedicationAdministration.medication``) stores and returns such references
(hapifhir/hapi-fhir-jpaserver-starter, ``FhirParserOptionsConfig``: "Patient/123/_history/2").
The evaluation resolves them without the version (``fhirtis.fhir.extract.common.unversioned``).

The pull took the versioned text as the resource's key: a Medication brought by ``_include``
was still "not read" (an error for an immune globulin), and one to read by id was searched as
``Medication?_id=med1/_history/2``, an id no server holds.
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
NEED_TYPE = "MedicationAdministration"


def _administration(reference: str) -> Json:
    return {
        "resourceType": NEED_TYPE,
        "id": "ma1",
        "status": "completed",
        "subject": {"reference": "Patient/p1"},
        "medicationReference": {"reference": reference, "display": "IVIG"},
        "effectivePeriod": {"start": "2024-01-05T10:00:00Z", "end": "2024-01-05T14:00:00Z"},
    }


async def _pull(server: FakeServer, httpx_mock: HTTPXMock) -> PatientResources:
    httpx_mock.add_callback(server, is_reusable=True)
    async with FhirClient(FhirClientConfig(base_url=BASE)) as client:
        return await pull_patient(client, "p1", Settings(), {})


def _unread(pulled: PatientResources) -> list[str]:
    return [i.diagnostics for i in pulled.issues if "could not be read" in i.diagnostics]


async def test_a_versioned_medication_reference_is_read_by_its_id(httpx_mock: HTTPXMock) -> None:
    caps = statement({NEED_TYPE: resource_entry(NEED_TYPE, includes=[])})
    server = FakeServer(
        caps, [patient(), _administration("Medication/med1/_history/2")], [ivig_medication()]
    )
    pulled = await _pull(server, httpx_mock)
    assert "GET Medication?_id=med1&_count=1" in server.paths(), server.paths()
    assert not [p for p in server.paths() if "_history" in p]
    assert "Medication/med1" in pulled.resolve
    assert _unread(pulled) == []


async def test_an_included_versioned_medication_is_not_read_again(httpx_mock: HTTPXMock) -> None:
    def include_versioned(request: httpx.Request) -> httpx.Response | None:
        # HAPI resolves _include of a versioned reference to that version of the Medication
        if request.url.path.endswith(f"/{NEED_TYPE}"):
            return httpx.Response(
                200,
                json={
                    "resourceType": "Bundle",
                    "type": "searchset",
                    "entry": [
                        {
                            "resource": _administration("Medication/med1/_history/2"),
                            "search": {"mode": "match"},
                        },
                        {
                            "resource": {**ivig_medication(), "meta": {"versionId": "2"}},
                            "search": {"mode": "include"},
                        },
                    ],
                },
            )
        return None

    server = FakeServer(statement(), [patient()], [], [include_versioned])
    pulled = await _pull(server, httpx_mock)
    assert not [p for p in server.paths() if p.startswith("GET Medication?")], server.paths()
    assert _unread(pulled) == []


async def test_a_versioned_device_reference_is_read_by_its_id(httpx_mock: HTTPXMock) -> None:
    caps = statement({"DeviceUseStatement": resource_entry("DeviceUseStatement", includes=[])})
    dus = use_statement(device={"reference": "Device/line/_history/1"})
    server = FakeServer(caps, [patient(), dus], [catheter()])
    pulled = await _pull(server, httpx_mock)
    assert "GET Device?_id=line&_count=1" in server.paths(), server.paths()
    assert _unread(pulled) == []
