"""CDS Hooks: a read the service makes of the caller's FHIR server answered 200 with an
OperationOutcome instead of the resource (Redox's FHIR API when the EHR behind it failed:
docs.redoxengine.com, "Responding to queries", partial error). R4 http.html: a read answers the
resource. The service took the OperationOutcome for the Patient (or the Medication)."""

from __future__ import annotations

import httpx
import pytest
from pytest_httpx import HTTPXMock

from tests.api.test_cds_hooks import DVT, SIGN, call, cds, full_prefetch, ivig_order, patient_70kg
from tests.fhir.builders import qty
from tests.io._s25_srv_fake import FakeServer, patient, statement
from tests.io._support import BASE, REDOX_FAILED


@pytest.mark.parametrize("batch", [False, True])
async def test_a_patient_read_answered_with_an_outcome_is_502(
    httpx_mock: HTTPXMock, batch: bool
) -> None:
    def downstream_failed(request: httpx.Request) -> httpx.Response | None:
        if request.method == "GET" and request.url.path.endswith("/Patient/p1"):
            return httpx.Response(200, json=REDOX_FAILED)
        if request.method == "POST" and request.url.path.rstrip("/") == httpx.URL(BASE).path:
            return httpx.Response(
                200,
                json={
                    "resourceType": "Bundle",
                    "type": "batch-response",
                    "entry": [{"resource": REDOX_FAILED, "response": {"status": "200 OK"}}],
                },
            )
        return None

    server = FakeServer(statement(batch=batch), [patient()], [], [downstream_failed])
    httpx_mock.add_callback(server, is_reusable=True)
    prefetch = full_prefetch(patient_70kg(DVT))
    del prefetch["patient"]  # read from the server
    body = call([ivig_order(rate=qty(300, "mL/h"))], prefetch, server=BASE, token="t")
    async with cds(BASE) as api:
        r = await api.post(SIGN, body)
    assert r.status_code == 502, r.text
    # worded by fhirtis.io answer_problem, as `fhirtis run` words it (s29c: ", not a Patient")
    assert r.json()["message"] == (
        "the FHIR server answered a Patient read the service needs with an OperationOutcome, "
        "not a Patient"
    )
