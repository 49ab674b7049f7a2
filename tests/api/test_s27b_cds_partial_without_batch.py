"""What prefetch lacked, read from a FHIR server that takes no searches in a batch (Oracle Health
has no batch; Google Cloud's batch takes no searches: fhirtis/api/cds_hooks/fetch.py reads the
types one search at a time, ``pull_types``): a search page whose own OperationOutcome
(``search.mode = outcome``) says that only part of the matches came back makes the risk card say
the data may be incomplete (a warning), as the batch path does
(tests/api/test_s26sc_cds_partial_search.py), never "no thrombosis risk factor found" as info.

Shapes: FHIR R4 search.html, "Other resources may be included in the results ... an
OperationOutcome ... search.mode = outcome" (http://hl7.org/fhir/R4/search.html#errors,
Bundle.entry.search.mode), issue codes from R4 valueset-issue-type (``incomplete``: "The
operation was not completed ... some of the results may be missing" family; ``processing``).
A server without batch searches, as the FHIR test server's ``oracle-like`` and ``google-like``
profiles (tests/fhir_server/lib/profiles.mjs): no ``batch`` in
CapabilityStatement.rest.interaction and a batch refused 405, or a batch whose searches are
each refused 400 ``not-supported``.
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
    SIGN,
    call,
    card_with,
    cards_of,
    cds,
    full_prefetch,
    ivig_order,
    patient_70kg,
)
from tests.api.test_s26sc_cds_partial_search import empty_searchset, outcome_of
from tests.fhir.builders import qty
from tests.io._s25_srv_fake import statement

Json = dict[str, Any]


def _no_batch_server(
    how: str, searched: str, outcome: Json, seen: list[str]
) -> Callable[[httpx.Request], httpx.Response]:
    """A FHIR server at ALLOWED without batch searches, as the FHIR test server's profiles
    (tests/fhir_server/lib/profiles.mjs): ``how`` "oracle" (its CapabilityStatement lists no
    batch; a batch is answered 405 not-supported) or "google" (batch, but each search inside
    it answered 400 not-supported). Every search answers an empty page; the searches of
    ``searched`` carry ``outcome`` as their own search outcome."""
    refused = outcome_of("error", "not-supported")

    def handle(request: httpx.Request) -> httpx.Response:
        path = str(request.url)[len(ALLOWED) :].lstrip("/")
        seen.append(f"{request.method} {path.split('?', 1)[0]}")
        if path == "metadata":
            return httpx.Response(200, json=statement(batch=how == "google"))
        if request.method == "POST" and path == "":
            if how == "oracle":
                return httpx.Response(405, json=refused)
            entries = [
                {"resource": refused, "response": {"status": "400 Bad Request"}}
                for _ in json.loads(request.content)["entry"]
            ]
            return httpx.Response(
                200, json={"resourceType": "Bundle", "type": "batch-response", "entry": entries}
            )
        if request.method != "GET" or "?" not in path:
            return httpx.Response(405, json=refused)
        rtype = path.split("?", 1)[0]
        return httpx.Response(200, json=empty_searchset(outcome if rtype == searched else None))

    return handle


async def _sign(prefetch: Json) -> httpx.Response:
    body = call([ivig_order(rate=qty(150, "mL/h"))], prefetch, server=ALLOWED, token="tok")
    async with cds() as api:
        return await api.post(SIGN, body)


@pytest.mark.parametrize("how", ["oracle", "google"])
@pytest.mark.parametrize(
    ("key", "searched", "severity"),
    [("conditions", "Condition", "error"), ("measures", "Observation", "warning")],
)
async def test_a_search_answered_in_part_without_batch_is_said(
    httpx_mock: HTTPXMock, how: str, key: str, searched: str, severity: str
) -> None:
    seen: list[str] = []
    outcome = outcome_of(severity, "incomplete")
    httpx_mock.add_callback(_no_batch_server(how, searched, outcome, seen), is_reusable=True)
    prefetch = full_prefetch(patient_70kg())
    del prefetch[key]
    r = await _sign(prefetch)
    assert any(s.startswith(f"GET {searched}") for s in seen), seen  # read one search at a time
    risk = card_with(cards_of(r), "TEE risk")
    assert risk["indicator"] == "warning", risk
    assert "data may be incomplete" in risk["summary"]
    assert f"the search for {searched} reported that only part" in risk["detail"], risk["detail"]


@pytest.mark.parametrize("how", ["oracle", "google"])
async def test_an_informational_search_outcome_without_batch_changes_nothing(
    httpx_mock: HTTPXMock, how: str
) -> None:
    """Epic's "no results" outcome (warning ``processing``) says nothing is missing."""
    seen: list[str] = []
    outcome = outcome_of("warning", "processing")
    httpx_mock.add_callback(_no_batch_server(how, "Condition", outcome, seen), is_reusable=True)
    prefetch = full_prefetch(patient_70kg())
    del prefetch["conditions"]
    risk = card_with(cards_of(await _sign(prefetch)), "TEE risk")
    assert any(s.startswith("GET Condition") for s in seen), seen
    assert risk["indicator"] == "info", risk
    assert "only part" not in risk["detail"]
