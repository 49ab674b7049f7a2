"""A resource a paged search returns twice, changed between the pages.

Oracle Health (Cerner) Millennium, "Cerner FHIR Developers" notice on paging
(https://groups.google.com/g/cerner-fhir-developers/c/manl3nY2yQw): results are only current
at the instant each page is read; "When results are returned in a series of pages, you may see
the same resource id on subsequent pages. Developers need to take this situation into account
and filter by resource id and only return the latest version of that resource id." R4
search.html §3.1.1.7 (paging) says the same of any server.

fhirtis read each id once but kept the copy it met first, whatever its version: an
administration marked ``entered-in-error`` between two pages still counted as a given dose.
The copy with the newer ``meta.lastUpdated`` (or, where both lack it or tie, the greater
integer ``meta.versionId``) is the one read.
"""

from __future__ import annotations

from typing import Any

import httpx
from pytest_httpx import HTTPXMock

from fhirtis.io import FhirClient, FhirClientConfig
from fhirtis.pipeline.pull import pull_patient
from fhirtis.settings import Settings
from tests.io._s25_srv_fake import FakeServer, patient, statement
from tests.io._support import BASE

Json = dict[str, Any]
NEXT = f"{BASE}/MedicationAdministration?patient=p1&-pageContext=abc&-pageDirection=NEXT"


def _administration(version: str, updated: str | None, status: str) -> Json:
    meta: Json = {"versionId": version}
    if updated is not None:
        meta["lastUpdated"] = updated
    return {
        "resourceType": "MedicationAdministration",
        "id": "ma1",
        "meta": meta,
        "status": status,
        "subject": {"reference": "Patient/p1"},
        "medicationCodeableConcept": {"text": "IVIG"},
        "effectiveDateTime": "2024-01-05T10:00:00Z",
    }


def _page(resource: Json, next_url: str | None) -> Json:
    bundle: Json = {
        "resourceType": "Bundle",
        "type": "searchset",
        "entry": [
            {
                "fullUrl": f"{BASE}/MedicationAdministration/ma1",
                "resource": resource,
                "search": {"mode": "match"},
            }
        ],
        "link": [{"relation": "self", "url": f"{BASE}/MedicationAdministration?patient=p1"}],
    }
    if next_url is not None:
        bundle["link"].append({"relation": "next", "url": next_url})
    return bundle


def _two_pages(first: Json, second: Json) -> Any:
    def pages(request: httpx.Request) -> httpx.Response | None:
        if not request.url.path.endswith("/MedicationAdministration"):
            return None
        if request.url.params.get("-pageContext") == "abc":
            return httpx.Response(200, json=_page(second, None))
        return httpx.Response(200, json=_page(first, NEXT))

    return pages


async def _kept(httpx_mock: HTTPXMock, first: Json, second: Json) -> Json:
    server = FakeServer(statement(), [patient()], before=[_two_pages(first, second)])
    httpx_mock.add_callback(server, is_reusable=True)
    async with FhirClient(FhirClientConfig(base_url=BASE)) as client:
        pulled = await pull_patient(client, "p1", Settings(), {})
    assert any("-pageContext=abc" in str(r.url) for r in server.requests)
    kept = pulled.resolve["MedicationAdministration/ma1"]
    assert [r for _, r in pulled.resources if r.get("id") == "ma1"] == [kept]
    return kept


async def test_the_newer_copy_on_a_later_page_is_read(httpx_mock: HTTPXMock) -> None:
    given = _administration("1", "2024-01-05T11:00:00Z", "completed")
    withdrawn = _administration("2", "2024-01-05T12:30:00+01:00", "entered-in-error")
    kept = await _kept(httpx_mock, given, withdrawn)
    assert kept["status"] == "entered-in-error"


async def test_an_older_copy_on_a_later_page_does_not_replace_the_newer(
    httpx_mock: HTTPXMock,
) -> None:
    withdrawn = _administration("2", "2024-01-05T12:00:00Z", "entered-in-error")
    given = _administration("1", "2024-01-05T11:00:00Z", "completed")
    kept = await _kept(httpx_mock, withdrawn, given)
    assert kept["status"] == "entered-in-error"


async def test_without_last_updated_the_greater_version_is_read(httpx_mock: HTTPXMock) -> None:
    given = _administration("9", None, "completed")
    withdrawn = _administration("10", None, "entered-in-error")  # 10 > 9, not "10" < "9"
    kept = await _kept(httpx_mock, given, withdrawn)
    assert kept["status"] == "entered-in-error"
