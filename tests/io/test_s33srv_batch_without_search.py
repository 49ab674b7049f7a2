"""Servers whose batch takes reads and writes but not searches, while their statement lists
``batch`` (R4 http.html#transaction: a batch may hold searches; a server that does not run them
answers each such entry with an error, or with whatever its URL parses to).

- Google Cloud Healthcare API, ``fhir.executeBundle``: "Implements the FHIR standard
  batch/transaction interaction [...] Supports all interactions within a bundle, except
  search." (cloud.google.com/healthcare-api/docs/reference/rest/v1/
  projects.locations.datasets.fhirStores.fhir/executeBundle).
- Helios FHIR Server (HeliosSoftware/hfs#478, "batch/transaction: search-style GET entries are
  mis-parsed as instance reads"): a batch entry ``GET Patient?name=…`` answered
  ``404 Not Found`` ("Resource not found"), ``GET Patient/{id}`` answered 200.
- Blaze (samply/blaze#778): a batch entry it cannot route answered ``400`` with an
  OperationOutcome issue ``value`` ("Unknown type ... in bundle entry URL").

fhirtis reads a patient with one batch of searches where the statement lists ``batch``. A
search entry refused there with ``not-supported`` (or a 404 on a type the statement does not
list) was sent alone as a GET and, where that worked, the server learned as one that takes no
searches in a batch. Any other refusal (a 404 on a listed type, a 400 ``value`` or
``processing``) failed the patient on every run ("batch entry Condition failed with status
404"), or, where the search has an ``_include`` or a second patient parameter, was blamed on
those: an alternative without them was sent alone, worked (the server runs every search
alone), and ``_include`` or ``subject`` were learned as refused for good, until the searches
without alternatives failed the patient all the same. The search the batch refused is now sent
alone as it is first: where that works, the server takes no searches in a batch (learned;
the patient is read with single GETs), and nothing else is blamed.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from pytest_httpx import HTTPXMock

from fhirtis.fhir.bundle import PatientResources
from fhirtis.io import FhirClient, FhirClientConfig
from fhirtis.pipeline.answers import PullError
from fhirtis.pipeline.pull import EXISTING_NEED, pull_patient, read_urls
from fhirtis.settings import Settings
from tests.io._s25_srv_fake import FakeServer, active_dvt, patient, statement
from tests.io._support import BASE

Json = dict[str, Any]
DVT = active_dvt()


def _hfs_entry(url: str) -> Json:
    """HeliosSoftware/hfs#478: the search URL parsed as a resource address."""
    return {
        "response": {
            "status": "404 Not Found",
            "outcome": {
                "resourceType": "OperationOutcome",
                "issue": [
                    {"severity": "error", "code": "not-found", "diagnostics": "Resource not found"}
                ],
            },
        }
    }


def _blaze_entry(url: str) -> Json:
    """samply/blaze#778: an entry URL it cannot route, 400 with issue ``value``."""
    return {
        "response": {
            "status": "400",
            "outcome": {
                "resourceType": "OperationOutcome",
                "issue": [
                    {
                        "severity": "error",
                        "code": "value",
                        "diagnostics": f"Unknown type in bundle entry URL `{url}`.",
                        "expression": ["Bundle.entry[0].request.url"],
                    }
                ],
            },
        }
    }


def _processing_entry(url: str) -> Json:
    """A 400 whose issue is ``processing`` (what HAPI-style servers send for most refusals)."""
    return {
        "response": {
            "status": "400 Bad Request",
            "outcome": {
                "resourceType": "OperationOutcome",
                "issue": [
                    {
                        "severity": "error",
                        "code": "processing",
                        "diagnostics": "search is not supported in a bundle",
                    }
                ],
            },
        }
    }


def _batch_without_search(server: FakeServer, refuse: Any, only: str = "") -> Any:
    """A batch handler: reads by id run (as their GET), searches (of ``only``'s type, where
    given) answered ``refuse(url)``."""

    def handle(request: httpx.Request) -> httpx.Response | None:
        if request.method != "POST" or request.url.path.rstrip("/") != httpx.URL(BASE).path:
            return None
        entries = []
        for e in json.loads(request.content)["entry"]:
            url = e["request"]["url"]
            if "?" in url and url.startswith(only):
                entries.append(refuse(url))
                continue
            answer = server(httpx.Request("GET", f"{BASE}/{url}"))
            status = f"{answer.status_code}"
            entries.append({"resource": answer.json(), "response": {"status": status}})
        return httpx.Response(
            200, json={"resourceType": "Bundle", "type": "batch-response", "entry": entries}
        )

    return handle


async def _pull(server: FakeServer, httpx_mock: HTTPXMock) -> tuple[PatientResources, Any]:
    httpx_mock.add_callback(server, is_reusable=True)
    async with FhirClient(FhirClientConfig(base_url=BASE)) as client:
        pulled = await pull_patient(client, "p1", Settings(), {})
        return pulled, await client.capabilities()


@pytest.mark.parametrize("refuse", [_hfs_entry, _blaze_entry, _processing_entry])
async def test_a_batch_that_runs_no_searches_is_learned_and_the_patient_read_by_get(
    httpx_mock: HTTPXMock, refuse: Any
) -> None:
    server = FakeServer(statement(batch=True), [patient(), DVT], batch=True)
    server.before.append(_batch_without_search(server, refuse))
    pulled, caps = await _pull(server, httpx_mock)
    assert "Condition/dvt" in pulled.resolve
    assert not caps.supports_batch_search()
    # nothing else is blamed: the _include and the patient parameters stay as declared
    assert not [r for r in caps.refused if r.kind in ("include", "search-param")]
    searches = [p for p in server.paths() if p.startswith("GET ") and "?" in p]
    assert any(p.startswith("GET Condition?") for p in searches)


async def test_a_search_refused_alone_too_is_still_the_servers_error(
    httpx_mock: HTTPXMock,
) -> None:
    """A search the server refuses as a GET too (a 400 that is no ``not-supported``) is not
    learned as a batch limit: the patient fails, as before, and the batch is still used."""
    server = FakeServer(statement(batch=True), [patient(), DVT], batch=True)

    def refuse_condition(request: httpx.Request) -> httpx.Response | None:
        if request.method == "GET" and request.url.path.endswith("/Condition"):
            return httpx.Response(400, json=_processing_entry("")["response"]["outcome"])
        return None

    server.before.append(_batch_without_search(server, _processing_entry, only="Condition?"))
    server.before.append(refuse_condition)
    httpx_mock.add_callback(server, is_reusable=True)
    async with FhirClient(FhirClientConfig(base_url=BASE)) as client:
        with pytest.raises(PullError, match="Condition failed with status 400"):
            await pull_patient(client, "p1", Settings(), {})
        caps = await client.capabilities()
    assert caps.supports_batch_search()


async def test_the_search_for_earlier_output_is_read_alone_too(httpx_mock: HTTPXMock) -> None:
    """The write's search for fhirtis's earlier output (by identifier, no alternative to try)
    failed the write on such a server; it is read alone."""
    stored = {
        "resourceType": "Observation",
        "id": "o1",
        "subject": {"reference": "Patient/p1"},
        "identifier": [{"system": "http://fhirtis.org/fhir/sid/derived", "value": "tis-1"}],
    }
    server = FakeServer(statement(batch=True), [patient(), stored], batch=True)
    server.before.append(_batch_without_search(server, _processing_entry))
    httpx_mock.add_callback(server, is_reusable=True)
    url = "Observation?identifier=http://fhirtis.org/fhir/sid/derived|tis-1&_count=100"
    async with FhirClient(FhirClientConfig(base_url=BASE)) as client:
        found = await read_urls(client, [(EXISTING_NEED, url)], {})
    assert [r["id"] for r in found] == ["o1"]
