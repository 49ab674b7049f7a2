"""A FHIR answer that is a redirect (3xx) is not a success.

fhirtis never follows redirects (the token stays on the configured server), so a 3xx answer is
all it gets. Epic answers a read of a merged Patient with an error OperationOutcome *and* an
HTTP redirect status to the surviving record (Epic on FHIR, FHIR error codes: "Requesting a
Patient which has been merged - in this event, in addition to the error response, we will
respond with an HTTP Redirect status"); a gateway answers ``http://`` requests 301/308 to
``https://``. R4 http.html: only 2xx is success (a read answers 200, a create 201).

``FhirClient.request`` raised only for 400 and above: the merged Patient's redirect was read as
its record and the patient evaluated (``unchanged``, no error) without a Patient, and a plain
create answered 308 counted as made, named by the redirect's ``Location``.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from pytest_httpx import HTTPXMock

from fhirtis.io import FhirClient, FhirClientConfig, FhirServerError
from fhirtis.pipeline.server import RunStatus, run_patient
from fhirtis.settings import Settings
from tests.io._s25_srv_fake import FakeServer, patient, statement
from tests.io._support import BASE

Json = dict[str, Any]
MERGED: Json = {
    "resourceType": "OperationOutcome",
    "issue": [
        {
            "severity": "error",
            "code": "processing",
            "details": {"text": "The read resource request has been merged."},
        }
    ],
}


async def test_a_merged_patient_answered_with_a_redirect_fails_the_patient(
    httpx_mock: HTTPXMock,
) -> None:
    def merged(request: httpx.Request) -> httpx.Response | None:
        if request.url.path.endswith("/Patient/p1"):
            return httpx.Response(301, headers={"Location": f"{BASE}/Patient/p2"}, json=MERGED)
        return None

    server = FakeServer(statement(), [patient()], [], [merged])
    httpx_mock.add_callback(server, is_reusable=True)
    async with FhirClient(FhirClientConfig(base_url=BASE)) as client:
        run = await run_patient(client, "p1", Settings())
    assert run.status is RunStatus.FAILED
    assert run.result is None
    assert run.error is not None and "301" in run.error
    assert not [r for r in server.requests if r.url.path.endswith("/Patient/p2")]


async def test_a_create_answered_with_a_redirect_is_not_made(httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(
        method="POST",
        url=f"{BASE}/Observation",
        status_code=308,
        headers={"Location": "https://fhir.example.org/r4/Observation"},
    )
    async with FhirClient(FhirClientConfig(base_url=BASE)) as client:
        with pytest.raises(FhirServerError) as raised:
            await client.request("POST", "Observation", json={"resourceType": "Observation"})
    assert raised.value.status == 308
