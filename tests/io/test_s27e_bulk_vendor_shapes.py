"""Bulk Data answers real servers send, beyond the letter of the IG (v2.0.0, export.html).

- Oracle Health Soarian Clinicals' completion manifest sends ``requiresAccessToken`` as the
  JSON *string* ``"true"`` (docs.oracle.com/en/industries/health/soarian-clinicals-apis/sfbda/
  op-export-filerequest-get.html, "Get a list of output files", example response; the same
  page on fhir.cerner.com/soarian/r4/bulk-data/export/), not the IG's boolean. The string is
  read as the boolean it spells: the files are fetched with the access token, on the FHIR
  server's origin only; ``"false"`` fetches them without it. Any other value is still refused.
- A completion manifest without ``requiresAccessToken``: HAPI FHIR's ``$export-poll-status``
  sent only ``transactionTime`` and ``output`` (hapifhir/hapi-fhir issue #4051, fixed by PR
  #4055 in 2022; its files are ``Binary`` reads on the FHIR server, which need the token).
  Read as ``true``: the token goes to files on the FHIR server's origin only, and a file
  elsewhere is refused before any request (never sent with the token, nor silently without).
- A completion manifest without ``output`` when nothing matched: LinuxForHealth (IBM) FHIR
  server answered ``{"transactionTime", "request", "requiresAccessToken"}`` only
  (LinuxForHealth/FHIR issue #2676); HAPI FHIR 6.10.3 answered such an export without the
  required fields, ``output`` among them (hapifhir/hapi-fhir issue #5632). The IG v2 says an
  export that returns no resources SHOULD give an empty array: a missing ``output`` is read as
  that (a ``_since`` export of a Group in which nothing changed). A present ``output`` that is
  not a list is still refused.
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from pytest_httpx import HTTPXMock

from fhirtis.io import (
    BulkExportClient,
    FhirClient,
    FhirClientConfig,
    ForeignUrl,
    MalformedResponse,
    Manifest,
)
from tests.io._support import BASE, FakeTime

STATUS_URL = f"{BASE}/bulk-api/request/173a39fc-a2c3-4df2-ae41-5445240f3612"
FILES = f"{BASE}/bulk-api/download/173a39fc-a2c3-4df2-ae41-5445240f3612"
PATIENT_FILE = f"{FILES}/2A168AB6-7F5E-4BDC-BD53-F5911FF82D68_Patient.ndjson"
PATIENT = {"resourceType": "Patient", "id": "p1"}


def _soarian_manifest(requires: Any) -> dict[str, Any]:
    """The shape of Soarian Clinicals' documented completion manifest."""
    return {
        "transactionTime": "2022-05-10T03:17:51Z",
        "request": f"{BASE}/Group/All_Patients/$export?_type=Patient",
        "requiresAccessToken": requires,
        "output": [{"type": "Patient", "url": PATIENT_FILE}],
        "error": [],
    }


@pytest.fixture
def bearer_fhir(make_config: Any, fake_time: FakeTime) -> FhirClient:
    config: FhirClientConfig = make_config(auth_mode="bearer", bearer_token="s3cret-token")
    return FhirClient(config, timing=fake_time.timing())


async def test_soarian_string_true_manifest_is_read_and_files_get_the_token(
    httpx_mock: HTTPXMock, bearer_fhir: FhirClient
) -> None:
    httpx_mock.add_response(url=STATUS_URL, json=_soarian_manifest("true"))
    httpx_mock.add_response(url=PATIENT_FILE, content=orjson.dumps(PATIENT) + b"\n")
    async with bearer_fhir:
        bulk = BulkExportClient(bearer_fhir)
        manifest = await bulk.poll(STATUS_URL)
        items = [item async for item in bulk.download(manifest)]
    assert manifest.requires_access_token is True
    assert items == [("Patient", PATIENT)]
    file_request = httpx_mock.get_requests()[-1]
    assert file_request.url == PATIENT_FILE
    assert file_request.headers["Authorization"] == "Bearer s3cret-token"


@pytest.mark.parametrize(("text", "value"), [("true", True), ("false", False), (" TRUE ", True)])
def test_requires_access_token_spelled_as_a_string(text: str, value: bool) -> None:
    manifest = Manifest.from_json(_soarian_manifest(text))
    assert manifest.requires_access_token is value
    assert manifest.to_json()["requiresAccessToken"] is value  # kept as the IG's boolean


@pytest.mark.parametrize("bad", ["yes", "1", "", 1, [True]])
def test_other_requires_access_token_values_are_still_refused(bad: Any) -> None:
    with pytest.raises(MalformedResponse, match="requiresAccessToken"):
        Manifest.from_json(_soarian_manifest(bad))


HAPI_61_MANIFEST: dict[str, Any] = {  # hapifhir/hapi-fhir#4051: no request, no requiresAccessToken
    "transactionTime": "2022-09-21T10:00:00.000-04:00",
    "output": [{"type": "Patient", "url": f"{BASE}/Binary/bulk-1"}],
}


async def test_hapi_manifest_without_requires_access_token_sends_the_token_to_its_binaries(
    httpx_mock: HTTPXMock, bearer_fhir: FhirClient
) -> None:
    httpx_mock.add_response(url=STATUS_URL, json=HAPI_61_MANIFEST)
    httpx_mock.add_response(url=f"{BASE}/Binary/bulk-1", content=orjson.dumps(PATIENT) + b"\n")
    async with bearer_fhir:
        bulk = BulkExportClient(bearer_fhir)
        manifest = await bulk.poll(STATUS_URL)
        items = [item async for item in bulk.download(manifest)]
    assert manifest.requires_access_token is True
    assert items == [("Patient", PATIENT)]
    assert httpx_mock.get_requests()[-1].headers["Authorization"] == "Bearer s3cret-token"


async def test_without_requires_access_token_a_foreign_file_is_refused_unsent(
    httpx_mock: HTTPXMock, bearer_fhir: FhirClient
) -> None:
    data = dict(
        HAPI_61_MANIFEST, output=[{"type": "Patient", "url": "https://files.example.net/p"}]
    )
    manifest = Manifest.from_json(data)
    async with bearer_fhir:
        with pytest.raises(ForeignUrl):
            _ = [item async for item in BulkExportClient(bearer_fhir).download(manifest)]
    assert httpx_mock.get_requests() == []


IBM_EMPTY_MANIFEST: dict[str, Any] = {  # LinuxForHealth/FHIR#2676: nothing exported, no output
    "transactionTime": "2021-08-10T21:14:53.311Z",
    "request": f"{BASE}/Patient/$export?_type=Encounter",
    "requiresAccessToken": False,
}


async def test_manifest_without_output_is_an_export_of_nothing(
    httpx_mock: HTTPXMock, bearer_fhir: FhirClient
) -> None:
    httpx_mock.add_response(url=STATUS_URL, json=IBM_EMPTY_MANIFEST)
    async with bearer_fhir:
        bulk = BulkExportClient(bearer_fhir)
        manifest = await bulk.poll(STATUS_URL)
        items = [item async for item in bulk.download(manifest)]
    assert manifest.transaction_time == "2021-08-10T21:14:53.311Z"
    assert (manifest.output, manifest.error, manifest.deleted) == ((), (), ())
    assert items == []
    assert manifest.to_json()["output"] == []  # written back as the IG's empty array


@pytest.mark.parametrize("bad", [{"type": "Patient"}, "none", 0])
def test_an_output_that_is_not_a_list_is_still_refused(bad: Any) -> None:
    with pytest.raises(MalformedResponse, match="output"):
        Manifest.from_json(dict(IBM_EMPTY_MANIFEST, output=bad))
