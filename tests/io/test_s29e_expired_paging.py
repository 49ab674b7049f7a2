"""A later page of a search whose paging session the server dropped (HAPI FHIR ``_getpages``).

HAPI FHIR keeps a search's results for its ``next`` links (``[base]?_getpages=<search id>&
_getpagesoffset=…``) in its paging provider; a link to results it no longer holds is answered
410 Gone, "Search ID[…] does not exist and may have expired." (hapifhir/hapi-fhir,
PageMethodBinding; the JPA server likewise once ``expireSearchResultsAfterMillis`` passed,
HAPI-0244 in FhirResourceDaoR4SearchPageExpiryTest). A plain HAPI server (the base of many EHR
facades) uses ``FifoMemoryPagingProvider``, a fixed number of searches (10 in HAPI's
documentation example): under concurrent searches an early one is dropped within seconds.

fhirtis failed the patient ("a later page of a search answered 410"), though the search sent
again from its first page is answered whole. A later page answered 404 or 410 now sends that
search again, once, from its first page; the pages read before are not kept (no mixed copies).
"""

from __future__ import annotations

from typing import Any

import httpx
from pytest_httpx import HTTPXMock

from fhirtis.fhir.bundle import PatientResources
from fhirtis.io import FhirClient, FhirClientConfig
from fhirtis.io._capabilities import SEARCH_MODE_EXTENSION
from fhirtis.pipeline.pull import pull_patient
from fhirtis.pipeline.server import RunStatus, run_patient
from fhirtis.settings import Settings
from tests.io._s25_srv_fake import SCT, FakeServer, patient, resource_entry, statement
from tests.io._support import BASE

Json = dict[str, Any]

GONE: Json = {
    "resourceType": "OperationOutcome",
    "issue": [
        {
            "severity": "error",
            "code": "processing",
            "diagnostics": 'Search ID "3b5e7f1c" does not exist and may have expired',
        }
    ],
}


def _condition(cid: str, code: str) -> Json:
    return {
        "resourceType": "Condition",
        "id": cid,
        "subject": {"reference": "Patient/p1"},
        "code": {"coding": [{"system": SCT, "code": code}]},
        "onsetDateTime": "2023-03-01",
    }


HYPERTENSION = _condition("htn", "38341003")
DVT = _condition("dvt", "128053003")


class Paged:
    """Conditions in two pages, HAPI-shaped: the ``next`` link is ``[base]?_getpages=…``.
    ``drops``: how many times the second page is answered 410 before it is served."""

    def __init__(self, drops: int, status: int = 410) -> None:
        self.drops = drops
        self.status = status
        self.first_pages = 0

    def __call__(self, request: httpx.Request) -> httpx.Response | None:
        if "_getpages" in request.url.params:
            if self.drops > 0:
                self.drops -= 1
                return httpx.Response(self.status, json=GONE)
            return httpx.Response(200, json=_page([DVT]))
        if request.method == "POST" and request.url.path.endswith("/Condition/_search"):
            if b"clinical-status" in request.content:
                return httpx.Response(200, json=_page([]))
            self.first_pages += 1
            nxt = f"{BASE}?_getpages=3b5e7f1c&_getpagesoffset=1&_count=1&_bundletype=searchset"
            return httpx.Response(200, json=_page([HYPERTENSION], nxt))
        if request.url.path.endswith("/Condition") and "clinical-status" not in request.url.params:
            self.first_pages += 1
            nxt = f"{BASE}?_getpages=3b5e7f1c&_getpagesoffset=1&_count=1&_bundletype=searchset"
            return httpx.Response(200, json=_page([HYPERTENSION], nxt))
        return None


def _page(resources: list[Json], next_url: str | None = None) -> Json:
    bundle: Json = {
        "resourceType": "Bundle",
        "type": "searchset",
        "entry": [{"resource": r, "search": {"mode": "match"}} for r in resources],
    }
    if next_url is not None:
        bundle["link"] = [{"relation": "next", "url": next_url}]
    return bundle


async def _pull(server: FakeServer, httpx_mock: HTTPXMock) -> PatientResources:
    httpx_mock.add_callback(server, is_reusable=True)
    async with FhirClient(FhirClientConfig(base_url=BASE)) as client:
        return await pull_patient(client, "p1", Settings(), {})


async def test_an_expired_paging_session_sends_the_search_again(httpx_mock: HTTPXMock) -> None:
    paged = Paged(drops=1)
    pulled = await _pull(FakeServer(statement(), [patient()], [], [paged]), httpx_mock)
    assert paged.first_pages == 2  # sent again once, from its first page
    assert {"Condition/htn", "Condition/dvt"} <= set(pulled.resolve)


async def test_an_expired_paging_session_in_a_batch_sends_the_search_again(
    httpx_mock: HTTPXMock,
) -> None:
    paged = Paged(drops=1, status=404)
    server = FakeServer(statement(batch=True), [patient()], [], [paged], batch=True)
    pulled = await _pull(server, httpx_mock)
    assert any(r.method == "POST" for r in server.requests)  # read as one batch
    assert paged.first_pages == 2
    assert {"Condition/htn", "Condition/dvt"} <= set(pulled.resolve)


async def test_an_expired_paging_session_of_a_post_search_sends_it_again(
    httpx_mock: HTTPXMock,
) -> None:
    # a server that takes searches of Condition as POST _search only (Redox; the statement
    # says so with capabilitystatement-search-mode)
    caps = statement(
        {
            "Condition": {
                **resource_entry("Condition"),
                "extension": [{"url": SEARCH_MODE_EXTENSION, "valueCode": "POST"}],
            }
        }
    )
    paged = Paged(drops=1)
    server = FakeServer(caps, [patient()], [], [paged])
    pulled = await _pull(server, httpx_mock)
    assert paged.first_pages == 2
    assert not [
        r for r in server.requests if r.method == "GET" and r.url.path.endswith("/Condition")
    ]
    assert {"Condition/htn", "Condition/dvt"} <= set(pulled.resolve)


async def test_a_search_whose_pages_expire_again_fails_the_patient(httpx_mock: HTTPXMock) -> None:
    paged = Paged(drops=5)
    server = FakeServer(statement(), [patient()], [], [paged])
    httpx_mock.add_callback(server, is_reusable=True)
    async with FhirClient(FhirClientConfig(base_url=BASE)) as client:
        run = await run_patient(client, "p1", Settings())
    assert run.status is RunStatus.FAILED, run.status
    assert paged.first_pages == 2  # once again only: no loop
    assert run.error is not None and "410" in run.error
    assert "3b5e7f1c" not in run.error  # the paging token is not repeated
