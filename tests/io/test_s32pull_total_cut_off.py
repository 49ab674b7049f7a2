"""A search whose pages end (no ``next`` link) before the matches its own ``Bundle.total`` counts.

R4 Bundle.total (bundle-definitions.html): "If a set of search matches, this is the total number
of entries of type 'match' across all pages in the search". A server that stops paging early says
so only there: HAPI FHIR's fetch-size maximum ("it is not possible to fetch more than 10,000
resources in any single query": after it, "there is no new next link", hapifhir/hapi-fhir#3599,
with ``JpaStorageSettings#setFetchSizeDefaultMaximum``); a consent or security filter that drops
matches after counting them (hapifhir/hapi-fhir#2012, ConsentInterceptor: ``total`` 3, fewer
entries). ``fhirtis run`` read such a search as all of the patient's data, silently (clinical
specification: "Never guess silently ... the result says so (missing, partial ...)"); the CDS
service already refuses a prefetched searchset with "fewer matches than its own total" (README,
CDS Hooks). Now the search gives an ``incomplete`` warning naming its type.

Not taken for a cut-off (no warning): ``total`` absent (Azure, AWS HealthLake, Medplum without
``_total``); a first page's ``total`` that is only an estimate, the last page's exact (Google
Cloud Healthcare, "Implementing pagination and search totals with FHIR search": "The search total
is an estimate until the last page is returned. The search total returned with the last page of
search results is the exact sum of all matches"); ``_include``d resources counted in ``total``
(HAPI FHIR before hapifhir/hapi-fhir#7153: "Resource entries in bundles that are
OPERATION_OUTCOME or INCLUDE should not be part of the total"); a resource listed on two pages
(Oracle Health's paging notice, tests/io/test_s26sa_cerner_paging_versions.py).
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from pytest_httpx import HTTPXMock

from fhirtis.fhir.bundle import PatientResources
from fhirtis.io import FhirClient, FhirClientConfig
from fhirtis.pipeline.pull import pull_patient
from fhirtis.settings import Settings
from tests.io._s25_srv_fake import SCT, FakeServer, patient, statement
from tests.io._support import BASE

Json = dict[str, Any]


def _condition(cid: str) -> Json:
    return {
        "resourceType": "Condition",
        "id": cid,
        "subject": {"reference": "Patient/p1"},
        "code": {"coding": [{"system": SCT, "code": "38341003"}]},
        "onsetDateTime": "2023-03-01",
    }


class TwoPages:
    """The plain Condition search in two pages: ``first`` then ``second`` (each a list of
    resources), with the ``total`` each page states (None: none); the narrowed search (the
    Conditions not active) answers an empty page."""

    def __init__(
        self,
        first: list[Json],
        second: list[Json],
        totals: tuple[int | None, int | None],
        include: Json | None = None,
    ) -> None:
        self.first, self.second, self.totals, self.include = first, second, totals, include

    def __call__(self, request: httpx.Request) -> httpx.Response | None:
        if request.url.params.get("page") == "2":
            return httpx.Response(200, json=_page(self.second, self.totals[1]))
        if not request.url.path.endswith("/Condition"):
            return None
        if "clinical-status" in request.url.params:
            return httpx.Response(200, json=_page([], 0))
        page = _page(self.first, self.totals[0], f"{BASE}/Condition?page=2")
        if self.include is not None:
            page["entry"].append({"resource": self.include, "search": {"mode": "include"}})
        return httpx.Response(200, json=page)


def _page(resources: list[Json], total: int | None, next_url: str | None = None) -> Json:
    bundle: Json = {
        "resourceType": "Bundle",
        "type": "searchset",
        "entry": [{"resource": r, "search": {"mode": "match"}} for r in resources],
    }
    if total is not None:
        bundle["total"] = total
    if next_url is not None:
        bundle["link"] = [{"relation": "next", "url": next_url}]
    return bundle


async def _pull(paged: TwoPages, httpx_mock: HTTPXMock, *, batch: bool) -> PatientResources:
    server = FakeServer(statement(batch=batch), [patient()], [], [paged], batch=batch)
    httpx_mock.add_callback(server, is_reusable=True)
    async with FhirClient(FhirClientConfig(base_url=BASE)) as client:
        return await pull_patient(client, "p1", Settings(), {})


def _cut_off(pulled: PatientResources) -> list[str]:
    return [
        i.diagnostics
        for i in pulled.issues
        if i.code == "incomplete" and "Condition" in i.diagnostics and "total" in i.diagnostics
    ]


@pytest.mark.parametrize("batch", [False, True])
async def test_pages_that_end_before_the_total_are_said(httpx_mock: HTTPXMock, batch: bool) -> None:
    # 3 matches counted, 2 delivered, and no next link after the second page
    paged = TwoPages([_condition("c1")], [_condition("c2")], (3, 3))
    pulled = await _pull(paged, httpx_mock, batch=batch)
    assert {"Condition/c1", "Condition/c2"} <= set(pulled.resolve)  # what came is used
    (said,) = _cut_off(pulled)
    assert "2 of the 3" in said, said
    assert all(i.severity == "warning" for i in pulled.issues if i.code == "incomplete")


@pytest.mark.parametrize(
    ("totals", "include", "second"),
    [
        ((None, None), None, ["c2"]),  # no total: nothing to compare
        ((2, 2), None, ["c2"]),  # every match delivered
        ((5, 2), None, ["c2"]),  # Google: the first page's total an estimate, the last exact
        ((3, 3), {"resourceType": "Medication", "id": "m1"}, ["c2"]),  # old HAPI counts includes
        ((2, 2), None, ["c1", "c2"]),  # c1 listed on both pages (a page shifted)
    ],
)
async def test_no_warning_where_the_total_is_met_or_not_exact(
    httpx_mock: HTTPXMock,
    totals: tuple[int | None, int | None],
    include: Json | None,
    second: list[str],
) -> None:
    paged = TwoPages([_condition("c1")], [_condition(c) for c in second], totals, include)
    pulled = await _pull(paged, httpx_mock, batch=False)
    assert "Condition/c2" in pulled.resolve
    assert _cut_off(pulled) == []
    assert not [i for i in pulled.issues if i.code == "incomplete"], pulled.issues
