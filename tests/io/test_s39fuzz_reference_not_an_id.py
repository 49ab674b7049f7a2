"""A reference whose id is no FHIR id (R4 datatypes.html#id: ``[A-Za-z0-9\\-\\.]{1,64}``), read
from a FHIR server: never put in a request URL.

A MedicationAdministration whose ``medicationReference`` was ``Medication/med1`` followed by a
NUL, a right-to-left override and a zero-width space (no ``_include`` can bring it) was looked
up with ``Medication?_id=…``: httpx refused to build the URL (``InvalidURL``, a ``ValueError``
no caller expects), so ``$myositis-evaluate`` answered 500, ``fhirtis run`` printed a traceback
and a CDS call that read from ``fhirServer`` failed (found by mutation fuzzing of the corpus
served by a fake FHIR server, audit s39fuzz). The read by id one at a time already passed such
an id over as one no server holds; the ``_id`` search now does the same, so the Medication stays
unread and the administration's issue says so (as for a Medication the server does not hold)."""

from __future__ import annotations

from typing import Any

from pytest_httpx import HTTPXMock

from fhirtis.io import FhirClient, FhirClientConfig
from fhirtis.pipeline.offline import evaluate_patient_resources
from fhirtis.pipeline.pull import pull_patient
from fhirtis.settings import Settings
from tests.api.test_evaluate_api import AUTH, service
from tests.io._s25_srv_fake import FakeServer, ivig_medication, patient, statement
from tests.io._support import BASE

Json = dict[str, Any]
NOT_AN_ID = "med1\u0000\u202e\u200b"


def _administration(aid: str, medication: str) -> Json:
    return {
        "resourceType": "MedicationAdministration",
        "id": aid,
        "status": "completed",
        "subject": {"reference": "Patient/p1"},
        "medicationReference": {"reference": f"Medication/{medication}"},
        "effectiveDateTime": "2024-03-01T09:00:00Z",
        "dosage": {"dose": {"value": 700, "unit": "mL"}},
    }


def _server() -> FakeServer:
    caps = statement()
    for entry in caps["rest"][0]["resource"]:
        if entry["type"] == "MedicationAdministration":
            entry["searchInclude"] = []  # the Medications are read by id
    data = [patient(), _administration("ma1", NOT_AN_ID), _administration("ma2", "med1")]
    return FakeServer(caps, data, [ivig_medication("med1")])


async def test_an_id_that_is_no_fhir_id_is_never_asked_for(httpx_mock: HTTPXMock) -> None:
    server = _server()
    httpx_mock.add_callback(server, is_reusable=True)
    async with FhirClient(FhirClientConfig(base_url=BASE)) as client:
        pulled = await pull_patient(client, "p1", Settings(), {})
    by_id = [p for p in server.paths() if p.startswith("GET Medication?")]
    assert by_id == ["GET Medication?_id=med1&_count=1"]
    result = evaluate_patient_resources(pulled, Settings())
    unread = [
        i
        for i in result.issues
        if i.resource == "MedicationAdministration/ma1"
        and (i.expression or "").endswith("medicationReference")
    ]
    assert unread, result.issues
    # the issue of a Medication the server does not hold (severity as the pull gives it)
    assert unread[0].code == "not-found"
    assert "could not be read from the server" in unread[0].diagnostics
    # the other administration's Medication is read: it is the one IVIG administration
    assert [a.source for a in result.data.administrations] == ["MedicationAdministration/ma2"]


async def test_the_operation_answers_instead_of_500(httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_callback(_server(), is_reusable=True)
    async with service(BASE) as api:
        r = await api.post("/Patient/p1/$myositis-evaluate", headers=AUTH)
    assert r.status_code == 200, r.text
    outcome = r.json()["entry"][0]["resource"]
    assert outcome["resourceType"] == "OperationOutcome"
    assert any(
        "MedicationAdministration/ma1" in (i.get("diagnostics") or "")
        or "MedicationAdministration/ma1" in str(i.get("expression"))
        for i in outcome["issue"]
    ), outcome["issue"]
