"""What a CDS call's prefetch lacks, read in one batch from the caller's FHIR server
(fhirtis/api/cds_hooks/fetch.py): a search answered 404 inside the batch by a server whose types
are unknown (no CapabilityStatement) is a type the server does not support (R4 http.html,
search: "404 Not Found - resource type not supported"), as ``fhirtis run`` reads it
(pull.py ``_search_refused``), not a 412 for the whole call; a search the server refuses 400 or
422 (the Conditions not active, ``clinical-status=…``, on a server without that parameter) is
read as the server allows; and the Conditions not active are a prefetch template of their own
(Epic returns only active conditions without clinical-status,
https://docs.nerve.run/functions/condition-search)."""

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
    searchset,
)
from tests.fhir.builders import SCT, condition, qty

Json = dict[str, Any]
CLINICAL = "http://terminology.hl7.org/CodeSystem/condition-clinical"
RESOLVED_DVT = condition(
    "dvt",
    SCT,
    "128053003",
    "2019-02-13T10:00:00Z",
    clinicalStatus={"coding": [{"system": CLINICAL, "code": "resolved"}]},
)
Answer = Callable[[str], tuple[int, Json]]


def _outcome(code: str) -> Json:
    return {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": code}]}


def _server(answer: Answer) -> Callable[[httpx.Request], httpx.Response]:
    """A FHIR server at ALLOWED without a CapabilityStatement (its types unknown) that takes
    searches in a batch; ``answer(relative URL)`` gives each search's status and body."""

    def handle(request: httpx.Request) -> httpx.Response:
        path = str(request.url)[len(ALLOWED) :].lstrip("/")
        if path == "metadata":
            return httpx.Response(404, json=_outcome("not-found"))
        if request.method == "POST" and path == "":
            entries = []
            for e in json.loads(request.content)["entry"]:
                status, body = answer(e["request"]["url"])
                entries.append({"resource": body, "response": {"status": f"{status} X"}})
            return httpx.Response(
                200, json={"resourceType": "Bundle", "type": "batch-response", "entry": entries}
            )
        status, body = answer(httpx.URL(f"{ALLOWED}/{path}").raw_path.decode().split("/fhir/")[1])
        return httpx.Response(status, json=body)

    return handle


def _empty() -> Json:
    return {"resourceType": "Bundle", "type": "searchset", "entry": []}


async def _sign(prefetch: Json, rate: float) -> httpx.Response:
    body = call([ivig_order(rate=qty(rate, "mL/h"))], prefetch, server=ALLOWED, token="tok")
    async with cds() as api:
        return await api.post(SIGN, body)


async def test_a_plain_404_for_one_search_in_the_batch_is_a_type_the_server_lacks(
    httpx_mock: HTTPXMock,
) -> None:
    def answer(url: str) -> tuple[int, Json]:
        if url.startswith("AdverseEvent"):
            return 404, _outcome("not-found")  # HAPI: no provider of the type
        return 200, _empty()

    httpx_mock.add_callback(_server(answer), is_reusable=True)
    prefetch = {k: v for k, v in full_prefetch(patient_70kg()).items() if k != "adverseEvents"}
    r = await _sign(prefetch, 300)
    cards = cards_of(r)
    assert card_with(cards, "exceeds")  # 300 mL/h is above the 4 mg/kg/min limit
    risk = card_with(cards, "TEE risk")
    assert "the FHIR server offers no search of AdverseEvent" in risk["detail"], risk["detail"]


async def test_a_refused_clinical_status_search_in_the_batch_is_read_as_the_server_allows(
    httpx_mock: HTTPXMock,
) -> None:
    """HAPI answers an unknown search parameter 400 ``processing``: the plain Condition search
    is read instead (the refusal learned), the call is answered."""
    seen: list[str] = []

    def answer(url: str) -> tuple[int, Json]:
        seen.append(url)
        if "clinical-status" in url:
            return 400, _outcome("processing")
        if url.startswith("Condition?"):
            return 200, searchset([RESOLVED_DVT]) or _empty()
        return 200, _empty()

    httpx_mock.add_callback(_server(answer), is_reusable=True)
    prefetch = full_prefetch(patient_70kg())
    del prefetch["conditions"], prefetch["conditionsNotActive"]
    r = await _sign(prefetch, 150)
    cards = cards_of(r)
    assert "History of venous" in card_with(cards, "TEE risk")["summary"]
    assert any("clinical-status" in u for u in seen)


async def test_a_resolved_dvt_only_in_the_not_active_conditions_lowers_the_limit(
    httpx_mock: HTTPXMock,
) -> None:
    """Epic's search without clinical-status leaves the resolved DVT out; the service's own
    template for the Conditions not active reads it: 3.3 mg/kg/min, 138 mL/h at 70 kg."""

    def answer(url: str) -> tuple[int, Json]:
        if url.startswith("Condition?clinical-status="):
            assert url.split("&", maxsplit=1)[0] == (
                "Condition?clinical-status=recurrence,relapse,inactive,remission,resolved"
            )
            return 200, searchset([RESOLVED_DVT]) or _empty()
        return 200, _empty()

    httpx_mock.add_callback(_server(answer), is_reusable=True)
    prefetch = full_prefetch(patient_70kg())
    del prefetch["conditionsNotActive"]  # "conditions": Epic's answer, no DVT
    cards = cards_of(await _sign(prefetch, 150))
    assert "History of venous" in card_with(cards, "TEE risk")["summary"]
    assert card_with(cards, "exceeds")["suggestions"][0]["label"] == (
        "Lower the infusion rate to 138 mL/h"
    )
