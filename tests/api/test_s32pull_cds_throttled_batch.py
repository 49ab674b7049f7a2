"""What prefetch lacked, read in one batch from a FHIR server that throttles some of its entries
(fhirtis/api/cds_hooks/fetch.py).

Azure Health Data Services / Azure API for FHIR (microsoft/fhir-server PR #1658, "Change 429
handling for bundles"): "If an action in a bundle does result in a 429, all subsequent actions
will be skipped and will have the same 429 response"; each such entry carries
``response.status`` "429" and an OperationOutcome of code ``throttled``. Those searches were never
run. ``fhirtis run`` reads them again one at a time (fhirtis/pipeline/pull.py, ``NOT_RUN``; README
"Each server as it is": "Entries of a read batch answered 429 or 503 … are read again one at a
time, with the usual backoff"; tests/e2e/test_s24_throttled_batch.py).

The CDS service answered the whole call 412 "the FHIR server answered 429 to the read of
DeviceUseStatement the service needs" (even for a type it can go without), although the data
could be read: CDS Hooks 2.0 keeps 412 for data the service "is unable to retrieve". Now each
entry answered 429 or 503 is read again on its own, with the client's retries, and the cards
come from what it returns.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from pytest_httpx import HTTPXMock

from tests.api.test_cds_hooks import (
    ALLOWED,
    DVT,
    SIGN,
    call,
    card_with,
    cards_of,
    cds,
    full_prefetch,
    ivig_order,
    patient_70kg,
)
from tests.api.test_s26sc_cds_partial_search import empty_searchset
from tests.fhir.builders import qty

Json = dict[str, Any]

THROTTLED: Json = {
    "resourceType": "OperationOutcome",
    "issue": [
        {
            "severity": "error",
            "code": "throttled",
            "diagnostics": "The request rate exceeded the provisioned throughput.",
        }
    ],
}


def _server(
    seen: list[str], found: dict[str, list[Json]], status: int = 429, skip_from: int = 1
) -> Callable[[httpx.Request], httpx.Response]:
    """A FHIR server at ALLOWED that takes searches in a batch (no CapabilityStatement): every
    batch entry from ``skip_from`` on is skipped (``status``, Azure's shape); a search sent on
    its own (or run in the batch) is answered with ``found`` of its type."""

    def page(url: str) -> Json:
        rtype = url.split("?", 1)[0].split("/", 1)[0]
        bundle = empty_searchset()
        for r in found.get(rtype, []):
            bundle["entry"].append({"resource": r, "search": {"mode": "match"}})
        bundle["total"] = len(bundle["entry"])
        return bundle

    def handle(request: httpx.Request) -> httpx.Response:
        path = str(request.url)[len(ALLOWED) :].lstrip("/")
        if path == "metadata":
            return httpx.Response(404, json={"resourceType": "OperationOutcome", "issue": []})
        if request.method == "POST" and path == "":
            entries: list[Json] = []
            for i, e in enumerate(json.loads(request.content)["entry"]):
                seen.append(f"batch {e['request']['url'].split('?', 1)[0]}")
                if i < skip_from:
                    ok = {"status": "200 OK"}
                    entries.append({"response": ok, "resource": page(e["request"]["url"])})
                else:
                    entries.append({"response": {"status": str(status), "outcome": THROTTLED}})
            answer = {"resourceType": "Bundle", "type": "batch-response", "entry": entries}
            return httpx.Response(200, json=answer, headers={"Retry-After": "0"})
        seen.append(f"GET {path.split('?', 1)[0]}")
        return httpx.Response(200, json=page(path))

    return handle


def _prefetch_without(*keys: str) -> Json:
    prefetch = full_prefetch(patient_70kg())
    for key in keys:
        del prefetch[key]
    return prefetch


@pytest.mark.parametrize(("status", "skip_from"), [(429, 0), (503, 0), (429, 1)])
async def test_throttled_entries_of_the_batch_are_read_again(
    httpx_mock: HTTPXMock, status: int, skip_from: int
) -> None:
    seen: list[str] = []
    found = {"Condition": [DVT]}
    httpx_mock.add_callback(_server(seen, found, status, skip_from), is_reusable=True)
    body = call(
        [ivig_order(rate=qty(300, "mL/h"))],
        _prefetch_without("procedures", "conditions", "deviceUseStatements"),
        server=ALLOWED,
        token="tok",
    )
    async with cds() as api:
        r = await api.post(SIGN, body)
    cards = cards_of(r)  # 200, not 412
    assert any(s.startswith("batch ") for s in seen), seen
    # the skipped searches, each on its own
    assert ("GET Condition" in seen) == (skip_from == 0), seen
    assert "GET Procedure" in seen, seen
    risk = card_with(cards, "TEE risk")
    # the DVT the Condition search read on its own brought: history of thrombosis, 3.3
    assert "History of venous or arterial thrombosis" in risk["summary"], risk
    assert "`Condition/dvt`" in risk["detail"]
    limit = card_with(cards, "Max IVIG rate")
    assert limit["summary"].startswith("Max IVIG rate 3.3 mg/kg/min"), limit


async def test_a_skipped_entry_read_again_and_refused_403_is_left_out_as_before(
    httpx_mock: HTTPXMock,
) -> None:
    """A skipped search of a type the evaluation can go without, refused 403 when read on its
    own, is named as not read (as a batch entry refused 403 is: tests/api/
    test_s29b_cds_forbidden_types.py); the cards come."""
    seen: list[str] = []
    inner = _server(seen, {})

    def handle(request: httpx.Request) -> httpx.Response:
        if request.method == "GET" and "/Procedure" in request.url.path:
            seen.append("GET Procedure")
            refused = {"resourceType": "OperationOutcome", "issue": [{"severity": "error"}]}
            refused["issue"][0]["code"] = "forbidden"
            return httpx.Response(403, json=refused)
        return inner(request)

    httpx_mock.add_callback(handle, is_reusable=True)
    body = call(
        [ivig_order(rate=qty(150, "mL/h"))],
        _prefetch_without("procedures", "conditions", "deviceUseStatements"),
        server=ALLOWED,
        token="tok",
    )
    async with cds() as api:
        r = await api.post(SIGN, body)
    cards = cards_of(r)
    assert "GET Procedure" in seen, seen
    risk = card_with(cards, "TEE risk")
    assert risk["indicator"] == "warning"
    assert "Procedure" in risk["detail"] and "not allowed" in risk["detail"], risk["detail"]
