"""A resource that the FHIR server has not got is asked for once in a CDS Hooks call.

The order names ``Medication/ivig`` held on ``fhirServer`` (read there, prefetch being
complete otherwise); its ingredient names ``Substance/s1``, which the server does not have.
The Substances named as an ingredient are read in two stages (after the Medications that
prefetch lacked, and after what a search's ``_include`` should have brought): the second asked
for ``Substance/s1`` again (a search by ``_id`` and a read by id, then the read again), each
answer the same. Found missing once, it is said to be missing (as before) and not asked again."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
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
from tests.fhir.builders import medication, qty

Json = dict[str, Any]
NOT_FOUND = {
    "resourceType": "OperationOutcome",
    "issue": [{"severity": "error", "code": "not-found"}],
}


def _server(empty_search: bool) -> Any:
    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/metadata"):
            return httpx.Response(404, json={})
        if request.method == "POST":
            med = medication("ivig", text="Privigen 10%")
            med["ingredient"].append({"itemReference": {"reference": "Substance/s1"}})
            entry = {"resource": med, "response": {"status": "200 OK"}}
            bundle = {"resourceType": "Bundle", "type": "batch-response", "entry": [entry]}
            return httpx.Response(200, json=bundle)
        if empty_search and request.url.path.endswith("/Substance"):
            return httpx.Response(200, json={"resourceType": "Bundle", "type": "searchset"})
        return httpx.Response(404, json=NOT_FOUND)

    return answer


@pytest.mark.parametrize("empty_search", [False, True], ids=["404", "empty-searchset"])
async def test_a_missing_substance_is_asked_for_once(
    httpx_mock: HTTPXMock, empty_search: bool
) -> None:
    httpx_mock.add_callback(_server(empty_search), is_reusable=True)
    order = ivig_order(
        rate=qty(300, "mL/h"), med={"medicationReference": {"reference": "Medication/ivig"}}
    )
    body = call([order], full_prefetch(patient_70kg()), server=ALLOWED, token="tok-once")
    async with cds() as api:
        r = await api.post(SIGN, body)
    cards = cards_of(r)
    assert "Max IVIG rate" in card_with(cards, "Max IVIG rate")["summary"]
    # still said to be missing, as before
    assert "Substance of Medication" in r.text
    asked = [
        f"{q.method} {q.url.path}"
        for q in api.sent
        if not q.url.path.endswith("/metadata") and q.method == "GET"
    ]
    expected = ["GET /fhir/Substance"] + ([] if empty_search else ["GET /fhir/Substance/s1"])
    assert asked == expected
