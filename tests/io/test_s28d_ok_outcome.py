"""A search or read answered 200 whose body is an OperationOutcome, not the data.

Redox's FHIR API answers a query that the destination EHR failed with "a 200 OK status from
Redox, but the body of the response contains" the errors (docs.redoxengine.com, "Responding to
queries", partial error: the ``issue`` array "present for Redox FHIR API responses"). R4
http.html: a search answers a Bundle of type searchset, a read the resource.

A later page (``parse_page``) and ``FhirClient.read`` refused such an answer, but the first page
of a search sent as a GET was read as a searchset with no entries, and the Patient read as a
record with no Patient: the patient was evaluated as having no data of that type (no
thrombosis history), with no error.
"""

from __future__ import annotations

from typing import Any

import httpx
from pytest_httpx import HTTPXMock

from fhirtis.io import FhirClient, FhirClientConfig
from fhirtis.pipeline.server import RunStatus, run_patient
from fhirtis.settings import Settings
from tests.io._s25_srv_fake import FakeServer, patient, statement
from tests.io._support import BASE, REDOX_FAILED

Json = dict[str, Any]
DVT: Json = {
    "resourceType": "Condition",
    "id": "dvt",
    "subject": {"reference": "Patient/p1"},
    "code": {"coding": [{"system": "http://snomed.info/sct", "code": "128053003"}]},
    "onsetDateTime": "2023-03-01",
}


async def _run(server: FakeServer, httpx_mock: HTTPXMock) -> Any:
    httpx_mock.add_callback(server, is_reusable=True)
    async with FhirClient(FhirClientConfig(base_url=BASE)) as client:
        return await run_patient(client, "p1", Settings())


async def test_a_search_answered_200_with_an_outcome_fails_the_patient(
    httpx_mock: HTTPXMock,
) -> None:
    def downstream_failed(request: httpx.Request) -> httpx.Response | None:
        if request.url.path.endswith("/Condition"):
            return httpx.Response(200, json=REDOX_FAILED)
        return None

    server = FakeServer(statement(), [patient(), DVT], [], [downstream_failed])
    run = await _run(server, httpx_mock)
    assert run.status is RunStatus.FAILED, run.status
    assert run.result is None
    assert run.error is not None and "Condition" in run.error
    assert "exception" in run.error  # the outcome's issue code is said


async def test_a_patient_read_answered_200_with_an_outcome_fails_the_patient(
    httpx_mock: HTTPXMock,
) -> None:
    def downstream_failed(request: httpx.Request) -> httpx.Response | None:
        if request.url.path.endswith("/Patient/p1"):
            return httpx.Response(200, json=REDOX_FAILED)
        return None

    server = FakeServer(statement(), [patient()], [], [downstream_failed])
    run = await _run(server, httpx_mock)
    assert run.status is RunStatus.FAILED, run.status
    assert run.result is None


async def test_a_batch_search_entry_answered_200_with_an_outcome_fails_the_patient(
    httpx_mock: HTTPXMock,
) -> None:
    def downstream_failed(request: httpx.Request) -> httpx.Response | None:
        if request.method == "GET" and request.url.path.endswith("/Condition"):
            return httpx.Response(
                200,
                json={
                    **REDOX_FAILED,
                    "issue": [{"severity": "information", "code": "informational"}],
                },
            )
        return None

    server = FakeServer(
        statement(batch=True), [patient(), DVT], [], [downstream_failed], batch=True
    )
    run = await _run(server, httpx_mock)
    assert any(r.method == "POST" for r in server.requests)  # read as one batch
    assert run.status is RunStatus.FAILED, run.status
    assert run.result is None
