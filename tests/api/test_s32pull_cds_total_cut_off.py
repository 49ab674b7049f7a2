"""What prefetch lacked, read from ``fhirServer``: a search whose pages end (no ``next`` link)
before the matches its ``Bundle.total`` counts is not all of the patient's data.

The CDS service refused such a searchset when it was prefetched ("fewer matches than its own
``total``", README CDS Hooks) but took it as complete when it read the search itself, in one
batch (fhirtis/api/cds_hooks/fetch.py) or one search at a time as ``fhirtis run`` reads it
(fhirtis/pipeline/pull.py): "no thrombosis risk factor found" on part of the problem list. R4
Bundle.total: "the total number of entries of type 'match' across all pages in the search";
sources of such answers in tests/io/test_s32pull_total_cut_off.py. Now the risk card is a
warning that the data may be incomplete.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from pytest_httpx import HTTPXMock

from tests.api.test_cds_hooks import ALLOWED, card_with, cards_of, full_prefetch, patient_70kg
from tests.api.test_s25_cond_fetch import _sign
from tests.io._s25_srv_fake import SCT, statement

Json = dict[str, Any]

DERMATOMYOSITIS: Json = {
    "resourceType": "Condition",
    "id": "dm",
    "subject": {"reference": "Patient/p1"},
    "code": {"coding": [{"system": SCT, "code": "396230008"}]},
    "onsetDateTime": "2023-03-01",
}


def _page(url: str) -> Json:
    """The plain Condition search: one match, a ``total`` of 2, no ``next`` link (paging
    stopped); every other search: no match, ``total`` 0."""
    plain = url.startswith("Condition?") and "clinical-status" not in url
    entries = [{"resource": DERMATOMYOSITIS, "search": {"mode": "match"}}] if plain else []
    return {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": 2 if plain else 0,
        "entry": entries,
    }


def _server(batch: bool) -> Callable[[httpx.Request], httpx.Response]:
    def handle(request: httpx.Request) -> httpx.Response:
        path = str(request.url)[len(ALLOWED) :].lstrip("/")
        if path == "metadata":
            if batch:
                return httpx.Response(404, json={"resourceType": "OperationOutcome", "issue": []})
            return httpx.Response(200, json=statement(batch=False))
        if request.method == "POST" and path == "":
            if not batch:
                refused = {"resourceType": "OperationOutcome", "issue": [{"severity": "error"}]}
                refused["issue"][0]["code"] = "not-supported"
                return httpx.Response(405, json=refused)
            entries = [
                {"resource": _page(e["request"]["url"]), "response": {"status": "200 OK"}}
                for e in json.loads(request.content)["entry"]
            ]
            answer = {"resourceType": "Bundle", "type": "batch-response", "entry": entries}
            return httpx.Response(200, json=answer)
        return httpx.Response(
            200, json=_page(httpx.URL(request.url).raw_path.decode().split("/fhir/")[1])
        )

    return handle


@pytest.mark.parametrize("batch", [True, False])
async def test_a_search_read_short_of_its_total_is_said(httpx_mock: HTTPXMock, batch: bool) -> None:
    httpx_mock.add_callback(_server(batch), is_reusable=True)
    prefetch = full_prefetch(patient_70kg())
    del prefetch["conditions"]
    risk = card_with(cards_of(await _sign(prefetch, 150)), "TEE risk")
    # without the warning: "no thrombosis risk factor found", info
    assert risk["indicator"] == "warning", risk
    assert "incomplete" in risk["summary"], risk["summary"]
    assert "Condition" in risk["detail"] and "only part" in risk["detail"], risk["detail"]
