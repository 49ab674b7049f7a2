"""A search match whose ``resourceType`` is no FHIR resource type is said, not dropped in
silence (s39 fuzz: ``OBSERVATION`` for ``Observation``). A server's search that returns one
holds data the evaluation does not read: a warning on the result, naming the search's type and
how many, never the resource's content, and the type read in part (as a search cut off before
its total is). A real type (an Encounter) stays silent."""

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


def _odd_observation_search(rtype: str) -> Any:
    def handler(request: httpx.Request) -> httpx.Response | None:
        if request.method != "GET" or not request.url.path.endswith("/Observation"):
            return None
        odd = {
            "resourceType": rtype,
            "id": "ck1",
            "subject": {"reference": "Patient/p1"},
            "valueQuantity": {"value": 912, "unit": "U/L"},
        }
        entry = {"fullUrl": f"{BASE}/Observation/ck1", "resource": odd, "search": {"mode": "match"}}
        bundle = {"resourceType": "Bundle", "type": "searchset", "entry": [entry]}
        return httpx.Response(200, json=bundle)

    return handler


async def _pull(httpx_mock: HTTPXMock, rtype: str) -> Any:
    server = FakeServer(statement(), [patient()], before=[_odd_observation_search(rtype)])
    httpx_mock.add_callback(server, is_reusable=True)
    async with FhirClient(FhirClientConfig(base_url=BASE)) as client:
        return await pull_patient(client, "p1", Settings(), {})


async def test_a_match_of_no_resource_type_is_a_warning(httpx_mock: HTTPXMock) -> None:
    pulled = await _pull(httpx_mock, "OBSERVATION")
    said = [i for i in pulled.issues if "no FHIR R4 resource type" in i.diagnostics]
    assert len(said) == 1, pulled.issues
    assert said[0].severity == "warning"
    assert "Observation search" in said[0].diagnostics
    assert "912" not in said[0].diagnostics and "OBSERVATION" not in said[0].diagnostics
    assert all(r["resourceType"] != "OBSERVATION" for _, r in pulled.resources)
    assert list(pulled.read_in_part) == ["Observation"]  # marked partial, as a cut-off search


async def test_a_match_of_a_real_type_stays_silent(httpx_mock: HTTPXMock) -> None:
    pulled = await _pull(httpx_mock, "Encounter")
    assert not [i for i in pulled.issues if "resource type" in i.diagnostics], pulled.issues
    assert list(pulled.read_in_part) == []
