"""Bulk Data URLs on an equivalent origin (``FHIRTIS_FHIR__EQUIVALENT_ORIGINS``).

A server behind a gateway often writes its internal origin into the ``Content-Location`` of a
kick-off and into the manifest's file URLs, as it does into search ``next`` links (e.g. HAPI
behind a reverse proxy that does not forward ``X-Forwarded-Host``). The setting that makes such
``next`` links work must make these work too: the request goes to the configured origin (path
and query kept), so the access token never leaves it.
"""

from __future__ import annotations

import re

import orjson
import pytest
from pydantic import SecretStr
from pytest_httpx import HTTPXMock

from fhirtis.io import BulkExportClient, FhirClient, FhirClientConfig, ForeignUrl
from tests.io._support import BASE, FakeTime

INTERNAL = "http://fhir-internal:8080"
TOKEN = "bulk-secret-token"


def _config(aliases: list[str]) -> FhirClientConfig:
    return FhirClientConfig(
        base_url=BASE,
        auth_mode="bearer",
        bearer_token=SecretStr(TOKEN),
        equivalent_origins=aliases,
    )


def _serve_kickoff(httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(
        url=re.compile(re.escape(f"{BASE}/Group/g1/$export") + r".*"),
        status_code=202,
        headers={"Content-Location": f"{INTERNAL}/r4/bulkstatus/job-1?x=1"},
    )


async def test_status_and_file_urls_on_an_equivalent_origin_go_to_the_base(
    httpx_mock: HTTPXMock,
) -> None:
    _serve_kickoff(httpx_mock)
    httpx_mock.add_response(
        url=f"{BASE}/bulkstatus/job-1?x=1",
        json={
            "transactionTime": "2024-05-01T10:00:00Z",
            "requiresAccessToken": True,
            "output": [{"type": "Patient", "url": f"{INTERNAL}/r4/bulkfiles/Patient.ndjson"}],
            "error": [],
        },
    )
    httpx_mock.add_response(
        url=f"{BASE}/bulkfiles/Patient.ndjson",
        content=orjson.dumps({"resourceType": "Patient", "id": "p1"}) + b"\n",
    )
    async with FhirClient(_config([INTERNAL]), timing=FakeTime().timing()) as fhir:
        bulk = BulkExportClient(fhir)
        status_url = await bulk.kick_off("group", "g1")
        assert status_url == f"{BASE}/bulkstatus/job-1?x=1"
        manifest = await bulk.poll(status_url)
        got = [r async for _, r in bulk.download(manifest)]
    assert [r["id"] for r in got] == ["p1"]
    for request in httpx_mock.get_requests():
        assert request.url.host == "fhir.example.org"
        assert request.headers["Authorization"] == f"Bearer {TOKEN}"


async def test_without_the_setting_the_internal_origin_is_still_refused(
    httpx_mock: HTTPXMock,
) -> None:
    _serve_kickoff(httpx_mock)
    async with FhirClient(_config([]), timing=FakeTime().timing()) as fhir:
        with pytest.raises(ForeignUrl, match="fhir-internal"):
            await BulkExportClient(fhir).kick_off("group", "g1")
    assert len(httpx_mock.get_requests()) == 1
