"""A CDS call's prefetch read from a server whose batch runs no searches although its
statement lists ``batch`` and the searched types (fhirtis/api/cds_hooks/fetch.py).

Helios FHIR Server (HeliosSoftware/hfs#478, "batch/transaction: search-style GET entries are
mis-parsed as instance reads") answered a batch entry ``GET Patient?name=…`` ``404 Not Found``
("Resource not found") while the same search alone worked; Google Cloud Healthcare's
``fhir.executeBundle`` "Supports all interactions within a bundle, except search"
(cloud.google.com/healthcare-api/docs/reference/rest/v1/
projects.locations.datasets.fhirStores.fhir/executeBundle). A search answered 404 in the batch
on a type the statement lists failed the whole call 412 ("the FHIR server refused (404) ...");
it is now read as the server allows, and the server learned as one that takes no searches in a
batch (the search alone works): the call is answered.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
from pytest_httpx import HTTPXMock

from tests.api.test_cds_hooks import (
    ALLOWED,
    SIGN,
    call,
    card_with,
    cards_of,
    cds,
    full_prefetch,
    ivig_order,
    patient_70kg,
)
from tests.fhir.builders import qty
from tests.io._s25_srv_fake import statement

Json = dict[str, Any]
NOT_FOUND: Json = {
    "resourceType": "OperationOutcome",
    "issue": [{"severity": "error", "code": "not-found", "diagnostics": "Resource not found"}],
}


def _empty() -> Json:
    return {"resourceType": "Bundle", "type": "searchset", "entry": []}


def _server(seen: list[str]) -> Callable[[httpx.Request], httpx.Response]:
    """A server at ALLOWED listing every type and ``batch``; its batch answers each search entry
    404 (its URL read as a resource address), the same search alone an empty searchset."""

    def handle(request: httpx.Request) -> httpx.Response:
        path = str(request.url)[len(ALLOWED) :].lstrip("/")
        seen.append(f"{request.method} {path}")
        if path == "metadata":
            return httpx.Response(200, json=statement(batch=True))
        if request.method == "POST" and path == "":
            entries = [
                {"response": {"status": "404 Not Found", "outcome": NOT_FOUND}}
                for _ in json.loads(request.content)["entry"]
            ]
            return httpx.Response(
                200, json={"resourceType": "Bundle", "type": "batch-response", "entry": entries}
            )
        return httpx.Response(200, json=_empty())

    return handle


async def test_searches_a_batch_answers_404_are_read_alone(httpx_mock: HTTPXMock) -> None:
    seen: list[str] = []
    httpx_mock.add_callback(_server(seen), is_reusable=True)
    prefetch = {k: v for k, v in full_prefetch(patient_70kg()).items() if k != "adverseEvents"}
    body = call([ivig_order(rate=qty(300, "mL/h"))], prefetch, server=ALLOWED, token="tok")
    async with cds() as api:
        r = await api.post(SIGN, body)
    assert r.status_code == 200, r.text
    assert card_with(cards_of(r), "exceeds")  # 300 mL/h is above the 4 mg/kg/min limit
    assert any(s.startswith("GET AdverseEvent?") for s in seen), seen
